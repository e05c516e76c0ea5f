import { expect } from 'chai';
import { rng as prng } from '../demo/demo-traffic.js';
import { HyperLogLog } from './hyperloglog.js';
import { DIMENSION_SKETCH_PRECISION, OTHER_KEY, type Counts, type DimCell, type Rollup } from './rollup.js';
import { capDimension, emptyCell, emptyRollup, mergeRollups, RollupAccumulator, type MutableDimCell } from './rollup-merge.js';

const T0 = Date.UTC(2026, 2, 1);
const MINUTE = 60_000;
const P = DIMENSION_SKETCH_PRECISION;

function sketch(ids: readonly string[], precision?: number): Uint8Array {
  const h = HyperLogLog.empty(precision);
  for (const id of ids) h.add(id);
  return h.toBytes();
}

const counts = (pageviews: number, events = 0, visits = 0, bounces = 0, durationMs = 0): Counts => ({ pageviews, events, visits, bounces, durationMs });

/** A random minute row: visitors from a small pool so buckets overlap; a few dimensions; revenue in cents. */
function randomRow(rand: () => number, site: string, minute: number): Rollup {
  const int = (n: number) => Math.floor(rand() * n);
  const visitors = Array.from({ length: 1 + int(30) }, () => `visitor-${int(200)}`);
  const pages: Record<string, DimCell> = {};
  for (let i = int(6); i > 0; i--) {
    const key = ['/', '/a', '/b', '/c', '__proto__', 'constructor', '/d'][int(7)]!;
    pages[key] = { ...counts(1 + int(9), int(3), int(3), int(2) - 1, int(5000)), visitors: sketch(visitors.slice(0, 1 + int(5)), P) };
  }
  const exits: Record<string, DimCell> = {};
  for (let i = int(4); i > 0; i--) exits[['/', '/a', '/x'][int(3)]!] = counts(0, 0, int(5) - 2);
  return {
    site, tier: 'minute', bucketMs: T0 + minute * MINUTE,
    totals: counts(int(100), int(20), int(10), int(5) - 1, int(100_000)),
    visitors: sketch(visitors),
    dims: {
      page: pages,
      exit_page: exits,
      ...(rand() < 0.5 ? { country: { FR: { ...counts(int(9) + 1, 0, 1, 1, 0), visitors: sketch(visitors.slice(0, 2), P) } } } : {}),
    },
    revenue: rand() < 0.5 ? { purchase: { EUR: int(10_000) / 100, USD: 0.1 } } : {},
    bots: int(4),
  };
}

/** A row as JSON-comparable values (byte arrays as hex). */
function plain(row: Rollup): unknown {
  return JSON.parse(JSON.stringify(row, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v)));
}

function shuffle<T>(items: readonly T[], rand: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe('rollup merge', () => {
  describe('mergeRollups', () => {
    it('is commutative and associative: any order and grouping of the rows gives the same row', () => {
      const rand = prng(1);
      const rows = Array.from({ length: 15 }, (_, m) => randomRow(rand, 's', m));
      const direct = mergeRollups(rows, 's', 'quarter', T0, 1000);
      for (let trial = 0; trial < 5; trial++) {
        const shuffled = shuffle(rows, rand);
        expect(plain(mergeRollups(shuffled, 's', 'quarter', T0, 1000))).to.deep.equal(plain(direct));
        // Grouped as the tier roller groups them: merge parts, then merge the parts' rows.
        const cut = 1 + Math.floor(rand() * 13);
        const parts = [shuffled.slice(0, cut), shuffled.slice(cut)].map((p) => mergeRollups(p, 's', 'minute', T0, 1000));
        expect(plain(mergeRollups(parts, 's', 'quarter', T0, 1000))).to.deep.equal(plain(direct));
      }
    });

    it('sums counts, bots and revenue exactly', () => {
      const rand = prng(2);
      const rows = Array.from({ length: 40 }, (_, m) => randomRow(rand, 's', m));
      const merged = mergeRollups(rows, 's', 'hour', T0, 3);
      const sum = (f: (r: Rollup) => number) => rows.reduce((a, r) => a + f(r), 0);
      expect(merged.totals).to.deep.equal({
        pageviews: sum((r) => r.totals.pageviews), events: sum((r) => r.totals.events), visits: sum((r) => r.totals.visits),
        bounces: sum((r) => r.totals.bounces), durationMs: sum((r) => r.totals.durationMs),
      });
      expect(merged.bots).to.equal(sum((r) => r.bots));
      const cents = sum((r) => Math.round((r.revenue.purchase?.EUR ?? 0) * 100));
      expect(merged.revenue.purchase?.EUR).to.equal(cents / 100);
      expect(merged.revenue.purchase?.USD).to.equal(Math.round(sum((r) => (r.revenue.purchase ? 1 : 0))) / 10);
      // Capping moves values into "(other)" but never loses any: each dimension still sums to its rows.
      const pageviewsOfPages = sum((r) => Object.values(r.dims.page ?? {}).reduce((a, c) => a + c.pageviews, 0));
      expect(Object.values(merged.dims.page ?? {}).reduce((a, c) => a + c.pageviews, 0)).to.equal(pageviewsOfPages);
      expect(Object.keys(merged.dims.page ?? {}).length).to.be.at.most(4);
    });

    it('unions sketches: bucket visitors at p=14, cell visitors at p=11', () => {
      const a = ['v1', 'v2', 'v3'];
      const b = ['v3', 'v4'];
      const row = (ids: string[], minute: number): Rollup => ({
        ...emptyRollup('s', 'minute', T0 + minute * MINUTE),
        visitors: sketch(ids),
        dims: { browser: { Firefox: { ...counts(ids.length), visitors: sketch(ids, P) } } },
      });
      const merged = mergeRollups([row(a, 0), row(b, 1)], 's', 'quarter', T0, 10);
      expect(HyperLogLog.fromBytes(merged.visitors).count()).to.equal(4);
      expect(Buffer.from(merged.visitors).equals(Buffer.from(sketch([...a, ...b])))).to.equal(true);
      const cell = merged.dims.browser!.Firefox!;
      expect(cell.pageviews).to.equal(5);
      expect(HyperLogLog.fromBytes(cell.visitors!, P).count()).to.equal(4);
    });

    it('refuses sketches of the wrong precision', () => {
      const wrongBucket = { ...emptyRollup('s', 'minute', T0), visitors: sketch(['x'], P) };
      expect(() => mergeRollups([wrongBucket], 's', 'minute', T0, 10)).to.throw(/precision 11, expected 14/);
      const wrongCell: Rollup = { ...emptyRollup('s', 'minute', T0), dims: { os: { Linux: { ...counts(1), visitors: sketch(['x']) } } } };
      expect(() => mergeRollups([wrongCell], 's', 'minute', T0, 10)).to.throw(/precision 14, expected 11/);
    });

    it('gives a canonical row back unchanged when merging it alone', () => {
      const rand = prng(3);
      const canonical = mergeRollups(Array.from({ length: 5 }, (_, m) => randomRow(rand, 's', m)), 's', 'minute', T0, 2);
      expect(plain(mergeRollups([canonical], 's', 'minute', T0, 2))).to.deep.equal(plain(canonical));
    });

    it('merges no rows into the empty row, and refuses a bucket that is not a tier start', () => {
      expect(plain(mergeRollups([], 's', 'day', T0, 5))).to.deep.equal(plain(emptyRollup('s', 'day', T0)));
      expect(HyperLogLog.fromBytes(emptyRollup('s', 'hour', T0).visitors).count()).to.equal(0);
      expect(() => emptyRollup('s', 'hour', T0 + MINUTE)).to.throw(RangeError);
      expect(() => mergeRollups([], 's', 'quarter', T0 + 5 * MINUTE, 5)).to.throw(RangeError);
    });

    it('keeps `__proto__` and `constructor` as plain keys through merging', () => {
      const proto = JSON.parse('{"__proto__": {"pageviews": 2, "events": 0, "visits": 1, "bounces": 1, "durationMs": 0}}') as Record<string, DimCell>;
      const row: Rollup = {
        ...emptyRollup('s', 'minute', T0),
        dims: { page: { ...proto, constructor: counts(1) } },
        revenue: JSON.parse('{"__proto__": {"EUR": 1.5}}') as Record<string, Record<string, number>>,
      };
      const merged = mergeRollups([row, { ...row, bucketMs: T0 + MINUTE }], 's', 'quarter', T0, 10);
      const page = merged.dims.page!;
      expect(Object.getPrototypeOf(page)).to.equal(Object.prototype);
      expect(Object.keys(page)).to.deep.equal(['__proto__', 'constructor']);
      expect(Object.getOwnPropertyDescriptor(page, '__proto__')?.value).to.deep.equal(counts(4, 0, 2, 2));
      expect(Object.getOwnPropertyDescriptor(merged.revenue, '__proto__')?.value).to.deep.equal({ EUR: 3 });
    });
  });

  describe('capDimension', () => {
    const cells = (entries: Array<[string, Counts]>): Record<string, DimCell> => Object.fromEntries(entries);

    it('keeps the top values by pageviews + events + |visits| and sums the rest into "(other)"', () => {
      const out = capDimension(cells([
        ['/a', counts(10)], ['/b', counts(1, 1)], ['/c', counts(0, 0, -7)], ['/d', counts(3, 0, 1, 1, 100)], ['/e', counts(2, 0, 0, 0, 5)],
      ]), 3);
      expect(Object.keys(out)).to.deep.equal(['/a', '/c', '/d', OTHER_KEY]);
      expect(out[OTHER_KEY]).to.deep.equal(counts(3, 1, 0, 0, 5));
    });

    it('breaks ties by key in code-unit order, whatever the input order', () => {
      const entries: Array<[string, Counts]> = [['b', counts(1)], ['B', counts(1)], ['a', counts(1)], ['é', counts(1)], ['z', counts(2)]];
      const rand = prng(4);
      for (let i = 0; i < 10; i++) {
        const out = capDimension(cells(shuffle(entries, rand)), 3);
        expect(Object.keys(out)).to.deep.equal(['z', 'B', 'a', OTHER_KEY]);
        expect(out[OTHER_KEY]!.pageviews).to.equal(2);
      }
    });

    it('sums a pre-existing "(other)" in, never ranks it, and gives it no sketch', () => {
      const out = capDimension({
        [OTHER_KEY]: { ...counts(100, 5), visitors: sketch(['a'], P) },
        x: { ...counts(3), visitors: sketch(['b'], P) },
        y: counts(1),
      }, 1);
      expect(Object.keys(out)).to.deep.equal(['x', OTHER_KEY]);
      expect(out[OTHER_KEY]).to.deep.equal(counts(101, 5));
      expect(out.x!.visitors).to.be.instanceOf(Uint8Array);
      const untouched = capDimension({ [OTHER_KEY]: counts(4), x: counts(3) }, 5);
      expect(untouched).to.deep.equal({ x: counts(3), [OTHER_KEY]: counts(4) });
    });

    it('drops cells that add nothing, and an "(other)" that sums to zero', () => {
      const out = capDimension(cells([['/a', counts(0, 0, 1)], ['/b', counts(0)], ['/c', counts(0, 0, -1)], ['/d', counts(0, 0, 1)]]), 2);
      expect(out).to.deep.equal({ '/a': counts(0, 0, 1), '/c': counts(0, 0, -1), [OTHER_KEY]: counts(0, 0, 1) });
      expect(capDimension(cells([['/a', counts(0, 0, 1)], ['/b', counts(0, 0, 1)], ['/c', counts(0, 0, -1)]]), 1))
        .to.deep.equal({ '/a': counts(0, 0, 1) });
    });

    it('encodes live cells\' sketches and leaves its input untouched', () => {
      const live = new Map<string, MutableDimCell>();
      const a = emptyCell(true);
      a.pageviews = 2;
      a.visitors!.add('v1');
      live.set('a', a);
      const b = emptyCell(false);
      b.visits = 1;
      live.set('b', b);
      const out = capDimension(live, 10);
      expect(HyperLogLog.fromBytes(out.a!.visitors!, P).count()).to.equal(1);
      expect(out.b).to.deep.equal(counts(0, 0, 1));
      expect(live.get('a')!.visitors!.count()).to.equal(1);
    });

    it('keeps `__proto__` as an own key and refuses a cap below 1', () => {
      const input = new Map<string, MutableDimCell>([['__proto__', { ...emptyCell(false), pageviews: 1 }]]);
      const out = capDimension(input, 1);
      expect(Object.keys(out)).to.deep.equal(['__proto__']);
      expect(Object.getPrototypeOf(out)).to.equal(Object.prototype);
      expect(() => capDimension(input, 0)).to.throw(RangeError);
    });
  });

  describe('RollupAccumulator', () => {
    it('exposes live totals, sketches and cells, and finish does not consume it', () => {
      const rand = prng(5);
      const rows = Array.from({ length: 6 }, (_, m) => randomRow(rand, 's', m));
      const acc = new RollupAccumulator('s', 'quarter', T0);
      for (const r of rows.slice(0, 3)) acc.add(r);
      expect(acc.rows).to.equal(3);
      expect(acc.totals.pageviews).to.equal(rows.slice(0, 3).reduce((a, r) => a + r.totals.pageviews, 0));
      const first = acc.finish(50);
      for (const r of rows.slice(3)) acc.add(r);
      expect(plain(acc.finish(50))).to.deep.equal(plain(mergeRollups(rows, 's', 'quarter', T0, 50)));
      expect(plain(first)).to.deep.equal(plain(mergeRollups(rows.slice(0, 3), 's', 'quarter', T0, 50)));
      expect(acc.visitors.count()).to.equal(HyperLogLog.fromBytes(acc.finish(50).visitors).count());
      expect([...acc.cells('page').keys()].sort()).to.deep.equal(Object.keys(acc.finish(50).dims.page ?? {}).sort());
      expect(acc.cells('city').size).to.equal(0);
    });
  });
});
