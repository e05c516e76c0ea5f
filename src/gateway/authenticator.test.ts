import { expect } from 'chai';
import { Accounts } from '../accounts/accounts.js';
import { MemoryAccountStore } from '../adapters/memory/memory-account-store.js';
import { ApiKeys } from './api-keys.js';
import { createAuthenticator } from './authenticator.js';

describe('authenticator', () => {
  async function setup() {
    const store = new MemoryAccountStore();
    const accounts = new Accounts(store);
    await accounts.createOrganisation('A', 'org-a');
    const site = await accounts.createSite({ orgId: 'org-a', id: 'shop', allowedOrigins: ['https://shop.example'] });
    const auth = createAuthenticator(new ApiKeys(['static-admin-key', 'static-site-key:shop,blog']), accounts);
    return { accounts, site, auth };
  }

  it('maps a static key without sites to a deployment admin, and one with sites to ingest and read of those sites', async () => {
    const { auth } = await setup();
    const admin = await auth.authenticate('static-admin-key', {});
    expect(admin).to.have.nested.property('scope.kind', 'admin');
    const site = await auth.authenticate('static-site-key', {});
    if ('refused' in site) throw new Error('refused');
    expect(await auth.allows(site, 'ingest', 'blog')).to.equal(true);
    expect(await auth.allows(site, 'read', 'shop')).to.equal(true);
    expect(await auth.allows(site, 'read', 'other')).to.equal(false);
    expect(await auth.allows(site, 'admin', 'shop')).to.equal(false);
    expect(site.keyId).to.match(/^static:[0-9a-f]{12}$/);
    expect(site.keyId).to.not.include('static-site-key');
  });

  it('accepts a public site id only from an allowed origin, for ingest only', async () => {
    const { auth, site } = await setup();
    expect(await auth.authenticate(site.publicId, {})).to.deep.equal({ refused: 'AUTH_INVALID' });
    expect(await auth.authenticate(site.publicId, { origin: 'https://evil.example' })).to.deep.equal({ refused: 'AUTH_INVALID' });
    const p = await auth.authenticate(site.publicId, { origin: 'https://shop.example' });
    if ('refused' in p) throw new Error('refused');
    expect(await auth.allows(p, 'ingest', 'shop')).to.equal(true);
    expect(await auth.allows(p, 'read', 'shop')).to.equal(false);
  });

  it('authenticates stored keys and reports revoked ones', async () => {
    const { auth, accounts } = await setup();
    const { secret, key } = await accounts.createKey({ scope: { kind: 'read', sites: ['shop'] }, orgId: 'org-a' });
    expect(await auth.authenticate(secret, {})).to.have.property('keyId', key.id);
    await accounts.revokeKey(key.id);
    expect(await auth.authenticate(secret, {})).to.deep.equal({ refused: 'AUTH_REVOKED' });
    expect(await auth.authenticate('slk_unknown', {})).to.deep.equal({ refused: 'AUTH_INVALID' });
  });
});

describe('authenticator without an account store', () => {
  it('knows only the static keys, and refuses an organisation admin it cannot resolve', async () => {
    const auth = createAuthenticator(new ApiKeys(['static-admin-key', 'static-site-key:shop']));
    expect(await auth.authenticate('static-admin-key', {})).to.have.nested.property('scope.kind', 'admin');
    expect(await auth.authenticate('slk_unknown', {})).to.deep.equal({ refused: 'AUTH_INVALID' });
    expect(await auth.authenticate('pub_x', { origin: 'https://shop.example' })).to.deep.equal({ refused: 'AUTH_INVALID' });
    const orgAdmin = { keyId: 'k', orgId: 'o', scope: { kind: 'admin', orgId: 'o' }, expiresAt: null } as const;
    expect(await auth.allows(orgAdmin, 'read', 'shop')).to.equal(false);
  });
});
