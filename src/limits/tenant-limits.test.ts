import { expect } from 'chai';
import type { Principal } from '../accounts/accounts.js';
import { SluiceError } from '../errors.js';
import { createTenantLimits, type LimitName } from './tenant-limits.js';

const key = (keyId: string): Principal => ({ keyId, orgId: 'o', scope: { kind: 'site', sites: ['s1', 's2'] }, expiresAt: null });
const admin: Principal = { keyId: 'adm', orgId: null, scope: { kind: 'admin', orgId: null }, expiresAt: null };

function rejection(fn: () => void): SluiceError | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (e instanceof SluiceError) return e;
    throw e;
  }
}

describe('tenant limits', () => {
  function setup(config: Partial<Parameters<typeof createTenantLimits>[0]> = {}) {
    let t = 0;
    const rejected: LimitName[] = [];
    const limits = createTenantLimits({
      ingestEventsPerSecond: 10, ingestBurstEvents: 20, queryRequestsPerSecond: 2, queryBurstRequests: 2, ...config,
    }, { onRejected: (l) => rejected.push(l), now: () => t });
    return { limits, rejected, advance: (ms: number) => { t += ms; } };
  }

  it('limits events per key: burst, then RATE_LIMITED (retryable) saying when to retry, then refills', () => {
    const { limits, rejected, advance } = setup();
    expect(rejection(() => limits.ingest(key('k1'), 20))).to.equal(undefined);
    const e = rejection(() => limits.ingest(key('k1'), 5));
    expect(e?.code).to.equal('RATE_LIMITED');
    expect(e?.retryable).to.equal(true);
    expect(e?.message).to.match(/retry in 500 ms/);
    expect(rejection(() => limits.ingest(key('k2'), 5)), 'another key has its own bucket').to.equal(undefined);
    advance(500);
    expect(rejection(() => limits.ingest(key('k1'), 5))).to.equal(undefined);
    expect(rejected).to.deep.equal(['ingest_rate']);
  });

  it('limits queries per site, whichever key asks', () => {
    const { limits, rejected } = setup();
    limits.query(key('k1'), 's1');
    limits.query(key('k2'), 's1');
    expect(rejection(() => limits.query(key('k3'), 's1'))?.code).to.equal('RATE_LIMITED');
    expect(rejection(() => limits.query(key('k1'), 's2'))).to.equal(undefined);
    expect(rejected).to.deep.equal(['query_rate']);
  });

  it('does not limit deployment admins, nor anything with a rate of 0', () => {
    const { limits } = setup();
    for (let i = 0; i < 100; i++) limits.ingest(admin, 100);
    for (let i = 0; i < 100; i++) limits.query(admin, 's1');
    const off = setup({ ingestEventsPerSecond: 0, queryRequestsPerSecond: 0 }).limits;
    for (let i = 0; i < 100; i++) off.ingest(key('k'), 100);
    for (let i = 0; i < 100; i++) off.query(key('k'), 's1');
  });
});
