import { expect } from 'chai';
import type { KeyScope } from '../../protocol/admin-schema.js';
import { MemoryAccountStore } from '../adapters/memory/memory-account-store.js';
import { SluiceError } from '../errors.js';
import { Accounts, digestKey, type Principal } from './accounts.js';

describe('Accounts', () => {
  let nowMs = 1_000_000;
  let store: MemoryAccountStore;
  let accounts: Accounts;

  beforeEach(() => {
    nowMs = 1_000_000;
    store = new MemoryAccountStore();
    accounts = new Accounts(store, { now: () => nowMs, siteCacheMs: 0 });
  });

  const principal = async (secret: string): Promise<Principal> => {
    const p = await accounts.authenticate(secret);
    if ('refused' in p) throw new Error(p.refused);
    return p;
  };

  async function twoTenants() {
    const a = await accounts.createOrganisation('A', 'org-a');
    const b = await accounts.createOrganisation('B', 'org-b');
    await accounts.createSite({ orgId: a.id, id: 'site-a', allowedOrigins: ['https://a.example'] });
    await accounts.createSite({ orgId: b.id, id: 'site-b' });
    return { a, b };
  }

  it('stores only a digest of a key, and authenticates the secret it returned once', async () => {
    await twoTenants();
    const { secret, key } = await accounts.createKey({ scope: { kind: 'ingest', site: 'site-a' }, orgId: 'org-a' });
    expect(secret).to.match(/^slk_[A-Za-z0-9_-]{32}$/);
    const stored = await store.getKey(key.id);
    expect(JSON.stringify(stored)).to.not.include(secret);
    expect(stored?.digest).to.equal(digestKey(secret));
    expect(await principal(secret)).to.include({ keyId: key.id, orgId: 'org-a' });
    expect(await accounts.authenticate(`${secret}x`)).to.deep.equal({ refused: 'AUTH_INVALID' });
  });

  it('scopes: an ingest key ingests one site, a read key reads its sites, an org admin only its organisation', async () => {
    await twoTenants();
    const ingest = await principal((await accounts.createKey({ scope: { kind: 'ingest', site: 'site-a' }, orgId: 'org-a' })).secret);
    const read = await principal((await accounts.createKey({ scope: { kind: 'read', sites: ['site-a'] }, orgId: 'org-a' })).secret);
    const admin = await principal((await accounts.createKey({ scope: { kind: 'admin', orgId: 'org-a' }, orgId: 'org-a' })).secret);
    expect(await accounts.allows(ingest, 'ingest', 'site-a')).to.equal(true);
    expect(await accounts.allows(ingest, 'read', 'site-a')).to.equal(false);
    expect(await accounts.allows(ingest, 'ingest', 'site-b')).to.equal(false);
    expect(await accounts.allows(read, 'read', 'site-a')).to.equal(true);
    expect(await accounts.allows(read, 'ingest', 'site-a')).to.equal(false);
    expect(await accounts.allows(read, 'read', 'site-b')).to.equal(false);
    expect(await accounts.allows(admin, 'read', 'site-a')).to.equal(true);
    expect(await accounts.allows(admin, 'ingest', 'site-a')).to.equal(true);
    expect(await accounts.allows(admin, 'read', 'site-b')).to.equal(false);
    expect(await accounts.allows(admin, 'read', 'no-such-site')).to.equal(false);
    expect(Accounts.administers(admin, 'org-a')).to.equal(true);
    expect(Accounts.administers(admin, 'org-b')).to.equal(false);
    expect(Accounts.administers(admin, null)).to.equal(false);
  });

  it('refuses keys for another organisation\'s site', async () => {
    await twoTenants();
    const scopes: KeyScope[] = [{ kind: 'ingest', site: 'site-b' }, { kind: 'read', sites: ['site-a', 'site-b'] }];
    for (const scope of scopes) {
      const err = await accounts.createKey({ scope, orgId: 'org-a' }).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(SluiceError).and.to.have.property('code', 'ADMIN_INVALID');
    }
  });

  it('revokes, rotates and expires keys', async () => {
    await twoTenants();
    const made = await accounts.createKey({ scope: { kind: 'read', sites: ['site-a'] }, orgId: 'org-a', expiresAt: nowMs + 1000 });
    const rotated = await accounts.rotateKey(made.key.id);
    expect(await accounts.authenticate(made.secret)).to.deep.equal({ refused: 'AUTH_REVOKED' });
    const p = await principal(rotated.secret);
    expect(rotated.key.expiresAt).to.equal(nowMs + 1000);
    nowMs += 1000;
    expect(await accounts.authenticate(rotated.secret)).to.deep.equal({ refused: 'AUTH_EXPIRED' });
    expect(await accounts.allows(p, 'read', 'site-a')).to.equal(false);
    expect(await store.revocationsSince(0)).to.deep.equal([made.key.id]);
  });

  it('user roles bound the keys made for them', async () => {
    await twoTenants();
    const viewer = await accounts.createUser('org-a', 'v@a.example', { 'site-a': 'viewer' });
    const owner = await accounts.createUser('org-a', 'o@a.example', { 'site-a': 'owner' });
    await accounts.createKey({ scope: { kind: 'read', sites: ['site-a'] }, orgId: 'org-a', userId: viewer.id });
    const err = await accounts.createKey({ scope: { kind: 'ingest', site: 'site-a' }, orgId: 'org-a', userId: viewer.id }).catch((e: unknown) => e);
    expect(err).to.have.property('code', 'FORBIDDEN');
    await accounts.createKey({ scope: { kind: 'admin', orgId: 'org-a' }, orgId: 'org-a', userId: owner.id });
    const cross = await accounts.createUser('org-b', 'x@b.example', { 'site-a': 'owner' }).catch((e: unknown) => e);
    expect(cross).to.have.property('code', 'ADMIN_INVALID');
  });

  it('public site ids are accepted only from allowed origins, for ingest only', async () => {
    await twoTenants();
    const site = await store.getSite('site-a');
    expect(await accounts.authenticatePublic(site!.publicId, 'https://evil.example')).to.equal(null);
    expect(await accounts.authenticatePublic(site!.publicId, undefined)).to.equal(null);
    const p = await accounts.authenticatePublic(site!.publicId, 'https://a.example');
    expect(p?.scope).to.deep.equal({ kind: 'ingest', site: 'site-a' });
    expect(await accounts.allows(p!, 'read', 'site-a')).to.equal(false);
  });

  it('creates one bootstrap admin key on first start only', async () => {
    const secret = await accounts.bootstrapAdminKey();
    expect(secret).to.be.a('string');
    expect(await accounts.bootstrapAdminKey()).to.equal(null);
    const p = await principal(secret!);
    expect(Accounts.administers(p, null)).to.equal(true);
    expect(Accounts.administers(p, 'any-org')).to.equal(true);
  });

  it('rejects unknown time zones and duplicate ids', async () => {
    await twoTenants();
    expect(await accounts.createSite({ orgId: 'org-a', id: 'x', timeZone: 'Mars/Base' }).catch((e: unknown) => e)).to.have.property('code', 'ADMIN_INVALID');
    expect(await accounts.createSite({ orgId: 'org-a', id: 'site-a' }).catch((e: unknown) => e)).to.have.property('code', 'ADMIN_CONFLICT');
    expect((await accounts.createSite({ orgId: 'org-a', id: 'kathmandu', timeZone: 'Asia/Kathmandu' })).timeZone).to.equal('Asia/Kathmandu');
  });
});
