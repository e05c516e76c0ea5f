/**
 * CassandraRollupStore against a real node: idempotent and convergent upserts, whole-row
 * replacement, TTLs counted from bucket time, reads across day partitions, monotone watermarks.
 * One keyspace per run; each test uses its own sites and watermark scope.
 */
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { CassandraRollupStore, type CassandraRollupStoreOptions } from '../../src/adapters/cassandra/cassandra-rollup-store.js';
import { createTestKeyspace, type TestKeyspace } from '../../src/adapters/cassandra/cassandra-test-kit.js';
import type { MinuteRollup } from '../../src/aggregate/rollup-store.js';
import { stackEndpoints } from '../support/stack-fixture.js';
import { waitFor } from '../support/wait-for.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

function row(site: string, bucketMs: number, pageviews: number, extra: Partial<MinuteRollup> = {}): MinuteRollup {
  return {
    site, bucketMs, pageviews, events: 1,
    visitors: Uint8Array.from([1, 1, 14, pageviews & 0xff]),
    pages: { '/': pageviews }, sources: { 'Direct / None': pageviews },
    ...extra,
  };
}

/** Rows as comparable plain values (Uint8Array → array). */
const plain = (rows: MinuteRollup[]) => rows.map((r) => ({ ...r, visitors: Array.from(r.visitors) }));

describe('CassandraRollupStore (real node)', function () {
  this.timeout(60_000);
  let ks: TestKeyspace | undefined;
  const stores: CassandraRollupStore[] = [];
  let site: string;

  const open = async (options: Partial<CassandraRollupStoreOptions> = {}) => {
    if (!ks) throw new Error('no test keyspace: see the failure of the "before all" hook');
    const store = await CassandraRollupStore.connect({ ...ks.options, retentionMs: null, watermarkScope: randomUUID(), ...options });
    stores.push(store);
    return store;
  };

  before(async () => {
    const s = stackEndpoints();
    ks = await createTestKeyspace({ contactPoints: s.cassandraContactPoints, localDataCenter: s.cassandraDataCenter });
  });
  after(async () => ks?.drop());
  beforeEach(() => {
    site = `s-${randomUUID().slice(0, 8)}`;
  });
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
  });

  // A recent bucket, so that TTLs count from something near now.
  const recentBucket = () => Math.floor(Date.now() / MINUTE) * MINUTE - 10 * MINUTE;

  describe('upsert', () => {
    it('writes the same row many times, from concurrent writers, as if once', async () => {
      const [a, b] = [await open(), await open()];
      const t = recentBucket();
      const r = row(site, t, 42, { pages: { '/x': 40, '/y': 2 } });
      await a.upsert([r, r, r]);
      await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? a : b).upsert([r])));
      expect(plain(await a.read(site, t, t + MINUTE))).to.deep.equal(plain([r]));
    });

    it('converges to one whole row when concurrent writers write different versions of it', async () => {
      const [a, b] = [await open({ writeConcurrency: 4 }), await open({ writeConcurrency: 4 })];
      const t = recentBucket();
      const va = row(site, t, 10, { events: 3, visitors: Uint8Array.from([1, 1, 14, 1, 2, 3]), pages: { '/a': 6, '/b': 4 }, sources: { Google: 10 } });
      const vb = row(site, t, 20, { events: 7, visitors: Uint8Array.from([1, 2, 14, 9]), pages: { '/c': 20 }, sources: { Bing: 5, Direct: 15 } });
      await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a.upsert([va]) : b.upsert([vb]))));
      const got = plain(await a.read(site, t, t + MINUTE));
      // All cells of one INSERT share its write timestamp: one version wins whole, never a mix.
      expect([plain([va]), plain([vb])]).to.deep.include(got);
    });

    it('replaces maps whole: fewer keys leave no stale ones, and an empty map reads back empty', async () => {
      const store = await open();
      const t = recentBucket();
      await store.upsert([row(site, t, 3, { pages: { '/a': 1, '/b': 1, '/c': 1 }, sources: { A: 2, B: 1 } })]);
      await store.upsert([row(site, t, 1, { pages: { '/a': 1 }, sources: { B: 1 } })]);
      let [r] = await store.read(site, t, t + MINUTE);
      expect([r!.pages, r!.sources]).to.deep.equal([{ '/a': 1 }, { B: 1 }]);
      await store.upsert([row(site, t, 0, { pages: {}, sources: {}, visitors: new Uint8Array(0) })]);
      [r] = await store.read(site, t, t + MINUTE);
      expect([r!.pageviews, r!.pages, r!.sources, Array.from(r!.visitors)]).to.deep.equal([0, {}, {}, []]);
    });

    it('lets the last write of a row win within one call', async () => {
      const store = await open({ writeConcurrency: 8 });
      const t = recentBucket();
      await store.upsert(Array.from({ length: 12 }, (_, i) => row(site, t, i)));
      expect((await store.read(site, t, t + MINUTE)).map((r) => r.pageviews)).to.deep.equal([11]);
    });

    it('keeps large sketches and breakdowns intact', async () => {
      const store = await open();
      const t = recentBucket();
      const visitors = Uint8Array.from({ length: 3 + 16_384 }, (_, i) => (i * 31) % 52);
      const pages = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`/page/${i}/ünï`, i * 1_000_003]));
      pages['(other)'] = 2 ** 40;
      const r = row(site, t, 2 ** 40, { visitors, pages });
      await store.upsert([r]);
      expect(plain(await store.read(site, t, t + MINUTE))).to.deep.equal(plain([r]));
    });
  });

  describe('retention', () => {
    it('sets each row\'s TTL from its bucket time, so a rewrite never extends it', async () => {
      const t = recentBucket();
      let now = t + HOUR - 30_000;
      const store = await open({ retentionMs: HOUR, now: () => now });
      await store.upsert([row(site, t, 1)]);
      const ttl = async () => (await ks!.query(
        `SELECT TTL(pageviews) AS p, TTL(visitors) AS v, TTL(pages) AS m FROM ${ks!.keyspace}.rollup_minute WHERE site = ? AND day = ? AND bucket_ms = ?`,
        [site, Math.floor(t / DAY), t],
      ))[0] as { p: number; v: number; m: number };
      const first = await ttl();
      expect(first.p).to.be.within(1, 30);
      expect([first.v, first.m]).to.deep.equal([first.p, first.p]);
      now += 10_000;
      await store.upsert([row(site, t, 2)]);
      const second = await ttl();
      expect(second.p).to.be.within(1, 20);
      expect(second.p).to.be.below(first.p);
    });

    it('counts a fresh row\'s TTL as retention minus its age', async () => {
      const t = recentBucket();
      const now = t + 10 * MINUTE;
      const store = await open({ retentionMs: DAY, now: () => now });
      await store.upsert([row(site, t, 1)]);
      const [r] = await ks!.query(`SELECT TTL(events) AS ttl FROM ${ks!.keyspace}.rollup_minute WHERE site = ? AND day = ? AND bucket_ms = ?`, [site, Math.floor(t / DAY), t]);
      // Written with now = t + 10 min: DAY - 10 min, less the seconds the statement took.
      expect(r!.ttl).to.be.within(DAY / 1000 - 600 - 30, DAY / 1000 - 600);
    });

    it('does not write rows already past retention', async () => {
      const t = recentBucket();
      const store = await open({ retentionMs: HOUR, now: () => t + HOUR });
      await store.upsert([row(site, t, 1), row(site, t + MINUTE, 2)]);
      const rows = await ks!.query(`SELECT bucket_ms FROM ${ks!.keyspace}.rollup_minute WHERE site = ? AND day IN ?`, [site, [Math.floor(t / DAY), Math.floor((t + MINUTE) / DAY)]]);
      expect(rows.map((r) => r.bucket_ms)).to.deep.equal([t + MINUTE]);
    });

    it('lets rows expire at bucket time + retention', async () => {
      const t = Math.floor(Date.now() / MINUTE) * MINUTE;
      // Retention chosen so the row has about 2 s left.
      const retentionMs = Date.now() - t + 2_000;
      const store = await open({ retentionMs });
      await store.upsert([row(site, t, 1)]);
      await waitFor(async () => (await store.read(site, t - DAY, t + DAY)).length === 0, { deadlineMs: 20_000, intervalMs: 250, what: 'the row to expire' });
      const raw = await ks!.query(`SELECT bucket_ms FROM ${ks!.keyspace}.rollup_minute WHERE site = ? AND day = ?`, [site, Math.floor(t / DAY)]);
      expect(raw).to.deep.equal([]);
    });
  });

  describe('read', () => {
    it('reads across day boundaries, in bucket order, with any parallelism', async () => {
      const midnight = Date.UTC(2026, 5, 30);
      const buckets = [midnight - 2 * MINUTE, midnight - MINUTE, midnight, midnight + MINUTE, midnight + 2 * DAY + 5 * MINUTE];
      const writer = await open();
      await writer.upsert([...buckets].reverse().map((b, i) => row(site, b, i + 1)));
      for (const readConcurrency of [1, 4]) {
        const store = await open({ readConcurrency, fetchSize: 2 });
        expect((await store.read(site, midnight - DAY, midnight + 3 * DAY)).map((r) => r.bucketMs)).to.deep.equal(buckets);
        expect((await store.read(site, midnight - MINUTE, midnight + MINUTE)).map((r) => r.bucketMs)).to.deep.equal([midnight - MINUTE, midnight]);
        expect((await store.read(site, midnight + MINUTE + 1, midnight + 2 * DAY + 5 * MINUTE))).to.deep.equal([]);
      }
    });

    it('refuses unbounded ranges instead of fanning out over every day', async () => {
      const store = await open();
      let err: unknown;
      try {
        await store.read(site, 0, Number.POSITIVE_INFINITY);
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(RangeError);
    });
  });

  describe('watermarks', () => {
    it('only move forward, whatever order concurrent writers deliver them in', async () => {
      const scope = randomUUID();
      const [a, b] = [await open({ watermarkScope: scope }), await open({ watermarkScope: scope })];
      const base = Date.UTC(2026, 10, 1);
      const values = Array.from({ length: 20 }, (_, i) => base + ((i * 7) % 20) * MINUTE);
      await Promise.all(values.map((v, i) => (i % 2 ? a : b).setWatermark(3, v)));
      await a.setWatermark(3, base);
      expect(await b.watermark()).to.equal(base + 19 * MINUTE);
      await b.setWatermark(4, base + 5 * MINUTE);
      expect(await a.watermark()).to.equal(base + 5 * MINUTE);
    });

    it('are kept per scope', async () => {
      const [a, b] = [await open(), await open()];
      expect(await a.watermark()).to.equal(null);
      await a.setWatermark(0, 1_000);
      await b.setWatermark(0, 5_000);
      expect([await a.watermark(), await b.watermark()]).to.deep.equal([1_000, 5_000]);
    });
  });

  describe('connect', () => {
    it('fails naming the address when no node answers there', async () => {
      let err: unknown;
      try {
        await CassandraRollupStore.connect({ contactPoints: ['127.0.0.1:1'], localDataCenter: 'datacenter1', keyspace: 'nowhere', connectTimeoutMs: 2_000 });
      } catch (e) {
        err = e;
      }
      expect(String(err)).to.match(/Cassandra unreachable at 127\.0\.0\.1:1 /);
    });

    it('fails with a pointer to the migrations when the schema is missing', async () => {
      const bare = await createTestKeyspace(
        { contactPoints: ks!.options.contactPoints, localDataCenter: ks!.options.localDataCenter },
        { migrate: false },
      );
      try {
        await bare.query(`CREATE KEYSPACE ${bare.keyspace} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`);
        let err: unknown;
        try {
          await CassandraRollupStore.connect(bare.options);
        } catch (e) {
          err = e;
        }
        expect(String(err)).to.match(/lacks table\(s\) rollup_minute, rollup_watermarks: apply the schema migrations/);
      } finally {
        await bare.drop();
      }
    });
  });
});
