/**
 * Decoding of event-log records for aggregation: JSON of an EnrichedEvent, checked for the
 * fields the windows read. A record that fails is an outcome with a reason (it goes to the
 * dead-letter topic), never an exception: one bad record must not stop a partition.
 */
import type { WindowEvent } from './minute-windows.js';

export type DecodedEvent =
  | { readonly ok: true; readonly event: WindowEvent }
  | { readonly ok: false; readonly reason: string };

const nonEmpty = (v: unknown): v is string => typeof v === 'string' && v !== '';

export function decodeEvent(value: Buffer): DecodedEvent {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString('utf8'));
  } catch {
    return { ok: false, reason: 'invalid_json' };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { ok: false, reason: 'not_an_object' };
  const e = parsed as Record<string, unknown>;
  const bad = (field: string): DecodedEvent => ({ ok: false, reason: `invalid_field:${field}` });
  if (!nonEmpty(e.id)) return bad('id');
  if (!nonEmpty(e.site)) return bad('site');
  if (e.type !== 'pageview' && e.type !== 'event') return bad('type');
  if (typeof e.ts !== 'number' || !Number.isFinite(e.ts)) return bad('ts');
  if (typeof e.path !== 'string') return bad('path');
  if (typeof e.source !== 'string') return bad('source');
  if (typeof e.visitorId !== 'string') return bad('visitorId');
  if (typeof e.bot !== 'boolean') return bad('bot');
  // Only the fields windows read: the rest of the event need not stay in memory.
  return {
    ok: true,
    event: { id: e.id, site: e.site, type: e.type, ts: e.ts, path: e.path, source: e.source, visitorId: e.visitorId, bot: e.bot },
  };
}
