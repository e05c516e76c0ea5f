/**
 * Decoding of event-log records for aggregation: the record's whole event, by the one decoder
 * of the record format (ingest/event-record.ts, either version), kept to the fields the windows
 * read — every dimension's source, props and revenue; not the title, language or received time,
 * which no rollup uses and which would otherwise stay in memory while the event's bucket is
 * open. A record that fails is an outcome with a reason (it goes to the dead-letter topic),
 * never an exception: one bad record must not stop a partition. Reasons name the EnrichedEvent
 * field (`invalid_field:ts`, whichever key held it).
 */
import { decodeEventRecord } from '../ingest/event-record.js';
import type { WindowEvent } from './minute-windows.js';

export type DecodedEvent =
  | { readonly ok: true; readonly event: WindowEvent }
  | { readonly ok: false; readonly reason: string };

export function decodeEvent(value: Buffer): DecodedEvent {
  const decoded = decodeEventRecord(value);
  if (!decoded.ok) return decoded;
  const e = decoded.event;
  return {
    ok: true,
    event: {
      id: e.id, site: e.site, type: e.type, name: e.name, ts: e.ts, visitorId: e.visitorId, bot: e.bot,
      host: e.host, path: e.path, referrerHost: e.referrerHost, source: e.source, channel: e.channel, utm: e.utm,
      browser: e.browser, browserVersion: e.browserVersion, os: e.os, osVersion: e.osVersion, device: e.device,
      screen: e.screen, country: e.country, region: e.region, city: e.city, props: e.props, revenue: e.revenue,
    },
  };
}
