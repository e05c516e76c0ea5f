/**
 * RollupStore on Cassandra (schema: ROLLUP_PARTS_TABLES_CQL below — tables
 * rollup_parts_{minute,quarter,hour,day}, migration 6 — aggregate_checkpoints from migration 3
 * and rollup_watermarks from version 1).
 *
 * - One table per tier; rows live in one partition per (site, period). A period is a fixed
 *   number of buckets (PERIOD_MS: an hour of minutes, a day of quarters, four days of hours,
 *   96 days of days), so a partition holds at most 60–96 buckets whatever the site's size:
 *   rows carry per-dimension sketches and grow with traffic, bucket counts must not.
 * - A row is stored as parts (rollup-codec.ts encodeRollupParts): a head (totals, visitors
 *   sketch and its count, revenue, bots, the names of the row's dimensions) and one blob per
 *   dimension, clustered by (part, bucket_ms). The parts of one kind are contiguous on disk,
 *   so a read of [from, to) names the parts it needs (`part IN (...)`, always the head) and
 *   costs what those parts weigh: a series reads heads only, a page breakdown heads and pages,
 *   never the 20-odd other dimensions. A range read queries one partition per period,
 *   `readConcurrency` at a time, and concatenates them in period order, so rows come back
 *   ordered by bucket.
 * - `upsert` writes each row as one unlogged single-partition batch of its parts, prepared and
 *   idempotent: a single-partition batch is applied atomically and in isolation, so a reader
 *   sees every part of one write of a row, never a mix of two writes; a rewrite replaces the
 *   head and every part the row has, and the later write wins. A part the new row no longer
 *   has stays on disk until its TTL (no tombstones), but the head lists the row's dimensions
 *   and a reader ignores every part it does not list. Rows are written `writeConcurrency` at a
 *   time; several writes of one row in one call are reduced to the last.
 * - TTL per tier, computed from the bucket start: ttl = retention − (now − bucketMs). A replay
 *   or a restatement never extends retention, and rows already past retention are not written.
 *   Reads skip the periods that can only hold expired rows.
 * - Watermarks are monotone by construction, without a lightweight transaction: each one is
 *   written with a write timestamp equal to its own value (µs). Cassandra keeps, per cell, the
 *   write with the highest timestamp, so a lower watermark written later — by a slow flush,
 *   or by a previous owner of the partition after a rebalance — loses to the higher one
 *   whatever the order of arrival. An LWT (`IF watermark_ms < ?`) would cost four round trips
 *   per flush and a contended Paxos round at every rebalance; read-then-write-max is racy.
 *   The cost: lowering a watermark by hand needs a DELETE with a higher write timestamp; a
 *   replay from scratch should use a new scope instead.
 *   Watermarks and checkpoints are scoped (`watermarkScope`, e.g. the aggregator group id) so
 *   a reprocessing run beside the live one keeps its own, and `watermark()` reads one partition.
 * - Checkpoints are chunked (`checkpointChunkBytes`, 256 KiB): each save writes its chunks
 *   under a fresh save id, then — only once every chunk is written — the partition's static
 *   columns naming that save, its chunk count, size and SHA-256. `loadCheckpoint` follows the
 *   statics to one save and returns null when there is none, when a chunk is missing (a save
 *   that died, chunks that expired first) or when the digest differs. Kept `checkpointTtlMs`
 *   (7 days); the statics get the TTL left to the chunks, so they never outlive them.
 */
import { createHash, randomInt } from 'node:crypto';
import cassandra from 'cassandra-driver';
import { decodeRollupHead, decodeRollupParts, encodeRollupParts, HEAD_PART } from '../../aggregate/rollup-codec.js';
import { checkBucket } from '../../aggregate/rollup-merge.js';
import { DIMENSIONS, TIERS, type Rollup, type Tier } from '../../aggregate/rollup.js';
import type { RollupParts, RollupStore } from '../../aggregate/rollup-store.js';
import { DEFAULT_TIER_RETENTION, resolveRetention, type TierRetention } from '../../aggregate/tier-roller.js';
import { silentLogger, type Logger } from '../../log.js';
import {
  checkKeyspace, checkRetention, connectClient, mapBounded, pagedRows, requireTables, toNumber, ttlFor,
  type CassandraConnectOptions,
} from './cassandra-client.js';

export interface CassandraRollupStoreOptions extends CassandraConnectOptions {
  /**
   * How long rows of each tier live, from their bucket start, in ms; null (for a tier, or for
   * all) keeps them forever. Absent tiers: DEFAULT_TIER_RETENTION (the config's defaults).
   */
  readonly retentionMs?: Partial<TierRetention> | null;
  /** Statements in flight per upsert or checkpoint save. Default 32. */
  readonly writeConcurrency?: number;
  /** Partitions read in parallel per read call. Default 8. */
  readonly readConcurrency?: number;
  /** Stored parts (a head, or one dimension of one bucket) per page when reading a partition. Default 500. */
  readonly fetchSize?: number;
  /** Whose watermarks and checkpoints these are (the aggregator group, which carries the logic version). Default 'default'. */
  readonly watermarkScope?: string;
  /** How long a checkpoint is kept. Default 7 days. */
  readonly checkpointTtlMs?: number;
  /** Bytes per checkpoint chunk. Default 256 KiB. */
  readonly checkpointChunkBytes?: number;
  /** Wall clock for TTLs, ms. */
  readonly now?: () => number;
  readonly logger?: Logger;
}

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

/** Length of a partition's period per tier: at most 60 minute rows, 96 quarter, hour or day rows. */
export const PERIOD_MS: Readonly<Record<Tier, number>> = { minute: HOUR_MS, quarter: DAY_MS, hour: 4 * DAY_MS, day: 96 * DAY_MS };

/** The partition period of a bucket (whole periods since the epoch). */
export function periodOf(tier: Tier, bucketMs: number): number {
  return Math.floor(bucketMs / PERIOD_MS[tier]);
}

/** A read spanning more partitions than this is refused rather than fanned out. */
const MAX_READ_PARTITIONS = 10_000;
/** A checkpoint larger than this is refused on save and not trusted on load. */
const MAX_CHECKPOINT_BYTES = 1 << 30;

const TABLES = [...TIERS.map((t) => `rollup_parts_${t}`), 'rollup_watermarks', 'aggregate_checkpoints'] as const;

const DAY_S = 86_400;

/**
 * The tables this store reads and writes rows in (a schema migration; `{keyspace}` stands for
 * the keyspace). They replace migration 3's rollups_{tier}, whose one-blob rows made every read
 * fetch and decode whole rows; those tables are no longer read (a reprocess of the raw archive
 * rebuilds their rows here) and expire by their TTLs.
 * Per tier: partitions (site, period) as before; clustered by part (HEAD_PART, or a dimension
 * name) then bucket, so `part IN (...) AND bucket_ms >= ? AND bucket_ms < ?` reads contiguous
 * slices. Time-window compaction as migration 3 chose it (20–40 windows over each tier's
 * default retention); gc_grace_seconds a day: rows are never deleted, they expire.
 * Released as migration 6: never edit these statements (the runner checks their checksum); a
 * change of schema is a new migration.
 */
export const ROLLUP_PARTS_TABLES_CQL: readonly string[] = ([['minute', 1], ['quarter', 14], ['hour', 30], ['day', 180]] as const).map(([tier, windowDays]) => `CREATE TABLE IF NOT EXISTS {keyspace}.rollup_parts_${tier} (
        site text,
        period int,
        part text,
        bucket_ms bigint,
        data blob,
        PRIMARY KEY ((site, period), part, bucket_ms)
      ) WITH CLUSTERING ORDER BY (part ASC, bucket_ms ASC)
        AND compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'DAYS', 'compaction_window_size': ${windowDays}}
        AND gc_grace_seconds = ${DAY_S}`);

/** Every part a whole-row read asks for: the head and each known dimension. */
const ALL_PARTS: readonly string[] = [HEAD_PART, ...DIMENSIONS];

/**
 * The write time of one row's batch, in µs. A row is several cells (its head and each part), and
 * Cassandra settles each cell on its own by write time, a tie by the greater value: two writers
 * whose batches carry the same time could leave a row mixed from both. Driver timestamps are
 * milliseconds × 1000 plus a per-client counter, so two clients collide easily within one
 * millisecond; random low digits make a tie between two processes' concurrent writes a
 * 1-in-1000 event, and the next write of the row (every flush rewrites changed rows whole)
 * settles it.
 */
let lastWriteMicros = 0;
function writeTimestamp(): cassandra.types.Long {
  // Strictly increasing within the process, so this process's later write of a row always wins.
  lastWriteMicros = Math.max(Date.now() * 1000 + randomInt(1000), lastWriteMicros + 1);
  return cassandra.types.Long.fromNumber(lastWriteMicros);
}

export class CassandraRollupStore implements RollupStore {
  private readonly insertRow: Readonly<Record<Tier, string>>;
  private readonly selectPeriod: Readonly<Record<Tier, string>>;
  private readonly insertWatermark: string;
  private readonly selectWatermarks: string;
  private readonly selectPartitionWatermark: string;
  private readonly insertChunk: string;
  private readonly insertCheckpointHead: string;
  private readonly selectCheckpointHead: string;
  private readonly selectChunks: string;
  private readonly retention: TierRetention;
  private readonly writeConcurrency: number;
  private readonly readConcurrency: number;
  private readonly fetchSize: number;
  private readonly scope: string;
  private readonly checkpointTtlS: number;
  private readonly chunkBytes: number;
  private readonly now: () => number;
  private readonly logger: Logger;
  private closing: Promise<void> | undefined;

  /** Connects and checks that the schema is there; apply the migrations first. */
  static async connect(options: CassandraRollupStoreOptions): Promise<CassandraRollupStore> {
    checkKeyspace(options.keyspace);
    const retention = resolveRetention(options.retentionMs, DEFAULT_TIER_RETENTION);
    for (const tier of TIERS) checkRetention(`retentionMs.${tier}`, retention[tier]);
    const client = await connectClient(options);
    try {
      await requireTables(client, options.keyspace, TABLES);
    } catch (e) {
      await client.shutdown();
      throw e;
    }
    return new CassandraRollupStore(client, options, retention);
  }

  private constructor(private readonly client: cassandra.Client, options: CassandraRollupStoreOptions, retention: TierRetention) {
    const ks = options.keyspace;
    const perTier = (f: (tier: Tier) => string) => Object.fromEntries(TIERS.map((t) => [t, f(t)])) as Record<Tier, string>;
    this.insertRow = perTier((t) => `INSERT INTO ${ks}.rollup_parts_${t} (site, period, part, bucket_ms, data) VALUES (?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?`);
    this.selectPeriod = perTier((t) => `SELECT part, bucket_ms, data FROM ${ks}.rollup_parts_${t} WHERE site = ? AND period = ? AND part IN ? AND bucket_ms >= ? AND bucket_ms < ?`);
    this.insertWatermark = `INSERT INTO ${ks}.rollup_watermarks (scope, partition, watermark_ms) VALUES (?, ?, ?) USING TIMESTAMP ?`;
    this.selectWatermarks = `SELECT watermark_ms FROM ${ks}.rollup_watermarks WHERE scope = ?`;
    this.selectPartitionWatermark = `SELECT watermark_ms FROM ${ks}.rollup_watermarks WHERE scope = ? AND partition = ?`;
    this.insertChunk = `INSERT INTO ${ks}.aggregate_checkpoints (scope, partition, id, save_id, chunk, data) VALUES (?, ?, ?, ?, ?, ?) USING TTL ?`;
    this.insertCheckpointHead = `INSERT INTO ${ks}.aggregate_checkpoints (scope, partition, id, complete_save_id, chunks, total_bytes, digest) VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?`;
    this.selectCheckpointHead = `SELECT complete_save_id, chunks, total_bytes, digest FROM ${ks}.aggregate_checkpoints WHERE scope = ? AND partition = ? AND id = ? LIMIT 1`;
    this.selectChunks = `SELECT chunk, data FROM ${ks}.aggregate_checkpoints WHERE scope = ? AND partition = ? AND id = ? AND save_id = ?`;
    this.retention = retention;
    this.writeConcurrency = positive('writeConcurrency', options.writeConcurrency ?? 32);
    this.readConcurrency = positive('readConcurrency', options.readConcurrency ?? 8);
    this.fetchSize = positive('fetchSize', options.fetchSize ?? 500);
    this.scope = options.watermarkScope ?? 'default';
    const checkpointTtlMs = options.checkpointTtlMs ?? 7 * DAY_MS;
    checkRetention('checkpointTtlMs', checkpointTtlMs);
    this.checkpointTtlS = Math.floor(checkpointTtlMs / 1000);
    this.chunkBytes = positive('checkpointChunkBytes', options.checkpointChunkBytes ?? 256 * 1024);
    this.now = options.now ?? Date.now;
    this.logger = options.logger ?? silentLogger();
  }

  async upsert(rows: readonly Rollup[]): Promise<void> {
    // The last of several writes of one row in a call wins, as it would if written in order:
    // concurrent statements have no order of their own.
    const latest = new Map<string, Rollup>();
    for (const row of rows) {
      checkRow(row);
      latest.set(`${row.tier}\u0000${row.site}\u0000${row.bucketMs}`, row);
    }
    const now = this.now();
    const batches: Array<Array<{ query: string; params: unknown[] }>> = [];
    let expired = 0;
    for (const row of latest.values()) {
      const ttl = ttlFor(row.bucketMs, this.retention[row.tier], now);
      if (ttl === null) {
        expired++;
        continue;
      }
      const parts = encodeRollupParts(row);
      const query = this.insertRow[row.tier];
      const period = periodOf(row.tier, row.bucketMs);
      const ts = writeTimestamp();
      const batch = [{ query, params: [row.site, period, HEAD_PART, row.bucketMs, parts.head, ttl, ts] }];
      for (const [name, blob] of parts.dims) batch.push({ query, params: [row.site, period, name, row.bucketMs, blob, ttl, ts] });
      batches.push(batch);
    }
    if (expired > 0) this.logger.debug({ expired }, 'rollup rows past retention not written');
    if (batches.length === 0) return;
    // One unlogged batch per row: its parts share the partition, so the batch is one atomic,
    // isolated mutation (no batch log, no size limit meant for multi-partition batches).
    await mapBounded(batches, this.writeConcurrency, async (batch) => {
      await this.client.batch(batch, { prepare: true, logged: false });
    });
  }

  async read(site: string, tier: Tier, fromMs: number, toMs: number, parts?: RollupParts): Promise<Rollup[]> {
    if (!TIERS.includes(tier)) throw new RangeError(`unknown tier ${JSON.stringify(tier)}`);
    if (!Number.isFinite(fromMs) || !Number.isFinite(toMs)) throw new RangeError(`read range must be finite: [${fromMs}, ${toMs})`);
    // Rows before now - retention have expired: no need to visit their partitions.
    const retention = this.retention[tier];
    const from = Math.ceil(retention === null ? fromMs : Math.max(fromMs, this.now() - retention));
    const to = Math.ceil(toMs);
    if (to <= from) return [];
    const first = periodOf(tier, from);
    const last = periodOf(tier, to - 1);
    if (last - first + 1 > MAX_READ_PARTITIONS) throw new RangeError(`read of ${last - first + 1} ${tier} partitions exceeds ${MAX_READ_PARTITIONS}`);
    const periods = Array.from({ length: last - first + 1 }, (_, i) => first + i);
    const wanted = parts ? new Set<string>(parts.dims) : null;
    const names = parts ? [HEAD_PART, ...new Set(parts.dims)] : ALL_PARTS;
    const perPeriod = await mapBounded(periods, this.readConcurrency, async (period) => {
      const buckets = new Map<number, StoredParts>();
      await this.readParts(tier, site, period, from, to, names, buckets);
      if (!wanted) {
        // A whole-row read asked for the dimensions this code knows; a newer writer may have
        // stored others, which the heads list: fetch those too, so the row comes back whole.
        const more = new Set<string>();
        for (const [bucketMs, b] of buckets) {
          if (!b.head) continue;
          for (const name of decodeRollupHead(`${site} ${tier} ${bucketMs}`, b.head).dimensions) if (!b.dims.has(name) && !names.includes(name)) more.add(name);
        }
        if (more.size > 0) await this.readParts(tier, site, period, from, to, [...more], buckets);
      }
      const out: Rollup[] = [];
      for (const bucketMs of [...buckets.keys()].sort((a, b) => a - b)) {
        const b = buckets.get(bucketMs)!;
        // Parts without a head are leftovers of a row whose head expired first: no row.
        if (!b.head) continue;
        out.push(decodeRollupParts(site, tier, bucketMs, b.head, (name) => b.dims.get(name), wanted));
      }
      return out;
    });
    return perPeriod.flat();
  }

  /** Adds the parts `names` of one partition's buckets in [from, to) to `into`. */
  private async readParts(tier: Tier, site: string, period: number, from: number, to: number, names: readonly string[], into: Map<number, StoredParts>): Promise<void> {
    for await (const page of pagedRows(this.client, this.selectPeriod[tier], [site, period, names, from, to], this.fetchSize)) {
      for (const r of page) {
        const bucketMs = toNumber(r.get('bucket_ms'));
        let b = into.get(bucketMs);
        if (!b) {
          b = { head: null, dims: new Map() };
          into.set(bucketMs, b);
        }
        const part = r.get('part') as string;
        const data = r.get('data') as Buffer | null;
        if (data === null) continue;
        if (part === HEAD_PART) b.head = data;
        else b.dims.set(part, data);
      }
    }
  }

  async setWatermark(partition: number, watermarkMs: number): Promise<void> {
    checkPartition(partition);
    if (!Number.isSafeInteger(watermarkMs)) throw new RangeError(`bad watermark ${watermarkMs}`);
    await this.client.execute(this.insertWatermark, [
      this.scope, partition, watermarkMs, cassandra.types.Long.fromNumber(watermarkMs).multiply(1000),
    ]);
  }

  async watermark(): Promise<number | null> {
    const rs = await this.client.execute(this.selectWatermarks, [this.scope]);
    let min: number | null = null;
    for (const r of rs.rows) {
      const w = toNumber(r.get('watermark_ms'));
      if (min === null || w < min) min = w;
    }
    return min;
  }

  async partitionWatermark(partition: number): Promise<number | null> {
    checkPartition(partition);
    const row = (await this.client.execute(this.selectPartitionWatermark, [this.scope, partition])).first();
    return row ? toNumber(row.get('watermark_ms')) : null;
  }

  async saveCheckpoint(partition: number, id: string, data: Uint8Array): Promise<void> {
    checkPartition(partition);
    if (typeof id !== 'string' || id === '') throw new RangeError('checkpoint id must be a non-empty string');
    if (data.length > MAX_CHECKPOINT_BYTES) throw new RangeError(`checkpoint of ${data.length} bytes exceeds ${MAX_CHECKPOINT_BYTES}`);
    const started = this.now();
    const saveId = cassandra.types.Uuid.random();
    const chunks = Math.ceil(data.length / this.chunkBytes);
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const params = Array.from({ length: chunks }, (_, i) => [
      this.scope, partition, id, saveId, i, bytes.subarray(i * this.chunkBytes, (i + 1) * this.chunkBytes), this.checkpointTtlS,
    ]);
    if (params.length > 0) {
      await cassandra.concurrent.executeConcurrent(this.client, this.insertChunk, params, {
        concurrencyLevel: Math.min(this.writeConcurrency, 8),
        raiseOnFirstError: true,
        collectResults: false,
      });
    }
    // The head names the save only once every chunk is durable, with the TTL the chunks have left.
    const headTtlS = this.checkpointTtlS - Math.ceil((this.now() - started) / 1000);
    if (headTtlS < 1) throw new Error(`checkpoint ${partition}/${id} took longer to save than its TTL`);
    const digest = createHash('sha256').update(bytes).digest();
    await this.client.execute(this.insertCheckpointHead, [
      this.scope, partition, id, saveId, chunks, cassandra.types.Long.fromNumber(data.length), digest, headTtlS,
    ]);
  }

  async loadCheckpoint(partition: number, id: string): Promise<Uint8Array | null> {
    checkPartition(partition);
    const head = (await this.client.execute(this.selectCheckpointHead, [this.scope, partition, id])).first();
    const saveId = head?.get('complete_save_id') as cassandra.types.Uuid | null | undefined;
    if (!head || !saveId) return null;
    const chunks = Number(head.get('chunks'));
    const total = toNumber(head.get('total_bytes'));
    const digest = head.get('digest') as Buffer | null;
    if (!Number.isInteger(chunks) || chunks < 0 || total < 0 || total > MAX_CHECKPOINT_BYTES || !digest) {
      this.logger.warn({ partition, id }, 'checkpoint head is malformed; ignoring it');
      return null;
    }
    const out = new Uint8Array(total);
    let next = 0;
    let filled = 0;
    // Pages of 8 chunks (2 MiB at the default size): the whole checkpoint is held once, in `out`.
    for await (const page of pagedRows(this.client, this.selectChunks, [this.scope, partition, id, saveId], 8)) {
      for (const r of page) {
        const chunk = Number(r.get('chunk'));
        const data = r.get('data') as Buffer | null;
        if (chunk !== next || !data || filled + data.length > total) {
          this.logger.warn({ partition, id, chunk, expected: next }, 'checkpoint incomplete or inconsistent');
          return null;
        }
        out.set(data, filled);
        filled += data.length;
        next++;
      }
    }
    if (next !== chunks || filled !== total) {
      this.logger.warn({ partition, id, chunks: next, expected: chunks }, 'checkpoint incomplete');
      return null;
    }
    if (!createHash('sha256').update(out).digest().equals(digest)) {
      this.logger.warn({ partition, id }, 'checkpoint digest differs; ignoring it');
      return null;
    }
    return out;
  }

  close(): Promise<void> {
    this.closing ??= this.client.shutdown();
    return this.closing;
  }
}

/** The parts of one bucket as read. */
interface StoredParts {
  head: Buffer | null;
  readonly dims: Map<string, Buffer>;
}

function positive(name: string, n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`${name} must be a positive integer, got ${n}`);
  return n;
}

function checkPartition(partition: number): void {
  if (!Number.isInteger(partition) || partition < 0 || partition > 0x7fffffff) throw new RangeError(`bad partition ${partition}`);
}

function checkRow(row: Rollup): void {
  if (typeof row.site !== 'string' || row.site === '') throw new TypeError('rollup row without a site');
  if (!TIERS.includes(row.tier)) throw new RangeError(`rollup row of ${row.site}: unknown tier ${JSON.stringify(row.tier)}`);
  checkBucket(row.tier, row.bucketMs);
}
