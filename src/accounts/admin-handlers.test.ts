import { expect } from 'chai';
import { ADMIN_ROUTES } from '../../protocol/admin-routes.js';
import { MemoryAccountStore } from '../adapters/memory/memory-account-store.js';
import { MemoryRawArchive } from '../adapters/memory/memory-raw-archive.js';
import type { Caller } from '../gateway/route-handlers.js';
import { createVisitorErasure } from '../privacy/visitor-erasure.js';
import { createAdminHandlers } from './admin-handlers.js';
import { createAdminService } from './admin-service.js';
import { Accounts, type Principal } from './accounts.js';

describe('admin route handlers', () => {
  async function setup() {
    const store = new MemoryAccountStore();
    const accounts = new Accounts(store);
    await accounts.createOrganisation('A', 'org-a');
    await accounts.createOrganisation('B', 'org-b');
    await accounts.createSite({ orgId: 'org-a', id: 'a1' });
    await accounts.createSite({ orgId: 'org-b', id: 'b1' });
    const revoked: string[] = [];
    const handlers = createAdminHandlers(createAdminService(accounts, store), {
      erase: createVisitorErasure(new MemoryRawArchive(), 'a-secret-for-erasure-tests'),
      onRevoked: (id) => revoked.push(id),
    });
    const caller = (principal: Principal): Caller => ({ principal, allows: (action, site) => accounts.allows(principal, action, site) });
    const call = (route: string, body: unknown, principal: Principal) => handlers.requestResponse![route]!(body, caller(principal));
    return { accounts, handlers, call, revoked };
  }
  const deployment: Principal = { keyId: 'd', orgId: null, scope: { kind: 'admin', orgId: null }, expiresAt: null };
  const adminA: Principal = { keyId: 'a', orgId: 'org-a', scope: { kind: 'admin', orgId: 'org-a' }, expiresAt: null };
  const readA: Principal = { keyId: 'r', orgId: 'org-a', scope: { kind: 'read', sites: ['a1'] }, expiresAt: null };
  const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code?: string }) => e.code);

  it('has a request/response handler for every admin route and for nothing else', async () => {
    const { handlers } = await setup();
    expect(Object.keys(handlers.requestResponse ?? {}).sort()).to.deep.equal(Object.keys(ADMIN_ROUTES).sort());
    expect(Object.keys(handlers.requestStream ?? {})).to.deep.equal([]);
  });

  it('tells onRevoked of a key revoked or rotated away', async () => {
    const { accounts, call, revoked } = await setup();
    const k1 = await accounts.createKey({ scope: { kind: 'read', sites: ['a1'] }, orgId: 'org-a' });
    const k2 = await accounts.createKey({ scope: { kind: 'read', sites: ['a1'] }, orgId: 'org-a' });
    await call('admin.key.revoke', { id: k1.key.id }, adminA);
    await call('admin.key.rotate', { id: k2.key.id }, adminA);
    expect(revoked).to.deep.equal([k1.key.id, k2.key.id]);
    expect(await code(call('admin.key.revoke', { id: k1.key.id }, { ...adminA, scope: { kind: 'admin', orgId: 'org-b' } }))).to.equal('ADMIN_NOT_FOUND');
    expect(revoked).to.have.length(2);
  });

  it('lets only an admin of the site\'s organisation (or the deployment) erase a visitor', async () => {
    const { call } = await setup();
    const body = (site: string) => ({ site, visitor: 'v1', from: 0, to: 86_400_000 });
    expect(await call('admin.visitor.erase', body('a1'), adminA)).to.deep.equal({ erased: 0, days: 2 });
    expect(await code(call('admin.visitor.erase', body('b1'), adminA))).to.equal('SITE_FORBIDDEN');
    expect(await code(call('admin.visitor.erase', body('a1'), readA))).to.equal('FORBIDDEN');
    expect(await call('admin.visitor.erase', body('b1'), deployment)).to.have.property('erased', 0);
  });
});
