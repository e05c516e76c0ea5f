/**
 * The rollup path: answers a query without filters from the rollup rows the tier planner picks
 * (tier-plan.ts), merged per output. Counts are summed and sketches unioned exactly as
 * rollup-merge.ts merges rows, restricted to the one dimension the query asks for (merging
 * every dimension of every row would cost the rest for nothing).
 *
 * Goals over rollups: a page goal is the union of the `page` cells whose path matches its
 * glob (their pageviews; see pageviewsOnly for its visitors); an event goal the `event` cell of its name, or with one property the `prop` cell
 * propKey(event, key, value); revenue is the rows' revenue of the goal's event name. Several
 * goals together take each matching cell once.
 *
 * Reads name the parts they need (RollupStore `parts`): every row's head (totals, visitors,
 * revenue), plus the one dimension a breakdown asks for and the dimensions its goals match
 * cells of. A series or totals query reads heads only.
 */
import type { Goal } from '../../protocol/schema.js';
import { OTHER_KEY, propKey, splitPropKey, TIER_MS, type DimCell, type DimensionName, type Rollup, type Tier } from '../aggregate/rollup.js';
import type { RollupParts, RollupStore } from '../aggregate/rollup-store.js';
import { newOutput, type Output } from './aggregates.js';
import { compileGlob, type Matcher } from './glob.js';
import type { QuerySpec } from './query-spec.js';
import { coverSpan, readsOf, type TierWindows } from './tier-plan.js';
import type { UtcRange } from './time-range.js';

/** The outputs of one span (the whole range, or one series point). */
export interface SpanResult {
  readonly total: Output;
  /** Breakdown cells by value (goal names for a goal breakdown); "(other)" never appears here. */
  readonly cells: Map<string, Output>;
  /** What the rows had already folded into "(other)" at aggregation time; null when nothing. */
  other: Output | null;
}

export interface ReadResult {
  readonly spans: SpanResult[];
  readonly tiers: Set<Tier>;
  /**
   * Per range of `wholes`, its total read from the coarsest rows covering it; null where the
   * caller should merge its spans' totals instead (see readRollups).
   */
  readonly wholes: Array<SpanResult | null>;
}

export const newSpanResult = (goalMode: boolean): SpanResult => ({ total: newOutput(goalMode), cells: new Map(), other: null });

/** The goals the query's goal part counts: the goal filter's, or all for a goal breakdown; null outside goal mode. */
export function goalScope(spec: QuerySpec): readonly Goal[] | null {
  if (spec.goalFilter) return spec.goalFilter;
  if (spec.dimension?.ref.kind === 'goal') return spec.goals;
  return null;
}

interface GoalCellRef {
  readonly dim: 'page' | 'event' | 'prop';
  readonly key: string;
}

/** Finds which cells of a row complete which goals; page matches are memoised by path. */
class GoalMatcher {
  private readonly pageGoals: Array<{ index: number; match: Matcher }> = [];
  private readonly pageMemo = new Map<string, number[]>();
  /** Events with a goal of their own (no properties) in scope. */
  readonly plainEvents: ReadonlySet<string>;

  constructor(readonly goals: readonly Goal[]) {
    this.plainEvents = new Set(goals.filter((g) => g.event !== undefined && Object.keys(g.props ?? {}).length === 0).map((g) => g.event!));
    goals.forEach((g, index) => {
      if (g.page !== undefined) this.pageGoals.push({ index, match: compileGlob(g.page) });
    });
  }

  /** Goal indexes completed by a page cell's path. */
  pageGoalsOf(path: string): number[] {
    let hit = this.pageMemo.get(path);
    if (!hit) {
      hit = this.pageGoals.filter((p) => p.match(path)).map((p) => p.index);
      if (this.pageMemo.size < 100_000) this.pageMemo.set(path, hit);
    }
    return hit;
  }

  /** The cell of an event goal (its event cell, or the prop cell of its one property). */
  eventCell(g: Goal): GoalCellRef | null {
    if (g.event === undefined) return null;
    const props = Object.entries(g.props ?? {});
    if (props.length === 0) return { dim: 'event', key: g.event };
    const [k, v] = props[0]!;
    return { dim: 'prop', key: propKey(g.event, k, v) };
  }
}

/**
 * A page cell as a page goal counts it: its pageviews. Its sketch also holds visitors whose only
 * event on the page was a custom event (rollup.ts gives event dimensions the event's visitor), so
 * over rollups a page goal's unique conversions can include them; the raw path counts pageviews'.
 */
function pageviewsOnly(cell: DimCell): DimCell {
  const out: DimCell = { pageviews: cell.pageviews, events: 0, visits: 0, bounces: 0, durationMs: 0 };
  if (cell.visitors) out.visitors = cell.visitors;
  return out;
}

function addCell(out: Output, cell: DimCell, part: 'base' | 'goal'): void {
  const agg = part === 'goal' ? out.goal! : out.base;
  agg.addCounts(cell);
  if (cell.visitors && cell.visitors.length > 0) agg.addSketch(cell.visitors);
  else if (cell.pageviews !== 0 || cell.events !== 0 || cell.visits !== 0) agg.markUnknown();
}

/**
 * Read and merge the rows covering each span. `spans` are disjoint and in time order; a row
 * counts in the span its bucket starts in (segments never cross spans).
 *
 * `wholes` (the ranges a series' spans partition, for its totals): a series total is the union
 * of its points, and merging 720 hourly sketches costs far more than merging the 30 day rows of
 * the same range, which hold the same registers (a union is a register-wise max, so any
 * grouping of the same buckets gives the same sketch, bytes and count) and the same sums. So a
 * whole range whose own cover has at most a quarter of its spans' rows is read from that cover,
 * head only, alongside; others get null. Only without goals or a dimension: cells are capped per
 * row, so coarser rows may fold other values into "(other)" than the finer ones did.
 */
export async function readRollups(
  store: RollupStore, spec: QuerySpec, spans: readonly UtcRange[], windows: TierWindows, wholes: readonly UtcRange[] = [],
): Promise<ReadResult> {
  const goals = goalScope(spec);
  const goalMode = goals !== null;
  const results = spans.map(() => newSpanResult(goalMode));
  const segments = spans.flatMap((s) => coverSpan(s.fromMs, s.toMs, windows));
  const reads = readsOf(segments);
  const tiers = new Set<Tier>(reads.map((r) => r.tier));
  const parts = partsOf(spec, goals);
  const wholeCovers = wholes.map((w) => {
    if (goalMode || spec.dimension) return null;
    const cover = coverSpan(w.fromMs, w.toMs, windows);
    const inside = (seg: { fromMs: number; toMs: number }) => seg.fromMs < w.toMs && seg.toMs > w.fromMs;
    return rowsIn(cover) * 4 <= rowsIn(segments.filter(inside)) ? readsOf(cover) : null;
  });
  for (const cover of wholeCovers) for (const r of cover ?? []) tiers.add(r.tier);
  const matcher = goals ? new GoalMatcher(goals) : null;
  const starts = spans.map((s) => s.fromMs);
  const take = (rows: readonly Rollup[]) => {
    for (const row of rows) {
      const i = spanIndex(starts, row.bucketMs);
      if (i < 0 || row.bucketMs >= spans[i]!.toMs) continue;
      accumulate(row, results[i]!, spec, matcher);
    }
  };
  const wholeResults = wholes.map((): SpanResult | null => null);
  const wholeReads = wholeCovers.flatMap((cover, i) => {
    if (!cover) return [];
    const w = wholes[i]!;
    const out = newSpanResult(false);
    wholeResults[i] = out;
    return cover.map((r) => ({ r, take: (rows: readonly Rollup[]) => {
      for (const row of rows) if (row.bucketMs >= w.fromMs && row.bucketMs < w.toMs) accumulate(row, out, spec, null);
    } }));
  });
  // Each read is merged in as soon as it arrives, while the others are still on the wire:
  // merging does not depend on the order rows come in (sums, sketch unions, cells by key).
  await Promise.all([
    ...reads.map((r) => store.read(spec.site, r.tier, r.fromMs, r.toMs, parts).then(take)),
    ...wholeReads.map(({ r, take: into }) => store.read(spec.site, r.tier, r.fromMs, r.toMs, HEAD_ONLY).then(into)),
  ]);
  return { spans: results, tiers, wholes: wholeResults };
}

const HEAD_ONLY: RollupParts = { dims: [] };

/** How many rows segments cover (the fallback edge's partial buckets count as one each). */
function rowsIn(segments: ReadonlyArray<{ readonly tier: Tier; readonly fromMs: number; readonly toMs: number }>): number {
  let n = 0;
  for (const s of segments) n += Math.max(1, Math.ceil((s.toMs - s.fromMs) / TIER_MS[s.tier]));
  return n;
}

/** The dimensions `accumulate` looks at for this query: nothing else is read. */
export function partsOf(spec: QuerySpec, goals: readonly Goal[] | null): RollupParts {
  const dims = new Set<DimensionName>();
  for (const g of goals ?? []) {
    if (g.page !== undefined) dims.add('page');
    if (g.event !== undefined) dims.add(Object.keys(g.props ?? {}).length === 0 ? 'event' : 'prop');
  }
  const ref = spec.dimension?.ref;
  if (ref?.kind === 'prop') dims.add('prop');
  else if (ref?.kind === 'exit') dims.add('exit_page');
  else if (ref?.kind === 'session' || ref?.kind === 'event') dims.add(ref.name);
  return { dims: [...dims] };
}

/** Index of the last span starting at or before `ms`; −1 when none. */
function spanIndex(starts: readonly number[], ms: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (starts[mid]! <= ms) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

function cellOf(result: SpanResult, key: string, goalMode: boolean): Output {
  let out = result.cells.get(key);
  if (!out) {
    out = newOutput(goalMode);
    result.cells.set(key, out);
  }
  return out;
}

function accumulate(row: Rollup, result: SpanResult, spec: QuerySpec, matcher: GoalMatcher | null): void {
  const goalMode = matcher !== null;
  result.total.base.addCounts(row.totals);
  if (row.visitors.length > 0) result.total.base.addSketch(row.visitors);
  const ref = spec.dimension?.ref;

  if (matcher) {
    const goals = matcher.goals;
    // Each matching cell once for the total; per goal for a goal breakdown.
    const perGoal: Array<Array<{ cell: DimCell }>> | null = ref?.kind === 'goal' ? goals.map(() => []) : null;
    const union = new Map<string, DimCell>();
    const pages = row.dims.page ?? {};
    for (const [path, cell] of Object.entries(pages)) {
      if (path === OTHER_KEY) continue;
      const hit = matcher.pageGoalsOf(path);
      if (hit.length === 0) continue;
      // A page cell also counts the custom events sent from the page: a page goal is its pageviews.
      const views = pageviewsOnly(cell);
      union.set(`page\u0000${path}`, views);
      if (perGoal) for (const gi of hit) perGoal[gi]!.push({ cell: views });
    }
    const revenueEvents = new Set<string>();
    goals.forEach((g, gi) => {
      const refCell = matcher.eventCell(g);
      if (!refCell) return;
      const cells = refCell.dim === 'event' ? row.dims.event : row.dims.prop;
      const cell = cells?.[refCell.key];
      if (cell) {
        // A property goal's events are among its event's: with that event's plain goal in scope the union has them.
        if (refCell.dim === 'event' || !matcher.plainEvents.has(g.event!)) union.set(`${refCell.dim}\u0000${refCell.key}`, cell);
        perGoal?.[gi]!.push({ cell });
      }
      revenueEvents.add(g.event!);
      if (perGoal) {
        const revenue = row.revenue[g.event!];
        if (revenue) cellOf(result, g.name, true).goal!.addRevenueMap(revenue);
      }
    });
    for (const cell of union.values()) addCell(result.total, cell, 'goal');
    for (const name of revenueEvents) {
      const revenue = row.revenue[name];
      if (revenue) result.total.goal!.addRevenueMap(revenue);
    }
    if (perGoal) {
      goals.forEach((g, gi) => {
        const out = cellOf(result, g.name, true);
        for (const { cell } of perGoal[gi]!) addCell(out, cell, 'goal');
      });
    }
    if (ref?.kind === 'goal' || !ref) return;
  }

  if (!ref) return;
  if (ref.kind === 'prop') {
    for (const [key, cell] of Object.entries(row.dims.prop ?? {})) {
      // The prop dimension's "(other)" mixes every key: it cannot be attributed to this one.
      if (key === OTHER_KEY) continue;
      const parts = splitPropKey(key);
      if (!parts || parts.key !== ref.key) continue;
      addCell(cellOf(result, parts.value, goalMode), cell, 'base');
    }
    return;
  }
  const name = ref.kind === 'exit' ? 'exit_page' : ref.kind === 'goal' ? null : ref.name;
  if (name === null) return;
  for (const [value, cell] of Object.entries(row.dims[name] ?? {})) {
    if (value === OTHER_KEY) {
      result.other ??= newOutput(goalMode);
      result.other.base.addCounts(cell);
      result.other.base.markUnknown();
      continue;
    }
    const out = cellOf(result, value, goalMode);
    out.base.addCounts(cell);
    if (cell.visitors && cell.visitors.length > 0) out.base.addSketch(cell.visitors);
    else if (ref.kind !== 'exit') out.base.markUnknown();
  }
}
