/**
 * QueryCache: serialized query responses shared by every gateway process, invalidated by the
 * writer when the buckets they cover change. Real implementation: Redis (adapters/redis);
 * embedded: adapters/memory.
 *
 * Invalidation is by generation, one counter per (site, UTC day). A bucket change for site S
 * bumps the counter of the day the bucket falls in. Each entry is stored with the *version* of
 * its scope — the site's epoch, the scope's first and last day, and the sum of the counters of
 * the days the scope covers — and is returned only while that version is still current. Why
 * per day rather than one counter per site: an active site writes a bucket every few seconds,
 * so a per-site counter would throw away every cached response of that site, including the
 * historical ranges (last week, last month) that are the ones worth caching, while today's rows
 * flow in. A day is the coarsest interval the API has, and a version costs min(days in the
 * scope, days ever bumped) counter reads, done next to the data in one round trip. Finer grain
 * (per hour) would multiply that cost by 24 for long ranges and buy little: ranges that reach
 * into the current day are invalidated by its writes either way.
 *
 * Why a sum is a sound version: counters only ever increase within an epoch, so any bump of a
 * covered day strictly increases the sum, and a version once left can never come back. The
 * epoch is a fresh unique value whenever a site's counters are (re)created — first use,
 * expiry, eviction, overflow — so a reset can never make an old entry current again (no ABA).
 *
 * The read protocol that makes a miss-then-fill safe (QueryService follows it):
 *   1. `get` returns the cached value if current, and always a ticket holding the version it saw;
 *   2. on a miss, read the store AFTER `get` resolved;
 *   3. `set(ticket, value)` stores the value under the ticket's version — and only if that
 *      version is still current, so a slow filler never overwrites a fresher entry.
 * The writer side bumps AFTER its store write resolved (see invalidating-live-bus.ts). So a
 * value read from the store before a concurrent write is stored under a version older than the
 * bump, and is never served: either the bump came before step 1 (the value read in step 2
 * includes the write) or after it (the ticket's version is stale).
 *
 * Contract (test/contract/query-cache.contract.ts):
 * - `get` returns a value only if it was `set` with a ticket for the same site, key and scope,
 *   within its TTL, and no bucket of the site in a day the scope covers was invalidated
 *   between the `get` that issued the ticket and now;
 * - invalidating a bucket of another site, or of a day the scope does not cover, leaves an
 *   entry current;
 * - `set` with a stale ticket stores nothing; entries of one site are never returned for
 *   another.
 * Failures throw; a caller treats a failing cache as a miss (the cache is never the truth).
 */

export const CACHE_DAY_MS = 86_400_000;

/** What an entry depends on: the buckets of `site` with fromMs <= bucketMs < toMs. */
export interface CacheScope {
  readonly site: string;
  readonly fromMs: number;
  readonly toMs: number;
}

/** Permission to fill an entry, carrying the version seen before the store was read. Opaque. */
export interface CacheTicket {
  readonly scope: CacheScope;
  readonly key: string;
  readonly version: string;
}

export interface CacheLookup {
  /** The cached value, or undefined on a miss. */
  readonly value: string | undefined;
  readonly ticket: CacheTicket;
}

export interface QueryCache {
  /** `key` names the response within the site (route and parameters); the site is in `scope`. */
  get(scope: CacheScope, key: string): Promise<CacheLookup>;
  /** Store `value` for `ttlMs` under the ticket's version; a no-op if the version is stale. */
  set(ticket: CacheTicket, value: string, ttlMs: number): Promise<void>;
  /** Make every entry of `site` whose scope covers the day of any of `bucketsMs` stale. */
  invalidate(site: string, bucketsMs: readonly number[]): Promise<void>;
  close(): Promise<void>;
}

/** The UTC day number of a time in ms. */
export function cacheDayOf(ms: number): number {
  return Math.floor(ms / CACHE_DAY_MS);
}

/** First and last UTC day numbers that [fromMs, toMs) touches (toMs > fromMs). */
export function cacheDaySpan(scope: CacheScope): { firstDay: number; lastDay: number } {
  return { firstDay: cacheDayOf(scope.fromMs), lastDay: cacheDayOf(Math.max(scope.fromMs, scope.toMs - 1)) };
}

/** The distinct days of a list of buckets, ascending: what an invalidation bumps. */
export function cacheDaysOf(bucketsMs: readonly number[]): number[] {
  return [...new Set(bucketsMs.filter(Number.isFinite).map(cacheDayOf))].sort((a, b) => a - b);
}
