/**
 * Tenant isolation over every route (issue 6): each route of protocol/routes.ts — iterated from
 * the table, so a new route is covered without touching this file — is called, aimed at a
 * victim tenant, with an attacker tenant's credentials of every kind: an ingest key, a read key,
 * a site key, an organisation admin key, a static site key, and (WebSocket, from the site's
 * allowed Origin) the attacker site's public id. Over real RSocket on TCP and WebSocket.
 *
 * Each call must get nothing of the victim: an error (FORBIDDEN, SITE_FORBIDDEN or
 * ADMIN_NOT_FOUND), an ingest ack that accepted nothing, or a response that names nothing of
 * the victim (an organisation admin listing its own organisations). Streams must fail before
 * any message. Afterwards the victim's data, keys and settings are exactly as before.
 */
import { expect } from 'chai';
import type { ApiKeyInfo, Site, User } from '../../protocol/admin-schema.js';
import type { TotalsResponse } from '../../protocol/schema.js';
import { SluiceClient, type SluiceClientError } from '../../src/client/sluice-client.js';
import { SITE_A, SITE_A_KEY, startHarness, type Harness } from '../support/harness.js';
import { waitFor } from '../support/wait-for.js';
import { attackEveryRoute, connectWithOrigin, createTenant, type Tenant, type TestClient } from './tenancy-fixture.js';

const HOUR = 3_600_000;

interface Attacker {
  readonly name: string;
  connect(): Promise<TestClient>;
}

describe('tenancy: every route with another tenant\'s credentials gets nothing of it', function () {
  this.timeout(120_000);
  let h: Harness;
  let admin: SluiceClient;
  let victim: Tenant;
  let attacker: Tenant;
  let victimReader: SluiceClient;
  // Taken when the suite starts, not when mocha loads the file (minutes earlier): events stamped
  // that long ago go to the late lane once their partition has been idle.
  let now = 0;
  before(() => {
    now = Date.now();
  });
  let victimPageviews = 0;
  let fnfSent = 0;
  const unserved = new Set<string>();

  const victimTotals = async () => (await victimReader.request<TotalsResponse>('query.totals', { site: victim.site.id, from: now - HOUR, to: now + HOUR })).totals.pageviews;

  before(async () => {
    h = await startHarness();
    admin = await h.client('tcp');
    victim = await createTenant(admin, 'victim');
    // The attacker's site is the one the harness's static site key may use.
    attacker = await createTenant(admin, 'attacker', SITE_A);
    const source = await h.client('tcp', victim.keys.ingest.secret);
    const ack = await source.sendBatch([0, 1, 2].map((i) => ({ id: `v-${i}`, type: 'pageview' as const, site: victim.site.id, url: `https://${victim.site.id}/p${i}`, timestamp: now })));
    expect(ack.accepted).to.equal(3);
    victimPageviews = 3;
    victimReader = await h.client('ws', victim.keys.read.secret);
    await waitFor(async () => (await victimTotals()) === 3, { what: 'the victim\'s pageviews' });
  });

  after(async () => {
    await h?.stop();
  });

  const attackers = (transport: 'tcp' | 'ws'): Attacker[] => [
    ...(['ingest', 'read', 'site', 'admin'] as const).map((scope) => ({
      name: `${scope} key`, connect: () => h.client(transport, attacker.keys[scope].secret),
    })),
    { name: 'static site key', connect: () => h.client(transport, SITE_A_KEY) },
    ...(transport === 'ws' ? [{ name: 'public site id from its allowed origin', connect: () => connectWithOrigin(h.url('ws'), attacker.site.publicId, attacker.origin) }] : []),
  ];

  for (const transport of ['tcp', 'ws'] as const) {
    it(`over ${transport}`, async () => {
      const leaks: string[] = [];
      const fnfBefore = await h.metric('sluice_gateway_requests_total', { route: 'ingest.events' });
      let fnfHere = 0;
      for (const who of attackers(transport)) {
        const client = await who.connect();
        const result = await attackEveryRoute(client, victim, now, `the attacker's ${who.name}`);
        leaks.push(...result.leaks);
        for (const r of result.unserved) unserved.add(r);
        fnfHere += result.fireAndForget;
        // Still connected: a refusal fails the request, never the connection.
        expect(await client.request<unknown>('admin.org.list', {}).then(() => 'ok', (e: SluiceClientError) => e.code), who.name).to.be.oneOf(['ok', 'FORBIDDEN']);
        client.close();
      }
      expect(leaks).to.deep.equal([]);
      fnfSent += fnfHere;
      // Every fire-and-forget request is counted once it is done with (ok or a drop code).
      await waitFor(async () => (await h.metric('sluice_gateway_requests_total', { route: 'ingest.events' })) >= fnfBefore + fnfHere, { what: 'the fire-and-forget requests to be handled' });
    });
  }

  it('serves every route of the table (a route without registered handlers answers ROUTE_UNKNOWN and is not checked above)', () => {
    expect([...unserved].sort(), 'routes in protocol/routes.ts whose handlers app.ts does not register').to.deep.equal([]);
  });

  it('left the victim\'s data, keys, site and users as they were', async () => {
    expect(fnfSent).to.be.greaterThan(0);
    // A sentinel after every attack, on the same site (same partition): once it is counted,
    // anything the attacks had slipped in would be counted too.
    const source = await h.client('tcp', victim.keys.ingest.secret);
    await source.sendBatch([{ id: 'sentinel', type: 'pageview', site: victim.site.id, url: `https://${victim.site.id}/sentinel`, timestamp: now }]);
    victimPageviews++;
    await waitFor(async () => (await victimTotals()) >= victimPageviews, { what: 'the sentinel' });
    expect(await victimTotals()).to.equal(victimPageviews);
    const keys = (await admin.request<{ keys: ApiKeyInfo[] }>('admin.key.list', { orgId: victim.org.id })).keys;
    expect(keys.map((k) => [k.id, k.revokedAt])).to.deep.equal(Object.values(victim.keys).map((k) => [k.info.id, null]).sort());
    const sites = (await admin.request<{ sites: Site[] }>('admin.site.list', { orgId: victim.org.id })).sites;
    expect(sites).to.deep.equal([victim.site]);
    const users = (await admin.request<{ users: User[] }>('admin.user.list', { orgId: victim.org.id })).users;
    expect(users).to.deep.equal([victim.user]);
    const orgs = (await admin.request<{ organisations: Array<{ id: string }> }>('admin.org.list', {})).organisations.map((o) => o.id);
    expect(orgs).to.deep.equal([attacker.org.id, victim.org.id].sort());
  });
});
