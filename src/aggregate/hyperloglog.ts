/**
 * HyperLogLog sketch of distinct visitors, one per rollup bucket, merged at query time.
 *
 * Hand-written rather than taken from npm because we store sketches as Cassandra blobs and merge
 * them across buckets, processes and releases: the serialisation must be byte-stable, versioned
 * and validated, and the npm HLL packages are unmaintained and define no such format.
 *
 * Precision: p = 14 by default (m = 16384 registers, standard error 1.04/√m ≈ 0.81%), the
 * bucket-level sketch; smaller precisions (MIN_PRECISION..MAX_PRECISION) bound the size of the
 * many per-dimension-value sketches (rollup.ts DIMENSION_SKETCH_PRECISION = 11: 2048 registers,
 * ≈ 2.3%). A sketch's precision is carried in its bytes; sketches of different precisions are
 * never merged (merge throws): folding one into the other would silently change the error.
 *
 * Hash: 64 bits per value. Visitor ids are already keyed hashes in hex (HMAC output, uniformly
 * distributed), so when a value starts with 16 hex digits those 64 bits are used directly;
 * anything else goes through a fast two-lane multiply/xor-shift hash (cyrb53's construction,
 * all 64 bits kept). Both are pure functions of the string, so a visitor lands in the same
 * register in every process, which is what makes sketches of different buckets mergeable.
 *
 * Representations (as in HLL++):
 * - sparse, for small cardinalities (most minute buckets see few visitors): a sorted list of
 *   (index, rho) pairs at the higher precision p' = 25, counted by linear counting over 2^25
 *   slots; collisions are so rare there that counts of a few thousand are exact or off by one;
 * - dense, past 2^p / 4 pairs: one byte per register (values ≤ 65 − p), counted with
 *   Ertl's improved estimator ("New cardinality estimation algorithms for HyperLogLog
 *   sketches", 2017, also used by Redis), which corrects the raw estimator's bias over the
 *   whole range analytically: its σ term plays the part of linear counting while registers are
 *   still empty, without HLL++'s empirical bias tables.
 * The representation is a function of the set of hashes alone (sparse while at most
 * 2^p / 4 distinct p'-indexes), so adding, merging and round-tripping the same set
 * always give the same bytes.
 *
 * Speed (queries union hundreds of stored sketches): `mergeBytes` merges a blob straight into a
 * sketch (sparse pairs decoded and applied in one pass, dense registers maxed four to a 32-bit
 * word), `countOf` counts a blob without parsing it (O(1) when sparse) and returns a count
 * stored beside it (`rememberCount`) outright; sparse pairs live in typed arrays and scratch
 * buffers are reused, so neither allocates per pair or register. `entryOf` + `addEntry` hash
 * a value once for the many sketches of one event.
 *
 * Byte format (all versions must stay readable):
 *   [VERSION=1, format, p] then
 *   format 1 (sparse): varint count, then count varints: deltas of (index' << 6 | rho'), strictly increasing by index';
 *   format 2 (dense):  2^p register bytes.
 * Sparse pairs are at p' = 25 whatever p is; p only decides the dense registers (and when the
 * sketch turns dense). Sketches written before precisions were configurable are all p = 14.
 */

/** The default precision: the bucket-level visitor sketch. */
export const PRECISION = 14;
export const MIN_PRECISION = 4;
export const MAX_PRECISION = 18;
/** Registers at the default precision. */
export const REGISTERS = 1 << PRECISION;
/** Relative standard error of a dense estimate at the default precision: 1.04/√m. */
export const STANDARD_ERROR = 1.04 / Math.sqrt(REGISTERS);

/** Relative standard error of a dense estimate at precision p: 1.04/√(2^p). */
export function standardErrorOf(precision: number): number {
  checkPrecision(precision);
  return 1.04 / Math.sqrt(2 ** precision);
}

const SPARSE_PRECISION = 25;
const SPARSE_SLOTS = 2 ** SPARSE_PRECISION;
const SPARSE_MAX_RHO = 64 - SPARSE_PRECISION + 1;

/** What depends on the precision, computed once per precision. */
interface Shape {
  readonly p: number;
  readonly registers: number;
  /** Largest register value: 64 - p + 1. */
  readonly maxRho: number;
  /** Bits of the sparse index below the dense index: they are the first bits of the dense rho's word. */
  readonly extraBits: number;
  /** At this size a sparse blob (~3 bytes a pair) nears the dense one, and inserts get slow. */
  readonly sparseMaxEntries: number;
}

const SHAPES = new Map<number, Shape>();

function shapeOf(p: number): Shape {
  let shape = SHAPES.get(p);
  if (!shape) {
    checkPrecision(p);
    const registers = 1 << p;
    shape = { p, registers, maxRho: 64 - p + 1, extraBits: SPARSE_PRECISION - p, sparseMaxEntries: registers / 4 };
    SHAPES.set(p, shape);
  }
  return shape;
}

function checkPrecision(p: number): void {
  if (!Number.isInteger(p) || p < MIN_PRECISION || p > MAX_PRECISION) {
    throw new RangeError(`HyperLogLog precision must be an integer in [${MIN_PRECISION}, ${MAX_PRECISION}], got ${p}`);
  }
}

const VERSION = 1;
const FORMAT_SPARSE = 1;
const FORMAT_DENSE = 2;
const HEADER_BYTES = 3;

export class HyperLogLogFormatError extends Error {
  override readonly name = 'HyperLogLogFormatError';
}

/**
 * The 64-bit hash of a value, left in HASH_HI and HASH_LO (unsigned 32-bit halves): no array per
 * call, since sketches are fed once per event and cell.
 */
let HASH_HI = 0;
let HASH_LO = 0;

/** The value of a hex digit's code unit (either case), or -1 for any other. */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

function hash64(value: string): void {
  // 16 leading hex digits are the 64 bits themselves (as parseInt of each half, read in place:
  // no substrings, since this runs once per counted event).
  if (value.length >= 16) {
    let hi = 0;
    let lo = 0;
    let i = 0;
    for (; i < 16; i++) {
      const d = hexDigit(value.charCodeAt(i));
      if (d < 0) break;
      if (i < 8) hi = (hi << 4) | d;
      else lo = (lo << 4) | d;
    }
    if (i === 16) {
      HASH_HI = hi >>> 0;
      HASH_LO = lo >>> 0;
      return;
    }
  }
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < value.length; i++) {
    const ch = value.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  HASH_HI = h2 >>> 0;
  HASH_LO = h1 >>> 0;
}

/** A sparse pair packed as index' * 64 + rho' (< 2^31): sorting the numbers sorts by index'. */
function sparseEntry(hi: number, lo: number): number {
  const index = hi >>> (32 - SPARSE_PRECISION);
  const rest = hi & ((1 << (32 - SPARSE_PRECISION)) - 1);
  let rho: number;
  if (rest !== 0) rho = Math.clz32(rest) - SPARSE_PRECISION + 1;
  else if (lo !== 0) rho = 32 - SPARSE_PRECISION + Math.clz32(lo) + 1;
  else rho = SPARSE_MAX_RHO;
  return index * 64 + rho;
}

const entryIndex = (entry: number) => entry >>> 6;
const entryRho = (entry: number) => entry & 63;

/** Apply a sparse pair to dense registers: the same (index, rho) a dense add of that hash gives. */
function applyToDense(registers: Uint8Array, extraBits: number, entry: number): void {
  const index = entryIndex(entry);
  const extra = index & ((1 << extraBits) - 1);
  const rho = extra !== 0 ? Math.clz32(extra) - (32 - extraBits) + 1 : extraBits + entryRho(entry);
  const r = index >>> extraBits;
  if (rho > registers[r]!) registers[r] = rho;
}

/** Position of `entry`'s index among the first `size` sorted pairs, or -(insertion point) - 1. */
function findIndex(entries: Int32Array, size: number, index: number): number {
  let lo = 0;
  let hi = size - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const at = entryIndex(entries[mid]!);
    if (at < index) lo = mid + 1;
    else if (at > index) hi = mid - 1;
    else return mid;
  }
  return -lo - 1;
}

function sigma(x: number): number {
  if (x === 1) return Number.POSITIVE_INFINITY;
  let y = 1;
  let z = x;
  for (;;) {
    x *= x;
    const prev = z;
    z += x * y;
    y += y;
    if (z === prev) return z;
  }
}

function tau(x: number): number {
  if (x === 0 || x === 1) return 0;
  let y = 1;
  let z = 1 - x;
  for (;;) {
    x = Math.sqrt(x);
    const prev = z;
    y *= 0.5;
    z -= (1 - x) ** 2 * y;
    if (z === prev) return z / 3;
  }
}

/** Bytes of `value` as an unsigned LEB128 varint (value < 2^32). */
function varintLength(value: number): number {
  let n = 1;
  while (value >= 0x80) {
    value >>>= 7;
    n++;
  }
  return n;
}

function writeVarintAt(out: Uint8Array, pos: number, value: number): number {
  while (value >= 0x80) {
    out[pos++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  out[pos++] = value;
  return pos;
}

/** The estimate of linear counting over the 2^25 sparse slots with `pairs` taken. */
function sparseCount(pairs: number): number {
  return Math.round(SPARSE_SLOTS * Math.log(SPARSE_SLOTS / (SPARSE_SLOTS - pairs)));
}

/** Register histogram, reused by every dense count (counts run one at a time). */
const HISTOGRAM = new Float64Array(66);

/** Ertl's estimate from HISTOGRAM, filled for a sketch of `shape`. */
function denseCount(shape: Shape): number {
  const { registers: m, maxRho } = shape;
  const q = maxRho - 1;
  let z = m * tau(1 - HISTOGRAM[q + 1]! / m);
  for (let k = q; k >= 1; k--) z = 0.5 * (z + HISTOGRAM[k]!);
  z += m * sigma(HISTOGRAM[0]! / m);
  return Math.round((m * m) / (2 * Math.LN2 * z));
}

/**
 * Counts already known for sketch blobs, by the blob's identity: a count stored beside a sketch
 * at write time (rollup-codec.ts heads) or computed once. A sketch's count is a pure function
 * of its bytes, so a remembered count is the count, not an approximation of it. Blobs must not
 * be modified after their count is remembered (stores hand out fresh, read-only views).
 */
const KNOWN_COUNTS = new WeakMap<Uint8Array, number>();

/** Header of a blob: [version, format, p], checked. */
function headerOf(bytes: Uint8Array, expectedPrecision: number | undefined): Shape {
  if (bytes.length < HEADER_BYTES) throw new HyperLogLogFormatError(`sketch of ${bytes.length} bytes is shorter than its header`);
  if (bytes[0] !== VERSION) throw new HyperLogLogFormatError(`unknown sketch version ${bytes[0]}`);
  const p = bytes[2]!;
  if (p < MIN_PRECISION || p > MAX_PRECISION) throw new HyperLogLogFormatError(`sketch precision ${p} outside [${MIN_PRECISION}, ${MAX_PRECISION}]`);
  if (expectedPrecision !== undefined && p !== expectedPrecision) throw new HyperLogLogFormatError(`sketch precision ${p}, expected ${expectedPrecision}`);
  const shape = shapeOf(p);
  if (bytes[1] === FORMAT_DENSE) {
    if (bytes.length !== HEADER_BYTES + shape.registers) {
      throw new HyperLogLogFormatError(`dense sketch of ${bytes.length} bytes, expected ${HEADER_BYTES + shape.registers}`);
    }
  } else if (bytes[1] !== FORMAT_SPARSE) {
    throw new HyperLogLogFormatError(`unknown sketch format ${bytes[1]}`);
  }
  return shape;
}

/**
 * Reads the pairs of a sparse blob (header already checked) into SPARSE_SCRATCH, in order, and
 * returns how many (with `countOnly`, only the count, the pairs unread); with `into`, applies
 * them to those dense registers instead of keeping them (a merge into a dense sketch: one pass,
 * nothing stored). Validates as fromBytes always did: bounds, strict order, rho range, no
 * trailing bytes. No closure, no allocation (beyond growing the scratch once): it runs for every
 * sparse sketch a query or a roll merges, so it is written for speed.
 */
function readSparse(bytes: Uint8Array, shape: Shape, countOnly = false, into: Uint8Array | null = null): number {
  const end = bytes.length;
  let pos = HEADER_BYTES;
  // The pair count, a varint of at most 5 bytes.
  let count = 0;
  for (let shift = 0; ; shift += 7) {
    if (shift >= 35) throw new HyperLogLogFormatError('varint longer than 5 bytes');
    if (pos >= end) throw new HyperLogLogFormatError('sparse sketch truncated');
    const b = bytes[pos++]!;
    count += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) break;
  }
  if (count > shape.sparseMaxEntries) throw new HyperLogLogFormatError(`sparse sketch of ${count} pairs, at most ${shape.sparseMaxEntries}`);
  // Each pair takes at least one byte: refuse a count the blob cannot hold before allocating for it.
  if (count > end - pos) throw new HyperLogLogFormatError('sparse sketch truncated');
  if (countOnly) return count;
  if (into === null && SPARSE_SCRATCH.length < count) SPARSE_SCRATCH = new Int32Array(Math.max(count, SPARSE_SCRATCH.length * 2));
  const out = SPARSE_SCRATCH;
  const extraBits = shape.extraBits;
  const extraMask = (1 << extraBits) - 1;
  const clzBase = 32 - extraBits - 1;
  let entry = 0;
  let lastIndex = -1;
  for (let i = 0; i < count; i++) {
    // Mostly three or four bytes (pairs are ~2^31 / count apart); five only for a lone pair.
    let b = pos < end ? bytes[pos++]! : 256;
    let delta = b & 0x7f;
    if (b >= 0x80) {
      b = pos < end ? bytes[pos++]! : 256;
      delta |= (b & 0x7f) << 7;
      if (b >= 0x80) {
        b = pos < end ? bytes[pos++]! : 256;
        delta |= (b & 0x7f) << 14;
        if (b >= 0x80) {
          b = pos < end ? bytes[pos++]! : 256;
          delta |= (b & 0x7f) << 21;
          if (b >= 0x80) {
            b = pos < end ? bytes[pos++]! : 256;
            delta += (b & 0x7f) * 2 ** 28;
          }
        }
      }
    }
    if (b >= 0x80) throw new HyperLogLogFormatError(b === 256 ? 'sparse sketch truncated' : 'varint longer than 5 bytes');
    entry += delta;
    if (entry >= SPARSE_SLOTS * 64) throw new HyperLogLogFormatError(`sparse index ${Math.floor(entry / 64)} out of range`);
    // entry < 2^31 from here: bit operations are exact.
    const index = entry >>> 6;
    const rho = entry & 63;
    if (index <= lastIndex) throw new HyperLogLogFormatError('sparse pairs not strictly increasing');
    if (rho < 1 || rho > SPARSE_MAX_RHO) throw new HyperLogLogFormatError(`sparse rho ${rho} out of range`);
    lastIndex = index;
    if (into === null) {
      out[i] = entry;
    } else {
      // applyToDense, inlined.
      const extra = index & extraMask;
      const denseRho = extra !== 0 ? Math.clz32(extra) - clzBase : extraBits + rho;
      const r = index >>> extraBits;
      if (denseRho > into[r]!) into[r] = denseRho;
    }
  }
  if (pos !== end) throw new HyperLogLogFormatError(`${end - pos} trailing bytes after sparse sketch`);
  return count;
}

/** Where readSparse leaves the pairs of the blob it read last (valid until the next read). */
let SPARSE_SCRATCH = new Int32Array(1024);
/** The pairs of every empty sketch until its first pair: never written to (capacity 0). */
const EMPTY_PAIRS = new Int32Array(0);
/** Where mergeSparse builds a union before copying it back. */
let MERGE_SCRATCH = new Int32Array(1024);

/**
 * A mutable sketch. `add` and `merge` change it in place (merging many buckets into one union
 * then allocates nothing per bucket); `clone` when the original must be kept.
 */
export class HyperLogLog {
  /**
   * Sorted sparse pairs (entries < 2^31) in the first `size` slots while sparse; null once
   * dense. A typed array with room to grow: no boxed numbers, and merges copy with memcpy.
   */
  private sparse: Int32Array | null;
  private size: number;
  private dense: Uint8Array | null;

  private constructor(private readonly shape: Shape, sparse: Int32Array | null, size: number, dense: Uint8Array | null) {
    this.sparse = sparse;
    this.size = size;
    this.dense = dense;
  }

  /** An empty sketch of `precision` (default PRECISION = 14); RangeError outside MIN..MAX_PRECISION. */
  static empty(precision: number = PRECISION): HyperLogLog {
    return new HyperLogLog(shapeOf(precision), EMPTY_PAIRS, 0, null);
  }

  /**
   * Parse a blob written by `toBytes`, of whatever precision it carries; throws
   * HyperLogLogFormatError on anything malformed, and when `expectedPrecision` is given and the
   * blob has another.
   */
  static fromBytes(bytes: Uint8Array, expectedPrecision?: number): HyperLogLog {
    const shape = headerOf(bytes, expectedPrecision);
    if (bytes[1] === FORMAT_DENSE) {
      // A copy, never a view: a Buffer's slice shares memory, and merging must not write into the caller's blob.
      const registers = new Uint8Array(shape.registers);
      registers.set(bytes.subarray(HEADER_BYTES));
      checkRegisters(registers, shape);
      return new HyperLogLog(shape, null, 0, registers);
    }
    const n = readSparse(bytes, shape);
    return new HyperLogLog(shape, n === 0 ? EMPTY_PAIRS : SPARSE_SCRATCH.slice(0, n), n, null);
  }

  /**
   * The count of a blob, as `fromBytes(bytes).count()` gives it, without building a sketch:
   * O(1) for a sparse blob (its pair count), one pass over the registers for a dense one, and
   * nothing at all for a blob whose count is known (`rememberCount`, or counted here before).
   * Throws HyperLogLogFormatError on a malformed blob (a sparse one is checked only up to its
   * pair count: its count does not depend on the pairs).
   */
  static countOf(bytes: Uint8Array, expectedPrecision?: number): number {
    const known = KNOWN_COUNTS.get(bytes);
    if (known !== undefined) return known;
    const shape = headerOf(bytes, expectedPrecision);
    let n: number;
    if (bytes[1] === FORMAT_SPARSE) {
      n = sparseCount(readSparse(bytes, shape, true));
    } else {
      HISTOGRAM.fill(0);
      const maxRho = shape.maxRho;
      for (let i = HEADER_BYTES; i < bytes.length; i++) {
        const r = bytes[i]!;
        if (r > maxRho) throw new HyperLogLogFormatError(`register ${i - HEADER_BYTES} holds ${r}, above ${maxRho}`);
        HISTOGRAM[r]!++;
      }
      n = denseCount(shape);
      KNOWN_COUNTS.set(bytes, n);
    }
    return n;
  }

  /**
   * Records the count of a blob computed when it was written (a rollup head stores it), so that
   * `countOf` need not count it again. Only for blobs whose count it is: nothing checks it.
   */
  static rememberCount(bytes: Uint8Array, count: number): void {
    KNOWN_COUNTS.set(bytes, count);
  }

  /**
   * The value's pair: what `add(value)` adds, as a number (index' at p' = 25, and rho'),
   * the same at every precision. For code that adds one value to many sketches (a minute
   * bucket's and each of its dimension cells'): hash once, then `addEntry` to each.
   */
  static entryOf(value: string): number {
    hash64(value);
    return sparseEntry(HASH_HI, HASH_LO);
  }

  /** The sketch's precision p (2^p dense registers). */
  get precision(): number {
    return this.shape.p;
  }

  add(value: string): void {
    hash64(value);
    this.addEntry(sparseEntry(HASH_HI, HASH_LO));
  }

  /** `add` of a value whose `entryOf` this is. */
  addEntry(entry: number): void {
    if (this.dense) {
      applyToDense(this.dense, this.shape.extraBits, entry);
      return;
    }
    let sparse = this.sparse!;
    const size = this.size;
    const at = findIndex(sparse, size, entryIndex(entry));
    if (at >= 0) {
      if (entryRho(entry) > entryRho(sparse[at]!)) sparse[at] = entry;
      return;
    }
    if (size === this.shape.sparseMaxEntries) {
      // One more pair makes it dense.
      this.toDense();
      applyToDense(this.dense!, this.shape.extraBits, entry);
      return;
    }
    if (size === sparse.length) {
      const grown = new Int32Array(Math.min(this.shape.sparseMaxEntries, Math.max(8, size * 2)));
      grown.set(sparse.subarray(0, size));
      sparse = grown;
      this.sparse = grown;
    }
    const insertAt = -at - 1;
    if (insertAt < size) sparse.copyWithin(insertAt + 1, insertAt, size);
    sparse[insertAt] = entry;
    this.size = size + 1;
  }

  /**
   * Register-wise max of `other` into this sketch: commutative, associative and idempotent, so
   * the union of buckets does not depend on the order or number of times they are merged.
   * Throws RangeError when the precisions differ (nothing is changed then).
   */
  merge(other: HyperLogLog): this {
    if (other.shape !== this.shape) {
      throw new RangeError(`cannot merge a HyperLogLog of precision ${other.shape.p} into one of precision ${this.shape.p}`);
    }
    const extraBits = this.shape.extraBits;
    if (other.dense) {
      if (!this.dense) this.toDense();
      maxRegisters(this.dense!, other.dense, 0, this.shape.maxRho);
      return this;
    }
    const theirs = other.sparse!;
    if (this.dense) {
      for (let i = 0; i < other.size; i++) applyToDense(this.dense, extraBits, theirs[i]!);
      return this;
    }
    this.mergeSparse(theirs, other.size);
    return this;
  }

  /**
   * `merge(HyperLogLog.fromBytes(bytes, this.precision))` without building the other sketch:
   * dense registers are maxed straight from the blob, sparse pairs applied as they are read.
   * Throws HyperLogLogFormatError when the blob is malformed or of another precision; nothing
   * is changed then, except by a dense blob whose registers are out of range (found while
   * merging): discard the sketch after an error.
   */
  mergeBytes(bytes: Uint8Array): this {
    const shape = headerOf(bytes, this.shape.p);
    if (bytes[1] === FORMAT_DENSE) {
      if (!this.dense) this.toDense();
      if (!maxRegisters(this.dense!, bytes, HEADER_BYTES, shape.maxRho)) checkRegisters(bytes.subarray(HEADER_BYTES), shape);
      return this;
    }
    if (this.dense) {
      readSparse(bytes, shape, false, this.dense);
      return this;
    }
    const n = readSparse(bytes, shape);
    this.mergeSparse(SPARSE_SCRATCH, n);
    return this;
  }

  /** Estimated number of distinct values added, rounded. */
  count(): number {
    if (this.sparse) return sparseCount(this.size);
    HISTOGRAM.fill(0);
    const dense = this.dense!;
    for (let i = 0; i < dense.length; i++) HISTOGRAM[dense[i]!]!++;
    return denseCount(this.shape);
  }

  /** True when nothing was added: the count is 0 exactly then. */
  isEmpty(): boolean {
    if (this.sparse) return this.size === 0;
    const dense = this.dense!;
    for (let i = 0; i < dense.length; i++) if (dense[i] !== 0) return false;
    return true;
  }

  clone(): HyperLogLog {
    return new HyperLogLog(this.shape, this.sparse ? this.sparse.slice(0, this.size) : null, this.size, this.dense ? new Uint8Array(this.dense) : null);
  }

  toBytes(): Uint8Array {
    const p = this.shape.p;
    if (this.dense) {
      const out = new Uint8Array(HEADER_BYTES + this.dense.length);
      out[0] = VERSION;
      out[1] = FORMAT_DENSE;
      out[2] = p;
      out.set(this.dense, HEADER_BYTES);
      return out;
    }
    const sparse = this.sparse!;
    const size = this.size;
    // Sized exactly first, then written in place: no intermediate array of bytes.
    let length = HEADER_BYTES + varintLength(size);
    let prev = 0;
    for (let i = 0; i < size; i++) {
      length += varintLength(sparse[i]! - prev);
      prev = sparse[i]!;
    }
    const out = new Uint8Array(length);
    out[0] = VERSION;
    out[1] = FORMAT_SPARSE;
    out[2] = p;
    let pos = writeVarintAt(out, HEADER_BYTES, size);
    prev = 0;
    for (let i = 0; i < size; i++) {
      pos = writeVarintAt(out, pos, sparse[i]! - prev);
      prev = sparse[i]!;
    }
    return out;
  }

  /**
   * Union of the first `n` sorted pairs of `theirs` into this sparse sketch. Merged into a
   * scratch buffer and copied back only when something changed: a union of many buckets'
   * sketches is mostly pairs it already has, and allocating a new array per merge would cost
   * more than the merge.
   */
  private mergeSparse(theirs: Int32Array, n: number): void {
    const mine = this.sparse!;
    const size = this.size;
    if (n === 0) return;
    const limit = size + n;
    if (MERGE_SCRATCH.length < limit) MERGE_SCRATCH = new Int32Array(Math.max(limit, MERGE_SCRATCH.length * 2));
    const merged = MERGE_SCRATCH;
    let k = 0;
    let i = 0;
    let j = 0;
    let changed = false;
    while (i < size && j < n) {
      const a = mine[i]!;
      const b = theirs[j]!;
      const ia = a >>> 6;
      const ib = b >>> 6;
      if (ia < ib) {
        merged[k++] = a;
        i++;
      } else if (ib < ia) {
        merged[k++] = b;
        j++;
        changed = true;
      } else {
        if (b > a) {
          merged[k++] = b;
          changed = true;
        } else {
          merged[k++] = a;
        }
        i++;
        j++;
      }
    }
    if (i < size) {
      merged.set(mine.subarray(i, size), k);
      k += size - i;
    }
    if (j < n) {
      changed = true;
      merged.set(theirs.subarray(j, n), k);
      k += n - j;
    }
    if (!changed) return;
    if (k > this.shape.sparseMaxEntries) {
      this.sparse = merged;
      this.size = k;
      this.toDense();
      return;
    }
    const target = mine.length >= k && mine !== EMPTY_PAIRS ? mine : new Int32Array(Math.min(this.shape.sparseMaxEntries, k + (k >> 2) + 4));
    target.set(merged.subarray(0, k));
    this.sparse = target;
    this.size = k;
  }

  private toDense(): void {
    const registers = new Uint8Array(this.shape.registers);
    const sparse = this.sparse!;
    for (let i = 0; i < this.size; i++) applyToDense(registers, this.shape.extraBits, sparse[i]!);
    this.dense = registers;
    this.sparse = null;
    this.size = 0;
  }
}

/** Word-aligned copy of a blob's registers, for maxRegisters. */
let WORD_SCRATCH = new Int32Array(1 << (PRECISION - 2));
const HIGH_BITS = 0x80808080 | 0;

/**
 * `into[i] = max(into[i], from[offset + i])` over `into`, four registers at a time (SWAR on
 * 32-bit words: registers are below 128, so a byte-wise compare never borrows across bytes);
 * a union of a year of day sketches is millions of registers. Returns false, having merged
 * garbage, when some `from` register exceeds `maxRho`: the caller throws then. `into` must be
 * this module's own registers (word-aligned, every value ≤ maxRho).
 */
function maxRegisters(into: Uint8Array, from: Uint8Array, offset: number, maxRho: number): boolean {
  const n = into.length;
  if ((into.byteOffset & 3) !== 0 || (n & 3) !== 0) {
    let bad = 0;
    for (let i = 0; i < n; i++) {
      const r = from[offset + i]!;
      bad |= r > maxRho ? 1 : 0;
      if (r > into[i]!) into[i] = r;
    }
    return bad === 0;
  }
  const words = n >>> 2;
  let theirs: Int32Array;
  if (((from.byteOffset + offset) & 3) === 0) {
    // Already word-aligned (rollup-codec.ts unpacks heads' sketches so).
    theirs = new Int32Array(from.buffer, from.byteOffset + offset, words);
  } else {
    // One native copy to align the blob's bytes (a view at any offset into a driver buffer).
    if (WORD_SCRATCH.length < words) WORD_SCRATCH = new Int32Array(words);
    new Uint8Array(WORD_SCRATCH.buffer, 0, n).set(from.subarray(offset, offset + n));
    theirs = WORD_SCRATCH;
  }
  // Int32 words, and `| 0` after each sum: V8 keeps the loop in 32-bit integer arithmetic.
  const mine = new Int32Array(into.buffer, into.byteOffset, words);
  // A byte b > maxRho gets its high bit set by b + (127 − maxRho); bytes ≥ 128 have it already.
  const above = (0x7f - maxRho) * 0x01010101;
  let over = 0;
  for (let i = 0; i < words; i++) {
    const b = theirs[i]!;
    over |= ((b + above) | 0) | b;
    const a = mine[i]!;
    // High bit of each byte of ((a | 0x80) − b): set where a ≥ b; spread to a byte mask.
    const keep = Math.imul(((((a | HIGH_BITS) - b) | 0) & HIGH_BITS) >>> 7, 0xff);
    mine[i] = (a & keep) | (b & ~keep);
  }
  return (over & HIGH_BITS) === 0;
}

function checkRegisters(registers: Uint8Array, shape: Shape): void {
  for (let i = 0; i < registers.length; i++) {
    if (registers[i]! > shape.maxRho) throw new HyperLogLogFormatError(`register ${i} holds ${registers[i]}, above ${shape.maxRho}`);
  }
}
