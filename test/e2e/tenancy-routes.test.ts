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
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { expect } from 'chai';
import type { ApiKeyInfo, Site, User } from '../../protocol/admin-schema.js';
import { ROUTES, type RouteSpec } from '../../protocol/routes.js';
import type { IngestAck, TotalsResponse } from '../../protocol/schema.js';
import { compileValidator } from '../../protocol/validate.js';
import { SluiceClient, SluiceClientError } from '../../src/client/sluice-client.js';
import { SITE_A, SITE_A_KEY, startHarness, type Harness } from '../support/harness.js';
import { waitFor } from '../support/wait-for.js';
import { connectWithOrigin, createTenant, markersOf, type Tenant, type TestClient } from './tenancy-fixture.js';

const HOUR = 3_600_000;
/** What a refused call may answer: nothing else is a clean refusal. */
const REFUSALS = ['FORBIDDEN', 'SITE_FORBIDDEN', 'ADMIN_NOT_FOUND'];

/** A request body for `route` aimed at the victim's records. */
function victimBody(route: string, spec: RouteSpec, v: Tenant, now: number): unknown {
  const site = v.site.id;
  const range = { site, from: now - HOUR, to: now + HOUR };
  const event = { type: 'pageview', site, url: `https://${site}/stolen`, timestamp: now };
  const known: Record<string, unknown> = {
    'ingest.events': { events: [event] },
    'ingest.batch': { events: [event] },
    'query.timeseries': { ...range, interval: 'hour' },
    'query.totals': range,
    'query.breakdown': { ...range, dimension: 'page' },
    'query.current': { site },
    'query.run': { site, metrics: ['pageviews', 'visitors'], date_range: '7d' },
    'live.metrics': { site },
    'live.query': { site, metrics: ['pageviews'], date_range: 'realtime' },
    'admin.org.create': { name: 'Intruder' },
    'admin.org.list': {},
    'admin.site.create': { orgId: v.org.id, id: `intruder.${site}` },
    'admin.site.update': { id: site, timeZone: 'UTC', allowedOrigins: ['https://evil.example'] },
    'admin.site.list': { orgId: v.org.id },
    'admin.user.create': { orgId: v.org.id, email: 'intruder@evil.example', roles: {} },
    'admin.user.list': { orgId: v.org.id },
    'admin.key.create': { orgId: v.org.id, scope: { kind: 'read', sites: [site] } },
    'admin.key.list': { orgId: v.org.id },
    'admin.key.revoke': { id: v.keys.read.info.id },
    'admin.key.rotate': { id: v.keys.admin.info.id },
    'admin.visitor.erase': { site, visitor: 'victim-visitor', from: now - HOUR, to: now + HOUR },
  };
  const body = route in known ? known[route] : aimAtVictim(Value.Create(spec.request), v, now);
  const valid = compileValidator(spec.request as TSchema)(body);
  if (!valid.ok) throw new Error(`no valid request body aimed at the victim for route ${route} (${valid.message}): add one to victimBody`);
  return body;
}

/** A generated body with every field that names a tenant's record pointed at the victim's. */
function aimAtVictim(value: unknown, v: Tenant, now: number): unknown {
  if (Array.isArray(value)) return value.map((x) => aimAtVictim(x, v, now));
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(value)) {
    out[k] = k === 'site' ? v.site.id
      : k === 'sites' ? [v.site.id]
        : k === 'orgId' ? v.org.id
          : k === 'keyId' ? v.keys.read.info.id
            : k === 'from' ? now - HOUR
              : k === 'to' ? now + HOUR
                : aimAtVictim(x, v, now);
  }
  return out;
}

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
  const now = Date.now();
  let victimPageviews = 0;
  let fnfSent = 0;

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
      const markers = markersOf(victim);
      const leaks: string[] = [];
      const fnfBefore = await h.metric('sluice_gateway_requests_total', { route: 'ingest.events' });
      let fnfHere = 0;
      for (const who of attackers(transport)) {
        const client = await who.connect();
        for (const [route, spec] of Object.entries(ROUTES) as Array<[string, RouteSpec]>) {
          const body = victimBody(route, spec, victim, now);
          const where = `${route} with the attacker's ${who.name}`;
          if (spec.interaction === 'fireAndForget') {
            client.fireAndForget(route, body);
            fnfHere++;
            continue;
          }
          if (spec.interaction === 'requestStream') {
            // Ends at the first of: an error, completion, a message (a leak: the stream is cancelled).
            const end = await new Promise<{ error?: SluiceClientError; message?: unknown }>((resolve) => {
              const handle = client.stream(route, body, 10, {
                next: (message) => { handle.cancel(); resolve({ message }); },
                error: (error) => resolve({ error }),
                complete: () => resolve({ error: new SluiceClientError('the stream completed', undefined, undefined, false) }),
              });
            });
            if (end.message !== undefined) leaks.push(`${where}: a stream message ${JSON.stringify(end.message).slice(0, 200)}`);
            else if (!REFUSALS.includes(end.error?.code ?? '')) leaks.push(`${where}: stream ended with ${end.error?.code ?? end.error?.message}`);
            continue;
          }
          try {
            const response = await client.request<unknown>(route, body);
            if (route === 'ingest.batch') {
              const ack = response as IngestAck;
              if (ack.accepted !== 0 || ack.duplicates !== 0 || ack.rejected.some((r) => r.code !== 'SITE_FORBIDDEN')) leaks.push(`${where}: ${JSON.stringify(ack)}`);
              continue;
            }
            const text = JSON.stringify(response);
            const named = markers.filter((m) => text.includes(m));
            if (named.length > 0) leaks.push(`${where}: answered with ${named.join(', ')}: ${text.slice(0, 300)}`);
          } catch (e) {
            const code = (e as SluiceClientError).code;
            if (!REFUSALS.includes(code ?? '')) leaks.push(`${where}: failed with ${code ?? (e as Error).message}`);
          }
        }
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
