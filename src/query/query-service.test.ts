import { expect } from 'chai';
import { MemoryLiveBus } from '../adapters/memory/memory-live-bus.js';
import { MemoryQueryCache } from '../adapters/memory/memory-query-cache.js';
import { MemoryRollupStore } from '../adapters/memory/memory-rollup-store.js';
import { HyperLogLog } from '../aggregate/hyperloglog.js';
import type { MinuteRollup, RollupStore } from '../aggregate/rollup-store.js';
import { createInvalidatingLiveBus } from './invalidating-live-bus.js';
import type { CacheScope, CacheTicket, QueryCache } from './query-cache.js';
import { createQueryService } from './query-service.js';

const T0 = Date.UTC(2026, 0, 10, 9, 0);
const MIN = 60_000;
const SITE = 'site-a';

function row(minute: number, pageviews: number, site = SITE): MinuteRollup {
  const hll = HyperLogLog.empty();
  for (let i = 0; i < pageviews; i++) hll.add(`v-${minute}-${i}`);
  return { site, bucketMs: T0 + minute * MIN, pageviews, events: 1, visitors: hll.toBytes(), pages: { '/': pageviews }, sources: { Direct: pageviews } };
}

/** The store, counting reads, with a hook to run something in the middle of a read. */
function instrumented(store: MemoryRollupStore) {
  const calls = { reads: 0 };
  let duringRead: (() => Promise<void>) | undefined;
  const wrapped: RollupStore = {
    upsert: (rows) => store.upsert(rows),
    async read(site, from, to) {
      calls.reads++;
      const rows = await store.read(site, from, to);
      const hook = duringRead;
      duringRead = undefined;
      await hook?.();
      return rows;
    },
    setWatermark: (p, w) => store.setWatermark(p, w),
    watermark: () => store.watermark(),
    close: () => store.close(),
  };
  return { store: wrapped, calls, onNextRead: (f: () => Promise<void>) => { duringRead = f; } };
}

describe('query service with a query cache', () => {
  const totals = { site: SITE, from: T0, to: T0 + 60 * MIN };

  it('answers the same with and without a cache', async () => {
    const store = new MemoryRollupStore();
    await store.upsert([row(0, 3), row(5, 4), row(0, 9, 'site-b')]);
    await store.setWatermark(0, T0 + 2 * MIN);
    const plain = createQueryService({ store });
    const withCache = createQueryService({ store, cache: new MemoryQueryCache() });
    for (const q of [plain, withCache]) {
      const t = await q.totals(totals);
      expect(t).to.deep.equal({ site: SITE, from: T0, to: T0 + 60 * MIN, totals: { pageviews: 7, events: 2, visitors: 7 }, watermark: T0 + 2 * MIN });
    }
    const ts = { site: SITE, from: T0, to: T0 + 10 * MIN, interval: 'minute' as const };
    expect(await withCache.timeseries(ts)).to.deep.equal(await plain.timeseries(ts));
    expect(await withCache.timeseries(ts)).to.deep.equal(await plain.timeseries(ts));
    const bd = { site: SITE, from: T0, to: T0 + 10 * MIN, dimension: 'source' as const };
    expect(await withCache.breakdown(bd)).to.deep.equal(await plain.breakdown(bd));
    expect(await withCache.breakdown(bd)).to.deep.equal(await plain.breakdown(bd));
  });

  it('serves hits without reading rows, with the current watermark, until the writer invalidates', async () => {
    const base = new MemoryRollupStore();
    const { store, calls } = instrumented(base);
    const cache = new MemoryQueryCache();
    const bus = new MemoryLiveBus();
    const writer = createInvalidatingLiveBus(bus, cache);
    const query = createQueryService({ store, cache });
    await base.upsert([row(0, 3)]);
    expect((await query.totals(totals)).totals.pageviews).to.equal(3);
    await base.upsert([row(1, 4)]);
    await base.setWatermark(0, T0 + MIN);
    const hit = await query.totals(totals);
    expect(hit.totals.pageviews).to.equal(3);
    expect(hit.watermark).to.equal(T0 + MIN);
    expect(calls.reads).to.equal(1);
    await writer.publish({ site: SITE, buckets: [T0 + MIN] });
    expect((await query.totals(totals)).totals.pageviews).to.equal(7);
    expect(calls.reads).to.equal(2);
    // Another site's change, or a change on a day the range does not cover, keeps the entry.
    await writer.publish({ site: 'site-b', buckets: [T0] });
    await writer.publish({ site: SITE, buckets: [T0 + 2 * 86_400_000] });
    await query.totals(totals);
    expect(calls.reads).to.equal(2);
  });

  it('never caches rows read before a concurrent write (the ticket is taken before the read)', async () => {
    const base = new MemoryRollupStore();
    const { store, onNextRead } = instrumented(base);
    const cache = new MemoryQueryCache();
    const writer = createInvalidatingLiveBus(new MemoryLiveBus(), cache);
    const query = createQueryService({ store, cache });
    await base.upsert([row(0, 3)]);
    // The write and its notice land while the query holds rows read before them.
    onNextRead(async () => {
      await base.upsert([row(1, 4)]);
      await writer.publish({ site: SITE, buckets: [T0 + MIN] });
    });
    expect((await query.totals(totals)).totals.pageviews).to.equal(3);
    expect((await query.totals(totals)).totals.pageviews).to.equal(7);
  });

  it('a failing cache is a miss: answers come from the store', async () => {
    const store = new MemoryRollupStore();
    await store.upsert([row(0, 3)]);
    const failing: QueryCache = {
      get: async () => { throw new Error('cache down'); },
      set: async () => { throw new Error('cache down'); },
      invalidate: async () => { throw new Error('cache down'); },
      close: async () => {},
    };
    expect((await createQueryService({ store, cache: failing }).totals(totals)).totals.pageviews).to.equal(3);
    let sets = 0;
    const setFails: QueryCache = {
      get: async (scope: CacheScope, key: string) => ({ value: undefined, ticket: { scope, key, version: 'v' } }),
      set: async (_t: CacheTicket) => { sets++; throw new Error('cache full'); },
      invalidate: async () => {},
      close: async () => {},
    };
    expect((await createQueryService({ store, cache: setFails }).totals(totals)).totals.pageviews).to.equal(3);
    expect(sets).to.equal(1);
  });

  it('keys responses by every parameter; live-stream reads are never cached', async () => {
    const base = new MemoryRollupStore();
    const { store, calls } = instrumented(base);
    const query = createQueryService({ store, cache: new MemoryQueryCache(), cacheTtlMs: 60_000 });
    await base.upsert([row(0, 3), row(70, 2)]);
    const range = { site: SITE, from: T0, to: T0 + 120 * MIN };
    await query.timeseries({ ...range, interval: 'hour' });
    await query.timeseries({ ...range, interval: 'minute' });
    await query.breakdown({ ...range, dimension: 'page' });
    await query.breakdown({ ...range, dimension: 'source' });
    await query.breakdown({ ...range, dimension: 'page', limit: 1 });
    await query.totals(range);
    await query.totals({ ...range, to: range.to + MIN });
    expect(calls.reads).to.equal(7);
    await query.timeseries({ ...range, interval: 'hour' });
    await query.breakdown({ ...range, dimension: 'page', limit: 1 });
    expect(calls.reads).to.equal(7);
    await query.minutes(SITE, T0, T0 + 10 * MIN);
    await query.minutes(SITE, T0, T0 + 10 * MIN);
    expect(calls.reads).to.equal(9);
  });
});
