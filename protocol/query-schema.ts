/**
 * The declarative query API (`query.run`, request/response; `live.query`, request-stream):
 * one request shape for totals, time series and breakdowns, with filters, goals, time zones,
 * comparison and pagination. Like schema.ts, every shape is a TypeBox definition from which the
 * static types and the validators are derived; limits are part of the contract.
 *
 * Semantics the schema cannot carry (the engine in src/query enforces them, QUERY_INVALID
 * otherwise; protocol/README.md documents them with examples):
 * - `dimensions` holds at most one entry, and is exclusive with `interval` (a query is a
 *   total, a time series, or a breakdown);
 * - session metrics (visits, bounce_rate, visit_duration, views_per_visit) need a session view
 *   of the data: they are invalid with an event dimension or event filter (page, event,
 *   prop:<key>, goal); an `exit_page` breakdown reports `visits` (exits) only;
 * - conversion metrics (conversions, unique_conversions, conversion_rate, revenue) need a goal:
 *   a `goal` dimension or a `goal is …` filter;
 * - `order_by.metric` must be one of the requested metrics (or `value` / `t`);
 * - `page` and `cursor` exclude each other.
 * Times are ms since the Unix epoch (UTC) or ISO 8601 strings; a string without an offset is a
 * local time in the query's time zone. `to` is exclusive, except that a bare date (YYYY-MM-DD)
 * as `to` includes that whole local day.
 */
import { Type, type Static } from '@sinclair/typebox';
import { EpochMs, LIMITS, SiteId } from './schema.js';

export const QUERY_LIMITS = {
  maxFilters: 10,
  maxFilterValues: 50,
  maxFilterValueLength: 512,
  /** Rows per page of a breakdown. */
  maxLimit: LIMITS.maxBreakdownLimit,
  defaultLimit: 10,
  maxPage: 10_000,
  maxSeriesPoints: LIMITS.maxSeriesPoints,
  maxCursorLength: 200,
} as const;

export const QUERY_METRICS = [
  'visitors', 'visits', 'pageviews', 'events', 'views_per_visit', 'bounce_rate', 'visit_duration',
  'conversions', 'unique_conversions', 'conversion_rate', 'revenue',
] as const;
export type QueryMetricName = typeof QUERY_METRICS[number];
export const QueryMetricName = Type.Union(QUERY_METRICS.map((m) => Type.Literal(m)));

/** Metrics that need the visit of each event (its entry values): invalid with event dimensions or filters. */
export const SESSION_METRICS: readonly QueryMetricName[] = ['visits', 'views_per_visit', 'bounce_rate', 'visit_duration'];
/** Metrics that need a goal (a `goal` dimension or a `goal is` filter). */
export const CONVERSION_METRICS: readonly QueryMetricName[] = ['conversions', 'unique_conversions', 'conversion_rate', 'revenue'];

/**
 * The dimensions of the rollup model (src/aggregate/rollup.ts DimensionName, without the raw
 * `prop` cells, which are asked for as `prop:<key>`). protocol/ never imports from src/, so the
 * list is repeated here; a test in src/query checks the two agree.
 */
export const QUERY_DIMENSIONS = [
  'entry_page', 'hostname', 'source', 'referrer', 'channel',
  'utm_source', 'utm_medium', 'utm_campaign', 'utm_term', 'utm_content',
  'country', 'region', 'city', 'browser', 'browser_version', 'os', 'os_version', 'device', 'screen',
  'page', 'event', 'exit_page', 'goal',
] as const;
export type QueryDimensionName = typeof QUERY_DIMENSIONS[number] | `prop:${string}`;

/** A dimension: one of QUERY_DIMENSIONS, or `prop:<key>` (a custom property key, any event). */
export const QueryDimension = Type.Union([
  Type.Union(QUERY_DIMENSIONS.map((d) => Type.Literal(d))),
  Type.String({ pattern: `^prop:[^\\u0000]{1,${LIMITS.maxPropKeyLength}}$`, maxLength: 5 + LIMITS.maxPropKeyLength }),
]);

export const FILTER_OPS = ['is', 'is_not', 'contains', 'matches'] as const;
export type FilterOp = typeof FILTER_OPS[number];

const FilterValue = Type.String({ maxLength: QUERY_LIMITS.maxFilterValueLength });

/**
 * One filter. With several values, `is`, `contains` and `matches` pass when ANY value does and
 * `is_not` when NONE is equal. `matches` is a glob over the whole value: `*` matches within a
 * path segment (no `/`), `**` across segments, every other character literally (no regular
 * expressions: a pattern can never make the server slow). Comparisons are case-sensitive.
 * Filters combine with AND. `goal` filters take only `is`, with goal names.
 */
export const QueryFilter = Type.Object({
  dimension: QueryDimension,
  op: Type.Union(FILTER_OPS.map((o) => Type.Literal(o))),
  value: Type.Union([FilterValue, Type.Array(FilterValue, { minItems: 1, maxItems: QUERY_LIMITS.maxFilterValues })]),
}, { additionalProperties: false });
export type QueryFilter = Static<typeof QueryFilter>;

/** ISO 8601 date or date-time; without an offset it is a local time in the query's time zone. */
export const IsoTime = Type.String({
  maxLength: 40,
  pattern: '^\\d{4}-\\d{2}-\\d{2}(T\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,3})?)?(Z|[+-]\\d{2}:\\d{2})?)?$',
});

export const RELATIVE_RANGES = ['today', 'yesterday', 'realtime', '7d', '30d', 'month', 'year'] as const;
export type RelativeRange = typeof RELATIVE_RANGES[number];

/**
 * A date range: explicit `{from, to}`, or relative, in the query's time zone and ending with
 * today: `today`, `yesterday`, `7d` and `30d` (the last 7 / 30 local days, today included),
 * `month` and `year` (from the 1st of this month / January 1st through today), `realtime`
 * (the last 30 minutes, the current minute included; interval `minute` unless given).
 */
export const DateRange = Type.Union([
  Type.Union(RELATIVE_RANGES.map((r) => Type.Literal(r))),
  Type.Object({
    from: Type.Union([EpochMs, IsoTime]),
    to: Type.Union([EpochMs, IsoTime]),
  }, { additionalProperties: false }),
]);
export type DateRange = Static<typeof DateRange>;

export const QUERY_INTERVALS = ['minute', 'hour', 'day', 'week', 'month'] as const;
/** Local intervals: days start at local midnight, weeks on Monday (ISO), months on the 1st. */
export const QueryInterval = Type.Union(QUERY_INTERVALS.map((i) => Type.Literal(i)));
export type QueryInterval = Static<typeof QueryInterval>;

export const QueryRequest = Type.Object({
  site: SiteId,
  metrics: Type.Array(QueryMetricName, { minItems: 1, maxItems: QUERY_METRICS.length, uniqueItems: true }),
  /** At most one: a breakdown by it. */
  dimensions: Type.Optional(Type.Array(QueryDimension, { maxItems: 1 })),
  filters: Type.Optional(Type.Array(QueryFilter, { maxItems: QUERY_LIMITS.maxFilters })),
  date_range: DateRange,
  /** A time series with one point per local interval (zero-filled). */
  interval: Type.Optional(QueryInterval),
  /** IANA name, e.g. `Asia/Kolkata`; default: the site's, else the server's `query.defaultTimeZone`. */
  time_zone: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  /**
   * Breakdowns: default the first metric, descending (ties by value ascending). `value` sorts
   * by the dimension value. Time series are always in time order.
   */
  order_by: Type.Optional(Type.Object({
    metric: Type.Union([QueryMetricName, Type.Literal('value')]),
    direction: Type.Optional(Type.Union([Type.Literal('asc'), Type.Literal('desc')])),
  }, { additionalProperties: false })),
  /** Breakdown rows per page (default 10). */
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: QUERY_LIMITS.maxLimit })),
  /** 1-based page of a breakdown. */
  page: Type.Optional(Type.Integer({ minimum: 1, maximum: QUERY_LIMITS.maxPage })),
  /** The `meta.next_cursor` of a previous page of the same query; excludes `page`. */
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: QUERY_LIMITS.maxCursorLength })),
  /** Also compute the same query over the period of equal length just before the range. */
  compare: Type.Optional(Type.Literal('previous_period')),
}, { additionalProperties: false });
export type QueryRequest = Static<typeof QueryRequest>;

/**
 * Metric values of one row, point or total: only the requested metrics are present.
 * - visitors, unique_conversions: HyperLogLog estimates (merged, never summed);
 * - bounce_rate, conversion_rate: percentages (0–100), unrounded; null when undefined
 *   (no visits / no visitors);
 * - visit_duration: mean seconds per visit, unrounded; views_per_visit: mean pageviews per
 *   visit; null when there were no visits;
 * - revenue: per ISO currency, the sum of the goal's revenue;
 * - null also where a value cannot be known: visitors of the "(other)" row when values were
 *   folded into it at aggregation time (no sketch is kept for them).
 */
const Num = Type.Union([Type.Number(), Type.Null()]);
export const QueryMetrics = Type.Object({
  visitors: Type.Optional(Num),
  visits: Type.Optional(Num),
  pageviews: Type.Optional(Num),
  events: Type.Optional(Num),
  views_per_visit: Type.Optional(Num),
  bounce_rate: Type.Optional(Num),
  visit_duration: Type.Optional(Num),
  conversions: Type.Optional(Num),
  unique_conversions: Type.Optional(Num),
  conversion_rate: Type.Optional(Num),
  revenue: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Z]{3}$' }), Type.Number())),
}, { additionalProperties: false });
export type QueryMetrics = Static<typeof QueryMetrics>;

/** A breakdown row: the dimension value ("(other)" for the rest) and its metrics. */
export const QueryBreakdownRowSchema = Type.Object({ value: Type.String(), metrics: QueryMetrics }, { additionalProperties: false });
export type QueryBreakdownRow = Static<typeof QueryBreakdownRowSchema>;

/** A time-series point: its UTC start, its local label (`2026-03-08`, `2026-03-08T14:00`, `2026-W10`, `2026-03`). */
export const PointRow = Type.Object({ t: EpochMs, label: Type.String(), metrics: QueryMetrics }, { additionalProperties: false });
export type QueryPointRow = Static<typeof PointRow>;

export const QueryRow = Type.Union([QueryBreakdownRowSchema, PointRow]);
export type QueryRow = Static<typeof QueryRow>;

/** The range as resolved: UTC [from, to) and the same instants as local ISO date-times. */
export const ResolvedRange = Type.Object({
  from: EpochMs,
  to: EpochMs,
  from_local: Type.String(),
  to_local: Type.String(),
}, { additionalProperties: false });
export type ResolvedRange = Static<typeof ResolvedRange>;

export const QueryTier = Type.Union([Type.Literal('minute'), Type.Literal('quarter'), Type.Literal('hour'), Type.Literal('day')]);

export const QueryMeta = Type.Object({
  /** Rollup tiers read (coarsest first); empty when the raw archive answered. */
  tiers: Type.Array(QueryTier),
  /** True when filters made the engine scan the raw archive instead of the rollups. */
  raw_archive_scanned: Type.Boolean(),
  /** Raw events read when it did. */
  raw_events_scanned: Type.Integer({ minimum: 0 }),
  /** True when a breakdown's rows end with an "(other)" row. */
  includes_other: Type.Boolean(),
  /** Breakdowns: distinct values ranked (without "(other)"), the page served, rows per page, the next page's cursor. */
  total_rows: Type.Integer({ minimum: 0 }),
  page: Type.Integer({ minimum: 1 }),
  limit: Type.Integer({ minimum: 1 }),
  next_cursor: Type.Union([Type.String(), Type.Null()]),
  /** Relative standard error of `visitors` (row-level values use smaller sketches: a larger error). */
  visitors_error: Type.Number(),
  /**
   * The processing logic versions whose rows answered (several when part of the range was
   * reprocessed with newer logic; empty when unknown). A reprocess that restates a range the
   * response covers changes it, and a live.query subscriber gets the restated values.
   */
  logic_versions: Type.Array(Type.Integer({ minimum: 0 })),
  /** final: the whole range ends at or before the watermark; provisional: late events may still change it. */
  status: Type.Union([Type.Literal('final'), Type.Literal('provisional')]),
  /** Days of the range served from a reprocessed rollup version. */
  reprocessed_days: Type.Integer({ minimum: 0 }),
}, { additionalProperties: false });
export type QueryMeta = Static<typeof QueryMeta>;

export const Comparison = Type.Object({
  range: ResolvedRange,
  totals: QueryMetrics,
  /**
   * Breakdowns: the rows of the same values, in the same order, over the previous period.
   * Time series: the previous period's points, point i comparing with point i.
   */
  rows: Type.Array(QueryRow),
}, { additionalProperties: false });
export type Comparison = Static<typeof Comparison>;

export const QueryResponse = Type.Object({
  site: SiteId,
  kind: Type.Union([Type.Literal('totals'), Type.Literal('timeseries'), Type.Literal('breakdown')]),
  range: ResolvedRange,
  time_zone: Type.String(),
  interval: Type.Union([QueryInterval, Type.Null()]),
  dimension: Type.Union([Type.String(), Type.Null()]),
  /** Breakdown rows (a page, maybe ending with "(other)") or series points; empty for totals. */
  rows: Type.Array(QueryRow),
  /** Over the whole range (and all breakdown values, not just the page). */
  totals: QueryMetrics,
  comparison: Type.Union([Comparison, Type.Null()]),
  /** Event time up to which buckets are final; later buckets may still be restated. */
  watermark: Type.Union([EpochMs, Type.Null()]),
  meta: QueryMeta,
}, { additionalProperties: false });
export type QueryResponse = Static<typeof QueryResponse>;

/**
 * `live.query` messages. The first is a `snapshot` (a whole QueryResponse). Each `update`
 * carries only what changed since the previous message: the rows or points whose metrics
 * changed (whole rows), the new totals and comparison totals when they changed, `order` (the
 * full list of row keys — values or `t` — of the page) when membership or order changed, and
 * always the watermark. A relative range that moves on (a new minute of `realtime`, a new day
 * of `today`) is sent as a new `snapshot`.
 */
export const LiveQuerySnapshot = Type.Object({ type: Type.Literal('snapshot'), response: QueryResponse }, { additionalProperties: false });
export const LiveQueryUpdate = Type.Object({
  type: Type.Literal('update'),
  rows: Type.Array(QueryRow),
  totals: Type.Optional(QueryMetrics),
  comparison_totals: Type.Optional(QueryMetrics),
  order: Type.Optional(Type.Array(Type.Union([Type.String(), EpochMs]))),
  watermark: Type.Union([EpochMs, Type.Null()]),
}, { additionalProperties: false });
export const LiveQueryMessage = Type.Union([LiveQuerySnapshot, LiveQueryUpdate]);
export type LiveQueryMessage = Static<typeof LiveQueryMessage>;
