/**
 * Request/response queries over the RollupStore. Unique visitors are always the HyperLogLog
 * merge of the buckets a point covers, never a sum of per-bucket counts (DESIGN invariant 4).
 * Intervals are UTC-aligned here; time-zone-aware intervals come with the query API issue.
 */
import {
  LIMITS,
  type BreakdownRequest, type BreakdownResponse, type BreakdownRow, type Interval, type Metrics,
  type TimeseriesPoint, type TimeseriesRequest, type TimeseriesResponse, type TotalsRequest, type TotalsResponse,
} from '../../protocol/schema.js';
import { HyperLogLog } from '../aggregate/hyperloglog.js';
import { OTHER_KEY, type MinuteRollup, type RollupStore } from '../aggregate/rollup-store.js';
import { SluiceError } from '../errors.js';

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

export function createQueryService(deps: { store: RollupStore }): QueryService {
  const { store } = deps;

  return {
    async timeseries(req) {
      checkRange(req.from, req.to);
      const step = INTERVAL_MS[req.interval];
      const start = Math.floor(req.from / step) * step;
      const count = Math.ceil((req.to - start) / step);
      if (count > LIMITS.maxSeriesPoints) {
        throw new SluiceError('QUERY_INVALID', `${count} points asked for; at most ${LIMITS.maxSeriesPoints} per series (use a coarser interval)`);
      }
      const [rows, watermark] = await Promise.all([store.read(req.site, req.from, req.to), store.watermark()]);
      return { site: req.site, from: req.from, to: req.to, interval: req.interval, points: toPoints(rows, req.from, req.to, step), watermark };
    },

    async totals(req) {
      checkRange(req.from, req.to);
      const [rows, watermark] = await Promise.all([store.read(req.site, req.from, req.to), store.watermark()]);
      return { site: req.site, from: req.from, to: req.to, totals: sumMetrics(rows), watermark };
    },

    async breakdown(req) {
      checkRange(req.from, req.to);
      const [rows, watermark] = await Promise.all([store.read(req.site, req.from, req.to), store.watermark()]);
      const counts = new Map<string, number>();
      for (const r of rows) {
        const dim = req.dimension === 'page' ? r.pages : r.sources;
        for (const [k, n] of Object.entries(dim)) counts.set(k, (counts.get(k) ?? 0) + n);
      }
      return { site: req.site, from: req.from, to: req.to, dimension: req.dimension, rows: topN(counts, req.limit ?? 10), watermark };
    },

    async minutes(site, fromMs, toMs) {
      const [rows, watermark] = await Promise.all([store.read(site, fromMs, toMs), store.watermark()]);
      return { points: toPoints(rows, fromMs, toMs, MINUTE_MS), totals: sumMetrics(rows), watermark };
    },
  };
}
