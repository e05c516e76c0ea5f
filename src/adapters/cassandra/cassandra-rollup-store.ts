/**
 * RollupStore on Cassandra (schema: migrations.ts, table rollup_minute and rollup_watermarks).
 *
 * - Rows live in one partition per (site, UTC day), clustered by bucket_ms: partitions are
 *   bounded (1440 rows) and a range read touches one partition per day, in parallel up to
 *   `readConcurrency`, concatenated in day order, so rows come back ordered by bucket.
 * - `upsert` is a whole-row INSERT, prepared and idempotent: an INSERT writes every column, and
 *   pages/sources are frozen maps (one cell each), so a rewrite with fewer map keys leaves no
 *   stale keys and the later write wins whole (all cells of one INSERT share a write
 *   timestamp). Writes run through `executeConcurrent`, at most `writeConcurrency` in flight.
 * - TTL is computed from the bucket time: ttl = retention - (now - bucketMs). A replay or a
 *   restatement therefore never extends retention, and rows already past retention are not
 *   written at all.
 * - Watermarks are monotone by construction, without a lightweight transaction: each one is
 *   written with a write timestamp equal to its own value (µs). Cassandra keeps, per cell, the
 *   write with the highest timestamp, so a lower watermark written later — by a slow flush,
 *   or by a previous owner of the partition after a rebalance — loses to the higher one
 *   whatever the order of arrival. An LWT (`IF watermark_ms < ?`) would cost four round trips
 *   per flush and a contended Paxos round at every rebalance; read-then-write-max is racy.
 *   The cost: lowering a watermark by hand needs a DELETE with a higher write timestamp; a
 *   replay from scratch should use a new scope instead.
 *   Watermarks are scoped (`watermarkScope`, e.g. the aggregator group id) so a reprocessing
 *   run beside the live one keeps its own, and `watermark()` reads one partition.
 */
import cassandra from 'cassandra-driver';
import type { MinuteRollup, RollupStore } from '../../aggregate/rollup-store.js';
import { silentLogger, type Logger } from '../../log.js';
import {
  checkKeyspace, checkRetention, connectClient, mapBounded, pagedRows, requireTables, toNumber, ttlFor,
  type CassandraConnectOptions,
} from './cassandra-client.js';

export interface CassandraRollupStoreOptions extends CassandraConnectOptions {
  /** How long minute rows live, from their bucket time; null keeps them forever. Default 35 days. */
  readonly retentionMs?: number | null;
  /** Statements in flight per upsert call. Default 32. */
  readonly writeConcurrency?: number;
  /** Day partitions read in parallel per read call. Default 4. */
  readonly readConcurrency?: number;
  /** Rows per page when reading a day. Default 500. */
  readonly fetchSize?: number;
  /** Whose watermarks these are (the aggregator group, which carries the logic version). Default 'default'. */
  readonly watermarkScope?: string;
  /** Wall clock for TTLs, ms. */
  readonly now?: () => number;
  readonly logger?: Logger;
}

export const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;
/** A read spanning more day partitions than this is refused rather than fanned out. */
const MAX_READ_DAYS = 3_700;
const DEFAULT_RETENTION_MS = 35 * DAY_MS;

const TABLES = ['rollup_minute', 'rollup_watermarks'] as const;

export class CassandraRollupStore implements RollupStore {
  private readonly insertRow: string;
  private readonly selectDay: string;
  private readonly insertWatermark: string;
  private readonly selectWatermarks: string;
  private readonly retentionMs: number | null;
  private readonly writeConcurrency: number;
  private readonly readConcurrency: number;
  private readonly fetchSize: number;
  private readonly scope: string;
  private readonly now: () => number;
  private readonly logger: Logger;
  private closing: Promise<void> | undefined;

  /** Connects and checks that the schema is there; apply the migrations first. */
  static async connect(options: CassandraRollupStoreOptions): Promise<CassandraRollupStore> {
    checkKeyspace(options.keyspace);
    checkRetention('retentionMs', options.retentionMs === undefined ? DEFAULT_RETENTION_MS : options.retentionMs);
    const client = await connectClient(options);
    try {
      await requireTables(client, options.keyspace, TABLES);
    } catch (e) {
      await client.shutdown();
      throw e;
    }
    return new CassandraRollupStore(client, options);
  }

  private constructor(private readonly client: cassandra.Client, options: CassandraRollupStoreOptions) {
    const ks = options.keyspace;
    this.insertRow = `INSERT INTO ${ks}.rollup_minute (site, day, bucket_ms, pageviews, events, visitors, pages, sources) VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?`;
    this.selectDay = `SELECT bucket_ms, pageviews, events, visitors, pages, sources FROM ${ks}.rollup_minute WHERE site = ? AND day = ? AND bucket_ms >= ? AND bucket_ms < ?`;
    this.insertWatermark = `INSERT INTO ${ks}.rollup_watermarks (scope, partition, watermark_ms) VALUES (?, ?, ?) USING TIMESTAMP ?`;
    this.selectWatermarks = `SELECT watermark_ms FROM ${ks}.rollup_watermarks WHERE scope = ?`;
    this.retentionMs = options.retentionMs === undefined ? DEFAULT_RETENTION_MS : options.retentionMs;
    this.writeConcurrency = positive('writeConcurrency', options.writeConcurrency ?? 32);
    this.readConcurrency = positive('readConcurrency', options.readConcurrency ?? 4);
    this.fetchSize = positive('fetchSize', options.fetchSize ?? 500);
    this.scope = options.watermarkScope ?? 'default';
    this.now = options.now ?? Date.now;
    this.logger = options.logger ?? silentLogger();
  }

  async upsert(rows: readonly MinuteRollup[]): Promise<void> {
    // The last of several writes of one row in a call wins, as it would if written in order:
    // concurrent statements have no order of their own.
    const latest = new Map<string, MinuteRollup>();
    for (const row of rows) {
      checkRow(row);
      latest.set(`${row.site}\u0000${row.bucketMs}`, row);
    }
    const now = this.now();
    const params: unknown[][] = [];
    let expired = 0;
    for (const row of latest.values()) {
      const ttl = ttlFor(row.bucketMs, this.retentionMs, now);
      if (ttl === null) {
        expired++;
        continue;
      }
      params.push([
        row.site, dayOf(row.bucketMs), row.bucketMs, row.pageviews, row.events,
        Buffer.from(row.visitors.buffer, row.visitors.byteOffset, row.visitors.byteLength),
        { ...row.pages }, { ...row.sources }, ttl,
      ]);
    }
    if (expired > 0) this.logger.debug({ expired }, 'rollup rows past retention not written');
    if (params.length === 0) return;
    await cassandra.concurrent.executeConcurrent(this.client, this.insertRow, params, {
      concurrencyLevel: this.writeConcurrency,
      raiseOnFirstError: true,
      collectResults: false,
    });
  }

  async read(site: string, fromMs: number, toMs: number): Promise<MinuteRollup[]> {
    if (!Number.isFinite(fromMs) || !Number.isFinite(toMs)) throw new RangeError(`read range must be finite: [${fromMs}, ${toMs})`);
    // Rows before now - retention have expired: no need to visit their partitions.
    const from = this.retentionMs === null ? fromMs : Math.max(fromMs, this.now() - this.retentionMs);
    if (toMs <= from) return [];
    const firstDay = dayOf(from);
    const lastDay = dayOf(Math.ceil(toMs) - 1);
    if (lastDay - firstDay + 1 > MAX_READ_DAYS) throw new RangeError(`read of ${lastDay - firstDay + 1} days exceeds ${MAX_READ_DAYS}`);
    const days = Array.from({ length: lastDay - firstDay + 1 }, (_, i) => firstDay + i);
    const perDay = await mapBounded(days, this.readConcurrency, async (day) => {
      const out: MinuteRollup[] = [];
      for await (const page of pagedRows(this.client, this.selectDay, [site, day, Math.ceil(from), Math.ceil(toMs)], this.fetchSize)) {
        for (const r of page) out.push(rowFrom(site, r));
      }
      return out;
    });
    return perDay.flat();
  }

  async setWatermark(partition: number, watermarkMs: number): Promise<void> {
    if (!Number.isInteger(partition) || partition < 0) throw new RangeError(`bad partition ${partition}`);
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

  close(): Promise<void> {
    this.closing ??= this.client.shutdown();
    return this.closing;
  }
}

export function dayOf(ms: number): number {
  return Math.floor(ms / DAY_MS);
}

function positive(name: string, n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`${name} must be a positive integer, got ${n}`);
  return n;
}

function checkRow(row: MinuteRollup): void {
  if (typeof row.site !== 'string' || row.site === '') throw new TypeError('rollup row without a site');
  if (!Number.isSafeInteger(row.bucketMs) || row.bucketMs % MINUTE_MS !== 0) throw new RangeError(`rollup row of ${row.site}: bucketMs ${row.bucketMs} is not a minute start`);
  if (!Number.isSafeInteger(row.pageviews) || !Number.isSafeInteger(row.events)) throw new RangeError(`rollup row of ${row.site} at ${row.bucketMs}: counts must be integers`);
}

function numberMap(v: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  if (v === null || v === undefined) return out;
  const entries = v instanceof Map ? [...(v as Map<string, unknown>).entries()] : Object.entries(v as Record<string, unknown>);
  for (const [k, n] of entries) out[k] = toNumber(n);
  return out;
}

function rowFrom(site: string, r: cassandra.types.Row): MinuteRollup {
  const visitors = r.get('visitors') as Buffer | null;
  return {
    site,
    bucketMs: toNumber(r.get('bucket_ms')),
    pageviews: toNumber(r.get('pageviews')),
    events: toNumber(r.get('events')),
    visitors: visitors ? new Uint8Array(visitors) : new Uint8Array(0),
    pages: numberMap(r.get('pages')),
    sources: numberMap(r.get('sources')),
  };
}
