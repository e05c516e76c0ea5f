/**
 * The AccountStore contract (src/accounts/account-store.ts), run against every implementation.
 */
import { expect } from 'chai';
import type { Organisation, Site, User } from '../../protocol/admin-schema.js';
import type { AccountStore, StoredKey } from '../../src/accounts/account-store.js';

export function accountStoreContract(name: string, make: () => Promise<AccountStore>): void {
  describe(`AccountStore contract: ${name}`, () => {
    let store: AccountStore;
    const u = Math.random().toString(36).slice(2, 8);
    const org = (id: string): Organisation => ({ id: `${id}-${u}`, name: `Org ${id}`, createdAt: 1 });
    const site = (id: string, orgId: string): Site => ({
      id: `${id}-${u}`, orgId, domains: ['example.com'], timeZone: 'Asia/Kolkata', retention: { rawDays: 30 },
      goals: [{ name: 'Signup', event: 'signup', props: { plan: 'pro' } }], publicId: `pub-${id}-${u}`,
      allowedOrigins: ['https://example.com'], createdAt: 2,
    });
    const key = (id: string, orgId: string | null, digest: string): StoredKey => ({
      id: `${id}-${u}`, label: 'k', scope: orgId === null ? { kind: 'admin', orgId: null } : { kind: 'read', sites: [`s1-${u}`] },
      createdAt: 3, expiresAt: null, revokedAt: null, digest: `${digest}${u}`, orgId,
    });

    beforeEach(async () => {
      store = await make();
    });
    afterEach(async () => {
      await store.close();
    });

    it('stores organisations, sites and users whole, and lists them per organisation only', async () => {
      const a = org('a');
      const b = org('b');
      await store.putOrganisation(a);
      await store.putOrganisation(b);
      await store.putSite(site('s1', a.id));
      await store.putSite(site('s2', b.id));
      const user: User = { id: `u1-${u}`, orgId: a.id, email: 'x@example.com', roles: { [`s1-${u}`]: 'analyst' }, createdAt: 4 };
      await store.putUser(user);
      expect(await store.getOrganisation(a.id)).to.deep.equal(a);
      expect(await store.getSite(`s1-${u}`)).to.deep.equal(site('s1', a.id));
      expect(await store.getSiteByPublicId(`pub-s2-${u}`)).to.deep.equal(site('s2', b.id));
      expect((await store.listSites(a.id)).map((s) => s.id)).to.deep.equal([`s1-${u}`]);
      expect(await store.getUser(user.id)).to.deep.equal(user);
      expect(await store.listUsers(b.id)).to.deep.equal([]);
      expect(await store.getSite('nope')).to.equal(null);
      expect(await store.getSiteByPublicId('nope')).to.equal(null);
    });

    it('finds keys by digest, replaces them whole, lists them per organisation and reports revocations', async () => {
      const a = org('a');
      await store.putOrganisation(a);
      const k1 = key('k1', a.id, 'd1');
      const k2 = key('k2', null, 'd2');
      await store.putKey(k1);
      await store.putKey(k2);
      expect(await store.getKeyByDigest(`d1${u}`)).to.deep.equal(k1);
      expect(await store.getKeyByDigest('unknown')).to.equal(null);
      expect((await store.listKeys(a.id)).map((k) => k.id)).to.deep.equal([k1.id]);
      expect((await store.listKeys(null)).map((k) => k.id)).to.include(k2.id);
      expect(await store.revocationsSince(Date.now() - 86_400_000)).to.not.include(k1.id);
      const at = Date.now() - 1000;
      await store.putKey({ ...k1, revokedAt: at });
      expect((await store.getKey(k1.id))?.revokedAt).to.equal(at);
      expect(await store.revocationsSince(at)).to.include(k1.id);
      expect(await store.revocationsSince(at + 1)).to.not.include(k1.id);
    });

    it('returns copies: changing a returned record does not change the store', async () => {
      const a = org('c');
      await store.putOrganisation(a);
      const got = await store.getOrganisation(a.id);
      got!.name = 'changed';
      expect((await store.getOrganisation(a.id))?.name).to.equal(a.name);
    });
  });
}
