/**
 * The admin routes end to end over real RSocket (embedded app), beyond tenancy: every answer
 * matches its route's response schema; a site's time zone and goals from the account store
 * drive queries (and a change shows within the settings cache time); key rotation; GDPR erasure
 * of one visitor's raw events.
 */
import { expect } from 'chai';
import { ADMIN_ROUTES, type AdminRouteName } from '../../protocol/admin-routes.js';
import type { ApiKeyInfo, Site } from '../../protocol/admin-schema.js';
import type { QueryResponse } from '../../protocol/query-schema.js';
import type { Event } from '../../protocol/schema.js';
import { compileValidator } from '../../protocol/validate.js';
import { SluiceClient } from '../../src/client/sluice-client.js';
import { startHarness, type Harness } from '../support/harness.js';
import { waitFor } from '../support/wait-for.js';
import { closeCode, createTenant, outcome, type Tenant } from './tenancy-fixture.js';

const responseValidators = Object.fromEntries(Object.entries(ADMIN_ROUTES).map(([r, spec]) => [r, compileValidator(spec.response)]));

describe('admin routes end to end', function () {
  this.timeout(60_000);
  let h: Harness;
  let admin: SluiceClient;
  let t: Tenant;
  /** Event times; queries ask for the hour around it, not 'today' (a local midnight may fall in between). */
  let now: number;
  const around = () => ({ from: now - 3_600_000, to: now + 60_000 });

  /** An admin call whose answer must match the route's response schema. */
  async function call<T>(client: SluiceClient, route: AdminRouteName, body: unknown): Promise<T> {
    const response = await client.request<T>(route, body);
    const valid = responseValidators[route]!(response);
    expect(valid.ok, `${route} response: ${valid.ok ? '' : valid.message}`).to.equal(true);
    return response;
  }

  beforeEach(() => {
    now = Date.now();
  });

  before(async () => {
    h = await startHarness({ ingest: { visitorSecret: 'admin-routes-test-secret-0001' }, accounts: { siteSettingsCacheMs: 100 } });
    admin = await h.client('ws');
    t = await createTenant(admin, 'acme');
  });
  after(async () => {
    await h?.stop();
  });

  it('answers every admin route with its response schema', async () => {
    const orgAdmin = await h.client('tcp', t.keys.admin.secret);
    await call(admin, 'admin.org.create', { name: 'Other' });
    await call(orgAdmin, 'admin.org.list', {});
    await call(orgAdmin, 'admin.site.create', { orgId: t.org.id, id: 'second.acme.example' });
    await call(orgAdmin, 'admin.site.update', { id: 'second.acme.example', domains: ['second.acme.example'] });
    await call(orgAdmin, 'admin.site.list', { orgId: t.org.id });
    await call(orgAdmin, 'admin.user.create', { orgId: t.org.id, email: 'viewer@acme.example', roles: { 'second.acme.example': 'viewer' } });
    await call(orgAdmin, 'admin.user.list', { orgId: t.org.id });
    const k = await call<{ key: ApiKeyInfo }>(orgAdmin, 'admin.key.create', { orgId: t.org.id, scope: { kind: 'ingest', site: 'second.acme.example' } });
    await call(orgAdmin, 'admin.key.list', { orgId: t.org.id });
    await call(admin, 'admin.key.list', { orgId: null });
    const rotated = await call<{ key: ApiKeyInfo }>(orgAdmin, 'admin.key.rotate', { id: k.key.id });
    await call(orgAdmin, 'admin.key.revoke', { id: rotated.key.id });
    await call(orgAdmin, 'admin.visitor.erase', { site: 'second.acme.example', visitor: 'nobody', from: now - 86_400_000, to: now });
    // A user's role bounds the keys made for them.
    const viewer = (await admin.request<{ users: Array<{ id: string; email: string }> }>('admin.user.list', { orgId: t.org.id })).users.find((u) => u.email === 'viewer@acme.example')!;
    expect(await outcome(orgAdmin.request('admin.key.create', { orgId: t.org.id, userId: viewer.id, scope: { kind: 'ingest', site: 'second.acme.example' } }))).to.equal('FORBIDDEN');
    expect(await outcome(orgAdmin.request('admin.key.create', { orgId: t.org.id, userId: viewer.id, scope: { kind: 'read', sites: ['second.acme.example'] } }))).to.equal('ok');
    expect(await outcome(orgAdmin.request('admin.site.create', { orgId: t.org.id, id: 'second.acme.example' }))).to.equal('ADMIN_CONFLICT');
    expect(await outcome(orgAdmin.request('admin.site.update', { id: 'second.acme.example', timeZone: 'Moon/Base' }))).to.equal('ADMIN_INVALID');
  });

  it('queries a stored site in its stored time zone with its stored goals, and follow an update', async () => {
    const reader = await h.client('tcp', t.keys.read.secret);
    const source = await h.client('tcp', t.keys.ingest.secret);
    const site = t.site.id;
    const ack = await source.sendBatch([
      { type: 'pageview', site, url: `https://${site}/signup`, timestamp: now, visitor: 'u1' },
      { type: 'pageview', site, url: `https://${site}/home`, timestamp: now, visitor: 'u2' },
    ]);
    expect(ack.accepted).to.equal(2);
    // Polled with the deployment admin key, whose queries no site's rate limit counts; the read key asks once.
    const run = () => admin.query({ site, metrics: ['visitors', 'conversions'], dimensions: ['goal'], date_range: around() });
    await waitFor(async () => (await run()).rows.some((r) => 'value' in r && r.value === 'acme-goal' && r.metrics.conversions === 1), { what: 'the stored goal converting' });
    expect((await reader.query({ site, metrics: ['visitors'], date_range: around() })).time_zone).to.equal('Asia/Kathmandu');

    await call<Site>(admin, 'admin.site.update', { id: site, timeZone: 'Asia/Kolkata', goals: [{ name: 'Home', page: '/home' }] });
    await waitFor(async () => (await run()).time_zone === 'Asia/Kolkata', { what: 'the new time zone' });
    const rows = (await run()).rows as Array<{ value: string; metrics: Record<string, number | null> }>;
    expect(rows.map((r) => [r.value, r.metrics.conversions])).to.deep.include(['Home', 1]);
    expect(rows.map((r) => r.value)).to.not.include('acme-goal');
  });

  it('rotates a key: the new secret works, the old one\'s connection is closed', async () => {
    const made = await call<{ secret: string; key: ApiKeyInfo }>(admin, 'admin.key.create', { orgId: t.org.id, scope: { kind: 'read', sites: [t.site.id] }, label: 'dash' });
    const old = await SluiceClient.connect({ url: h.url('tcp'), apiKey: made.secret });
    const closed = closeCode(old);
    const rotated = await call<{ secret: string; key: ApiKeyInfo }>(admin, 'admin.key.rotate', { id: made.key.id });
    expect(rotated.key).to.include({ label: 'dash', revokedAt: null });
    expect(rotated.key.scope).to.deep.equal(made.key.scope);
    expect(await closed).to.equal('AUTH_REVOKED');
    const fresh = await h.client('ws', rotated.secret);
    expect(await outcome(fresh.request('query.current', { site: t.site.id }))).to.equal('ok');
  });

  it('erases one visitor\'s raw events (by SDK id, and by IP and user agent), and no one else\'s', async () => {
    const site = 'erase.acme.example';
    await call(admin, 'admin.site.create', { orgId: t.org.id, id: site });
    const source = await h.client('tcp', t.keys.admin.secret);
    const UA = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36';
    const ev = (i: number, who: Partial<Event>): Event => ({ id: `e-${i}`, type: 'pageview', site, url: `https://${site}/x`, timestamp: now - i * 1000, ...who });
    const ack = await source.sendBatch([
      ev(1, { visitor: 'forget-me' }), ev(2, { visitor: 'forget-me' }), ev(3, { visitor: 'keep-me' }),
      ev(4, { ip: '198.51.100.23', userAgent: UA }), ev(5, { ip: '198.51.100.24', userAgent: UA }),
    ]);
    expect(ack.accepted).to.equal(5);
    // A filtered query reads the raw archive.
    // Polled with the deployment admin key, whose queries no site's rate limit counts.
    const rawPageviews = async () => (await admin.query({ site, metrics: ['pageviews'], filters: [{ dimension: 'page', op: 'is', value: '/x' }], date_range: around() }) as QueryResponse).totals.pageviews;
    await waitFor(async () => (await rawPageviews()) === 5, { what: 'the events in the raw archive' });
    const range = around();
    expect(await call(source, 'admin.visitor.erase', { site, visitor: 'forget-me', ...range })).to.deep.include({ erased: 2 });
    expect(await call(source, 'admin.visitor.erase', { site, ip: '198.51.100.23', userAgent: UA, ...range })).to.deep.include({ erased: 1 });
    expect(await rawPageviews()).to.equal(2);
    const other = await createTenant(admin, 'other-erase');
    const intruder = await h.client('ws', other.keys.admin.secret);
    expect(await outcome(intruder.request('admin.visitor.erase', { site, visitor: 'keep-me', ...range }))).to.equal('SITE_FORBIDDEN');
    expect(await rawPageviews()).to.equal(2);
  });
});
