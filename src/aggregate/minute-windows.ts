/**
 * Event-time windows of one event-log partition: one-minute UTC buckets per site, a watermark,
 * allowed lateness and a late lane. `MinuteWindows` is the pure state machine (no timers, the
 * clock is passed in); `minuteWindows()` is the RxJS operator around it that drives flushes
 * and idle advance from an injectable scheduler.
 *
 * Semantics:
 * - watermark = max event time seen − maxOutOfOrderMs; it only moves forward;
 * - bucket [b, b + 60 s) is open while watermark < b + 60 s + allowedLatenessMs; an event for
 *   an open bucket is counted, restating the bucket if it was already written; an event for a
 *   closed bucket is `late`: an outcome routed to the late lane, not an error;
 * - a partition with no input for idleAdvanceMs (wall clock) moves its watermark to
 *   now − maxOutOfOrderMs − idleAdvanceMs, so the buckets of quiet partitions close; not while
 *   it replays (see replayThroughOffset): records it has yet to replay exist, so it is not
 *   idle, and closing buckets by the clock mid-replay would skip replayed events of buckets
 *   that need them, or make them late;
 * - event ids are kept per open bucket: a repeated id in the same bucket counts once
 *   (client retries resend the same event time, so they land in the same bucket);
 * - bots are excluded from rollups entirely (pageviews, events, visitors, breakdowns); they are
 *   an outcome of their own, which the aggregator counts in sluice_aggregate_bot_events_total;
 * - pages and sources count pageviews only; each keeps at most maxBreakdownKeys keys, the rest
 *   summed under OTHER_KEY. Which keys survive depends only on the bucket's event sequence (the
 *   first 4 × maxBreakdownKeys distinct keys are counted exactly, then the top maxBreakdownKeys
 *   by count win, ties by key), so rebuilding a bucket from the log gives the same row.
 *
 * Offsets: each open bucket remembers the offset of its first event, so a flush can tell from
 * which offset a restart must re-read to rebuild every open bucket (see aggregator.ts).
 */
import { EMPTY, Observable, asyncScheduler, interval, map, merge, type OperatorFunction, type SchedulerLike } from 'rxjs';
import type { Config } from '../config.js';
import type { EnrichedEvent } from '../ingest/enriched-event.js';
import { HyperLogLog } from './hyperloglog.js';
import { OTHER_KEY, type MinuteRollup } from './rollup-store.js';

export const MINUTE_MS = 60_000;

/** The fields of an EnrichedEvent that windows read. */
export type WindowEvent = Pick<EnrichedEvent, 'id' | 'site' | 'type' | 'ts' | 'path' | 'source' | 'visitorId' | 'bot'>;

export interface WindowInput {
  /** Offset of the record in its partition; inputs arrive in offset order. */
  readonly offset: number;
  /** null for a record that carries no event (dead-lettered): it only moves the position on. */
  readonly event: WindowEvent | null;
}

export type WindowOutcome = 'counted' | 'duplicate' | 'late' | 'replay_skipped' | 'bot';

export type WindowOptions = Pick<Config['aggregate'], 'maxOutOfOrderMs' | 'allowedLatenessMs' | 'idleAdvanceMs' | 'maxBreakdownKeys'> & {
  /** Watermark restored from the last commit. */
  readonly initialWatermarkMs?: number;
  /**
   * Inputs up to this offset were processed before the last commit: those for buckets closed
   * under the restored watermark are already reflected (in a final row or the late lane) and
   * are skipped instead of being routed to the late lane again. Set it only when such inputs
   * will be offered again: until the input at this offset has been offered the windows are
   * replaying, and idle advance waits, so the watermark stays the restored one.
   */
  readonly replayThroughOffset?: number;
};

export interface WindowFlush {
  /**
   * Absolute rows of every bucket changed since the previous flush: open ones, and closed ones
   * whose final state was not yet written. Writing them is idempotent.
   */
  readonly rows: readonly MinuteRollup[];
  /** -Infinity until the first event or idle advance. */
  readonly watermarkMs: number;
  /**
   * Where a restart must resume to rebuild every open bucket: the first offset of the oldest
   * open bucket, else the offset after the last input; null before any input.
   */
  readonly commitOffset: number | null;
  /** The last input's offset; null before any input. */
  readonly lastOffset: number | null;
  readonly openBuckets: number;
  /** Outcomes of the events since the previous flush. */
  readonly outcomes: Readonly<Record<WindowOutcome, number>>;
}

/** Breakdown counts whose kept keys depend only on the order keys arrive in. */
class Breakdown {
  private readonly counts = new Map<string, number>();
  private untracked = 0;

  constructor(private readonly trackedKeys: number) {}

  add(key: string): void {
    const n = this.counts.get(key);
    if (n !== undefined) this.counts.set(key, n + 1);
    else if (this.counts.size < this.trackedKeys) this.counts.set(key, 1);
    else this.untracked++;
  }

  top(limit: number): Record<string, number> {
    let other = this.untracked + (this.counts.get(OTHER_KEY) ?? 0);
    const entries = [...this.counts].filter(([k]) => k !== OTHER_KEY)
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (const [, n] of entries.slice(limit)) other += n;
    const kept = entries.slice(0, limit);
    if (other > 0) kept.push([OTHER_KEY, other]);
    // fromEntries defines own properties, so a key such as "__proto__" stays a plain key.
    return Object.fromEntries(kept);
  }
}

interface Bucket {
  readonly site: string;
  readonly bucketMs: number;
  readonly firstOffset: number;
  readonly ids: Set<string>;
  readonly visitors: HyperLogLog;
  readonly pages: Breakdown;
  readonly sources: Breakdown;
  pageviews: number;
  events: number;
}

const noOutcomes = (): Record<WindowOutcome, number> => ({ counted: 0, duplicate: 0, late: 0, replay_skipped: 0, bot: 0 });

export class MinuteWindows {
  private watermark: number;
  private flushedWatermark: number;
  /** Open buckets by minute, then site: closing walks minutes, of which few are open. */
  private readonly open = new Map<number, Map<string, Bucket>>();
  private openCount = 0;
  private readonly dirty = new Set<Bucket>();
  private closedRows: MinuteRollup[] = [];
  private lastOffset: number | null = null;
  private lastInputAtMs: number;
  private inputsSinceFlush = 0;
  private outcomes = noOutcomes();
  private readonly replayThroughOffset: number;

  constructor(private readonly options: WindowOptions, nowMs: number) {
    this.watermark = options.initialWatermarkMs ?? Number.NEGATIVE_INFINITY;
    this.flushedWatermark = this.watermark;
    this.replayThroughOffset = options.replayThroughOffset ?? -1;
    this.lastInputAtMs = nowMs;
  }

  get watermarkMs(): number {
    return this.watermark;
  }

  get openBuckets(): number {
    return this.openCount;
  }

  /** Take one input; returns the event's outcome, or null for an input without an event. */
  offer(input: WindowInput, nowMs: number): WindowOutcome | null {
    this.lastOffset = input.offset;
    this.lastInputAtMs = nowMs;
    this.inputsSinceFlush++;
    const event = input.event;
    if (!event) return null;
    const outcome = this.classify(event, input.offset);
    this.outcomes[outcome]++;
    this.advance(event.ts - this.options.maxOutOfOrderMs);
    return outcome;
  }

  /** True until the input at replayThroughOffset has been offered. */
  get replaying(): boolean {
    return (this.lastOffset ?? -1) < this.replayThroughOffset;
  }

  /** Idle advance: call on every timer tick with the wall clock. */
  tick(nowMs: number): void {
    const { idleAdvanceMs, maxOutOfOrderMs } = this.options;
    if (this.replaying) return;
    if (nowMs - this.lastInputAtMs >= idleAdvanceMs) this.advance(nowMs - maxOutOfOrderMs - idleAdvanceMs);
  }

  /** What changed since the previous flush, or null when nothing did. */
  takeFlush(): WindowFlush | null {
    const rows = this.closedRows;
    for (const b of this.dirty) rows.push(this.row(b));
    if (rows.length === 0 && this.inputsSinceFlush === 0 && this.watermark === this.flushedWatermark) return null;
    this.closedRows = [];
    this.dirty.clear();
    this.inputsSinceFlush = 0;
    this.flushedWatermark = this.watermark;
    const outcomes = this.outcomes;
    this.outcomes = noOutcomes();

    let commitOffset = this.lastOffset === null ? null : this.lastOffset + 1;
    for (const minute of this.open.values()) {
      for (const b of minute.values()) if (commitOffset === null || b.firstOffset < commitOffset) commitOffset = b.firstOffset;
    }
    return { rows, watermarkMs: this.watermark, commitOffset, lastOffset: this.lastOffset, openBuckets: this.openCount, outcomes };
  }

  private isClosed(bucketMs: number): boolean {
    return bucketMs + MINUTE_MS + this.options.allowedLatenessMs <= this.watermark;
  }

  private classify(event: WindowEvent, offset: number): WindowOutcome {
    const bucketMs = Math.floor(event.ts / MINUTE_MS) * MINUTE_MS;
    const closed = this.isClosed(bucketMs);
    if (closed && offset <= this.replayThroughOffset) return 'replay_skipped';
    if (event.bot) return 'bot';
    if (closed) return 'late';

    let minute = this.open.get(bucketMs);
    if (!minute) {
      minute = new Map();
      this.open.set(bucketMs, minute);
    }
    let bucket = minute.get(event.site);
    if (!bucket) {
      const tracked = 4 * this.options.maxBreakdownKeys;
      bucket = {
        site: event.site, bucketMs, firstOffset: offset, ids: new Set(), visitors: HyperLogLog.empty(),
        pages: new Breakdown(tracked), sources: new Breakdown(tracked), pageviews: 0, events: 0,
      };
      minute.set(event.site, bucket);
      this.openCount++;
    }
    if (bucket.ids.has(event.id)) return 'duplicate';
    bucket.ids.add(event.id);
    if (event.type === 'pageview') {
      bucket.pageviews++;
      bucket.pages.add(event.path);
      bucket.sources.add(event.source);
    } else {
      bucket.events++;
    }
    if (event.visitorId !== '') bucket.visitors.add(event.visitorId);
    this.dirty.add(bucket);
    return 'counted';
  }

  private advance(watermarkMs: number): void {
    if (!(watermarkMs > this.watermark)) return;
    this.watermark = watermarkMs;
    for (const [bucketMs, minute] of this.open) {
      if (!this.isClosed(bucketMs)) continue;
      for (const b of minute.values()) {
        // Its final row is pending until the next flush writes it; unchanged buckets were already written whole.
        if (this.dirty.delete(b)) this.closedRows.push(this.row(b));
      }
      this.openCount -= minute.size;
      this.open.delete(bucketMs);
    }
  }

  private row(b: Bucket): MinuteRollup {
    const limit = this.options.maxBreakdownKeys;
    return {
      site: b.site, bucketMs: b.bucketMs, pageviews: b.pageviews, events: b.events,
      visitors: b.visitors.toBytes(), pages: b.pages.top(limit), sources: b.sources.top(limit),
    };
  }
}

export type WindowOutput<T extends WindowInput = WindowInput> =
  | { readonly kind: 'late'; readonly input: T }
  | { readonly kind: 'flush'; readonly flush: WindowFlush };

export interface MinuteWindowsOperatorOptions extends WindowOptions {
  readonly flushIntervalMs: number;
  /** Drives flush ticks; inject a TestScheduler in tests. */
  readonly scheduler?: SchedulerLike;
  /** Wall clock for idle advance; defaults to the scheduler's clock. */
  readonly now?: () => number;
  /** Each emission flushes at once (shutdown, tests). */
  readonly flush$?: Observable<unknown>;
}

/**
 * The windows of one partition as an operator: emits `late` as soon as a late input arrives
 * and a `flush` on each tick (every flushIntervalMs, or on flush$) at which something changed,
 * and a last flush when the source completes. Rows of open buckets in a flush are their state
 * at that moment; a source error ends the stream without a flush, because state that failed
 * half-way must not be written or committed.
 */
export function minuteWindows<T extends WindowInput>(options: MinuteWindowsOperatorOptions): OperatorFunction<T, WindowOutput<T>> {
  return (source) => new Observable<WindowOutput<T>>((subscriber) => {
    const scheduler = options.scheduler ?? asyncScheduler;
    const now = options.now ?? (() => scheduler.now());
    const windows = new MinuteWindows(options, now());
    // A fault in the window logic ends the stream with an error, never a half-applied flush.
    const guarded = <R>(work: () => R): R | undefined => {
      try {
        return work();
      } catch (e) {
        subscriber.error(e);
        return undefined;
      }
    };
    const flush = () => {
      const f = guarded(() => windows.takeFlush());
      if (f) subscriber.next({ kind: 'flush', flush: f });
    };
    // Only timer ticks advance idle partitions by the clock; flush$ flushes what is there.
    const ticks = merge(
      interval(options.flushIntervalMs, scheduler).pipe(map(() => true)),
      (options.flush$ ?? EMPTY).pipe(map(() => false)),
    ).subscribe((timer) => {
      if (timer) guarded(() => windows.tick(now()));
      flush();
    });
    const inputs = source.subscribe({
      next: (input) => {
        if (guarded(() => windows.offer(input, now())) === 'late') subscriber.next({ kind: 'late', input });
      },
      error: (e: unknown) => subscriber.error(e),
      complete: () => {
        flush();
        subscriber.complete();
      },
    });
    return () => {
      ticks.unsubscribe();
      inputs.unsubscribe();
    };
  });
}
