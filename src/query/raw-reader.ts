/**
 * The raw-archive path: answers filtered queries, which per-dimension rollups cannot answer
 * exactly (a cell of one dimension says nothing about another dimension's values of the same
 * events). Scans the archived events from `lookbackMs` before the UTC midnight at or before the
 * first span (see "Where the scan starts") to the end of the last, folds visits with
 * sessions.ts exactly as the aggregator does, and keeps the contributions of in-range events
 * that pass every filter:
 * - session dimensions are tested on the visit's entry values, event dimensions (page, event,
 *   prop:<key>) on the event's own, as rollup.ts attributes them;
 * - `exit_page` filters and breakdowns work on the exit deltas (+1 visit at the event's path,
 *   −1 at the previous event's path when it continues a visit);
 * - a goal filter keeps the goal part to completions; the base (the conversion rate's
 *   denominator) keeps every event passing the other filters.
 * Visitors are unioned in sketches of the same precisions as the rollups' (totals 14, cells 11),
 * so a filter on one value of a session dimension gives the numbers of that value's rollup cell.
 *
 * Which events: exactly those the active rollups count (raw-archive.ts, "Late marks"). Events
 * the aggregator judged late beyond the allowed lateness read as `late` and are skipped, in
 * range and in the warm-up alike (the aggregator never folded them into any visit). The mark
 * reaches the archive a little after the event (through the late lane and the event tap): for
 * that short moment a filtered query counts the late event. Days a reprocess recomputed have
 * their marks cleared, as their rollups now count those events.
 *
 * Where the scan starts. Visitor ids rotate at the UTC midnight M of the RECEIVED time
 * (ingest/visitor-id.ts), not of the event time, so a visit can cross M: an event timed just
 * before M but received after it has the id of the events after M. The fold must see every
 * counted event of such a visit, so it starts `lookbackMs` before M. Why that is enough: an
 * event received after M was counted only if its bucket was open, that is, its time was at
 * most allowedLatenessMs + one minute (the bucket) behind the partition's watermark then; the
 * watermark trails the newest event time by maxOutOfOrderMs, and the newest event time trails
 * the wall clock (≥ M) by at most idleAdvanceMs in a quiet partition (idle advance) and by the
 * sources' delivery delay and clock skew in a busy one. So
 *   lookbackMs ≥ allowedLatenessMs + maxOutOfOrderMs + idleAdvanceMs + 1 min,
 * and never less than MIN_RAW_LOOKBACK_MS (2 h), the allowance for delay and skew
 * (rawScanLookbackMs). Events before M - lookbackMs with the new id were late: never counted.
 * Folding extra events of the previous day's ids changes nothing in range (their ids differ),
 * and a visit that the fold sees starting at M - lookbackMs is never one an in-range event
 * continues, except in this case: an in-range event received shortly before M (a source clock
 * ahead of ours, by at most ingest.maxFutureSkewMs) carries the previous day's id, and the
 * fold sees that visit only from M - lookbackMs on. Events with no visitor (anonymous) fold
 * as visits of their own, wherever the scan starts.
 *
 * Stops with QUERY_TOO_LARGE after `maxEvents` events read (warm-up and late events included).
 */
import type { Goal } from '../../protocol/schema.js';
import { PRECISION } from '../aggregate/hyperloglog.js';
import type { Config } from '../config.js';
import type { ArchivedEvent, RawArchive } from '../aggregate/raw-archive.js';
import { DIMENSION_SKETCH_PRECISION, type Counts } from '../aggregate/rollup.js';
import { SessionFold, type EventContribution } from '../aggregate/sessions.js';
import type { EnrichedEvent } from '../ingest/enriched-event.js';
import { SluiceError } from '../errors.js';
import { newOutput, type Agg, type Output } from './aggregates.js';
import { compileGlob, type Matcher } from './glob.js';
import type { CompiledFilter, DimensionRef, QuerySpec } from './query-spec.js';
import { goalScope, newSpanResult, type SpanResult } from './rollup-reader.js';
import type { UtcRange } from './time-range.js';

const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;

/** The least lookback before a UTC midnight: room for sources' delivery delay and clock skew. */
export const MIN_RAW_LOOKBACK_MS = 2 * 3_600_000;

/** The scan's lookback before the UTC midnight for the aggregator's settings (see the header). */
export function rawScanLookbackMs(aggregate: Pick<Config['aggregate'], 'allowedLatenessMs' | 'maxOutOfOrderMs' | 'idleAdvanceMs'>): number {
  return Math.max(MIN_RAW_LOOKBACK_MS, aggregate.allowedLatenessMs + aggregate.maxOutOfOrderMs + aggregate.idleAdvanceMs + MINUTE_MS);
}

export interface RawReadOptions {
  readonly maxEvents: number;
  readonly sessionTimeoutMs: number;
  /** How long before the UTC midnight at or before the first span the fold starts: rawScanLookbackMs(config.aggregate). Default MIN_RAW_LOOKBACK_MS. */
  readonly lookbackMs?: number;
}

export interface RawReadResult {
  readonly spans: SpanResult[];
  readonly eventsScanned: number;
}

interface CompiledGoal {
  readonly goal: Goal;
  readonly test: (e: EnrichedEvent) => boolean;
}

function compileGoal(goal: Goal): CompiledGoal {
  if (goal.page !== undefined) {
    const m: Matcher = compileGlob(goal.page);
    return { goal, test: (e) => e.type === 'pageview' && m(e.path) };
  }
  const props = Object.entries(goal.props ?? {});
  return {
    goal,
    test: (e) => e.type === 'event' && e.name === goal.event
      && props.every(([k, v]) => Object.prototype.hasOwnProperty.call(e.props, k) && String(e.props[k]) === v),
  };
}

function valueOf(ref: DimensionRef, c: EventContribution<EnrichedEvent>): string | null {
  switch (ref.kind) {
    case 'session': return c.contribution.entry[ref.name];
    case 'event': return c.values[ref.name];
    case 'prop': {
      const props = c.event.props;
      return Object.prototype.hasOwnProperty.call(props, ref.key) ? String(props[ref.key]) : null;
    }
    default: return null;
  }
}

const completion = (e: EnrichedEvent): Counts => ({
  pageviews: e.type === 'pageview' ? 1 : 0, events: e.type === 'event' ? 1 : 0, visits: 0, bounces: 0, durationMs: 0,
});

function addGoal(agg: Agg, e: EnrichedEvent, withRevenue: boolean): void {
  agg.addCounts(completion(e));
  agg.addVisitor(e.visitorId, DIMENSION_SKETCH_PRECISION);
  if (withRevenue && e.revenue) agg.addRevenue(e.revenue.currency, e.revenue.amount);
}

/** Scan and aggregate. `spans` are disjoint and in time order (a comparison period first, then the range). */
export async function readRaw(archive: RawArchive, spec: QuerySpec, spans: readonly UtcRange[], options: RawReadOptions): Promise<RawReadResult> {
  const scope = goalScope(spec);
  const goalMode = scope !== null;
  const goals = (scope ?? []).map(compileGoal);
  const filterGoals = spec.goalFilter ? new Set(spec.goalFilter) : null;
  const results = spans.map(() => newSpanResult(goalMode));
  if (spans.length === 0) return { spans: results, eventsScanned: 0 };
  const eventFilters: CompiledFilter[] = spec.filters.filter((f) => f.ref.kind !== 'exit');
  const exitFilters: CompiledFilter[] = spec.filters.filter((f) => f.ref.kind === 'exit');
  const ref = spec.dimension?.ref ?? null;
  const exitMode = ref?.kind === 'exit' || exitFilters.length > 0;

  const lookbackMs = options.lookbackMs ?? MIN_RAW_LOOKBACK_MS;
  if (!Number.isSafeInteger(lookbackMs) || lookbackMs < 0) throw new RangeError(`lookbackMs must be a non-negative integer, got ${lookbackMs}`);
  const scanFrom = Math.floor(spans[0]!.fromMs / DAY_MS) * DAY_MS - lookbackMs;
  const scanTo = spans[spans.length - 1]!.toMs;
  const fold = new SessionFold<ArchivedEvent>({ sessionTimeoutMs: options.sessionTimeoutMs });
  let scanned = 0;
  let span = 0;

  const cell = (result: SpanResult, key: string): Output => {
    let out = result.cells.get(key);
    if (!out) {
      out = newOutput(goalMode);
      result.cells.set(key, out);
    }
    return out;
  };

  for await (const e of archive.read(spec.site, scanFrom, scanTo)) {
    if (++scanned > options.maxEvents) {
      throw new SluiceError('QUERY_TOO_LARGE', `a filtered query reads raw events, and this one would read more than ${options.maxEvents}; narrow the date range`);
    }
    if (e.late) continue; // not counted by the aggregator, nor part of any visit it folded
    const c = fold.push(e);
    if (!c) continue;
    while (span < spans.length && e.ts >= spans[span]!.toMs) span++;
    if (span >= spans.length) break;
    if (e.ts < spans[span]!.fromMs) continue; // warm-up: folds the visit, counts nothing
    const result = results[span]!;
    if (!eventFilters.every((f) => f.test(valueOf(f.ref, c)))) continue;

    if (exitMode) {
      const deltas: Array<[string, number]> = [[c.contribution.exitPage, 1]];
      if (c.contribution.exitFrom !== null) deltas.push([c.contribution.exitFrom, -1]);
      for (const [path, visits] of deltas) {
        if (!exitFilters.every((f) => f.test(path))) continue;
        const delta: Counts = { pageviews: 0, events: 0, visits, bounces: 0, durationMs: 0 };
        result.total.base.addCounts(delta);
        if (ref?.kind === 'exit') cell(result, path).base.addCounts(delta);
      }
      continue;
    }

    result.total.base.addCounts(c.contribution);
    result.total.base.addVisitor(e.visitorId, PRECISION);
    let completes: CompiledGoal[] = [];
    if (goalMode) {
      completes = goals.filter((g) => g.test(e));
      const counted = filterGoals ? completes.some((g) => filterGoals.has(g.goal)) : completes.length > 0;
      if (counted) addGoal(result.total.goal!, e, completes.some((g) => g.goal.event !== undefined));
    }
    if (!ref) continue;
    if (ref.kind === 'goal') {
      for (const g of completes) addGoal(cell(result, g.goal.name).goal!, e, g.goal.event !== undefined);
      continue;
    }
    const key = valueOf(ref, c);
    if (key === null) continue;
    const out = cell(result, key);
    out.base.addCounts(c.contribution);
    out.base.addVisitor(e.visitorId, DIMENSION_SKETCH_PRECISION);
    if (out.goal && completes.some((g) => !filterGoals || filterGoals.has(g.goal))) {
      addGoal(out.goal, e, completes.some((g) => g.goal.event !== undefined));
    }
  }
  return { spans: results, eventsScanned: scanned };
}
