/**
 * Token buckets per key (an API key id, a site): `take(key, n)` spends n tokens or says how long
 * until they would be there. Each bucket refills continuously at `ratePerSecond` up to `burst`.
 *
 * Limits are per process: with G gateway processes a tenant can reach G × the rate. That keeps
 * the hot path free of a network round trip; operators size the rate per gateway (README).
 * Memory is bounded: idle buckets (full again) are dropped first, and past `maxKeys` the oldest
 * bucket goes — a dropped bucket comes back full, which only ever errs toward admitting.
 */
export interface TokenBucketOptions {
  readonly ratePerSecond: number;
  readonly burst: number;
  readonly maxKeys?: number;
  readonly now?: () => number;
}

interface Bucket {
  tokens: number;
  atMs: number;
}

export type Take = { readonly ok: true } | { readonly ok: false; readonly retryAfterMs: number };

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();
  private readonly now: () => number;
  private readonly maxKeys: number;

  constructor(private readonly options: TokenBucketOptions) {
    if (!(options.ratePerSecond > 0) || !(options.burst >= 1)) throw new RangeError('ratePerSecond must be > 0 and burst >= 1');
    this.now = options.now ?? Date.now;
    this.maxKeys = options.maxKeys ?? 100_000;
  }

  take(key: string, n = 1): Take {
    const now = this.now();
    const { ratePerSecond, burst } = this.options;
    let b = this.buckets.get(key);
    if (b) {
      b.tokens = Math.min(burst, b.tokens + ((now - b.atMs) / 1000) * ratePerSecond);
      b.atMs = now;
      // Re-insert so Map order is least recently used first.
      this.buckets.delete(key);
    } else {
      b = { tokens: burst, atMs: now };
      this.evict();
    }
    this.buckets.set(key, b);
    // A request larger than the burst can never fit; it is admitted only from a full bucket, leaving it in debt.
    const need = Math.min(n, burst);
    if (b.tokens >= need) {
      b.tokens -= n;
      return { ok: true };
    }
    return { ok: false, retryAfterMs: Math.ceil(((need - b.tokens) / ratePerSecond) * 1000) };
  }

  get size(): number {
    return this.buckets.size;
  }

  private evict(): void {
    if (this.buckets.size < this.maxKeys) return;
    const oldest = this.buckets.keys().next();
    if (!oldest.done) this.buckets.delete(oldest.value);
  }
}
