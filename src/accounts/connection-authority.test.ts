import { expect } from 'chai';
import { MemoryAccountStore } from '../adapters/memory/memory-account-store.js';
import { Accounts, type Principal } from './accounts.js';
import { ConnectionAuthority } from './connection-authority.js';

describe('connection authority', () => {
  async function setup() {
    let t = 1_000_000;
    const store = new MemoryAccountStore();
    const accounts = new Accounts(store, { siteCacheMs: 0, now: () => t });
    await accounts.createOrganisation('A', 'org-a');
    await accounts.createOrganisation('B', 'org-b');
    await accounts.createSite({ orgId: 'org-a', id: 'a1' });
    await accounts.createSite({ orgId: 'org-b', id: 'b1' });
    let asked = 0;
    const make = (principal: Principal) => new ConnectionAuthority({
      principal, ttlMs: 1_000, now: () => t,
      allows: (p, action, site) => { asked++; return accounts.allows(p, action, site); },
    });
    return { make, asked: () => asked, advance: (ms: number) => { t += ms; } };
  }
  const orgAdmin: Principal = { keyId: 'k1', orgId: 'org-a', scope: { kind: 'admin', orgId: 'org-a' }, expiresAt: null };

  it('decides scoped keys at once, without asking the store', async () => {
    const { make, asked } = await setup();
    const ingest = make({ keyId: 'k', orgId: 'org-a', scope: { kind: 'ingest', site: 'a1' }, expiresAt: null });
    expect(ingest.known('ingest', 'a1')).to.equal(true);
    expect(ingest.known('ingest', 'b1')).to.equal(false);
    expect(ingest.known('read', 'a1')).to.equal(false);
    expect(ingest.ensure('ingest', ['a1', 'b1'])).to.equal(undefined);
    expect(ingest.kindAllows('read')).to.equal(false);
    expect(ingest.asksStore).to.equal(false);
    expect(await ingest.allows('ingest', 'a1')).to.equal(true);
    expect(asked()).to.equal(0);
  });

  it('asks the store for an organisation admin, once per site per ttl, and knows the answer afterwards', async () => {
    const { make, asked, advance } = await setup();
    const a = make(orgAdmin);
    expect(a.asksStore).to.equal(true);
    expect(a.known('read', 'a1')).to.equal(undefined);
    const ready = a.ensure('ingest', ['a1', 'b1', 'a1']);
    expect(ready).to.be.instanceOf(Promise);
    await ready;
    expect(a.known('ingest', 'a1')).to.equal(true);
    expect(a.known('ingest', 'b1')).to.equal(false);
    expect(a.ensure('ingest', ['a1', 'b1'])).to.equal(undefined);
    expect(await a.allows('ingest', 'a1')).to.equal(true);
    expect(asked()).to.equal(2);
    advance(1_000);
    expect(a.ensure('ingest', ['a1'])).to.be.instanceOf(Promise);
    expect(await a.allows('ingest', 'a1')).to.equal(true);
    expect(asked()).to.equal(3);
  });

  it('shares one lookup between concurrent asks of one site', async () => {
    const { make, asked } = await setup();
    const a = make(orgAdmin);
    const answers = await Promise.all([a.allows('read', 'b1'), a.allows('read', 'b1'), a.ensure('read', ['b1'])]);
    expect(answers.slice(0, 2)).to.deep.equal([false, false]);
    expect(asked()).to.equal(1);
  });

  it('refuses everything once the key has expired', async () => {
    const { make, advance } = await setup();
    const a = make({ ...orgAdmin, expiresAt: 1_000_500 });
    await a.ensure('read', ['a1']);
    expect(a.known('read', 'a1')).to.equal(true);
    advance(500);
    expect(a.known('read', 'a1')).to.equal(false);
    expect(await a.allows('read', 'a1')).to.equal(false);
  });

  it('keeps at most maxEntries answers', async () => {
    const store = new MemoryAccountStore();
    const accounts = new Accounts(store);
    const a = new ConnectionAuthority({ principal: orgAdmin, ttlMs: 60_000, maxEntries: 3, allows: (p, ac, s) => accounts.allows(p, ac, s) });
    for (const s of ['s1', 's2', 's3', 's4']) await a.allows('read', s);
    expect(a.known('read', 's1')).to.equal(undefined);
    expect(a.known('read', 's4')).to.equal(false);
  });
});
