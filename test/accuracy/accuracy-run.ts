/**
 * One accuracy run against a running server, whatever its mode: send the generated traffic
 * over RSocket (acknowledged batches, in send order), close the windows, wait until the
 * watermark says every bucket of the traffic is final, then ask `query.run` every question the
 * reference can answer and compare. Counts must be equal; unique counts within four standard
 * errors of their sketch's precision (hyperloglog.ts), with a floor of 2 for tiny counts;
 * ratios (bounce rate, visit duration, views per visit) within float rounding of the exact ones.
 */
import type { QueryFilter, QueryMetricName, QueryMetrics, QueryRequest, QueryResponse } from '../../protocol/query-schema.js';
import type { IngestAck } from '../../protocol/schema.js';
import { DIMENSION_KINDS, DIMENSION_SKETCH_PRECISION, DIMENSIONS, type DimensionName, type DimensionValues } from '../../src/aggregate/rollup.js';
import type { SluiceClient } from '../../src/client/sluice-client.js';
import { waitFor } from '../support/wait-for.js';
import { globToRegExp, type Agg, type Contribution, type Reference } from './reference.js';
import { BOT_AGENTS } from './traffic-tables.js';
import { batches, type SiteSpec, type Traffic, type TimeWindow, type WireEvent } from './traffic-generator.js';
import { localDayStart, nextLocalDayStart } from './time-zones.js';

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
/** Relative standard error 1.04/√(2^p) (hyperloglog.ts). */
const sigma = (p: number) => 1.04 / Math.sqrt(2 ** p);
const TOTAL_PRECISION = 14;

export interface SendLedger {
  readonly batches: number;
  readonly accepted: number;
  readonly duplicates: number;
  readonly rejected: ReadonlyArray<{ readonly event: WireEvent; readonly code: string; readonly message: string }>;
}

/**
 * Sends the traffic in send order, in batches of `batchSize`, batch i through clients[i % n],
 * each acknowledged before the next is sent, so that every partition of the log holds its
 * events in send order (what the reference's lateness assumes).
 */
export async function sendTraffic(traffic: Traffic, clients: readonly SluiceClient[], batchSize = 500): Promise<SendLedger> {
  let accepted = 0;
  let duplicates = 0;
  const rejected: Array<SendLedger['rejected'][number]> = [];
  const chunks = batches(traffic.sent.map((s) => s.wire), batchSize);
  for (let i = 0; i < chunks.length; i++) {
    const chunk = chunks[i]!;
    const ack: IngestAck = await clients[i % clients.length]!.sendBatch(chunk);
    accepted += ack.accepted;
    duplicates += ack.duplicates;
    for (const r of ack.rejected) rejected.push({ event: chunk[r.index]!, code: r.code, message: r.message });
  }
  return { batches: chunks.length, accepted, duplicates, rejected };
}

/**
 * One bot pageview per site at the current time: the watermark of every partition holding a
 * site moves to now, which closes every bucket of the traffic, and bots count nowhere. (Runs
 * set idleAdvanceMs high, so that a partition that waits for the first event while processes
 * start does not move its watermark past the whole traffic by the clock.)
 */
export async function closeWindows(traffic: Traffic, client: SluiceClient, nowMs: number): Promise<void> {
  const events: WireEvent[] = traffic.sites.map((s, i) => ({
    id: `close-${i}-${nowMs}`, type: 'pageview', site: s.id, timestamp: nowMs, url: `https://${s.hosts[0]}/`, userAgent: BOT_AGENTS[0]!, ip: '192.0.2.250',
  }));
  const ack = await client.sendBatch(events);
  if (ack.accepted + ack.duplicates !== events.length) throw new Error(`closing events not accepted: ${JSON.stringify(ack)}`);
}

/** Waits until query.run reports a watermark at or after `finalAtMs` (every bucket before it final). */
export async function awaitWatermark(client: SluiceClient, site: string, finalAtMs: number, deadlineMs: number): Promise<number> {
  let last: number | null = null;
  return waitFor(async () => {
    const r = await client.query({ site, metrics: ['pageviews'], date_range: { from: finalAtMs - HOUR_MS, to: finalAtMs } });
    last = r.watermark;
    return r.watermark !== null && r.watermark >= finalAtMs ? r.watermark : undefined;
  }, { what: `a watermark at or after ${new Date(finalAtMs).toISOString()} (last seen ${String(last)})`, deadlineMs, intervalMs: 200 });
}

export interface Mismatch {
  readonly site: string;
  /** Which question: 'totals window 2', 'hour series window 1', 'breakdown source (span)'… */
  readonly query: string;
  /** The series point (its local label) or the breakdown value, '' for totals. */
  readonly at: string;
  readonly metric: string;
  readonly expected: number | string | null;
  readonly actual: number | string | null;
  readonly tolerance: number;
  /** What the wrong answer is explained by, when a what-if reference explains it. */
  note?: string;
}

export function formatMismatch(m: Mismatch): string {
  const diff = typeof m.expected === 'number' && typeof m.actual === 'number' ? ` (off by ${+(m.actual - m.expected).toFixed(6)}, tolerance ${+m.tolerance.toFixed(6)})` : '';
  return `${m.site} · ${m.query}${m.at ? ` · ${m.at}` : ''} · ${m.metric}: expected ${JSON.stringify(m.expected)}, got ${JSON.stringify(m.actual)}${diff}${m.note ? ` — ${m.note}` : ''}`;
}

const LATE_NOTE = 'equals the answer with the late-lane events counted';

export type Tolerance = 'exact' | 'ratio' | { readonly precision: number } | { readonly absolute: number };

/** The metric values the reference gives a cell. */
type Expected = Partial<Record<QueryMetricName, number | null>>;

function expectedOf(a: Agg | undefined, metrics: readonly QueryMetricName[]): Expected {
  const x = a ?? { pageviews: 0, events: 0, visits: 0, bounces: 0, durationMs: 0, visitors: new Set<string>() };
  const out: Expected = {};
  for (const m of metrics) {
    switch (m) {
      case 'visitors': out.visitors = x.visitors.size; break;
      case 'visits': out.visits = x.visits; break;
      case 'pageviews': out.pageviews = x.pageviews; break;
      case 'events': out.events = x.events; break;
      case 'bounce_rate': out.bounce_rate = x.visits === 0 ? null : (100 * x.bounces) / x.visits; break;
      case 'visit_duration': out.visit_duration = x.visits === 0 ? null : x.durationMs / x.visits / 1000; break;
      case 'views_per_visit': out.views_per_visit = x.visits === 0 ? null : x.pageviews / x.visits; break;
      default: throw new Error(`no reference for ${m} here`);
    }
  }
  return out;
}

/** Collects mismatches of one run. */
export class Comparer {
  readonly mismatches: Mismatch[] = [];
  compared = 0;
  queries = 0;

  constructor(private readonly client: SluiceClient) {}

  async run(req: QueryRequest): Promise<QueryResponse> {
    this.queries++;
    return this.client.query(req);
  }

  /**
   * Compare one metric. Tolerance: 'exact' for counts; a precision for HyperLogLog estimates
   * (four standard errors, at least 2); a number for an explicit absolute tolerance.
   */
  check(site: string, query: string, at: string, metric: string, expected: number | null, actual: number | null | undefined, tolerance: Tolerance, whatIfLate?: number | null): void {
    this.compared++;
    const got = actual === undefined ? null : actual;
    const ok = (want: number | null): { ok: boolean; allowed: number } => {
      if (want === null || got === null) return { ok: want === got, allowed: 0 };
      const allowed = tolerance === 'exact' ? 0 : tolerance === 'ratio' ? 1e-9 * Math.max(1, Math.abs(want))
        : 'precision' in tolerance ? Math.max(2, 4 * sigma(tolerance.precision) * want) : tolerance.absolute;
      return { ok: Math.abs(got - want) <= allowed, allowed };
    };
    const verdict = ok(expected);
    if (verdict.ok) return;
    const m: Mismatch = { site, query, at, metric, expected, actual: got, tolerance: verdict.allowed };
    if (whatIfLate !== undefined && whatIfLate !== expected && ok(whatIfLate).ok) m.note = LATE_NOTE;
    this.mismatches.push(m);
  }

  /** Compare every requested metric of a row, point or total against the reference cell. */
  checkMetrics(site: string, query: string, at: string, expected: Expected, actual: QueryMetrics | undefined, visitorsPrecision: number, whatIfLate?: Expected): void {
    for (const [metric, value] of Object.entries(expected) as Array<[QueryMetricName, number | null]>) {
      const got = actual?.[metric];
      if (typeof got === 'object' && got !== null) {
        this.mismatches.push({ site, query, at, metric, expected: value, actual: JSON.stringify(got), tolerance: 0 });
        continue;
      }
      // Ratios of exact counts are exact up to float rounding; visitor-based ratios are checked as goals.
      const tolerance: Tolerance = metric === 'visitors' ? { precision: visitorsPrecision }
        : metric === 'bounce_rate' || metric === 'visit_duration' || metric === 'views_per_visit' ? 'ratio' : 'exact';
      this.check(site, query, at, metric, value, got, tolerance, whatIfLate?.[metric]);
    }
  }
}

const SESSION_METRICS: readonly QueryMetricName[] = ['visitors', 'visits', 'pageviews', 'events', 'bounce_rate', 'visit_duration', 'views_per_visit'];
const EVENT_METRICS: readonly QueryMetricName[] = ['visitors', 'pageviews', 'events'];

/** [local midnight before the window, local midnight after it) in the site's zone. */
export function localDays(zone: string, w: TimeWindow): TimeWindow {
  return { fromMs: localDayStart(zone, w.fromMs), toMs: nextLocalDayStart(zone, w.toMs - 1) };
}

export interface CompareOptions {
  /** Also ask filtered questions (the raw-archive path). */
  readonly filters?: boolean;
  /** Progress lines (one per site). */
  readonly log?: (line: string) => void;
  /** Sites compared at once (default 4). */
  readonly concurrency?: number;
  /** The reference with late events counted (countLate): mismatches it explains are labelled. */
  readonly whatIfLate?: Reference;
}

/** Every question for every site; `concurrency` sites at a time (their queries in sequence). */
export async function compareAll(client: SluiceClient, traffic: Traffic, ref: Reference, options: CompareOptions = {}): Promise<Comparer> {
  const cmp = new Comparer(client);
  const queue = [...traffic.sites];
  const worker = async () => {
    for (let site = queue.shift(); site; site = queue.shift()) {
      await compareSite(cmp, traffic, ref, site, options);
      options.log?.(`${site.id}: ${cmp.queries} queries, ${cmp.compared} values, ${cmp.mismatches.length} mismatches so far`);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 4 }, worker));
  const order = new Map(traffic.sites.map((s, i) => [s.id, i]));
  cmp.mismatches.sort((a, b) => (order.get(a.site) ?? 0) - (order.get(b.site) ?? 0) || (a.query < b.query ? -1 : a.query > b.query ? 1 : 0));
  return cmp;
}

/**
 * The range a response answered: rollups answer whole minutes, so a request that cuts a minute
 * is resolved to minute boundaries (reported in `range`). The reference is asked over the same
 * range; the resolved one must be whole minutes within a minute of the request.
 */
function answeredRange(cmp: Comparer, site: string, query: string, requested: TimeWindow, res: QueryResponse): TimeWindow {
  const { from, to } = res.range;
  cmp.compared++;
  const aligned = from % MINUTE_MS === 0 && to % MINUTE_MS === 0;
  if (!aligned || Math.abs(from - requested.fromMs) >= MINUTE_MS || Math.abs(to - requested.toMs) >= MINUTE_MS) {
    cmp.mismatches.push({
      site, query, at: '', metric: 'range',
      expected: `[${new Date(requested.fromMs).toISOString()}, ${new Date(requested.toMs).toISOString()}) to the minute`,
      actual: `[${new Date(from).toISOString()}, ${new Date(to).toISOString()})`, tolerance: 0,
    });
  }
  return { fromMs: from, toMs: to };
}

async function compareSite(cmp: Comparer, traffic: Traffic, ref: Reference, site: SiteSpec, options: CompareOptions): Promise<void> {
  const zone = site.timeZone;
  const ranges = traffic.windows.map((w, i) => ({ name: `window ${i + 1}`, ...localDays(zone, w) }));
  const span: TimeWindow & { name: string } = { name: 'span', fromMs: ranges[0]!.fromMs, toMs: ranges[ranges.length - 1]!.toMs };
  const label = (r: TimeWindow) => `[${new Date(r.fromMs).toISOString()}, ${new Date(r.toMs).toISOString()})`;

  // Totals over each window, the whole span, and a range that cuts visits and hours.
  const last = traffic.windows[traffic.windows.length - 1]!;
  const cut = { name: 'unaligned', fromMs: last.fromMs + 7 * HOUR_MS + 13 * MINUTE_MS, toMs: last.fromMs + 19 * HOUR_MS + 47 * MINUTE_MS };
  for (const r of [...ranges, span, cut]) {
    const res = await cmp.run({ site: site.id, metrics: [...SESSION_METRICS], date_range: { from: r.fromMs, to: r.toMs } });
    checkZone(cmp, site, res, zone);
    const q = `totals ${r.name} ${label(r)}`;
    const a = answeredRange(cmp, site.id, q, r, res);
    cmp.checkMetrics(site.id, q, '', expectedOf(ref.totals(site.id, a.fromMs, a.toMs), SESSION_METRICS), res.totals, TOTAL_PRECISION);
  }

  // Local hour and day series over each window (the DST day of New York among them), and hours of the cut range.
  for (const r of [...ranges, cut]) {
    for (const interval of ['hour', 'day'] as const) {
      if (r === cut && interval === 'day') continue;
      const res = await cmp.run({ site: site.id, metrics: [...SESSION_METRICS], date_range: { from: r.fromMs, to: r.toMs }, interval });
      const q = `${interval} series ${r.name}`;
      const a = answeredRange(cmp, site.id, q, r, res);
      compareSeries(cmp, site.id, q, res, ref.series(site.id, a.fromMs, a.toMs, interval, zone));
    }
  }

  // An explicit zone other than the site's: days in Kathmandu (+05:45) for the UTC sites, in UTC for the others.
  {
    const other = zone === 'UTC' ? 'Asia/Kathmandu' : 'UTC';
    const r = localDays(other, last);
    const res = await cmp.run({ site: site.id, metrics: ['visitors', 'visits', 'pageviews', 'events'], date_range: { from: r.fromMs, to: r.toMs }, interval: 'day', time_zone: other });
    checkZone(cmp, site, res, other);
    compareSeries(cmp, site.id, `day series in ${other}`, res, ref.series(site.id, r.fromMs, r.toMs, 'day', other));
  }

  // Minutes across the DST change (the minute tier, around the repeated hour).
  if (traffic.dst && zone === traffic.dst.zone) {
    const r = { fromMs: traffic.dst.atMs - 75 * MINUTE_MS, toMs: traffic.dst.atMs + 75 * MINUTE_MS };
    const res = await cmp.run({ site: site.id, metrics: ['visitors', 'pageviews', 'events', 'visits'], date_range: { from: r.fromMs, to: r.toMs }, interval: 'minute' });
    const expected = new Map<number, Agg>();
    for (const c of ref.contributions(site.id, r.fromMs, r.toMs)) {
      const t = Math.floor(c.event.ts / MINUTE_MS) * MINUTE_MS;
      const a = expected.get(t) ?? { pageviews: 0, events: 0, visits: 0, bounces: 0, durationMs: 0, visitors: new Set<string>() };
      a.pageviews += c.pageviews;
      a.events += c.events;
      a.visits += c.visits;
      a.visitors.add(c.event.identity);
      expected.set(t, a);
    }
    compareSeries(cmp, site.id, 'minute series across the DST change', res, expected);
  }

  // Every dimension over the whole span, and the session dimensions of each window on their own.
  for (const d of DIMENSIONS) {
    if (d === 'prop') continue;
    for (const r of d === 'source' || d === 'channel' || d === 'entry_page' ? [span, ...ranges] : [span]) {
      await compareBreakdown(cmp, ref, site.id, d, r, `breakdown ${d} ${r.name}`);
    }
  }
  for (const key of ref.propKeys(site.id, span.fromMs, span.toMs)) {
    const res = await cmp.run({ site: site.id, metrics: [...EVENT_METRICS], dimensions: [`prop:${key}`], date_range: { from: span.fromMs, to: span.toMs }, limit: 1000 });
    compareRows(cmp, site.id, `breakdown prop:${key} span`, res, ref.propBreakdown(site.id, span.fromMs, span.toMs, key), EVENT_METRICS, DIMENSION_SKETCH_PRECISION);
  }

  // Goals: conversions, unique conversions and conversion rate per goal; then revenue, which the
  // engine may answer from the raw archive (a property goal's revenue is not in the rollups).
  for (const r of [span, ...ranges]) {
    const visitors = ref.totals(site.id, r.fromMs, r.toMs).visitors.size;
    const goals = ref.goals(site.id, site.goals, r.fromMs, r.toMs);
    const goalsWithLate = options.whatIfLate?.goals(site.id, site.goals, r.fromMs, r.toMs);
    for (const metrics of [['conversions', 'unique_conversions', 'conversion_rate'], ['conversions', 'revenue']] as QueryMetricName[][]) {
      const res = await cmp.run({ site: site.id, metrics, dimensions: ['goal'], date_range: { from: r.fromMs, to: r.toMs }, limit: 1000 });
      const q = `goal breakdown (${metrics.join(', ')}) ${r.name}${res.meta.raw_archive_scanned ? ' [raw archive]' : ''}`;
      const rows = new Map(res.rows.map((row) => ['value' in row ? row.value : String(row.t), row.metrics]));
      for (const [gi, g] of goals.entries()) {
        const got = rows.get(g.goal.name);
        rows.delete(g.goal.name);
        cmp.check(site.id, q, g.goal.name, 'conversions', g.conversions, got?.conversions, 'exact', goalsWithLate?.[gi]!.conversions);
        if (metrics.includes('revenue')) {
          compareRevenue(cmp, site.id, q, g.goal.name, g.revenue, got?.revenue);
          continue;
        }
        cmp.check(site.id, q, g.goal.name, 'unique_conversions', g.visitors.size, got?.unique_conversions, { precision: DIMENSION_SKETCH_PRECISION });
        // A ratio of two estimates: its tolerance is the numerator's plus the denominator's, relative.
        const rate = visitors === 0 ? null : (100 * g.visitors.size) / visitors;
        const rateTolerance = rate === null ? 0 : rate * 4 * (sigma(DIMENSION_SKETCH_PRECISION) + sigma(TOTAL_PRECISION)) + (100 * 2) / Math.max(1, visitors);
        cmp.check(site.id, q, g.goal.name, 'conversion_rate', rate, got?.conversion_rate, { absolute: rateTolerance });
      }
      for (const [value] of rows) cmp.mismatches.push({ site: site.id, query: q, at: value, metric: 'row', expected: null, actual: 'unexpected row', tolerance: 0 });
    }
  }

  if (options.filters) await compareFiltered(cmp, ref, site, last, options.whatIfLate);
}

function checkZone(cmp: Comparer, site: SiteSpec, res: QueryResponse, zone: string): void {
  cmp.compared++;
  if (res.time_zone !== zone) cmp.mismatches.push({ site: site.id, query: 'time zone', at: '', metric: 'time_zone', expected: zone, actual: res.time_zone, tolerance: 0 });
}

function compareSeries(cmp: Comparer, site: string, query: string, res: QueryResponse, expected: Map<number, Agg>): void {
  const seen = new Set<number>();
  for (const row of res.rows) {
    if (!('t' in row)) {
      cmp.mismatches.push({ site, query, at: row.value, metric: 'row', expected: 'a point', actual: 'a breakdown row', tolerance: 0 });
      continue;
    }
    seen.add(row.t);
    const metrics = Object.keys(row.metrics) as QueryMetricName[];
    cmp.checkMetrics(site, query, `${row.label} (${new Date(row.t).toISOString()})`, expectedOf(expected.get(row.t), metrics), row.metrics, TOTAL_PRECISION);
  }
  for (const [t, a] of expected) {
    if (!seen.has(t)) cmp.mismatches.push({ site, query, at: new Date(t).toISOString(), metric: 'point', expected: `a point with ${a.pageviews} pageviews`, actual: 'no point', tolerance: 0 });
  }
}

function compareRows(
  cmp: Comparer, site: string, query: string, res: QueryResponse, expected: Map<string, Agg>, metrics: readonly QueryMetricName[], precision: number,
  whatIfLate?: Map<string, Agg>,
): void {
  const got = new Map<string, QueryMetrics>();
  for (const row of res.rows) {
    if (!('value' in row)) continue;
    got.set(row.value, row.metrics);
  }
  cmp.compared++;
  if (res.meta.includes_other || got.has('(other)')) cmp.mismatches.push({ site, query, at: '(other)', metric: 'row', expected: 'no "(other)" row (every dimension is under the cap)', actual: JSON.stringify(got.get('(other)') ?? null), tolerance: 0 });
  for (const [value, a] of expected) {
    const row = got.get(value);
    if (!row) {
      if (isZeroAgg(a)) continue;
      cmp.mismatches.push({ site, query, at: value, metric: 'row', expected: JSON.stringify(expectedOf(a, metrics)), actual: 'missing', tolerance: 0 });
      continue;
    }
    cmp.checkMetrics(site, query, value, expectedOf(a, metrics), row, precision, whatIfLate && expectedOf(whatIfLate.get(value), metrics));
  }
  for (const [value, row] of got) {
    if (value === '(other)' || expected.has(value)) continue;
    // A row the reference does not have must be all zeros.
    cmp.checkMetrics(site, query, value, expectedOf(undefined, metrics), row, precision);
  }
}

const isZeroAgg = (a: Agg) => a.pageviews === 0 && a.events === 0 && a.visits === 0 && a.bounces === 0 && a.durationMs === 0 && a.visitors.size === 0;

async function compareBreakdown(cmp: Comparer, ref: Reference, site: string, d: DimensionName, r: TimeWindow, query: string): Promise<void> {
  const kind = DIMENSION_KINDS[d];
  const metrics: readonly QueryMetricName[] = kind === 'session' ? SESSION_METRICS : kind === 'exit' ? ['visits'] : EVENT_METRICS;
  const res = await cmp.run({ site, metrics: [...metrics], dimensions: [d], date_range: { from: r.fromMs, to: r.toMs }, limit: 1000 });
  compareRows(cmp, site, query, res, ref.breakdown(site, r.fromMs, r.toMs, d), metrics, DIMENSION_SKETCH_PRECISION);
  // The breakdown's totals are the range's totals (every value, not just the page).
  if (kind === 'session') {
    cmp.checkMetrics(site, `${query} (totals)`, '', expectedOf(ref.totals(site, r.fromMs, r.toMs), metrics), res.totals, TOTAL_PRECISION);
  }
}

function compareRevenue(cmp: Comparer, site: string, query: string, at: string, expected: Map<string, number>, actual: Record<string, number> | null | undefined): void {
  const got = actual ?? {};
  for (const currency of new Set([...expected.keys(), ...Object.keys(got)])) {
    const want = (expected.get(currency) ?? 0) / 1e6;
    cmp.check(site, query, at, `revenue ${currency}`, want, got[currency] ?? 0, { absolute: 1e-6 });
  }
}

/** Filtered questions: the raw-archive path, checked against the same definition. */
async function compareFiltered(cmp: Comparer, ref: Reference, site: SiteSpec, window: TimeWindow, whatIfLate: Reference | undefined): Promise<void> {
  const r = localDays(site.timeZone, window);
  const range = { from: r.fromMs, to: r.toMs };
  const session = (d: keyof DimensionValues, values: readonly string[]) => (c: Contribution) => values.includes(c.entry[d] ?? '\u0000none');
  const cases: Array<{ name: string; filters: QueryFilter[]; keep: (c: Contribution) => boolean; metrics: readonly QueryMetricName[] }> = [
    { name: 'channel is organic_search', filters: [{ dimension: 'channel', op: 'is', value: 'organic_search' }], keep: session('channel', ['organic_search']), metrics: SESSION_METRICS },
    { name: 'country is DE, GB or FR', filters: [{ dimension: 'country', op: 'is', value: ['DE', 'GB', 'FR'] }], keep: session('country', ['DE', 'GB', 'FR']), metrics: SESSION_METRICS },
    {
      name: 'page matches /docs/**', filters: [{ dimension: 'page', op: 'matches', value: '/docs/**' }],
      keep: (c) => c.event.dims.page !== null && globToRegExp('/docs/**').test(c.event.dims.page), metrics: EVENT_METRICS,
    },
    {
      name: 'device is mobile and entry page contains blog',
      filters: [{ dimension: 'device', op: 'is', value: 'mobile' }, { dimension: 'entry_page', op: 'contains', value: 'blog' }],
      keep: (c) => c.entry.device === 'mobile' && (c.entry.entry_page ?? '').includes('blog'), metrics: SESSION_METRICS,
    },
  ];
  // Over the window's local days, and over ranges that begin while visits are under way (at the
  // UTC and the local midnight inside the window, and at an odd minute): a visit that straddles
  // the start contributes only its in-range part, which takes its earlier events to know.
  const starts = [
    { name: 'window days', fromMs: r.fromMs },
    { name: 'from the UTC midnight inside', fromMs: Math.floor(window.toMs / DAY_MS) * DAY_MS },
    { name: 'from the local midnight inside', fromMs: localDayStart(site.timeZone, window.toMs - 1) },
    { name: 'from an odd minute', fromMs: Math.floor((window.fromMs + 9 * HOUR_MS + 7 * MINUTE_MS) / MINUTE_MS) * MINUTE_MS },
  ].filter((x, i, all) => i === 0 || (x.fromMs > window.fromMs && all.findIndex((y) => y.fromMs === x.fromMs) === i));
  for (const start of starts) {
    for (const f of cases) {
      const res = await cmp.run({ site: site.id, metrics: [...f.metrics], filters: f.filters, date_range: { from: start.fromMs, to: r.toMs } });
      cmp.checkMetrics(site.id, `filtered totals ${start.name} [${new Date(start.fromMs).toISOString()}, …): ${f.name}`, '',
        expectedOf(ref.totalsWhere(site.id, start.fromMs, r.toMs, f.keep), f.metrics), res.totals, TOTAL_PRECISION,
        whatIfLate && expectedOf(whatIfLate.totalsWhere(site.id, start.fromMs, r.toMs, f.keep), f.metrics));
    }
  }
  const res = await cmp.run({ site: site.id, metrics: [...SESSION_METRICS], dimensions: ['source'], filters: cases[1]!.filters, date_range: range, limit: 1000 });
  compareRows(cmp, site.id, 'filtered breakdown source: country is DE, GB or FR', res, ref.breakdownWhere(site.id, r.fromMs, r.toMs, 'source', cases[1]!.keep), SESSION_METRICS, DIMENSION_SKETCH_PRECISION,
    whatIfLate?.breakdownWhere(site.id, r.fromMs, r.toMs, 'source', cases[1]!.keep));
}

/** The report: the summary, then mismatches no what-if explains, then some that one does. */
export function report(mismatches: readonly Mismatch[], limit = 80): string {
  const unexplained = mismatches.filter((m) => m.note === undefined);
  const explained = mismatches.filter((m) => m.note !== undefined);
  return `${summarise(mismatches)}\n\n${[...unexplained.slice(0, limit), ...explained.slice(0, Math.max(10, limit - unexplained.length))].map(formatMismatch).join('\n')}`;
}

/** Mismatches grouped by query kind and metric, for a short summary. */
export function summarise(mismatches: readonly Mismatch[]): string {
  const groups = new Map<string, { n: number; explained: number }>();
  for (const m of mismatches) {
    const key = `${m.query.replace(/ \[\d[^\]]*\)/, '').replace(/window \d+|span|unaligned/, '…')} / ${m.metric}`;
    const g = groups.get(key) ?? { n: 0, explained: 0 };
    g.n++;
    if (m.note === LATE_NOTE) g.explained++;
    groups.set(key, g);
  }
  return [...groups].sort((a, b) => b[1].n - a[1].n)
    .map(([k, g]) => `${g.n} × ${k}${g.explained > 0 ? ` (${g.explained === g.n ? 'all' : g.explained} ${LATE_NOTE})` : ''}`).join('\n');
}
