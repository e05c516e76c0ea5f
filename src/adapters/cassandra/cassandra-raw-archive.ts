/**
 * RawArchive on Cassandra (schema: migrations.ts, table raw_events).
 *
 * - One partition per (site, UTC hour, shard), clustered by (ts, id). The shard is a hash of
 *   the event id modulo `shards`: one is right for most sites; a deployment whose biggest
 *   sites outgrow one partition an hour raises it (never lowers it: reads visit shards
 *   0..shards-1, so data written under a smaller count is still found, but not under a
 *   larger one). Reads merge the shards of an hour back into (ts, id) order.
 * - The value is the whole EnrichedEvent as JSON, with the archive's record format beside it
 *   (`format` 1: JSON.stringify of the event, every field present, whatever its `v`). The
 *   record format may evolve (say, to ingest's compact log encoding) without touching the
 *   table, and a reader meeting a format it does not know fails loudly instead of misreading
 *   history.
 * - Writes are prepared, idempotent INSERTs (the same event is the same row), at most
 *   `writeConcurrency` in flight, with a TTL from the event time: retention - (now - ts), so
 *   a re-archive never extends an event's life; events already past retention are skipped.
 * - Reads page through one hour at a time (`fetchSize` rows per page and shard), so memory is
 *   bounded whatever the range.
 */
import { createHash } from 'node:crypto';
import cassandra from 'cassandra-driver';
import { compareArchived, type RawArchive } from '../../aggregate/raw-archive.js';
import type { EnrichedEvent } from '../../ingest/enriched-event.js';
import { silentLogger, type Logger } from '../../log.js';
import {
  checkKeyspace, checkRetention, connectClient, pagedRows, requireTables, toNumber, ttlFor,
  type CassandraConnectOptions,
} from './cassandra-client.js';

export interface CassandraRawArchiveOptions extends CassandraConnectOptions {
  /** How long events live, from their event time; null keeps them forever. Default 400 days. */
  readonly retentionMs?: number | null;
  /** Partitions per site and hour. Default 1; raise for very large sites, never lower. */
  readonly shards?: number;
  /** Statements in flight per archive call. Default 32. */
  readonly writeConcurrency?: number;
  /** Rows per page when reading. Default 500. */
  readonly fetchSize?: number;
  readonly now?: () => number;
  readonly logger?: Logger;
}

export const HOUR_MS = 3_600_000;
/** The archive record format written now, and those this code reads. */
const FORMAT_JSON = 1;
const KNOWN_FORMATS = new Set([FORMAT_JSON]);
const MAX_SHARDS = 256;
const DEFAULT_RETENTION_MS = 400 * 86_400_000;

export class CassandraRawArchive implements RawArchive {
  private readonly insert: string;
  private readonly selectHour: string;
  private readonly deleteOne: string;
  private readonly retentionMs: number | null;
  private readonly shards: number;
  private readonly writeConcurrency: number;
  private readonly fetchSize: number;
  private readonly now: () => number;
  private readonly logger: Logger;
  private closing: Promise<void> | undefined;

  /** Connects and checks that the schema is there; apply the migrations first. */
  static async connect(options: CassandraRawArchiveOptions): Promise<CassandraRawArchive> {
    checkKeyspace(options.keyspace);
    checkRetention('retentionMs', options.retentionMs === undefined ? DEFAULT_RETENTION_MS : options.retentionMs);
    const client = await connectClient(options);
    try {
      await requireTables(client, options.keyspace, ['raw_events']);
    } catch (e) {
      await client.shutdown();
      throw e;
    }
    return new CassandraRawArchive(client, options);
  }

  private constructor(private readonly client: cassandra.Client, options: CassandraRawArchiveOptions) {
    const ks = options.keyspace;
    this.insert = `INSERT INTO ${ks}.raw_events (site, hour, shard, ts, id, format, record) VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?`;
    this.deleteOne = `DELETE FROM ${ks}.raw_events WHERE site = ? AND hour = ? AND shard = ? AND ts = ? AND id = ?`;
    this.selectHour = `SELECT ts, id, format, record FROM ${ks}.raw_events WHERE site = ? AND hour = ? AND shard = ? AND ts >= ? AND ts < ?`;
    this.retentionMs = options.retentionMs === undefined ? DEFAULT_RETENTION_MS : options.retentionMs;
    this.shards = options.shards ?? 1;
    if (!Number.isInteger(this.shards) || this.shards < 1 || this.shards > MAX_SHARDS) throw new RangeError(`shards must be an integer in 1..${MAX_SHARDS}, got ${this.shards}`);
    this.writeConcurrency = options.writeConcurrency ?? 32;
    this.fetchSize = options.fetchSize ?? 500;
    if (!Number.isInteger(this.writeConcurrency) || this.writeConcurrency < 1) throw new RangeError(`writeConcurrency must be a positive integer, got ${this.writeConcurrency}`);
    if (!Number.isInteger(this.fetchSize) || this.fetchSize < 1) throw new RangeError(`fetchSize must be a positive integer, got ${this.fetchSize}`);
    this.now = options.now ?? Date.now;
    this.logger = options.logger ?? silentLogger();
  }

  async archive(events: readonly EnrichedEvent[]): Promise<void> {
    const now = this.now();
    const params: unknown[][] = [];
    let expired = 0;
    for (const e of events) {
      checkEvent(e);
      const ttl = ttlFor(e.ts, this.retentionMs, now);
      if (ttl === null) {
        expired++;
        continue;
      }
      params.push([e.site, hourOf(e.ts), shardOf(e.id, this.shards), e.ts, e.id, FORMAT_JSON, JSON.stringify(e), ttl]);
    }
    if (expired > 0) this.logger.debug({ expired }, 'raw events past retention not archived');
    if (params.length === 0) return;
    await cassandra.concurrent.executeConcurrent(this.client, this.insert, params, {
      concurrencyLevel: this.writeConcurrency,
      raiseOnFirstError: true,
      collectResults: false,
    });
  }

  /**
   * Erasure reads the range and deletes matching rows by their full key: the table has no
   * visitor index (one would cost every write), and erasure is rare and bounded by a range.
   */
  async deleteVisitors(site: string, visitorIds: ReadonlySet<string>, fromMs: number, toMs: number): Promise<number> {
    const doomed: unknown[][] = [];
    for await (const e of this.read(site, fromMs, toMs)) {
      if (visitorIds.has(e.visitorId)) doomed.push([site, hourOf(e.ts), shardOf(e.id, this.shards), e.ts, e.id]);
    }
    if (doomed.length === 0) return 0;
    await cassandra.concurrent.executeConcurrent(this.client, this.deleteOne, doomed, {
      concurrencyLevel: this.writeConcurrency, raiseOnFirstError: true, collectResults: false,
    });
    return doomed.length;
  }

  async *read(site: string, fromMs: number, toMs: number): AsyncIterable<EnrichedEvent> {
    if (!Number.isFinite(fromMs) || !Number.isFinite(toMs)) throw new RangeError(`read range must be finite: [${fromMs}, ${toMs})`);
    // Events before now - retention have expired: their partitions need no visit.
    const from = Math.ceil(this.retentionMs === null ? fromMs : Math.max(fromMs, this.now() - this.retentionMs));
    const to = Math.ceil(toMs);
    if (to <= from) return;
    for (let hour = hourOf(from); hour <= hourOf(to - 1); hour++) {
      const lo = Math.max(from, hour * HOUR_MS);
      const hi = Math.min(to, (hour + 1) * HOUR_MS);
      if (this.shards === 1) {
        for await (const page of pagedRows(this.client, this.selectHour, [site, hour, 0, lo, hi], this.fetchSize)) {
          for (const r of page) yield eventFrom(site, r);
        }
      } else {
        yield* this.mergeShards(site, hour, lo, hi);
      }
    }
  }

  /** The shards of one hour, each already in (ts, id) order, merged into that order. */
  private async *mergeShards(site: string, hour: number, lo: number, hi: number): AsyncGenerator<EnrichedEvent> {
    const heads = await Promise.all(Array.from({ length: this.shards }, async (_, shard) => {
      const cursor = new ShardCursor(pagedRows(this.client, this.selectHour, [site, hour, shard, lo, hi], this.fetchSize), site);
      await cursor.advance();
      return cursor;
    }));
    let live = heads.filter((c) => c.head !== null);
    while (live.length > 0) {
      let min = live[0]!;
      for (const c of live) if (compareArchived(c.head!, min.head!) < 0) min = c;
      yield min.head!;
      await min.advance();
      if (min.head === null) live = live.filter((c) => c !== min);
    }
  }

  close(): Promise<void> {
    this.closing ??= this.client.shutdown();
    return this.closing;
  }
}

class ShardCursor {
  head: EnrichedEvent | null = null;
  private page: cassandra.types.Row[] = [];
  private index = 0;

  constructor(private readonly pages: AsyncGenerator<cassandra.types.Row[]>, private readonly site: string) {}

  async advance(): Promise<void> {
    while (this.index >= this.page.length) {
      const next = await this.pages.next();
      if (next.done) {
        this.head = null;
        return;
      }
      this.page = next.value;
      this.index = 0;
    }
    this.head = eventFrom(this.site, this.page[this.index++]!);
  }
}

export function hourOf(ms: number): number {
  return Math.floor(ms / HOUR_MS);
}

/** Stable across processes and releases: the shard is part of the stored key. */
export function shardOf(id: string, shards: number): number {
  if (shards === 1) return 0;
  return createHash('sha1').update(id).digest().readUInt32BE(0) % shards;
}

function checkEvent(e: EnrichedEvent): void {
  if (typeof e.site !== 'string' || e.site === '') throw new TypeError('archived event without a site');
  if (typeof e.id !== 'string' || e.id === '') throw new TypeError(`archived event of ${e.site} without an id`);
  if (!Number.isSafeInteger(e.ts)) throw new TypeError(`archived event ${e.id} has a bad ts: ${e.ts}`);
}

function eventFrom(site: string, r: cassandra.types.Row): EnrichedEvent {
  const format = Number(r.get('format'));
  const id = String(r.get('id'));
  if (!KNOWN_FORMATS.has(format)) {
    throw new Error(`raw archive: event ${id} of ${site} at ${toNumber(r.get('ts'))} has record format ${format}, newer than this code reads`);
  }
  return JSON.parse(String(r.get('record'))) as EnrichedEvent;
}
