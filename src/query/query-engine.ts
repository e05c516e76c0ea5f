/**
 * The query engine: runs a checked QuerySpec (query-spec.ts) against the rollups (no filters)
 * or the raw archive (filters), then shapes the response — series points, ranked and paged
 * breakdown rows with their "(other)" row, totals, the previous period — with the watermark
 * read before any row (so a bucket the response calls final is in what it read).
 */
import {
  QUERY_LIMITS,
  type QueryBreakdownRow, type QueryMetrics, type QueryPointRow, type QueryRequest, type QueryResponse, type QueryRow,
} from '../../protocol/query-schema.js';
import { STANDARD_ERROR, standardErrorOf } from '../aggregate/hyperloglog.js';
import type { RawArchive } from '../aggregate/raw-archive.js';
import { DIMENSION_SKETCH_PRECISION, TIER_MS, type Tier } from '../aggregate/rollup.js';
import type { RollupStore } from '../aggregate/rollup-store.js';
import { SluiceError } from '../errors.js';
import { mergeOutput, metricsOf, newOutput, rankValue, type Output } from './aggregates.js';
import { buildSpec, encodeCursor, type QuerySpec } from './query-spec.js';
import { readRaw } from './raw-reader.js';
import { splitFixedOffsetIntervals } from './fixed-offset-intervals.js';
import { goalScope, readRollups, type SpanResult } from './rollup-reader.js';
import type { SiteSettingsSource } from './site-settings.js';
import { TIERS_COARSE_FIRST, tierWindows, type RetentionDays } from './tier-plan.js';
import { describeRange, splitIntervals, type IntervalPiece, type UtcRange } from './time-range.js';

export interface QueryEngineDeps {
  readonly store: RollupStore;
  /** Without an archive, filtered queries fail with QUERY_INVALID. */
  readonly archive?: RawArchive;
  readonly settings: SiteSettingsSource;
  /** config `rollups`: how long each tier's rows are kept. */
  readonly retention: RetentionDays;
  /** config `query.defaultTimeZone`. */
  readonly defaultTimeZone: string;
  /** config `query.maxRawScanEvents`. */
  readonly maxRawScanEvents: number;
  /** config `aggregate.sessionTimeoutMs`: the raw path folds visits as the aggregator does. */
  readonly sessionTimeoutMs: number;
  /**
   * Per tier, the end of the buckets whose rows are complete in the store (exclusive), for a
   * store that fills coarse tiers only later; default: every tier is as current as the minutes.
   */
  readonly tierUsableBefore?: (nowMs: number) => Partial<Record<Tier, number>>;
  /** Which logic versions built the rows of a range and how many days were reprocessed (ops/versioned-rollup-store.ts). */
  readonly provenance?: (site: string, fromMs: number, toMs: number) => Promise<{ readonly logicVersions: readonly number[]; readonly reprocessedDays: number }>;
  readonly now?: () => number;
}

export interface QueryEngine {
  /** Check and normalise a request (QUERY_INVALID, TIME_ZONE_UNKNOWN). */
  spec(req: QueryRequest): Promise<QuerySpec>;
  /** Answer a spec with the given watermark (read by the caller before this call). */
  execute(spec: QuerySpec, watermark: number | null): Promise<QueryResponse>;
  /** spec + watermark + execute. */
  run(req: QueryRequest): Promise<QueryResponse>;
  readonly store: RollupStore;
}

interface Pieces {
  readonly range: UtcRange;
  /** Series points, or the one whole range. */
  readonly spans: readonly IntervalPiece[] | readonly UtcRange[];
}

function piecesOf(spec: QuerySpec, range: UtcRange): Pieces {
  if (!spec.interval) return { range, spans: [range] };
  // Constant-offset zones (UTC, Etc/*) split by arithmetic: luxon per point costs more than the rows.
  return { range, spans: splitFixedOffsetIntervals(range, spec.interval, spec.zone) ?? splitIntervals(range, spec.interval, spec.zone) };
}

const byValue = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export function createQueryEngine(deps: QueryEngineDeps): QueryEngine {
  const now = deps.now ?? Date.now;

  async function spec(req: QueryRequest): Promise<QuerySpec> {
    const settings = await deps.settings.settings(req.site);
    return buildSpec(req, { settings, defaultTimeZone: deps.defaultTimeZone, nowMs: now() });
  }

  async function read(s: QuerySpec, parts: readonly Pieces[], watermark: number | null): Promise<{ spans: SpanResult[][]; wholes: Array<SpanResult | null>; tiers: Set<Tier>; raw: boolean; scanned: number }> {
    const all = parts.flatMap((p) => p.spans);
    let flat: SpanResult[];
    let wholes: Array<SpanResult | null> = parts.map(() => null);
    let tiers = new Set<Tier>();
    let scanned = 0;
    if (s.needsRaw) {
      if (!deps.archive) throw new SluiceError('QUERY_INVALID', 'filters need the raw archive, which this server does not run');
      const r = await readRaw(deps.archive, s, all, { maxEvents: deps.maxRawScanEvents, sessionTimeoutMs: deps.sessionTimeoutMs });
      flat = r.spans;
      scanned = r.eventsScanned;
    } else {
      const nowMs = now();
      // Quarter, hour and day rows are rolled less often than minute rows are written
      // (aggregator.ts, TierRoller): they are read only for buckets the watermark calls final (it
      // waits for them), so recent time comes from minute rows, as fresh as the last flush. Past
      // the watermark a coarse tier is still read where the tier it is rolled from has expired
      // (a watermark stuck or never written must not hide history kept only in coarse rows).
      const coarseBefore = watermark ?? Number.NEGATIVE_INFINITY;
      const limits = deps.tierUsableBefore?.(nowMs) ?? {};
      const kept = tierWindows(deps.retention, nowMs);
      // Rounded up to the coarse tier: the finer tier is then read from a bucket boundary of
      // the coarse one, never from inside a coarse bucket already read whole.
      const before = (tier: Tier, finer: Tier) => Math.min(
        limits[tier] ?? Number.MAX_SAFE_INTEGER,
        Math.max(coarseBefore, Math.ceil(kept[finer].usableFromMs / TIER_MS[tier]) * TIER_MS[tier]),
      );
      const windows = tierWindows(deps.retention, nowMs, {
        ...limits,
        quarter: before('quarter', 'minute'),
        hour: before('hour', 'quarter'),
        day: before('day', 'hour'),
      });
      // A series' totals may come from the coarse rows of its whole range (rollup-reader.ts).
      const r = await readRollups(deps.store, s, all, windows, s.interval ? parts.map((p) => p.range) : []);
      flat = r.spans;
      tiers = r.tiers;
      if (r.wholes.length === parts.length) wholes = r.wholes;
    }
    const out: SpanResult[][] = [];
    let i = 0;
    for (const p of parts) {
      out.push(flat.slice(i, i + p.spans.length));
      i += p.spans.length;
    }
    return { spans: out, wholes, tiers, raw: s.needsRaw, scanned };
  }

  async function execute(s: QuerySpec, watermark: number | null): Promise<QueryResponse> {
    const provenance = deps.provenance ? await deps.provenance(s.site, s.range.fromMs, s.range.toMs) : null;
    const main = piecesOf(s, s.range);
    const prev = s.comparison ? piecesOf(s, s.comparison) : null;
    // The comparison period comes first: the raw path scans both in one pass, in time order.
    const parts = prev ? [prev, main] : [main];
    const got = await read(s, parts, watermark);
    const mainSpans = got.spans[got.spans.length - 1]!;
    const prevSpans = prev ? got.spans[0]! : null;
    const mainWhole = got.wholes[got.wholes.length - 1] ?? null;
    const prevWhole = prev ? got.wholes[0] ?? null : null;
    const goalMode = goalScope(s) !== null;
    const kind = s.interval ? 'timeseries' : s.dimension ? 'breakdown' : 'totals';

    const totalOf = (spans: readonly SpanResult[], whole: SpanResult | null): Output => {
      if (whole) return whole.total;
      if (spans.length === 1) return spans[0]!.total;
      const t = newOutput(goalMode);
      for (const sp of spans) mergeOutput(t, sp.total);
      return t;
    };

    let rows: QueryRow[] = [];
    let comparisonRows: QueryRow[] = [];
    let includesOther = false;
    let totalRows = 0;
    let nextCursor: string | null = null;
    if (kind === 'timeseries') {
      const points = (pieces: Pieces, spans: readonly SpanResult[]): QueryPointRow[] => (pieces.spans as IntervalPiece[]).map((p, i) => ({
        t: p.t, label: p.label, metrics: metricsOf(spans[i]!.total, s.metrics),
      }));
      rows = points(main, mainSpans);
      if (prev && prevSpans) comparisonRows = points(prev, prevSpans);
    } else if (kind === 'breakdown') {
      const b = breakdown(s, mainSpans[0]!, prevSpans?.[0] ?? null);
      rows = b.rows;
      comparisonRows = b.comparisonRows;
      includesOther = b.includesOther;
      totalRows = b.totalRows;
      nextCursor = b.nextCursor;
    }
    const mainTotal = totalOf(mainSpans, mainWhole);
    const tiers = TIERS_COARSE_FIRST.filter((t) => got.tiers.has(t));
    return {
      site: s.site,
      kind,
      range: describeRange(s.range, s.zone),
      time_zone: s.zone,
      interval: s.interval,
      dimension: s.dimension?.name ?? null,
      rows,
      totals: metricsOf(mainTotal, s.metrics),
      comparison: prev && prevSpans ? {
        range: describeRange(prev.range, s.zone),
        totals: metricsOf(totalOf(prevSpans, prevWhole), s.metrics),
        rows: comparisonRows,
      } : null,
      watermark,
      meta: {
        tiers,
        raw_archive_scanned: got.raw,
        raw_events_scanned: got.scanned,
        includes_other: includesOther,
        total_rows: totalRows,
        page: Math.floor(s.offset / s.limit) + 1,
        limit: s.limit,
        next_cursor: nextCursor,
        visitors_error: goalMode ? standardErrorOf(DIMENSION_SKETCH_PRECISION) : STANDARD_ERROR,
        logic_versions: provenance ? [...provenance.logicVersions] : [],
        status: watermark !== null && s.range.toMs <= watermark ? 'final' : 'provisional',
        reprocessed_days: provenance?.reprocessedDays ?? 0,
      },
    };
  }

  return {
    store: deps.store,
    spec,
    execute,
    async run(req) {
      const s = await spec(req);
      // Watermark before rows: a bucket the response calls final has its final row in what we read.
      const watermark = await deps.store.watermark();
      return execute(s, watermark);
    },
  };
}

interface BreakdownResult {
  readonly rows: QueryBreakdownRow[];
  readonly comparisonRows: QueryBreakdownRow[];
  readonly includesOther: boolean;
  readonly totalRows: number;
  readonly nextCursor: string | null;
}

/** Rank, page and fold the rest into "(other)"; the comparison takes the same values. */
function breakdown(s: QuerySpec, span: SpanResult, prevSpan: SpanResult | null): BreakdownResult {
  const isGoal = s.dimension?.ref.kind === 'goal';
  const metricsFor = (out: Output, sp: SpanResult): QueryMetrics => metricsOf(out, s.metrics, isGoal ? sp.total.base : undefined);
  const goalMode = goalScope(s) !== null;

  let entries: Array<[string, Output]>;
  if (isGoal) {
    // One row per goal in scope, converted or not.
    entries = (goalScope(s) ?? []).map((g) => [g.name, span.cells.get(g.name) ?? newOutput(true)]);
  } else {
    entries = [...span.cells].filter(([, out]) => !(out.base.isEmpty() && (out.goal?.isEmpty() ?? true)));
  }
  const scored = entries.map(([value, out]) => ({ value, out, metrics: metricsFor(out, span) }));
  const { metric, direction } = s.orderBy;
  const sign = direction === 'asc' ? 1 : -1;
  scored.sort((a, b) => {
    if (metric !== 'value') {
      const x = rankValue(a.metrics, metric);
      const y = rankValue(b.metrics, metric);
      if (x !== y) {
        if (x === null) return 1;
        if (y === null) return -1;
        return sign * (x - y);
      }
      return byValue(a.value, b.value);
    }
    return sign * byValue(a.value, b.value);
  });

  const pageEnd = s.offset + s.limit;
  const page = scored.slice(s.offset, pageEnd);
  const rest = scored.slice(pageEnd);
  const rows: QueryBreakdownRow[] = page.map((r) => ({ value: r.value, metrics: r.metrics }));
  let other: Output | null = null;
  if (rest.length > 0 || span.other) {
    other = newOutput(goalMode);
    for (const r of rest) mergeOutput(other, r.out);
    if (span.other) mergeOutput(other, span.other);
    rows.push({ value: OTHER_ROW, metrics: metricsFor(other, span) });
  }

  const comparisonRows: QueryBreakdownRow[] = [];
  if (prevSpan) {
    const empty = newOutput(goalMode);
    for (const r of page) comparisonRows.push({ value: r.value, metrics: metricsFor(prevSpan.cells.get(r.value) ?? empty, prevSpan) });
    if (other) {
      const listed = new Set(scored.slice(0, pageEnd).map((r) => r.value));
      const prevOther = newOutput(goalMode);
      for (const [value, out] of prevSpan.cells) if (!listed.has(value)) mergeOutput(prevOther, out);
      if (prevSpan.other) mergeOutput(prevOther, prevSpan.other);
      comparisonRows.push({ value: OTHER_ROW, metrics: metricsFor(prevOther, prevSpan) });
    }
  }
  return {
    rows,
    comparisonRows,
    includesOther: other !== null,
    totalRows: scored.length,
    nextCursor: pageEnd < scored.length && pageEnd < QUERY_LIMITS.maxPage * s.limit ? encodeCursor(pageEnd, s.pagingKey) : null,
  };
}

const OTHER_ROW = '(other)';

