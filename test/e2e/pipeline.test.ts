/**
 * End to end over real sockets with real rsocket-js clients, on both transports:
 * ingest → aggregate → query, live streams with snapshot, push, request(n) conflation, cancel;
 * the declarative query (`query.run`: site zone, goals, raw-archive filters, error codes) and
 * `live.query` (snapshot, changes only, a late event restating history).
 */
import { expect } from 'chai';
import type { CurrentVisitorsResponse, Event, IngestAck, LiveMessage, TotalsResponse, TimeseriesResponse, BreakdownResponse } from '../../protocol/schema.js';
import type { LiveQueryMessage } from '../../protocol/query-schema.js';
import { SluiceClient } from '../../src/client/sluice-client.js';
import { ADMIN_KEY, startHarness, SITE_A, SITE_A_KEY, type Harness } from '../support/harness.js';
import { waitFor } from '../support/wait-for.js';

const MINUTE = 60_000;

function pageview(site: string, i: number, ts: number, extra: Partial<Event> = {}): Event {
  return {
    id: `e-${site}-${i}`, type: 'pageview', site, timestamp: ts,
    url: `https://${site}/page-${i % 3}?utm_source=news&x=1`, visitor: `v-${i % 7}`,
    userAgent: 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0', ...extra,
  };
}

async function totals(client: SluiceClient, site: string, from: number, to: number) {
  return (await client.request<TotalsResponse>('query.totals', { site, from, to })).totals;
}

for (const transport of ['tcp', 'ws'] as const) {
  describe(`pipeline end to end over ${transport}`, function () {
    this.timeout(30_000);
    let h: Harness;
    let site: string;
    let n = 0;
    beforeEach(async () => {
      h = await startHarness();
      site = `e2e-${transport}-${++n}.example`;
    });
    afterEach(async () => h.stop());

    it('acknowledges a batch, then serves totals, a time series and a breakdown from it', async () => {
      const client = await h.client(transport);
      const now = Date.now();
      const t0 = Math.floor(now / MINUTE) * MINUTE - 2 * MINUTE;
      const events = [
        ...Array.from({ length: 10 }, (_, i) => pageview(site, i, t0 + 1_000 + i)),
        ...Array.from({ length: 5 }, (_, i) => pageview(site, 100 + i, t0 + MINUTE + 1_000 + i)),
        { ...pageview(site, 200, t0 + MINUTE + 2_000), type: 'event' as const, name: 'signup' },
      ];
      const ack = await client.sendBatch(events);
      expect(ack).to.include({ accepted: 16, duplicates: 0 });
      expect(ack.rejected).to.deep.equal([]);
      expect(ack.ids).to.have.length(16);

      const got = await waitFor(async () => {
        const t = await totals(client, site, t0, t0 + 2 * MINUTE);
        return t.pageviews === 15 && t.events === 1 ? t : undefined;
      }, { what: 'totals to reflect the batch' });
      expect(got.visitors).to.equal(7);

      const series = await client.request<TimeseriesResponse>('query.timeseries', { site, from: t0, to: t0 + 2 * MINUTE, interval: 'minute' });
      expect(series.points.map((p) => [p.t, p.pageviews, p.events])).to.deep.equal([[t0, 10, 0], [t0 + MINUTE, 5, 1]]);

      const pages = await client.request<BreakdownResponse>('query.breakdown', { site, from: t0, to: t0 + 2 * MINUTE, dimension: 'page', limit: 2 });
      const expected = new Map<string, number>();
      for (const e of events.filter((x) => x.type === 'pageview')) {
        const path = new URL(e.url).pathname;
        expected.set(path, (expected.get(path) ?? 0) + 1);
      }
      const top = [...expected].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
      expect(pages.rows).to.deep.equal([
        { value: top[0]![0], pageviews: top[0]![1] },
        { value: top[1]![0], pageviews: top[1]![1] },
        { value: '(other)', pageviews: top[2]![1] },
      ]);
      const sources = await client.request<BreakdownResponse>('query.breakdown', { site, from: t0, to: t0 + 2 * MINUTE, dimension: 'source' });
      expect(sources.rows).to.have.length(1);
      expect(sources.rows[0]!.pageviews).to.equal(15);
    });

    it('counts a retried batch once (client event ids are idempotent)', async () => {
      const client = await h.client(transport);
      const ts = Date.now() - 1_000;
      const events = Array.from({ length: 4 }, (_, i) => pageview(site, i, ts));
      const first = await client.sendBatch(events);
      const second = await client.sendBatch(events);
      expect(first).to.include({ accepted: 4, duplicates: 0 });
      expect(second).to.include({ accepted: 0, duplicates: 4 });
      const from = ts - 2 * MINUTE;
      await waitFor(async () => (await totals(client, site, from, ts + MINUTE)).pageviews === 4, { what: 'four pageviews' });
    });

    it('routes requests whose routing entry names its MIME type by string, not by id', async () => {
      const client = await SluiceClient.connect({ url: h.url(transport), apiKey: ADMIN_KEY, stringMimeTypes: true });
      try {
        const ts = Date.now() - 1_000;
        expect((await client.sendBatch([pageview(site, 1, ts)])).accepted).to.equal(1);
        await waitFor(async () => (await totals(client, site, ts - MINUTE, ts + MINUTE)).pageviews === 1, { what: 'one pageview' });
      } finally {
        client.close();
      }
    });

    it('counts current visitors (last five minutes, bots excluded)', async () => {
      const client = await h.client(transport);
      const ts = Date.now() - 1_000;
      const bot = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';
      await client.sendBatch([
        ...Array.from({ length: 9 }, (_, i) => pageview(site, i, ts)),
        pageview(site, 50, ts - 10 * MINUTE, { visitor: 'long-gone' }),
        pageview(site, 51, ts, { visitor: 'a-crawler', userAgent: bot }),
      ]);
      const current = await waitFor(async () => {
        const r = await client.request<CurrentVisitorsResponse>('query.current', { site });
        return r.visitors === 7 ? r : undefined;
      }, { what: 'seven current visitors' });
      expect(current).to.include({ site, windowMinutes: 5 });
    });

    it('takes fire-and-forget events, single and batched', async () => {
      const client = await h.client(transport);
      const ts = Date.now() - 1_000;
      client.sendEvents(pageview(site, 1, ts));
      client.sendEvents([pageview(site, 2, ts), pageview(site, 3, ts)]);
      await waitFor(async () => (await totals(client, site, ts - MINUTE, ts + MINUTE)).pageviews === 3, { what: 'three pageviews' });
    });

    it('pushes a snapshot, then an update when events arrive', async () => {
      const dashboard = await h.client(transport);
      const source = await h.client(transport);
      const messages: LiveMessage[] = [];
      const stream = dashboard.stream<LiveMessage>('live.metrics', { site, windowMinutes: 5 }, 100, { next: (m) => messages.push(m) });
      await waitFor(() => messages.length >= 1, { what: 'snapshot' });
      expect(messages[0]).to.include({ type: 'snapshot', site, windowMinutes: 5 });
      expect(messages[0]!.totals).to.deep.equal({ pageviews: 0, events: 0, visitors: 0 });
      expect(messages[0]!.points).to.have.length(5);

      await source.sendBatch([pageview(site, 1, Date.now()), pageview(site, 2, Date.now())]);
      const update = await waitFor(() => messages.find((m) => m.type === 'update' && m.totals.pageviews === 2), { what: 'update with two pageviews' });
      expect(update.points).to.have.length(1);
      expect(update.points[0]!.pageviews).to.equal(2);
      stream.cancel();
    });

    it('gives a request(1) subscriber the conflated latest value, not a backlog', async () => {
      const dashboard = await h.client(transport);
      const source = await h.client(transport);
      const messages: LiveMessage[] = [];
      const stream = dashboard.stream<LiveMessage>('live.metrics', { site, windowMinutes: 5 }, 1, { next: (m) => messages.push(m) });
      await waitFor(() => messages.length === 1, { what: 'snapshot' });
      // Many separate flushes' worth of changes while the subscriber asks for nothing.
      const ts = Date.now();
      for (let i = 0; i < 10; i++) {
        await source.sendBatch([pageview(site, i, ts)]);
        await h.aggregator.flushNow();
      }
      await waitFor(async () => (await totals(source, site, ts - MINUTE, ts + MINUTE)).pageviews === 10, { what: 'all ten counted' });
      expect(messages).to.have.length(1);
      stream.request(1);
      await waitFor(() => messages.length === 2, { what: 'one update' });
      expect(messages[1]!.type).to.equal('update');
      expect(messages[1]!.totals.pageviews).to.equal(10);
      // Nothing else was queued behind it: a further credit yields nothing until a new change.
      stream.request(1);
      await source.request<TotalsResponse>('query.totals', { site, from: ts - MINUTE, to: ts + MINUTE });
      await h.aggregator.flushNow();
      expect(messages).to.have.length(2);
      await source.sendBatch([pageview(site, 99, ts)]);
      await waitFor(() => messages.length === 3, { what: 'update after a new change' });
      expect(messages[2]!.totals.pageviews).to.equal(11);
      stream.cancel();
    });

    it('releases a stream on cancel and when the connection drops', async () => {
      const gauge = () => h.metric('sluice_gateway_live_streams');
      const dashboard = await h.client(transport);
      const got: LiveMessage[] = [];
      const s1 = dashboard.stream<LiveMessage>('live.metrics', { site }, 10, { next: (m) => got.push(m) });
      dashboard.stream<LiveMessage>('live.metrics', { site: SITE_A }, 10, { next: (m) => got.push(m) });
      await waitFor(async () => (await gauge()) === 2 && got.length === 2, { what: 'two streams open' });
      s1.cancel();
      await waitFor(async () => (await gauge()) === 1, { what: 'cancel releases' });
      dashboard.close();
      await waitFor(async () => (await gauge()) === 0, { what: 'connection close releases' });
    });
  });
}

const GOAL_SITE = 'goals.example';

for (const transport of ['tcp', 'ws'] as const) {
  describe(`declarative queries and live queries end to end over ${transport}`, function () {
    this.timeout(30_000);
    let h: Harness;
    beforeEach(async () => {
      h = await startHarness({ sites: { [GOAL_SITE]: { timeZone: 'Asia/Kathmandu', goals: [{ name: 'Signup', event: 'signup' }, { name: 'Pricing', page: '/pricing' }] } } });
    });
    afterEach(async () => h.stop());

    /** Two visits: one from Google (pricing, then a signup), one direct bounce. */
    function visits(t0: number, tag: string): Event[] {
      const ua = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0';
      return [
        { id: `${tag}-1`, type: 'pageview', site: GOAL_SITE, timestamp: t0, url: `https://${GOAL_SITE}/pricing`, referrer: 'https://www.google.com/', visitor: `${tag}-a`, userAgent: ua },
        { id: `${tag}-2`, type: 'event', name: 'signup', site: GOAL_SITE, timestamp: t0 + 20_000, url: `https://${GOAL_SITE}/pricing`, visitor: `${tag}-a`, userAgent: ua },
        { id: `${tag}-3`, type: 'pageview', site: GOAL_SITE, timestamp: t0 + 30_000, url: `https://${GOAL_SITE}/`, visitor: `${tag}-b`, userAgent: ua },
      ];
    }

    it('answers query.run: a breakdown in the site zone, goals, and a filter over the raw archive', async () => {
      const client = await h.client(transport);
      const t0 = Math.floor(Date.now() / MINUTE) * MINUTE - 2 * MINUTE;
      expect((await client.sendBatch(visits(t0, 'q'))).accepted).to.equal(3);
      const date_range = { from: t0, to: t0 + 2 * MINUTE };

      const bySource = await waitFor(async () => {
        const r = await client.query({ site: GOAL_SITE, metrics: ['visitors', 'visits', 'bounce_rate', 'pageviews'], dimensions: ['source'], date_range });
        return r.totals.pageviews === 2 && r.totals.visits === 2 ? r : undefined;
      }, { what: 'both visits counted' });
      expect(bySource.time_zone).to.equal('Asia/Kathmandu');
      expect(bySource.kind).to.equal('breakdown');
      expect(bySource.rows).to.deep.equal([
        { value: 'Direct / None', metrics: { visitors: 1, visits: 1, bounce_rate: 100, pageviews: 1 } },
        { value: 'Google', metrics: { visitors: 1, visits: 1, bounce_rate: 100, pageviews: 1 } },
      ]);
      expect(bySource.watermark === null || typeof bySource.watermark === 'number').to.equal(true);

      const goals = await client.query({ site: GOAL_SITE, metrics: ['conversions', 'unique_conversions', 'conversion_rate'], dimensions: ['goal'], date_range });
      expect(goals.rows).to.deep.equal([
        { value: 'Pricing', metrics: { conversions: 1, unique_conversions: 1, conversion_rate: 50 } },
        { value: 'Signup', metrics: { conversions: 1, unique_conversions: 1, conversion_rate: 50 } },
      ]);

      // Filters scan the raw archive, which the tap fills beside aggregation.
      const google = await waitFor(async () => {
        const r = await client.query({ site: GOAL_SITE, metrics: ['visits', 'pageviews', 'events'], filters: [{ dimension: 'source', op: 'is', value: 'Google' }], date_range });
        return r.totals.events === 1 ? r : undefined;
      }, { what: 'the filtered visit' });
      expect(google.totals).to.deep.equal({ visits: 1, pageviews: 1, events: 1 });
      expect(google.meta.raw_archive_scanned).to.equal(true);
    });

    it('fails bad queries with their catalog codes, on that request only', async () => {
      const client = await h.client(transport);
      const err = (p: Promise<unknown>) => p.then(() => undefined, (e: { code?: string }) => e.code);
      expect(await err(client.query({ site: GOAL_SITE, metrics: ['visits'], dimensions: ['page'], date_range: '7d' }))).to.equal('QUERY_INVALID');
      expect(await err(client.query({ site: GOAL_SITE, metrics: ['visits'], date_range: '7d', time_zone: 'Moon/Base' }))).to.equal('TIME_ZONE_UNKNOWN');
      expect(await err(client.request('query.run', { site: GOAL_SITE, metrics: ['nope'], date_range: '7d' }))).to.equal('PAYLOAD_SCHEMA');
      const restricted = await h.client(transport, SITE_A_KEY);
      expect(await err(restricted.query({ site: GOAL_SITE, metrics: ['visits'], date_range: '7d' }))).to.equal('SITE_FORBIDDEN');
      expect((await client.query({ site: GOAL_SITE, metrics: ['visits'], date_range: 'today' })).kind).to.equal('totals');
    });

    it('streams live.query: a snapshot, then what changed, including a late event restating an earlier minute', async () => {
      const dashboard = await h.client(transport);
      const source = await h.client(transport);
      const t0 = Math.floor(Date.now() / MINUTE) * MINUTE - 3 * MINUTE;
      await source.sendBatch(visits(t0, 'l'));
      await waitFor(async () => (await source.query({ site: GOAL_SITE, metrics: ['pageviews'], date_range: { from: t0, to: t0 + MINUTE } })).totals.pageviews === 2, { what: 'first events counted' });

      const messages: LiveQueryMessage[] = [];
      const stream = dashboard.liveQuery({ site: GOAL_SITE, metrics: ['pageviews', 'visitors'], date_range: { from: t0, to: t0 + 10 * MINUTE }, interval: 'minute' }, { next: (m) => messages.push(m) }, 100);
      await waitFor(() => messages.length >= 1, { what: 'snapshot' });
      const snapshot = messages[0]!;
      if (snapshot.type !== 'snapshot') throw new Error('first message is not a snapshot');
      expect(snapshot.response.totals).to.deep.equal({ pageviews: 2, visitors: 2 });
      expect(snapshot.response.rows).to.have.length(10);

      // A new event now, then a late one (within the allowed lateness) in the first minute.
      await source.sendBatch([{ ...visits(t0, 'x')[2]!, id: 'now-1', timestamp: t0 + 2 * MINUTE + 5_000, visitor: 'late-c' }]);
      await waitFor(() => messages.some((m) => m.type === 'update' && m.totals?.pageviews === 3), { what: 'update for the new event' });
      await source.sendBatch([{ ...visits(t0, 'x')[2]!, id: 'late-1', timestamp: t0 + 40_000, visitor: 'late-d' }]);
      const restated = await waitFor(() => messages.find((m) => m.type === 'update' && m.totals?.pageviews === 4), { what: 'restatement of the first minute' });
      if (restated.type !== 'update') throw new Error('not an update');
      expect(restated.rows.map((r) => ('t' in r ? r.t : null))).to.deep.equal([t0]);
      expect(restated.rows[0]!.metrics).to.deep.equal({ pageviews: 3, visitors: 3 });
      stream.cancel();
      await waitFor(async () => (await h.metric('sluice_gateway_live_streams')) === 0, { what: 'stream released' });
    });
  });
}
