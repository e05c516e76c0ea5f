/**
 * RawArchive: every accepted event, stored raw for later reprocessing (DESIGN invariant 6).
 * Real implementation: Cassandra (adapters/cassandra); embedded: adapters/memory (capped).
 *
 * Contract (test/contract/raw-archive.contract.ts):
 * - `archive` is idempotent by (site, id): archiving an event again (a redelivered or replayed
 *   log record carries the same event, event time included) leaves one copy. An event is keyed
 *   by (site, ts, id), so a record with the same id but another event time (a client retry
 *   without a timestamp, given a new received time at ingest) is a second event, as it was in
 *   the log and in the live rollups: reprocessing then counts what the live pipeline counted.
 * - Retention runs from event time: an event whose `ts` is already older than the archive's
 *   retention is not stored, and archiving again never extends an event's life.
 * - `read` yields one site's events with fromMs <= ts < toMs, ordered by (ts, id) — ids compared
 *   as UTF-8 bytes — lazily, so a long range never sits in memory whole.
 * - A site never sees another site's events.
 * - `deleteVisitors` removes one site's events in [fromMs, toMs) whose visitorId is in the set,
 *   and says how many it removed (GDPR erasure). Rollups hold no per-visitor data and are
 *   not touched; a later reprocess of the range rebuilds them without the erased events.
 */
import type { EnrichedEvent } from '../ingest/enriched-event.js';

export interface RawArchive {
  archive(events: readonly EnrichedEvent[]): Promise<void>;
  read(site: string, fromMs: number, toMs: number): AsyncIterable<EnrichedEvent>;
  deleteVisitors(site: string, visitorIds: ReadonlySet<string>, fromMs: number, toMs: number): Promise<number>;
  close(): Promise<void>;
}

/** The archive's order: event time, then id by UTF-8 bytes (Cassandra's order for text). */
export function compareArchived(a: Pick<EnrichedEvent, 'ts' | 'id'>, b: Pick<EnrichedEvent, 'ts' | 'id'>): number {
  if (a.ts !== b.ts) return a.ts < b.ts ? -1 : 1;
  if (a.id === b.id) return 0;
  return Buffer.compare(Buffer.from(a.id, 'utf8'), Buffer.from(b.id, 'utf8'));
}
