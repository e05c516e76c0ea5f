/**
 * Merging rollup rows (rollup.ts): the one place that says how rows add up. The tier roller
 * merges minute rows into quarter, hour and day rows; the query engine merges the rows a
 * question covers; the aggregator caps its dimension cells with `capDimension`.
 *
 * Invariants (tested in rollup-merge.test.ts):
 * - counts, bots and revenue are summed exactly, so merging is commutative and associative on
 *   them: any grouping of the same rows gives the same numbers (revenue is summed in millionths
 *   of the currency unit, integers, so even its float sums do not depend on order);
 * - visitor sketches are unioned (HyperLogLog register max): commutative, associative and
 *   idempotent — the bucket's at PRECISION (14), each dimension cell's at
 *   DIMENSION_SKETCH_PRECISION (11); a sketch of another precision is an error, never folded;
 * - capping (`capDimension`) is deterministic but, like any top-k, not associative: capping
 *   merged rows may keep other values than merging capped rows would. Only the "(other)" cell
 *   absorbs the difference; totals never depend on capping.
 * - the output is canonical: dimensions in DIMENSIONS order (unknown names after, by code
 *   unit), cells ranked, revenue keys sorted, and cells whose counts are all zero and that have
 *   no visitors dropped (they add nothing to any sum). Merging one canonical row gives it back.
 */
import { HyperLogLog, PRECISION } from './hyperloglog.js';
import {
  DIMENSION_SKETCH_PRECISION, DIMENSIONS, OTHER_KEY, TIER_MS, zeroCounts,
  type Counts, type DimCell, type DimensionName, type Rollup, type Tier,
} from './rollup.js';

/**
 * A dimension cell being built: counts plus a live sketch, so that adding visitors or merging
 * many cells never re-encodes. `visitors` is null where rollup.ts says a cell has none
 * (exit_page, "(other)") or where no visitor was added yet. Sketches are at
 * DIMENSION_SKETCH_PRECISION.
 */
export interface MutableDimCell extends Counts {
  visitors: HyperLogLog | null;
}

/** A new zero cell; `withVisitors`: give it an empty sketch at DIMENSION_SKETCH_PRECISION. */
export function emptyCell(withVisitors: boolean): MutableDimCell {
  return { pageviews: 0, events: 0, visits: 0, bounces: 0, durationMs: 0, visitors: withVisitors ? HyperLogLog.empty(DIMENSION_SKETCH_PRECISION) : null };
}

/** `into += from`, field by field. */
export function addCounts(into: Counts, from: Counts): void {
  into.pageviews += from.pageviews;
  into.events += from.events;
  into.visits += from.visits;
  into.bounces += from.bounces;
  into.durationMs += from.durationMs;
}

/** Throws RangeError unless bucketMs is a safe integer multiple of the tier's length. */
export function checkBucket(tier: Tier, bucketMs: number): void {
  const length = TIER_MS[tier];
  if (length === undefined) throw new RangeError(`unknown tier ${JSON.stringify(tier)}`);
  if (!Number.isSafeInteger(bucketMs) || bucketMs % length !== 0) {
    throw new RangeError(`bucketMs ${bucketMs} is not the start of a ${tier} bucket`);
  }
}

/** Start of the `tier` bucket holding `ms` (UTC; floor, also for times before 1970). */
export function bucketOf(tier: Tier, ms: number): number {
  const length = TIER_MS[tier];
  return Math.floor(ms / length) * length;
}

/**
 * A row with nothing in it: zero counts, an empty p=14 sketch, no dimensions, no revenue.
 * Throws RangeError when bucketMs is not a bucket start of `tier`.
 */
export function emptyRollup(site: string, tier: Tier, bucketMs: number): Rollup {
  checkBucket(tier, bucketMs);
  return { site, tier, bucketMs, totals: zeroCounts(), visitors: HyperLogLog.empty().toBytes(), dims: {}, revenue: {}, bots: 0 };
}

const score = (c: Counts) => c.pageviews + c.events + Math.abs(c.visits);
const isZero = (c: Counts) => c.pageviews === 0 && c.events === 0 && c.visits === 0 && c.bounces === 0 && c.durationMs === 0;
const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Cap one dimension to its top `limit` values.
 *
 * - Rank: pageviews + events + |visits|, descending; ties by key in code-unit order. The
 *   OTHER_KEY cell never competes: a pre-existing one (from rows capped earlier) is summed
 *   into the new OTHER_KEY cell with every value beyond the top `limit`.
 * - The OTHER_KEY cell sums counts only and has no visitors sketch (a union of the rest would
 *   be meaningless once capped). It is present only when its counts are not all zero, so the
 *   result has at most `limit + 1` cells.
 * - Cells with all counts zero and no non-empty sketch are dropped before ranking.
 * - Kept cells keep their sketch: MutableDimCell sketches are encoded, DimCell bytes are passed
 *   through as they are (not re-validated here). Input is not modified.
 * - Result keys are set as own data properties (setOwn), so a value such as `__proto__` is a plain own key.
 * Throws RangeError unless `limit` is a positive integer.
 */
export function capDimension(cells: ReadonlyMap<string, CappableCell> | Readonly<Record<string, DimCell>>, limit: number): Record<string, DimCell> {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`dimension cap must be a positive integer, got ${limit}`);
  let other: Counts | null = null;
  const keys: string[] = [];
  const kept: CappableCell[] = [];
  // Plain loops, no closures: this runs for every dimension of every row built.
  if (cells instanceof Map) {
    for (const [key, cell] of cells as ReadonlyMap<string, CappableCell>) {
      if (key === OTHER_KEY) other = countsOf(cell);
      else if (!isZero(cell) || hasVisitors(cell.visitors)) {
        keys.push(key);
        kept.push(cell);
      }
    }
  } else {
    const record = cells as Readonly<Record<string, DimCell>>;
    for (const key in record) {
      if (!Object.prototype.hasOwnProperty.call(record, key)) continue;
      const cell = record[key]!;
      if (key === OTHER_KEY) other = countsOf(cell);
      else if (!isZero(cell) || hasVisitors(cell.visitors)) {
        keys.push(key);
        kept.push(cell);
      }
    }
  }
  const order = rankOrder(keys, kept);
  const out: Record<string, DimCell> = {};
  for (let r = 0; r < order.length; r++) {
    const i = order[r]!;
    if (r < limit) {
      setOwn(out, keys[i]!, plainCell(kept[i]!));
    } else {
      other ??= zeroCounts();
      addCounts(other, kept[i]!);
    }
  }
  const rest = other as Counts | null;
  if (rest !== null && !isZero(rest)) setOwn(out, OTHER_KEY, countsOf(rest));
  return out;
}

/** Indexes of `cells` in rank order: score descending, then key in code-unit order (total: keys are distinct). */
function rankOrder(keys: readonly string[], cells: readonly Counts[]): number[] {
  const n = keys.length;
  const scores = new Float64Array(n);
  for (let i = 0; i < n; i++) scores[i] = score(cells[i]!);
  const order = new Array<number>(n);
  for (let i = 0; i < n; i++) order[i] = i;
  if (n <= 16) {
    // Insertion sort: most minute rows' dimensions have a handful of cells, where sort()'s set-up dominates.
    for (let i = 1; i < n; i++) {
      const x = order[i]!;
      let j = i - 1;
      while (j >= 0 && ranksBefore(scores, keys, x, order[j]!)) {
        order[j + 1] = order[j]!;
        j--;
      }
      order[j + 1] = x;
    }
  } else {
    order.sort((i, j) => (ranksBefore(scores, keys, i, j) ? -1 : 1));
  }
  return order;
}

function ranksBefore(scores: Float64Array, keys: readonly string[], i: number, j: number): boolean {
  return scores[i]! > scores[j]! || (scores[i] === scores[j] && keys[i]! < keys[j]!);
}

/**
 * `record[key] = value` as an own, enumerable data property whatever the key: plain assignment
 * of `__proto__` would set the prototype instead (Object.fromEntries does this right, but
 * costs ten times an assignment, and rows are built by the hundred thousand).
 */
export function setOwn<T>(record: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__') Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
  else record[key] = value;
}

/** What capDimension takes: counts and a sketch, live or encoded (or none). */
export type CappableCell = Counts & { readonly visitors?: Uint8Array | HyperLogLog | null };

function hasVisitors(v: Uint8Array | HyperLogLog | null | undefined): boolean {
  if (!v) return false;
  // An encoded sketch with no pairs is 4 bytes: [1, sparse, p, count 0].
  if (v instanceof HyperLogLog) return !v.isEmpty();
  return !(v.length === 0 || (v.length === 4 && v[1] === 1 && v[3] === 0));
}

function countsOf(c: Counts): Counts {
  return { pageviews: c.pageviews, events: c.events, visits: c.visits, bounces: c.bounces, durationMs: c.durationMs };
}

function plainCell(cell: CappableCell): DimCell {
  const out: DimCell = countsOf(cell);
  if (cell.visitors instanceof HyperLogLog) out.visitors = cell.visitors.toBytes();
  else if (cell.visitors) out.visitors = cell.visitors;
  return out;
}

/** Revenue is summed in millionths of a currency unit: integer sums do not depend on order. */
const REVENUE_SCALE = 1_000_000;

/**
 * Merges rows one at a time with live sketches (no re-encoding per row), then `finish`es into
 * one canonical row. For the tier roller and the query engine; the aggregator may use it to
 * restate a bucket from parts. Memory: the union of every added row's cells, uncapped until
 * `finish` (capping earlier would make the result depend on the order rows came in).
 *
 * `add` throws (HyperLogLogFormatError / RangeError) on a sketch that does not decode or has
 * the wrong precision; the accumulator is unchanged by the failing row's sketches only up to
 * the point of failure, so discard it after an error.
 */
export class RollupAccumulator {
  readonly totals: Counts = zeroCounts();
  /** Union of the bucket-level visitor sketches (PRECISION). */
  readonly visitors: HyperLogLog = HyperLogLog.empty(PRECISION);
  private readonly dimensions = new Map<string, Map<string, MutableDimCell>>();
  /** event name → currency → millionths. */
  private readonly revenueMicros = new Map<string, Map<string, number>>();
  private botCount = 0;
  private rowCount = 0;

  /** The identity of the row `finish` returns; RangeError when bucketMs is not a `tier` bucket start. */
  constructor(readonly site: string, readonly tier: Tier, readonly bucketMs: number) {
    checkBucket(tier, bucketMs);
  }

  /** Rows added so far. */
  get rows(): number {
    return this.rowCount;
  }

  get bots(): number {
    return this.botCount;
  }

  /**
   * Adds a row of any site, tier and bucket (the caller decides what belongs together). An
   * empty `visitors` array is read as an empty sketch.
   */
  add(row: Rollup): this {
    addCounts(this.totals, row.totals);
    // mergeBytes checks the precision (PRECISION) and parses nothing into objects.
    if (row.visitors.length > 0) this.visitors.mergeBytes(row.visitors);
    const dims = row.dims as Readonly<Record<string, Readonly<Record<string, DimCell>> | undefined>>;
    for (const name in dims) {
      const cells = dims[name];
      if (!cells || !Object.prototype.hasOwnProperty.call(dims, name)) continue;
      let into = this.dimensions.get(name);
      if (!into) {
        into = new Map();
        this.dimensions.set(name, into);
      }
      for (const key in cells) {
        if (!Object.prototype.hasOwnProperty.call(cells, key)) continue;
        const cell = cells[key]!;
        let mine = into.get(key);
        if (!mine) {
          mine = emptyCell(false);
          into.set(key, mine);
        }
        addCounts(mine, cell);
        if (cell.visitors && cell.visitors.length > 0 && key !== OTHER_KEY) {
          if (mine.visitors) mine.visitors.mergeBytes(cell.visitors);
          else mine.visitors = HyperLogLog.fromBytes(cell.visitors, DIMENSION_SKETCH_PRECISION);
        }
      }
    }
    for (const event in row.revenue) {
      if (!Object.prototype.hasOwnProperty.call(row.revenue, event)) continue;
      const byCurrency = row.revenue[event]!;
      let into = this.revenueMicros.get(event);
      if (!into) {
        into = new Map();
        this.revenueMicros.set(event, into);
      }
      for (const currency in byCurrency) {
        if (!Object.prototype.hasOwnProperty.call(byCurrency, currency)) continue;
        into.set(currency, (into.get(currency) ?? 0) + Math.round(byCurrency[currency]! * REVENUE_SCALE));
      }
    }
    this.botCount += row.bots;
    this.rowCount++;
    return this;
  }

  /** The live cells of one dimension (empty when none): read them, do not change them. */
  cells(dimension: DimensionName): ReadonlyMap<string, MutableDimCell> {
    return this.dimensions.get(dimension) ?? new Map();
  }

  /** Revenue so far: event name → currency → amount, keys sorted. */
  revenue(): Record<string, Record<string, number>> {
    const events = [...this.revenueMicros.keys()].sort(byCodeUnit);
    return Object.fromEntries(events.map((event) => {
      const byCurrency = this.revenueMicros.get(event)!;
      const currencies = [...byCurrency.keys()].sort(byCodeUnit);
      return [event, Object.fromEntries(currencies.map((c) => [c, byCurrency.get(c)! / REVENUE_SCALE]))];
    }));
  }

  /**
   * The merged row, each dimension capped to `maxKeys` values (capDimension); dimensions left
   * without cells are absent. Does not consume the accumulator: more rows may be added after.
   */
  finish(maxKeys: number): Rollup {
    const names = [...this.dimensions.keys()].sort(byDimensionOrder);
    const dims: Array<[string, Record<string, DimCell>]> = [];
    for (const name of names) {
      const capped = capDimension(this.dimensions.get(name)!, maxKeys);
      if (Object.keys(capped).length > 0) dims.push([name, capped]);
    }
    return {
      site: this.site,
      tier: this.tier,
      bucketMs: this.bucketMs,
      totals: countsOf(this.totals),
      visitors: this.visitors.toBytes(),
      dims: Object.fromEntries(dims) as Rollup['dims'],
      revenue: this.revenue(),
      bots: this.botCount,
    };
  }
}

const DIMENSION_ORDER = new Map<string, number>(DIMENSIONS.map((d, i) => [d, i]));

function byDimensionOrder(a: string, b: string): number {
  const ia = DIMENSION_ORDER.get(a) ?? DIMENSIONS.length;
  const ib = DIMENSION_ORDER.get(b) ?? DIMENSIONS.length;
  return ia - ib || byCodeUnit(a, b);
}

/**
 * The row of (site, tier, bucketMs) that sums `rows` (any tiers; typically the finer rows the
 * bucket covers): counts, bots and revenue summed, sketches unioned, every dimension merged
 * and capped to `maxKeys`. No rows gives emptyRollup. Throws on undecodable sketches and on a
 * bucketMs that is not a `tier` bucket start.
 */
export function mergeRollups(rows: readonly Rollup[], site: string, tier: Tier, bucketMs: number, maxKeys: number): Rollup {
  const acc = new RollupAccumulator(site, tier, bucketMs);
  for (const row of rows) acc.add(row);
  return acc.finish(maxKeys);
}
