/**
 * CassandraRollupStore against a real node: idempotent and convergent upserts, whole-row
 * replacement, rows stored as parts (a head and a part per dimension, read by name), TTLs per
 * tier counted from bucket time, reads across partitions, monotone watermarks, chunked
 * checkpoints (completeness, digest, TTL). One keyspace per run; each test uses its own sites
 * and watermark scope.
 */
import { expect } from 'chai';
import { randomBytes, randomUUID } from 'node:crypto';
import { CassandraRollupStore, PERIOD_MS, periodOf, type CassandraRollupStoreOptions } from '../../src/adapters/cassandra/cassandra-rollup-store.js';
import { createTestKeyspace, type TestKeyspace } from '../../src/adapters/cassandra/cassandra-test-kit.js';
import { encodeRollupParts, HEAD_PART } from '../../src/aggregate/rollup-codec.js';
import { HyperLogLog } from '../../src/aggregate/hyperloglog.js';
import { DIMENSION_SKETCH_PRECISION, DIMENSIONS, OTHER_KEY, TIER_MS, type Counts, type DimCell, type Rollup, type Tier } from '../../src/aggregate/rollup.js';
import { stackEndpoints } from '../support/stack-fixture.js';
import { waitFor } from '../support/wait-for.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const counts = (pageviews: number, events = 1): Counts => ({ pageviews, events, visits: 1, bounces: 0, durationMs: 1000 });

function sketch(ids: readonly string[], precision?: number): Uint8Array {
  const h = HyperLogLog.empty(precision);
  for (const id of ids) h.add(id);
  return h.toBytes();
}

function row(site: string, tier: Tier, bucketMs: number, pageviews: number, extra: Partial<Rollup> = {}): Rollup {
  return {
    site, tier, bucketMs, totals: counts(pageviews), visitors: sketch([`v${pageviews}`]),
    dims: { page: { '/': counts(pageviews) } }, revenue: {}, bots: 0,
    ...extra,
  };
}

/** Rows as comparable plain values (byte arrays as hex). */
const plain = (rows: readonly Rollup[]) => JSON.parse(JSON.stringify(rows, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v))) as unknown;

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
  const ttlOf = async (tier: Tier, bucketMs: number, part = HEAD_PART) => {
    const rows = await ks!.query(
      `SELECT TTL(data) AS ttl FROM ${ks!.keyspace}.rollup_parts_${tier} WHERE site = ? AND period = ? AND part = ? AND bucket_ms = ?`,
      [site, periodOf(tier, bucketMs), part, bucketMs],
    );
    return rows.length === 0 ? undefined : (rows[0]!.ttl as number | null);
  };
  const partsOf = async (tier: Tier, bucketMs: number) => (await ks!.query(
    `SELECT part FROM ${ks!.keyspace}.rollup_parts_${tier} WHERE site = ? AND period = ?`, [site, periodOf(tier, bucketMs)],
  )).map((r) => r.part as string).sort();

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

  // A recent bucket of a tier, so that TTLs count from something near now.
  const recent = (tier: Tier) => Math.floor(Date.now() / TIER_MS[tier]) * TIER_MS[tier] - TIER_MS[tier];

  describe('upsert', () => {
    it('writes the same row many times, from concurrent writers, as if once', async () => {
      const [a, b] = [await open(), await open()];
      const t = recent('minute');
      const r = row(site, 'minute', t, 42, { dims: { page: { '/x': counts(40), '/y': counts(2) } } });
      await a.upsert([r, r, r]);
      await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? a : b).upsert([r])));
      expect(plain(await a.read(site, 'minute', t, t + MINUTE))).to.deep.equal(plain([r]));
    });

    it('converges to one whole row when concurrent writers write different versions of it', async () => {
      const [a, b] = [await open({ writeConcurrency: 4 }), await open({ writeConcurrency: 4 })];
      const t = recent('hour');
      const va = row(site, 'hour', t, 10, { dims: { page: { '/a': counts(6), '/b': counts(4) }, source: { Google: counts(10) } } });
      const vb = row(site, 'hour', t, 20, { dims: { page: { '/c': counts(20) } }, revenue: { buy: { EUR: 3 } } });
      await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a.upsert([va]) : b.upsert([vb]))));
      const got = plain(await a.read(site, 'hour', t, t + HOUR));
      // A row is one single-partition batch of parts: one version wins whole, never a mix.
      expect([plain([va]), plain([vb])]).to.deep.include(got);
    });

    it('keeps large rows intact: dense sketches, every dimension full, unicode keys', async () => {
      const store = await open();
      const t = recent('day');
      const ids = Array.from({ length: 20_000 }, (_, i) => `visitor-${i}`);
      const cells = (dim: string): Record<string, DimCell> => {
        const out: Record<string, DimCell> = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [
          `/${dim}/${i}/ünï`, { ...counts(i * 1_000_003, i), visitors: sketch(ids.slice(i * 3, i * 3 + (i === 0 ? 5_000 : 5 + (i % 7) * 10)), DIMENSION_SKETCH_PRECISION) },
        ]));
        out[OTHER_KEY] = counts(2 ** 40);
        return out;
      };
      const r = row(site, 'day', t, 2 ** 40, {
        visitors: sketch(ids),
        dims: Object.fromEntries(DIMENSIONS.map((d) => [d, cells(d)])) as Rollup['dims'],
        revenue: { purchase: { EUR: 1234.56, USD: 0.01 } },
        bots: 17,
      });
      await store.upsert([r]);
      expect(plain(await store.read(site, 'day', t, t + DAY))).to.deep.equal(plain([r]));
    });
  });

  describe('retention', () => {
    const RETENTION = { minute: HOUR, quarter: 2 * HOUR, hour: 3 * HOUR, day: 4 * DAY };

    it('sets each tier\'s TTL from its own retention and the bucket start', async () => {
      const now = Date.now();
      const store = await open({ retentionMs: RETENTION, now: () => now });
      const tiers: Tier[] = ['minute', 'quarter', 'hour', 'day'];
      const buckets = tiers.map((tier) => Math.floor((now - 10 * MINUTE) / TIER_MS[tier]) * TIER_MS[tier]);
      await store.upsert(tiers.map((tier, i) => row(site, tier, buckets[i]!, i)));
      for (const [i, tier] of tiers.entries()) {
        const expected = Math.floor((buckets[i]! + RETENTION[tier] - now) / 1000);
        // Less the seconds the statement took to reach the node; every part of a row alike.
        expect(await ttlOf(tier, buckets[i]!), tier).to.be.within(expected - 30, expected);
        expect(await ttlOf(tier, buckets[i]!, 'page'), tier).to.be.within(expected - 30, expected);
      }
    });

    it('never extends a row\'s TTL by rewriting it', async () => {
      const t = recent('quarter');
      let now = t + 2 * HOUR - 30_000;
      const store = await open({ retentionMs: RETENTION, now: () => now });
      await store.upsert([row(site, 'quarter', t, 1)]);
      const first = await ttlOf('quarter', t);
      expect(first).to.be.within(1, 30);
      now += 10_000;
      await store.upsert([row(site, 'quarter', t, 2)]);
      const second = await ttlOf('quarter', t);
      expect(second).to.be.within(1, 20);
      expect(second).to.be.below(first!);
    });

    it('does not write rows already past their tier\'s retention', async () => {
      const t = recent('hour');
      const store = await open({ retentionMs: RETENTION, now: () => t + 3 * HOUR });
      await store.upsert([row(site, 'hour', t, 1), row(site, 'hour', t + HOUR, 2), row(site, 'minute', t + 2 * HOUR, 3)]);
      expect(await ttlOf('hour', t)).to.equal(undefined);
      expect(await ttlOf('hour', t + HOUR)).to.be.above(0);
      expect(await ttlOf('minute', t + 2 * HOUR)).to.equal(undefined);
    });

    it('keeps a tier with null retention forever', async () => {
      const store = await open({ retentionMs: { ...RETENTION, day: null } });
      await store.upsert([row(site, 'day', Date.UTC(2001, 0, 1), 1)]);
      expect(await ttlOf('day', Date.UTC(2001, 0, 1))).to.equal(null);
    });

    for (const tier of ['minute', 'hour'] as const) {
      it(`lets ${tier} rows expire at bucket time + retention`, async () => {
        const t = Math.floor(Date.now() / TIER_MS[tier]) * TIER_MS[tier];
        // Retention chosen so the row has about 2 s left.
        const retentionMs = Date.now() - t + 2_000;
        const store = await open({ retentionMs: { ...RETENTION, [tier]: retentionMs } });
        await store.upsert([row(site, tier, t, 1)]);
        expect(await ttlOf(tier, t)).to.be.within(1, 2);
        await waitFor(async () => (await ttlOf(tier, t)) === undefined, { deadlineMs: 20_000, intervalMs: 250, what: `the ${tier} row to expire` });
        const reader = await open();
        expect(await reader.read(site, tier, t - DAY, t + DAY)).to.deep.equal([]);
      });
    }
  });

  describe('read', () => {
    it('reads across partition boundaries, in bucket order, with any parallelism and page size', async () => {
      const writer = await open();
      for (const tier of ['minute', 'quarter', 'hour', 'day'] as const) {
        const edge = Math.ceil(Date.UTC(2026, 5, 30) / PERIOD_MS[tier]) * PERIOD_MS[tier];
        const step = TIER_MS[tier];
        const buckets = [edge - 2 * step, edge - step, edge, edge + step, edge + 2 * PERIOD_MS[tier] + 5 * step];
        await writer.upsert([...buckets].reverse().map((b, i) => row(site, tier, b, i + 1)));
        for (const readConcurrency of [1, 4]) {
          const store = await open({ readConcurrency, fetchSize: 2 });
          expect((await store.read(site, tier, edge - PERIOD_MS[tier], edge + 3 * PERIOD_MS[tier])).map((r) => r.bucketMs), tier).to.deep.equal(buckets);
          expect((await store.read(site, tier, edge - step, edge + step)).map((r) => r.bucketMs), tier).to.deep.equal([edge - step, edge]);
          expect(await store.read(site, tier, edge + step + 1, edge + 2 * PERIOD_MS[tier] + 5 * step), tier).to.deep.equal([]);
        }
      }
    });

    it('skips the partitions that retention has emptied, and refuses reads over too many partitions', async () => {
      const now = Date.now();
      const bounded = await open({ retentionMs: { minute: DAY, quarter: DAY, hour: DAY, day: DAY } });
      // Ten years of minutes, but only the last day can hold rows: 25 partitions at most.
      expect(await bounded.read(site, 'minute', now - 3650 * DAY, now)).to.deep.equal([]);
      const forever = await open();
      let err: unknown;
      try {
        await forever.read(site, 'minute', now - 3650 * DAY, now);
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(RangeError);
      expect(String(err)).to.match(/minute partitions exceeds/);
    });

    it('fails, naming the row, when a stored blob is not a rollup', async () => {
      const store = await open();
      const t = recent('minute');
      await ks!.query(`INSERT INTO ${ks!.keyspace}.rollup_parts_minute (site, period, part, bucket_ms, data) VALUES (?, ?, ?, ?, ?)`, [site, periodOf('minute', t), HEAD_PART, t, Buffer.from('{"no":1}')]);
      let err: unknown;
      try {
        await store.read(site, 'minute', t, t + MINUTE);
      } catch (e) {
        err = e;
      }
      expect(String(err)).to.match(new RegExp(`RollupFormatError: rollup head of ${site} minute ${t}: unknown head version`));
    });
  });

  describe('parts', () => {
    it('stores a row as its head and one part per dimension, all with one write', async () => {
      const store = await open();
      const t = recent('hour');
      await store.upsert([row(site, 'hour', t, 3, { dims: { source: { Google: counts(3) }, page: { '/': counts(3) }, exit_page: { '/': counts(0) } } })]);
      expect(await partsOf('hour', t)).to.deep.equal(['exit_page', HEAD_PART, 'page', 'source'].sort());
    });

    it('ignores a part its row\'s head does not list (left by an earlier write), and fails when a listed part is missing', async () => {
      const store = await open();
      const t = recent('quarter');
      const r = row(site, 'quarter', t, 2, { dims: { page: { '/': counts(2) } } });
      await store.upsert([r]);
      // A stale part, as a rewrite that dropped the dimension leaves it.
      const stale = encodeRollupParts(row(site, 'quarter', t, 9, { dims: { source: { Old: counts(9) } } })).dims[0]![1];
      await ks!.query(`INSERT INTO ${ks!.keyspace}.rollup_parts_quarter (site, period, part, bucket_ms, data) VALUES (?, ?, ?, ?, ?)`, [site, periodOf('quarter', t), 'source', t, stale]);
      expect(plain(await store.read(site, 'quarter', t, t + HOUR))).to.deep.equal(plain([r]));
      expect(plain(await store.read(site, 'quarter', t, t + HOUR, { dims: ['source', 'page'] }))).to.deep.equal(plain([r]));

      await ks!.query(`DELETE FROM ${ks!.keyspace}.rollup_parts_quarter WHERE site = ? AND period = ? AND part = ? AND bucket_ms = ?`, [site, periodOf('quarter', t), 'page', t]);
      let err: unknown;
      try {
        await store.read(site, 'quarter', t, t + HOUR, { dims: ['page'] });
      } catch (e) {
        err = e;
      }
      expect(String(err)).to.match(/RollupFormatError: .*part "page" is missing/);
      // A read that does not want the lost part still serves the row.
      expect((await store.read(site, 'quarter', t, t + HOUR, { dims: [] })).map((x) => x.totals.pageviews)).to.deep.equal([2]);
    });

    it('pages through parts with any page size and parallelism', async () => {
      const writer = await open();
      const t0 = Math.floor(recent('minute') / PERIOD_MS.minute) * PERIOD_MS.minute - PERIOD_MS.minute;
      const rows = Array.from({ length: 90 }, (_, i) => row(site, 'minute', t0 + i * MINUTE, i, { dims: { page: { '/': counts(i) }, source: { Google: counts(i) }, device: { desktop: counts(i) } } }));
      await writer.upsert(rows);
      for (const [readConcurrency, fetchSize] of [[1, 1], [3, 7], [8, 500]] as const) {
        const store = await open({ readConcurrency, fetchSize });
        expect(plain(await store.read(site, 'minute', t0, t0 + 2 * HOUR))).to.deep.equal(plain(rows));
        const some = await store.read(site, 'minute', t0 + 5 * MINUTE, t0 + 70 * MINUTE, { dims: ['device'] });
        expect(some.map((x) => [x.bucketMs, Object.keys(x.dims)])).to.deep.equal(rows.slice(5, 70).map((x) => [x.bucketMs, ['device']]));
      }
    });
  });

  describe('checkpoints', () => {
    const chunkRows = async (scope: string, partition: number, id: string) => ks!.query(
      `SELECT save_id, chunk, TTL(data) AS ttl, complete_save_id, chunks, total_bytes FROM ${ks!.keyspace}.aggregate_checkpoints WHERE scope = ? AND partition = ? AND id = ?`,
      [scope, partition, id],
    );

    it('are written in chunks of checkpointChunkBytes, each with the checkpoint TTL', async () => {
      const scope = randomUUID();
      const store = await open({ watermarkScope: scope, checkpointChunkBytes: 1000, checkpointTtlMs: 3 * DAY });
      const data = randomBytes(10_500);
      await store.saveCheckpoint(7, 'c1', data);
      const rows = await chunkRows(scope, 7, 'c1');
      expect(rows.map((r) => r.chunk)).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(rows[0]!.chunks).to.equal(11);
      expect(rows[0]!.total_bytes).to.equal(10_500);
      expect(String(rows[0]!.complete_save_id)).to.equal(String(rows[0]!.save_id));
      for (const r of rows) expect(r.ttl).to.be.within(3 * DAY / 1000 - 30, 3 * DAY / 1000);
      expect(Buffer.from((await store.loadCheckpoint(7, 'c1'))!).equals(data)).to.equal(true);
    });

    it('load as null when a chunk is missing or the bytes differ from the digest', async () => {
      const scope = randomUUID();
      const store = await open({ watermarkScope: scope, checkpointChunkBytes: 100 });
      await store.saveCheckpoint(1, 'missing', randomBytes(1000));
      const [first] = await chunkRows(scope, 1, 'missing');
      await ks!.query(`DELETE FROM ${ks!.keyspace}.aggregate_checkpoints WHERE scope = ? AND partition = ? AND id = ? AND save_id = ? AND chunk = ?`, [scope, 1, 'missing', first!.save_id, 4]);
      expect(await store.loadCheckpoint(1, 'missing')).to.equal(null);

      await store.saveCheckpoint(1, 'edited', randomBytes(1000));
      const [head] = await chunkRows(scope, 1, 'edited');
      await ks!.query(`UPDATE ${ks!.keyspace}.aggregate_checkpoints SET data = ? WHERE scope = ? AND partition = ? AND id = ? AND save_id = ? AND chunk = ?`, [randomBytes(100), scope, 1, 'edited', head!.save_id, 3]);
      expect(await store.loadCheckpoint(1, 'edited')).to.equal(null);
    });

    it('never read a save that died half-way: the last complete save of the id is loaded', async () => {
      const scope = randomUUID();
      const store = await open({ watermarkScope: scope, checkpointChunkBytes: 100 });
      const complete = randomBytes(450);
      await store.saveCheckpoint(2, 'c', complete);
      // A later save that wrote some chunks and died before its head.
      const dead = randomUUID();
      for (const chunk of [0, 1, 2]) {
        await ks!.query(`INSERT INTO ${ks!.keyspace}.aggregate_checkpoints (scope, partition, id, save_id, chunk, data) VALUES (?, ?, ?, ?, ?, ?)`, [scope, 2, 'c', dead, chunk, randomBytes(100)]);
      }
      expect(Buffer.from((await store.loadCheckpoint(2, 'c'))!).equals(complete)).to.equal(true);
      // A save that died before writing anything, on a fresh id.
      await ks!.query(`INSERT INTO ${ks!.keyspace}.aggregate_checkpoints (scope, partition, id, save_id, chunk, data) VALUES (?, ?, ?, ?, ?, ?)`, [scope, 2, 'fresh', dead, 0, randomBytes(10)]);
      expect(await store.loadCheckpoint(2, 'fresh')).to.equal(null);
    });

    it('are kept per scope', async () => {
      const [a, b] = [await open(), await open()];
      await a.saveCheckpoint(0, 'same', Buffer.from('a'));
      expect(await b.loadCheckpoint(0, 'same')).to.equal(null);
    });

    it('expire after checkpointTtlMs', async () => {
      const store = await open({ checkpointTtlMs: 2_000, checkpointChunkBytes: 10 });
      await store.saveCheckpoint(3, 'short', randomBytes(55));
      expect(await store.loadCheckpoint(3, 'short')).to.be.instanceOf(Uint8Array);
      await waitFor(async () => (await store.loadCheckpoint(3, 'short')) === null, { deadlineMs: 20_000, intervalMs: 250, what: 'the checkpoint to expire' });
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
        expect(String(err)).to.match(/lacks table\(s\) rollup_parts_minute, rollup_parts_quarter, rollup_parts_hour, rollup_parts_day, rollup_watermarks, aggregate_checkpoints: apply the schema migrations/);
      } finally {
        await bare.drop();
      }
    });
  });
});
