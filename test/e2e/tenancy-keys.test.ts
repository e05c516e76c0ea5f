/**
 * Keys end to end over real RSocket (embedded app): what each scope may do, SETUP refusals,
 * revocation and expiry closing open connections, and public site ids accepted only from the
 * site's allowed origins over WebSocket.
 */
import { expect } from 'chai';
import type { ApiKeyInfo } from '../../protocol/admin-schema.js';
import type { Event, IngestAck, TotalsResponse } from '../../protocol/schema.js';
import { SluiceClient } from '../../src/client/sluice-client.js';
import { startHarness, type Harness } from '../support/harness.js';
import { waitFor } from '../support/wait-for.js';
import { closeCode, connectWithOrigin, createTenant, outcome, type Tenant } from './tenancy-fixture.js';

describe('tenancy: keys, scopes, revocation, expiry and public ids', function () {
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
  const pageview = (site: string, id?: string, path = '/'): Event => ({ ...(id ? { id } : {}), type: 'pageview', site, url: `https://${site}${path}`, timestamp: now });

  before(async () => {
    // A fast revocation poll so the watcher path is exercised within the test's patience.
    h = await startHarness({ accounts: { revocationPollMs: 200 } });
    admin = await h.client('tcp');
    a = await createTenant(admin, 'tenant-a');
    b = await createTenant(admin, 'tenant-b');
  });
  after(async () => {
    await h?.stop();
  });

  it('an ingest key sends events but cannot query; a read key queries but cannot send', async () => {
    const ingest = await h.client('tcp', a.keys.ingest.secret);
    const ack = await ingest.sendBatch([pageview(a.site.id), pageview(b.site.id)]);
    expect(ack.accepted).to.equal(1);
    expect(ack.rejected.map((r) => [r.index, r.code])).to.deep.equal([[1, 'SITE_FORBIDDEN']]);
    expect(await outcome(ingest.request('query.totals', range(a.site.id)))).to.equal('FORBIDDEN');
    expect(await outcome(ingest.request('admin.org.list', {}))).to.equal('FORBIDDEN');

    const read = await h.client('ws', a.keys.read.secret);
    expect(await outcome(read.sendBatch([pageview(a.site.id)]))).to.equal('FORBIDDEN');
    await waitFor(async () => (await read.request<TotalsResponse>('query.totals', range(a.site.id))).totals.pageviews === 1, { what: 'the accepted event' });
    expect(await outcome(read.request('query.totals', range(b.site.id)))).to.equal('SITE_FORBIDDEN');
  });

  it('a site key does both for its sites only; an organisation admin everything of its organisation and nothing of another', async () => {
    const site = await h.client('tcp', a.keys.site.secret);
    expect((await site.sendBatch([pageview(a.site.id)])).accepted).to.equal(1);
    expect((await site.request<TotalsResponse>('query.totals', range(a.site.id))).site).to.equal(a.site.id);
    expect(await outcome(site.request('query.totals', range(b.site.id)))).to.equal('SITE_FORBIDDEN');

    const orgAdmin = await h.client('ws', a.keys.admin.secret);
    const ack = await orgAdmin.sendBatch([pageview(a.site.id), pageview(b.site.id)]);
    expect([ack.accepted, ack.rejected.map((r) => r.code)]).to.deep.equal([1, ['SITE_FORBIDDEN']]);
    expect((await orgAdmin.request<TotalsResponse>('query.totals', range(a.site.id))).site).to.equal(a.site.id);
    expect(await outcome(orgAdmin.request('query.totals', range(b.site.id)))).to.equal('SITE_FORBIDDEN');
    expect(await outcome(orgAdmin.request('admin.site.list', { orgId: a.org.id }))).to.equal('ok');
    expect(await outcome(orgAdmin.request('admin.site.list', { orgId: b.org.id }))).to.equal('FORBIDDEN');
    expect(await outcome(orgAdmin.request('admin.key.revoke', { id: b.keys.read.info.id }))).to.equal('ADMIN_NOT_FOUND');
    expect(await outcome(orgAdmin.request('admin.key.create', { orgId: a.org.id, scope: { kind: 'read', sites: [b.site.id] } }))).to.equal('ADMIN_INVALID');
    expect(await outcome(orgAdmin.request('admin.org.create', { name: 'x' }))).to.equal('FORBIDDEN');
  });

  it('refuses SETUP with an unknown, a revoked or an expired key', async () => {
    const tcp = h.url('tcp');
    const refusal = async (apiKey: string) => {
      const client = await SluiceClient.connect({ url: tcp, apiKey });
      return outcome(client.request('admin.org.list', {})).finally(() => client.close());
    };
    expect(await refusal('slk_not-a-key-at-all')).to.equal('AUTH_INVALID');
    const revoked = await admin.request<{ secret: string; key: ApiKeyInfo }>('admin.key.create', { orgId: a.org.id, scope: { kind: 'read', sites: [a.site.id] } });
    await admin.request('admin.key.revoke', { id: revoked.key.id });
    expect(await refusal(revoked.secret)).to.equal('AUTH_REVOKED');
    const expiring = await admin.request<{ secret: string; key: ApiKeyInfo }>('admin.key.create', {
      orgId: a.org.id, scope: { kind: 'read', sites: [a.site.id] }, expiresAt: Date.now() + 300,
    });
    await waitFor(() => Date.now() > expiring.key.expiresAt! + 1, { what: 'the expiry to pass' });
    expect(await refusal(expiring.secret)).to.equal('AUTH_EXPIRED');
    expect(await h.metric('sluice_gateway_setup_rejections_total', { code: 'AUTH_REVOKED' })).to.be.greaterThan(0);
  });

  for (const how of ['the admin route on this gateway', 'the store (seen by the revocation poll)'] as const) {
    it(`closes a revoked key's open connections with AUTH_REVOKED, revoked through ${how}`, async () => {
      const made = await admin.request<{ secret: string; key: ApiKeyInfo }>('admin.key.create', { orgId: a.org.id, scope: { kind: 'site', sites: [a.site.id] } });
      const tcp = await SluiceClient.connect({ url: h.url('tcp'), apiKey: made.secret });
      const ws = await SluiceClient.connect({ url: h.url('ws'), apiKey: made.secret });
      const other = await h.client('tcp', a.keys.read.secret);
      const closes = [closeCode(tcp), closeCode(ws)];
      const streamEnded = new Promise<string>((resolve) => {
        ws.stream('live.metrics', { site: a.site.id }, 5, { next: () => undefined, error: (e) => resolve(e.code ?? e.message), complete: () => resolve('completed') });
      });
      expect((await tcp.request<TotalsResponse>('query.totals', range(a.site.id))).site).to.equal(a.site.id);
      if (how === 'the admin route on this gateway') await admin.request('admin.key.revoke', { id: made.key.id });
      else await h.app.accounts!.revokeKey(made.key.id);
      expect(await Promise.all(closes)).to.deep.equal(['AUTH_REVOKED', 'AUTH_REVOKED']);
      expect(await streamEnded).to.be.a('string');
      // Other keys' connections are untouched.
      expect((await other.request<TotalsResponse>('query.totals', range(a.site.id))).site).to.equal(a.site.id);
      tcp.close();
      ws.close();
    });
  }

  it('closes an expiring key\'s open connection with AUTH_EXPIRED at its expiry', async () => {
    const made = await admin.request<{ secret: string; key: ApiKeyInfo }>('admin.key.create', {
      orgId: a.org.id, scope: { kind: 'read', sites: [a.site.id] }, expiresAt: Date.now() + 1_500,
    });
    const client = await SluiceClient.connect({ url: h.url('ws'), apiKey: made.secret });
    const closed = closeCode(client);
    expect((await client.request<TotalsResponse>('query.totals', range(a.site.id))).site).to.equal(a.site.id);
    expect(await closed).to.equal('AUTH_EXPIRED');
    expect(Date.now()).to.be.at.least(made.key.expiresAt!);
  });

  it('accepts a public site id only over WebSocket from an allowed origin, and only to send that site\'s events', async () => {
    const browser = await connectWithOrigin(h.url('ws'), a.site.publicId, a.origin);
    const ack = await browser.request<IngestAck>('ingest.batch', { events: [pageview(a.site.id, 'from-browser', '/browser'), pageview(b.site.id)] });
    expect([ack.accepted, ack.rejected.map((r) => r.code)]).to.deep.equal([1, ['SITE_FORBIDDEN']]);
    browser.fireAndForget('ingest.events', pageview(a.site.id, 'from-browser-fnf', '/browser'));
    expect(await outcome(browser.request('query.totals', range(a.site.id)))).to.equal('FORBIDDEN');
    // Origins compare normalised: case and the default port do not matter.
    const upper = await connectWithOrigin(h.url('ws'), a.site.publicId, a.origin.toUpperCase().replace('HTTPS', 'https') + ':443');
    expect((await upper.request<IngestAck>('ingest.batch', { events: [pageview(a.site.id, undefined, '/browser')] })).accepted).to.equal(1);
    upper.close();
    browser.close();

    const refused = async (connect: () => Promise<{ request<T>(r: string, b: unknown): Promise<T>; close(): void }>) => {
      const c = await connect();
      return outcome(c.request('ingest.batch', { events: [pageview(a.site.id, undefined, '/browser')] })).finally(() => c.close());
    };
    expect(await refused(() => connectWithOrigin(h.url('ws'), a.site.publicId, 'https://evil.example'))).to.equal('AUTH_INVALID');
    expect(await refused(() => connectWithOrigin(h.url('ws'), a.site.publicId, b.origin))).to.equal('AUTH_INVALID');
    expect(await refused(() => connectWithOrigin(h.url('ws'), a.site.publicId, undefined))).to.equal('AUTH_INVALID');
    expect(await refused(() => SluiceClient.connect({ url: h.url('tcp'), apiKey: a.site.publicId }))).to.equal('AUTH_INVALID');
    expect(await refused(() => connectWithOrigin(h.url('ws'), 'pub_unknown', a.origin))).to.equal('AUTH_INVALID');

    const reader = await h.client('tcp', a.keys.read.secret);
    const browserPageviews = async () => (await reader.request<{ rows: Array<{ value: string; pageviews: number }> }>('query.breakdown', { ...range(a.site.id), dimension: 'page' }))
      .rows.find((r) => r.value === '/browser')?.pageviews;
    // Two acknowledged and one fire-and-forget; the refused connections sent nothing.
    await waitFor(async () => (await browserPageviews()) === 3, { what: 'the browser\'s three events' });
  });
});
