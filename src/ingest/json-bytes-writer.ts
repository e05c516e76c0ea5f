/**
 * Writes JSON text straight into UTF-8 bytes, for the event-log records ingest writes on its
 * hot path (event-record.ts).
 *
 * Why not strings: a record assembled by string concatenation is a tree of dozens of
 * intermediate strings, flattened and then encoded again by `Buffer.from`; per event that was
 * more than a kilobyte of garbage and most of the record's encoding time. Here each piece is
 * written once, in place, and pieces that repeat (a page, a user agent) are copied as bytes.
 *
 * Output is byte-for-byte what `Buffer.from(JSON.stringify(x))` gives for the same pieces:
 * strings are escaped as JSON.stringify escapes them (lone surrogates as `\udxxx`).
 * Two ways to use one: as scratch space (`reset`, write, `copy` out what must outlive it), or
 * to fill a buffer that is then handed over whole (`start` with the size expected, write,
 * `take`: no copy, and the writer starts a fresh buffer next time).
 */
const HEX = '0123456789abcdef';
const EMPTY = Buffer.alloc(0);
/** 1 for the ASCII characters a JSON string holds as they are. */
const PLAIN = new Uint8Array(128).map((_, c) => (c >= 0x20 && c !== 0x22 && c !== 0x5c ? 1 : 0));
/** Bytes a string of n UTF-16 code units can take at most, as a JSON string literal. */
const MAX_BYTES_PER_CODE_UNIT = 6;

export class JsonBytesWriter {
  private buf: Buffer;
  private pos = 0;

  constructor(initialBytes = 64 * 1024) {
    // Small writers (a cached piece) take a slice of Node's shared pool, not an ArrayBuffer of their own.
    this.buf = Buffer.allocUnsafe(Math.max(64, initialBytes));
  }

  /** Bytes written since the last reset. */
  get length(): number {
    return this.pos;
  }

  reset(): void {
    this.pos = 0;
  }

  /** Starts writing into a new buffer of `expectedBytes` (it grows if that was too few). */
  start(expectedBytes: number): void {
    this.buf = Buffer.allocUnsafe(Math.max(64, expectedBytes));
    this.pos = 0;
  }

  /**
   * What was written from `offset` on, as a view of the writer's buffer. After `start` it stays
   * valid for good: bytes once written are not overwritten until the next `start` replaces the
   * buffer, and growing copies to a new buffer, leaving the old one as it was (after `reset`,
   * only until the next write). A view keeps its whole buffer alive, so `expectedBytes` should
   * not be far above what is written.
   */
  since(offset: number): Buffer {
    return this.buf.subarray(offset, this.pos);
  }

  /** What was written since `start`, as a view (see `since`); the writer lets go of its buffer. */
  take(): Buffer {
    const out = this.buf.subarray(0, this.pos);
    this.buf = EMPTY;
    this.pos = 0;
    return out;
  }

  /** An exact-size copy of what was written since the last reset. */
  copy(): Buffer {
    const out = Buffer.allocUnsafe(this.pos);
    out.set(this.buf.subarray(0, this.pos));
    return out;
  }

  private ensure(bytes: number): void {
    if (this.pos + bytes <= this.buf.length) return;
    const next = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.pos + bytes));
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  /** Text that is ASCII and needs no escaping, as is: JSON punctuation and keys. */
  ascii(s: string): void {
    const n = s.length;
    this.ensure(n);
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < n; i++) buf[p++] = s.charCodeAt(i);
    this.pos = p;
  }

  /** Bytes written earlier by a writer (a cached piece of a record). */
  bytes(b: Buffer): void {
    if (b.length === 0) return; // an empty part (no location): not worth a native call
    this.ensure(b.length);
    // Buffer#copy: for short pieces, cheaper than TypedArray#set or a loop.
    this.pos += b.copy(this.buf, this.pos);
  }

  /** JSON text (e.g. JSON.stringify output) as UTF-8, unescaped. */
  json(text: string): void {
    this.ensure(text.length * 3);
    this.pos += this.buf.write(text, this.pos, 'utf8');
  }

  /** A number, as JSON writes it; integers (every time in a record) without an intermediate string. */
  number(n: number): void {
    if (!Number.isSafeInteger(n)) {
      this.ascii(JSON.stringify(n));
      return;
    }
    this.ensure(17);
    if (n < 0) {
      this.buf[this.pos++] = 0x2d;
      n = -n;
    }
    if (n < 1e8) {
      this.digits(n, 0);
      return;
    }
    // Two 32-bit halves, so that every step below is exact integer arithmetic.
    let high = Math.floor(n / 1e8);
    let low = n - high * 1e8;
    if (low < 0) {
      high--;
      low += 1e8;
    } else if (low >= 1e8) {
      high++;
      low -= 1e8;
    }
    this.digits(high, 0);
    this.digits(low, 8);
  }

  /** A non-negative integer below 2^31, left-padded with zeros to `width` digits. */
  private digits(n: number, width: number): void {
    let count = 1;
    for (let t = n; t >= 10; t = (t / 10) | 0) count++;
    if (count < width) count = width;
    const buf = this.buf;
    let p = this.pos + count;
    this.pos = p;
    for (let i = 0; i < count; i++) {
      const next = (n / 10) | 0;
      buf[--p] = 0x30 + (n - next * 10);
      n = next;
    }
  }

  /** A JSON string literal of `s`, exactly as JSON.stringify writes it, in UTF-8. */
  string(s: string): void {
    const n = s.length;
    this.ensure(n * MAX_BYTES_PER_CODE_UNIT + 2);
    const buf = this.buf;
    let p = this.pos;
    buf[p++] = 0x22;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x80) {
        if (PLAIN[c] === 1) {
          buf[p++] = c;
          continue;
        }
        buf[p++] = 0x5c;
        switch (c) {
          case 0x22: buf[p++] = 0x22; break;
          case 0x5c: buf[p++] = 0x5c; break;
          case 0x08: buf[p++] = 0x62; break;
          case 0x0c: buf[p++] = 0x66; break;
          case 0x0a: buf[p++] = 0x6e; break;
          case 0x0d: buf[p++] = 0x72; break;
          case 0x09: buf[p++] = 0x74; break;
          default: p = unicodeEscape(buf, p, c);
        }
      } else if (c < 0x800) {
        buf[p++] = 0xc0 | (c >> 6);
        buf[p++] = 0x80 | (c & 0x3f);
      } else if (c < 0xd800 || c > 0xdfff) {
        buf[p++] = 0xe0 | (c >> 12);
        buf[p++] = 0x80 | ((c >> 6) & 0x3f);
        buf[p++] = 0x80 | (c & 0x3f);
      } else {
        const d = c <= 0xdbff && i + 1 < n ? s.charCodeAt(i + 1) : 0;
        if (d >= 0xdc00 && d <= 0xdfff) {
          const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          buf[p++] = 0xf0 | (cp >> 18);
          buf[p++] = 0x80 | ((cp >> 12) & 0x3f);
          buf[p++] = 0x80 | ((cp >> 6) & 0x3f);
          buf[p++] = 0x80 | (cp & 0x3f);
          i++;
        } else {
          // A lone surrogate has no UTF-8 form: JSON.stringify escapes it.
          buf[p++] = 0x5c;
          p = unicodeEscape(buf, p, c);
        }
      }
    }
    buf[p++] = 0x22;
    this.pos = p;
  }
}

/** `uXXXX` (after the backslash), lowercase hex as JSON.stringify writes it. */
function unicodeEscape(buf: Buffer, p: number, c: number): number {
  buf[p++] = 0x75;
  buf[p++] = HEX.charCodeAt((c >> 12) & 0xf);
  buf[p++] = HEX.charCodeAt((c >> 8) & 0xf);
  buf[p++] = HEX.charCodeAt((c >> 4) & 0xf);
  buf[p++] = HEX.charCodeAt(c & 0xf);
  return p;
}
