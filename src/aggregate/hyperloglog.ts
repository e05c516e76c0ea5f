/**
 * HyperLogLog sketch of distinct visitors, one per rollup bucket, merged at query time.
 *
 * Hand-written rather than taken from npm because we store sketches as Cassandra blobs and merge
 * them across buckets, processes and releases: the serialisation must be byte-stable, versioned
 * and validated, and the npm HLL packages are unmaintained and define no such format.
 *
 * Precision p = 14: m = 16384 registers, standard error 1.04/√m ≈ 0.81%.
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
 * - dense, past SPARSE_MAX_ENTRIES pairs: one byte per register (values ≤ 51), counted with
 *   Ertl's improved estimator ("New cardinality estimation algorithms for HyperLogLog
 *   sketches", 2017, also used by Redis), which corrects the raw estimator's bias over the
 *   whole range analytically: its σ term plays the part of linear counting while registers are
 *   still empty, without HLL++'s empirical bias tables.
 * The representation is a function of the set of hashes alone (sparse while at most
 * SPARSE_MAX_ENTRIES distinct p'-indexes), so adding, merging and round-tripping the same set
 * always give the same bytes.
 *
 * Byte format (all versions must stay readable):
 *   [VERSION=1, format, p=14] then
 *   format 1 (sparse): varint count, then count varints: deltas of (index' << 6 | rho'), strictly increasing by index';
 *   format 2 (dense):  16384 register bytes.
 */

export const PRECISION = 14;
export const REGISTERS = 1 << PRECISION;
/** Relative standard error of a dense estimate: 1.04/√m. */
export const STANDARD_ERROR = 1.04 / Math.sqrt(REGISTERS);

const SPARSE_PRECISION = 25;
const SPARSE_SLOTS = 2 ** SPARSE_PRECISION;
const MAX_RHO = 64 - PRECISION + 1;
const SPARSE_MAX_RHO = 64 - SPARSE_PRECISION + 1;
/** Bits of the sparse index below the dense index: they are the first bits of the dense rho's word. */
const EXTRA_BITS = SPARSE_PRECISION - PRECISION;
/** At this size a sparse blob (~3 bytes a pair) nears the dense one, and inserts get slow. */
const SPARSE_MAX_ENTRIES = REGISTERS / 4;

const VERSION = 1;
const FORMAT_SPARSE = 1;
const FORMAT_DENSE = 2;
const HEADER_BYTES = 3;

export class HyperLogLogFormatError extends Error {
  override readonly name = 'HyperLogLogFormatError';
}

const HEX16 = /^[0-9a-fA-F]{16}/;

/** The 64-bit hash of a value as two unsigned 32-bit halves. */
function hash64(value: string): [hi: number, lo: number] {
  if (HEX16.test(value)) {
    return [Number.parseInt(value.slice(0, 8), 16) >>> 0, Number.parseInt(value.slice(8, 16), 16) >>> 0];
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
  return [h2 >>> 0, h1 >>> 0];
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
function applyToDense(registers: Uint8Array, entry: number): void {
  const index = entryIndex(entry);
  const extra = index & ((1 << EXTRA_BITS) - 1);
  const rho = extra !== 0 ? Math.clz32(extra) - (32 - EXTRA_BITS) + 1 : EXTRA_BITS + entryRho(entry);
  const r = index >>> EXTRA_BITS;
  if (rho > registers[r]!) registers[r] = rho;
}

/** Position of `entry`'s index in a sorted list, or -(insertion point) - 1. */
function findIndex(entries: readonly number[], index: number): number {
  let lo = 0;
  let hi = entries.length - 1;
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

function writeVarint(out: number[], value: number): void {
  while (value >= 0x80) {
    out.push((value & 0x7f) | 0x80);
    value >>>= 7;
  }
  out.push(value);
}

/**
 * A mutable sketch. `add` and `merge` change it in place (merging many buckets into one union
 * then allocates nothing per bucket); `clone` when the original must be kept.
 */
export class HyperLogLog {
  /** Sorted sparse pairs while sparse; null once dense. */
  private sparse: number[] | null;
  private dense: Uint8Array | null;

  private constructor(sparse: number[] | null, dense: Uint8Array | null) {
    this.sparse = sparse;
    this.dense = dense;
  }

  static empty(): HyperLogLog {
    return new HyperLogLog([], null);
  }

  /** Parse a blob written by `toBytes`; throws HyperLogLogFormatError on anything malformed. */
  static fromBytes(bytes: Uint8Array): HyperLogLog {
    if (bytes.length < HEADER_BYTES) throw new HyperLogLogFormatError(`sketch of ${bytes.length} bytes is shorter than its header`);
    if (bytes[0] !== VERSION) throw new HyperLogLogFormatError(`unknown sketch version ${bytes[0]}`);
    if (bytes[2] !== PRECISION) throw new HyperLogLogFormatError(`sketch precision ${bytes[2]}, expected ${PRECISION}`);
    if (bytes[1] === FORMAT_DENSE) {
      if (bytes.length !== HEADER_BYTES + REGISTERS) {
        throw new HyperLogLogFormatError(`dense sketch of ${bytes.length} bytes, expected ${HEADER_BYTES + REGISTERS}`);
      }
      // A copy, never a view: a Buffer's slice shares memory, and merging must not write into the caller's blob.
      const registers = new Uint8Array(REGISTERS);
      registers.set(bytes.subarray(HEADER_BYTES));
      for (let i = 0; i < REGISTERS; i++) {
        if (registers[i]! > MAX_RHO) throw new HyperLogLogFormatError(`register ${i} holds ${registers[i]}, above ${MAX_RHO}`);
      }
      return new HyperLogLog(null, registers);
    }
    if (bytes[1] !== FORMAT_SPARSE) throw new HyperLogLogFormatError(`unknown sketch format ${bytes[1]}`);

    let pos = HEADER_BYTES;
    const readVarint = (): number => {
      let value = 0;
      for (let shift = 0; shift < 35; shift += 7) {
        if (pos >= bytes.length) throw new HyperLogLogFormatError('sparse sketch truncated');
        const b = bytes[pos++]!;
        value += (b & 0x7f) * 2 ** shift;
        if ((b & 0x80) === 0) return value;
      }
      throw new HyperLogLogFormatError('varint longer than 5 bytes');
    };
    const count = readVarint();
    if (count > SPARSE_MAX_ENTRIES) throw new HyperLogLogFormatError(`sparse sketch of ${count} pairs, at most ${SPARSE_MAX_ENTRIES}`);
    const entries: number[] = new Array<number>(count);
    let entry = 0;
    let lastIndex = -1;
    for (let i = 0; i < count; i++) {
      entry += readVarint();
      const index = Math.floor(entry / 64);
      const rho = entry % 64;
      if (index >= SPARSE_SLOTS) throw new HyperLogLogFormatError(`sparse index ${index} out of range`);
      if (index <= lastIndex) throw new HyperLogLogFormatError('sparse pairs not strictly increasing');
      if (rho < 1 || rho > SPARSE_MAX_RHO) throw new HyperLogLogFormatError(`sparse rho ${rho} out of range`);
      entries[i] = entry;
      lastIndex = index;
    }
    if (pos !== bytes.length) throw new HyperLogLogFormatError(`${bytes.length - pos} trailing bytes after sparse sketch`);
    return new HyperLogLog(entries, null);
  }

  add(value: string): void {
    const [hi, lo] = hash64(value);
    const entry = sparseEntry(hi, lo);
    if (this.dense) {
      applyToDense(this.dense, entry);
      return;
    }
    const sparse = this.sparse!;
    const at = findIndex(sparse, entryIndex(entry));
    if (at >= 0) {
      if (entryRho(entry) > entryRho(sparse[at]!)) sparse[at] = entry;
      return;
    }
    sparse.splice(-at - 1, 0, entry);
    if (sparse.length > SPARSE_MAX_ENTRIES) this.toDense();
  }

  /**
   * Register-wise max of `other` into this sketch: commutative, associative and idempotent, so
   * the union of buckets does not depend on the order or number of times they are merged.
   */
  merge(other: HyperLogLog): this {
    if (other.dense) {
      if (!this.dense) this.toDense();
      const mine = this.dense!;
      const theirs = other.dense;
      for (let i = 0; i < REGISTERS; i++) if (theirs[i]! > mine[i]!) mine[i] = theirs[i]!;
      return this;
    }
    const theirs = other.sparse!;
    if (this.dense) {
      for (const e of theirs) applyToDense(this.dense, e);
      return this;
    }
    const mine = this.sparse!;
    const merged: number[] = [];
    let i = 0;
    let j = 0;
    while (i < mine.length || j < theirs.length) {
      const a = mine[i];
      const b = theirs[j];
      if (b === undefined || (a !== undefined && entryIndex(a) < entryIndex(b))) {
        merged.push(a!);
        i++;
      } else if (a === undefined || entryIndex(b) < entryIndex(a)) {
        merged.push(b);
        j++;
      } else {
        merged.push(Math.max(a, b));
        i++;
        j++;
      }
    }
    this.sparse = merged;
    if (merged.length > SPARSE_MAX_ENTRIES) this.toDense();
    return this;
  }

  /** Estimated number of distinct values added, rounded. */
  count(): number {
    if (this.sparse) {
      const empty = SPARSE_SLOTS - this.sparse.length;
      return Math.round(SPARSE_SLOTS * Math.log(SPARSE_SLOTS / empty));
    }
    const histogram = new Array<number>(MAX_RHO + 1).fill(0);
    for (const r of this.dense!) histogram[r]!++;
    const q = MAX_RHO - 1;
    let z = REGISTERS * tau(1 - histogram[q + 1]! / REGISTERS);
    for (let k = q; k >= 1; k--) z = 0.5 * (z + histogram[k]!);
    z += REGISTERS * sigma(histogram[0]! / REGISTERS);
    return Math.round((REGISTERS * REGISTERS) / (2 * Math.LN2 * z));
  }

  clone(): HyperLogLog {
    return new HyperLogLog(this.sparse ? [...this.sparse] : null, this.dense ? new Uint8Array(this.dense) : null);
  }

  toBytes(): Uint8Array {
    if (this.dense) {
      const out = new Uint8Array(HEADER_BYTES + REGISTERS);
      out.set([VERSION, FORMAT_DENSE, PRECISION]);
      out.set(this.dense, HEADER_BYTES);
      return out;
    }
    const sparse = this.sparse!;
    const out: number[] = [VERSION, FORMAT_SPARSE, PRECISION];
    writeVarint(out, sparse.length);
    let prev = 0;
    for (const e of sparse) {
      writeVarint(out, e - prev);
      prev = e;
    }
    return Uint8Array.from(out);
  }

  private toDense(): void {
    const registers = new Uint8Array(REGISTERS);
    for (const e of this.sparse!) applyToDense(registers, e);
    this.dense = registers;
    this.sparse = null;
  }
}
