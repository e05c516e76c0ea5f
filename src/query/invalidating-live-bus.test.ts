import { expect } from 'chai';
import { MemoryLiveBus } from '../adapters/memory/memory-live-bus.js';
import { MemoryQueryCache } from '../adapters/memory/memory-query-cache.js';
import { waitFor } from '../../test/support/wait-for.js';
import { createInvalidatingLiveBus } from './invalidating-live-bus.js';
import type { BucketsChanged, LiveBus } from './live-bus.js';
import { CACHE_DAY_MS, type QueryCache } from './query-cache.js';

const DAY = Date.UTC(2026, 0, 10);

/** A cache that records invalidations and fails while `failing` is set. */
function recordingCache(log: string[]) {
  const state = { failing: false };
  const cache: QueryCache = {
    get: async (scope, key) => ({ value: undefined, ticket: { scope, key, version: '' } }),
    set: async () => {},
    async invalidate(site, buckets) {
      if (state.failing) {
        log.push(`invalidate-failed ${site}`);
        throw new Error('cache unreachable');
      }
      log.push(`invalidate ${site} ${[...new Set(buckets.map((b) => Math.floor(b / CACHE_DAY_MS)))].sort().join(',')}`);
    },
    close: async () => {},
  };
  return { cache, state };
}

function recordingBus(log: string[]): LiveBus {
  const inner = new MemoryLiveBus();
  return {
    async publish(n: BucketsChanged) {
      log.push(`publish ${n.site}`);
      await inner.publish(n);
    },
    subscribe: (site, listener) => inner.subscribe(site, listener),
    close: () => inner.close(),
  };
}

describe('invalidating live bus', () => {
  it('invalidates, then publishes, and resolves only after both', async () => {
    const log: string[] = [];
    const { cache } = recordingCache(log);
    const bus = createInvalidatingLiveBus(recordingBus(log), cache);
    await bus.publish({ site: 's', buckets: [DAY + 60_000, DAY + CACHE_DAY_MS] });
    const day = DAY / CACHE_DAY_MS;
    expect(log).to.deep.equal([`invalidate s ${day},${day + 1}`, 'publish s']);
  });

  it('a real cache is stale for the covered days by the time subscribers hear the notice', async () => {
    const cache = new MemoryQueryCache();
    const inner = new MemoryLiveBus();
    const bus = createInvalidatingLiveBus(inner, cache);
    const scope = { site: 's', fromMs: DAY, toMs: DAY + CACHE_DAY_MS };
    const { ticket } = await cache.get(scope, 'k');
    await cache.set(ticket, 'old', 60_000);
    const seen: (string | undefined)[] = [];
    await bus.subscribe('s', () => {
      void cache.get(scope, 'k').then((r) => seen.push(r.value));
    });
    await bus.publish({ site: 's', buckets: [DAY + 5 * 60_000] });
    await waitFor(() => seen.length === 1, { what: 'notice' });
    expect(seen).to.deep.equal([undefined]);
  });

  it('publishes even when invalidation fails, and owes it until a later try succeeds', async () => {
    const log: string[] = [];
    const { cache, state } = recordingCache(log);
    const bus = createInvalidatingLiveBus(recordingBus(log), cache, { attempts: 2, retryBaseMs: 5, retryMaxMs: 20 });
    state.failing = true;
    await bus.publish({ site: 's', buckets: [DAY] });
    expect(log).to.deep.equal(['invalidate-failed s', 'invalidate-failed s', 'publish s']);
    expect(bus.pendingSites()).to.equal(1);
    state.failing = false;
    await waitFor(() => bus.pendingSites() === 0, { what: 'background retry' });
    expect(log).to.include(`invalidate s ${DAY / CACHE_DAY_MS}`);
    await bus.close();
  });

  it('a later publish for the site pays what is owed', async () => {
    const log: string[] = [];
    const { cache, state } = recordingCache(log);
    const bus = createInvalidatingLiveBus(recordingBus(log), cache, { attempts: 1, retryBaseMs: 60_000, retryMaxMs: 60_000 });
    state.failing = true;
    await bus.publish({ site: 's', buckets: [DAY] });
    state.failing = false;
    log.length = 0;
    await bus.publish({ site: 's', buckets: [DAY + 3 * CACHE_DAY_MS] });
    const day = DAY / CACHE_DAY_MS;
    expect(log).to.deep.equal([`invalidate s ${day},${day + 3}`, 'publish s']);
    expect(bus.pendingSites()).to.equal(0);
    await bus.close();
  });

  it('close makes one last try at what is owed', async () => {
    const log: string[] = [];
    const { cache, state } = recordingCache(log);
    const bus = createInvalidatingLiveBus(recordingBus(log), cache, { attempts: 1, retryBaseMs: 60_000, retryMaxMs: 60_000 });
    state.failing = true;
    await bus.publish({ site: 's', buckets: [DAY] });
    state.failing = false;
    await bus.close();
    expect(bus.pendingSites()).to.equal(0);
    expect(log.at(-1)).to.equal(`invalidate s ${DAY / CACHE_DAY_MS}`);
  });
});
