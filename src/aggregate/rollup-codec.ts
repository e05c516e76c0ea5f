/**
 * The byte form of a rollup row (rollup.ts), as Cassandra stores it: one blob per row. The
 * row's identity (site, tier, bucketMs) is the storage key and is not repeated in the blob.
 *
 * Format, version 1 (every version ever written must stay readable; add a version, never
 * change one):
 *
 *   u8       version = 1
 *   5 × zz   totals: pageviews, events, visits, bounces, durationMs
 *   uv       bots
 *   bytes    visitors sketch (PRECISION)
 *   uv       dimension count, then per dimension:
 *     str      name
 *     uv       cell count, then per cell:
 *       str      key
 *       u8       flags (bit 0: has a visitors sketch; other bits must be 0)
 *       5 × zz   counts
 *       bytes    visitors sketch (DIMENSION_SKETCH_PRECISION), when flagged
 *   uv       revenue event count, then per event:
 *     str      event name
 *     uv       currency count, then per currency: str currency, f64 (little-endian) amount
 *
 * uv: unsigned LEB128 varint (at most 8 bytes, ≤ 2^53 − 1); zz: zigzag-encoded signed varint
 * (|n| ≤ 2^52 − 1, far beyond any count); str: uv byte length then UTF-8; bytes: uv length then
 * bytes. Integers are varints because most counts are small; a minute row with a few
 * dimensions is a few hundred bytes, most of it sketches.
 *
 * Decoding is bounded: every length and count is checked against the bytes left before
 * anything is allocated for it (each element takes at least one byte), so a blob of n bytes
 * never makes more than O(n) allocations, and a malformed blob fails with a RollupFormatError
 * that says what and where. Sketches are checked for header and precision here; their
 * registers are validated when merged (HyperLogLog.fromBytes) — the query path parses each
 * sketch once, not twice. Duplicate dimension names, cell keys or revenue keys are malformed.
 * Dimension names outside DIMENSIONS are kept (a newer writer may know more dimensions).
 * Strings are UTF-8: a lone surrogate (never in a validated string) becomes U+FFFD.
 */
import { PRECISION } from './hyperloglog.js';
import { DIMENSION_SKETCH_PRECISION, type Counts, type DimCell, type Rollup, type Tier } from './rollup.js';
import { checkBucket } from './rollup-merge.js';

export const ROLLUP_CODEC_VERSION = 1;

export class RollupFormatError extends Error {
  override readonly name = 'RollupFormatError';
}

const MAX_ZIGZAG = 2 ** 52 - 1;
const FLAG_VISITORS = 1;
const SKETCH_VERSION = 1;

class Writer {
  private buf = Buffer.allocUnsafe(256);
  private pos = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  uv(v: number, what: string): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${what} must be a non-negative safe integer, got ${v}`);
    this.ensure(8);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
  }

  zz(v: number, what: string): void {
    if (!Number.isSafeInteger(v) || Math.abs(v) > MAX_ZIGZAG) throw new RangeError(`${what} must be an integer of magnitude below 2^52, got ${v}`);
    this.uv(v >= 0 ? v * 2 : -v * 2 - 1, what);
  }

  f64(v: number, what: string): void {
    if (!Number.isFinite(v)) throw new RangeError(`${what} must be finite, got ${v}`);
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }

  str(s: string): void {
    const length = Buffer.byteLength(s, 'utf8');
    this.uv(length, 'string length');
    this.ensure(length);
    this.pos += this.buf.write(s, this.pos, 'utf8');
  }

  bytes(b: Uint8Array): void {
    this.uv(b.length, 'byte length');
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

function writeCounts(w: Writer, c: Counts, where: string): void {
  w.zz(c.pageviews, `${where} pageviews`);
  w.zz(c.events, `${where} events`);
  w.zz(c.visits, `${where} visits`);
  w.zz(c.bounces, `${where} bounces`);
  w.zz(c.durationMs, `${where} durationMs`);
}

/** Header and precision of a sketch: what the decoder checks, checked before writing. */
function checkSketch(s: Uint8Array, precision: number, what: string): Uint8Array {
  if (s.length < 3 || s[0] !== SKETCH_VERSION || (s[1] !== 1 && s[1] !== 2)) throw new RangeError(`${what} is not a sketch`);
  if (s[2] !== precision) throw new RangeError(`${what} has precision ${s[2]}, expected ${precision}`);
  return s;
}

/**
 * The blob of a row. Throws RangeError on a row that cannot be stored faithfully: counts that
 * are not safe integers (or beyond ±2^52), negative or fractional bots, non-finite revenue,
 * sketches without a sketch header or of the wrong precision.
 * The same row always gives the same bytes (keys in the row's own order).
 */
export function encodeRollup(row: Rollup): Buffer {
  const where = `rollup ${row.site} ${row.tier} ${row.bucketMs}`;
  const w = new Writer();
  w.u8(ROLLUP_CODEC_VERSION);
  writeCounts(w, row.totals, `${where} totals`);
  w.uv(row.bots, `${where} bots`);
  w.bytes(checkSketch(row.visitors, PRECISION, `${where} visitors`));
  const dims = Object.entries(row.dims).filter((e): e is [string, Readonly<Record<string, DimCell>>] => e[1] !== undefined);
  w.uv(dims.length, 'dimension count');
  for (const [name, cells] of dims) {
    w.str(name);
    const entries = Object.entries(cells);
    w.uv(entries.length, 'cell count');
    for (const [key, cell] of entries) {
      w.str(key);
      w.u8(cell.visitors ? FLAG_VISITORS : 0);
      writeCounts(w, cell, `${where} ${name}`);
      if (cell.visitors) w.bytes(checkSketch(cell.visitors, DIMENSION_SKETCH_PRECISION, `${where} ${name} ${JSON.stringify(key)} visitors`));
    }
  }
  const events = Object.entries(row.revenue);
  w.uv(events.length, 'revenue event count');
  for (const [event, byCurrency] of events) {
    w.str(event);
    const currencies = Object.entries(byCurrency);
    w.uv(currencies.length, 'currency count');
    for (const [currency, amount] of currencies) {
      w.str(currency);
      w.f64(amount, `${where} revenue ${event} ${currency}`);
    }
  }
  return w.finish();
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

class Reader {
  pos = 0;
  constructor(private readonly bytes: Uint8Array, private readonly where: string) {}

  fail(what: string): never {
    throw new RollupFormatError(`${this.where}: ${what} at byte ${this.pos} of ${this.bytes.length}`);
  }

  get left(): number {
    return this.bytes.length - this.pos;
  }

  u8(what: string): number {
    if (this.pos >= this.bytes.length) this.fail(`truncated ${what}`);
    return this.bytes[this.pos++]!;
  }

  uv(what: string): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.u8(what);
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        if (!Number.isSafeInteger(value)) this.fail(`${what} beyond 2^53`);
        if (b === 0 && i > 0) this.fail(`${what} not minimally encoded`);
        return value;
      }
      scale *= 0x80;
    }
    return this.fail(`${what} varint longer than 8 bytes`);
  }

  zz(what: string): number {
    const u = this.uv(what);
    if (u > 2 * MAX_ZIGZAG + 1) this.fail(`${what} out of range`);
    return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
  }

  /** A count of elements that each take at least `minBytes`: never more than the bytes left allow. */
  count(what: string, minBytes: number): number {
    const n = this.uv(what);
    if (n * minBytes > this.left) this.fail(`${what} ${n} exceeds what ${this.left} bytes can hold`);
    return n;
  }

  f64(what: string): number {
    if (this.left < 8) this.fail(`truncated ${what}`);
    const v = Buffer.from(this.bytes.buffer, this.bytes.byteOffset + this.pos, 8).readDoubleLE(0);
    this.pos += 8;
    if (!Number.isFinite(v)) this.fail(`${what} is not finite`);
    return v;
  }

  raw(what: string): Uint8Array {
    const length = this.uv(`${what} length`);
    if (length > this.left) this.fail(`${what} of ${length} bytes exceeds the ${this.left} left`);
    // A plain Uint8Array view even when the blob is a Buffer (as drivers return it): rows
    // compare and serialise alike whichever store they came from.
    const out = new Uint8Array(this.bytes.buffer, this.bytes.byteOffset + this.pos, length);
    this.pos += length;
    return out;
  }

  str(what: string): string {
    const raw = this.raw(what);
    try {
      return utf8.decode(raw);
    } catch {
      return this.fail(`${what} is not valid UTF-8`);
    }
  }

  sketch(what: string, precision: number): Uint8Array {
    const s = this.raw(what);
    if (s.length < 3 || s[0] !== SKETCH_VERSION || (s[1] !== 1 && s[1] !== 2)) this.fail(`${what} is not a sketch`);
    if (s[2] !== precision) this.fail(`${what} has precision ${s[2]}, expected ${precision}`);
    return s;
  }

  counts(what: string): Counts {
    return {
      pageviews: this.zz(`${what} pageviews`),
      events: this.zz(`${what} events`),
      visits: this.zz(`${what} visits`),
      bounces: this.zz(`${what} bounces`),
      durationMs: this.zz(`${what} durationMs`),
    };
  }
}

/**
 * The row a blob holds, with the identity it is stored under. Sketch bytes are views into
 * `bytes` (no copy): do not modify `bytes` afterwards. Throws RollupFormatError on anything
 * malformed (unknown version, truncation, trailing bytes, bad varints or UTF-8, duplicate keys,
 * sketches of the wrong precision), and RangeError on a bucketMs that is not a `tier` bucket start.
 */
export function decodeRollup(site: string, tier: Tier, bucketMs: number, bytes: Uint8Array): Rollup {
  checkBucket(tier, bucketMs);
  const r = new Reader(bytes, `rollup blob of ${site} ${tier} ${bucketMs}`);
  const version = r.u8('version');
  if (version !== ROLLUP_CODEC_VERSION) r.fail(`unknown version ${version}`);
  const totals = r.counts('totals');
  const bots = r.uv('bots');
  const visitors = r.sketch('visitors', PRECISION);

  const dimCount = r.count('dimension count', 2);
  const dims = new Map<string, Record<string, DimCell>>();
  for (let d = 0; d < dimCount; d++) {
    const name = r.str('dimension name');
    if (dims.has(name)) r.fail(`dimension ${JSON.stringify(name)} repeated`);
    // key length, flags, 5 counts: at least 7 bytes a cell.
    const cellCount = r.count(`cell count of ${name}`, 7);
    const cells = new Map<string, DimCell>();
    for (let c = 0; c < cellCount; c++) {
      const key = r.str(`cell key of ${name}`);
      if (cells.has(key)) r.fail(`cell ${JSON.stringify(key)} of ${name} repeated`);
      const flags = r.u8(`cell flags of ${name}`);
      if ((flags & ~FLAG_VISITORS) !== 0) r.fail(`unknown cell flags ${flags}`);
      const cell: DimCell = r.counts(`cell of ${name}`);
      if (flags & FLAG_VISITORS) cell.visitors = r.sketch(`cell visitors of ${name}`, DIMENSION_SKETCH_PRECISION);
      cells.set(key, cell);
    }
    dims.set(name, Object.fromEntries(cells));
  }

  const eventCount = r.count('revenue event count', 2);
  const revenue = new Map<string, Record<string, number>>();
  for (let e = 0; e < eventCount; e++) {
    const event = r.str('revenue event');
    if (revenue.has(event)) r.fail(`revenue event ${JSON.stringify(event)} repeated`);
    const currencyCount = r.count(`currency count of ${event}`, 9);
    const amounts = new Map<string, number>();
    for (let c = 0; c < currencyCount; c++) {
      const currency = r.str('currency');
      if (amounts.has(currency)) r.fail(`currency ${JSON.stringify(currency)} of ${event} repeated`);
      amounts.set(currency, r.f64(`revenue ${event} ${currency}`));
    }
    revenue.set(event, Object.fromEntries(amounts));
  }
  if (r.left !== 0) r.fail(`${r.left} trailing bytes`);
  return {
    site, tier, bucketMs, totals, visitors,
    dims: Object.fromEntries(dims) as Rollup['dims'],
    revenue: Object.fromEntries(revenue),
    bots,
  };
}
