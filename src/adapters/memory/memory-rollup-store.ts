/**
 * In-memory RollupStore for the embedded default and tests, with the Cassandra store's
 * semantics (test/contract/rollup-store.contract.ts):
 *
 * - rows are kept as their encoded parts (rollup-codec.ts encodeRollupParts: a head and one
 *   blob per dimension), exactly as Cassandra keeps them: an upsert replaces the row whole, a
 *   caller mutating its row afterwards changes nothing stored, every read returns fresh rows,
 *   a read with `parts` decodes only the head and the dimensions named, and a row that
 *   Cassandra could not store (bad counts, bad sketches) fails here too;
 * - rows are filed by period (an hour of minutes, a day of quarters, four days of hours, 96
 *   days of days, as Cassandra partitions them), so a read visits the periods of its range,
 *   not every row of the site and tier;
 * - retention per tier, counted from the bucket start against the injectable clock `now`:
 *   rows already past retention are not written, expired rows are never returned, and a sweep
 *   (at most once a minute, on upsert) frees them. Default: no retention (`new
 *   MemoryRollupStore()` keeps everything, as tests expect); the composition root passes the
 *   configured one;
 * - checkpoints are copied in and out, expire after `checkpointTtlMs` (7 days), and — a memory
 *   bound Cassandra does not need — only the newest `maxCheckpointsPerPartition` (16) of a
 *   partition are kept: the aggregator only ever loads its latest committed one.
 */
import { decodeRollupParts, encodeRollupParts } from '../../aggregate/rollup-codec.js';
import { checkBucket } from '../../aggregate/rollup-merge.js';
import { TIERS, type Rollup, type Tier } from '../../aggregate/rollup.js';
import type { RollupParts, RollupStore } from '../../aggregate/rollup-store.js';
import { resolveRetention, type TierRetention } from '../../aggregate/tier-roller.js';

export interface MemoryRollupStoreOptions {
  /** Per tier, ms from the bucket start; null or absent: forever. */
  readonly retentionMs?: Partial<TierRetention> | null;
  /** Default 7 days. */
  readonly checkpointTtlMs?: number;
  /** Default 16. */
  readonly maxCheckpointsPerPartition?: number;
  /** Wall clock, ms. */
  readonly now?: () => number;
}

const NO_RETENTION: TierRetention = { minute: null, quarter: null, hour: null, day: null };
/** Rows are filed per period of this length (Cassandra's partitions: cassandra-rollup-store.ts PERIOD_MS). */
const PERIOD_MS: Readonly<Record<Tier, number>> = { minute: 3_600_000, quarter: 86_400_000, hour: 4 * 86_400_000, day: 96 * 86_400_000 };
const SWEEP_INTERVAL_MS = 60_000;

/** A row as stored: its head and its dimension parts, each a copy of its own. */
interface StoredRow {
  readonly head: Uint8Array;
  readonly dims: ReadonlyMap<string, Uint8Array>;
}

interface StoredCheckpoint {
  readonly data: Uint8Array;
  readonly expiresAtMs: number;
}

export class MemoryRollupStore implements RollupStore {
  /** site → tier → period → bucketMs → parts. */
  private readonly sites = new Map<string, Map<Tier, Map<number, Map<number, StoredRow>>>>();
  private readonly watermarks = new Map<number, number>();
  /** partition → id → checkpoint, in save order (re-saving an id moves it last). */
  private readonly checkpoints = new Map<number, Map<string, StoredCheckpoint>>();
  private readonly retention: TierRetention;
  private readonly checkpointTtlMs: number;
  private readonly maxCheckpoints: number;
  private readonly now: () => number;
  private lastSweepMs = Number.NEGATIVE_INFINITY;

  constructor(options: MemoryRollupStoreOptions = {}) {
    this.retention = resolveRetention(options.retentionMs ?? null, NO_RETENTION);
    this.checkpointTtlMs = options.checkpointTtlMs ?? 7 * 86_400_000;
    this.maxCheckpoints = options.maxCheckpointsPerPartition ?? 16;
    if (!Number.isInteger(this.maxCheckpoints) || this.maxCheckpoints < 1) throw new RangeError(`maxCheckpointsPerPartition must be a positive integer, got ${this.maxCheckpoints}`);
    this.now = options.now ?? Date.now;
  }

  async upsert(rows: readonly Rollup[]): Promise<void> {
    const now = this.now();
    // Encode every row before storing any, so a bad row fails the call without a partial write.
    const encoded: Array<[Rollup, StoredRow]> = [];
    for (const row of rows) {
      checkRow(row);
      // As Cassandra: a row with less than a second left is not written.
      if (!this.alive(row.tier, row.bucketMs, now + 1000)) continue;
      const parts = encodeRollupParts(row);
      // Copies: the encoder's blobs are views into larger scratch buffers.
      encoded.push([row, { head: Uint8Array.from(parts.head), dims: new Map(parts.dims.map(([name, blob]) => [name, Uint8Array.from(blob)])) }]);
    }
    for (const [row, stored] of encoded) {
      let tiers = this.sites.get(row.site);
      if (!tiers) {
        tiers = new Map();
        this.sites.set(row.site, tiers);
      }
      let periods = tiers.get(row.tier);
      if (!periods) {
        periods = new Map();
        tiers.set(row.tier, periods);
      }
      const period = Math.floor(row.bucketMs / PERIOD_MS[row.tier]);
      let buckets = periods.get(period);
      if (!buckets) {
        buckets = new Map();
        periods.set(period, buckets);
      }
      buckets.set(row.bucketMs, stored);
    }
    if (now - this.lastSweepMs >= SWEEP_INTERVAL_MS) this.sweep(now);
  }

  async read(site: string, tier: Tier, fromMs: number, toMs: number, parts?: RollupParts): Promise<Rollup[]> {
    if (!TIERS.includes(tier)) throw new RangeError(`unknown tier ${JSON.stringify(tier)}`);
    if (!Number.isFinite(fromMs) || !Number.isFinite(toMs)) throw new RangeError(`read range must be finite: [${fromMs}, ${toMs})`);
    const periods = this.sites.get(site)?.get(tier);
    if (!periods) return [];
    const now = this.now();
    const wanted = parts ? new Set<string>(parts.dims) : null;
    const out: Rollup[] = [];
    const first = Math.floor(fromMs / PERIOD_MS[tier]);
    const last = Math.floor((toMs - 1) / PERIOD_MS[tier]);
    // Few periods in range: visit those; a range wider than the site's history: visit what there is.
    const keys = last - first + 1 <= periods.size ? Array.from({ length: Math.max(0, last - first + 1) }, (_, i) => first + i) : [...periods.keys()];
    for (const period of keys) {
      const buckets = periods.get(period);
      if (!buckets) continue;
      for (const [bucketMs, stored] of buckets) {
        if (bucketMs >= fromMs && bucketMs < toMs && this.alive(tier, bucketMs, now)) {
          out.push(decodeRollupParts(site, tier, bucketMs, stored.head, (name) => stored.dims.get(name), wanted));
        }
      }
    }
    return out.sort((a, b) => a.bucketMs - b.bucketMs);
  }

  async setWatermark(partition: number, watermarkMs: number): Promise<void> {
    const prev = this.watermarks.get(partition);
    if (prev === undefined || watermarkMs > prev) this.watermarks.set(partition, watermarkMs);
  }

  async partitionWatermark(partition: number): Promise<number | null> {
    return this.watermarks.get(partition) ?? null;
  }

  async watermark(): Promise<number | null> {
    if (this.watermarks.size === 0) return null;
    return Math.min(...this.watermarks.values());
  }

  async saveCheckpoint(partition: number, id: string, data: Uint8Array): Promise<void> {
    if (!Number.isInteger(partition) || partition < 0) throw new RangeError(`bad partition ${partition}`);
    if (typeof id !== 'string' || id === '') throw new RangeError('checkpoint id must be a non-empty string');
    let byId = this.checkpoints.get(partition);
    if (!byId) {
      byId = new Map();
      this.checkpoints.set(partition, byId);
    }
    byId.delete(id);
    byId.set(id, { data: Uint8Array.from(data), expiresAtMs: this.now() + this.checkpointTtlMs });
    while (byId.size > this.maxCheckpoints) byId.delete(byId.keys().next().value!);
  }

  async loadCheckpoint(partition: number, id: string): Promise<Uint8Array | null> {
    const stored = this.checkpoints.get(partition)?.get(id);
    if (!stored || stored.expiresAtMs <= this.now()) return null;
    return Uint8Array.from(stored.data);
  }

  async close(): Promise<void> {}

  private alive(tier: Tier, bucketMs: number, now: number): boolean {
    const retention = this.retention[tier];
    return retention === null || bucketMs + retention > now;
  }

  private sweep(now: number): void {
    this.lastSweepMs = now;
    for (const [site, tiers] of this.sites) {
      for (const [tier, periods] of tiers) {
        if (this.retention[tier] === null) continue;
        for (const [period, buckets] of periods) {
          for (const bucketMs of buckets.keys()) if (!this.alive(tier, bucketMs, now)) buckets.delete(bucketMs);
          if (buckets.size === 0) periods.delete(period);
        }
        if (periods.size === 0) tiers.delete(tier);
      }
      if (tiers.size === 0) this.sites.delete(site);
    }
    for (const byId of this.checkpoints.values()) {
      for (const [id, c] of byId) if (c.expiresAtMs <= now) byId.delete(id);
    }
  }
}

function checkRow(row: Rollup): void {
  if (typeof row.site !== 'string' || row.site === '') throw new TypeError('rollup row without a site');
  if (!TIERS.includes(row.tier)) throw new RangeError(`rollup row of ${row.site}: unknown tier ${JSON.stringify(row.tier)}`);
  checkBucket(row.tier, row.bucketMs);
}
