/**
 * In-process QueryCache for the embedded default and tests: the same per-(site, day)
 * generation scheme as the Redis one (see query/query-cache.ts), in maps.
 *
 * Memory is bounded: entries by total size (least recently used go first), sites' generation
 * state by count (least recently used go first) and each site's day counters by count (the
 * site starts a new epoch). Dropping generation state is always safe: the next use starts a
 * new epoch, and no entry stored under an old one can be current again.
 */
import {
  cacheDaysOf, cacheDaySpan,
  type CacheLookup, type CacheScope, type CacheTicket, type QueryCache,
} from '../../query/query-cache.js';

export interface MemoryQueryCacheOptions {
  /** Upper bound on the UTF-16 code units of cached values held; default 64 Mi. */
  readonly maxValueChars?: number;
  /** Sites whose generations are tracked; default 100 000. */
  readonly maxSites?: number;
  /** Day counters per site before the site starts a new epoch; default 10 000. */
  readonly maxDaysPerSite?: number;
  readonly now?: () => number;
}

interface SiteGenerations {
  readonly epoch: number;
  readonly days: Map<number, number>;
}

interface Entry {
  readonly version: string;
  readonly value: string;
  readonly expiresAtMs: number;
}

export class MemoryQueryCache implements QueryCache {
  private readonly entries = new Map<string, Entry>();
  private readonly sites = new Map<string, SiteGenerations>();
  private valueChars = 0;
  private nextEpoch = 1;
  private readonly maxValueChars: number;
  private readonly maxSites: number;
  private readonly maxDaysPerSite: number;
  private readonly now: () => number;

  constructor(options: MemoryQueryCacheOptions = {}) {
    this.maxValueChars = options.maxValueChars ?? 64 * 1024 * 1024;
    this.maxSites = options.maxSites ?? 100_000;
    this.maxDaysPerSite = options.maxDaysPerSite ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  async get(scope: CacheScope, key: string): Promise<CacheLookup> {
    const version = this.version(scope, true)!;
    const ticket: CacheTicket = { scope, key, version };
    const id = entryId(scope.site, key);
    const entry = this.entries.get(id);
    if (!entry) return { value: undefined, ticket };
    if (entry.expiresAtMs <= this.now()) {
      this.drop(id, entry);
      return { value: undefined, ticket };
    }
    if (entry.version !== version) return { value: undefined, ticket };
    // Refresh recency: Map order is the LRU order.
    this.entries.delete(id);
    this.entries.set(id, entry);
    return { value: entry.value, ticket };
  }

  async set(ticket: CacheTicket, value: string, ttlMs: number): Promise<void> {
    if (!(ttlMs > 0) || value.length > this.maxValueChars) return;
    if (this.version(ticket.scope, false) !== ticket.version) return;
    const id = entryId(ticket.scope.site, ticket.key);
    const old = this.entries.get(id);
    if (old) this.drop(id, old);
    this.entries.set(id, { version: ticket.version, value, expiresAtMs: this.now() + ttlMs });
    this.valueChars += value.length;
    for (const [oldestId, oldest] of this.entries) {
      if (this.valueChars <= this.maxValueChars) break;
      this.drop(oldestId, oldest);
    }
  }

  async invalidate(site: string, bucketsMs: readonly number[]): Promise<void> {
    const days = cacheDaysOf(bucketsMs);
    if (days.length === 0) return;
    let gens = this.touchSite(site, true)!;
    if (gens.days.size + days.length > this.maxDaysPerSite) {
      // A new epoch makes every entry of the site stale: coarser, never wrong.
      this.sites.delete(site);
      gens = this.touchSite(site, true)!;
    }
    for (const d of days) gens.days.set(d, (gens.days.get(d) ?? 0) + 1);
  }

  async close(): Promise<void> {
    this.entries.clear();
    this.sites.clear();
    this.valueChars = 0;
  }

  /** Current version of a scope; creates the site's epoch when asked (get), never on set. */
  private version(scope: CacheScope, create: boolean): string | undefined {
    const gens = this.touchSite(scope.site, create);
    if (!gens) return undefined;
    const { firstDay, lastDay } = cacheDaySpan(scope);
    let sum = 0;
    if (lastDay - firstDay + 1 <= gens.days.size) {
      for (let d = firstDay; d <= lastDay; d++) sum += gens.days.get(d) ?? 0;
    } else {
      for (const [d, n] of gens.days) if (d >= firstDay && d <= lastDay) sum += n;
    }
    return `${gens.epoch}:${firstDay}:${lastDay}:${sum}`;
  }

  private touchSite(site: string, create: boolean): SiteGenerations | undefined {
    let gens = this.sites.get(site);
    if (gens) {
      this.sites.delete(site);
      this.sites.set(site, gens);
      return gens;
    }
    if (!create) return undefined;
    gens = { epoch: this.nextEpoch++, days: new Map() };
    this.sites.set(site, gens);
    if (this.sites.size > this.maxSites) {
      const oldest = this.sites.keys().next().value as string;
      this.sites.delete(oldest);
    }
    return gens;
  }

  private drop(id: string, entry: Entry): void {
    this.entries.delete(id);
    this.valueChars -= entry.value.length;
  }
}

/** Site and key joined so that no (site, key) pair can collide with another. */
function entryId(site: string, key: string): string {
  return `${site.length}:${site}:${key}`;
}
