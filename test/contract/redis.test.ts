/**
 * The seam contracts against the Redis implementations, on the server at 127.0.0.1:6379 (or
 * SLUICE_TEST_REDIS_URL), plus what only the real thing has: ref-counted channels, malformed
 * messages, reconnects, and the query cache invalidated end to end across "processes"
 * (separate connections).
 *
 * Every key and channel is under a prefix unique to this run, deleted afterwards. Without a
 * server this suite fails (never skips), naming the address.
 */
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { MemoryRollupStore } from '../../src/adapters/memory/memory-rollup-store.js';
import { checkRedisReachable, closeRedis, openRedis, type Redis } from '../../src/adapters/redis/redis-connection.js';
import { RedisCurrentVisitors } from '../../src/adapters/redis/redis-current-visitors.js';
import { RedisLiveBus } from '../../src/adapters/redis/redis-live-bus.js';
import { RedisQueryCache } from '../../src/adapters/redis/redis-query-cache.js';
import { HyperLogLog } from '../../src/aggregate/hyperloglog.js';
import { emptyRollup } from '../../src/aggregate/rollup-merge.js';
import { DIMENSION_SKETCH_PRECISION } from '../../src/aggregate/rollup.js';
import { rollTiers } from '../../src/aggregate/tier-roller.js';
import type { Rollup, Tier } from '../../src/aggregate/rollup-store.js';
import { createInvalidatingLiveBus } from '../../src/query/invalidating-live-bus.js';
import type { BucketsChanged } from '../../src/query/live-bus.js';
import { createQueryService } from '../../src/query/query-service.js';
import { waitFor } from '../support/wait-for.js';
import { currentVisitorsContract } from './current-visitors.contract.js';
import { liveBusContract } from './live-bus.contract.js';
import { queryCacheContract } from './query-cache.contract.js';

/** The local stack's Redis, or the one SLUICE_TEST_REDIS_URL names (as the stack fixture honours it). */
const REDIS_URL = new URL(process.env.SLUICE_TEST_REDIS_URL?.trim() || 'redis://127.0.0.1:6379');
const REDIS = {
  host: REDIS_URL.hostname,
  port: Number(REDIS_URL.port || 6379),
  ...(REDIS_URL.username ? { username: decodeURIComponent(REDIS_URL.username) } : {}),
  ...(REDIS_URL.password ? { password: decodeURIComponent(REDIS_URL.password) } : {}),
  ...(REDIS_URL.pathname.length > 1 ? { db: Number(REDIS_URL.pathname.slice(1)) } : {}),
};
const ADDRESS = `${REDIS.host}:${REDIS.port}`;
const PREFIX = `sluice-test-${randomUUID().slice(0, 8)}:`;
const MIN = 60_000;

describe(`Redis adapters (Redis at ${ADDRESS})`, function () {
  this.timeout(30_000);
  let admin: Redis | undefined;

  before(async () => {
    // Throws "Redis is not reachable at 127.0.0.1:6379: ..." and fails every test below.
    await checkRedisReachable(REDIS);
    admin = openRedis(REDIS, {});
  });

  after(async () => {
    if (!admin) return;
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `${PREFIX}*`, 'COUNT', 1000);
      if (keys.length > 0) await admin.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    await closeRedis(admin);
  });

  liveBusContract('redis', async () => {
    const a = new RedisLiveBus({ connection: REDIS, keyPrefix: PREFIX });
    const b = new RedisLiveBus({ connection: REDIS, keyPrefix: PREFIX });
    return { a, b, close: async () => void (await Promise.all([a.close(), b.close()])) };
  });

  queryCacheContract('redis', async () => {
    const a = new RedisQueryCache({ connection: REDIS, keyPrefix: PREFIX });
    const b = new RedisQueryCache({ connection: REDIS_URL.href, keyPrefix: PREFIX });
    return { a, b, close: async () => void (await Promise.all([a.close(), b.close()])) };
  });

  currentVisitorsContract('redis', async (now) => {
    const a = new RedisCurrentVisitors({ connection: REDIS, keyPrefix: PREFIX, now });
    const b = new RedisCurrentVisitors({ connection: REDIS, keyPrefix: PREFIX, now });
    return { a, b, close: async () => void (await Promise.all([a.close(), b.close()])) };
  });

  describe('RedisLiveBus on Redis', () => {
    const closers: (() => Promise<void>)[] = [];
    let site: string;
    beforeEach(() => {
      site = `s-${randomUUID().slice(0, 8)}`;
    });
    afterEach(async () => {
      await Promise.all(closers.splice(0).map((c) => c()));
    });

    function bus(options: Partial<ConstructorParameters<typeof RedisLiveBus>[0]> = {}): RedisLiveBus {
      const b = new RedisLiveBus({ connection: REDIS, keyPrefix: PREFIX, ...options });
      closers.push(() => b.close());
      return b;
    }

    async function subscribers(channel: string): Promise<number> {
      const reply = await admin!.pubsub('NUMSUB', channel) as [string, number];
      return Number(reply[1]);
    }

    it('uses one SUBSCRIBE per channel, active when subscribe resolves, gone with the last listener', async () => {
      const b = bus();
      const channel = b.channelOf(site);
      expect(channel).to.equal(`${PREFIX}live:${site}`);
      const off1 = await b.subscribe(site, () => {});
      expect(await subscribers(channel)).to.equal(1);
      const off2 = await b.subscribe(site, () => {});
      const other = bus();
      const off3 = await other.subscribe(site, () => {});
      expect(await subscribers(channel)).to.equal(2); // one per process, not per listener
      off1();
      off1(); // idempotent
      expect(await subscribers(channel)).to.equal(2);
      off2();
      await waitFor(async () => (await subscribers(channel)) === 1, { what: 'UNSUBSCRIBE after the last listener' });
      off3();
      await waitFor(async () => (await subscribers(channel)) === 0, { what: 'all unsubscribed' });
      // Subscribing again after all left works.
      await b.subscribe(site, () => {});
      expect(await subscribers(channel)).to.equal(1);
    });

    it('ignores and counts malformed messages; a throwing listener does not stop the others', async () => {
      const b = bus();
      const got: BucketsChanged[] = [];
      await b.subscribe(site, () => {
        throw new Error('listener bug');
      });
      await b.subscribe(site, (n) => got.push(n));
      const channel = b.channelOf(site);
      for (const raw of ['not json', 'null', '[1,2]', '{"buckets":[1]}', JSON.stringify({ site: `${site}x`, buckets: [1] }),
        JSON.stringify({ site, buckets: ['1'] }), JSON.stringify({ site, buckets: 5 })]) {
        await admin!.publish(channel, raw);
      }
      await admin!.publish(channel, JSON.stringify({ site, buckets: [120_000] }));
      await waitFor(() => got.length === 1, { what: 'the well-formed notice' });
      expect(got).to.deep.equal([{ site, buckets: [120_000] }]);
      expect(b.malformedMessages).to.equal(7);
    });

    it('resubscribes after a reconnect and sends a resync notice for the recent window', async () => {
      const name = `${PREFIX}sub-${site}`.replace(/[^A-Za-z0-9_.-]/g, '_');
      const nowMs = Date.UTC(2026, 0, 10, 12, 30, 15);
      const b = bus({ connection: { ...REDIS, connectionName: name }, resyncWindowMs: 10 * MIN, now: () => nowMs });
      const pub = bus();
      const got: BucketsChanged[] = [];
      await b.subscribe(site, (n) => got.push(n));
      await pub.publish({ site, buckets: [1] });
      await waitFor(() => got.length === 1, { what: 'first notice' });

      const clients = String(await admin!.client('LIST')).split('\n');
      const line = clients.find((l) => l.includes(` name=${name} `) && /flags=\S*P/.test(l));
      expect(line, 'the subscriber connection in CLIENT LIST').to.be.a('string');
      const id = /^id=(\d+)/.exec(line!)![1]!;
      await admin!.client('KILL', 'ID', id);

      await waitFor(() => b.resubscriptions === 1, { what: 'resubscription' });
      expect(await subscribers(b.channelOf(site))).to.equal(1);
      const resync = got[1]!;
      const lastMinute = Date.UTC(2026, 0, 10, 12, 30);
      expect(resync.site).to.equal(site);
      expect(resync.buckets).to.have.length(10);
      expect(resync.buckets[9]).to.equal(lastMinute);
      expect(resync.buckets[0]).to.equal(lastMinute - 9 * MIN);
      await pub.publish({ site, buckets: [2] });
      await waitFor(() => got.length === 3, { what: 'notice after the reconnect' });
      expect(got[2]).to.deep.equal({ site, buckets: [2] });
    });

    it('subscribe and publish fail once the bus is closed', async () => {
      const b = bus();
      await b.close();
      let error: unknown;
      await b.subscribe(site, () => {}).catch((e: unknown) => { error = e; });
      expect(error).to.be.instanceOf(Error);
      error = undefined;
      await b.publish({ site, buckets: [1] }).catch((e: unknown) => { error = e; });
      expect(error).to.be.instanceOf(Error);
    });
  });

  describe('query cache across processes', () => {
    const T0 = Date.UTC(2026, 0, 10, 9, 0);
    const closers: (() => Promise<void>)[] = [];
    let site: string;
    beforeEach(() => {
      site = `s-${randomUUID().slice(0, 8)}`;
    });
    afterEach(async () => {
      await Promise.all(closers.splice(0).map((c) => c()));
    });

    function row(minute: number, pageviews: number): Rollup {
      const hll = HyperLogLog.empty();
      for (let i = 0; i < pageviews; i++) hll.add(`v-${minute}-${i}`);
      const cellVisitors = HyperLogLog.empty(DIMENSION_SKETCH_PRECISION);
      for (let i = 0; i < pageviews; i++) cellVisitors.add(`v-${minute}-${i}`);
      const base = emptyRollup(site, 'minute', T0 + minute * MIN);
      const page = { ...base.totals, pageviews, visitors: cellVisitors.toBytes() };
      return { ...base, totals: { ...base.totals, pageviews }, visitors: hll.toBytes(), dims: { page: { '/': page } } };
    }

    /** As the aggregator writes: minute rows, then the coarser tiers rolled from them (queries read the coarsest that fits). */
    async function put(store: MemoryRollupStore, rows: Rollup[]): Promise<void> {
      await store.upsert(rows);
      await rollTiers(store, rows, 100);
    }

    /** A writer process (aggregator: store + invalidating bus) and a gateway process (query + bus). */
    function stack() {
      const store = new MemoryRollupStore(); // the shared store both processes read
      const writerCache = new RedisQueryCache({ connection: REDIS, keyPrefix: PREFIX });
      const writerBus = new RedisLiveBus({ connection: REDIS, keyPrefix: PREFIX });
      const gatewayCache = new RedisQueryCache({ connection: REDIS, keyPrefix: PREFIX });
      const gatewayBus = new RedisLiveBus({ connection: REDIS, keyPrefix: PREFIX });
      let reads = 0;
      const countingStore = Object.assign(Object.create(store) as MemoryRollupStore, {
        read: (s: string, tier: Tier, from: number, to: number) => {
          reads++;
          return store.read(s, tier, from, to);
        },
      });
      const invalidating = createInvalidatingLiveBus(writerBus, writerCache);
      // The tiers' retention counts from the service's clock: the wall clock would expire these rows one day.
      const query = createQueryService({ store: countingStore, cache: gatewayCache, now: () => T0 + 30 * MIN });
      closers.push(async () => {
        await invalidating.close();
        await Promise.all([writerCache.close(), writerBus.close(), gatewayCache.close(), gatewayBus.close()]);
      });
      return { store, query, invalidating, gatewayBus, reads: () => reads };
    }

    it('serves a cached totals response until a bucket-change notice, then the new rows', async () => {
      const { store, query, invalidating, gatewayBus, reads } = stack();
      const req = { site, from: T0, to: T0 + 60 * MIN };
      await put(store, [row(0, 5)]);
      await store.setWatermark(0, T0);
      const first = await query.totals(req);
      expect(first.totals.pageviews).to.equal(5);
      expect(reads()).to.equal(1);

      // Rows written without a notice are not seen: the response comes from the cache...
      await put(store, [row(1, 7)]);
      const second = await query.totals(req);
      expect(second).to.deep.equal(first);
      expect(reads()).to.equal(1);
      // ...which still reports the store's current watermark.
      await store.setWatermark(0, T0 + MIN);
      expect((await query.totals(req)).watermark).to.equal(T0 + MIN);
      expect(reads()).to.equal(1);

      // The writer's notice invalidates before it is published: a gateway that re-queries on
      // receiving it gets the new rows.
      const onNotice: Promise<number>[] = [];
      await gatewayBus.subscribe(site, () => {
        onNotice.push(query.totals(req).then((r) => r.totals.pageviews));
      });
      await put(store, [row(2, 1)]);
      await invalidating.publish({ site, buckets: [T0 + MIN, T0 + 2 * MIN] });
      await waitFor(() => onNotice.length === 1, { what: 'the notice at the gateway' });
      expect(await onNotice[0]).to.equal(13);
      expect((await query.totals(req)).totals.pageviews).to.equal(13);
      expect(invalidating.pendingSites()).to.equal(0);
    });

    it('timeseries and breakdown are cached per parameters and invalidated alike', async () => {
      const { store, query, invalidating, reads } = stack();
      await put(store, [row(0, 2), row(61, 3)]);
      const ts = { site, from: T0, to: T0 + 3 * 60 * MIN, interval: 'hour' as const };
      const bd = { site, from: T0, to: T0 + 3 * 60 * MIN, dimension: 'page' as const };
      const series = await query.timeseries(ts);
      expect(series.points.map((p) => p.pageviews)).to.deep.equal([2, 3, 0]);
      await query.breakdown(bd);
      await query.breakdown({ ...bd, limit: 1 });
      expect(reads()).to.equal(3);
      expect(await query.timeseries(ts)).to.deep.equal(series);
      await query.breakdown(bd);
      expect(reads()).to.equal(3);
      await put(store, [row(125, 4)]);
      await invalidating.publish({ site, buckets: [T0 + 125 * MIN] });
      expect((await query.timeseries(ts)).points.map((p) => p.pageviews)).to.deep.equal([2, 3, 4]);
      expect((await query.breakdown(bd)).rows).to.deep.equal([{ value: '/', pageviews: 9 }]);
    });
  });
});
