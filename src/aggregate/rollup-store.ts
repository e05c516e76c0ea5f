/**
 * RollupStore: absolute per-minute rollups, one row per (site, UTC minute bucket).
 * Real implementation: Cassandra (adapters/cassandra); embedded: adapters/memory.
 *
 * Contract (test/contract/rollup-store.contract.ts):
 * - `upsert` replaces whole rows: writing the same row twice is the same as writing it once,
 *   and a later write of a row wins (rows are absolute values, never increments);
 * - `read` returns the rows of one site with from <= bucketMs < to, ordered by bucketMs;
 * - a site never sees another site's rows;
 * - watermarks are per event-log partition and only move forward.
 */
export interface MinuteRollup {
  readonly site: string;
  /** Start of the UTC minute, ms since epoch. */
  readonly bucketMs: number;
  readonly pageviews: number;
  readonly events: number;
  /** HyperLogLog registers of the bucket's visitors (see aggregate/hyperloglog.ts). */
  readonly visitors: Uint8Array;
  /** Pageviews by path, capped; the rest are under OTHER_KEY. */
  readonly pages: Readonly<Record<string, number>>;
  /** Pageviews by referrer source, capped; the rest are under OTHER_KEY. */
  readonly sources: Readonly<Record<string, number>>;
}

export const OTHER_KEY = '(other)';

export interface RollupStore {
  upsert(rows: readonly MinuteRollup[]): Promise<void>;
  read(site: string, fromMs: number, toMs: number): Promise<MinuteRollup[]>;
  /** Record that every bucket ending at or before `watermarkMs` is final for a partition. */
  setWatermark(partition: number, watermarkMs: number): Promise<void>;
  /** The lowest partition watermark: buckets ending at or before it are final everywhere. */
  watermark(): Promise<number | null>;
  close(): Promise<void>;
}
