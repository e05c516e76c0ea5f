/**
 * Accounts and tenancy on the real engines: two gateway processes in distributed mode sharing
 * one Cassandra account store (and Kafka, Redis). The first start of the deployment creates one
 * deployment admin key and shows it once; tenants made through gateway A are known to gateway
 * B; every route called through B with another tenant's keys gets nothing of it; a key revoked
 * through A has its open connection on B closed by B's revocation poll; a site's time zone
 * stored through A drives its queries on B.
 */
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import type { ApiKeyInfo } from '../../protocol/admin-schema.js';
import type { TotalsResponse } from '../../protocol/schema.js';
import { SluiceClient } from '../../src/client/sluice-client.js';
import { distributedEnv, startSluiceProcess, type SluiceProcess } from '../support/sluice-process.js';
import { waitFor } from '../support/wait-for.js';
import { attackEveryRoute, closeCode, connectWithOrigin, createTenant, outcome, type Tenant, type TestClient } from './tenancy-fixture.js';

const KEY_PATTERN = /slk_[A-Za-z0-9_-]{20,}/;

describe('tenancy on the real engines: two gateways, one Cassandra account store', function () {
  this.timeout(240_000);
  const run = randomUUID().slice(0, 8);
  const procs: SluiceProcess[] = [];
  const clients: TestClient[] = [];
  let a: SluiceProcess;
  let b: SluiceProcess;
  let adminKey: string;
  let adminA: SluiceClient;
  let victim: Tenant;
  let attacker: Tenant;
  // Taken when the suite starts, not when mocha loads the file (minutes earlier): events stamped
  // that long ago go to the late lane once their partition has been idle.
  let now = 0;
  before(() => {
    now = Date.now();
  });
  const range = (site: string) => ({ site, from: now - 3_600_000, to: now + 3_600_000 });
  const wsUrl = (p: SluiceProcess) => `ws://127.0.0.1:${p.started.ws as number}`;
  const connect = async (url: string, apiKey: string) => {
    const c = await SluiceClient.connect({ url, apiKey });
    clients.push(c);
    return c;
  };

  before(async () => {
    const extra = { SLUICE_GATEWAY_API_KEYS: '', SLUICE_ACCOUNTS_REVOCATION_POLL_MS: '500', SLUICE_ACCOUNTS_SITE_SETTINGS_CACHE_MS: '200' };
    // One after the other: the first start of the deployment is the one that makes the admin key.
    a = await startSluiceProcess('gateway-a', distributedEnv(run, 'gateway aggregate archive', extra));
    procs.push(a);
    b = await startSluiceProcess('gateway-b', distributedEnv(run, 'gateway', extra));
    procs.push(b);
  });

  after(async () => {
    for (const c of clients) c.close();
    for (const p of procs.reverse()) {
      if (!p.alive()) continue;
      const exit = once(p.child, 'exit');
      p.child.kill('SIGTERM');
      await exit;
    }
  });

  it('creates one deployment admin key on the deployment\'s first start, shown once, and both gateways know it', async () => {
    const shownByA = a.lines.filter((l) => KEY_PATTERN.test(l));
    expect(shownByA, 'gateway A shows the key once').to.have.length(1);
    expect(b.lines.filter((l) => KEY_PATTERN.test(l)), 'gateway B finds a key in the store and shows none').to.deep.equal([]);
    adminKey = KEY_PATTERN.exec(shownByA[0]!)![0];
    adminA = await connect(a.tcpUrl, adminKey);
    const adminB = await connect(b.tcpUrl, adminKey);
    const keys = (await adminB.request<{ keys: ApiKeyInfo[] }>('admin.key.list', { orgId: null })).keys;
    expect(keys.map((k) => [k.label, k.scope])).to.deep.equal([['bootstrap admin', { kind: 'admin', orgId: null }]]);
    victim = await createTenant(adminA, `victim-${run}`);
    attacker = await createTenant(adminB, `attacker-${run}`);
  });

  it('gives another tenant\'s keys nothing of the victim on any route through the other gateway', async () => {
    const source = await connect(a.tcpUrl, victim.keys.ingest.secret);
    expect((await source.sendBatch([0, 1].map((i) => ({ id: `v${i}`, type: 'pageview' as const, site: victim.site.id, url: `https://${victim.site.id}/`, timestamp: now })))).accepted).to.equal(2);
    const reader = await connect(wsUrl(b), victim.keys.read.secret);
    const totals = async () => (await reader.request<TotalsResponse>('query.totals', range(victim.site.id))).totals.pageviews;
    await waitFor(async () => (await totals()) === 2, { what: 'the victim\'s pageviews on gateway B', deadlineMs: 60_000, intervalMs: 100 });

    const leaks: string[] = [];
    const unserved = new Set<string>();
    let fnf = 0;
    for (const scope of ['ingest', 'read', 'site', 'admin'] as const) {
      const c = await connect(b.tcpUrl, attacker.keys[scope].secret);
      const r = await attackEveryRoute(c, victim, now, `the attacker's ${scope} key on gateway B`);
      leaks.push(...r.leaks);
      for (const u of r.unserved) unserved.add(u);
      fnf += r.fireAndForget;
    }
    const browser = await connectWithOrigin(wsUrl(b), attacker.site.publicId, attacker.origin);
    clients.push(browser);
    const r = await attackEveryRoute(browser, victim, now, 'the attacker\'s public id on gateway B');
    leaks.push(...r.leaks);
    for (const u of r.unserved) unserved.add(u);
    expect(leaks).to.deep.equal([]);
    // Checked last, so the isolation above is judged on every route that is served.
    expect([...unserved].sort(), 'routes in protocol/routes.ts whose handlers app.ts does not register').to.deep.equal([]);
    expect(fnf + r.fireAndForget).to.be.greaterThan(0);

    // A sentinel on the victim's site after the attacks: once counted, anything slipped in would be too.
    await source.sendBatch([{ id: 'sentinel', type: 'pageview', site: victim.site.id, url: `https://${victim.site.id}/`, timestamp: now }]);
    await waitFor(async () => (await totals()) >= 3, { what: 'the sentinel', deadlineMs: 60_000, intervalMs: 100 });
    expect(await totals()).to.equal(3);
  });

  it('closes, on gateway B, the open connection of a key revoked through gateway A', async () => {
    const made = await adminA.request<{ secret: string; key: ApiKeyInfo }>('admin.key.create', { orgId: attacker.org.id, scope: { kind: 'site', sites: [attacker.site.id] } });
    const onB = await connect(b.tcpUrl, made.secret);
    expect((await onB.request<TotalsResponse>('query.totals', range(attacker.site.id))).site).to.equal(attacker.site.id);
    const closed = closeCode(onB);
    await adminA.request('admin.key.revoke', { id: made.key.id });
    expect(await closed).to.equal('AUTH_REVOKED');
    const again = await connect(wsUrl(b), made.secret);
    expect(await outcome(again.request('query.current', { site: attacker.site.id }))).to.equal('AUTH_REVOKED');
  });

  it('queries a site in the time zone stored through the other gateway, and follows an update', async () => {
    const readerB = await connect(b.tcpUrl, attacker.keys.read.secret);
    const zone = async () => (await readerB.query({ site: attacker.site.id, metrics: ['pageviews'], date_range: 'today' })).time_zone;
    expect(await zone()).to.equal('Asia/Kathmandu');
    await adminA.request('admin.site.update', { id: attacker.site.id, timeZone: 'Asia/Kolkata' });
    await waitFor(async () => (await zone()) === 'Asia/Kolkata', { what: 'the new zone on gateway B', intervalMs: 100 });
  });
});
