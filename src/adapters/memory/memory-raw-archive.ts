/**
 * In-memory RawArchive for the embedded default and tests. Memory is bounded: at most
 * `maxEvents` entries (events, and late marks whose event has not arrived yet) are kept; beyond
 * that the earliest archived are evicted and counted (`evictedTotal`), so an embedded process
 * keeps the most recent history it can hold.
 * Retention runs from event time, like the Cassandra TTL: expired events are not stored and
 * are dropped from reads.
 */
import type { EnrichedEvent } from '../../ingest/enriched-event.js';
import {
  checkArchiveInput, compareArchived, isLate, positionKey, recordOf,
  type ArchivedEvent, type LateMark, type LogPosition, type RawArchive,
} from '../../aggregate/raw-archive.js';

export interface MemoryRawArchiveOptions {
  /** Entries kept before the earliest archived are evicted. */
  readonly maxEvents?: number;
  /** How long an event is kept, from its event time; null keeps it until evicted. */
  readonly retentionMs?: number | null;
  readonly now?: () => number;
}

const DEFAULT_MAX_EVENTS = 100_000;
const DEFAULT_RETENTION_MS = 400 * 86_400_000;

/** One (site, ts, id): the event once archived, where its copies sat in the log, which of them were late. */
interface Entry {
  readonly site: string;
  readonly ts: number;
  event: EnrichedEvent | null;
  readonly copies: Set<string>;
  readonly late: Set<string>;
}

export class MemoryRawArchive implements RawArchive {
  /** Keyed by site, ts and id; Map order is insertion order, so the first entry is evicted first. */
  private readonly entries = new Map<string, Entry>();
  private readonly maxEvents: number;
  private readonly retentionMs: number | null;
  private readonly now: () => number;
  private evicted = 0;
  private expiredSkipped = 0;

  constructor(options: MemoryRawArchiveOptions = {}) {
    this.maxEvents = options.maxEvents ?? DEFAULT_MAX_EVENTS;
    if (!Number.isInteger(this.maxEvents) || this.maxEvents < 1) throw new RangeError(`maxEvents must be a positive integer, got ${this.maxEvents}`);
    this.retentionMs = options.retentionMs === undefined ? DEFAULT_RETENTION_MS : options.retentionMs;
    this.now = options.now ?? Date.now;
  }

  /** Entries evicted because the cap was reached. */
  get evictedTotal(): number {
    return this.evicted;
  }

  /** Events not stored because their event time was already past retention. */
  get expiredSkippedTotal(): number {
    return this.expiredSkipped;
  }

  /** Entries held: events, and late marks waiting for their event. */
  get size(): number {
    return this.entries.size;
  }

  async archive(events: readonly EnrichedEvent[], positions?: readonly LogPosition[]): Promise<void> {
    checkArchiveInput(events, positions);
    const now = this.now();
    events.forEach((e, i) => {
      checkEvent(e);
      if (this.expired(e.ts, now)) {
        this.expiredSkipped++;
        return;
      }
      const entry = this.entry(e.site, e.ts, e.id);
      // A JSON round trip, as the real archive stores it: the caller's object is not shared.
      entry.event = JSON.parse(JSON.stringify(recordOf(e))) as EnrichedEvent;
      const position = positions?.[i];
      if (position) entry.copies.add(positionKey(position));
    });
    this.evict();
  }

  async markLate(marks: readonly LateMark[]): Promise<void> {
    const now = this.now();
    for (const m of marks) {
      checkEvent(m);
      const position = positionKey(m.position);
      if (this.expired(m.ts, now)) continue;
      this.entry(m.site, m.ts, m.id).late.add(position);
    }
    this.evict();
  }

  async clearLate(site: string, fromMs: number, toMs: number): Promise<number> {
    let cleared = 0;
    for (const entry of this.entries.values()) {
      // Only archived events: a mark whose event has not arrived was not read by a reprocess either.
      if (entry.event !== null && entry.site === site && entry.ts >= fromMs && entry.ts < toMs && entry.late.size > 0) {
        entry.late.clear();
        cleared++;
      }
    }
    return cleared;
  }

  async deleteVisitors(site: string, visitorIds: ReadonlySet<string>, fromMs: number, toMs: number): Promise<number> {
    let removed = 0;
    for (const [key, entry] of this.entries) {
      const e = entry.event;
      if (e !== null && e.site === site && e.ts >= fromMs && e.ts < toMs && visitorIds.has(e.visitorId)) {
        this.entries.delete(key);
        removed++;
      }
    }
    return removed;
  }

  async *read(site: string, fromMs: number, toMs: number): AsyncIterable<ArchivedEvent> {
    const now = this.now();
    const matching: ArchivedEvent[] = [];
    for (const entry of this.entries.values()) {
      const e = entry.event;
      if (e === null || e.site !== site || e.ts < fromMs || e.ts >= toMs || this.expired(e.ts, now)) continue;
      matching.push(isLate(entry.copies, entry.late) ? { ...e, late: true } : e);
    }
    matching.sort(compareArchived);
    for (const e of matching) yield e;
  }

  async close(): Promise<void> {}

  private entry(site: string, ts: number, id: string): Entry {
    const key = `${site}\u0000${ts}\u0000${id}`;
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { site, ts, event: null, copies: new Set(), late: new Set() };
      this.entries.set(key, entry);
    }
    return entry;
  }

  private evict(): void {
    while (this.entries.size > this.maxEvents) {
      const first = this.entries.keys().next();
      if (first.done) break;
      this.entries.delete(first.value);
      this.evicted++;
    }
  }

  private expired(tsMs: number, nowMs: number): boolean {
    return this.retentionMs !== null && tsMs + this.retentionMs <= nowMs;
  }
}

function checkEvent(e: Pick<EnrichedEvent, 'site' | 'id' | 'ts'>): void {
  if (typeof e.site !== 'string' || e.site === '') throw new TypeError('archived event without a site');
  if (typeof e.id !== 'string' || e.id === '') throw new TypeError(`archived event of ${e.site} without an id`);
  if (!Number.isSafeInteger(e.ts)) throw new TypeError(`archived event ${e.id} has a bad ts: ${e.ts}`);
}
