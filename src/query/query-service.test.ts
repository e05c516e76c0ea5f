import { expect } from 'chai';
import type { QueryRequest } from '../../protocol/query-schema.js';
import { MemoryLiveBus } from '../adapters/memory/memory-live-bus.js';
import { MemoryQueryCache } from '../adapters/memory/memory-query-cache.js';
import { MemoryRawArchive } from '../adapters/memory/memory-raw-archive.js';
import { MemoryRollupStore } from '../adapters/memory/memory-rollup-store.js';
import { HyperLogLog } from '../aggregate/hyperloglog.js';
import { DIMENSION_SKETCH_PRECISION, type Rollup } from '../aggregate/rollup.js';
import type { RollupStore } from '../aggregate/rollup-store.js';
import { createInvalidatingLiveBus } from './invalidating-live-bus.js';
import type { CacheScope, CacheTicket, QueryCache } from './query-cache.js';
import { createQueryService } from './query-service.js';
import { rollTiers } from './query-test-kit.js';
import { configSiteSettings } from './site-settings.js';

const T0 = Date.UTC(2026, 0, 10, 9, 0);
/** The services' clock: their tiers' retention counts from it, so the wall clock would expire these rows one day. */
const atT0 = () => T0 + 30 * 60_000;
const MIN = 60_000;
const SITE = 'site-a';

/** A minute row: `pageviews` pageviews by as many visitors, one event, all on '/' from Direct. */
function row(minute: number, pageviews: number, site = SITE): Rollup {
  const hll = HyperLogLog.empty();
  const cellHll = HyperLogLog.empty(DIMENSION_SKETCH_PRECISION);
  for (let i = 0; i < pageviews; i++) {
    hll.add(`v-${minute}-${i}`);
    cellHll.add(`v-${minute}-${i}`);
  }
  const cell = { pageviews, events: 1, visits: 1, bounces: 0, durationMs: 0, visitors: cellHll.toBytes() };
  return {
    site, tier: 'minute', bucketMs: T0 + minute * MIN, totals: { pageviews, events: 1, visits: 1, bounces: 0, durationMs: 0 },
    visitors: hll.toBytes(), dims: { page: { '/': { ...cell, events: 0 } }, source: { 'Direct / None': cell } }, revenue: {}, bots: 0,
  };
}

/**
 * Writes minute rows and (re)writes the coarser rows they roll up to, as the tier roller does:
 * `put` keeps every minute row written so far, so rolled rows stay whole.
 */
function rowWriter(store: RollupStore) {
  const all: Rollup[] = [];
  return async (rows: Rollup[]) => {
    all.push(...rows);
    const site = new Set(rows.map((r) => r.site));
    await store.upsert([...rows, ...rollTiers(all.filter((r) => site.has(r.site)))]);
  };
}

/** The store, counting reads, with a hook to run something in the middle of a read. */
function instrumented(store: MemoryRollupStore) {
  const calls = { reads: 0 };
  let duringRead: (() => Promise<void>) | undefined;
  const wrapped: RollupStore = {
    upsert: (rows) => store.upsert(rows),
    async read(site, tier, from, to) {
      calls.reads++;
      const rows = await store.read(site, tier, from, to);
      const hook = duringRead;
      duringRead = undefined;
      await hook?.();
      return rows;
    },
    setWatermark: (p, w) => store.setWatermark(p, w),
    watermark: () => store.watermark(),
    partitionWatermark: (p) => store.partitionWatermark(p),
    saveCheckpoint: (p, id, d) => store.saveCheckpoint(p, id, d),
    loadCheckpoint: (p, id) => store.loadCheckpoint(p, id),
    close: () => store.close(),
  };
  return { store: wrapped, calls, onNextRead: (f: () => Promise<void>) => { duringRead = f; } };
}

describe('query service with a query cache', () => {
  const totals = { site: SITE, from: T0, to: T0 + 60 * MIN };

  it('answers the same with and without a cache', async () => {
    const store = new MemoryRollupStore();
    const put = rowWriter(store);
    await put([row(0, 3), row(5, 4)]);
    await put([row(0, 9, 'site-b')]);
    await store.setWatermark(0, T0 + 2 * MIN);
    const plain = createQueryService({ now: atT0, store });
    const withCache = createQueryService({ now: atT0, store, cache: new MemoryQueryCache() });
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
    const query = createQueryService({ now: atT0, store, cache });
    const put = rowWriter(base);
    await put([row(0, 3)]);
    expect((await query.totals(totals)).totals.pageviews).to.equal(3);
    await put([row(1, 4)]);
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
    const query = createQueryService({ now: atT0, store, cache });
    const put = rowWriter(base);
    await put([row(0, 3)]);
    // The write and its notice land while the query holds rows read before them.
    onNextRead(async () => {
      await put([row(1, 4)]);
      await writer.publish({ site: SITE, buckets: [T0 + MIN] });
    });
    expect((await query.totals(totals)).totals.pageviews).to.equal(3);
    expect((await query.totals(totals)).totals.pageviews).to.equal(7);
  });

  it('a failing cache is a miss: answers come from the store', async () => {
    const store = new MemoryRollupStore();
    await rowWriter(store)([row(0, 3)]);
    const failing: QueryCache = {
      get: async () => { throw new Error('cache down'); },
      set: async () => { throw new Error('cache down'); },
      invalidate: async () => { throw new Error('cache down'); },
      close: async () => {},
    };
    expect((await createQueryService({ now: atT0, store, cache: failing }).totals(totals)).totals.pageviews).to.equal(3);
    let sets = 0;
    const setFails: QueryCache = {
      get: async (scope: CacheScope, key: string) => ({ value: undefined, ticket: { scope, key, version: 'v' } }),
      set: async (_t: CacheTicket) => { sets++; throw new Error('cache full'); },
      invalidate: async () => {},
      close: async () => {},
    };
    expect((await createQueryService({ now: atT0, store, cache: setFails }).totals(totals)).totals.pageviews).to.equal(3);
    expect(sets).to.equal(1);
  });

  it('keys responses by every parameter; live-stream reads are never cached', async () => {
    const base = new MemoryRollupStore();
    const { store, calls } = instrumented(base);
    const query = createQueryService({ now: atT0, store, cache: new MemoryQueryCache(), cacheTtlMs: 60_000 });
    await rowWriter(base)([row(0, 3), row(70, 2)]);
    const range = { site: SITE, from: T0, to: T0 + 120 * MIN };
    /** Whether answering read the store (a miss) or not (a hit). */
    const missed = async (f: () => Promise<unknown>) => {
      const before = calls.reads;
      await f();
      return calls.reads > before;
    };
    const all = [
      () => query.timeseries({ ...range, interval: 'hour' }),
      () => query.timeseries({ ...range, interval: 'minute' }),
      () => query.breakdown({ ...range, dimension: 'page' }),
      () => query.breakdown({ ...range, dimension: 'source' }),
      () => query.breakdown({ ...range, dimension: 'page', limit: 1 }),
      () => query.totals(range),
      () => query.totals({ ...range, to: range.to + MIN }),
    ];
    for (const f of all) expect(await missed(f)).to.equal(true);
    for (const f of all) expect(await missed(f)).to.equal(false);
    expect(await missed(() => query.minutes(SITE, T0, T0 + 10 * MIN))).to.equal(true);
    expect(await missed(() => query.minutes(SITE, T0, T0 + 10 * MIN))).to.equal(true);
  });

  it('keys query.run responses by every request field, resolved', async () => {
    const base = new MemoryRollupStore();
    const { store, calls } = instrumented(base);
    let now = T0 + 200 * MIN;
    const settings = { [SITE]: { timeZone: 'Asia/Kolkata', goals: [{ name: 'Home', page: '/' }] } };
    const query = createQueryService({ store, cache: new MemoryQueryCache(), settings: configSiteSettings(settings), now: () => now });
    await rowWriter(base)([row(0, 3), row(70, 2)]);
    const missed = async (req: QueryRequest) => {
      const before = calls.reads;
      await query.run(req);
      return calls.reads > before;
    };
    const base0: QueryRequest = { site: SITE, metrics: ['visitors'], date_range: { from: T0, to: T0 + 120 * MIN } };
    const variants: QueryRequest[] = [
      base0,
      { ...base0, metrics: ['visitors', 'pageviews'] },
      { ...base0, metrics: ['pageviews', 'visitors'] },
      { ...base0, dimensions: ['source'] },
      { ...base0, dimensions: ['source'], limit: 1 },
      { ...base0, dimensions: ['source'], limit: 1, page: 2 },
      { ...base0, dimensions: ['source'], order_by: { metric: 'visitors', direction: 'asc' } },
      { ...base0, interval: 'hour' },
      { ...base0, interval: 'hour', time_zone: 'Asia/Kathmandu' },
      { ...base0, time_zone: 'UTC' },
      { ...base0, compare: 'previous_period' },
      { ...base0, date_range: { from: T0, to: T0 + 121 * MIN } },
      { ...base0, metrics: ['conversions'], filters: [{ dimension: 'goal', op: 'is', value: 'Home' }] },
      { ...base0, date_range: 'today' },
    ];
    for (const v of variants) expect(await missed(v), JSON.stringify(v)).to.equal(true);
    for (const v of variants) expect(await missed(v), JSON.stringify(v)).to.equal(false);
    // A relative range is keyed by what it resolves to: the next local day is another entry.
    now += 86_400_000;
    expect(await missed({ ...base0, date_range: 'today' })).to.equal(true);
    // A changed goal definition is another question.
    settings[SITE].goals = [{ name: 'Home', page: '/home' }];
    expect(await missed({ ...base0, metrics: ['conversions'], filters: [{ dimension: 'goal', op: 'is', value: 'Home' }] })).to.equal(true);
  });

  it('does not cache filtered (raw-archive) answers: archive writes do not invalidate', async () => {
    const store = new MemoryRollupStore();
    const archive = new MemoryRawArchive({ retentionMs: null });
    let scans = 0;
    const counting = Object.assign(Object.create(archive) as MemoryRawArchive, {
      read: (site: string, from: number, to: number) => { scans++; return archive.read(site, from, to); },
    });
    const query = createQueryService({ now: atT0, store, archive: counting, cache: new MemoryQueryCache() });
    const req: QueryRequest = { site: SITE, metrics: ['visitors'], date_range: { from: T0, to: T0 + 60 * MIN }, filters: [{ dimension: 'country', op: 'is', value: 'DE' }] };
    const first = await query.run(req);
    await query.run(req);
    expect(scans).to.equal(2);
    expect(first.meta.raw_archive_scanned).to.equal(true);
  });
});
