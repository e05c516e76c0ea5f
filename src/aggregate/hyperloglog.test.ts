import { expect } from 'chai';
import { HyperLogLog, HyperLogLogFormatError, PRECISION, REGISTERS, STANDARD_ERROR, standardErrorOf } from './hyperloglog.js';
import { DIMENSION_SKETCH_PRECISION } from './rollup.js';
import { rng as prng } from '../demo/demo-traffic.js';

/** Visitor ids as ingest makes them: 32 hex chars of a keyed hash. */
function hexIds(n: number, seed: number): string[] {
  const rand = prng(seed);
  const word = () => Math.floor(rand() * 2 ** 32).toString(16).padStart(8, '0');
  return Array.from({ length: n }, () => word() + word() + word() + word());
}

const plainIds = (n: number, prefix = 'visitor-') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

function sketchOf(values: Iterable<string>, precision?: number): HyperLogLog {
  const h = HyperLogLog.empty(precision);
  for (const v of values) h.add(v);
  return h;
}

const bytesOf = (h: HyperLogLog) => Buffer.from(h.toBytes()).toString('hex');

describe('HyperLogLog', () => {
  it('documents its precision: 16384 registers, standard error ≈ 0.81%', () => {
    expect(REGISTERS).to.equal(16384);
    expect(STANDARD_ERROR).to.be.closeTo(0.0081, 0.0001);
  });

  it('counts an empty sketch as zero and round-trips it', () => {
    const empty = HyperLogLog.empty();
    expect(empty.count()).to.equal(0);
    expect(HyperLogLog.fromBytes(empty.toBytes()).count()).to.equal(0);
  });

  for (const n of [1, 2, 10, 100, 300, 1000]) {
    it(`is exact (±1) for ${n} distinct values, hex and plain, whatever the repeats`, () => {
      const hex = hexIds(n, n);
      const plain = plainIds(n);
      expect(Math.abs(sketchOf([...hex, ...hex.slice(0, n >> 1)]).count() - n)).to.be.at.most(1);
      expect(Math.abs(sketchOf([...plain, ...plain]).count() - n)).to.be.at.most(1);
    });
  }

  for (const n of [10_000, 100_000, 1_000_000]) {
    it(`stays within 3 standard errors at ${n} distinct values`, function () {
      this.timeout(60_000);
      for (const [name, ids] of [['hex', hexIds(n, 7)], ['plain', plainIds(n, `v${n}-`)]] as const) {
        const estimate = sketchOf(ids).count();
        expect(Math.abs(estimate - n) / n, `${name}: ${estimate}`).to.be.at.most(3 * STANDARD_ERROR);
      }
    });
  }

  describe('merge', () => {
    const cases: Array<[string, () => [HyperLogLog, HyperLogLog, HyperLogLog]]> = [
      ['sparse', () => [sketchOf(hexIds(50, 1)), sketchOf(hexIds(80, 2)), sketchOf(hexIds(30, 3))]],
      ['sparse and dense', () => [sketchOf(hexIds(20_000, 4)), sketchOf(hexIds(300, 5)), sketchOf(plainIds(3000))]],
      ['dense', () => [sketchOf(hexIds(20_000, 6)), sketchOf(hexIds(30_000, 7)), sketchOf(plainIds(9000))]],
    ];
    for (const [name, make] of cases) {
      it(`is commutative, associative and idempotent (${name})`, () => {
        const [a, b, c] = make();
        expect(bytesOf(a.clone().merge(b))).to.equal(bytesOf(b.clone().merge(a)));
        expect(bytesOf(a.clone().merge(b).merge(c))).to.equal(bytesOf(a.clone().merge(b.clone().merge(c))));
        expect(bytesOf(a.clone().merge(a))).to.equal(bytesOf(a));
        expect(bytesOf(a.clone().merge(b).merge(b))).to.equal(bytesOf(a.clone().merge(b)));
        expect(bytesOf(a.clone().merge(HyperLogLog.empty()))).to.equal(bytesOf(a));
      });
    }

    it('gives the sketch of the union, crossing from sparse to dense', () => {
      const a = hexIds(3000, 8);
      const b = hexIds(3000, 9);
      const merged = sketchOf(a).merge(sketchOf(b));
      expect(bytesOf(merged)).to.equal(bytesOf(sketchOf([...a, ...b])));
      expect(merged.toBytes().length).to.equal(3 + REGISTERS);
    });

    it('of 1440 one-minute sketches equals the sketch of the day', function () {
      this.timeout(60_000);
      const rand = prng(42);
      const pool = hexIds(40_000, 10);
      const minutes: string[][] = [];
      for (let m = 0; m < 1440; m++) {
        const size = 1 + Math.floor(rand() * 60);
        minutes.push(Array.from({ length: size }, () => pool[Math.floor(rand() * pool.length)]!));
      }
      const sketches = minutes.map((vs) => HyperLogLog.fromBytes(sketchOf(vs).toBytes()));
      const forward = HyperLogLog.empty();
      for (const s of sketches) forward.merge(s);
      const backward = HyperLogLog.empty();
      for (const s of [...sketches].reverse()) backward.merge(s);
      const day = sketchOf(minutes.flat());
      expect(bytesOf(forward)).to.equal(bytesOf(day));
      expect(bytesOf(backward)).to.equal(bytesOf(day));
      const exact = new Set(minutes.flat()).size;
      expect(Math.abs(day.count() - exact) / exact).to.be.at.most(3 * STANDARD_ERROR);
    });
  });

  describe('bytes', () => {
    it('round-trip sparse and dense sketches to the same bytes and count', () => {
      for (const s of [sketchOf(hexIds(5, 11)), sketchOf(plainIds(4000)), sketchOf(hexIds(50_000, 12))]) {
        const back = HyperLogLog.fromBytes(s.toBytes());
        expect(bytesOf(back)).to.equal(bytesOf(s));
        expect(back.count()).to.equal(s.count());
      }
    });

    it('read Buffers (as drivers return blobs) without writing back into them', () => {
      const blob = Buffer.from(sketchOf(hexIds(10_000, 16)).toBytes());
      const before = blob.toString('hex');
      HyperLogLog.fromBytes(blob).merge(sketchOf(hexIds(10_000, 17)));
      expect(blob.toString('hex')).to.equal(before);
    });

    it('reject malformed blobs with a HyperLogLogFormatError', () => {
      const sparse = sketchOf(hexIds(20, 13)).toBytes();
      const dense = sketchOf(hexIds(10_000, 14)).toBytes();
      const edited = (b: Uint8Array, at: number, value: number) => {
        const copy = new Uint8Array(b);
        copy[at] = value;
        return copy;
      };
      const bad: Array<[string, Uint8Array]> = [
        ['empty', new Uint8Array(0)],
        ['header only', new Uint8Array([1, 1])],
        ['unknown version', edited(sparse, 0, 9)],
        ['unknown format', edited(sparse, 1, 7)],
        ['precision too small', edited(sparse, 2, 3)],
        ['precision too large', edited(sparse, 2, 19)],
        ['dense of another precision', edited(dense, 2, 13)],
        ['truncated sparse', sparse.slice(0, sparse.length - 1)],
        ['trailing bytes', Uint8Array.from([...sparse, 0])],
        ['count too large', Uint8Array.from([1, 1, 14, 0xff, 0xff, 0x03])],
        ['zero rho', Uint8Array.from([1, 1, 14, 1, 64])],
        ['repeated index', Uint8Array.from([1, 1, 14, 2, 65, 1])],
        ['truncated dense', dense.slice(0, dense.length - 1)],
        ['register out of range', edited(dense, 100, 52)],
        ['JSON', new TextEncoder().encode('{"registers":[]}')],
      ];
      for (const [name, bytes] of bad) {
        expect(() => HyperLogLog.fromBytes(bytes), name).to.throw(HyperLogLogFormatError);
        // Merging a blob checks it as parsing does, into a sparse and into a dense sketch.
        expect(() => sketchOf(hexIds(3, 1)).mergeBytes(bytes), `merge ${name}`).to.throw(HyperLogLogFormatError);
        expect(() => sketchOf(hexIds(9_000, 2)).mergeBytes(bytes), `merge ${name} into dense`).to.throw(HyperLogLogFormatError);
        // countOf reads a sparse blob only up to its pair count (its count does not depend on the pairs).
        if (!['truncated sparse', 'trailing bytes', 'zero rho', 'repeated index'].includes(name)) {
          expect(() => HyperLogLog.countOf(bytes), `count ${name}`).to.throw(HyperLogLogFormatError);
        }
      }
      // Every register position, every value above the largest rho: a word-wise merge sees them all.
      for (const at of [3, 4, 5, 6, 7, 1000, dense.length - 1]) {
        for (const value of [52, 127, 128, 255]) {
          expect(() => sketchOf(hexIds(9_000, 2)).mergeBytes(edited(dense, at, value)), `${at} = ${value}`).to.throw(HyperLogLogFormatError, /above 51/);
        }
      }
    });

    it('either decode mutated blobs into a valid sketch or reject them, never anything else', () => {
      const rand = prng(99);
      const original = sketchOf(hexIds(200, 15)).toBytes();
      for (let i = 0; i < 2000; i++) {
        const copy = new Uint8Array(original);
        copy[Math.floor(rand() * copy.length)] = Math.floor(rand() * 256);
        try {
          const s = HyperLogLog.fromBytes(copy);
          expect(HyperLogLog.fromBytes(s.toBytes()).count()).to.equal(s.count());
        } catch (e) {
          expect(e).to.be.instanceOf(HyperLogLogFormatError);
        }
      }
    });
  });

  describe('blobs without parsing', () => {
    const shapes: Array<[string, () => HyperLogLog]> = [
      ['empty', () => HyperLogLog.empty()],
      ['sparse', () => sketchOf(hexIds(300, 31))],
      ['plain ids, sparse', () => sketchOf(plainIds(3000, 'b-'))],
      ['dense', () => sketchOf(hexIds(30_000, 32))],
      ['p = 11 sparse', () => sketchOf(hexIds(200, 33), DIMENSION_SKETCH_PRECISION)],
      ['p = 11 dense', () => sketchOf(hexIds(5_000, 34), DIMENSION_SKETCH_PRECISION)],
    ];

    it('mergeBytes equals merge of the parsed blob, for every pair of shapes, from a Buffer at any offset', () => {
      for (const [na, a] of shapes) {
        for (const [nb, b] of shapes) {
          const x = a();
          const y = b();
          if (x.precision !== y.precision) continue;
          const expected = bytesOf(x.clone().merge(y));
          // As drivers hand blobs out: a view into a larger buffer, its registers word-aligned
          // (offset 1: 1 + 3 header bytes) or not (offset 3).
          for (const offset of [1, 3]) {
            const blob = Buffer.concat([Buffer.alloc(offset, 9), Buffer.from(y.toBytes()), Buffer.from([9])]).subarray(offset, offset + y.toBytes().length);
            const before = Buffer.from(blob).toString('hex');
            expect(bytesOf(x.clone().mergeBytes(blob)), `${na} ∪ ${nb} at ${offset}`).to.equal(expected);
            expect(blob.toString('hex'), 'the blob is not written to').to.equal(before);
          }
        }
      }
      expect(() => sketchOf(hexIds(3, 1)).mergeBytes(sketchOf(hexIds(3, 1), DIMENSION_SKETCH_PRECISION).toBytes())).to.throw(HyperLogLogFormatError, /precision 11, expected 14/);
    });

    it('countOf equals the parsed count; a remembered count is returned as is', () => {
      for (const [name, make] of shapes) {
        const h = make();
        const blob = h.toBytes();
        expect(HyperLogLog.countOf(blob), name).to.equal(h.count());
        expect(HyperLogLog.countOf(blob), `${name}, again`).to.equal(h.count());
      }
      const blob = sketchOf(hexIds(10, 35)).toBytes();
      HyperLogLog.rememberCount(blob, 12345);
      expect(HyperLogLog.countOf(blob)).to.equal(12345);
      // Another blob of the same bytes is counted on its own.
      expect(HyperLogLog.countOf(Uint8Array.from(blob))).to.equal(10);
    });

    it('entryOf and addEntry add what add does', () => {
      for (const precision of [14, DIMENSION_SKETCH_PRECISION]) {
        const ids = [...hexIds(3_000, 36), ...plainIds(3_000, 'e-')];
        const byAdd = sketchOf(ids, precision);
        const byEntry = HyperLogLog.empty(precision);
        for (const id of ids) byEntry.addEntry(HyperLogLog.entryOf(id));
        expect(bytesOf(byEntry)).to.equal(bytesOf(byAdd));
      }
    });

    it('stay sparse exactly as long as the pairs fit, whatever the order of adds and merges', () => {
      // 4096 pairs at p = 14 is the most a sparse sketch holds; one more makes it dense.
      const ids = hexIds(6_000, 37);
      const one = HyperLogLog.empty();
      const sizes: number[] = [];
      for (const id of ids) {
        one.add(id);
        sizes.push(one.toBytes()[1]!);
      }
      const turn = sizes.indexOf(2);
      expect(turn).to.be.greaterThan(4000);
      const halves = sketchOf(ids.slice(0, turn)).merge(sketchOf(ids.slice(turn - 100, turn)));
      expect(halves.toBytes()[1]).to.equal(1);
      expect(bytesOf(halves.mergeBytes(sketchOf(ids.slice(turn, turn + 1)).toBytes()))).to.equal(bytesOf(sketchOf(ids.slice(0, turn + 1))));
    });
  });

  describe('precision', () => {
    const P = DIMENSION_SKETCH_PRECISION;

    it('defaults to 14 and writes the precision in its header', () => {
      expect(HyperLogLog.empty().precision).to.equal(PRECISION);
      expect(HyperLogLog.empty().toBytes()[2]).to.equal(14);
      const small = sketchOf(hexIds(10, 1), P);
      expect(small.precision).to.equal(P);
      expect(small.toBytes()[2]).to.equal(P);
      expect(HyperLogLog.fromBytes(small.toBytes()).precision).to.equal(P);
    });

    it('refuses precisions outside [4, 18]', () => {
      for (const p of [0, 3, 19, 11.5, Number.NaN]) expect(() => HyperLogLog.empty(p), String(p)).to.throw(RangeError);
    });

    it(`at p = ${P} goes dense at 512 pairs into 2048 registers and stays within 3 standard errors`, function () {
      this.timeout(60_000);
      const sparse = sketchOf(hexIds(400, 21), P);
      expect(sparse.toBytes()[1]).to.equal(1);
      expect(Math.abs(sparse.count() - 400)).to.be.at.most(1);
      const dense = sketchOf(hexIds(600, 22), P);
      expect(dense.toBytes().length).to.equal(3 + 2048);
      for (const n of [1_000, 20_000, 200_000]) {
        const estimate = sketchOf(hexIds(n, n), P).count();
        expect(Math.abs(estimate - n) / n, `${n}: ${estimate}`).to.be.at.most(3 * standardErrorOf(P));
      }
    });

    it(`at p = ${P} merges into the sketch of the union and round-trips dense blobs`, () => {
      const a = hexIds(700, 23);
      const b = plainIds(300);
      const merged = sketchOf(a, P).merge(sketchOf(b, P));
      expect(bytesOf(merged)).to.equal(bytesOf(sketchOf([...a, ...b], P)));
      expect(bytesOf(HyperLogLog.fromBytes(merged.toBytes(), P))).to.equal(bytesOf(merged));
    });

    it('refuses to merge sketches of different precisions, leaving both unchanged', () => {
      const big = sketchOf(hexIds(50, 24));
      const small = sketchOf(hexIds(50, 25), P);
      const [bigBefore, smallBefore] = [bytesOf(big), bytesOf(small)];
      expect(() => big.merge(small)).to.throw(RangeError, /precision 11 into one of precision 14/);
      expect(() => small.merge(big)).to.throw(RangeError);
      expect([bytesOf(big), bytesOf(small)]).to.deep.equal([bigBefore, smallBefore]);
    });

    it('rejects a blob of another precision than the one expected', () => {
      expect(() => HyperLogLog.fromBytes(sketchOf(hexIds(5, 26), P).toBytes(), 14)).to.throw(HyperLogLogFormatError, /precision 11, expected 14/);
      expect(HyperLogLog.fromBytes(sketchOf(hexIds(5, 26)).toBytes(), 14).precision).to.equal(14);
    });

    it('keeps p = 14 bytes as they were: header [1, format, 14], 16384 dense registers', () => {
      expect(Array.from(HyperLogLog.empty().toBytes())).to.deep.equal([1, 1, 14, 0]);
      expect(sketchOf(hexIds(10_000, 27)).toBytes().length).to.equal(3 + REGISTERS);
    });
  });
});
