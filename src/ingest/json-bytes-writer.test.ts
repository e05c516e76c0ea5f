import { expect } from 'chai';
import { JsonBytesWriter } from './json-bytes-writer.js';

/** What the writer must match: UTF-8 of JSON.stringify. */
const reference = (v: unknown) => Buffer.from(JSON.stringify(v), 'utf8');

function written(write: (w: JsonBytesWriter) => void, initialBytes = 64): Buffer {
  const w = new JsonBytesWriter(initialBytes);
  write(w);
  return w.copy();
}

describe('JsonBytesWriter', () => {
  it('writes strings byte for byte as Buffer.from(JSON.stringify(s))', () => {
    const samples = [
      '', 'plain', 'with "quotes" and \\ backslash', 'tab\there\nnewline\r\b\f', '\u0000\u0001\u001f\u007f',
      'café', 'Ελληνικά', '日本語のタイトル', 'emoji 🎉 pair', '\ud83c\udf89', 'lone \ud800 high', 'lone \udc00 low',
      'ends with high \ud800', '\udbff\udfff max', 'line\u2028sep\u2029', 'x'.repeat(5000),
    ];
    for (const s of samples) expect(written((w) => w.string(s)), JSON.stringify(s)).to.deep.equal(reference(s));
  });

  it('matches JSON.stringify on random strings over the whole UTF-16 range', () => {
    let seed = 1;
    const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    for (let i = 0; i < 2_000; i++) {
      const chars: number[] = [];
      const n = next() % 40;
      for (let k = 0; k < n; k++) {
        const r = next();
        // Mostly ASCII, with surrogates (paired and not), controls and other planes mixed in.
        chars.push(r % 4 === 0 ? next() % 0x10000 : r % 4 === 1 ? 0xd800 + (next() % 0x800) : next() % 0x80);
      }
      const s = String.fromCharCode(...chars);
      expect(written((w) => w.string(s))).to.deep.equal(reference(s));
    }
  });

  it('writes numbers as JSON.stringify does, integers digit by digit', () => {
    const samples = [0, -0, 7, -7, 10, 99_999_999, 100_000_000, 100_000_001, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), 1_732_284_000_123,
      8_640_000_000_000_000, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 2 ** 53, 49.5, -1e-7, 1e21, 123.456];
    for (const n of samples) expect(written((w) => w.number(n)).toString(), String(n)).to.equal(JSON.stringify(n));
    for (let i = 0; i < 10_000; i++) {
      const n = Math.floor(Math.random() * Number.MAX_SAFE_INTEGER) * (i % 2 ? 1 : -1);
      expect(written((w) => w.number(n)).toString()).to.equal(JSON.stringify(n));
    }
  });

  it('grows past its initial size and copies out exactly what was written since the last reset', () => {
    const w = new JsonBytesWriter(64);
    w.ascii('{"a":');
    w.string('é'.repeat(100));
    w.ascii(',"b":');
    w.number(12);
    w.ascii(',"c":');
    w.json(JSON.stringify({ x: ['ü', 1, true] }));
    w.bytes(Buffer.from(',"d":null'));
    w.ascii('}');
    expect(JSON.parse(w.copy().toString('utf8'))).to.deep.equal({ a: 'é'.repeat(100), b: 12, c: { x: ['ü', 1, true] }, d: null });
    w.reset();
    w.ascii('[]');
    expect(w.copy().toString()).to.equal('[]');
    expect(w.length).to.equal(2);
  });

  it('hands over views that stay valid as the buffer grows and after it is taken', () => {
    const w = new JsonBytesWriter(64);
    w.start(16);
    const views: Buffer[] = [];
    for (let i = 0; i < 50; i++) {
      const from = w.length;
      w.json(JSON.stringify({ i, pad: 'ü'.repeat(i) }));
      views.push(w.since(from));
    }
    const all = w.take();
    w.start(16);
    w.ascii('overwrite?'.repeat(100));
    expect(views.map((v) => JSON.parse(v.toString('utf8')).i)).to.deep.equal([...Array(50).keys()]);
    expect(all.toString('utf8')).to.equal(views.map((v) => v.toString('utf8')).join(''));
  });
});
