import { expect } from 'chai';
import { CACHE_DAY_MS } from '../../query/query-cache.js';
import { MemoryQueryCache } from './memory-query-cache.js';

const DAY0 = Date.UTC(2026, 0, 10);

describe('memory query cache: bounded memory', () => {
  it('holds at most maxValueChars of values, dropping the least recently used', async () => {
    const cache = new MemoryQueryCache({ maxValueChars: 30 });
    const scope = { site: 's', fromMs: DAY0, toMs: DAY0 + CACHE_DAY_MS };
    for (const key of ['a', 'b', 'c']) {
      const { ticket } = await cache.get(scope, key);
      await cache.set(ticket, key.repeat(10), 60_000);
    }
    expect((await cache.get(scope, 'a')).value).to.equal('aaaaaaaaaa'); // a hit makes a recent
    const { ticket } = await cache.get(scope, 'd');
    await cache.set(ticket, 'd'.repeat(10), 60_000);
    expect((await cache.get(scope, 'b')).value).to.equal(undefined);
    for (const key of ['a', 'c', 'd']) expect((await cache.get(scope, key)).value).to.equal(key.repeat(10));
  });

  it('dropping a site\'s generations (too many sites or days) makes its entries stale, never current', async () => {
    const cache = new MemoryQueryCache({ maxSites: 2, maxDaysPerSite: 3 });
    const scope = { site: 's', fromMs: DAY0, toMs: DAY0 + CACHE_DAY_MS };
    const fill = async () => {
      const { ticket } = await cache.get(scope, 'k');
      await cache.set(ticket, 'v', 60_000);
      expect((await cache.get(scope, 'k')).value).to.equal('v');
    };
    await fill();
    await cache.get({ ...scope, site: 'x' }, 'k');
    await cache.get({ ...scope, site: 'y' }, 'k'); // evicts s's generations
    expect((await cache.get(scope, 'k')).value).to.equal(undefined);
    await fill();
    // Days elsewhere, past the per-site cap: a new epoch.
    await cache.invalidate('s', [DAY0 + 10 * CACHE_DAY_MS, DAY0 + 11 * CACHE_DAY_MS, DAY0 + 12 * CACHE_DAY_MS, DAY0 + 13 * CACHE_DAY_MS]);
    expect((await cache.get(scope, 'k')).value).to.equal(undefined);
  });
});
