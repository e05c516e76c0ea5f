/**
 * The filter path against the rollup path: the same events go through the aggregator's minute
 * windows (rollups, every tier) and into the raw archive; a filter on one value of a session
 * dimension must give that value's rollup cell, a page filter the page cell, an exit_page filter
 * the exit cell — two independent implementations of rollup.ts that have to agree. Also with
 * events the windows judged late (marked in the archive as the event tap does), and with visits
 * that cross a UTC midnight because visitor ids rotate by the received day.
 */
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import type { QueryBreakdownRow, QueryMetricName, QueryRequest } from '../../protocol/query-schema.js';
import { MemoryRawArchive } from '../adapters/memory/memory-raw-archive.js';
import type { LateMark, LogPosition, RawArchive } from '../aggregate/raw-archive.js';
import { MemoryRollupStore } from '../adapters/memory/memory-rollup-store.js';
import { MinuteWindows, type WindowFlush } from '../aggregate/minute-windows.js';
import type { Rollup } from '../aggregate/rollup.js';
import { compareEvents } from '../aggregate/sessions.js';
import { rng } from '../demo/demo-traffic.js';
import type { EnrichedEvent } from '../ingest/enriched-event.js';
import { SluiceError } from '../errors.js';
import { createQueryEngine, type QueryEngine } from './query-engine.js';
import { rollTiers } from './query-test-kit.js';
import { MIN_RAW_LOOKBACK_MS, rawScanLookbackMs } from './raw-reader.js';
import { configSiteSettings } from './site-settings.js';

const SITE = 'raw.example';
const MIN = 60_000;
const DAY = 86_400_000;
const START = Date.UTC(2026, 4, 10);
const NOW = Date.UTC(2026, 4, 20);

function randomEvents(seed: number, count: number): EnrichedEvent[] {
  const rnd = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const out: EnrichedEvent[] = [];
  // Visitors keep coming back within and across visits; ids rotate daily (one id per day here).
  let ts = START + 3 * 3_600_000;
  for (let i = 0; i < count; i++) {
    ts += Math.floor(rnd() * 4 * MIN);
    const day = Math.floor(ts / DAY);
    // Visitor ids are keyed hashes (32 hex digits), which the sketches take as uniform bits.
    const visitor = createHash('sha256').update(`${day}:${Math.floor(rnd() * 40)}`).digest('hex').slice(0, 32);
    const pageview = rnd() < 0.75;
    const name = pageview ? 'pageview' : pick(['signup', 'purchase']);
    const source = pick(['Google', 'Direct / None', 'Newsletter']);
    out.push({
      v: 2, id: `e${i}`, site: SITE, type: pageview ? 'pageview' : 'event', name, ts, receivedAt: ts,
      host: 'raw.example', path: pick(['/', '/pricing', '/blog/x', '/blog/y/z']), title: null,
      referrerHost: source === 'Google' ? 'google.com' : '', source, channel: source === 'Google' ? 'organic_search' : source === 'Newsletter' ? 'email' : 'direct',
      utm: { source: source === 'Newsletter' ? 'newsletter' : null, medium: null, campaign: rnd() < 0.3 ? 'spring' : null, term: null, content: null },
      browser: pick(['Firefox', 'Chrome']), browserVersion: '125', os: 'Linux', osVersion: '', device: pick(['desktop', 'mobile']),
      bot: rnd() < 0.03, screen: { width: pick([400, 1000, 1600]), height: 800 }, language: null,
      props: pageview ? {} : { plan: pick(['pro', 'free']) },
      revenue: name === 'purchase' ? { amount: Math.round(rnd() * 5000) / 100, currency: 'EUR' } : null,
      visitorId: visitor, country: rnd() < 0.1 ? null : pick(['DE', 'IN', 'NP']), region: null, city: null,
    });
    // A retry of the same event: counted once by both paths.
    if (rnd() < 0.02) out.push({ ...out[out.length - 1]! });
  }
  return out;
}

/** The aggregator's minute rows for the events (none late: generous lateness). */
function windowRows(events: readonly EnrichedEvent[]): Rollup[] {
  const w = new MinuteWindows({ maxOutOfOrderMs: 60 * MIN, allowedLatenessMs: 60 * MIN, idleAdvanceMs: 1_000_000, maxBreakdownKeys: 1_000, sessionTimeoutMs: 30 * MIN }, 0);
  const latest = new Map<number, Rollup>();
  const take = (f: WindowFlush | null) => { for (const r of f?.rows ?? []) latest.set(r.bucketMs, r); };
  events.forEach((event, offset) => {
    w.offer({ offset, event }, 0);
    if (offset % 50 === 0) take(w.takeFlush());
  });
  take(w.takeFlush(true));
  return [...latest.values()];
}

describe('filters over the raw archive agree with the rollups', function () {
  this.timeout(60_000);
  let engine: QueryEngine;
  let events: EnrichedEvent[];

  before(async () => {
    events = randomEvents(5, 2500).sort(compareEvents);
    const archive = new MemoryRawArchive({ retentionMs: null });
    await archive.archive(events);
    const store = new MemoryRollupStore();
    const minutes = windowRows(events);
    await store.upsert(minutes);
    await store.upsert(rollTiers(minutes));
    engine = createQueryEngine({
      store, archive, retention: { minuteRetentionDays: 1e5, quarterRetentionDays: 1e5, hourRetentionDays: 1e5, dayRetentionDays: 1e5 },
      settings: configSiteSettings({ [SITE]: { timeZone: 'Asia/Kathmandu', goals: [{ name: 'Signup', event: 'signup' }, { name: 'Pro', event: 'purchase', props: { plan: 'pro' } }] } }),
      defaultTimeZone: 'UTC', maxRawScanEvents: 100_000, sessionTimeoutMs: 30 * MIN, now: () => NOW,
    });
  });

  const SESSION: QueryMetricName[] = ['visitors', 'visits', 'pageviews', 'events', 'bounce_rate', 'visit_duration', 'views_per_visit'];
  const range = { from: '2026-05-10', to: '2026-05-12' };

  async function cellOf(dimension: string, value: string, metrics: QueryMetricName[], date_range: QueryRequest['date_range'] = range) {
    const r = await engine.run({ site: SITE, metrics, dimensions: [dimension], date_range, limit: 1000 });
    expect(r.meta.raw_archive_scanned).to.equal(false);
    return (r.rows as QueryBreakdownRow[]).find((x) => x.value === value)?.metrics;
  }

  for (const [dimension, value] of [['source', 'Google'], ['country', 'NP'], ['entry_page', '/pricing'], ['screen', 'Desktop'], ['utm_campaign', 'spring'], ['browser_version', 'Firefox 125']] as const) {
    it(`a filter "${dimension} is ${value}" gives that value's rollup cell`, async () => {
      const filtered = await engine.run({ site: SITE, metrics: SESSION, filters: [{ dimension, op: 'is', value }], date_range: range });
      expect(filtered.meta.raw_archive_scanned).to.equal(true);
      expect(filtered.meta.raw_events_scanned).to.be.greaterThan(0);
      expect(filtered.totals).to.deep.equal(await cellOf(dimension, value, SESSION));
    });
  }

  it('per local day (+05:45) too', async () => {
    const series = await engine.run({ site: SITE, metrics: SESSION, filters: [{ dimension: 'source', op: 'is', value: 'Newsletter' }], date_range: range, interval: 'day' });
    for (const p of series.rows) {
      const label = 'label' in p ? p.label : '';
      expect(p.metrics, label).to.deep.equal(await cellOf('source', 'Newsletter', SESSION, { from: label, to: label }));
    }
  });

  it('a page filter gives the page cell; an exit_page filter the exit cell', async () => {
    const page = await engine.run({ site: SITE, metrics: ['pageviews', 'visitors'], filters: [{ dimension: 'page', op: 'is', value: '/blog/x' }], date_range: range });
    expect(page.totals).to.deep.equal(await cellOf('page', '/blog/x', ['pageviews', 'visitors']));
    const exits = await engine.run({ site: SITE, metrics: ['visits'], filters: [{ dimension: 'exit_page', op: 'is', value: '/pricing' }], date_range: range });
    expect(exits.totals).to.deep.equal(await cellOf('exit_page', '/pricing', ['visits']));
    const byExit = await engine.run({ site: SITE, metrics: ['visits'], dimensions: ['exit_page'], filters: [{ dimension: 'source', op: 'is', value: 'Google' }], date_range: range });
    expect((byExit.rows as QueryBreakdownRow[]).reduce((a, r) => a + r.metrics.visits!, 0)).to.equal((await cellOf('source', 'Google', ['visits']))!.visits);
  });

  it('ANDs filters, and a breakdown under filters sums to the filtered totals', async () => {
    const r = await engine.run({
      site: SITE, metrics: ['visits', 'pageviews'], dimensions: ['country'], limit: 100, date_range: range,
      filters: [{ dimension: 'source', op: 'is_not', value: 'Google' }, { dimension: 'entry_page', op: 'matches', value: '/blog/**' }],
    });
    const rows = r.rows as QueryBreakdownRow[];
    expect(rows.length).to.be.greaterThan(0);
    const one = await engine.run({ site: SITE, metrics: ['visits', 'pageviews'], date_range: range, filters: [{ dimension: 'source', op: 'is', value: ['Direct / None', 'Newsletter'] }, { dimension: 'entry_page', op: 'contains', value: '/blog/' }] });
    // Events without a country count in the totals but in no row.
    const noCountry = await engine.run({ site: SITE, metrics: ['visits', 'pageviews'], date_range: range, filters: [{ dimension: 'source', op: 'is_not', value: 'Google' }, { dimension: 'entry_page', op: 'matches', value: '/blog/**' }, { dimension: 'country', op: 'is_not', value: ['DE', 'IN', 'NP'] }] });
    expect(rows.reduce((a, x) => a + x.metrics.visits!, 0) + noCountry.totals.visits!).to.equal(one.totals.visits);
    expect(r.totals).to.deep.equal(one.totals);
  });

  it('a goal filter with a breakdown: conversions per source, rate over each source\'s visitors', async () => {
    const r = await engine.run({ site: SITE, metrics: ['conversions', 'unique_conversions', 'conversion_rate'], dimensions: ['source'], filters: [{ dimension: 'goal', op: 'is', value: 'Pro' }], date_range: range });
    const google = (r.rows as QueryBreakdownRow[]).find((x) => x.value === 'Google')!;
    // Brute force over the events: counted (not bot, first of its id), in range, of a visit entered from Google.
    const from = Date.UTC(2026, 4, 9, 18, 15);
    const to = Date.UTC(2026, 4, 12, 18, 15);
    const googleVisitors = await cellOf('source', 'Google', ['visitors']);
    const seen = new Set<string>();
    let conversions = 0;
    const entrySource = new Map<string, { last: number; source: string }>();
    const uniques = new Set<string>();
    for (const e of events) {
      if (e.bot || seen.has(e.id)) continue;
      seen.add(e.id);
      const prev = entrySource.get(e.visitorId);
      const source = prev && e.ts - prev.last < 30 * MIN ? prev.source : e.source;
      entrySource.set(e.visitorId, { last: e.ts, source });
      if (e.ts < from || e.ts >= to || source !== 'Google') continue;
      if (e.type === 'event' && e.name === 'purchase' && e.props.plan === 'pro') {
        conversions++;
        uniques.add(e.visitorId);
      }
    }
    expect(google.metrics.conversions).to.equal(conversions);
    expect(google.metrics.unique_conversions).to.equal(uniques.size);
    expect(google.metrics.conversion_rate).to.equal((uniques.size / googleVisitors!.visitors!) * 100);
  });

  it('stops with QUERY_TOO_LARGE beyond maxRawScanEvents', async () => {
    const archive = new MemoryRawArchive({ retentionMs: null });
    await archive.archive(events);
    const small = createQueryEngine({
      store: new MemoryRollupStore(), archive,
      retention: { minuteRetentionDays: 1, quarterRetentionDays: 1, hourRetentionDays: 1, dayRetentionDays: 1 },
      settings: configSiteSettings({}), defaultTimeZone: 'UTC', maxRawScanEvents: 100, sessionTimeoutMs: 30 * MIN, now: () => NOW,
    });
    const err = await small.run({ site: SITE, metrics: ['visitors'], filters: [{ dimension: 'country', op: 'is', value: 'DE' }], date_range: range }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(SluiceError);
    expect((err as SluiceError).code).to.equal('QUERY_TOO_LARGE');
  });
});

/** Arrival-ordered events through one partition's windows: the final minute rows, and which offsets were late. */
function aggregate(arrivals: readonly EnrichedEvent[], allowedLatenessMs: number, maxOutOfOrderMs: number): { rows: Rollup[]; late: number[] } {
  const w = new MinuteWindows({ maxOutOfOrderMs, allowedLatenessMs, idleAdvanceMs: 1_000_000, maxBreakdownKeys: 1_000, sessionTimeoutMs: 30 * MIN }, 0);
  const latest = new Map<number, Rollup>();
  const late: number[] = [];
  const take = (f: WindowFlush | null) => { for (const r of f?.rows ?? []) latest.set(r.bucketMs, r); };
  arrivals.forEach((event, offset) => {
    if (w.offer({ offset, event }, 0) === 'late') late.push(offset);
    if (offset % 50 === 0) take(w.takeFlush());
  });
  take(w.takeFlush(true));
  return { rows: [...latest.values()], late };
}

/** Archives arrivals as the event tap does (each with its log position), and marks the late ones. */
async function archiveAsTap(archive: RawArchive, arrivals: readonly EnrichedEvent[], late: readonly number[]): Promise<void> {
  const positions: LogPosition[] = arrivals.map((_, offset) => ({ partition: 0, offset }));
  await archive.archive(arrivals, positions);
  const marks: LateMark[] = late.map((offset) => ({ site: arrivals[offset]!.site, ts: arrivals[offset]!.ts, id: arrivals[offset]!.id, position: positions[offset]! }));
  await archive.markLate(marks);
}

async function engineOver(archive: RawArchive, rows: readonly Rollup[], sites: Parameters<typeof configSiteSettings>[0]): Promise<QueryEngine> {
  const store = new MemoryRollupStore();
  await store.upsert(rows);
  await store.upsert(rollTiers(rows));
  return createQueryEngine({
    store, archive, retention: { minuteRetentionDays: 1e5, quarterRetentionDays: 1e5, hourRetentionDays: 1e5, dayRetentionDays: 1e5 },
    settings: configSiteSettings(sites), defaultTimeZone: 'UTC', maxRawScanEvents: 100_000, sessionTimeoutMs: 30 * MIN, now: () => NOW,
  });
}

const RANGE = { from: '2026-05-10', to: '2026-05-12' };
const METRICS: QueryMetricName[] = ['visitors', 'visits', 'pageviews', 'events', 'bounce_rate', 'visit_duration', 'views_per_visit'];

/** What a cell of the dimension can report: event dimensions have no visits, exit_page only visits. */
const metricsFor = (dimension: string): QueryMetricName[] =>
  dimension === 'exit_page' ? ['visits'] : dimension === 'page' ? ['pageviews', 'visitors'] : METRICS;

async function filteredAndCell(engine: QueryEngine, site: string, dimension: string, value: string, date_range: QueryRequest['date_range']) {
  const metrics = metricsFor(dimension);
  const filtered = await engine.run({ site, metrics, filters: [{ dimension, op: 'is', value }], date_range });
  expect(filtered.meta.raw_archive_scanned).to.equal(true);
  const cells = await engine.run({ site, metrics, dimensions: [dimension], date_range, limit: 1000 });
  expect(cells.meta.raw_archive_scanned).to.equal(false);
  const cell = (cells.rows as QueryBreakdownRow[]).find((x) => x.value === value)?.metrics;
  return { filtered: filtered.totals, cell };
}

describe('filters skip the events the aggregator judged late', function () {
  this.timeout(60_000);
  const site = 'late.example';
  let arrivals: EnrichedEvent[];
  let rows: Rollup[];
  let late: number[];

  before(() => {
    // Arrival order: event time, with one event in 12 resent hours later by an offline client
    // (a new event, beyond the lateness) and one in 40 resent a little late (a client retry of
    // the same event, arriving after its bucket closed: late in the lane, yet counted).
    const rnd = rng(11);
    const base = randomEvents(7, 1500).map((e) => ({ ...e, site, host: site }));
    arrivals = [];
    const delayed: Array<{ at: number; e: EnrichedEvent }> = [];
    for (const e of base) {
      arrivals.push(e);
      if (rnd() < 1 / 12) delayed.push({ at: e.ts + 3 * 3_600_000, e: { ...e, id: `${e.id}-offline` } });
      else if (rnd() < 1 / 40) delayed.push({ at: e.ts + 20 * MIN, e: { ...e } });
      while (delayed.length > 0 && delayed[0]!.at <= e.ts) arrivals.push(delayed.shift()!.e);
    }
    ({ rows, late } = aggregate(arrivals, 5 * MIN, 10_000));
  });

  it('a filter on one value gives that value\'s rollup cell, late events and late retries included', async () => {
    const retries = late.filter((offset) => !arrivals[offset]!.id.endsWith('-offline'));
    expect(late.length - retries.length, 'offline events in the late lane').to.be.greaterThan(20);
    expect(retries.length, 'late retries of counted events').to.be.greaterThan(3);
    const archive = new MemoryRawArchive({ retentionMs: null });
    await archiveAsTap(archive, arrivals, late);
    const engine = await engineOver(archive, rows, { [site]: { timeZone: 'Asia/Kolkata', goals: [] } });
    for (const [dimension, value] of [['source', 'Google'], ['country', 'IN'], ['entry_page', '/blog/x'], ['page', '/pricing'], ['device', 'mobile']] as const) {
      const { filtered, cell } = await filteredAndCell(engine, site, dimension, value, RANGE);
      expect(filtered, `${dimension} is ${value}`).to.deep.equal(cell);
    }
  });

  it('counts them when the archive was not told (what the marks fix)', async () => {
    const archive = new MemoryRawArchive({ retentionMs: null });
    await archiveAsTap(archive, arrivals, []);
    const engine = await engineOver(archive, rows, { [site]: { timeZone: 'Asia/Kolkata', goals: [] } });
    const { filtered, cell } = await filteredAndCell(engine, site, 'source', 'Google', RANGE);
    expect(filtered.pageviews).to.be.greaterThan(cell!.pageviews!);
  });
});

describe('filters over a visit that crosses a UTC midnight (ids rotate by received day)', function () {
  this.timeout(60_000);
  const site = 'midnight.example';
  const M = Date.UTC(2026, 4, 11);
  const day = { from: '2026-05-11', to: '2026-05-11' };
  let arrivals: EnrichedEvent[];
  let rows: Rollup[];

  /** A visitor's id as ingest makes it: keyed by the UTC day of the received time. */
  const idOf = (visitor: number, receivedAt: number) => createHash('sha256').update(`${Math.floor(receivedAt / DAY)}:${visitor}`).digest('hex').slice(0, 32);

  before(() => {
    const rnd = rng(23);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const events: EnrichedEvent[] = [];
    // Background: three hours either side of M, each event received 0-4 minutes after its time.
    let ts = M - 3 * 3_600_000;
    for (let i = 0; ts < M + 3 * 3_600_000; i++) {
      ts += Math.floor(rnd() * MIN);
      const receivedAt = ts + Math.floor(rnd() * 4 * MIN);
      const source = pick(['Google', 'Direct / None', 'Newsletter']);
      events.push(eventAt(`bg${i}`, ts, receivedAt, idOf(Math.floor(rnd() * 30), receivedAt), pick(['/', '/pricing', '/blog/x']), source));
    }
    // The visit that crosses M: entered from Google before M, its events received after M (yet
    // within the lateness), so they share the new day's id with its events after M.
    const v = (at: number) => idOf(1000, at);
    events.push(
      eventAt('cross-1', M - 8 * MIN, M + MIN, v(M + MIN), '/', 'Google'),
      eventAt('cross-2', M - 3 * MIN, M + 2 * MIN, v(M + 2 * MIN), '/pricing', 'Direct / None'),
      eventAt('cross-3', M + 10 * MIN, M + 10 * MIN, v(M + 10 * MIN), '/blog/x', 'Direct / None'),
      eventAt('cross-4', M + 30 * MIN, M + 30 * MIN, v(M + 30 * MIN), '/', 'Newsletter'),
    );
    arrivals = events.sort((a, b) => a.receivedAt - b.receivedAt || compareEvents(a, b));
    const r = aggregate(arrivals, 5 * MIN, 5 * MIN);
    expect(r.late, 'no event late in this traffic').to.deep.equal([]);
    rows = r.rows;
  });

  function eventAt(id: string, ts: number, receivedAt: number, visitorId: string, path: string, source: string): EnrichedEvent {
    return {
      v: 2, id, site, type: 'pageview', name: 'pageview', ts, receivedAt, host: site, path, title: null,
      referrerHost: source === 'Google' ? 'google.com' : '', source, channel: source === 'Google' ? 'organic_search' : 'direct',
      utm: { source: null, medium: null, campaign: null, term: null, content: null },
      browser: 'Firefox', browserVersion: '125', os: 'Linux', osVersion: '', device: 'desktop', bot: false, screen: null, language: null,
      props: {}, revenue: null, visitorId, country: 'DE', region: null, city: null,
    };
  }

  it('a filtered query starting at the midnight equals the rollup cell', async () => {
    const archive = new MemoryRawArchive({ retentionMs: null });
    await archiveAsTap(archive, arrivals, []);
    const engine = await engineOver(archive, rows, { [site]: { timeZone: 'UTC', goals: [] } });
    for (const [dimension, value] of [['source', 'Google'], ['source', 'Direct / None'], ['entry_page', '/'], ['exit_page', '/pricing'], ['page', '/blog/x']] as const) {
      const { filtered, cell } = await filteredAndCell(engine, site, dimension, value, day);
      expect(filtered, `${dimension} is ${value}`).to.deep.equal(cell);
    }
  });

  it('splits that visit when the scan starts at the midnight (what the lookback fixes)', async () => {
    const archive = new MemoryRawArchive({ retentionMs: null });
    await archiveAsTap(archive, arrivals, []);
    // The archive as the scan saw it before: nothing before the UTC midnight.
    const fromMidnight: RawArchive = Object.assign(Object.create(archive) as MemoryRawArchive, {
      read: (s: string, fromMs: number, toMs: number) => archive.read(s, Math.max(fromMs, M), toMs),
    });
    const engine = await engineOver(fromMidnight, rows, { [site]: { timeZone: 'UTC', goals: [] } });
    const { filtered, cell } = await filteredAndCell(engine, site, 'source', 'Google', day);
    expect(filtered).to.not.deep.equal(cell);
  });

  it('looks back at least two hours, and further for a long lateness or idle advance', () => {
    expect(rawScanLookbackMs({ allowedLatenessMs: 5 * MIN, maxOutOfOrderMs: 5_000, idleAdvanceMs: 10_000 })).to.equal(MIN_RAW_LOOKBACK_MS);
    expect(rawScanLookbackMs({ allowedLatenessMs: 3 * 3_600_000, maxOutOfOrderMs: 60_000, idleAdvanceMs: 3_600_000 })).to.equal(4 * 3_600_000 + 2 * MIN);
  });
});
