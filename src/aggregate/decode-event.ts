/**
 * Decoding of event-log records for aggregation: the fields the windows read, from a record of
 * either format version (ingest/event-record.ts describes both; version 2 is written now,
 * version 1 by older ingests and still replayed). A record that fails is an outcome with a
 * reason (it goes to the dead-letter topic), never an exception: one bad record must not stop a
 * partition. Reasons name the EnrichedEvent field: `invalid_field:ts` whichever key held it.
 */
import { RECORD_KEYS as K, parseRecordObject } from '../ingest/event-record.js';
import type { WindowEvent } from './minute-windows.js';

export type DecodedEvent =
  | { readonly ok: true; readonly event: WindowEvent }
  | { readonly ok: false; readonly reason: string };

const nonEmpty = (v: unknown): v is string => typeof v === 'string' && v !== '';
const bad = (field: string): DecodedEvent => ({ ok: false, reason: `invalid_field:${field}` });

function decodeV2(e: Record<string, unknown>): DecodedEvent {
  const id = e[K.id];
  const site = e[K.site];
  const name = e[K.name];
  const receivedAt = e[K.receivedAt];
  const offset = e[K.tsOffset];
  const path = e[K.path];
  const source = e[K.source];
  const visitorId = e[K.visitorId];
  const bot = e[K.bot];
  if (!nonEmpty(id)) return bad('id');
  if (!nonEmpty(site)) return bad('site');
  if (name !== undefined && !nonEmpty(name)) return bad('name');
  if (typeof receivedAt !== 'number' || !Number.isSafeInteger(receivedAt)) return bad('receivedAt');
  if (offset !== undefined && (typeof offset !== 'number' || !Number.isSafeInteger(offset))) return bad('ts');
  const ts = offset === undefined ? receivedAt : receivedAt + offset;
  if (!Number.isSafeInteger(ts)) return bad('ts');
  if (typeof path !== 'string') return bad('path');
  if (typeof source !== 'string') return bad('source');
  if (typeof visitorId !== 'string') return bad('visitorId');
  if (bot !== undefined && bot !== true) return bad('bot');
  return {
    ok: true,
    event: { id, site, type: name === undefined ? 'pageview' : 'event', ts, path, source, visitorId, bot: bot === true },
  };
}

function decodeV1(e: Record<string, unknown>): DecodedEvent {
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

export function decodeEvent(value: Buffer): DecodedEvent {
  const e = parseRecordObject(value);
  if (typeof e === 'string') return { ok: false, reason: e };
  if (e.v === 2) return decodeV2(e);
  if (e.v === 1) return decodeV1(e);
  return { ok: false, reason: 'unsupported_version' };
}
