/**
 * Request/response queries over the RollupStore. Unique visitors are always the HyperLogLog
 * merge of the buckets a point covers, never a sum of per-bucket counts (DESIGN invariant 4).
 * Intervals are UTC-aligned here; time-zone-aware intervals come with the query API issue.
 *
 * With a QueryCache, timeseries, totals and breakdown responses are cached per site, keyed by
 * route and parameters, and stay cached until a bucket they cover changes (query-cache.ts; the
 * writer invalidates through invalidating-live-bus.ts) or their TTL ends. A response whose
 * range reaches past the watermark is cached too: invalidation follows the bucket writes, not
 * the watermark. Live-stream reads (`minutes`) are never cached: they run on every notice.
 *
 * The order of reads on a cached request is what keeps a response consistent:
 *   1. the watermark W;
 *   2. the cache (its version is taken here);
 *   3. on a miss, the rows, then the entry is filled under the version of step 2.
 * The writer writes a bucket's rows, then invalidates, then (later) moves the watermark. So a
 * bucket W calls final was invalidated before step 1, and the entry or rows of steps 2-3
 * include it. A hit is served with the W of step 1, not the one cached: the data of a current
 * entry is the store's, and the watermark moves on without bucket writes.
 * A failing cache is a miss (logged); the store is the truth.
 */
import {
  LIMITS,
  type BreakdownRequest, type BreakdownResponse, type BreakdownRow, type Interval, type Metrics,
  type TimeseriesPoint, type TimeseriesRequest, type TimeseriesResponse, type TotalsRequest, type TotalsResponse,
} from '../../protocol/schema.js';
import { HyperLogLog } from '../aggregate/hyperloglog.js';
import { OTHER_KEY, type MinuteRollup, type RollupStore } from '../aggregate/rollup-store.js';
import { SluiceError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import type { CacheScope, CacheTicket, QueryCache } from './query-cache.js';

export const MINUTE_MS = 60_000;
const INTERVAL_MS: Record<Interval, number> = { minute: MINUTE_MS, hour: 3_600_000, day: 86_400_000 };

export interface QueryService {
  timeseries(req: TimeseriesRequest): Promise<TimeseriesResponse>;
  totals(req: TotalsRequest): Promise<TotalsResponse>;
  breakdown(req: BreakdownRequest): Promise<BreakdownResponse>;
  /** Per-minute points and their totals for [fromMs, toMs): what live streams are built from. */
  minutes(site: string, fromMs: number, toMs: number): Promise<{ points: TimeseriesPoint[]; totals: Metrics; watermark: number | null }>;
}

function checkRange(from: number, to: number): void {
  if (to <= from) throw new SluiceError('QUERY_INVALID', `"to" (${to}) must be after "from" (${from})`);
}

/** Merge the visitor sketches of rows and count the union. */
export function countVisitors(rows: readonly MinuteRollup[]): number {
  if (rows.length === 0) return 0;
  const union = HyperLogLog.empty();
  for (const r of rows) union.merge(HyperLogLog.fromBytes(r.visitors));
  return union.count();
}

function sumMetrics(rows: readonly MinuteRollup[]): Metrics {
  let pageviews = 0;
  let events = 0;
  for (const r of rows) {
    pageviews += r.pageviews;
    events += r.events;
  }
  return { pageviews, events, visitors: countVisitors(rows) };
}

/** Group rows into UTC-aligned points, zero-filled so a chart has every point of the range. */
function toPoints(rows: readonly MinuteRollup[], fromMs: number, toMs: number, stepMs: number): TimeseriesPoint[] {
  const start = Math.floor(fromMs / stepMs) * stepMs;
  const groups = new Map<number, MinuteRollup[]>();
  for (const r of rows) {
    const t = Math.floor(r.bucketMs / stepMs) * stepMs;
    const g = groups.get(t);
    if (g) g.push(r);
    else groups.set(t, [r]);
  }
  const points: TimeseriesPoint[] = [];
  for (let t = start; t < toMs; t += stepMs) {
    const g = groups.get(t) ?? [];
    points.push({ t, ...sumMetrics(g) });
  }
  return points;
}

export function topN(counts: ReadonlyMap<string, number>, limit: number): BreakdownRow[] {
  let other = counts.get(OTHER_KEY) ?? 0;
  const rows = [...counts].filter(([k]) => k !== OTHER_KEY)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (const [, n] of rows.slice(limit)) other += n;
  const out = rows.slice(0, limit).map(([value, pageviews]) => ({ value, pageviews }));
  if (other > 0) out.push({ value: OTHER_KEY, pageviews: other });
  return out;
}

export interface QueryServiceDeps {
  readonly store: RollupStore;
  readonly cache?: QueryCache;
  /**
   * Lifetime of a cached response; default 5 min. Freshness comes from invalidation; the TTL
   * bounds memory and how long an entry can outlive an invalidation that could not be made.
   */
  readonly cacheTtlMs?: number;
  readonly logger?: Logger;
}

export const DEFAULT_CACHE_TTL_MS = 300_000;

/** Responses that carry the store watermark, which a cache hit replaces with a fresh one. */
type WithWatermark = { watermark: number | null };

export function createQueryService(deps: QueryServiceDeps): QueryService {
  const { store, cache } = deps;
  const ttlMs = deps.cacheTtlMs ?? DEFAULT_CACHE_TTL_MS;
  const logger = deps.logger ?? silentLogger();

  /**
   * Serve `compute(rows)` for the scope through the cache, in the order the top of the file
   * explains. `key` must name every parameter the response depends on besides the scope.
   */
  async function cached<R extends WithWatermark>(scope: CacheScope, key: string, compute: (rows: MinuteRollup[], watermark: number | null) => R): Promise<R> {
    if (!cache) {
      // Watermark before rows: a bucket the response calls final has its final row in what we read.
      const watermark = await store.watermark();
      return compute(await store.read(scope.site, scope.fromMs, scope.toMs), watermark);
    }
    const watermark = await store.watermark();
    let ticket: CacheTicket | undefined;
    try {
      const found = await cache.get(scope, key);
      ticket = found.ticket;
      if (found.value !== undefined) return { ...(JSON.parse(found.value) as R), watermark };
    } catch (e) {
      logger.warn({ err: e, site: scope.site }, 'query cache read failed; reading the store');
    }
    const response = compute(await store.read(scope.site, scope.fromMs, scope.toMs), watermark);
    if (ticket) {
      try {
        await cache.set(ticket, JSON.stringify(response), ttlMs);
      } catch (e) {
        logger.warn({ err: e, site: scope.site }, 'query cache write failed');
      }
    }
    return response;
  }

  const scopeOf = (req: { site: string; from: number; to: number }): CacheScope => ({ site: req.site, fromMs: req.from, toMs: req.to });

  return {
    async timeseries(req) {
      checkRange(req.from, req.to);
      const step = INTERVAL_MS[req.interval];
      const start = Math.floor(req.from / step) * step;
      const count = Math.ceil((req.to - start) / step);
      if (count > LIMITS.maxSeriesPoints) {
        throw new SluiceError('QUERY_INVALID', `${count} points asked for; at most ${LIMITS.maxSeriesPoints} per series (use a coarser interval)`);
      }
      return cached(scopeOf(req), `timeseries:${req.interval}:${req.from}:${req.to}`, (rows, watermark): TimeseriesResponse => (
        { site: req.site, from: req.from, to: req.to, interval: req.interval, points: toPoints(rows, req.from, req.to, step), watermark }));
    },

    async totals(req) {
      checkRange(req.from, req.to);
      return cached(scopeOf(req), `totals:${req.from}:${req.to}`, (rows, watermark): TotalsResponse => (
        { site: req.site, from: req.from, to: req.to, totals: sumMetrics(rows), watermark }));
    },

    async breakdown(req) {
      checkRange(req.from, req.to);
      const limit = req.limit ?? 10;
      return cached(scopeOf(req), `breakdown:${req.dimension}:${limit}:${req.from}:${req.to}`, (rows, watermark): BreakdownResponse => {
        const counts = new Map<string, number>();
        for (const r of rows) {
          const dim = req.dimension === 'page' ? r.pages : r.sources;
          for (const [k, n] of Object.entries(dim)) counts.set(k, (counts.get(k) ?? 0) + n);
        }
        return { site: req.site, from: req.from, to: req.to, dimension: req.dimension, rows: topN(counts, limit), watermark };
      });
    },

    async minutes(site, fromMs, toMs) {
      const watermark = await store.watermark();
      const rows = await store.read(site, fromMs, toMs);
      return { points: toPoints(rows, fromMs, toMs, MINUTE_MS), totals: sumMetrics(rows), watermark };
    },
  };
}
