/**
 * The engine over the memory store with random rows in every tier, against brute-force merges
 * of the minute rows alone: totals, series in +05:30 / +05:45 / DST zones, breakdowns with
 * paging and "(other)", comparison, goals, and the rules that make a query invalid.
 */
import { expect } from 'chai';
import { QueryResponse as QueryResponseSchema, type QueryBreakdownRow, type QueryMetricName, type QueryMetrics, type QueryRequest, type QueryResponse } from '../../protocol/query-schema.js';
import { compileValidator } from '../../protocol/validate.js';
import type { Goal } from '../../protocol/schema.js';
import { MemoryRollupStore } from '../adapters/memory/memory-rollup-store.js';
import type { MutableDimCell, RollupAccumulator } from '../aggregate/rollup-merge.js';
import { OTHER_KEY, splitPropKey, type Counts, type Rollup } from '../aggregate/rollup.js';
import { SluiceError } from '../errors.js';
import { createQueryEngine, type QueryEngine } from './query-engine.js';
import { bruteMerge, randomMinuteRows, rollTiers, storeWithTiers } from './query-test-kit.js';
import { configSiteSettings } from './site-settings.js';
import { resolveDateRange, splitIntervals } from './time-range.js';

const SITE = 'engine.example';
const NOW = Date.UTC(2026, 2, 20);
const DATA_FROM = Date.UTC(2026, 2, 4);
const DATA_TO = Date.UTC(2026, 2, 12);
const FOREVER = { minuteRetentionDays: 100_000, quarterRetentionDays: 100_000, hourRetentionDays: 100_000, dayRetentionDays: 100_000 };

const GOALS: Goal[] = [
  { name: 'Read blog', page: '/blog/**' },
  { name: 'Signup', event: 'signup' },
  { name: 'Pro purchase', event: 'purchase', props: { plan: 'pro' } },
  { name: 'Purchase', event: 'purchase' },
];

const ratio = (n: number, d: number, k = 1) => (d === 0 ? null : (n / d) * k);

function expectedFrom(c: Counts, visitors: number | null, metrics: readonly QueryMetricName[]): QueryMetrics {
  const m: QueryMetrics = {};
  for (const name of metrics) {
    if (name === 'visitors') m.visitors = visitors;
    if (name === 'visits') m.visits = c.visits;
    if (name === 'pageviews') m.pageviews = c.pageviews;
    if (name === 'events') m.events = c.events;
    if (name === 'views_per_visit') m.views_per_visit = ratio(c.pageviews, c.visits);
    if (name === 'bounce_rate') m.bounce_rate = ratio(c.bounces, c.visits, 100);
    if (name === 'visit_duration') m.visit_duration = ratio(c.durationMs, c.visits, 1 / 1000);
  }
  return m;
}

const cellMetrics = (cell: MutableDimCell, metrics: readonly QueryMetricName[]) => expectedFrom(cell, cell.visitors ? cell.visitors.count() : 0, metrics);
const totalMetrics = (acc: RollupAccumulator, metrics: readonly QueryMetricName[]) => expectedFrom(acc.totals, acc.visitors.count(), metrics);

/** The rows of a breakdown response. */
const rowsOf = (r: QueryResponse) => r.rows as QueryBreakdownRow[];

function invalid(p: Promise<unknown>): Promise<string> {
  return p.then(() => 'resolved', (e: unknown) => (e instanceof SluiceError ? `${e.code}: ${e.message}` : String(e)));
}

describe('query engine over tiered rollups', function () {
  this.timeout(60_000);
  let rows: Rollup[];
  let engine: QueryEngine;
  let store: MemoryRollupStore;

  before(async () => {
    rows = randomMinuteRows(SITE, DATA_FROM, DATA_TO, 42);
    store = new MemoryRollupStore();
    await storeWithTiers(store, rows);
    await store.upsert(randomMinuteRows('other-site.example', DATA_FROM, DATA_TO, 7, 0.05));
    await store.setWatermark(0, Date.UTC(2026, 2, 11));
    const inner = createQueryEngine({
      store, settings: configSiteSettings({ [SITE]: { timeZone: 'Asia/Kolkata', goals: GOALS } }), retention: FOREVER,
      defaultTimeZone: 'UTC', maxRawScanEvents: 1_000, sessionTimeoutMs: 1_800_000, now: () => NOW,
    });
    // Every response the tests see must match the wire schema, strictly.
    const valid = compileValidator(QueryResponseSchema);
    engine = {
      ...inner,
      async run(req) {
        const r = await inner.run(req);
        const v = valid(r);
        if (!v.ok) throw new Error(`response does not match QueryResponse: ${v.message}`);
        return r;
      },
    };
  });

  const SESSION_METRICS: QueryMetricName[] = ['visitors', 'visits', 'pageviews', 'events', 'views_per_visit', 'bounce_rate', 'visit_duration'];

  it('totals over local days of the site zone (+05:30) equal the minute rows merged', async () => {
    const r = await engine.run({ site: SITE, metrics: SESSION_METRICS, date_range: { from: '2026-03-05', to: '2026-03-08' } });
    const range = resolveDateRange({ from: '2026-03-05', to: '2026-03-08' }, 'Asia/Kolkata', NOW);
    expect(r.time_zone).to.equal('Asia/Kolkata');
    expect(r.range.from).to.equal(Date.UTC(2026, 2, 4, 18, 30));
    expect(r.kind).to.equal('totals');
    expect(r.totals).to.deep.equal(totalMetrics(bruteMerge(rows, range.fromMs, range.toMs), SESSION_METRICS));
    expect(r.meta.tiers).to.deep.equal(['day', 'hour', 'quarter']);
    expect(r.meta.raw_archive_scanned).to.equal(false);
    expect(r.watermark).to.equal(Date.UTC(2026, 2, 11));
  });

  for (const [zone, interval, from, to] of [
    ['Asia/Kathmandu', 'day', '2026-03-04', '2026-03-10'],
    ['Asia/Kathmandu', 'hour', '2026-03-06T03:00', '2026-03-06T20:00'],
    ['America/New_York', 'day', '2026-03-05', '2026-03-10'],
    ['America/New_York', 'hour', '2026-03-08T00:00', '2026-03-08T06:00'],
    ['UTC', 'week', '2026-03-01', '2026-03-14'],
    ['Asia/Kolkata', 'minute', '2026-03-07T10:50', '2026-03-07T11:20'],
  ] as const) {
    it(`a ${interval} series in ${zone} equals the minute rows merged per point`, async () => {
      const r = await engine.run({ site: SITE, metrics: SESSION_METRICS, date_range: { from, to }, interval, time_zone: zone });
      const range = resolveDateRange({ from, to }, zone, NOW);
      const pieces = splitIntervals(range, interval, zone);
      expect(r.kind).to.equal('timeseries');
      expect(r.rows.map((p) => ('t' in p ? [p.t, p.label] : null))).to.deep.equal(pieces.map((p) => [p.t, p.label]));
      r.rows.forEach((p, i) => {
        const piece = pieces[i]!;
        expect(p.metrics, p.metrics && 'label' in p ? p.label : '').to.deep.equal(totalMetrics(bruteMerge(rows, piece.fromMs, piece.toMs), SESSION_METRICS));
      });
      expect(r.totals).to.deep.equal(totalMetrics(bruteMerge(rows, range.fromMs, range.toMs), SESSION_METRICS));
    });
  }

  it('reads quarter, hour and day rows only where the watermark calls buckets final: past it, minute rows', async () => {
    // The aggregator rolls the coarse tiers less often than it writes minute rows (TierRoller):
    // past the watermark a quarter, hour or day row may trail them. Here those are stale on purpose.
    const day = Date.UTC(2026, 2, 9);
    const watermark = day + 6 * 3_600_000 + 30 * 60_000;
    const minutes = randomMinuteRows('stale.example', day, day + 86_400_000, 5);
    const store6 = new MemoryRollupStore();
    await storeWithTiers(store6, minutes);
    const stale = [
      ...await store6.read('stale.example', 'quarter', watermark, day + 86_400_000),
      ...await store6.read('stale.example', 'hour', watermark - 30 * 60_000, day + 86_400_000),
      ...await store6.read('stale.example', 'day', day, day + 1),
    ]
      .map((r) => ({ ...r, totals: { ...r.totals, pageviews: r.totals.pageviews + 1_000_000 } }));
    await store6.upsert(stale);
    const at = createQueryEngine({
      store: store6, settings: configSiteSettings({}), retention: FOREVER, defaultTimeZone: 'UTC', maxRawScanEvents: 1_000,
      sessionTimeoutMs: 1_800_000, now: () => NOW,
    });
    const spec = await at.spec({ site: 'stale.example', metrics: ['pageviews'], date_range: { from: day, to: day + 86_400_000 } });
    const before = await at.execute(spec, watermark);
    expect(before.totals.pageviews).to.equal(bruteMerge(minutes, day, day + 86_400_000).totals.pageviews);
    expect(before.meta.tiers).to.deep.equal(['hour', 'quarter', 'minute']);
    // Once the watermark passes the day, its day row is final and read as it is.
    const after = await at.execute(spec, day + 86_400_000);
    expect(after.meta.tiers).to.deep.equal(['day']);
    expect(after.totals.pageviews).to.be.greaterThan(1_000_000);
  });

  it('past the watermark, still reads a coarse tier where the tier it is rolled from has expired', async () => {
    // A watermark never written (or stuck) must not hide history whose minute rows are gone.
    const day = Date.UTC(2026, 2, 9);
    const minutes = randomMinuteRows('old.example', day, day + 86_400_000, 5);
    const coarseOnly = new MemoryRollupStore();
    await coarseOnly.upsert(rollTiers(minutes));
    const keepMinutesOneDay = { ...FOREVER, minuteRetentionDays: 1 };
    const e = createQueryEngine({
      store: coarseOnly, settings: configSiteSettings({}), retention: keepMinutesOneDay, defaultTimeZone: 'UTC', maxRawScanEvents: 1_000,
      sessionTimeoutMs: 1_800_000, now: () => NOW,
    });
    const r = await e.run({ site: 'old.example', metrics: ['pageviews'], date_range: { from: day, to: day + 86_400_000 } });
    expect(r.watermark).to.equal(null);
    expect(r.totals.pageviews).to.equal(bruteMerge(minutes, day, day + 86_400_000).totals.pageviews);
    expect(r.meta.tiers).to.deep.equal(['quarter']);
  });

  it('where minute retention ends inside a quarter, reads that quarter whole and minutes only after it: nothing twice', async () => {
    // Minutes usable from 01:07:30 (the clock 7.5 minutes past midnight, less 10 days, plus the safety hour).
    const day = Date.UTC(2026, 2, 10);
    const minutes = randomMinuteRows('edge.example', day, day + 3 * 3_600_000, 7);
    const store7 = new MemoryRollupStore();
    await storeWithTiers(store7, minutes);
    const e = createQueryEngine({
      store: store7, settings: configSiteSettings({}), retention: { ...FOREVER, minuteRetentionDays: 10 }, defaultTimeZone: 'UTC', maxRawScanEvents: 1_000,
      sessionTimeoutMs: 1_800_000, now: () => NOW + 450_000,
    });
    const r = await e.run({ site: 'edge.example', metrics: ['pageviews'], date_range: { from: day, to: day + 3 * 3_600_000 } });
    expect(r.watermark).to.equal(null);
    expect(r.totals.pageviews).to.equal(bruteMerge(minutes, day, day + 3 * 3_600_000).totals.pageviews);
  });

  it('a long series reads its totals from the coarse rows of its whole range: the same numbers as its points merged', async () => {
    const req: QueryRequest = { site: SITE, metrics: SESSION_METRICS, date_range: { from: '2026-03-05', to: '2026-03-09' }, interval: 'hour', time_zone: 'UTC', compare: 'previous_period' };
    const r = await engine.run(req);
    const range = resolveDateRange(req.date_range, 'UTC', NOW);
    expect(r.rows).to.have.length(120); // the bare date 'to' is inclusive: five days
    // Points from hour rows, totals from the five day rows (and the comparison's from its own).
    expect(r.meta.tiers).to.deep.equal(['day', 'hour']);
    expect(r.totals).to.deep.equal(totalMetrics(bruteMerge(rows, range.fromMs, range.toMs), SESSION_METRICS));
    expect(r.comparison!.totals).to.deep.equal(totalMetrics(bruteMerge(rows, range.fromMs - 5 * 86_400_000, range.fromMs), SESSION_METRICS));
    r.rows.forEach((p) => {
      const t = (p as { t: number }).t;
      expect(p.metrics).to.deep.equal(totalMetrics(bruteMerge(rows, t, t + 3_600_000), SESSION_METRICS));
    });
  });

  it('breaks down by a session dimension: ranked, paged, the rest in "(other)", totals over all values', async () => {
    const metrics: QueryMetricName[] = ['visitors', 'visits', 'bounce_rate'];
    const req: QueryRequest = { site: SITE, metrics, dimensions: ['source'], date_range: { from: '2026-03-05', to: '2026-03-09' }, limit: 2 };
    const range = resolveDateRange(req.date_range, 'Asia/Kolkata', NOW);
    const acc = bruteMerge(rows, range.fromMs, range.toMs);
    const cells = [...acc.cells('source')].map(([value, cell]) => ({ value, cell, metrics: cellMetrics(cell, metrics) }))
      .sort((a, b) => b.metrics.visitors! - a.metrics.visitors! || (a.value < b.value ? -1 : 1));
    expect(cells).to.have.length(4);

    const first = await engine.run(req);
    expect(first.kind).to.equal('breakdown');
    expect(rowsOf(first).slice(0, 2)).to.deep.equal(cells.slice(0, 2).map((c) => ({ value: c.value, metrics: c.metrics })));
    const other = rowsOf(first)[2]!;
    expect(other).to.include({ value: '(other)' });
    expect(other.metrics.visits).to.equal(cells[2]!.cell.visits + cells[3]!.cell.visits);
    expect(first.meta).to.include({ includes_other: true, total_rows: 4, page: 1, limit: 2 });
    expect(first.totals).to.deep.equal(totalMetrics(acc, metrics));

    const second = await engine.run({ ...req, cursor: first.meta.next_cursor! });
    expect(rowsOf(second).map((r) => r.value)).to.deep.equal([cells[2]!.value, cells[3]!.value]);
    expect(second.meta.next_cursor).to.equal(null);
    expect(second.meta.includes_other).to.equal(false);
    expect(await engine.run({ ...req, page: 2 })).to.deep.equal(second);
    expect(await invalid(engine.run({ ...req, limit: 3, cursor: first.meta.next_cursor! }))).to.match(/^QUERY_INVALID: cursor/);

    const ascending = await engine.run({ ...req, limit: 10, order_by: { metric: 'visits', direction: 'asc' } });
    const visits = rowsOf(ascending).map((r) => r.metrics.visits!);
    expect(visits).to.deep.equal([...visits].sort((a, b) => a - b));
  });

  it('breaks down by page, event, prop:<key> and exit_page', async () => {
    const range = resolveDateRange({ from: '2026-03-06', to: '2026-03-06' }, 'UTC', NOW);
    const acc = bruteMerge(rows, range.fromMs, range.toMs);
    const base = { site: SITE, date_range: { from: '2026-03-06', to: '2026-03-06' }, time_zone: 'UTC', limit: 100 };
    const pages = await engine.run({ ...base, metrics: ['pageviews', 'visitors'], dimensions: ['page'] });
    expect(Object.fromEntries(rowsOf(pages).map((r) => [r.value, r.metrics]))).to.deep.equal(
      Object.fromEntries([...acc.cells('page')].map(([k, c]) => [k, cellMetrics(c, ['pageviews', 'visitors'])])));
    expect(pages.meta.tiers).to.deep.equal(['day']);

    const plans = await engine.run({ ...base, metrics: ['events', 'visitors'], dimensions: ['prop:plan'] });
    const byPlan = new Map<string, number>();
    for (const [k, c] of acc.cells('prop')) {
      const p = splitPropKey(k);
      if (p?.key === 'plan') byPlan.set(p.value, (byPlan.get(p.value) ?? 0) + c.events);
    }
    expect(Object.fromEntries(rowsOf(plans).map((r) => [r.value, r.metrics.events]))).to.deep.equal(Object.fromEntries(byPlan));

    const exits = await engine.run({ ...base, metrics: ['visits'], dimensions: ['exit_page'] });
    expect(Object.fromEntries(rowsOf(exits).map((r) => [r.value, r.metrics.visits]))).to.deep.equal(
      Object.fromEntries([...acc.cells('exit_page')].filter(([, c]) => c.visits !== 0).map(([k, c]) => [k, c.visits])));
  });

  it('compares with the previous period of equal length', async () => {
    const metrics: QueryMetricName[] = ['visitors', 'pageviews'];
    const r = await engine.run({ site: SITE, metrics, date_range: { from: '2026-03-08', to: '2026-03-09' }, interval: 'day', compare: 'previous_period' });
    const range = resolveDateRange({ from: '2026-03-06', to: '2026-03-07' }, 'Asia/Kolkata', NOW);
    expect(r.comparison!.range.from).to.equal(range.fromMs);
    expect(r.comparison!.totals).to.deep.equal(totalMetrics(bruteMerge(rows, range.fromMs, range.toMs), metrics));
    expect(r.comparison!.rows.map((p) => ('label' in p ? p.label : ''))).to.deep.equal(['2026-03-06', '2026-03-07']);

    const b = await engine.run({ site: SITE, metrics, dimensions: ['country'], date_range: { from: '2026-03-08', to: '2026-03-09' }, compare: 'previous_period', limit: 2 });
    const prev = bruteMerge(rows, range.fromMs, range.toMs).cells('country');
    expect(b.comparison!.rows.slice(0, 2)).to.deep.equal(rowsOf(b).slice(0, 2).map((row) => ({ value: row.value, metrics: cellMetrics(prev.get(row.value)!, metrics) })));
    const listed = new Set(rowsOf(b).slice(0, 2).map((row) => row.value));
    const otherPageviews = [...prev].filter(([k]) => !listed.has(k)).reduce((a, [, c]) => a + c.pageviews, 0);
    expect(b.comparison!.rows[2]).to.deep.include({ value: '(other)' });
    expect(b.comparison!.rows[2]!.metrics.pageviews).to.equal(otherPageviews);
  });

  it('counts goals: page globs, events, an event with a property; conversion rate over all visitors', async () => {
    const metrics: QueryMetricName[] = ['visitors', 'conversions', 'unique_conversions', 'conversion_rate'];
    const r = await engine.run({ site: SITE, metrics, dimensions: ['goal'], date_range: { from: '2026-03-05', to: '2026-03-07' } });
    const range = resolveDateRange({ from: '2026-03-05', to: '2026-03-07' }, 'Asia/Kolkata', NOW);
    const acc = bruteMerge(rows, range.fromMs, range.toMs);
    const all = acc.visitors.count();
    const union = (cells: MutableDimCell[]) => {
      const [first, ...rest] = cells.filter((c) => c.visitors).map((c) => c.visitors!.clone());
      for (const s of rest) first!.merge(s);
      return { conversions: cells.reduce((a, c) => a + c.pageviews + c.events, 0), uniques: first ? first.count() : 0 };
    };
    const expectRow = (name: string, cells: MutableDimCell[]) => {
      const u = union(cells);
      const row = rowsOf(r).find((x) => x.value === name)!;
      expect(row.metrics, name).to.deep.equal({ visitors: u.uniques, conversions: u.conversions, unique_conversions: u.uniques, conversion_rate: (u.uniques / all) * 100 });
    };
    expectRow('Read blog', [...acc.cells('page')].filter(([k]) => k.startsWith('/blog/')).map(([, c]) => c));
    expectRow('Signup', [acc.cells('event').get('signup')!]);
    expectRow('Purchase', [acc.cells('event').get('purchase')!]);
    expectRow('Pro purchase', [acc.cells('prop').get('purchase\u0000plan\u0000pro')!]);
    expect(rowsOf(r).map((x) => x.value)).to.have.members(GOALS.map((g) => g.name));
    // Totals: every completion once (the property goal's purchases are among the purchases).
    const blogViews = [...acc.cells('page')].filter(([k]) => k.startsWith('/blog/')).reduce((a, [, c]) => a + c.pageviews, 0);
    expect(r.totals.conversions).to.equal(blogViews + acc.cells('event').get('signup')!.events + acc.cells('event').get('purchase')!.events);

    const revenue = await engine.run({ site: SITE, metrics: ['conversions', 'revenue'], filters: [{ dimension: 'goal', op: 'is', value: 'Purchase' }], date_range: { from: '2026-03-05', to: '2026-03-07' } });
    expect(revenue.totals.conversions).to.equal(acc.cells('event').get('purchase')!.events);
    expect(revenue.totals.revenue).to.deep.equal(acc.revenue().purchase);

    const series = await engine.run({ site: SITE, metrics: ['conversions'], filters: [{ dimension: 'goal', op: 'is', value: ['Signup', 'Read blog'] }], date_range: { from: '2026-03-05', to: '2026-03-06' }, interval: 'day' });
    const pieces = splitIntervals(resolveDateRange({ from: '2026-03-05', to: '2026-03-06' }, 'Asia/Kolkata', NOW), 'day', 'Asia/Kolkata');
    series.rows.forEach((p, i) => {
      const a = bruteMerge(rows, pieces[i]!.fromMs, pieces[i]!.toMs);
      const blog = [...a.cells('page')].filter(([k]) => k.startsWith('/blog/')).reduce((s, [, c]) => s + c.pageviews, 0);
      expect(p.metrics.conversions).to.equal(blog + a.cells('event').get('signup')!.events);
    });
  });

  it('refuses impossible questions with QUERY_INVALID or TIME_ZONE_UNKNOWN naming the field', async () => {
    const date_range = '7d' as const;
    expect(await invalid(engine.run({ site: SITE, metrics: ['bounce_rate'], dimensions: ['page'], date_range }))).to.match(/^QUERY_INVALID: metrics: "bounce_rate"/);
    expect(await invalid(engine.run({ site: SITE, metrics: ['visits'], filters: [{ dimension: 'event', op: 'is', value: 'signup' }], date_range }))).to.match(/^QUERY_INVALID: metrics: "visits"/);
    expect(await invalid(engine.run({ site: SITE, metrics: ['pageviews'], dimensions: ['exit_page'], date_range }))).to.match(/^QUERY_INVALID: metrics: "pageviews" is not available with exit_page/);
    expect(await invalid(engine.run({ site: SITE, metrics: ['conversions'], date_range }))).to.match(/^QUERY_INVALID: metrics: "conversions" needs a goal/);
    expect(await invalid(engine.run({ site: SITE, metrics: ['visitors'], filters: [{ dimension: 'goal', op: 'is', value: 'Nope' }], date_range }))).to.match(/^QUERY_INVALID: filters\[0\]: no goal named "Nope"/);
    expect(await invalid(engine.run({ site: SITE, metrics: ['visitors'], dimensions: ['page'], interval: 'day', date_range }))).to.match(/^QUERY_INVALID/);
    expect(await invalid(engine.run({ site: SITE, metrics: ['visitors'], date_range: 'year', interval: 'minute' }))).to.match(/^QUERY_INVALID: interval: \d+ points/);
    expect(await invalid(engine.run({ site: SITE, metrics: ['visitors'], date_range, time_zone: 'Nowhere/Land' }))).to.match(/^TIME_ZONE_UNKNOWN/);
    expect(await invalid(engine.run({ site: SITE, metrics: ['visitors'], date_range, order_by: { metric: 'visits' } }))).to.match(/^QUERY_INVALID: order_by/);
    expect(await invalid(engine.run({ site: SITE, metrics: ['visitors'], date_range, dimensions: ['prop'] }))).to.match(/^QUERY_INVALID: dimensions\[0\]: "prop" needs a key/);
    // Filters need the raw archive, which this engine was not given.
    expect(await invalid(engine.run({ site: SITE, metrics: ['visitors'], date_range, filters: [{ dimension: 'source', op: 'is', value: 'Google' }] }))).to.match(/^QUERY_INVALID: filters need the raw archive/);
  });

  it('reads only the site asked for', async () => {
    const r = await engine.run({ site: 'nobody.example', metrics: ['pageviews', 'visitors'], date_range: { from: DATA_FROM, to: DATA_TO } });
    expect(r.totals).to.deep.equal({ pageviews: 0, visitors: 0 });
  });

  it('folds the "(other)" cells of capped rows into the "(other)" row, with unknown visitors', async () => {
    const capped = new MemoryRollupStore();
    const some = rows.filter((r) => r.bucketMs < Date.UTC(2026, 2, 5));
    // Capped at one page per row: most pages of most rows land in each row's "(other)" cell.
    await capped.upsert(rollTiers(some, 1));
    // Coarse rows are read for final buckets only: these are, as the aggregator's would be.
    await capped.setWatermark(0, Date.UTC(2026, 2, 5));
    const e = createQueryEngine({ store: capped, settings: configSiteSettings({}), retention: FOREVER, defaultTimeZone: 'UTC', maxRawScanEvents: 1, sessionTimeoutMs: 1_800_000, now: () => NOW });
    const r = await e.run({ site: SITE, metrics: ['pageviews', 'visitors'], dimensions: ['page'], date_range: { from: DATA_FROM, to: Date.UTC(2026, 2, 5) }, limit: 50 });
    const other = rowsOf(r).find((x) => x.value === OTHER_KEY)!;
    expect(other.metrics.visitors).to.equal(null);
    expect(rowsOf(r).reduce((a, x) => a + x.metrics.pageviews!, 0)).to.equal(bruteMerge(some, DATA_FROM, Date.UTC(2026, 2, 5)).totals.pageviews);
    expect(r.meta.includes_other).to.equal(true);
  });
});
