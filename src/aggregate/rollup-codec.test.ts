import { expect } from 'chai';
import { rng as prng } from '../demo/demo-traffic.js';
import { HyperLogLog } from './hyperloglog.js';
import { DIMENSION_SKETCH_PRECISION, type Counts, type DimCell, type Rollup } from './rollup.js';
import { decodeRollup, decodeRollupHead, decodeRollupParts, encodeRollup, encodeRollupParts, HEAD_PART, RollupFormatError } from './rollup-codec.js';
import { emptyRollup } from './rollup-merge.js';

const T0 = Date.UTC(2026, 2, 1, 10);
const P = DIMENSION_SKETCH_PRECISION;

function sketch(ids: readonly string[], precision?: number): Uint8Array {
  const h = HyperLogLog.empty(precision);
  for (const id of ids) h.add(id);
  return h.toBytes();
}

const counts = (pageviews: number, events = 0, visits = 0, bounces = 0, durationMs = 0): Counts => ({ pageviews, events, visits, bounces, durationMs });

function randomRow(rand: () => number): Rollup {
  const int = (n: number) => Math.floor(rand() * n);
  const ids = Array.from({ length: 1 + int(50) }, () => `v${int(1000)}`);
  const keys = ['/', '/ünïcødé', '__proto__', 'constructor', '404', '', 'a\u0000b\u0000c', '😀', '(other)'];
  const cells = (withVisitors: boolean): Record<string, DimCell> => Object.fromEntries(
    Array.from({ length: int(keys.length) }, (_, i) => [keys[i]!, {
      ...counts(int(1e6), int(50), int(20) - 10, int(7) - 3, int(1e9)),
      ...(withVisitors && keys[i] !== '(other)' ? { visitors: sketch(ids.slice(0, 1 + int(10)), P) } : {}),
    }]),
  );
  return {
    ...emptyRollup('site-1', 'hour', T0),
    totals: counts(int(1e9), int(1e6), int(1e5), -int(10), int(2 ** 40)),
    visitors: sketch(ids),
    dims: { page: cells(true), exit_page: cells(false), utm_campaign: cells(true) },
    revenue: JSON.parse(`{"purchase": {"EUR": ${rand() * 1000}, "JPY": 12345678}, "__proto__": {"USD": 0.1}}`) as Rollup['revenue'],
    bots: int(1000),
  };
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
function plain(row: Rollup): unknown {
  return JSON.parse(JSON.stringify(row, (_k, v: unknown) => (v instanceof Uint8Array ? hex(v) : v)));
}

function expectFormatError(bytes: Uint8Array, pattern?: RegExp): void {
  let err: unknown;
  try {
    decodeRollup('s', 'hour', T0, bytes);
  } catch (e) {
    err = e;
  }
  expect(err, `decoded ${hex(bytes).slice(0, 80)}`).to.be.instanceOf(RollupFormatError);
  if (pattern) expect((err as Error).message).to.match(pattern);
}

describe('rollup codec', () => {
  it('round-trips rows exactly: counts, signs, sketches, keys, revenue, bots', () => {
    const rand = prng(1);
    for (let i = 0; i < 50; i++) {
      const row = randomRow(rand);
      const back = decodeRollup(row.site, row.tier, row.bucketMs, encodeRollup(row));
      expect(plain(back)).to.deep.equal(plain(row));
      expect(Object.keys(back.dims.page ?? {})).to.deep.equal(Object.keys(row.dims.page ?? {}));
      if (row.dims.page && Object.hasOwn(row.dims.page, '__proto__')) {
        expect(Object.getOwnPropertyDescriptor(back.dims.page, '__proto__')).to.not.equal(undefined);
      }
      expect(Object.getOwnPropertyDescriptor(back.revenue, '__proto__')?.value).to.deep.equal({ USD: 0.1 });
      // Stable bytes: a decoded row encodes to the blob it came from.
      expect(hex(encodeRollup(back))).to.equal(hex(encodeRollup(row)));
    }
  });

  it('round-trips extremes: ±(2^52 − 1), dense sketches, an empty row', () => {
    const big = 2 ** 52 - 1;
    const dense = HyperLogLog.empty();
    for (let i = 0; i < 20_000; i++) dense.add(`d${i}`);
    const row: Rollup = {
      ...emptyRollup('s', 'day', Date.UTC(2026, 0, 1)),
      totals: counts(big, 0, -big, -1, big),
      visitors: dense.toBytes(),
      bots: Number.MAX_SAFE_INTEGER,
    };
    expect(plain(decodeRollup('s', 'day', row.bucketMs, encodeRollup(row)))).to.deep.equal(plain(row));
    const empty = emptyRollup('s', 'minute', T0);
    const blob = encodeRollup(empty);
    expect(blob.length).to.be.below(20);
    expect(plain(decodeRollup('s', 'minute', T0, blob))).to.deep.equal(plain(empty));
  });

  it('refuses to encode what it could not decode faithfully', () => {
    const base = emptyRollup('s', 'hour', T0);
    const bad: Array<[string, Rollup]> = [
      ['fractional count', { ...base, totals: counts(1.5) }],
      ['count beyond 2^52', { ...base, totals: counts(2 ** 52) }],
      ['NaN duration', { ...base, totals: counts(0, 0, 0, 0, Number.NaN) }],
      ['negative bots', { ...base, bots: -1 }],
      ['infinite revenue', { ...base, revenue: { buy: { EUR: Number.POSITIVE_INFINITY } } }],
      ['no sketch', { ...base, visitors: new Uint8Array(0) }],
      ['cell sketch at p=14', { ...base, dims: { os: { Linux: { ...counts(1), visitors: sketch(['x']) } } } }],
    ];
    for (const [name, row] of bad) expect(() => encodeRollup(row), name).to.throw(RangeError);
  });

  describe('decoding malformed blobs', () => {
    const blob = encodeRollup(randomRow(prng(2)));

    it('rejects every truncation', () => {
      for (let n = 0; n < blob.length; n++) expectFormatError(blob.subarray(0, n));
    });

    it('rejects trailing bytes, unknown versions and JSON', () => {
      expectFormatError(Buffer.concat([blob, Buffer.from([0])]), /1 trailing bytes/);
      expectFormatError(Buffer.from([2, ...blob.subarray(1)]), /unknown version 2/);
      expectFormatError(Buffer.from('{"totals":{}}'), /unknown version/);
    });

    it('rejects counts that announce more than the blob holds, before allocating for them', () => {
      const head = encodeRollup(emptyRollup('s', 'hour', T0));
      // Replace the trailing "0 dimensions, 0 revenue events" with a dimension count of 2^53 − 1.
      const huge = Buffer.concat([head.subarray(0, head.length - 2), Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]), Buffer.from([0])]);
      expectFormatError(huge, /dimension count 9007199254740991 exceeds/);
      const tooLong = Buffer.concat([head.subarray(0, head.length - 2), Buffer.alloc(9, 0xff)]);
      expectFormatError(tooLong, /longer than 8 bytes/);
    });

    it('rejects duplicate keys, bad UTF-8, unknown flags, non-minimal varints and sketches of the wrong precision', () => {
      const withCell = (key: Buffer, flags = 0, sketchBytes?: Uint8Array) => {
        const head = encodeRollup(emptyRollup('s', 'hour', T0));
        const parts = [head.subarray(0, head.length - 2), Buffer.from([1, 4]), Buffer.from('page'), Buffer.from([1, key.length]), key, Buffer.from([flags, 2, 0, 0, 0, 0])];
        if (sketchBytes) parts.push(Buffer.from([sketchBytes.length]), Buffer.from(sketchBytes));
        parts.push(Buffer.from([0]));
        return Buffer.concat(parts);
      };
      // The builder itself makes a valid blob.
      expect(decodeRollup('s', 'hour', T0, withCell(Buffer.from('/a'))).dims.page).to.deep.equal({ '/a': counts(1) });
      expectFormatError(withCell(Buffer.from([0xc3, 0x28])), /not valid UTF-8/);
      expectFormatError(withCell(Buffer.from('/a'), 2), /unknown cell flags/);
      expectFormatError(withCell(Buffer.from('/a'), 1, sketch(['x'])), /precision 14, expected 11/);
      expectFormatError(withCell(Buffer.from('/a'), 1, Uint8Array.from([9, 9])), /not a sketch/);
      const head = encodeRollup(emptyRollup('s', 'hour', T0));
      const emptyPage = Buffer.from([4, ...Buffer.from('page'), 0]);
      expectFormatError(Buffer.concat([head.subarray(0, head.length - 2), Buffer.from([2]), emptyPage, emptyPage, Buffer.from([0])]), /dimension "page" repeated/);
      const nonMinimal = Buffer.from(encodeRollup(emptyRollup('s', 'hour', T0)));
      expectFormatError(Buffer.concat([nonMinimal.subarray(0, 1), Buffer.from([0x80, 0x00]), nonMinimal.subarray(2)]), /not minimally encoded/);
    });

    it('rejects a repeated cell key', () => {
      const one = encodeRollup({ ...emptyRollup('s', 'hour', T0), dims: { page: { '/a': counts(1) } } });
      // page has 1 cell: bump the count to 2 and append a copy of the cell.
      const cellStart = one.indexOf(Buffer.from('page')) + 4;
      const cell = one.subarray(cellStart + 1, one.length - 1);
      const two = Buffer.concat([one.subarray(0, cellStart), Buffer.from([2]), cell, cell, Buffer.from([0])]);
      expectFormatError(two, /cell "\/a" of page repeated/);
    });

    it('either decodes a mutated blob into a row that round-trips, or fails with a RollupFormatError', () => {
      const rand = prng(3);
      for (let i = 0; i < 3000; i++) {
        const copy = Buffer.from(blob);
        for (let k = 1 + Math.floor(rand() * 3); k > 0; k--) copy[Math.floor(rand() * copy.length)] = Math.floor(rand() * 256);
        try {
          const row = decodeRollup('s', 'hour', T0, copy);
          expect(plain(decodeRollup('s', 'hour', T0, encodeRollup(row)))).to.deep.equal(plain(row));
        } catch (e) {
          expect(e).to.be.instanceOf(RollupFormatError);
        }
      }
    });
  });

  it('refuses an identity that is not a bucket start', () => {
    expect(() => decodeRollup('s', 'hour', T0 + 60_000, encodeRollup(emptyRollup('s', 'hour', T0)))).to.throw(RangeError);
  });
});

describe('rollup codec: parts', () => {
  /** Parts as a store keeps them: each a copy of its own, looked up by name. */
  function stored(row: Rollup): { head: Uint8Array; part: (name: string) => Uint8Array | undefined; names: string[] } {
    const p = encodeRollupParts(row);
    const dims = new Map(p.dims.map(([name, blob]) => [name, Uint8Array.from(blob)]));
    return { head: Uint8Array.from(p.head), part: (name) => dims.get(name), names: p.dims.map(([name]) => name) };
  }

  it('round-trip rows exactly, as the whole-row blob does, and give stable bytes', () => {
    const rand = prng(2);
    for (let i = 0; i < 50; i++) {
      const row = randomRow(rand);
      const s = stored(row);
      expect(s.names).to.deep.equal(Object.keys(row.dims));
      const back = decodeRollupParts(row.site, row.tier, row.bucketMs, s.head, s.part);
      expect(plain(back)).to.deep.equal(plain(row));
      expect(Object.getOwnPropertyDescriptor(back.revenue, '__proto__')?.value).to.deep.equal({ USD: 0.1 });
      const again = encodeRollupParts(back);
      expect(hex(again.head)).to.equal(hex(s.head));
      expect(again.dims.map(([n, b]) => [n, hex(b)])).to.deep.equal(encodeRollupParts(row).dims.map(([n, b]) => [n, hex(b)]));
    }
  });

  it('decode only the dimensions asked for, and never ask for others', () => {
    const row = randomRow(prng(3));
    const s = stored(row);
    const asked: string[] = [];
    const part = (name: string) => {
      asked.push(name);
      return s.part(name);
    };
    const back = decodeRollupParts(row.site, row.tier, row.bucketMs, s.head, part, new Set(['exit_page', 'city']));
    expect(asked).to.deep.equal(['exit_page']);
    expect(plain(back)).to.deep.equal(plain({ ...row, dims: { exit_page: row.dims.exit_page } }));
    expect(Object.keys(decodeRollupParts(row.site, row.tier, row.bucketMs, s.head, () => undefined, new Set()).dims)).to.deep.equal([]);
  });

  it('store the visitors count in the head: exact, and what countOf then answers', () => {
    for (const n of [0, 7, 5_000, 40_000]) {
      const h = HyperLogLog.empty();
      for (let i = 0; i < n; i++) h.add(`c${i}`);
      const row = { ...emptyRollup('s', 'day', Date.UTC(2026, 0, 1)), visitors: h.toBytes() };
      const head = decodeRollupHead('s day', stored(row).head);
      expect(head.visitorCount, `${n}`).to.equal(h.count());
      expect(HyperLogLog.countOf(head.visitors)).to.equal(h.count());
    }
  });

  it('round-trip dense visitor sketches exactly', () => {
    const rand = prng(6);
    for (const n of [5_000, 40_000, 2_000_000]) {
      const h = HyperLogLog.empty();
      for (let i = 0; i < n; i++) h.add(`v-${i}-${rand()}`);
      const bytes = h.toBytes();
      expect(bytes[1], `${n} is dense`).to.equal(2);
      const row = { ...emptyRollup('s', 'day', Date.UTC(2026, 0, 1)), visitors: bytes };
      const s = stored(row);
      const back = decodeRollupParts('s', 'day', row.bucketMs, s.head, s.part);
      expect(hex(back.visitors)).to.equal(hex(bytes));
      expect(HyperLogLog.countOf(back.visitors)).to.equal(h.count());
    }
  });

  it('read heads written byte for byte as version 1 says, and refuse the reserved version 2', () => {
    // An empty row: totals, bots, count 0, an empty sparse sketch, no revenue, no dimensions.
    const v1 = Uint8Array.from([1, 0, 0, 0, 0, 0, 0, 0, 4, 1, 1, 14, 0, 0, 0]);
    expect(hex(stored(emptyRollup('s', 'hour', T0)).head)).to.equal(hex(v1));
    const head = decodeRollupHead('x', v1);
    expect(plain({ ...emptyRollup('s', 'hour', T0), totals: head.totals, visitors: head.visitors, revenue: head.revenue, bots: head.bots })).to.deep.equal(plain(emptyRollup('s', 'hour', T0)));
    expect(head.dimensions).to.deep.equal([]);
    expect(() => decodeRollupHead('x', Uint8Array.from([2, ...v1.subarray(1)]))).to.throw(RollupFormatError, /unknown head version 2/);
  });

  it('keep dimensions outside the known list by name, and refuse a dimension named like the head', () => {
    const row = { ...emptyRollup('s', 'hour', T0), dims: { page: { '/': counts(1) }, 'some new dimension': { x: counts(2) } } } as unknown as Rollup;
    const s = stored(row);
    expect(plain(decodeRollupParts('s', 'hour', T0, s.head, s.part))).to.deep.equal(plain(row));
    const named = { ...emptyRollup('s', 'hour', T0), dims: { [HEAD_PART]: { x: counts(1) } } } as unknown as Rollup;
    expect(() => encodeRollupParts(named)).to.throw(RangeError, /cannot be named/);
  });

  it('fail with a RollupFormatError on a missing part, a malformed head or part, never anything else', () => {
    const row = randomRow(prng(4));
    const s = stored(row);
    const name = s.names[0]!;
    expect(() => decodeRollupParts(row.site, row.tier, row.bucketMs, s.head, (n) => (n === name ? undefined : s.part(n)))).to.throw(RollupFormatError, new RegExp(`part "${name}" is missing`));
    for (let n = 0; n < s.head.length; n++) {
      expect(() => decodeRollupParts(row.site, row.tier, row.bucketMs, s.head.subarray(0, n), s.part), `head cut at ${n}`).to.throw(RollupFormatError);
    }
    const dim = s.part(name)!;
    for (let n = 0; n < dim.length; n++) {
      const cut = (p: string) => (p === name ? dim.subarray(0, n) : s.part(p));
      expect(() => decodeRollupParts(row.site, row.tier, row.bucketMs, s.head, cut), `part cut at ${n}`).to.throw(RollupFormatError);
    }
    expect(() => decodeRollupParts(row.site, row.tier, row.bucketMs, Uint8Array.from([9, ...s.head.subarray(1)]), s.part)).to.throw(RollupFormatError, /unknown head version 9/);
    // The last byte of this head is the code of its last dimension.
    const lastCode = Uint8Array.from(s.head);
    lastCode[lastCode.length - 1] = 99;
    expect(() => decodeRollupHead('x', lastCode)).to.throw(RollupFormatError, /unknown dimension code 99/);
    const rand = prng(5);
    for (let i = 0; i < 1000; i++) {
      const head = Uint8Array.from(s.head);
      head[Math.floor(rand() * head.length)] = Math.floor(rand() * 256);
      try {
        decodeRollupParts(row.site, row.tier, row.bucketMs, head, s.part);
      } catch (e) {
        expect(e).to.be.instanceOf(RollupFormatError);
      }
    }
  });
});
