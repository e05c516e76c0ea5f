import { expect } from 'chai';
import { waitFor } from '../../test/support/wait-for.js';
import type { ErrorCode } from '../../protocol/errors.js';
import type { Principal } from './accounts.js';
import { Accounts } from './accounts.js';
import { KeyConnections, type ClosableConnection } from './key-connections.js';

class FakeConnection implements ClosableConnection {
  closedWith: ErrorCode | undefined;
  private callbacks: Array<() => void> = [];
  fail(code: ErrorCode): void {
    if (this.closedWith) return;
    this.closedWith = code;
    this.close();
  }
  close(): void {
    for (const c of this.callbacks.splice(0)) c();
  }
  onClose(callback: () => void): void {
    this.callbacks.push(callback);
  }
}

const key = (keyId: string, extra: Partial<Principal> = {}): Principal => ({ keyId, orgId: 'o', scope: { kind: 'read', sites: ['s'] }, expiresAt: null, ...extra });

describe('key connections', () => {
  it('refuses a connection past the per-key limit, and admits again once one closes', () => {
    let refused = 0;
    const kc = new KeyConnections({ maxPerKey: 2, onRefused: () => refused++ });
    const [a, b, c] = [new FakeConnection(), new FakeConnection(), new FakeConnection()];
    expect(kc.admit(a, key('k'))).to.equal(true);
    expect(kc.admit(b, key('k'))).to.equal(true);
    expect(kc.admit(c, key('k'))).to.equal(false);
    expect(kc.admit(c, key('other'))).to.equal(true);
    expect(refused).to.equal(1);
    a.close();
    expect(kc.count('k')).to.equal(1);
    expect(kc.admit(new FakeConnection(), key('k'))).to.equal(true);
  });

  it('does not limit keys the options exempt, nor anything with limit 0', () => {
    const kc = new KeyConnections({ maxPerKey: 1, unlimited: (p) => Accounts.isDeploymentAdmin(p) });
    const admin = key('adm', { orgId: null, scope: { kind: 'admin', orgId: null } });
    for (let i = 0; i < 5; i++) expect(kc.admit(new FakeConnection(), admin)).to.equal(true);
    const open = new KeyConnections({ maxPerKey: 0 });
    for (let i = 0; i < 5; i++) expect(open.admit(new FakeConnection(), key('k'))).to.equal(true);
  });

  it('closes every connection of a revoked key with AUTH_REVOKED, and no other', () => {
    const closed: string[] = [];
    const kc = new KeyConnections({ maxPerKey: 0, onClosed: (code) => closed.push(code) });
    const [a, b, c] = [new FakeConnection(), new FakeConnection(), new FakeConnection()];
    kc.admit(a, key('k1'));
    kc.admit(b, key('k1'));
    kc.admit(c, key('k2'));
    expect(kc.revoke(['k1', 'unknown'])).to.equal(2);
    expect([a.closedWith, b.closedWith, c.closedWith]).to.deep.equal(['AUTH_REVOKED', 'AUTH_REVOKED', undefined]);
    expect(kc.count('k1')).to.equal(0);
    expect(kc.revoke(['k1'])).to.equal(0);
    expect(closed).to.deep.equal(['AUTH_REVOKED', 'AUTH_REVOKED']);
  });

  it('closes a connection with AUTH_EXPIRED when its key expires, at once when it already has', async () => {
    const kc = new KeyConnections({ maxPerKey: 0 });
    const soon = new FakeConnection();
    kc.admit(soon, key('k', { expiresAt: Date.now() + 30 }));
    expect(soon.closedWith).to.equal(undefined);
    const past = new FakeConnection();
    kc.admit(past, key('k2', { expiresAt: Date.now() - 1 }));
    expect(past.closedWith).to.equal('AUTH_EXPIRED');
    await waitFor(() => soon.closedWith === 'AUTH_EXPIRED', { what: 'expiry' });
    expect(kc.count('k')).to.equal(0);
  });
});
