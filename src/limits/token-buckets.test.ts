import { expect } from 'chai';
import { TokenBuckets } from './token-buckets.js';

describe('TokenBuckets', () => {
  it('admits a burst, then the refill rate, per key', () => {
    let now = 0;
    const tb = new TokenBuckets({ ratePerSecond: 10, burst: 5, now: () => now });
    for (let i = 0; i < 5; i++) expect(tb.take('a').ok).to.equal(true);
    const refused = tb.take('a');
    expect(refused).to.deep.equal({ ok: false, retryAfterMs: 100 });
    expect(tb.take('b').ok).to.equal(true);
    now += 100;
    expect(tb.take('a').ok).to.equal(true);
    expect(tb.take('a').ok).to.equal(false);
    now += 10_000;
    for (let i = 0; i < 5; i++) expect(tb.take('a').ok).to.equal(true);
    expect(tb.take('a').ok).to.equal(false);
  });

  it('takes n at once, and lets a request larger than the burst through only from a full bucket', () => {
    let now = 0;
    const tb = new TokenBuckets({ ratePerSecond: 100, burst: 50, now: () => now });
    expect(tb.take('k', 500).ok).to.equal(true);
    const r = tb.take('k', 1);
    expect(r.ok).to.equal(false);
    now += 5_000;
    expect(tb.take('k', 1).ok).to.equal(true);
  });

  it('keeps at most maxKeys buckets', () => {
    const tb = new TokenBuckets({ ratePerSecond: 1, burst: 1, maxKeys: 3, now: () => 0 });
    for (const k of ['a', 'b', 'c', 'd', 'e']) tb.take(k);
    expect(tb.size).to.equal(3);
  });
});
