/**
 * RawArchive: every accepted event, stored raw for later reprocessing (DESIGN invariant 6), and
 * the source of filtered queries (query/raw-reader.ts).
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
 *
 * Late marks. The invariant they keep: THE RAW PATH COUNTS EXACTLY THE EVENTS THE ACTIVE ROLLUPS
 * COUNT. The archive keeps every accepted event, but the live aggregator does not count the
 * ones it judged late beyond the allowed lateness (it appends them to the late lane), so the
 * archive learns which those are and the raw reader skips them:
 * - One event can reach the log more than once (a client retry, a produce retried after a lost
 *   ack), and each copy is judged on its own: a retry of a counted event that arrives after its
 *   bucket closed goes to the late lane, yet the event was counted. So the tap archives each
 *   event with the log position of its copy (`positions`), a late mark names the position of
 *   the copy that was late, and an event reads as late (`late: true`) exactly when every copy
 *   the archive saw was marked late. A copy judged a duplicate was deduplicated against a
 *   counted copy (same id, same open bucket), so the event counts once and is not late either.
 *   An event archived without positions (tests, tools) is never late.
 * - `markLate` and `archive` are idempotent and commute: a mark may arrive before its copy is
 *   archived (the tap reads the event topic and the late topic with separate consumers) and
 *   takes effect once it is. A mark for an event the archive never gets is never read.
 * - The mark arrives a little after the event is archived (the aggregator appends to the late
 *   lane at its next flush, the tap consumes it after that): for that short moment a filtered
 *   query counts the late event. Once the tap has caught up with the late lane, it does not.
 * - Reprocessing folds late events into the rollups of the days it recomputes. Once it has
 *   switched a day over, it calls `clearLate` for that day, so the raw path counts those
 *   events too, as the active rollups now do. Marks that arrive later (late events sent after
 *   the recompute read the archive) are kept: the recomputed rollups do not count those events
 *   either. One race remains: an event the recompute read whose mark lands only after
 *   `clearLate` reads as late though the new rollups count it; reprocess days whose late lane
 *   the tap has caught up with (in practice, any day older than a few minutes).
 * - Marks expire with their events (retention from event time); `deleteVisitors` removes an
 *   erased event's marks with it.
 */
import type { EnrichedEvent } from '../ingest/enriched-event.js';

/** Where one copy of an event sits in the event log: a partition of the event topic and an offset. */
export interface LogPosition {
  readonly partition: number;
  readonly offset: number;
}

/** The aggregator sent the copy of (site, ts, id) at `position` to the late lane. */
export interface LateMark {
  readonly site: string;
  readonly ts: number;
  readonly id: string;
  readonly position: LogPosition;
}

/**
 * An event as read back: the archived record, and `late: true` when the live aggregator counted
 * none of its copies. `late` is the archive's knowledge, never part of the record format:
 * it is absent (not false) on other events, and `archive` never stores it.
 */
export type ArchivedEvent = EnrichedEvent & { readonly late?: true };

export interface RawArchive {
  /** `positions`, when given, is parallel to `events`: where each event's copy sits in the log. */
  archive(events: readonly EnrichedEvent[], positions?: readonly LogPosition[]): Promise<void>;
  /** Idempotent; marks of events past retention are dropped. */
  markLate(marks: readonly LateMark[]): Promise<void>;
  /** Removes the late marks of one site's archived events with fromMs <= ts < toMs; says how many events had marks. */
  clearLate(site: string, fromMs: number, toMs: number): Promise<number>;
  read(site: string, fromMs: number, toMs: number): AsyncIterable<ArchivedEvent>;
  deleteVisitors(site: string, visitorIds: ReadonlySet<string>, fromMs: number, toMs: number): Promise<number>;
  close(): Promise<void>;
}

/** The archive's order: event time, then id by UTF-8 bytes (Cassandra's order for text). */
export function compareArchived(a: Pick<EnrichedEvent, 'ts' | 'id'>, b: Pick<EnrichedEvent, 'ts' | 'id'>): number {
  if (a.ts !== b.ts) return a.ts < b.ts ? -1 : 1;
  if (a.id === b.id) return 0;
  return Buffer.compare(Buffer.from(a.id, 'utf8'), Buffer.from(b.id, 'utf8'));
}

/** A copy's position as the archive stores it. */
export function positionKey(p: LogPosition): string {
  if (!Number.isInteger(p.partition) || p.partition < 0 || !Number.isSafeInteger(p.offset) || p.offset < 0) {
    throw new RangeError(`bad log position ${JSON.stringify(p)}`);
  }
  return `${p.partition}:${p.offset}`;
}

/** Late when every copy seen was marked late (and at least one was seen): see "Late marks" above. */
export function isLate(copies: ReadonlySet<string> | readonly string[], late: ReadonlySet<string> | readonly string[]): boolean {
  const seen = [...copies];
  if (seen.length === 0) return false;
  const marked = late instanceof Set ? late : new Set(late);
  return seen.every((c) => marked.has(c));
}

/** The record as archived: the event's own fields, without what a read added (`late`). */
export function recordOf(e: EnrichedEvent | ArchivedEvent): EnrichedEvent {
  if (!('late' in e)) return e;
  const { late: _late, ...record } = e;
  return record;
}

export function checkArchiveInput(events: readonly EnrichedEvent[], positions: readonly LogPosition[] | undefined): void {
  if (positions !== undefined && positions.length !== events.length) {
    throw new RangeError(`archive: ${events.length} events but ${positions.length} positions`);
  }
}
