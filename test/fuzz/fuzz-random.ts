/**
 * Seeded randomness for the fuzz campaign, on the project's one PRNG (demo-traffic's mulberry32):
 * the same seed replays the same campaign byte for byte, so a failure in CI is reproducible.
 */
import { rng } from '../../src/demo/demo-traffic.js';

export class FuzzRandom {
  private readonly next: () => number;

  constructor(readonly seed: number) {
    this.next = rng(seed);
  }

  /** A float in [0, 1). */
  float(): number {
    return this.next();
  }

  /** An integer in [lo, hi] (both inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }

  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(this.next() * 256);
    return b;
  }

  /** A copy of `bytes` with `flips` random bits inverted. */
  flipBits(bytes: Buffer, flips: number): Buffer {
    const b = Buffer.from(bytes);
    if (b.length === 0) return b;
    for (let i = 0; i < flips; i++) {
      const at = this.int(0, b.length - 1);
      b[at] = b[at]! ^ (1 << this.int(0, 7));
    }
    return b;
  }

  /** A string of `n` characters from a hostile alphabet: quotes, escapes, controls, surrogates, RTL, emoji. */
  hostileString(n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += this.pick(HOSTILE_CHARS);
    return s;
  }
}

/**
 * Characters that break naive encoders: JSON metacharacters, C0 controls including NUL, DEL,
 * line and paragraph separators, a BOM, a lone high and a lone low surrogate (legal in a JSON
 * string via escapes), a surrogate pair, combining and bidi marks, and ordinary letters.
 */
export const HOSTILE_CHARS: readonly string[] = [
  'a', 'Z', '0', ' ', '"', '\\', '/', '\'', '`', '<', '>', '&', '%', '{', '}', '[', ']', ':', ',',
  '\u0000', '\u0001', '\b', '\t', '\n', '\r', '\u001b', '\u001f', '\u007f',
  '\u2028', '\u2029', '\ufeff', '\ud800', '\udfff', '😀', '\u0301', '\u202e', 'é', '中', '\uffff',
];
