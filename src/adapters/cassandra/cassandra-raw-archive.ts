/**
 * RawArchive on Cassandra (schema: migrations.ts, table raw_events).
 *
 * - One partition per (site, UTC hour, shard), clustered by (ts, id). The shard is a hash of
 *   the event id modulo `shards`: one is right for most sites; a deployment whose biggest
 *   sites outgrow one partition an hour raises it (never lowers it: reads visit shards
 *   0..shards-1, so data written under a smaller count is still found, but not under a
 *   larger one). Reads merge the shards of an hour back into (ts, id) order. An event
 *   archived again or marked late after a raise can land in a second row (in the shard the
 *   new count picks): reads take the rows of one (ts, id) as one event, and erasure and
 *   clearing visit each row by its own shard.
 * - The value is the whole EnrichedEvent as JSON, with the archive's record format beside it
 *   (`format` 1: JSON.stringify of the event, every field present, whatever its `v`). The
 *   record format may evolve (say, to ingest's compact log encoding) without touching the
 *   table, and a reader meeting a format it does not know fails loudly instead of misreading
 *   history.
 * - Writes are prepared, idempotent UPDATEs (the same event is the same row), with a TTL from
 *   the event time: retention - (now - ts), so a re-archive never extends an event's life;
 *   events already past retention are skipped. The statements of one call are grouped by
 *   partition (site, hour, shard) into unlogged batches of at most `maxBatchBytes` of values,
 *   `writeConcurrency` batches in flight: Cassandra applies a single-partition unlogged batch
 *   as one mutation (no batch log), which costs both sides far less than one request per
 *   event. Each batch is idempotent like its statements (absolute values, set additions), so
 *   the driver may retry it; a failed call may have written some batches and not others,
 *   and archiving again completes it. The default bound stays under Cassandra's default
 *   batch_size_fail_threshold (50 KiB), which Cassandra 5 checks only for multi-partition
 *   batches anyway.
 * - Late marks (raw-archive.ts) are two set<text> columns of the same row, added by
 *   RAW_EVENTS_LATE_MARKS_CQL: `copies`, the log positions ("partition:offset") of the copies
 *   archived, and `late`, those the aggregator sent to the late lane. Both only grow by set
 *   additions, which are idempotent and commutative and write no tombstone, so a mark that
 *   comes before its event (a row with `late` and no `record` yet) needs no read; reads skip
 *   rows without a record. Additions carry the event's TTL, so marks expire with their event.
 *   An UPDATE, unlike an INSERT, writes no row marker: a row lives as long as its cells, which
 *   all share the event's TTL.
 * - Reads page through one hour at a time (`fetchSize` rows per page and shard), so memory is
 *   bounded whatever the range.
 */
import { createHash } from 'node:crypto';
import cassandra from 'cassandra-driver';
import {
  checkArchiveInput, compareArchived, isLate, positionKey, recordOf,
  type ArchivedEvent, type LateMark, type LogPosition, type RawArchive,
} from '../../aggregate/raw-archive.js';
import type { EnrichedEvent } from '../../ingest/enriched-event.js';
import { silentLogger, type Logger } from '../../log.js';
import {
  checkKeyspace, checkRetention, connectClient, mapBounded, pagedRows, requireTables, toNumber, ttlFor,
  type CassandraConnectOptions,
} from './cassandra-client.js';

export interface CassandraRawArchiveOptions extends CassandraConnectOptions {
  /** How long events live, from their event time; null keeps them forever. Default 400 days. */
  readonly retentionMs?: number | null;
  /** Partitions per site and hour. Default 1; raise for very large sites, never lower. */
  readonly shards?: number;
  /** Batches in flight per call. Default 32. */
  readonly writeConcurrency?: number;
  /**
   * Bound on the values (records, keys, marks) of one single-partition batch, in bytes; a
   * statement bigger than that goes alone. Default 48 KiB.
   */
  readonly maxBatchBytes?: number;
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
const DEFAULT_MAX_BATCH_BYTES = 48 * 1024;
/** What a statement costs in a batch beside its values (query id, lengths, TTL, ts, shard, hour). */
const STATEMENT_OVERHEAD_BYTES = 48;

/** A statement and the partition it writes to. */
interface Write {
  readonly partition: string;
  readonly bytes: number;
  readonly query: string;
  readonly params: unknown[];
}

/**
 * The late-mark columns of raw_events (`{keyspace}` where the keyspace name goes), for the
 * migration list (migrations.ts): Cassandra 5 accepts ADD IF NOT EXISTS, so each statement
 * is idempotent like the other migrations.
 */
export const RAW_EVENTS_LATE_MARKS_CQL: readonly string[] = [
  'ALTER TABLE {keyspace}.raw_events ADD IF NOT EXISTS copies set<text>',
  'ALTER TABLE {keyspace}.raw_events ADD IF NOT EXISTS late set<text>',
];
const REQUIRED_COLUMNS = ['copies', 'late'];

export class CassandraRawArchive implements RawArchive {
  private readonly insert: string;
  private readonly insertCopy: string;
  private readonly addLate: string;
  private readonly clearOne: string;
  private readonly selectHour: string;
  private readonly deleteOne: string;
  private readonly retentionMs: number | null;
  private readonly shards: number;
  private readonly writeConcurrency: number;
  private readonly maxBatchBytes: number;
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
      await requireColumns(client, options.keyspace);
    } catch (e) {
      await client.shutdown();
      throw e;
    }
    return new CassandraRawArchive(client, options);
  }

  private constructor(private readonly client: cassandra.Client, options: CassandraRawArchiveOptions) {
    const ks = options.keyspace;
    const row = 'WHERE site = ? AND hour = ? AND shard = ? AND ts = ? AND id = ?';
    this.insert = `UPDATE ${ks}.raw_events USING TTL ? SET format = ?, record = ? ${row}`;
    this.insertCopy = `UPDATE ${ks}.raw_events USING TTL ? SET format = ?, record = ?, copies = copies + ? ${row}`;
    this.addLate = `UPDATE ${ks}.raw_events USING TTL ? SET late = late + ? ${row}`;
    this.clearOne = `DELETE late FROM ${ks}.raw_events ${row}`;
    this.deleteOne = `DELETE FROM ${ks}.raw_events ${row}`;
    this.selectHour = `SELECT shard, ts, id, format, record, copies, late FROM ${ks}.raw_events WHERE site = ? AND hour = ? AND shard = ? AND ts >= ? AND ts < ?`;
    this.retentionMs = options.retentionMs === undefined ? DEFAULT_RETENTION_MS : options.retentionMs;
    this.shards = options.shards ?? 1;
    if (!Number.isInteger(this.shards) || this.shards < 1 || this.shards > MAX_SHARDS) throw new RangeError(`shards must be an integer in 1..${MAX_SHARDS}, got ${this.shards}`);
    this.writeConcurrency = options.writeConcurrency ?? 32;
    this.fetchSize = options.fetchSize ?? 500;
    this.maxBatchBytes = options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
    if (!Number.isInteger(this.maxBatchBytes) || this.maxBatchBytes < 1) throw new RangeError(`maxBatchBytes must be a positive integer, got ${this.maxBatchBytes}`);
    if (!Number.isInteger(this.writeConcurrency) || this.writeConcurrency < 1) throw new RangeError(`writeConcurrency must be a positive integer, got ${this.writeConcurrency}`);
    if (!Number.isInteger(this.fetchSize) || this.fetchSize < 1) throw new RangeError(`fetchSize must be a positive integer, got ${this.fetchSize}`);
    this.now = options.now ?? Date.now;
    this.logger = options.logger ?? silentLogger();
  }

  async archive(events: readonly EnrichedEvent[], positions?: readonly LogPosition[]): Promise<void> {
    checkArchiveInput(events, positions);
    const now = this.now();
    const writes: Write[] = [];
    let expired = 0;
    events.forEach((e, i) => {
      checkEvent(e);
      const ttl = ttlFor(e.ts, this.retentionMs, now);
      if (ttl === null) {
        expired++;
        return;
      }
      const hour = hourOf(e.ts);
      const shard = shardOf(e.id, this.shards);
      const record = JSON.stringify(recordOf(e));
      const position = positions?.[i];
      const bytes = STATEMENT_OVERHEAD_BYTES + Buffer.byteLength(record) + Buffer.byteLength(e.id);
      writes.push(position
        ? { partition: partitionOf(e.site, hour, shard), bytes: bytes + 24, query: this.insertCopy, params: [ttl, FORMAT_JSON, record, [positionKey(position)], e.site, hour, shard, e.ts, e.id] }
        : { partition: partitionOf(e.site, hour, shard), bytes, query: this.insert, params: [ttl, FORMAT_JSON, record, e.site, hour, shard, e.ts, e.id] });
    });
    if (expired > 0) this.logger.debug({ expired }, 'raw events past retention not archived');
    await this.execute(writes);
  }

  async markLate(marks: readonly LateMark[]): Promise<void> {
    const now = this.now();
    const writes: Write[] = [];
    for (const m of marks) {
      checkEvent(m);
      const position = positionKey(m.position);
      const ttl = ttlFor(m.ts, this.retentionMs, now);
      if (ttl === null) continue;
      const hour = hourOf(m.ts);
      const shard = shardOf(m.id, this.shards);
      writes.push({
        partition: partitionOf(m.site, hour, shard), bytes: STATEMENT_OVERHEAD_BYTES + 24 + Buffer.byteLength(m.id),
        query: this.addLate, params: [ttl, [position], m.site, hour, shard, m.ts, m.id],
      });
    }
    await this.execute(writes);
  }

  /** Reads the range and clears marked rows by their full key, like erasure: rare and bounded by a range. */
  async clearLate(site: string, fromMs: number, toMs: number): Promise<number> {
    const marked: unknown[][] = [];
    let events = 0;
    for await (const g of this.groups(site, fromMs, toMs)) {
      if (g.event === null) continue; // a mark whose event has not arrived was not read by a reprocess either
      const rows = g.rows.filter((r) => setOf(r.get('late')).length > 0);
      if (rows.length > 0) events++;
      for (const r of rows) marked.push(keyOf(site, r));
    }
    await this.execute(marked.map((params) => keyedWrite(this.clearOne, params)));
    return events;
  }

  /**
   * The writes grouped by partition, in order within each, cut into unlogged batches of at most
   * `maxBatchBytes`; `writeConcurrency` batches in flight. A partition's batches may run at the
   * same time: every write here is idempotent and commutes with the others of a call.
   */
  private async execute(writes: readonly Write[]): Promise<void> {
    if (writes.length === 0) return;
    const byPartition = new Map<string, Write[]>();
    for (const w of writes) {
      const group = byPartition.get(w.partition);
      if (group) group.push(w);
      else byPartition.set(w.partition, [w]);
    }
    const batches: Write[][] = [];
    for (const group of byPartition.values()) {
      let batch: Write[] = [];
      let bytes = 0;
      for (const w of group) {
        if (batch.length > 0 && bytes + w.bytes > this.maxBatchBytes) {
          batches.push(batch);
          batch = [];
          bytes = 0;
        }
        batch.push(w);
        bytes += w.bytes;
      }
      batches.push(batch);
    }
    await mapBounded(batches, this.writeConcurrency, async (batch) => {
      if (batch.length === 1) await this.client.execute(batch[0]!.query, batch[0]!.params);
      else await this.client.batch(batch.map(({ query, params }) => ({ query, params })), { prepare: true, logged: false });
    });
  }

  /**
   * Erasure reads the range and deletes matching rows by their full key: the table has no
   * visitor index (one would cost every write), and erasure is rare and bounded by a range.
   */
  async deleteVisitors(site: string, visitorIds: ReadonlySet<string>, fromMs: number, toMs: number): Promise<number> {
    const doomed: unknown[][] = [];
    let events = 0;
    for await (const g of this.groups(site, fromMs, toMs)) {
      if (g.event === null || !visitorIds.has(g.event.visitorId)) continue;
      events++;
      for (const r of g.rows) doomed.push(keyOf(site, r));
    }
    await this.execute(doomed.map((params) => keyedWrite(this.deleteOne, params)));
    return events;
  }

  async *read(site: string, fromMs: number, toMs: number): AsyncIterable<ArchivedEvent> {
    for await (const g of this.groups(site, fromMs, toMs)) if (g.event !== null) yield g.event;
  }

  /**
   * The rows of each (ts, id) of the range, in that order. One (ts, id) has one row, unless the
   * shard count was raised after its event was archived (or marked): it then also has a row in
   * the shard the new count hashes it to. Those rows are one event: their copies and marks are
   * read together, and erasure or clearing visits each by its own shard.
   */
  private async *groups(site: string, fromMs: number, toMs: number): AsyncGenerator<RowGroup> {
    let group: cassandra.types.Row[] = [];
    for await (const r of this.rows(site, fromMs, toMs)) {
      if (group.length > 0 && compareRows(group[0]!, r) !== 0) {
        yield groupOf(site, group);
        group = [];
      }
      group.push(r);
    }
    if (group.length > 0) yield groupOf(site, group);
  }

  /** Every row of the range in (ts, id) order, marks without their event included. */
  private async *rows(site: string, fromMs: number, toMs: number): AsyncGenerator<cassandra.types.Row> {
    if (!Number.isFinite(fromMs) || !Number.isFinite(toMs)) throw new RangeError(`read range must be finite: [${fromMs}, ${toMs})`);
    // Events before now - retention have expired: their partitions need no visit.
    const from = Math.ceil(this.retentionMs === null ? fromMs : Math.max(fromMs, this.now() - this.retentionMs));
    const to = Math.ceil(toMs);
    if (to <= from) return;
    for (let hour = hourOf(from); hour <= hourOf(to - 1); hour++) {
      const lo = Math.max(from, hour * HOUR_MS);
      const hi = Math.min(to, (hour + 1) * HOUR_MS);
      if (this.shards === 1) {
        for await (const page of pagedRows(this.client, this.selectHour, [site, hour, 0, lo, hi], this.fetchSize)) yield* page;
      } else {
        yield* this.mergeShards(site, hour, lo, hi);
      }
    }
  }

  /** The shards of one hour, each already in (ts, id) order, merged into that order. */
  private async *mergeShards(site: string, hour: number, lo: number, hi: number): AsyncGenerator<cassandra.types.Row> {
    const heads = await Promise.all(Array.from({ length: this.shards }, async (_, shard) => {
      const cursor = new ShardCursor(pagedRows(this.client, this.selectHour, [site, hour, shard, lo, hi], this.fetchSize));
      await cursor.advance();
      return cursor;
    }));
    let live = heads.filter((c) => c.head !== null);
    while (live.length > 0) {
      let min = live[0]!;
      for (const c of live) if (compareRows(c.head!, min.head!) < 0) min = c;
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
  head: cassandra.types.Row | null = null;
  private page: cassandra.types.Row[] = [];
  private index = 0;

  constructor(private readonly pages: AsyncGenerator<cassandra.types.Row[]>) {}

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
    this.head = this.page[this.index++]!;
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

function compareRows(a: cassandra.types.Row, b: cassandra.types.Row): number {
  return compareArchived({ ts: toNumber(a.get('ts')), id: String(a.get('id')) }, { ts: toNumber(b.get('ts')), id: String(b.get('id')) });
}

async function requireColumns(client: cassandra.Client, keyspace: string): Promise<void> {
  const rs = await client.execute('SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?', [keyspace, 'raw_events']);
  const present = new Set(rs.rows.map((r) => String(r.get('column_name'))));
  const missing = REQUIRED_COLUMNS.filter((c) => !present.has(c));
  if (missing.length > 0) {
    throw new Error(`keyspace ${keyspace}: raw_events lacks column(s) ${missing.join(', ')}: apply the schema migrations first (adapters/cassandra/migrations.ts, RAW_EVENTS_LATE_MARKS_CQL)`);
  }
}

/** A set<text> cell: the driver gives null for an empty or absent set. */
function setOf(v: unknown): string[] {
  return Array.isArray(v) ? v.map(String) : [];
}

function checkEvent(e: Pick<EnrichedEvent, 'site' | 'id' | 'ts'>): void {
  if (typeof e.site !== 'string' || e.site === '') throw new TypeError('archived event without a site');
  if (typeof e.id !== 'string' || e.id === '') throw new TypeError(`archived event of ${e.site} without an id`);
  if (!Number.isSafeInteger(e.ts)) throw new TypeError(`archived event ${e.id} has a bad ts: ${e.ts}`);
}

interface RowGroup {
  readonly rows: readonly cassandra.types.Row[];
  /** Null when the rows hold only late marks (the event not archived yet). */
  readonly event: ArchivedEvent | null;
}

function groupOf(site: string, rows: readonly cassandra.types.Row[]): RowGroup {
  const withRecord = rows.find((r) => r.get('record') !== null);
  if (!withRecord) return { rows, event: null };
  const e = eventFrom(site, withRecord);
  const late = isLate(rows.flatMap((r) => setOf(r.get('copies'))), rows.flatMap((r) => setOf(r.get('late'))));
  return { rows, event: late ? { ...e, late: true } : e };
}

/** The partition a write goes to, as a grouping key. */
function partitionOf(site: string, hour: number, shard: number): string {
  return `${hour}:${shard}:${site}`;
}

/** A write by a row's full primary key (keyOf). */
function keyedWrite(query: string, key: unknown[]): Write {
  const [site, hour, shard, , id] = key as [string, number, number, number, string];
  return { partition: partitionOf(site, hour, shard), bytes: STATEMENT_OVERHEAD_BYTES + Buffer.byteLength(site) + Buffer.byteLength(id), query, params: key };
}

/** A row's full primary key, its own shard included. */
function keyOf(site: string, r: cassandra.types.Row): unknown[] {
  const ts = toNumber(r.get('ts'));
  return [site, hourOf(ts), Number(r.get('shard')), ts, String(r.get('id'))];
}

function eventFrom(site: string, r: cassandra.types.Row): EnrichedEvent {
  const format = Number(r.get('format'));
  const id = String(r.get('id'));
  if (!KNOWN_FORMATS.has(format)) {
    throw new Error(`raw archive: event ${id} of ${site} at ${toNumber(r.get('ts'))} has record format ${format}, newer than this code reads`);
  }
  return JSON.parse(String(r.get('record'))) as EnrichedEvent;
}
