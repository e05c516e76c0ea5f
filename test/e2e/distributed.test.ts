/**
 * Distributed mode end to end, as operators run it: two gateway processes and two aggregator
 * processes on one Kafka, Cassandra and Redis (the local stack). Events sent to gateway A
 * appear in a live stream subscribed on gateway B; one aggregator is killed (SIGKILL) in the
 * middle of a stream of acknowledged batches, the survivor takes its partitions over, and the
 * final rollups equal an exact recount of what was acknowledged: nothing lost, nothing twice.
 */
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import type { Event, LiveMessage, TimeseriesResponse, TotalsResponse } from '../../protocol/schema.js';
import { SluiceClient } from '../../src/client/sluice-client.js';
import { distributedEnv, startSluiceProcess, type SluiceProcess } from '../support/sluice-process.js';
import { withinOneUtcDay } from '../support/utc-day.js';
import { waitFor } from '../support/wait-for.js';

const KEY = 'distributed-test-key-1';
const MINUTE = 60_000;

describe('distributed mode: two gateways, two aggregators, real Kafka, Cassandra and Redis', function () {
  this.timeout(240_000);
  const run = randomUUID().slice(0, 8);
  const procs: SluiceProcess[] = [];

  async function start(name: string, roles: string): Promise<SluiceProcess> {
    const proc = await startSluiceProcess(name, distributedEnv(run, roles, { SLUICE_GATEWAY_API_KEYS: KEY, SLUICE_EVENT_LOG_PARTITIONS: '4' }));
    procs.push(proc);
    return proc;
  }

  const alive = (p: SluiceProcess) => p.alive();

  after(async () => {
    for (const p of procs) if (alive(p)) p.child.kill('SIGKILL');
  });

  it('fans live updates across gateways and survives losing an aggregator with exact rollups', async function () {
    const gatewayA = await start('gateway-a', 'gateway');
    const gatewayB = await start('gateway-b', 'gateway');
    await start('aggregator-1', 'aggregate archive');
    const aggregator2 = await start('aggregator-2', 'aggregate archive');

    const source = await SluiceClient.connect({ url: `tcp://127.0.0.1:${gatewayA.started.tcp as number}`, apiKey: KEY });
    const dashboard = await SluiceClient.connect({ url: `ws://127.0.0.1:${gatewayB.started.ws as number}`, apiKey: KEY });
    const sites = ['alpha.example', 'beta.example', 'gamma.example', 'delta.example', 'epsilon.example'];
    const messages: LiveMessage[] = [];
    dashboard.stream<LiveMessage>('live.metrics', { site: sites[0], windowMinutes: 10 }, 1_000_000, { next: (m) => messages.push(m) });
    await waitFor(() => messages.length > 0, { what: 'snapshot on gateway B' });

    // A continuous stream of acknowledged batches; the ledger holds exactly what was acknowledged.
    const ledger = new Map<string, Event>();
    // Visitor ids are salted per UTC day received: the exact visitor counts need one day (sending takes under 2 min).
    await withinOneUtcDay(this, { aheadMs: 3 * MINUTE });
    const t0 = Date.now();
    let seq = 0;
    const sendBatch = async () => {
      const batch: Event[] = Array.from({ length: 20 }, () => {
        seq++;
        const site = sites[seq % sites.length]!;
        return { id: `d-${run}-${seq}`, type: seq % 10 === 0 ? 'event' : 'pageview', ...(seq % 10 === 0 ? { name: 'signup' } : {}),
          site, url: `https://${site}/p${seq % 4}`, timestamp: Date.now(), visitor: `v${seq % 37}` } as Event;
      });
      const ack = await source.sendBatch(batch);
      expect(ack.rejected).to.deep.equal([]);
      for (const e of batch) ledger.set(e.id!, e);
    };
    for (let i = 0; i < 10; i++) await sendBatch();

    // Events sent to A reach a live stream held on B.
    await waitFor(() => messages.some((m) => m.type === 'update' && m.totals.pageviews > 0), { what: 'live update on gateway B', deadlineMs: 60_000 });

    // Kill one aggregator without warning, keep sending, and let the survivor take over.
    const victim = procs.find((p) => p.name === 'aggregator-1')!;
    victim.child.kill('SIGKILL');
    for (let i = 0; i < 20; i++) await sendBatch();
    expect(aggregator2.child.exitCode).to.equal(null);

    const from = Math.floor(t0 / MINUTE) * MINUTE - MINUTE;
    const to = Date.now() + 2 * MINUTE;
    for (const site of sites) {
      const mine = [...ledger.values()].filter((e) => e.site === site);
      const expectedPageviews = mine.filter((e) => e.type === 'pageview').length;
      const expectedEvents = mine.length - expectedPageviews;
      const totals = await waitFor(async () => {
        const r = await source.request<TotalsResponse>('query.totals', { site, from, to });
        return r.totals.pageviews === expectedPageviews && r.totals.events === expectedEvents ? r.totals : undefined;
      }, { what: `exact totals for ${site} (${expectedPageviews} pageviews)`, deadlineMs: 120_000 });
      expect(totals.visitors).to.equal(new Set(mine.map((e) => e.visitor)).size);
      // Per minute too: the recount by bucket equals the rollup points.
      const series = await source.request<TimeseriesResponse>('query.timeseries', { site, from, to, interval: 'minute' });
      const byMinute = new Map<number, number>();
      for (const e of mine) if (e.type === 'pageview') byMinute.set(Math.floor(e.timestamp! / MINUTE) * MINUTE, (byMinute.get(Math.floor(e.timestamp! / MINUTE) * MINUTE) ?? 0) + 1);
      for (const p of series.points) expect(p.pageviews, `minute ${p.t}`).to.equal(byMinute.get(p.t) ?? 0);
    }
    source.close();
    dashboard.close();

    // Every surviving process shuts down cleanly on SIGTERM (the aggregator flushes and commits).
    const survivors = procs.filter(alive);
    expect(survivors.map((p) => p.name)).to.deep.equal(['gateway-a', 'gateway-b', 'aggregator-2']);
    const exits = survivors.map((p) => once(p.child, 'exit'));
    for (const p of survivors) p.child.kill('SIGTERM');
    const codes = (await Promise.all(exits)).map(([code]) => code as number | null);
    expect(codes).to.deep.equal([0, 0, 0]);
  });
});
