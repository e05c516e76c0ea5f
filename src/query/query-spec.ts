/**
 * A QueryRequest checked against the rules the schema cannot express and normalised into what
 * the engine runs: the time zone and range resolved, filters compiled to predicates, goals
 * looked up, paging turned into an offset. Every rule violated is a QUERY_INVALID (or
 * TIME_ZONE_UNKNOWN) naming the field, so a client learns what to change.
 */
import { createHash } from 'node:crypto';
import {
  CONVERSION_METRICS, QUERY_LIMITS, SESSION_METRICS,
  type QueryInterval, type QueryMetricName, type QueryRequest,
} from '../../protocol/query-schema.js';
import type { Goal, SiteSettings } from '../../protocol/schema.js';
import { DIMENSION_KINDS, SESSION_DIMENSIONS, type SessionDimension } from '../aggregate/rollup.js';
import { SluiceError } from '../errors.js';
import { compileGlob, type Matcher } from './glob.js';
import { checkTimeZone, countIntervals, nextRangeChangeMs, previousPeriod, resolveDateRange, type UtcRange } from './time-range.js';

/** What a filter or breakdown reads of an event. */
export type DimensionRef =
  | { readonly kind: 'session'; readonly name: SessionDimension }
  | { readonly kind: 'event'; readonly name: 'page' | 'event' }
  | { readonly kind: 'prop'; readonly key: string }
  | { readonly kind: 'exit' }
  | { readonly kind: 'goal' };

export interface CompiledFilter {
  readonly dimension: string;
  readonly ref: DimensionRef;
  /** Whether a value passes; null is "no value" (passes only `is_not`). */
  readonly test: (value: string | null) => boolean;
}

export interface QuerySpec {
  readonly site: string;
  readonly metrics: readonly QueryMetricName[];
  readonly dimension: { readonly name: string; readonly ref: DimensionRef } | null;
  /** Filters other than goal filters. */
  readonly filters: readonly CompiledFilter[];
  /** The goals of a `goal is` filter (any of them); null without one. */
  readonly goalFilter: readonly Goal[] | null;
  /** The site's configured goals (for a goal breakdown and goal filters). */
  readonly goals: readonly Goal[];
  readonly zone: string;
  readonly range: UtcRange;
  readonly comparison: UtcRange | null;
  readonly interval: QueryInterval | null;
  readonly orderBy: { readonly metric: QueryMetricName | 'value'; readonly direction: 'asc' | 'desc' };
  readonly limit: number;
  readonly offset: number;
  /** When a relative range next resolves differently (live streams roll over then); null when fixed. */
  readonly rangeChangesAtMs: number | null;
  /** True when only the raw archive can answer (filters, or goals the rollups cannot tell apart). */
  readonly needsRaw: boolean;
  /** Stable text naming everything the answer depends on: the cache key. */
  readonly key: string;
  /** `key` without the page: what a cursor is bound to. */
  readonly pagingKey: string;
}

export function dimensionRef(name: string, field: string): DimensionRef {
  if (name === 'goal') return { kind: 'goal' };
  if (name.startsWith('prop:')) return { kind: 'prop', key: name.slice(5) };
  if (name === 'prop') throw new SluiceError('QUERY_INVALID', `${field}: "prop" needs a key: "prop:<key>"`);
  const kind = (DIMENSION_KINDS as Record<string, 'session' | 'event' | 'exit' | undefined>)[name];
  if (kind === 'session') return { kind, name: name as SessionDimension };
  if (kind === 'event') return { kind, name: name as 'page' | 'event' };
  if (kind === 'exit') return { kind: 'exit' };
  throw new SluiceError('QUERY_INVALID', `${field}: unknown dimension "${name}"`);
}

const isEventLevel = (ref: DimensionRef) => ref.kind === 'event' || ref.kind === 'prop' || ref.kind === 'goal';

function compileTest(op: string, values: readonly string[]): (value: string | null) => boolean {
  switch (op) {
    case 'is': {
      const set = new Set(values);
      return (v) => v !== null && set.has(v);
    }
    case 'is_not': {
      const set = new Set(values);
      return (v) => v === null || !set.has(v);
    }
    case 'contains':
      return (v) => v !== null && values.some((x) => v.includes(x));
    case 'matches': {
      const matchers: Matcher[] = values.map(compileGlob);
      return (v) => v !== null && matchers.some((m) => m(v));
    }
    default:
      throw new SluiceError('QUERY_INVALID', `unknown filter op "${op}"`);
  }
}

export interface SpecContext {
  readonly settings: SiteSettings | undefined;
  readonly defaultTimeZone: string;
  readonly nowMs: number;
}

/** Check and normalise a request. Throws SluiceError (QUERY_INVALID, TIME_ZONE_UNKNOWN). */
export function buildSpec(req: QueryRequest, ctx: SpecContext): QuerySpec {
  const zone = checkTimeZone(req.time_zone ?? ctx.settings?.timeZone ?? ctx.defaultTimeZone);
  const goals = ctx.settings?.goals ?? [];
  const metrics = [...req.metrics];

  const dims = req.dimensions ?? [];
  if (dims.length > 1) throw new SluiceError('QUERY_INVALID', 'dimensions: at most one dimension per query');
  const dimension = dims.length === 1 ? { name: dims[0]!, ref: dimensionRef(dims[0]!, 'dimensions[0]') } : null;
  if (dimension && req.interval) throw new SluiceError('QUERY_INVALID', 'a query is a breakdown (dimensions) or a time series (interval), not both');

  const filters: CompiledFilter[] = [];
  let goalFilter: Goal[] | null = null;
  for (const [i, f] of (req.filters ?? []).entries()) {
    const values = typeof f.value === 'string' ? [f.value] : [...f.value];
    const ref = dimensionRef(f.dimension, `filters[${i}].dimension`);
    if (ref.kind === 'goal') {
      if (f.op !== 'is') throw new SluiceError('QUERY_INVALID', `filters[${i}]: goal filters take only "is"`);
      const chosen = values.map((name) => {
        const g = goals.find((x) => x.name === name);
        if (!g) throw new SluiceError('QUERY_INVALID', `filters[${i}]: no goal named "${name}" is configured for site "${req.site}"`);
        return g;
      });
      // Two goal filters (AND) would ask for events completing both goals; one list (OR) is what a goal filter means.
      if (goalFilter) throw new SluiceError('QUERY_INVALID', `filters[${i}]: at most one goal filter (list several goals in its value)`);
      goalFilter = chosen;
      continue;
    }
    filters.push({ dimension: f.dimension, ref, test: compileTest(f.op, values) });
  }
  for (const g of goals) {
    if ((g.page === undefined) === (g.event === undefined)) {
      throw new SluiceError('QUERY_INVALID', `goal "${g.name}" of site "${req.site}" must have exactly one of "page" and "event"`);
    }
  }

  // Session metrics need visits attributed by entry values: no event-level dimension or filter.
  const eventLevel = (dimension && isEventLevel(dimension.ref)) ? dimension.name
    : filters.find((f) => isEventLevel(f.ref))?.dimension ?? (goalFilter ? 'goal' : null);
  const exitLevel = (dimension?.ref.kind === 'exit') || filters.some((f) => f.ref.kind === 'exit');
  for (const m of metrics) {
    if (SESSION_METRICS.includes(m) && eventLevel !== null) {
      throw new SluiceError('QUERY_INVALID', `metrics: "${m}" is a visit metric and cannot be combined with the event-level "${eventLevel}" (visits count by their entry values)`);
    }
  }
  if (exitLevel) {
    const bad = metrics.find((m) => m !== 'visits');
    if (bad) throw new SluiceError('QUERY_INVALID', `metrics: "${bad}" is not available with exit_page, which reports visits (exits) only`);
    if (eventLevel !== null) throw new SluiceError('QUERY_INVALID', `exit_page cannot be combined with the event-level "${eventLevel}"`);
  }
  const goalMode = goalFilter !== null || dimension?.ref.kind === 'goal';
  for (const m of metrics) {
    if (CONVERSION_METRICS.includes(m) && !goalMode) {
      throw new SluiceError('QUERY_INVALID', `metrics: "${m}" needs a goal: a "goal" dimension or a {"dimension": "goal", "op": "is"} filter`);
    }
  }
  if (goalMode) {
    const bad = metrics.find((m) => !['visitors', 'pageviews', 'events', ...CONVERSION_METRICS].includes(m));
    if (bad) throw new SluiceError('QUERY_INVALID', `metrics: "${bad}" is not available for goal conversions`);
    if (dimension?.ref.kind === 'goal' && goals.length === 0) throw new SluiceError('QUERY_INVALID', `dimensions: site "${req.site}" has no goals configured`);
  }

  const range = resolveDateRange(req.date_range, zone, ctx.nowMs);
  const interval = req.interval ?? (req.date_range === 'realtime' && !dimension ? 'minute' : null);
  if (interval) {
    const points = countIntervals(range, interval, zone);
    if (points > QUERY_LIMITS.maxSeriesPoints) {
      throw new SluiceError('QUERY_INVALID', `interval: ${points} points asked for; at most ${QUERY_LIMITS.maxSeriesPoints} per series (use a coarser interval)`);
    }
  }

  const orderMetric = req.order_by?.metric ?? metrics[0]!;
  if (orderMetric !== 'value' && !metrics.includes(orderMetric)) {
    throw new SluiceError('QUERY_INVALID', `order_by.metric: "${orderMetric}" is not one of the requested metrics`);
  }
  const orderBy = { metric: orderMetric, direction: req.order_by?.direction ?? (orderMetric === 'value' ? 'asc' : 'desc') } as const;

  const limit = req.limit ?? QUERY_LIMITS.defaultLimit;
  if (req.page !== undefined && req.cursor !== undefined) throw new SluiceError('QUERY_INVALID', 'page and cursor exclude each other');
  if ((req.page !== undefined || req.cursor !== undefined) && !dimension) {
    throw new SluiceError('QUERY_INVALID', 'page and cursor page through a breakdown: give a dimension');
  }

  const goalScope = goalFilter ?? (dimension?.ref.kind === 'goal' ? goals : []);
  const needsRaw = filters.length > 0
    || goalScope.some((g) => rollupsCannotTell(g, metrics, goalScope))
    || (goalFilter !== null && dimension !== null && dimension.ref.kind !== 'goal');

  const comparison = req.compare === 'previous_period' ? previousPeriod(range) : null;
  const base = {
    site: req.site, metrics, dimension: dimension?.name ?? null,
    filters: (req.filters ?? []).map((f) => [f.dimension, f.op, typeof f.value === 'string' ? [f.value] : f.value]),
    goals: goalMode ? goals : null,
    zone, range, interval, orderBy, limit, compare: comparison !== null,
  };
  const pagingKey = JSON.stringify(base);
  const offset = req.cursor !== undefined ? decodeCursor(req.cursor, pagingKey) : ((req.page ?? 1) - 1) * limit;
  return {
    site: req.site, metrics, dimension, filters, goalFilter, goals, zone, range, comparison, interval, orderBy, limit, offset,
    rangeChangesAtMs: nextRangeChangeMs(req.date_range, zone, ctx.nowMs),
    needsRaw,
    key: JSON.stringify({ ...base, offset }),
    pagingKey,
  };
}

/**
 * A goal the rollups cannot answer exactly: an event goal with more than one property (cells
 * hold one property each), or with a property when revenue is asked (revenue is kept per event
 * name, not per property), or with a property beside a goal of the same event with a property
 * on another key (their cells may hold the same events: a union would count them twice).
 */
function rollupsCannotTell(g: Goal, metrics: readonly QueryMetricName[], scope: readonly Goal[]): boolean {
  const props = Object.keys(g.props ?? {}).length;
  if (g.event === undefined || props === 0) return false;
  if (props > 1 || metrics.includes('revenue')) return true;
  // Beside the plain goal of the same event its cell is a subset of the event's cell (skipped in
  // a union); beside another property goal of that event on another key the two may overlap.
  if (scope.some((o) => o.event === g.event && o.props === undefined)) return false;
  const [key] = Object.keys(g.props ?? {});
  return scope.some((o) => o !== g && o.event === g.event && Object.keys(o.props ?? {})[0] !== key);
}

function pagingHash(pagingKey: string): string {
  return createHash('sha256').update(pagingKey).digest('base64url').slice(0, 12);
}

/** A cursor: the offset of the next page and a hash of the query it belongs to. */
export function encodeCursor(offset: number, pagingKey: string): string {
  return Buffer.from(`${offset}.${pagingHash(pagingKey)}`, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string, pagingKey: string): number {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const m = /^(\d{1,9})\.([A-Za-z0-9_-]{12})$/.exec(text);
  if (!m) throw new SluiceError('QUERY_INVALID', 'cursor: not a cursor this server issued');
  if (m[2] !== pagingHash(pagingKey)) throw new SluiceError('QUERY_INVALID', 'cursor: it belongs to another query (the same query must be repeated with it)');
  return Number(m[1]);
}

export { SESSION_DIMENSIONS };
