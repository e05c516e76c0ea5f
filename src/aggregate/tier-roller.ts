/**
 * The tier roller, and tier retention (shared with the stores).
 *
 * The tier roller: coarser rows recomputed as absolute values from the rows one tier finer,
 * read back from the store — quarter = merge of its 15 minute rows, hour = merge of its 4
 * quarter rows, day = merge of its 24 hour rows (rollup-merge.ts). Never an increment: running
 * it twice, or after a crash half-way, writes the same rows (DESIGN invariant 3).
 *
 * Call it only after the upsert of `minuteRows` has resolved, with a store whose reads see
 * that write (the memory store; Cassandra at LOCAL_QUORUM/LOCAL_QUORUM, or one node). The
 * rows passed in (and each level's freshly computed rows) are also laid over what the read
 * returns, so the level just written is never read stale.
 *
 * Per site, `concurrency` sites at a time: for every quarter touched by `minuteRows`, read its
 * minute rows and write the quarter row; then every hour touched, from its quarters; then every
 * day, from its hours. Contiguous buckets are read in one range read. A coarse bucket whose
 * finer rows may already have expired (its start is past the finer tier's retention, less a
 * minute's margin) is left as it is rather than rewritten from a partial set; so is everything
 * above it. Rolling the same site concurrently from two processes (a rebalance) converges:
 * the last roll of a bucket reads the latest finer rows.
 *
 * Capping (maxKeys) happens at every level, so a coarse row's dimension cells are those of a
 * top-k of top-ks: totals, sketches and revenue equal a direct merge of the minute rows
 * exactly; each dimension's cells sum to the same counts, with "(other)" absorbing the rest.
 */
import type { RollupStore } from './rollup-store.js';
import { TIER_MS, TIERS, type Rollup, type Tier } from './rollup.js';
import { bucketOf, mergeRollups } from './rollup-merge.js';

const DAY_MS = 86_400_000;

/** How long rows of each tier live, counted from their bucket start, in ms; null: forever. */
export type TierRetention = Readonly<Record<Tier, number | null>>;

/** The config's defaults (config.ts `rollups`): 35 days of minutes, 400 of quarters, 800 of hours, 3660 of days. */
export const DEFAULT_TIER_RETENTION: TierRetention = { minute: 35 * DAY_MS, quarter: 400 * DAY_MS, hour: 800 * DAY_MS, day: 3660 * DAY_MS };

/** Retention from the config's `rollups` section (days). */
export function tierRetentionFromDays(days: {
  readonly minuteRetentionDays: number; readonly quarterRetentionDays: number;
  readonly hourRetentionDays: number; readonly dayRetentionDays: number;
}): TierRetention {
  return {
    minute: days.minuteRetentionDays * DAY_MS,
    quarter: days.quarterRetentionDays * DAY_MS,
    hour: days.hourRetentionDays * DAY_MS,
    day: days.dayRetentionDays * DAY_MS,
  };
}

/**
 * A full retention from a partial one: null keeps every tier forever; absent tiers take
 * `defaults`.
 */
export function resolveRetention(given: Partial<TierRetention> | null | undefined, defaults: TierRetention): TierRetention {
  if (given === null) return { minute: null, quarter: null, hour: null, day: null };
  const out = { ...defaults };
  for (const tier of TIERS) {
    const v = given?.[tier];
    if (v !== undefined) out[tier] = v;
  }
  return out;
}

export interface RollTiersOptions {
  /** Sites rolled at the same time. Default 4. */
  readonly concurrency?: number;
  /** The stores' retention: buckets whose finer rows may be gone are skipped. Default: forever. */
  readonly retentionMs?: TierRetention | null;
  /** Wall clock for the retention check, ms. */
  readonly now?: () => number;
}

/** What a roll did: rows written per coarse tier, and coarse buckets skipped for retention. */
export interface RollSummary {
  readonly written: { quarter: number; hour: number; day: number };
  readonly skipped: number;
}

const LEVELS = [['minute', 'quarter'], ['quarter', 'hour'], ['hour', 'day']] as const;
/** A coarse bucket is skipped when its first finer row has less than this left to live. */
const RETENTION_MARGIN_MS = 60_000;

/**
 * Recompute the quarter, hour and day rows covering `minuteRows` (minute rows of any sites;
 * the last of several rows of one bucket wins, as in an upsert). Resolves once every coarse
 * row is written; rejects on the first store error (nothing is left inconsistent: a later
 * roll rewrites the same buckets). Throws RangeError on a row that is not a minute row.
 */
export async function rollTiers(
  store: Pick<RollupStore, 'read' | 'upsert'>, minuteRows: readonly Rollup[], maxKeys: number, options: RollTiersOptions = {},
): Promise<RollSummary> {
  const concurrency = options.concurrency ?? 4;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
  if (!Number.isInteger(maxKeys) || maxKeys < 1) throw new RangeError(`maxKeys must be a positive integer, got ${maxKeys}`);
  const bySite = new Map<string, Map<number, Rollup>>();
  for (const row of minuteRows) {
    if (row.tier !== 'minute') throw new RangeError(`rollTiers takes minute rows, got a ${row.tier} row of ${row.site}`);
    let rows = bySite.get(row.site);
    if (!rows) {
      rows = new Map();
      bySite.set(row.site, rows);
    }
    rows.set(row.bucketMs, row);
  }
  const retention = options.retentionMs ?? null;
  const now = (options.now ?? Date.now)();
  const written = { quarter: 0, hour: 0, day: 0 };
  let skipped = 0;

  const rollSite = async (site: string, minutes: Map<number, Rollup>) => {
    let fresh = minutes;
    for (const [finer, coarse] of LEVELS) {
      const length = TIER_MS[coarse];
      const keep = retention?.[finer] ?? null;
      const buckets = [...new Set([...fresh.keys()].map((b) => bucketOf(coarse, b)))].sort((a, b) => a - b);
      const live = buckets.filter((b) => keep === null || b + keep - RETENTION_MARGIN_MS > now);
      skipped += buckets.length - live.length;
      if (live.length === 0) return;
      const rows: Rollup[] = [];
      for (const run of contiguousRuns(live, length)) {
        const read = await store.read(site, finer, run[0]!, run.at(-1)! + length);
        const grouped = new Map<number, Map<number, Rollup>>(run.map((b) => [b, new Map()]));
        for (const r of read) grouped.get(bucketOf(coarse, r.bucketMs))?.set(r.bucketMs, r);
        // The rows just written win over what the read returned (it may lag behind them).
        for (const [b, r] of fresh) grouped.get(bucketOf(coarse, b))?.set(b, r);
        for (const [bucket, parts] of grouped) rows.push(mergeRollups([...parts.values()], site, coarse, bucket, maxKeys));
      }
      await store.upsert(rows);
      written[coarse] += rows.length;
      fresh = new Map(rows.map((r) => [r.bucketMs, r]));
    }
  };

  const sites = [...bySite];
  let next = 0;
  const worker = async () => {
    while (next < sites.length) {
      const [site, minutes] = sites[next++]!;
      await rollSite(site, minutes);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, sites.length) }, worker));
  return { written, skipped };
}


/**
 * A partition's tier roller for the aggregator: the quarter, hour and day rows above the minute
 * rows it is given, rolled at most every `coarseIntervalMs` and whenever `force` is set.
 *
 * Why not on every flush: a quarter row is the merge of up to 15 minute rows, an hour row of 4
 * quarter rows and a day row of 24 hour rows, every cell and sketch of every dimension, each
 * read back from the store; recomputing them on every flush (every second) of every site was
 * most of the aggregator's store reads and a large part of its CPU (measured by
 * bench:pipeline), and a live notice that waited for them waited for all of that. The coarse
 * rows then trail the minute rows by at most coarseIntervalMs, which queries never see: they
 * read coarse rows only for buckets the watermark calls final (query-engine.ts), and the
 * aggregator's store watermark never passes oldestOwedMs.
 *
 * Why a commit still finds every tier in step (DESIGN invariant 3, aggregator.ts): the
 * aggregator forces the roll in its checkpoint flushes, the only ones that commit, before the
 * commit. Work owed at a crash is owed for buckets written after the last commit, and a
 * successor rewrites every such bucket (it replays from the first offset of the oldest bucket
 * open at that commit), so it owes, and rolls, them again.
 */
export class TierRoller {
  /**
   * Minute rows written since the last roll, by site and bucket (the latest of each): the
   * coarse rows owed, and what the roll lays over its reads of the minute tier.
   */
  private owed = new Map<string, Map<number, Rollup>>();
  private lastRollMs: number;

  constructor(
    private readonly store: Pick<RollupStore, 'read' | 'upsert'>,
    private readonly maxKeys: number,
    private readonly options: RollTiersOptions & { readonly coarseIntervalMs: number; readonly now: () => number },
  ) {
    this.lastRollMs = options.now();
  }

  /**
   * The start of the oldest minute bucket whose coarser rows are owed (Infinity: none): a
   * watermark claiming a bucket final must not pass it, or a query would take a stale coarse
   * row for a final one.
   */
  get oldestOwedMs(): number {
    let oldest = Number.POSITIVE_INFINITY;
    for (const rows of this.owed.values()) for (const b of rows.keys()) if (b < oldest) oldest = b;
    return oldest;
  }

  /** Minute rows (site and bucket) whose coarser rows are owed. */
  get owing(): number {
    let n = 0;
    for (const rows of this.owed.values()) n += rows.size;
    return n;
  }

  /** Owes the coarser rows of `minuteRows`: call it before they are written (see aggregator.ts). */
  owe(minuteRows: readonly Rollup[]): void {
    for (const r of minuteRows) {
      if (r.tier !== 'minute') throw new RangeError(`the tier roller takes minute rows, got a ${r.tier} row of ${r.site}`);
      let rows = this.owed.get(r.site);
      if (!rows) {
        rows = new Map();
        this.owed.set(r.site, rows);
      }
      rows.set(r.bucketMs, r);
    }
  }

  /**
   * Rolls everything owed when due or forced, once the owed minute rows are written. Resolves
   * with the minute buckets whose coarser rows it rolled, by site (for live notices: the rows
   * above them changed), or an empty map. Calls must not overlap (the aggregator queues them
   * per partition).
   */
  async roll(force: boolean): Promise<ReadonlyMap<string, number[]>> {
    const now = this.options.now();
    if (this.owed.size === 0 || (!force && now - this.lastRollMs < this.options.coarseIntervalMs)) return new Map();
    // Cleared only once written: a failed roll stays owed, and the caller retries it.
    await rollTiers(this.store, [...this.owed.values()].flatMap((rows) => [...rows.values()]), this.maxKeys, this.options);
    const rolled = this.owed;
    this.owed = new Map();
    this.lastRollMs = now;
    return new Map([...rolled].map(([site, rows]) => [site, [...rows.keys()]]));
  }
}

/** Sorted bucket starts split where a bucket is missing: each run is one range read. */
function contiguousRuns(sorted: readonly number[], length: number): number[][] {
  const runs: number[][] = [];
  for (const b of sorted) {
    const last = runs.at(-1);
    if (last && b === last.at(-1)! + length) last.push(b);
    else runs.push([b]);
  }
  return runs;
}
