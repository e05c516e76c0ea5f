/**
 * Per-tenant limits end to end over real RSocket (embedded app): the per-key ingest rate and
 * the per-site query rate give RATE_LIMITED (retryable, saying when to retry) for that request
 * only, the connection limit refuses SETUP with CONNECTION_LIMIT, deployment admins are not
 * limited, another tenant's refused requests spend nothing of a site's budget, and every
 * rejection shows in /metrics. Rates are tiny, so no refill happens within a test run.
 */
import { expect } from 'chai';
import type { Event, TotalsResponse } from '../../protocol/schema.js';
import { SluiceClient, type SluiceClientError } from '../../src/client/sluice-client.js';
import { startHarness, type Harness } from '../support/harness.js';
import { waitFor } from '../support/wait-for.js';
import { createTenant, outcome, type Tenant } from './tenancy-fixture.js';

describe('limits: rates and connections per tenant', function () {
  this.timeout(60_000);
  let h: Harness;
  let admin: SluiceClient;
  let a: Tenant;
  let b: Tenant;
  // Taken when the suite starts, not when mocha loads the file (minutes earlier): events stamped
  // that long ago go to the late lane once their partition has been idle.
  let now = 0;
  before(() => {
    now = Date.now();
  });
  const range = (site: string) => ({ site, from: now - 3_600_000, to: now + 3_600_000 });
  const events = (site: string, n: number): Event[] => Array.from({ length: n }, () => ({ type: 'pageview', site, url: `https://${site}/`, timestamp: now }));
  const metricsText = async () => (await fetch(`http://127.0.0.1:${h.ports.http}/metrics`)).text();

  before(async () => {
    h = await startHarness({
      limits: { ingestEventsPerSecond: 0.001, ingestBurstEvents: 5, queryRequestsPerSecond: 0.001, queryBurstRequests: 3, maxConnectionsPerKey: 2 },
    });
    admin = await h.client('tcp');
    a = await createTenant(admin, 'limited-a');
    b = await createTenant(admin, 'limited-b');
  });
  after(async () => {
    await h?.stop();
  });

  it('limits events per key: over the burst a batch gets RATE_LIMITED (retryable) and nothing of it is accepted; fire-and-forget drops are counted', async () => {
    const source = await h.client('tcp', a.keys.ingest.secret);
    expect((await source.sendBatch(events(a.site.id, 5))).accepted).to.equal(5);
    const e = await source.sendBatch(events(a.site.id, 1)).then(() => undefined, (err: SluiceClientError) => err);
    expect(e?.code).to.equal('RATE_LIMITED');
    expect(e?.retryable).to.equal(true);
    expect(e?.message).to.match(/retry in \d+ ms/);
    source.sendEvents(events(a.site.id, 2));
    await waitFor(async () => (await h.metric('sluice_gateway_fnf_dropped_total', { code: 'RATE_LIMITED' })) === 1, { what: 'the drop to be counted' });
    // Another key of the same tenant has its own budget.
    const other = await h.client('ws', a.keys.site.secret);
    expect((await other.sendBatch(events(a.site.id, 1))).accepted).to.equal(1);
    // Polled with the deployment admin key: a tenant key's polls would spend the site's query budget.
    await waitFor(async () => (await admin.request<TotalsResponse>('query.totals', range(a.site.id))).totals.pageviews === 6, { what: 'the accepted events' });
    expect(await h.metric('sluice_limit_rejections_total', { limit: 'ingest_rate' })).to.equal(2);
  });

  it('limits queries per site, whichever key asks; another tenant\'s refused queries spend nothing of it', async () => {
    const intruder = await h.client('tcp', a.keys.admin.secret);
    for (let i = 0; i < 10; i++) expect(await outcome(intruder.request('query.totals', range(b.site.id)))).to.equal('SITE_FORBIDDEN');
    const r1 = await h.client('tcp', b.keys.read.secret);
    const r2 = await h.client('ws', b.keys.admin.secret);
    expect(await outcome(r1.request('query.totals', range(b.site.id)))).to.equal('ok');
    expect(await outcome(r2.request('query.run', { site: b.site.id, metrics: ['pageviews'], date_range: 'today' }))).to.equal('ok');
    const streamOpened = await new Promise<string>((resolve) => {
      r1.stream('live.metrics', { site: b.site.id }, 1, { next: () => resolve('ok'), error: (e) => resolve(e.code ?? e.message) });
    });
    expect(streamOpened).to.equal('ok');
    expect(await outcome(r2.request('query.totals', range(b.site.id)))).to.equal('RATE_LIMITED');
    const streamRefused = await new Promise<string>((resolve) => {
      r1.stream('live.query', { site: b.site.id, metrics: ['pageviews'], date_range: 'realtime' }, 1, { next: () => resolve('ok'), error: (e) => resolve(e.code ?? e.message) });
    });
    expect(streamRefused).to.equal('RATE_LIMITED');
    // Only that request failed: the connection serves other sites' budgets and admin routes.
    expect(await outcome(r2.request('admin.site.list', { orgId: b.org.id }))).to.equal('ok');
    // The deployment's admin keys are not limited.
    for (let i = 0; i < 10; i++) expect(await outcome(admin.request('query.totals', range(b.site.id)))).to.equal('ok');
    expect(await h.metric('sluice_limit_rejections_total', { limit: 'query_rate' })).to.equal(2);
  });

  it('refuses a connection past the per-key limit with CONNECTION_LIMIT, and admits again once one closes', async () => {
    const c1 = await SluiceClient.connect({ url: h.url('tcp'), apiKey: b.keys.site.secret });
    const c2 = await SluiceClient.connect({ url: h.url('ws'), apiKey: b.keys.site.secret });
    const c3 = await SluiceClient.connect({ url: h.url('tcp'), apiKey: b.keys.site.secret });
    const refused = await outcome(c3.request('query.current', { site: b.site.id }));
    expect(refused).to.equal('CONNECTION_LIMIT');
    c3.close();
    // Other keys are not affected; deployment admins are never limited.
    const others = await Promise.all([0, 1, 2].map(() => SluiceClient.connect({ url: h.url('tcp'), apiKey: b.keys.read.secret }).then((c) => { c.close(); return 'ok'; })));
    expect(others).to.deep.equal(['ok', 'ok', 'ok']);
    c1.close();
    await waitFor(async () => {
      const c = await SluiceClient.connect({ url: h.url('tcp'), apiKey: b.keys.site.secret });
      try {
        return (await outcome(c.request('admin.org.list', {}))) === 'FORBIDDEN';
      } finally {
        c.close();
      }
    }, { what: 'a connection to be admitted after one closed' });
    c2.close();
    expect(await h.metric('sluice_limit_rejections_total', { limit: 'connections' })).to.be.at.least(1);
    expect(await h.metric('sluice_gateway_setup_rejections_total', { code: 'CONNECTION_LIMIT' })).to.be.at.least(1);
  });

  it('shows every rejection in /metrics by limit', async () => {
    const text = await metricsText();
    expect(text).to.match(/^sluice_limit_rejections_total\{limit="ingest_rate"\} 2$/m);
    expect(text).to.match(/^sluice_limit_rejections_total\{limit="query_rate"\} 2$/m);
    expect(text).to.match(/^sluice_limit_rejections_total\{limit="connections"\} [1-9]\d*$/m);
  });
});
