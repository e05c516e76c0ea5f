/**
 * The read side of versioned rollups: a RollupStore whose `read` serves, for each UTC day of
 * the range, the rows of that day's active rollup version (VersionDirectory), mapped back to
 * the site — so the query service, built on a RollupStore, answers from reprocessed history
 * without knowing it exists. Writes (the live aggregator's), watermarks and checkpoints pass
 * through to the base store unchanged: live rows stay under the site key.
 *
 * Correctness of a range read: every tier's bucket lies in one UTC day, so splitting the range
 * at day boundaries and reading each day from one version yields each bucket once, from the
 * version active for its day. A switch is atomic per (site, day), so a read sees a day wholly
 * old or wholly new.
 *
 * The site's directory is cached for `directoryCacheMs` (1 s by default): the cost is one
 * single-partition read per site and second. A switch made in this process invalidates the
 * entry at once (`invalidate`); another process sees it within directoryCacheMs, which is why
 * the reprocess runner publishes its LiveBus notice again after that delay (reprocess-runner.ts).
 */
import type { Rollup, Tier } from '../aggregate/rollup.js';
import type { RollupParts, RollupStore } from '../aggregate/rollup-store.js';
import type { DayVersion, LiveLogicEntry, VersionDirectory } from './version-directory.js';
import { DAY_MS, LIVE_VERSION, dayOf, dayStartMs, versionSiteKey } from './version-key.js';

export interface VersionedRollupStoreOptions {
  /** How long a site's directory is reused. Default 1000 ms; 0 reads it on every read. */
  readonly directoryCacheMs?: number;
  /** Sites whose directory is kept. Default 10 000 (then the cache starts over). */
  readonly maxCachedSites?: number;
  /** Scope of the live logic history (the aggregator group id). */
  readonly liveLogicScope?: string;
  /** The logic version of live rows when no history says otherwise (the running aggregator's). */
  readonly liveLogicVersion?: number;
  readonly now?: () => number;
}

/** Where a range's numbers come from: what query responses can show. */
export interface Provenance {
  /** The logic versions that built the rows of the range, ascending. */
  readonly logicVersions: number[];
  /** Days of the range served from a reprocessed version. */
  readonly reprocessedDays: number;
  /** final: the whole range ends at or before the store watermark; provisional: some buckets may still change. */
  readonly status: 'final' | 'provisional';
  /** The store watermark read (buckets ending at or before it are final); null before any. */
  readonly watermarkMs: number | null;
}

interface CachedDirectory {
  readonly atMs: number;
  /** Days whose active version is not live. */
  readonly versions: ReadonlyMap<number, DayVersion>;
}

export class VersionedRollupStore implements RollupStore {
  private readonly cache = new Map<string, CachedDirectory>();
  private readonly loading = new Map<string, Promise<CachedDirectory>>();
  private readonly cacheMs: number;
  private readonly maxSites: number;
  private readonly now: () => number;

  constructor(readonly base: RollupStore, private readonly directory: VersionDirectory, private readonly options: VersionedRollupStoreOptions = {}) {
    this.cacheMs = options.directoryCacheMs ?? 1_000;
    this.maxSites = options.maxCachedSites ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  upsert(rows: readonly Rollup[]): Promise<void> {
    return this.base.upsert(rows);
  }

  async read(site: string, tier: Tier, fromMs: number, toMs: number, parts?: RollupParts): Promise<Rollup[]> {
    const readBase = (key: string, from: number, to: number) => (parts === undefined ? this.base.read(key, tier, from, to) : this.base.read(key, tier, from, to, parts));
    if (!(toMs > fromMs)) return readBase(site, fromMs, toMs);
    const { versions } = await this.directoryOf(site);
    if (versions.size === 0) return readBase(site, fromMs, toMs);
    const segments = segmentsOf(fromMs, toMs, (day) => versions.get(day)?.version ?? LIVE_VERSION);
    const pieces = await Promise.all(segments.map(async (s) => {
      if (s.version === LIVE_VERSION) return readBase(site, s.fromMs, s.toMs);
      const rows = await readBase(versionSiteKey(site, s.version), s.fromMs, s.toMs);
      return rows.map((r): Rollup => ({ ...r, site }));
    }));
    return pieces.flat();
  }

  setWatermark(partition: number, watermarkMs: number): Promise<void> {
    return this.base.setWatermark(partition, watermarkMs);
  }

  partitionWatermark(partition: number): Promise<number | null> {
    return this.base.partitionWatermark(partition);
  }

  watermark(): Promise<number | null> {
    return this.base.watermark();
  }

  saveCheckpoint(partition: number, id: string, data: Uint8Array): Promise<void> {
    return this.base.saveCheckpoint(partition, id, data);
  }

  loadCheckpoint(partition: number, id: string): Promise<Uint8Array | null> {
    return this.base.loadCheckpoint(partition, id);
  }

  /** Owns nothing: the base store and the directory are closed by their owner. */
  async close(): Promise<void> {}

  /** Forget a site's cached directory (after a switch in this process), or every site's. */
  invalidate(site?: string): void {
    if (site === undefined) this.cache.clear();
    else this.cache.delete(site);
  }

  /** The days of a site whose active version is not live, as the (possibly cached) directory says. */
  async versionedDays(site: string): Promise<ReadonlyMap<number, DayVersion>> {
    return (await this.directoryOf(site)).versions;
  }

  /** Where the numbers of [fromMs, toMs) come from (see Provenance). */
  async provenance(site: string, fromMs: number, toMs: number): Promise<Provenance> {
    const watermarkMs = await this.base.watermark();
    const { versions } = await this.directoryOf(site);
    const history = this.options.liveLogicScope === undefined ? [] : await this.directory.liveLogic(this.options.liveLogicScope);
    const logic = new Set<number>();
    let reprocessedDays = 0;
    if (toMs > fromMs) {
      for (let day = dayOf(fromMs); day <= dayOf(toMs - 1); day++) {
        const v = versions.get(day);
        if (v) {
          reprocessedDays++;
          if (v.logicVersion !== null) logic.add(v.logicVersion);
        } else {
          for (const l of liveLogicOf(history, dayStartMs(day), dayStartMs(day) + DAY_MS, this.options.liveLogicVersion)) logic.add(l);
        }
      }
    }
    return {
      logicVersions: [...logic].sort((a, b) => a - b),
      reprocessedDays,
      status: watermarkMs !== null && toMs <= watermarkMs ? 'final' : 'provisional',
      watermarkMs,
    };
  }

  private directoryOf(site: string): Promise<CachedDirectory> {
    const cached = this.cache.get(site);
    if (cached && this.now() - cached.atMs < this.cacheMs) return Promise.resolve(cached);
    let loading = this.loading.get(site);
    if (!loading) {
      const atMs = this.now();
      loading = this.directory.active(site).then((entries) => {
        const versions = new Map(entries.filter((e) => e.version !== LIVE_VERSION).map((e) => [e.day, e]));
        const entry: CachedDirectory = { atMs, versions };
        if (this.cache.size >= this.maxSites) this.cache.clear();
        if (this.cacheMs > 0) this.cache.set(site, entry);
        return entry;
      }).finally(() => this.loading.delete(site));
      this.loading.set(site, loading);
    }
    return loading;
  }
}

export interface Segment {
  readonly fromMs: number;
  readonly toMs: number;
  readonly version: number;
}

/** [fromMs, toMs) cut at UTC day boundaries, neighbouring days of one version joined. */
export function segmentsOf(fromMs: number, toMs: number, versionOf: (day: number) => number): Segment[] {
  const out: Segment[] = [];
  let at = fromMs;
  while (at < toMs) {
    const day = dayOf(at);
    const end = Math.min(toMs, dayStartMs(day + 1));
    const version = versionOf(day);
    const last = out.at(-1);
    if (last && last.version === version && last.toMs === at) out[out.length - 1] = { ...last, toMs: end };
    else out.push({ fromMs: at, toMs: end, version });
    at = end;
  }
  return out;
}

/**
 * The logic versions that built live rows of [fromMs, toMs): each history entry holds from its
 * sinceMs to the next one's, and the first also before its own (the history starts when
 * recording started; what ran before is not known better). No history: `fallback` (the running
 * logic), if given.
 */
export function liveLogicOf(history: readonly LiveLogicEntry[], fromMs: number, toMs: number, fallback: number | undefined): number[] {
  const out: number[] = [];
  for (let i = 0; i < history.length; i++) {
    const start = i === 0 ? Number.NEGATIVE_INFINITY : history[i]!.sinceMs;
    const end = i + 1 < history.length ? history[i + 1]!.sinceMs : Number.POSITIVE_INFINITY;
    if (start < toMs && end > fromMs) out.push(history[i]!.logicVersion);
  }
  if (out.length === 0 && fallback !== undefined) out.push(fallback);
  return out;
}
