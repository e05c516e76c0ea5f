/** The RollupStore contract (src/aggregate/rollup-store.ts), run against every implementation. Sites are unique per test. */
import { expect } from 'chai';
import { randomBytes, randomUUID } from 'node:crypto';
import { HyperLogLog } from '../../src/aggregate/hyperloglog.js';
import { DIMENSION_SKETCH_PRECISION, OTHER_KEY, TIER_MS, type Counts, type Rollup, type Tier } from '../../src/aggregate/rollup.js';
import type { RollupStore } from '../../src/aggregate/rollup-store.js';
import type { TierRetention } from '../../src/aggregate/tier-roller.js';

export interface RollupStoreFixture {
  readonly store: RollupStore;
  close(): Promise<void>;
}

/** What a test may ask of the store it gets: retention of every tier and a clock for it (default: forever, the real clock). */
export interface RollupStoreSetupOptions {
  readonly retentionMs?: TierRetention;
  readonly now?: () => number;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 0, 1, 0, 0);

const counts = (pageviews: number, events = 0, visits = 0, bounces = 0, durationMs = 0): Counts => ({ pageviews, events, visits, bounces, durationMs });

function sketch(ids: readonly string[], precision?: number): Uint8Array {
  const h = HyperLogLog.empty(precision);
  for (const id of ids) h.add(id);
  return h.toBytes();
}

function row(site: string, tier: Tier, bucketMs: number, pageviews: number, extra: Partial<Rollup> = {}): Rollup {
  return {
    site, tier, bucketMs,
    totals: counts(pageviews, pageviews % 3, 2, 1, 30_000),
    visitors: sketch([`a${pageviews}`, 'b']),
    dims: {
      page: { '/': { ...counts(pageviews, 0, 1, 1, 0), visitors: sketch(['a'], DIMENSION_SKETCH_PRECISION) }, [OTHER_KEY]: counts(1) },
      exit_page: { '/': counts(0, 0, 1) },
    },
    revenue: { purchase: { EUR: 12.5 } },
    bots: 1,
    ...extra,
  };
}

/** Rows as comparable plain values (byte arrays as hex, whatever their class). */
const plain = (rows: readonly Rollup[]) => JSON.parse(JSON.stringify(rows, (_k, v: unknown) => {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  if (v !== null && typeof v === 'object' && (v as { type?: unknown }).type === 'Buffer') return Buffer.from((v as { data: number[] }).data).toString('hex');
  return v;
})) as unknown;

export function rollupStoreContract(name: string, setup: (options: RollupStoreSetupOptions) => Promise<RollupStoreFixture>): void {
  describe(`RollupStore contract: ${name}`, function () {
    this.timeout(60_000);
    const opened: RollupStoreFixture[] = [];
    let site: string;
    const open = async (options: RollupStoreSetupOptions = {}) => {
      const fx = await setup(options);
      opened.push(fx);
      return fx.store;
    };
    beforeEach(() => {
      site = `s-${randomUUID().slice(0, 8)}`;
    });
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((fx) => fx.close()));
    });

    describe('rows', () => {
      it('reads back whole rows, in bucket order, within [from, to)', async () => {
        const store = await open();
        const rows = [3, 1, 2].map((m) => row(site, 'minute', T0 + m * MINUTE, m * 10));
        await store.upsert(rows);
        const all = await store.read(site, 'minute', T0, T0 + 10 * MINUTE);
        expect(plain(all)).to.deep.equal(plain([rows[1]!, rows[2]!, rows[0]!]));
        const some = await store.read(site, 'minute', T0 + MINUTE, T0 + 3 * MINUTE);
        expect(some.map((r) => r.bucketMs)).to.deep.equal([T0 + MINUTE, T0 + 2 * MINUTE]);
        expect(all[0]!.visitors).to.be.instanceOf(Uint8Array);
        expect(HyperLogLog.fromBytes(all[0]!.visitors).count()).to.equal(2);
      });

      it('keeps each tier apart: rows of one bucket time in different tiers are different rows', async () => {
        const store = await open();
        const tiers: Tier[] = ['minute', 'quarter', 'hour', 'day'];
        await store.upsert(tiers.map((tier, i) => row(site, tier, T0, i + 1, { tier })));
        for (const [i, tier] of tiers.entries()) {
          const rows = await store.read(site, tier, T0 - DAY, T0 + DAY);
          expect(rows.map((r) => [r.tier, r.totals.pageviews])).to.deep.equal([[tier, i + 1]]);
        }
      });

      it('stores rows of every tier at their own bucket starts, and refuses a bucket that is not one', async () => {
        const store = await open();
        const rows = (['minute', 'quarter', 'hour', 'day'] as const).map((tier, i) => row(site, tier, T0 + 3 * TIER_MS[tier], i));
        await store.upsert(rows);
        for (const r of rows) expect(plain(await store.read(site, r.tier, r.bucketMs, r.bucketMs + 1))).to.deep.equal(plain([r]));
        let err: unknown;
        try {
          await store.upsert([row(site, 'hour', T0 + 15 * MINUTE, 1)]);
        } catch (e) {
          err = e;
        }
        expect(err).to.be.instanceOf(RangeError);
        expect(await store.read(site, 'hour', T0, T0 + HOUR)).to.deep.equal([]);
      });

      it('upserts are absolute and idempotent: the same row twice equals once, the later row wins whole', async () => {
        const store = await open();
        const r = row(site, 'hour', T0, 5);
        await store.upsert([r]);
        await store.upsert([r]);
        expect(plain(await store.read(site, 'hour', T0, T0 + HOUR))).to.deep.equal(plain([r]));
        const smaller = row(site, 'hour', T0, 7, { dims: { page: { '/a': counts(7) } }, revenue: {} });
        await store.upsert([smaller]);
        expect(plain(await store.read(site, 'hour', T0, T0 + HOUR))).to.deep.equal(plain([smaller]));
      });

      it('lets the last write of a row win within one call', async () => {
        const store = await open();
        await store.upsert(Array.from({ length: 12 }, (_, i) => row(site, 'quarter', T0, i)));
        expect((await store.read(site, 'quarter', T0, T0 + HOUR)).map((r) => r.totals.pageviews)).to.deep.equal([11]);
      });

      it('is not changed by callers mutating rows they wrote or read', async () => {
        const store = await open();
        const r = row(site, 'minute', T0, 4);
        await store.upsert([r]);
        (r.totals as Counts).pageviews = 999;
        r.visitors[3] = 77;
        const [first] = await store.read(site, 'minute', T0, T0 + MINUTE);
        (first!.totals as Counts).pageviews = 555;
        const [second] = await store.read(site, 'minute', T0, T0 + MINUTE);
        expect(second!.totals.pageviews).to.equal(4);
        expect(plain([second!])).to.deep.equal(plain([row(site, 'minute', T0, 4)]));
      });

      it('never returns another site\'s rows', async () => {
        const store = await open();
        const other = `${site}-other`;
        await store.upsert([row(site, 'day', T0, 1), row(other, 'day', T0, 99, { site: other })]);
        const rows = await store.read(site, 'day', T0, T0 + DAY);
        expect(rows.map((r) => [r.site, r.totals.pageviews])).to.deep.equal([[site, 1]]);
        expect(await store.read(`${site}-none`, 'day', T0, T0 + DAY)).to.deep.equal([]);
      });

      it('reads long ranges in bucket order, across every partition boundary', async () => {
        const store = await open();
        const spans: Array<[Tier, number, number]> = [['minute', 200, 7], ['quarter', 300, 5], ['hour', 400, 7], ['day', 400, 3]];
        for (const [tier, n, step] of spans) {
          const buckets = Array.from({ length: n }, (_, i) => T0 - 37 * TIER_MS[tier] + i * step * TIER_MS[tier]);
          await store.upsert([...buckets].reverse().map((b, i) => row(site, tier, b, i)));
          const all = await store.read(site, tier, buckets[0]!, buckets.at(-1)! + 1);
          expect(all.map((r) => r.bucketMs), tier).to.deep.equal(buckets);
          const inner = await store.read(site, tier, buckets[1]! - 1, buckets.at(-2)!);
          expect(inner.map((r) => r.bucketMs), tier).to.deep.equal(buckets.slice(1, -2));
        }
      });

      it('refuses unbounded ranges', async () => {
        const store = await open();
        let err: unknown;
        try {
          await store.read(site, 'minute', 0, Number.POSITIVE_INFINITY);
        } catch (e) {
          err = e;
        }
        expect(err).to.be.instanceOf(RangeError);
      });
    });

    describe('parts', () => {
      const wide = (s: string, tier: Tier, bucketMs: number, pageviews: number, dims: Rollup['dims']): Rollup => row(s, tier, bucketMs, pageviews, { dims });
      const threeDims = (): Rollup['dims'] => ({
        source: { Google: { ...counts(3, 0, 2, 1, 100), visitors: sketch(['g1', 'g2'], DIMENSION_SKETCH_PRECISION) }, [OTHER_KEY]: counts(1, 0, 1) },
        page: { '/': { ...counts(5, 1, 1, 1, 0), visitors: sketch(['a'], DIMENSION_SKETCH_PRECISION) }, '/ünï': counts(2) },
        exit_page: { '/': counts(0, 0, 1) },
      });
      /** The row as a read naming `dims` must return it: whole, but only those dimensions. */
      const projected = (r: Rollup, dims: readonly string[]): Rollup => ({
        ...r, dims: Object.fromEntries(Object.entries(r.dims).filter(([name]) => dims.includes(name))) as Rollup['dims'],
      });

      it('return every row with its head and only the dimensions named, in the row\'s order', async () => {
        const store = await open();
        const rows = [0, 1, 2].map((m) => wide(site, 'minute', T0 + m * MINUTE, m + 1, threeDims()));
        await store.upsert(rows);
        for (const dims of [[], ['page'], ['exit_page', 'source'], ['page', 'page'], ['city'], ['city', 'source']] as const) {
          const got = await store.read(site, 'minute', T0, T0 + HOUR, { dims });
          expect(plain(got), dims.join('+')).to.deep.equal(plain(rows.map((r) => projected(r, dims))));
        }
        expect(plain(await store.read(site, 'minute', T0, T0 + HOUR))).to.deep.equal(plain(rows));
      });

      it('read partially across every partition boundary, in bucket order', async () => {
        const store = await open();
        for (const [tier, n, step] of [['minute', 130, 1], ['quarter', 200, 1], ['hour', 200, 1], ['day', 200, 1]] as const) {
          const buckets = Array.from({ length: n }, (_, i) => T0 - 37 * TIER_MS[tier] + i * step * TIER_MS[tier]);
          await store.upsert(buckets.map((b, i) => wide(site, tier, b, i, i % 3 === 0 ? { page: threeDims().page } : threeDims())));
          const got = await store.read(site, tier, buckets[1]!, buckets.at(-1)!, { dims: ['source'] });
          expect(got.map((r) => r.bucketMs), tier).to.deep.equal(buckets.slice(1, -1));
          expect(got.map((r) => Object.keys(r.dims).join('+')), tier).to.deep.equal(buckets.slice(1, -1).map((_, i) => ((i + 1) % 3 === 0 ? '' : 'source')));
          expect(got.map((r) => r.totals.pageviews), tier).to.deep.equal(buckets.slice(1, -1).map((_, i) => i + 1));
        }
      });

      it('keep upserts whole-row: a dimension the later row lacks is gone from whole and partial reads', async () => {
        const store = await open();
        await store.upsert([wide(site, 'hour', T0, 9, threeDims())]);
        const later = wide(site, 'hour', T0, 4, { page: { '/b': counts(4) } });
        await store.upsert([later]);
        expect(plain(await store.read(site, 'hour', T0, T0 + HOUR))).to.deep.equal(plain([later]));
        expect(plain(await store.read(site, 'hour', T0, T0 + HOUR, { dims: ['source', 'exit_page'] }))).to.deep.equal(plain([projected(later, [])]));
        expect(plain(await store.read(site, 'hour', T0, T0 + HOUR, { dims: ['page', 'source'] }))).to.deep.equal(plain([later]));
        // And back: the dimensions of a yet later row are its own, not the first row's.
        const last = wide(site, 'hour', T0, 5, { source: { Bing: counts(5) } });
        await store.upsert([last]);
        expect(plain(await store.read(site, 'hour', T0, T0 + HOUR, { dims: ['page', 'source', 'exit_page'] }))).to.deep.equal(plain([last]));
      });

      it('keep dimensions this code does not know, written by a newer writer', async () => {
        const store = await open();
        const dims = { ...threeDims(), future_dimension: { x: counts(1) } } as unknown as Rollup['dims'];
        const r = wide(site, 'day', T0, 3, dims);
        await store.upsert([r]);
        expect(plain(await store.read(site, 'day', T0, T0 + DAY))).to.deep.equal(plain([r]));
        expect(plain(await store.read(site, 'day', T0, T0 + DAY, { dims: ['future_dimension' as never] }))).to.deep.equal(plain([projected(r, ['future_dimension'])]));
      });

      it('read back visitor sketches whose count is the sketch\'s own, sparse or dense', async () => {
        const store = await open();
        const dense = sketch(Array.from({ length: 9_000 }, (_, i) => `visitor-${i}`));
        const rows = [row(site, 'day', T0, 1), row(site, 'day', T0 + DAY, 2, { visitors: dense })];
        await store.upsert(rows);
        for (const parts of [undefined, { dims: [] }] as const) {
          const got = await store.read(site, 'day', T0, T0 + 2 * DAY, parts);
          for (const [i, r] of got.entries()) {
            expect(HyperLogLog.countOf(r.visitors)).to.equal(HyperLogLog.fromBytes(rows[i]!.visitors).count());
          }
        }
        expect(HyperLogLog.countOf(dense)).to.be.within(8_700, 9_300);
      });
    });

    describe('retention', () => {
      it('neither writes nor returns rows past their tier\'s retention, counted from the bucket start', async () => {
        const now = T0 + 10 * DAY;
        const store = await open({ retentionMs: { minute: DAY, quarter: 5 * DAY, hour: null, day: null }, now: () => now });
        const old = T0 + 8 * DAY;
        const fresh = T0 + 9 * DAY + HOUR;
        await store.upsert([
          row(site, 'minute', old, 1), row(site, 'minute', fresh, 2),
          row(site, 'quarter', old, 3), row(site, 'hour', T0 - 400 * DAY, 4),
        ]);
        expect((await store.read(site, 'minute', T0, now)).map((r) => r.totals.pageviews)).to.deep.equal([2]);
        expect((await store.read(site, 'quarter', T0, now)).map((r) => r.totals.pageviews)).to.deep.equal([3]);
        expect((await store.read(site, 'hour', T0 - 500 * DAY, now)).map((r) => r.totals.pageviews)).to.deep.equal([4]);
      });
    });

    describe('watermarks', () => {
      it('move only forward and report the lowest partition', async () => {
        const store = await open();
        expect(await store.watermark()).to.equal(null);
        await store.setWatermark(0, T0 + 120_000);
        await store.setWatermark(1, T0 + 60_000);
        await store.setWatermark(0, T0);
        expect(await store.watermark()).to.equal(T0 + 60_000);
        // Each partition's own: the highest written for it, or null.
        expect(await store.partitionWatermark(0)).to.equal(T0 + 120_000);
        expect(await store.partitionWatermark(1)).to.equal(T0 + 60_000);
        expect(await store.partitionWatermark(2)).to.equal(null);
      });
    });

    describe('checkpoints', () => {
      const id = () => `cp-${randomUUID().slice(0, 8)}`;

      it('are read back byte for byte, whatever their size', async () => {
        const store = await open();
        const partition = Math.floor(Math.random() * 1000);
        for (const size of [0, 1, 1000, 256 * 1024, 256 * 1024 + 1, 3 * 1024 * 1024 + 17]) {
          const data = randomBytes(size);
          const key = id();
          await store.saveCheckpoint(partition, key, data);
          const back = await store.loadCheckpoint(partition, key);
          expect(back, `size ${size}`).to.be.instanceOf(Uint8Array);
          expect(Buffer.from(back!).equals(data), `size ${size}`).to.equal(true);
        }
      });

      it('are null when absent, and kept apart by partition and id', async () => {
        const store = await open();
        const key = id();
        expect(await store.loadCheckpoint(1, key)).to.equal(null);
        await store.saveCheckpoint(1, key, Buffer.from('one'));
        await store.saveCheckpoint(2, key, Buffer.from('two'));
        await store.saveCheckpoint(1, `${key}b`, Buffer.from('other'));
        expect(Buffer.from((await store.loadCheckpoint(1, key))!).toString()).to.equal('one');
        expect(Buffer.from((await store.loadCheckpoint(2, key))!).toString()).to.equal('two');
        expect(await store.loadCheckpoint(3, key)).to.equal(null);
      });

      it('are replaced whole by a later save of the same id, smaller or larger', async () => {
        const store = await open();
        const key = id();
        const big = randomBytes(700 * 1024);
        await store.saveCheckpoint(4, key, big);
        await store.saveCheckpoint(4, key, Buffer.from('small'));
        expect(Buffer.from((await store.loadCheckpoint(4, key))!).toString()).to.equal('small');
        await store.saveCheckpoint(4, key, big);
        expect(Buffer.from((await store.loadCheckpoint(4, key))!).equals(big)).to.equal(true);
      });

      it('store a view\'s bytes, not its backing buffer, and are not changed by the caller afterwards', async () => {
        const store = await open();
        const key = id();
        const backing = Uint8Array.from({ length: 100 }, (_, i) => i);
        const view = backing.subarray(10, 20);
        await store.saveCheckpoint(5, key, view);
        backing.fill(0);
        const back = await store.loadCheckpoint(5, key);
        expect(Array.from(back!)).to.deep.equal(Array.from({ length: 10 }, (_, i) => i + 10));
        back!.fill(9);
        expect(Array.from((await store.loadCheckpoint(5, key))!)).to.deep.equal(Array.from({ length: 10 }, (_, i) => i + 10));
      });
    });
  });
}
