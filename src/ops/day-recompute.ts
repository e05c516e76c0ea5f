/**
 * Recomputing the rollups of one site's UTC days from the raw archive, with the live pipeline's
 * own code: the archived events go, in the archive's (ts, id) order, through MinuteWindows
 * (minute-windows.ts, with the given ProcessingLogic), and the minute rows it emits are rolled
 * into quarter, hour and day rows by the tier roller (tier-roller.ts). So a recomputed row is
 * what the live aggregator would have written had it seen every archived event in time.
 *
 * Why the windows accept every event: fed in event-time order with no out-of-order allowance,
 * an event's bucket is always the newest one, never closed under the watermark (the newest
 * event time), so no event is late, whatever the allowed lateness. Events the live pipeline
 * put in the late lane (beyond its lateness) are in the archive too (the tap archives every
 * accepted event), so they count here: reprocessing is how the late lane is folded in.
 *
 * What counts is therefore exactly rollup.ts's definition over the archived events: bots only in
 * `bots`, an id repeated in a site's UTC minute once (the first in (ts, id) order), visits by
 * the visitor's events in (ts, id) order.
 *
 * Visits crossing midnight: a day's first events may continue visits begun the day before, so
 * before the first day of a stretch the windows fold the preceding `lookbackMs` (a day by
 * default) without keeping its rows; consecutive days then carry their visit state over. A visit
 * chain longer than the lookback (a visitor active every 29 minutes for a whole day) would see
 * its entry taken from the lookback's first event; visitor ids rotate daily (visitor-id.ts), so
 * such a chain cannot outlive a day of received time.
 *
 * Memory: the windows hold the visit states of the last sessionTimeoutMs and the newest
 * minute's bucket; a day's rows (at most 1440 minute rows and their 121 coarse rows) are held
 * until written. The archive is read lazily.
 */
import { MinuteWindows, type ProcessingLogic } from '../aggregate/minute-windows.js';
import type { RawArchive } from '../aggregate/raw-archive.js';
import { TIERS, type Rollup } from '../aggregate/rollup.js';
import { rollTiers } from '../aggregate/tier-roller.js';
import { MemoryRollupStore } from '../adapters/memory/memory-rollup-store.js';
import { DAY_MS, dayStartMs } from './version-key.js';

/**
 * An archive read that never waits for I/O (the in-memory one) is a loop of microtasks, which
 * would keep the process from serving anything else (ingest, queries, this run's own stream)
 * for a whole day's events: every so many events the recompute lets I/O in.
 */
const YIELD_EVERY = 1000;
const yieldToIo = () => new Promise<void>((resolve) => setImmediate(resolve));

export interface DayRecomputeOptions {
  readonly sessionTimeoutMs: number;
  readonly maxBreakdownKeys: number;
  readonly logic: ProcessingLogic;
  /** Events folded before a stretch's first day, for visits crossing midnight. Default a day. */
  readonly lookbackMs?: number;
}

export interface RecomputedDay {
  readonly day: number;
  /** Every tier's rows of the day, under the site itself (the caller moves them to a version key). */
  readonly rows: Rollup[];
  /** Archived events of the day read (bots and repeats included). */
  readonly events: number;
}

/**
 * Recomputes consecutive days of one site, one at a time: `next(day)` for each in increasing
 * order. A day that does not follow the previous one starts a new stretch (with its lookback),
 * so a caller may skip days (already done) and call on.
 */
export class DayRecompute {
  private windows: MinuteWindows | null = null;
  private lastDay: number | null = null;
  private offset = 0;
  private readonly lookbackMs: number;

  constructor(private readonly archive: RawArchive, private readonly site: string, private readonly options: DayRecomputeOptions) {
    this.lookbackMs = options.lookbackMs ?? DAY_MS;
    if (!Number.isSafeInteger(this.lookbackMs) || this.lookbackMs < 0) throw new RangeError(`lookbackMs must be a non-negative integer, got ${this.lookbackMs}`);
  }

  async next(day: number, onEvent?: (events: number) => void): Promise<RecomputedDay> {
    const fromMs = dayStartMs(day);
    const toMs = fromMs + DAY_MS;
    if (this.windows === null || this.lastDay !== day - 1) {
      this.windows = new MinuteWindows({
        // In (ts, id) order nothing is out of order, and no bucket closes before its events are in.
        maxOutOfOrderMs: 0,
        allowedLatenessMs: 0,
        // Never advanced by a clock: only the events move the watermark.
        idleAdvanceMs: Number.MAX_SAFE_INTEGER,
        maxBreakdownKeys: this.options.maxBreakdownKeys,
        sessionTimeoutMs: this.options.sessionTimeoutMs,
        logic: this.options.logic,
      }, 0);
      if (this.lookbackMs > 0) {
        let n = 0;
        for await (const e of this.archive.read(this.site, fromMs - this.lookbackMs, fromMs)) {
          this.offer(e);
          if (++n % YIELD_EVERY === 0) await yieldToIo();
        }
        // The lookback's rows are not this day's: dropped.
        this.windows.takeFlush();
      }
    }
    this.lastDay = day;
    let events = 0;
    for await (const e of this.archive.read(this.site, fromMs, toMs)) {
      this.offer(e);
      events++;
      if (events % YIELD_EVERY === 0) {
        onEvent?.(events);
        await yieldToIo();
      }
    }
    const minuteRows = (this.windows.takeFlush()?.rows ?? []).filter((r) => r.bucketMs >= fromMs && r.bucketMs < toMs);
    return { day, rows: await rollDay(this.site, minuteRows, fromMs, this.options.maxBreakdownKeys), events };
  }

  private offer(event: Parameters<MinuteWindows['offer']>[0]['event']): void {
    // The clock only matters for idle advance, which never fires here.
    this.windows!.offer({ offset: this.offset++, event }, 0);
  }
}

/**
 * The minute rows of one day with their quarter, hour and day rows, rolled by the tier roller
 * in a scratch store of their own (no retention: every tier is rolled from the fresh minute rows,
 * even for days whose minute rows the real store would no longer keep).
 */
async function rollDay(site: string, minuteRows: readonly Rollup[], dayFromMs: number, maxKeys: number): Promise<Rollup[]> {
  if (minuteRows.length === 0) return [];
  const scratch = new MemoryRollupStore();
  await scratch.upsert(minuteRows);
  await rollTiers(scratch, minuteRows, maxKeys, { concurrency: 1 });
  const out: Rollup[] = [];
  for (const tier of TIERS) out.push(...await scratch.read(site, tier, dayFromMs, dayFromMs + DAY_MS));
  return out;
}
