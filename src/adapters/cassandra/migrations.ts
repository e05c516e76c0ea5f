/**
 * Versioned schema migrations, applied by the composition root at start-up before the
 * Cassandra adapters connect (`applyMigrations`).
 *
 * - The keyspace is created with the configured replication: SimpleStrategy with a replication
 *   factor for a dev stack, NetworkTopologyStrategy {dc: rf} in production. An existing
 *   keyspace's replication is never changed here (that is an operator's decision followed by a
 *   repair); a difference is reported in the result and logged.
 * - `schema_migrations` records each applied version with a checksum of its statements: a
 *   released migration that was edited afterwards stops start-up instead of being skipped.
 * - Every statement is idempotent (IF NOT EXISTS), so a runner that died half-way is simply
 *   run again.
 * - Safe to run from several processes at once. Idempotent DDL alone is not enough on a
 *   multi-node cluster before Cassandra 5.1's transactional metadata: two coordinators can
 *   each "create" the same table with different table ids, and the schema merge then loses
 *   one of them. So runners take a lease (a lightweight transaction on
 *   `schema_migration_lock`, with a TTL and renewal, so a crashed runner's lease expires) and
 *   only the holder issues DDL; the others wait for it and find the versions applied. The two
 *   bookkeeping tables themselves must exist before any lease can be taken, so they are
 *   created with a deterministic table id (derived from keyspace and table name): concurrent
 *   creations of them are identical and merge harmlessly. Keyspaces have no id.
 * - After each DDL statement the runner waits for schema agreement across the live nodes and
 *   fails after `schemaAgreementTimeoutMs` rather than running the next statement on a split
 *   schema.
 */
import { createHash, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import cassandra from 'cassandra-driver';
import { silentLogger, type Logger } from '../../log.js';
import { ACCOUNT_TABLES_CQL } from './cassandra-account-store.js';
import { checkKeyspace, connectClient, type CassandraConnectOptions } from './cassandra-client.js';
import { RAW_EVENTS_LATE_MARKS_CQL } from './cassandra-raw-archive.js';
import { ROLLUP_PARTS_TABLES_CQL } from './cassandra-rollup-store.js';

export interface Migration {
  readonly version: number;
  readonly name: string;
  /** CQL with `{keyspace}` where the keyspace name goes; each idempotent (IF NOT EXISTS). */
  readonly statements: readonly string[];
}

export type Replication =
  | { readonly class: 'SimpleStrategy'; readonly replicationFactor: number }
  | { readonly class: 'NetworkTopologyStrategy'; readonly dataCenters: Readonly<Record<string, number>> };

export interface MigrationOptions extends Omit<CassandraConnectOptions, 'consistency'> {
  readonly replication: Replication;
  /** Defaults to MIGRATIONS; tests pass their own. */
  readonly migrations?: readonly Migration[];
  /** How long to wait for another runner's lease. */
  readonly lockTimeoutMs?: number;
  /** Lease lifetime; the holder renews it at a third of this. */
  readonly lockTtlMs?: number;
  readonly schemaAgreementTimeoutMs?: number;
  readonly logger?: Logger;
}

export interface MigrationResult {
  /** Versions this run applied. */
  readonly applied: readonly number[];
  /** Versions found already applied (by an earlier run or a concurrent runner). */
  readonly alreadyApplied: readonly number[];
  /** Set when the keyspace existed with another replication than the one asked for. */
  readonly replicationMismatch: string | null;
}

const DAY_S = 86_400;

/**
 * Time-window compaction in 1-day windows: rollups and raw events are written close to their
 * bucket time and expire by TTL, so whole SSTables age out together and are dropped without
 * compaction. gc_grace_seconds is a day rather than ten: these tables are never deleted from
 * (rows are replaced whole and frozen maps are single cells, so writes make no tombstones),
 * and expired TTL cells need no repair to stay expired.
 */
const TWCS_1D = `compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'DAYS', 'compaction_window_size': 1}
  AND gc_grace_seconds = ${DAY_S}`;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'minute rollups and watermarks',
    statements: [
      // One partition per site and UTC day: at most 1440 rows, bounded whatever the site's size.
      // pages and sources are frozen maps: one cell, replaced whole by every write (no
      // per-write collection tombstone, no stale keys), which is all an absolute rollup needs.
      `CREATE TABLE IF NOT EXISTS {keyspace}.rollup_minute (
        site text,
        day int,
        bucket_ms bigint,
        pageviews bigint,
        events bigint,
        visitors blob,
        pages frozen<map<text, bigint>>,
        sources frozen<map<text, bigint>>,
        PRIMARY KEY ((site, day), bucket_ms)
      ) WITH CLUSTERING ORDER BY (bucket_ms ASC)
        AND ${TWCS_1D}`,
      // One partition per scope (an aggregator group / logic version): the lowest watermark is
      // a single-partition read.
      `CREATE TABLE IF NOT EXISTS {keyspace}.rollup_watermarks (
        scope text,
        partition int,
        watermark_ms bigint,
        PRIMARY KEY (scope, partition)
      )`,
    ],
  },
  {
    version: 2,
    name: 'raw event archive',
    statements: [
      // One partition per site, UTC hour and shard (hash of the id, for sites too big for one
      // partition an hour); clustered by event time then id. The record is the event's JSON with
      // its format version beside it: the record format evolves, the table need not.
      `CREATE TABLE IF NOT EXISTS {keyspace}.raw_events (
        site text,
        hour int,
        shard smallint,
        ts bigint,
        id text,
        format int,
        record text,
        PRIMARY KEY ((site, hour, shard), ts, id)
      ) WITH CLUSTERING ORDER BY (ts ASC, id ASC)
        AND compression = {'class': 'ZstdCompressor'}
        AND ${TWCS_1D}`,
    ],
  },
  {
    version: 3,
    name: 'rollup tiers and session checkpoints',
    statements: [
      // One table per tier rather than tier in the key: each tier has its own TTL (35 days to
      // 10 years), and time-window compaction only drops whole SSTables when everything in a
      // table expires on a similar horizon; the windows below give each table 20-40 windows
      // over its default retention. A row is one blob (rollup-codec.ts, versioned), replaced
      // whole by every write: no collections, no tombstones, and a later write wins whole.
      // Partitions are (site, period), clustered by bucket: a period holds at most 60-96 rows
      // (PERIOD_MS in cassandra-rollup-store.ts), small whatever the site's size. The
      // period is floor(bucket_ms / period length), in whole periods since the epoch.
      // rollup_minute (migration 1) is no longer written; it expires by its TTLs.
      ...([['minute', 1], ['quarter', 14], ['hour', 30], ['day', 180]] as const).map(([tier, windowDays]) => `CREATE TABLE IF NOT EXISTS {keyspace}.rollups_${tier} (
        site text,
        period int,
        bucket_ms bigint,
        data blob,
        PRIMARY KEY ((site, period), bucket_ms)
      ) WITH CLUSTERING ORDER BY (bucket_ms ASC)
        AND compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'DAYS', 'compaction_window_size': ${windowDays}}
        AND gc_grace_seconds = ${DAY_S}`),
      // Aggregator session state, chunked: a checkpoint can be tens of MB, a Cassandra
      // mutation should stay well below a MB. One partition per (scope, event-log partition,
      // checkpoint id); each save writes its chunks under its own save_id, then the statics
      // name the complete save (its id, chunk count, size and digest). A save that died
      // half-way, or two saves of one id racing, therefore never mix: a reader follows the
      // statics to one whole save. Kept a week (TTL on every write, and as the default).
      `CREATE TABLE IF NOT EXISTS {keyspace}.aggregate_checkpoints (
        scope text,
        partition int,
        id text,
        save_id uuid,
        chunk int,
        data blob,
        complete_save_id uuid STATIC,
        chunks int STATIC,
        total_bytes bigint STATIC,
        digest blob STATIC,
        PRIMARY KEY ((scope, partition, id), save_id, chunk)
      ) WITH CLUSTERING ORDER BY (save_id ASC, chunk ASC)
        AND default_time_to_live = ${7 * DAY_S}
        AND ${TWCS_1D}`,
    ],
  },
  {
    version: 4,
    name: 'accounts: organisations, sites, users, keys, revocations',
    statements: ACCOUNT_TABLES_CQL,
  },
  {
    version: 5,
    name: 'reprocessing: rollup version directory, audit trail, live logic history, run journal, ops leases',
    statements: [
      // The active rollup version of each (site, UTC day) that was ever switched (src/ops):
      // one partition per site, so the read-side wrapper reads a site's whole directory in one
      // single-partition query (at most a row per day of history). Switched by lightweight
      // transactions (compare-and-set on `version`), atomic per row.
      `CREATE TABLE IF NOT EXISTS {keyspace}.rollup_versions (
        site text,
        day int,
        version int,
        previous_version int,
        logic_version int,
        run_id text,
        action text,
        actor text,
        switched_at_ms bigint,
        PRIMARY KEY (site, day)
      ) WITH CLUSTERING ORDER BY (day ASC)`,
      // Every switch, kept for audit and rollback; the key makes a rewritten entry (a resumed
      // run) the same row.
      `CREATE TABLE IF NOT EXISTS {keyspace}.rollup_version_audit (
        site text,
        day int,
        at_ms bigint,
        run_id text,
        action text,
        from_version int,
        to_version int,
        logic_version int,
        actor text,
        PRIMARY KEY (site, day, at_ms, run_id)
      ) WITH CLUSTERING ORDER BY (day ASC, at_ms ASC, run_id ASC)`,
      // Which logic version the live aggregator ran from which store watermark on (per
      // aggregator group): the logic version of live rows.
      `CREATE TABLE IF NOT EXISTS {keyspace}.live_logic_versions (
        scope text,
        since_ms bigint,
        logic_version int,
        recorded_at_ms bigint,
        PRIMARY KEY (scope, since_ms)
      ) WITH CLUSTERING ORDER BY (since_ms ASC)`,
      // Reprocess and rollback runs, per site, and their days: what a resumed run skips.
      `CREATE TABLE IF NOT EXISTS {keyspace}.reprocess_runs (
        site text,
        run_id text,
        kind text,
        from_ms bigint,
        to_ms bigint,
        rollup_version int,
        logic_version int,
        actor text,
        created_at_ms bigint,
        state text,
        updated_at_ms bigint,
        message text,
        PRIMARY KEY (site, run_id)
      )`,
      `CREATE TABLE IF NOT EXISTS {keyspace}.reprocess_run_days (
        site text,
        run_id text,
        day int,
        state text,
        from_version int,
        to_version int,
        events bigint,
        rows int,
        updated_at_ms bigint,
        PRIMARY KEY ((site, run_id), day)
      ) WITH CLUSTERING ORDER BY (day ASC)`,
      // Leases (one run per site at a time): lightweight transactions with a TTL, renewed by the
      // holder, so a crashed holder's lease frees itself.
      `CREATE TABLE IF NOT EXISTS {keyspace}.ops_leases (
        name text PRIMARY KEY,
        owner text,
        acquired_at_ms bigint
      )`,
    ],
  },
  {
    version: 6,
    name: 'rollup parts: a table per tier with the head and each dimension separately readable',
    // Defined beside the store that reads them (cassandra-rollup-store.ts ROLLUP_PARTS_TABLES_CQL);
    // they replace migration 3's rollups_{tier}, which expire by their TTLs.
    statements: ROLLUP_PARTS_TABLES_CQL,
  },
  {
    version: 7,
    name: 'raw events: late marks (which copies of an event went to the late lane)',
    statements: RAW_EVENTS_LATE_MARKS_CQL,
  },
];

const LOCK_NAME = 'migrations';
const HISTORY = 'sluice';

export function replicationCql(r: Replication): string {
  if (r.class === 'SimpleStrategy') {
    if (!Number.isInteger(r.replicationFactor) || r.replicationFactor < 1) throw new RangeError(`replicationFactor must be a positive integer, got ${r.replicationFactor}`);
    return `{'class': 'SimpleStrategy', 'replication_factor': ${r.replicationFactor}}`;
  }
  const dcs = Object.entries(r.dataCenters);
  if (dcs.length === 0) throw new RangeError('NetworkTopologyStrategy needs at least one data centre');
  const parts = dcs.map(([dc, rf]) => {
    if (!/^[A-Za-z0-9_.-]+$/.test(dc)) throw new RangeError(`bad data centre name ${JSON.stringify(dc)}`);
    if (!Number.isInteger(rf) || rf < 1) throw new RangeError(`replication factor for ${dc} must be a positive integer, got ${rf}`);
    return `'${dc}': ${rf}`;
  });
  return `{'class': 'NetworkTopologyStrategy', ${parts.join(', ')}}`;
}

/** The replication map as system_schema.keyspaces reports it, for comparison. */
function replicationMap(r: Replication): Record<string, string> {
  if (r.class === 'SimpleStrategy') return { class: 'org.apache.cassandra.locator.SimpleStrategy', replication_factor: String(r.replicationFactor) };
  return {
    class: 'org.apache.cassandra.locator.NetworkTopologyStrategy',
    ...Object.fromEntries(Object.entries(r.dataCenters).map(([dc, rf]) => [dc, String(rf)])),
  };
}

export function checksumOf(m: Migration): string {
  return createHash('sha256').update(m.statements.join('\n;\n')).digest('hex').slice(0, 32);
}

/** A table id that every runner computes alike, so concurrent creations of it agree. */
function deterministicTableId(keyspace: string, table: string): string {
  const h = createHash('sha1').update(`sluice:${keyspace}.${table}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50; // version 5 (name-based, SHA-1)
  h[8] = (h[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

function checkMigrations(migrations: readonly Migration[]): void {
  let prev = 0;
  for (const m of migrations) {
    if (!Number.isInteger(m.version) || m.version <= prev) throw new RangeError(`migration versions must be increasing positive integers (${m.version} after ${prev})`);
    if (m.statements.length === 0) throw new RangeError(`migration ${m.version} has no statements`);
    prev = m.version;
  }
}

export async function applyMigrations(options: MigrationOptions): Promise<MigrationResult> {
  checkKeyspace(options.keyspace);
  const migrations = options.migrations ?? MIGRATIONS;
  checkMigrations(migrations);
  const logger = options.logger ?? silentLogger();
  // Bookkeeping reads and writes are serialised through Paxos (SERIAL) and committed at
  // QUORUM: the schema is cluster-wide, so every data centre must see the same history.
  const client = await connectClient({ ...options, consistency: 'QUORUM' });
  try {
    return await new MigrationRun(client, options, migrations, logger).run();
  } finally {
    await client.shutdown();
  }
}

class MigrationRun {
  private readonly ks: string;
  private readonly owner = `${hostname()}:${process.pid}:${randomUUID()}`;
  private readonly agreementTimeoutMs: number;
  private readonly lockTtlS: number;

  constructor(
    private readonly client: cassandra.Client,
    private readonly options: MigrationOptions,
    private readonly migrations: readonly Migration[],
    private readonly logger: Logger,
  ) {
    this.ks = options.keyspace;
    this.agreementTimeoutMs = options.schemaAgreementTimeoutMs ?? 60_000;
    this.lockTtlS = Math.max(3, Math.ceil((options.lockTtlMs ?? 30_000) / 1000));
  }

  async run(): Promise<MigrationResult> {
    const replicationMismatch = await this.bootstrap();
    const pendingBefore = this.pending(await this.appliedVersions());
    if (pendingBefore.length === 0) {
      return { applied: [], alreadyApplied: this.migrations.map((m) => m.version), replicationMismatch };
    }
    await this.acquireLock();
    const lease = this.renewLease();
    try {
      const applied = await this.appliedVersions();
      const pending = this.pending(applied);
      for (const m of pending) {
        this.logger.info({ keyspace: this.ks, version: m.version, name: m.name }, 'applying schema migration');
        for (const statement of m.statements) {
          lease.check();
          await this.ddl(statement.replaceAll('{keyspace}', this.ks));
        }
        lease.check();
        await this.client.execute(
          `INSERT INTO ${this.ks}.schema_migrations (scope, version, name, checksum, applied_at, applied_by) VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS`,
          [HISTORY, m.version, m.name, checksumOf(m), new Date(), this.owner],
          { serialConsistency: cassandra.types.consistencies.serial },
        );
      }
      const appliedNow = pending.map((m) => m.version);
      return {
        applied: appliedNow,
        alreadyApplied: this.migrations.map((m) => m.version).filter((v) => !appliedNow.includes(v)),
        replicationMismatch,
      };
    } finally {
      await lease.stop();
      await this.releaseLock();
    }
  }

  /** Keyspace and the two bookkeeping tables: idempotent, and convergent when concurrent. */
  private async bootstrap(): Promise<string | null> {
    const wanted = replicationCql(this.options.replication);
    await this.ddl(`CREATE KEYSPACE IF NOT EXISTS ${this.ks} WITH replication = ${wanted}`);
    const rs = await this.client.execute('SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?', [this.ks]);
    const actual = (rs.first()?.get('replication') ?? {}) as Record<string, string>;
    const expected = replicationMap(this.options.replication);
    const same = Object.keys(expected).length === Object.keys(actual).length
      && Object.entries(expected).every(([k, v]) => actual[k] === v);
    let mismatch: string | null = null;
    if (!same) {
      mismatch = `keyspace ${this.ks} has replication ${JSON.stringify(actual)}, not ${JSON.stringify(expected)}; left unchanged (ALTER KEYSPACE, then repair, is an operator's step)`;
      this.logger.warn({ keyspace: this.ks, actual, expected }, 'keyspace replication differs from the configured one');
    }
    // One partition (scope = HISTORY): the history is read whole through Paxos, which serves
    // single-partition reads only.
    await this.ddl(`CREATE TABLE IF NOT EXISTS ${this.ks}.schema_migrations (
        scope text,
        version int,
        name text,
        checksum text,
        applied_at timestamp,
        applied_by text,
        PRIMARY KEY (scope, version)
      ) WITH ID = ${deterministicTableId(this.ks, 'schema_migrations')}`);
    await this.ddl(`CREATE TABLE IF NOT EXISTS ${this.ks}.schema_migration_lock (
        name text PRIMARY KEY,
        owner text,
        acquired_at timestamp
      ) WITH ID = ${deterministicTableId(this.ks, 'schema_migration_lock')}`);
    return mismatch;
  }

  /** Applied versions and their checksums, read through Paxos so a finished runner's writes are seen. */
  private async appliedVersions(): Promise<Map<number, string>> {
    const rs = await this.client.execute(`SELECT version, checksum FROM ${this.ks}.schema_migrations WHERE scope = ?`, [HISTORY], {
      consistency: cassandra.types.consistencies.serial,
    });
    return new Map(rs.rows.map((r) => [Number(r.get('version')), String(r.get('checksum'))]));
  }

  private pending(applied: ReadonlyMap<number, string>): Migration[] {
    const known = new Set(this.migrations.map((m) => m.version));
    const newer = [...applied.keys()].filter((v) => !known.has(v));
    if (newer.length > 0) {
      // A newer release migrated this keyspace; this code still runs against it (migrations
      // only add), but say so.
      this.logger.warn({ keyspace: this.ks, versions: newer }, 'keyspace has schema versions this code does not know');
    }
    for (const m of this.migrations) {
      const sum = applied.get(m.version);
      if (sum !== undefined && sum !== checksumOf(m)) {
        throw new Error(`schema migration ${m.version} (${m.name}) was applied to ${this.ks} with checksum ${sum}, but this code has ${checksumOf(m)}: released migrations must not change; add a new version instead`);
      }
    }
    return this.migrations.filter((m) => !applied.has(m.version));
  }

  private async acquireLock(): Promise<void> {
    const deadline = Date.now() + (this.options.lockTimeoutMs ?? 120_000);
    let holder = '';
    for (let delayMs = 100; ; delayMs = Math.min(delayMs * 2, 1_000)) {
      const rs = await this.client.execute(
        `INSERT INTO ${this.ks}.schema_migration_lock (name, owner, acquired_at) VALUES (?, ?, ?) IF NOT EXISTS USING TTL ?`,
        [LOCK_NAME, this.owner, new Date(), this.lockTtlS],
        { serialConsistency: cassandra.types.consistencies.serial, isIdempotent: false },
      );
      // A retried LWT that had in fact applied reports "not applied" with our own name in it.
      holder = String(rs.first()?.get('owner') ?? '');
      if (rs.wasApplied() || holder === this.owner) return;
      if (Date.now() > deadline) {
        throw new Error(`schema migration lease on ${this.ks} held by ${holder} for longer than ${this.options.lockTimeoutMs ?? 120_000} ms`);
      }
      this.logger.info({ keyspace: this.ks, holder }, 'waiting for another schema migration runner');
      await new Promise((r) => setTimeout(r, delayMs));
    }
  }

  /** Renews the lease at a third of its TTL; `check()` throws once it was lost. */
  private renewLease(): { check(): void; stop(): Promise<void> } {
    let lost: Error | null = null;
    let stopped = false;
    let inFlight: Promise<void> = Promise.resolve();
    const renew = async () => {
      try {
        const rs = await this.client.execute(
          `UPDATE ${this.ks}.schema_migration_lock USING TTL ? SET owner = ? WHERE name = ? IF owner = ?`,
          [this.lockTtlS, this.owner, LOCK_NAME, this.owner],
          { serialConsistency: cassandra.types.consistencies.serial, isIdempotent: false },
        );
        if (!rs.wasApplied()) lost = new Error(`schema migration lease on ${this.ks} lost to ${String(rs.first()?.get('owner') ?? 'nobody')}`);
      } catch (e) {
        this.logger.warn({ err: e, keyspace: this.ks }, 'schema migration lease renewal failed; retrying');
      }
    };
    const timer = setInterval(() => {
      if (!stopped) inFlight = inFlight.then(renew);
    }, (this.lockTtlS * 1000) / 3);
    timer.unref();
    return {
      check: () => {
        if (lost) throw lost;
      },
      stop: async () => {
        stopped = true;
        clearInterval(timer);
        await inFlight;
      },
    };
  }

  private async releaseLock(): Promise<void> {
    try {
      await this.client.execute(
        `DELETE FROM ${this.ks}.schema_migration_lock WHERE name = ? IF owner = ?`,
        [LOCK_NAME, this.owner],
        { serialConsistency: cassandra.types.consistencies.serial },
      );
    } catch (e) {
      // The lease's TTL frees it anyway.
      this.logger.warn({ err: e, keyspace: this.ks }, 'schema migration lease not released; it expires by itself');
    }
  }

  /** One DDL statement, then wait until the live nodes agree on the schema. */
  private async ddl(cql: string): Promise<void> {
    await this.client.execute(cql, [], { prepare: false });
    await this.waitForSchemaAgreement();
  }

  private async waitForSchemaAgreement(): Promise<void> {
    const deadline = Date.now() + this.agreementTimeoutMs;
    for (;;) {
      if (await (this.client.metadata as unknown as SchemaAgreement).checkSchemaAgreement()) return;
      if (Date.now() > deadline) throw new Error(`no schema agreement among the nodes of ${describeHosts(this.client)} after ${this.agreementTimeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** In the driver (lib/metadata/index.js) but missing from its typings. */
interface SchemaAgreement {
  checkSchemaAgreement(): Promise<boolean>;
}

function describeHosts(client: cassandra.Client): string {
  return client.hosts.keys().join(', ');
}
