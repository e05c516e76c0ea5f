import { expect } from 'chai';
import { MemoryRollupStore } from '../adapters/memory/memory-rollup-store.js';
import { rng as prng } from '../demo/demo-traffic.js';
import { HyperLogLog } from './hyperloglog.js';
import { DIMENSION_SKETCH_PRECISION, TIER_MS, type Counts, type DimCell, type Rollup, type Tier } from './rollup.js';
import type { RollupStore } from './rollup-store.js';
import { mergeRollups } from './rollup-merge.js';
import { TierRoller, resolveRetention, rollTiers, tierRetentionFromDays } from './tier-roller.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** 23:00 UTC: random minutes run across a day boundary. */
const T0 = Date.UTC(2026, 2, 1, 23);
const P = DIMENSION_SKETCH_PRECISION;

function sketch(ids: readonly string[], precision?: number): Uint8Array {
  const h = HyperLogLog.empty(precision);
  for (const id of ids) h.add(id);
  return h.toBytes();
}

const counts = (pageviews: number, events = 0, visits = 0, bounces = 0, durationMs = 0): Counts => ({ pageviews, events, visits, bounces, durationMs });

function randomMinute(rand: () => number, site: string, bucketMs: number, version = 0): Rollup {
  const int = (n: number) => Math.floor(rand() * n);
  const ids = Array.from({ length: 1 + int(20) }, () => `visitor-${int(300)}`);
  const pages: Record<string, DimCell> = {};
  for (let i = int(8); i > 0; i--) pages[`/p${int(30)}`] = { ...counts(1 + int(5), 0, int(2), int(2), int(9000)), visitors: sketch(ids.slice(0, 1 + int(3)), P) };
  return {
    site, tier: 'minute', bucketMs,
    totals: counts(int(50) + version, int(9), int(6), int(3) - 1, int(600_000)),
    visitors: sketch(ids),
    dims: { page: pages, exit_page: { [`/p${int(30)}`]: counts(0, 0, int(3) - 1) } },
    revenue: rand() < 0.3 ? { buy: { EUR: int(10_000) / 100 } } : {},
    bots: int(3),
  };
}

/** Rows as comparable plain values (byte arrays as hex). */
const plain = (rows: readonly Rollup[]) => JSON.parse(JSON.stringify(rows, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v))) as unknown;

/** What every coarse row must equal: a direct merge of the minute rows it covers. */
async function directMerge(store: RollupStore, site: string, tier: Tier, bucketMs: number, maxKeys: number): Promise<Rollup> {
  return mergeRollups(await store.read(site, 'minute', bucketMs, bucketMs + TIER_MS[tier]), site, tier, bucketMs, maxKeys);
}

describe('tier roller', () => {
  it('writes quarter, hour and day rows equal to a direct merge of their minute rows', async () => {
    const rand = prng(1);
    const store = new MemoryRollupStore();
    const sites = ['a', 'b', 'c'];
    const minutes = sites.flatMap((site) => Array.from({ length: 150 }, () => T0 - 3 * HOUR + Math.floor(rand() * 6 * 60) * MINUTE))
      .map((b, i) => randomMinute(rand, sites[i % 3]!, b));
    await store.upsert(minutes);
    const summary = await rollTiers(store, minutes, 10_000);
    expect(summary.skipped).to.equal(0);
    for (const site of sites) {
      for (const tier of ['quarter', 'hour', 'day'] as const) {
        const rows = await store.read(site, tier, T0 - DAY, T0 + DAY);
        expect(rows.length, `${site} ${tier}`).to.be.greaterThan(0);
        for (const r of rows) expect(plain([r]), `${site} ${tier} ${r.bucketMs}`).to.deep.equal(plain([await directMerge(store, site, tier, r.bucketMs, 10_000)]));
      }
      // Every bucket touched has its row: 6 hours starting at 20:00, across midnight.
      expect((await store.read(site, 'hour', T0 - DAY, T0 + DAY)).map((r) => r.bucketMs)).to.deep.equal(Array.from({ length: 6 }, (_, i) => T0 - 3 * HOUR + i * HOUR));
      expect((await store.read(site, 'day', T0 - 2 * DAY, T0 + 2 * DAY)).map((r) => r.bucketMs)).to.deep.equal([T0 - 23 * HOUR, T0 + HOUR]);
    }
    expect(summary.written.day).to.equal(6);
    expect(summary.written.hour).to.equal(18);
  });

  it('converges, flush by flush with restatements, to the direct merge of the final minute rows', async () => {
    const rand = prng(2);
    const store = new MemoryRollupStore();
    for (let flush = 0; flush < 40; flush++) {
      // Each flush writes a few minutes near a moving "now", some of them rewritten (restated).
      const at = T0 + flush * 3 * MINUTE;
      const batch = Array.from({ length: 1 + Math.floor(rand() * 4) }, () => randomMinute(rand, 's', at - Math.floor(rand() * 10) * MINUTE, flush));
      await store.upsert(batch);
      await rollTiers(store, batch, 10_000);
    }
    for (const tier of ['quarter', 'hour', 'day'] as const) {
      for (const r of await store.read('s', tier, T0 - DAY, T0 + 2 * DAY)) {
        expect(plain([r]), `${tier} ${r.bucketMs}`).to.deep.equal(plain([await directMerge(store, 's', tier, r.bucketMs, 10_000)]));
      }
    }
  });

  it('is idempotent: rolling again writes the same rows', async () => {
    const rand = prng(3);
    const store = new MemoryRollupStore();
    const minutes = Array.from({ length: 60 }, (_, i) => randomMinute(rand, 's', T0 + i * 2 * MINUTE));
    await store.upsert(minutes);
    await rollTiers(store, minutes, 5);
    const first = await Promise.all((['quarter', 'hour', 'day'] as const).map((t) => store.read('s', t, T0 - DAY, T0 + DAY)));
    await rollTiers(store, minutes.slice(10, 20), 5);
    await rollTiers(store, minutes, 5);
    const second = await Promise.all((['quarter', 'hour', 'day'] as const).map((t) => store.read('s', t, T0 - DAY, T0 + DAY)));
    expect(plain(second.flat())).to.deep.equal(plain(first.flat()));
  });

  it('with capping, keeps totals, sketches and revenue exact and every dimension\'s sum', async () => {
    const rand = prng(4);
    const store = new MemoryRollupStore();
    const minutes = Array.from({ length: 300 }, (_, i) => randomMinute(rand, 's', T0 - 2 * HOUR + i * MINUTE));
    await store.upsert(minutes);
    await rollTiers(store, minutes, 3);
    const sumOf = (cells: Readonly<Record<string, DimCell>> | undefined, f: keyof Counts) => Object.values(cells ?? {}).reduce((a, c) => a + c[f], 0);
    for (const r of await store.read('s', 'day', T0 - DAY, T0 + DAY)) {
      const direct = await directMerge(store, 's', 'day', r.bucketMs, 3);
      expect(plain([{ ...r, dims: {} }])).to.deep.equal(plain([{ ...direct, dims: {} }]));
      for (const dim of ['page', 'exit_page'] as const) {
        expect(Object.keys(r.dims[dim] ?? {}).length).to.be.at.most(4);
        for (const f of ['pageviews', 'visits', 'bounces', 'durationMs'] as const) expect(sumOf(r.dims[dim], f), `${dim} ${f}`).to.equal(sumOf(direct.dims[dim], f));
      }
    }
  });

  it('leaves alone the coarse buckets whose finer rows may have expired', async () => {
    const rand = prng(5);
    const retentionMs = { ...tierRetentionFromDays({ minuteRetentionDays: 1, quarterRetentionDays: 30, hourRetentionDays: 60, dayRetentionDays: 400 }) };
    const now = T0 + DAY + 10 * MINUTE;
    const store = new MemoryRollupStore({ retentionMs, now: () => now });
    // A quarter whose first minute is a day old: its minute rows are (nearly) gone.
    const oldQuarter = T0;
    const stale = { ...randomMinute(rand, 's', oldQuarter), totals: counts(1000) };
    const before = mergeRollups([stale], 's', 'quarter', oldQuarter, 10);
    await store.upsert([before]);
    const late = randomMinute(rand, 's', oldQuarter + 14 * MINUTE);
    const recentMinute = randomMinute(rand, 's', T0 + DAY);
    await store.upsert([late, recentMinute]);
    const summary = await rollTiers(store, [late, recentMinute], 10, { retentionMs, now: () => now });
    expect(summary.skipped).to.equal(1);
    expect(plain(await store.read('s', 'quarter', oldQuarter, oldQuarter + 1))).to.deep.equal(plain([before]));
    expect((await store.read('s', 'quarter', T0 + DAY, T0 + DAY + 1))[0]!.totals).to.deep.equal(recentMinute.totals);
    expect(summary.written).to.deep.equal({ quarter: 1, hour: 1, day: 1 });
  });

  it('lays the rows it was given over a read that lags behind them', async () => {
    const rand = prng(6);
    const store = new MemoryRollupStore();
    const old = randomMinute(rand, 's', T0);
    const newer = { ...randomMinute(rand, 's', T0), totals: counts(777) };
    await store.upsert([old]);
    // As if the read went to a replica that has not seen `newer` yet.
    await rollTiers(store, [newer], 10);
    expect((await store.read('s', 'quarter', T0, T0 + 1))[0]!.totals.pageviews).to.equal(777);
    expect((await store.read('s', 'day', T0 - 23 * HOUR, T0 + 1))[0]!.totals.pageviews).to.equal(777);
  });

  it('rolls at most `concurrency` sites at a time', async () => {
    const rand = prng(7);
    const inner = new MemoryRollupStore();
    let inFlight = 0;
    let most = 0;
    const sites = new Set<string>();
    const store: Pick<RollupStore, 'read' | 'upsert'> = {
      read: async (site, tier, from, to) => {
        sites.add(site);
        most = Math.max(most, sites.size);
        inFlight++;
        await new Promise((r) => setImmediate(r));
        inFlight--;
        return inner.read(site, tier, from, to);
      },
      upsert: async (rows) => {
        await inner.upsert(rows);
        if (rows.length > 0 && rows[0]!.tier === 'day') sites.delete(rows[0]!.site);
      },
    };
    const minutes = Array.from({ length: 20 }, (_, i) => randomMinute(rand, `site-${i}`, T0));
    await inner.upsert(minutes);
    await rollTiers(store, minutes, 10, { concurrency: 3 });
    expect(most).to.equal(3);
    expect(inFlight).to.equal(0);
    expect((await inner.read('site-19', 'day', T0 - DAY, T0 + DAY)).length).to.equal(1);
  });

  it('takes minute rows only', async () => {
    const store = new MemoryRollupStore();
    const hourRow = mergeRollups([], 's', 'hour', T0, 10);
    let err: unknown;
    try {
      await rollTiers(store, [hourRow], 10);
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(RangeError);
  });

  it('resolves retention: null keeps every tier, absent tiers take the defaults', () => {
    const defaults = tierRetentionFromDays({ minuteRetentionDays: 1, quarterRetentionDays: 2, hourRetentionDays: 3, dayRetentionDays: 4 });
    expect(resolveRetention(null, defaults)).to.deep.equal({ minute: null, quarter: null, hour: null, day: null });
    expect(resolveRetention({ hour: null }, defaults)).to.deep.equal({ minute: DAY, quarter: 2 * DAY, hour: null, day: 4 * DAY });
  });

  describe('TierRoller (the aggregator\'s: quarters, hours and days when due or forced)', () => {
    const sites = ['a', 'b'];
    const coarse = async (store: RollupStore) => plain([
      ...(await Promise.all(sites.map((site) => store.read(site, 'quarter', T0 - DAY, T0 + DAY)))).flat(),
      ...(await Promise.all(sites.map((site) => store.read(site, 'hour', T0 - DAY, T0 + DAY)))).flat(),
      ...(await Promise.all(sites.map((site) => store.read(site, 'day', T0 - 2 * DAY, T0 + DAY)))).flat(),
    ]);
    /** Flushes of minute rows: each a few minutes of both sites, rows restated from flush to flush. */
    const flushes = (seed: number) => {
      const rand = prng(seed);
      return Array.from({ length: 12 }, (_, f) => sites.flatMap((site) => Array.from({ length: 3 }, () => (
        randomMinute(rand, site, T0 - 2 * HOUR + Math.floor(rand() * 4 * 60) * MINUTE, f)))));
    };

    it('leaves quarters, hours and days owed until the interval passes, then equal to a full roll', async () => {
      let now = T0;
      const store = new MemoryRollupStore();
      const reference = new MemoryRollupStore();
      const roller = new TierRoller(store, 10_000, { coarseIntervalMs: 5_000, now: () => now });
      const all: Rollup[] = [];
      for (const rows of flushes(7).slice(0, 3)) {
        now += 1_000;
        await store.upsert(rows);
        all.push(...rows);
        roller.owe(rows);
        expect(await roller.roll(false)).to.have.property('size', 0);
      }
      expect(await coarse(store)).to.deep.equal([]);
      expect(roller.owing).to.equal(new Set(all.map((r) => `${r.site} ${r.bucketMs}`)).size);
      // The oldest owed minute: the watermark the aggregator writes must not pass it.
      expect(roller.oldestOwedMs).to.equal(Math.min(...all.map((r) => r.bucketMs)));
      now += 5_000;
      const rolled = await roller.roll(false);
      expect([...rolled.keys()].sort()).to.deep.equal(sites);
      for (const site of sites) {
        expect([...rolled.get(site)!].sort((a, b) => a - b)).to.deep.equal([...new Set(all.filter((r) => r.site === site).map((r) => r.bucketMs))].sort((a, b) => a - b));
      }
      expect(roller.owing).to.equal(0);
      expect(roller.oldestOwedMs).to.equal(Number.POSITIVE_INFINITY);
      await reference.upsert(all);
      await rollTiers(reference, all, 10_000);
      expect(await coarse(store)).to.deep.equal(await coarse(reference));
    });

    it('rolls what is owed when forced (a checkpoint flush), and every tier then equals a full roll of every flush', async () => {
      let now = T0;
      const store = new MemoryRollupStore();
      const reference = new MemoryRollupStore();
      const roller = new TierRoller(store, 10_000, { coarseIntervalMs: 3_000, now: () => now });
      const all = flushes(11);
      for (const [i, rows] of all.entries()) {
        now += 1_000;
        await store.upsert(rows);
        roller.owe(rows);
        await roller.roll(i === all.length - 1);
      }
      expect(roller.owing).to.equal(0);
      for (const rows of all) {
        await reference.upsert(rows);
        await rollTiers(reference, rows, 10_000);
      }
      for (const tier of ['quarter', 'hour', 'day'] as const) {
        for (const site of sites) {
          expect(plain(await store.read(site, tier, T0 - 2 * DAY, T0 + DAY)), `${site} ${tier}`)
            .to.deep.equal(plain(await reference.read(site, tier, T0 - 2 * DAY, T0 + DAY)));
        }
      }
    });

    it('keeps a coarse roll that failed owed, and the next roll writes it', async () => {
      let now = T0;
      const store = new MemoryRollupStore();
      let failUpserts = 0;
      const flaky: Pick<RollupStore, 'read' | 'upsert'> = {
        read: (...a) => store.read(...a),
        upsert: async (rows) => {
          if (failUpserts > 0 && rows.some((r) => r.tier === 'hour')) {
            failUpserts--;
            throw new Error('store down');
          }
          await store.upsert(rows);
        },
      };
      const roller = new TierRoller(flaky, 10_000, { coarseIntervalMs: 1_000, now: () => now });
      const [rows] = flushes(3);
      await store.upsert(rows!);
      failUpserts = 1;
      now += 1_000;
      let failed: unknown;
      roller.owe(rows!);
      await roller.roll(false).catch((e: unknown) => { failed = e; });
      expect(String(failed)).to.contain('store down');
      // Some sites' coarse rows may be written (sites roll concurrently): all stay owed.
      expect(roller.owing).to.equal(new Set(rows!.map((r) => `${r.site} ${r.bucketMs}`)).size);
      await roller.roll(true);
      expect(roller.owing).to.equal(0);
      const reference = new MemoryRollupStore();
      await reference.upsert(rows!);
      await rollTiers(reference, rows!, 10_000);
      expect(await coarse(store)).to.deep.equal(await coarse(reference));
    });
  });
});
