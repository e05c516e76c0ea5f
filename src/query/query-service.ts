/**
 * Request/response queries: `query.run` (the declarative QueryRequest, query-engine.ts) and the
 * first API's routes (`query.timeseries`, `query.totals`, `query.breakdown`), which are now
 * answered by the same engine in UTC: a totals request is the `pageviews, events, visitors`
 * totals of [from, to); a series one point per UTC interval; a breakdown the top `page` or
 * `source` values by pageviews with an "(other)" row. Unique visitors are always HyperLogLog
 * unions of the buckets covered, never sums (DESIGN invariant 4).
 *
 * With a QueryCache, rollup-path responses are cached per site under the spec's key — which
 * names every request field after resolution (relative ranges resolved, the time zone, the
 * site's goals when they matter, the page) — and stay cached until a bucket they cover changes
 * (query-cache.ts; the writer invalidates through invalidating-live-bus.ts) or their TTL ends.
 * Raw-archive (filtered) responses are not cached: archive writes do not invalidate. Live
 * reads (`minutes`, `live.query`) are never cached: they run on every notice.
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
import type { QueryMetrics, QueryRequest, QueryResponse } from '../../protocol/query-schema.js';
import type {
  BreakdownRequest, BreakdownResponse, Metrics, TimeseriesPoint, TimeseriesRequest, TimeseriesResponse, TotalsRequest, TotalsResponse,
} from '../../protocol/schema.js';
import type { RawArchive } from '../aggregate/raw-archive.js';
import type { Tier } from '../aggregate/rollup.js';
import type { RollupStore } from '../aggregate/rollup-store.js';
import { SluiceError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import type { CacheTicket, QueryCache } from './query-cache.js';
import { createQueryEngine, type QueryEngine, type QueryEngineDeps } from './query-engine.js';
import type { QuerySpec } from './query-spec.js';
import { configSiteSettings, type SiteSettingsSource } from './site-settings.js';
import type { RetentionDays } from './tier-plan.js';

export { MINUTE_MS } from './time-range.js';

export interface QueryService {
  /** The declarative query (`query.run`). */
  run(req: QueryRequest): Promise<QueryResponse>;
  /** The same, never from the cache: what live streams re-run on every notice. */
  runLive(req: QueryRequest): Promise<QueryResponse>;
  /** Check and normalise a request without running it (live.query validates before it subscribes). */
  spec(req: QueryRequest): Promise<QuerySpec>;
  timeseries(req: TimeseriesRequest): Promise<TimeseriesResponse>;
  totals(req: TotalsRequest): Promise<TotalsResponse>;
  breakdown(req: BreakdownRequest): Promise<BreakdownResponse>;
  /** Per-minute points and their totals for [fromMs, toMs) (UTC): what `live.metrics` streams are built from. */
  minutes(site: string, fromMs: number, toMs: number): Promise<{ points: TimeseriesPoint[]; totals: Metrics; watermark: number | null }>;
}

export interface QueryServiceDeps {
  readonly store: RollupStore;
  /** Filtered queries scan it; without it they fail with QUERY_INVALID. */
  readonly archive?: RawArchive;
  readonly cache?: QueryCache;
  /**
   * Lifetime of a cached response; default 5 min. Freshness comes from invalidation; the TTL
   * bounds memory and how long an entry can outlive an invalidation that could not be made.
   */
  readonly cacheTtlMs?: number;
  readonly logger?: Logger;
  /** Site time zones and goals; default: none (every site uses defaultTimeZone, no goals). */
  readonly settings?: SiteSettingsSource;
  /** Tier retention (config `rollups`); default the config defaults. */
  readonly retention?: RetentionDays;
  readonly defaultTimeZone?: string;
  readonly maxRawScanEvents?: number;
  readonly sessionTimeoutMs?: number;
  readonly tierUsableBefore?: (nowMs: number) => Partial<Record<Tier, number>>;
  /** Logic versions and reprocessed days of a range, shown in each response's meta (the ops module's read store). */
  readonly provenance?: QueryEngineDeps['provenance'];
  readonly now?: () => number;
}

export const DEFAULT_CACHE_TTL_MS = 300_000;
export const DEFAULT_RETENTION: RetentionDays = { minuteRetentionDays: 35, quarterRetentionDays: 400, hourRetentionDays: 800, dayRetentionDays: 3660 };

const LEGACY_METRICS = ['pageviews', 'events', 'visitors'] as const;

function legacyMetrics(m: QueryMetrics): Metrics {
  return { pageviews: m.pageviews ?? 0, events: m.events ?? 0, visitors: m.visitors ?? 0 };
}

function checkRange(from: number, to: number): void {
  if (to <= from) throw new SluiceError('QUERY_INVALID', `"to" (${to}) must be after "from" (${from})`);
}

export function createQueryService(deps: QueryServiceDeps): QueryService {
  const { cache } = deps;
  const ttlMs = deps.cacheTtlMs ?? DEFAULT_CACHE_TTL_MS;
  const logger = deps.logger ?? silentLogger();
  const engine: QueryEngine = createQueryEngine({
    store: deps.store,
    archive: deps.archive,
    settings: deps.settings ?? configSiteSettings({}),
    retention: deps.retention ?? DEFAULT_RETENTION,
    defaultTimeZone: deps.defaultTimeZone ?? 'UTC',
    maxRawScanEvents: deps.maxRawScanEvents ?? 2_000_000,
    sessionTimeoutMs: deps.sessionTimeoutMs ?? 30 * 60_000,
    tierUsableBefore: deps.tierUsableBefore,
    provenance: deps.provenance,
    now: deps.now,
  });

  async function cached(spec: QuerySpec): Promise<QueryResponse> {
    // Watermark before rows: a bucket the response calls final has its final row in what we read.
    const watermark = await deps.store.watermark();
    if (!cache || spec.needsRaw) return engine.execute(spec, watermark);
    const scope = { site: spec.site, fromMs: spec.comparison?.fromMs ?? spec.range.fromMs, toMs: spec.range.toMs };
    let ticket: CacheTicket | undefined;
    try {
      const found = await cache.get(scope, `run:${spec.key}`);
      ticket = found.ticket;
      if (found.value !== undefined) return { ...(JSON.parse(found.value) as QueryResponse), watermark };
    } catch (e) {
      logger.warn({ err: e, site: spec.site }, 'query cache read failed; reading the store');
    }
    const response = await engine.execute(spec, watermark);
    if (ticket) {
      try {
        await cache.set(ticket, JSON.stringify(response), ttlMs);
      } catch (e) {
        logger.warn({ err: e, site: spec.site }, 'query cache write failed');
      }
    }
    return response;
  }

  const utc = (site: string, from: number, to: number) => ({ site, date_range: { from, to }, time_zone: 'UTC' });

  return {
    async run(req) {
      return cached(await engine.spec(req));
    },

    runLive(req) {
      return engine.run(req);
    },

    spec(req) {
      return engine.spec(req);
    },

    async timeseries(req) {
      checkRange(req.from, req.to);
      const r = await cached(await engine.spec({ ...utc(req.site, req.from, req.to), metrics: [...LEGACY_METRICS], interval: req.interval }));
      const points = r.rows.map((p) => ({ t: 't' in p ? p.t : 0, ...legacyMetrics(p.metrics) }));
      return { site: req.site, from: req.from, to: req.to, interval: req.interval, points, watermark: r.watermark };
    },

    async totals(req) {
      checkRange(req.from, req.to);
      const r = await cached(await engine.spec({ ...utc(req.site, req.from, req.to), metrics: [...LEGACY_METRICS] }));
      return { site: req.site, from: req.from, to: req.to, totals: legacyMetrics(r.totals), watermark: r.watermark };
    },

    async breakdown(req) {
      checkRange(req.from, req.to);
      const r = await cached(await engine.spec({
        ...utc(req.site, req.from, req.to), metrics: ['pageviews'], dimensions: [req.dimension], limit: req.limit ?? 10,
      }));
      const rows = r.rows.map((row) => ({ value: 'value' in row ? row.value : '', pageviews: row.metrics.pageviews ?? 0 }));
      return { site: req.site, from: req.from, to: req.to, dimension: req.dimension, rows, watermark: r.watermark };
    },

    async minutes(site, fromMs, toMs) {
      const r = await engine.run({ ...utc(site, fromMs, toMs), metrics: [...LEGACY_METRICS], interval: 'minute' });
      return {
        points: r.rows.map((p) => ({ t: 't' in p ? p.t : 0, ...legacyMetrics(p.metrics) })),
        totals: legacyMetrics(r.totals),
        watermark: r.watermark,
      };
    },
  };
}
