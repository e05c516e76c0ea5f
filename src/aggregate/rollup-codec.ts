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
 *
 * ## Parts (encodeRollupParts / decodeRollupParts)
 *
 * Stores that let a read fetch only what a query needs keep a row as separate parts: a head
 * (what every query reads) and one part per dimension (what a breakdown of that dimension
 * reads). Each part has its own version byte:
 *
 *   head, version 1:
 *     u8       version = 1
 *     5 × zz   totals
 *     uv       bots
 *     uv       visitors count: HyperLogLog.countOf(visitors) at write time
 *     bytes    visitors sketch (PRECISION)
 *     revenue  as in the whole row (uv event count, ...)
 *     uv       dimension count, then per dimension (the row's dimensions, in order): uv code,
 *              k ≥ 1 for HEAD_DIMENSION_CODES[k − 1], or 0 followed by str name for any other
 *   head version 2 is reserved: a development build (e6f460c, replaced within the hour, before
 *   any release) wrote dense sketches packed two registers a byte; unpacking cost a 12-month
 *   series more than the halved bytes saved (365 heads read and unioned in 32 ms packed, 28 ms
 *   not). Its heads are refused; a next head format takes version 3.
 *   dimension part, version 1:
 *     u8       version = 1
 *     uv       cell count, then the cells as in the whole row
 *
 * The head names the row's dimensions: a part whose name the head does not list is not part of
 * the row (a leftover of an earlier write of a row that had it) and is ignored, so a store
 * need not delete parts when a row loses a dimension. The stored visitors count is exact, not
 * an estimate of the estimate: a sketch's count is a pure function of its bytes, so a point
 * served by one row needs no counting (decoding remembers it: HyperLogLog.rememberCount).
 */
import { HyperLogLog, PRECISION } from './hyperloglog.js';
import { DIMENSION_SKETCH_PRECISION, type Counts, type DimCell, type Rollup, type Tier } from './rollup.js';
import { checkBucket, setOwn } from './rollup-merge.js';

export const ROLLUP_CODEC_VERSION = 1;

export class RollupFormatError extends Error {
  override readonly name = 'RollupFormatError';
}

const MAX_ZIGZAG = 2 ** 52 - 1;
const FLAG_VISITORS = 1;
const SKETCH_VERSION = 1;

class Writer {
  private buf: Buffer;
  private pos = 0;

  constructor(initialBytes = 256) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

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
    writeCells(w, name, cells, where);
  }
  writeRevenue(w, row.revenue, where);
  return w.finish();
}

function writeCells(w: Writer, name: string, cells: Readonly<Record<string, DimCell>>, where: string): void {
  const entries = Object.entries(cells);
  w.uv(entries.length, 'cell count');
  for (const [key, cell] of entries) {
    w.str(key);
    w.u8(cell.visitors ? FLAG_VISITORS : 0);
    writeCounts(w, cell, `${where} ${name}`);
    if (cell.visitors) w.bytes(checkSketch(cell.visitors, DIMENSION_SKETCH_PRECISION, `${where} ${name} ${JSON.stringify(key)} visitors`));
  }
}

function writeRevenue(w: Writer, revenue: Rollup['revenue'], where: string): void {
  const events = Object.entries(revenue);
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
}

/** The part name of a row's head; never a dimension name (encodeRollupParts refuses one). */
export const HEAD_PART = 'head';
export const ROLLUP_HEAD_VERSION = 1;
export const ROLLUP_DIMENSION_PART_VERSION = 1;

/**
 * The dimension names a head writes as one-byte codes (k ≥ 1 is entry k − 1): DIMENSIONS as of
 * head version 1, frozen here so that a reordered or extended DIMENSIONS never changes what a
 * stored code means (append only). A query decodes hundreds of heads: codes, not strings.
 */
const HEAD_DIMENSION_CODES: readonly string[] = [
  'entry_page', 'hostname', 'source', 'referrer', 'channel',
  'utm_source', 'utm_medium', 'utm_campaign', 'utm_term', 'utm_content',
  'country', 'region', 'city', 'browser', 'browser_version', 'os', 'os_version', 'device', 'screen',
  'page', 'event', 'prop', 'exit_page',
];
const HEAD_CODE_OF = new Map(HEAD_DIMENSION_CODES.map((name, i) => [name, i + 1]));

/** A row as its parts: the head, and one blob per dimension in the row's order. */
export interface EncodedRollupParts {
  readonly head: Buffer;
  readonly dims: ReadonlyArray<readonly [name: string, blob: Buffer]>;
}

/**
 * The parts of a row (see "Parts" above). Throws RangeError where encodeRollup does, and on a
 * dimension named HEAD_PART. The same row always gives the same bytes. The visitors sketch is
 * counted here, once per write (O(1) while sparse, one pass over the registers when dense).
 */
export function encodeRollupParts(row: Rollup): EncodedRollupParts {
  const where = `rollup ${row.site} ${row.tier} ${row.bucketMs}`;
  const dims = Object.entries(row.dims).filter((e): e is [string, Readonly<Record<string, DimCell>>] => e[1] !== undefined);
  const parts: Array<readonly [string, Buffer]> = [];
  for (const [name, cells] of dims) {
    if (name === HEAD_PART) throw new RangeError(`${where}: a dimension cannot be named ${JSON.stringify(HEAD_PART)}`);
    const w = new Writer(64);
    w.u8(ROLLUP_DIMENSION_PART_VERSION);
    writeCells(w, name, cells, where);
    parts.push([name, w.finish()]);
  }
  const w = new Writer(64);
  w.u8(ROLLUP_HEAD_VERSION);
  writeCounts(w, row.totals, `${where} totals`);
  w.uv(row.bots, `${where} bots`);
  checkSketch(row.visitors, PRECISION, `${where} visitors`);
  let count: number;
  try {
    count = HyperLogLog.countOf(row.visitors, PRECISION);
  } catch (e) {
    throw new RangeError(`${where} visitors: ${(e as Error).message}`);
  }
  w.uv(count, `${where} visitors count`);
  w.bytes(row.visitors);
  writeRevenue(w, row.revenue, where);
  w.uv(parts.length, 'dimension count');
  for (const [name] of parts) {
    const code = HEAD_CODE_OF.get(name);
    if (code !== undefined) {
      w.uv(code, 'dimension code');
    } else {
      w.uv(0, 'dimension code');
      w.str(name);
    }
  }
  return { head: w.finish(), dims: parts };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Labels name what is read for error messages only; they are constant strings on the hot paths
 * (a row has thousands of cells), and `context` (the dimension being read) is added when a
 * message is made, never per field.
 */
class Reader {
  pos = 0;
  /** What is being read (a dimension's name), for messages. */
  context = '';
  constructor(private readonly bytes: Uint8Array, private readonly where: string) {}

  fail(what: string): never {
    const of = this.context === '' ? '' : ` of ${this.context}`;
    throw new RollupFormatError(`${this.where}: ${what}${of} at byte ${this.pos} of ${this.bytes.length}`);
  }

  get left(): number {
    return this.bytes.length - this.pos;
  }

  u8(what: string): number {
    if (this.pos >= this.bytes.length) this.fail(`truncated ${what}`);
    return this.bytes[this.pos++]!;
  }

  uv(what: string): number {
    // Most varints are one byte.
    const first = this.pos < this.bytes.length ? this.bytes[this.pos]! : 0x80;
    if (first < 0x80) {
      this.pos++;
      return first;
    }
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
    const length = this.uv(what);
    if (length > this.left) this.fail(`${what} of ${length} bytes exceeds the ${this.left} left`);
    // A plain Uint8Array view even when the blob is a Buffer (as drivers return it): rows
    // compare and serialise alike whichever store they came from.
    const out = new Uint8Array(this.bytes.buffer, this.bytes.byteOffset + this.pos, length);
    this.pos += length;
    return out;
  }

  str(what: string): string {
    const length = this.uv(what);
    if (length > this.left) this.fail(`${what} of ${length} bytes exceeds the ${this.left} left`);
    const bytes = this.bytes;
    const start = this.pos;
    this.pos += length;
    // Short ASCII (dimension names, most keys): no decoder call, which costs more than the string.
    if (length <= 64) {
      let ascii = true;
      for (let i = start; i < start + length; i++) {
        if (bytes[i]! >= 0x80) {
          ascii = false;
          break;
        }
      }
      if (ascii) return String.fromCharCode.apply(null, bytes.subarray(start, start + length) as unknown as number[]);
    }
    try {
      return utf8.decode(bytes.subarray(start, start + length));
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
    const pageviews = this.zz(what);
    const events = this.zz(what);
    const visits = this.zz(what);
    const bounces = this.zz(what);
    const durationMs = this.zz(what);
    return { pageviews, events, visits, bounces, durationMs };
  }
}

function readCells(r: Reader, name: string): Record<string, DimCell> {
  r.context = name;
  // key length, flags, 5 counts: at least 7 bytes a cell.
  const cellCount = r.count('cell count', 7);
  const cells: Record<string, DimCell> = {};
  for (let c = 0; c < cellCount; c++) {
    const key = r.str('cell key');
    if (Object.prototype.hasOwnProperty.call(cells, key)) {
      r.context = '';
      r.fail(`cell ${JSON.stringify(key)} of ${name} repeated`);
    }
    const flags = r.u8('cell flags');
    if ((flags & ~FLAG_VISITORS) !== 0) r.fail(`unknown cell flags ${flags}`);
    const cell: DimCell = r.counts('cell counts');
    if (flags & FLAG_VISITORS) cell.visitors = r.sketch('cell visitors', DIMENSION_SKETCH_PRECISION);
    setOwn(cells, key, cell);
  }
  r.context = '';
  return cells;
}

function readRevenue(r: Reader): Record<string, Record<string, number>> {
  const eventCount = r.count('revenue event count', 2);
  const revenue: Record<string, Record<string, number>> = {};
  for (let e = 0; e < eventCount; e++) {
    const event = r.str('revenue event');
    if (Object.prototype.hasOwnProperty.call(revenue, event)) r.fail(`revenue event ${JSON.stringify(event)} repeated`);
    const currencyCount = r.count(`currency count of ${event}`, 9);
    const amounts: Record<string, number> = {};
    for (let c = 0; c < currencyCount; c++) {
      const currency = r.str('currency');
      if (Object.prototype.hasOwnProperty.call(amounts, currency)) r.fail(`currency ${JSON.stringify(currency)} of ${event} repeated`);
      setOwn(amounts, currency, r.f64(`revenue ${event} ${currency}`));
    }
    setOwn(revenue, event, amounts);
  }
  return revenue;
}

/** What a head holds: the row without its dimensions, and the names of its dimensions in order. */
export interface RollupHead {
  readonly totals: Counts;
  readonly bots: number;
  /** The visitors sketch; its stored count is remembered (HyperLogLog.countOf answers at once). */
  readonly visitors: Uint8Array;
  readonly visitorCount: number;
  readonly revenue: Record<string, Record<string, number>>;
  readonly dimensions: readonly string[];
}

/**
 * A head part (see "Parts"). Sketch bytes are views into `bytes`. Throws RollupFormatError on
 * anything malformed, as decodeRollup does, and on a dimension listed twice or named HEAD_PART.
 */
export function decodeRollupHead(where: string, bytes: Uint8Array): RollupHead {
  const r = new Reader(bytes, `rollup head of ${where}`);
  const version = r.u8('version');
  if (version !== ROLLUP_HEAD_VERSION) r.fail(`unknown head version ${version}`);
  const totals = r.counts('totals');
  const bots = r.uv('bots');
  const visitorCount = r.uv('visitors count');
  const visitors = r.sketch('visitors', PRECISION);
  const revenue = readRevenue(r);
  const dimCount = r.count('dimension count', 1);
  const dimensions: string[] = [];
  const seen = new Set<string>();
  for (let d = 0; d < dimCount; d++) {
    const code = r.uv('dimension code');
    if (code > HEAD_DIMENSION_CODES.length) r.fail(`unknown dimension code ${code}`);
    const name = code === 0 ? r.str('dimension name') : HEAD_DIMENSION_CODES[code - 1]!;
    if (seen.has(name) || name === HEAD_PART || (code === 0 && HEAD_CODE_OF.has(name))) r.fail(`dimension ${JSON.stringify(name)} repeated, reserved or not by its code`);
    seen.add(name);
    dimensions.push(name);
  }
  if (r.left !== 0) r.fail(`${r.left} trailing bytes`);
  HyperLogLog.rememberCount(visitors, visitorCount);
  return { totals, bots, visitors, visitorCount, revenue, dimensions };
}

/** The cells of a dimension part. Throws RollupFormatError on anything malformed. */
export function decodeRollupDimension(where: string, name: string, bytes: Uint8Array): Record<string, DimCell> {
  const r = new Reader(bytes, `rollup part ${JSON.stringify(name)} of ${where}`);
  const version = r.u8('version');
  if (version !== ROLLUP_DIMENSION_PART_VERSION) r.fail(`unknown dimension part version ${version}`);
  const cells = readCells(r, name);
  if (r.left !== 0) r.fail(`${r.left} trailing bytes`);
  return cells;
}

/**
 * The row stored as parts: its head, and its dimension parts found by `part(name)`. With
 * `dims`, only those of the row's dimensions are decoded (the row is then the stored row with
 * its other dimensions left out); otherwise all. Parts the head does not list are never asked
 * for. Throws RollupFormatError on a malformed part or when a listed, wanted part is missing
 * (a store writes a row's parts together), RangeError on a bucketMs that is not a `tier`
 * bucket start.
 */
export function decodeRollupParts(
  site: string, tier: Tier, bucketMs: number, head: Uint8Array,
  part: (name: string) => Uint8Array | undefined, dims?: ReadonlySet<string> | null,
): Rollup {
  checkBucket(tier, bucketMs);
  const where = `${site} ${tier} ${bucketMs}`;
  const h = decodeRollupHead(where, head);
  const out: Array<[string, Record<string, DimCell>]> = [];
  for (const name of h.dimensions) {
    if (dims && !dims.has(name)) continue;
    const bytes = part(name);
    if (bytes === undefined) throw new RollupFormatError(`rollup of ${where}: part ${JSON.stringify(name)} is missing`);
    out.push([name, decodeRollupDimension(where, name, bytes)]);
  }
  return {
    site, tier, bucketMs, totals: h.totals, visitors: h.visitors,
    dims: Object.fromEntries(out) as Rollup['dims'],
    revenue: h.revenue,
    bots: h.bots,
  };
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
    dims.set(name, readCells(r, name));
  }
  const revenue = readRevenue(r);
  if (r.left !== 0) r.fail(`${r.left} trailing bytes`);
  return {
    site, tier, bucketMs, totals, visitors,
    dims: Object.fromEntries(dims) as Rollup['dims'],
    revenue,
    bots,
  };
}
