/**
 * RollupStore: absolute rollups, one row per (site, tier, UTC bucket) — see rollup.ts for what
 * a row holds — plus the aggregator's per-partition watermarks and session checkpoints.
 * Real implementation: Cassandra (adapters/cassandra); embedded: adapters/memory.
 *
 * Contract (test/contract/rollup-store.contract.ts):
 * - `upsert` replaces whole rows: writing the same row twice is the same as writing it once,
 *   and a later write of a row wins (rows are absolute values, never increments);
 * - `read` returns the rows of one site and tier with from <= bucketMs < to, ordered by bucketMs;
 *   with `parts`, each row with only the named dimensions (the rest of the row — totals,
 *   visitors, revenue, bots — always comes back): the same rows, projected. A store keeps each
 *   dimension separately readable, so such a read costs what those dimensions weigh, not the
 *   whole rows. A dimension a row has not is absent from it, even if an earlier write of the
 *   row had it (upserts stay whole-row);
 * - rows expire after their tier's retention, counted from the bucket's time;
 * - a site never sees another site's rows;
 * - watermarks are per event-log partition and only move forward;
 * - a checkpoint is stored whole under (partition, id) and read back byte for byte; any size.
 */
import type { DimensionName, Rollup, Tier } from './rollup.js';

export type { Rollup, Tier } from './rollup.js';
export { OTHER_KEY } from './rollup.js';

/** What a read returns of each row besides its head (totals, visitors, revenue, bots). */
export interface RollupParts {
  /** The dimensions to return; [] for none (series and totals need only the head). */
  readonly dims: readonly DimensionName[];
}

export interface RollupStore {
  upsert(rows: readonly Rollup[]): Promise<void>;
  /** Rows of [fromMs, toMs); `parts` absent: whole rows. */
  read(site: string, tier: Tier, fromMs: number, toMs: number, parts?: RollupParts): Promise<Rollup[]>;
  /** Record that every bucket ending at or before `watermarkMs` is final for a partition. */
  setWatermark(partition: number, watermarkMs: number): Promise<void>;
  /** The lowest partition watermark: buckets ending at or before it are final everywhere. */
  watermark(): Promise<number | null>;
  /** One partition's watermark (the highest written for it), or null when none was. */
  partitionWatermark(partition: number): Promise<number | null>;
  /** Aggregator session state of a partition as of a commit (aggregator.ts); kept a few days. */
  saveCheckpoint(partition: number, id: string, data: Uint8Array): Promise<void>;
  loadCheckpoint(partition: number, id: string): Promise<Uint8Array | null>;
  close(): Promise<void>;
}
