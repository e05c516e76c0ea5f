/**
 * In-memory RawArchive for the embedded default and tests. Memory is bounded: at most
 * `maxEvents` events are kept; beyond that the earliest archived are evicted and counted
 * (`evictedTotal`), so an embedded process keeps the most recent history it can hold.
 * Retention runs from event time, like the Cassandra TTL: expired events are not stored and
 * are dropped from reads.
 */
import type { EnrichedEvent } from '../../ingest/enriched-event.js';
import { compareArchived, type RawArchive } from '../../aggregate/raw-archive.js';

export interface MemoryRawArchiveOptions {
  /** Events kept before the earliest archived are evicted. */
  readonly maxEvents?: number;
  /** How long an event is kept, from its event time; null keeps it until evicted. */
  readonly retentionMs?: number | null;
  readonly now?: () => number;
}

const DEFAULT_MAX_EVENTS = 100_000;
const DEFAULT_RETENTION_MS = 400 * 86_400_000;

export class MemoryRawArchive implements RawArchive {
  /** Keyed by site, ts and id; Map order is archive order, so the first entry is evicted first. */
  private readonly events = new Map<string, EnrichedEvent>();
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

  /** Events evicted because the cap was reached. */
  get evictedTotal(): number {
    return this.evicted;
  }

  /** Events not stored because their event time was already past retention. */
  get expiredSkippedTotal(): number {
    return this.expiredSkipped;
  }

  get size(): number {
    return this.events.size;
  }

  async archive(events: readonly EnrichedEvent[]): Promise<void> {
    const now = this.now();
    for (const e of events) {
      checkEvent(e);
      if (this.expired(e.ts, now)) {
        this.expiredSkipped++;
        continue;
      }
      // A JSON round trip, as the real archive stores it: the caller's object is not shared.
      this.events.set(`${e.site}\u0000${e.ts}\u0000${e.id}`, JSON.parse(JSON.stringify(e)) as EnrichedEvent);
    }
    while (this.events.size > this.maxEvents) {
      const first = this.events.keys().next();
      if (first.done) break;
      this.events.delete(first.value);
      this.evicted++;
    }
  }

  async deleteVisitors(site: string, visitorIds: ReadonlySet<string>, fromMs: number, toMs: number): Promise<number> {
    let removed = 0;
    for (const [key, e] of this.events) {
      if (e.site === site && e.ts >= fromMs && e.ts < toMs && visitorIds.has(e.visitorId)) {
        this.events.delete(key);
        removed++;
      }
    }
    return removed;
  }

  async *read(site: string, fromMs: number, toMs: number): AsyncIterable<EnrichedEvent> {
    const now = this.now();
    const matching: EnrichedEvent[] = [];
    for (const e of this.events.values()) {
      if (e.site === site && e.ts >= fromMs && e.ts < toMs && !this.expired(e.ts, now)) matching.push(e);
    }
    matching.sort(compareArchived);
    for (const e of matching) yield e;
  }

  async close(): Promise<void> {}

  private expired(tsMs: number, nowMs: number): boolean {
    return this.retentionMs !== null && tsMs + this.retentionMs <= nowMs;
  }
}

function checkEvent(e: EnrichedEvent): void {
  if (typeof e.site !== 'string' || e.site === '') throw new TypeError('archived event without a site');
  if (typeof e.id !== 'string' || e.id === '') throw new TypeError(`archived event of ${e.site} without an id`);
  if (!Number.isSafeInteger(e.ts)) throw new TypeError(`archived event ${e.id} has a bad ts: ${e.ts}`);
}
