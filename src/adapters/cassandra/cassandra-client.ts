/**
 * Connecting to Cassandra, shared by the rollup store, the raw archive and the migrations:
 * the connection options, a client whose defaults make every statement prepared and
 * idempotent (statements that are not — lightweight transactions — say so where they run),
 * and small helpers for paging and bounded parallelism.
 */
import cassandra from 'cassandra-driver';

export type Consistency = 'ONE' | 'LOCAL_ONE' | 'QUORUM' | 'LOCAL_QUORUM' | 'EACH_QUORUM' | 'ALL';

export interface CassandraConnectOptions {
  /** host or host:port; the port defaults to 9042. */
  readonly contactPoints: readonly string[];
  /** The data centre this process sits in ('datacenter1' with SimpleSnitch). */
  readonly localDataCenter: string;
  readonly keyspace: string;
  /** Reads and writes: LOCAL_QUORUM in production (the default), LOCAL_ONE on a one-node dev stack. */
  readonly consistency?: Consistency;
  readonly credentials?: { readonly username: string; readonly password: string };
  /** TCP connect timeout per host. */
  readonly connectTimeoutMs?: number;
  /** Per-request read timeout on the driver side. */
  readonly requestTimeoutMs?: number;
}

export const KEYSPACE_PATTERN = /^[a-z][a-z0-9_]{0,47}$/;

export function checkKeyspace(keyspace: string): void {
  if (!KEYSPACE_PATTERN.test(keyspace)) throw new RangeError(`keyspace ${JSON.stringify(keyspace)} must match ${KEYSPACE_PATTERN}`);
}

export function consistencyOf(name: Consistency): number {
  const c = cassandra.types.consistencies;
  const byName: Record<Consistency, number> = {
    ONE: c.one, LOCAL_ONE: c.localOne, QUORUM: c.quorum, LOCAL_QUORUM: c.localQuorum, EACH_QUORUM: c.eachQuorum, ALL: c.all,
  };
  const v = byName[name];
  if (v === undefined) throw new RangeError(`unknown consistency ${name}`);
  return v;
}

/** Where the options point, for error messages. */
export function describeAddress(options: Pick<CassandraConnectOptions, 'contactPoints' | 'localDataCenter'>): string {
  return `${options.contactPoints.join(', ')} (data centre ${options.localDataCenter})`;
}

/**
 * A connected client. The keyspace is not set on the client: statements name their tables
 * with the keyspace, so the migrations can use the same kind of client before it exists.
 */
export async function connectClient(options: CassandraConnectOptions): Promise<cassandra.Client> {
  if (options.contactPoints.length === 0) throw new RangeError('no Cassandra contact points');
  const client = new cassandra.Client({
    contactPoints: [...options.contactPoints],
    localDataCenter: options.localDataCenter,
    ...(options.credentials ? { credentials: { ...options.credentials } } : {}),
    socketOptions: {
      connectTimeout: options.connectTimeoutMs ?? 5_000,
      readTimeout: options.requestTimeoutMs ?? 12_000,
    },
    queryOptions: {
      consistency: consistencyOf(options.consistency ?? 'LOCAL_QUORUM'),
      // Every statement of this client is prepared, and idempotent unless it says otherwise:
      // rows are absolute values, so the driver may retry or speculatively repeat a write.
      prepare: true,
      isIdempotent: true,
      fetchSize: 500,
    },
  });
  try {
    await client.connect();
  } catch (e) {
    await client.shutdown().catch(() => {});
    throw new Error(`Cassandra unreachable at ${describeAddress(options)}: ${reasonOf(e)}`, { cause: e });
  }
  return client;
}

/** The driver's NoHostAvailableError embeds every host's error with its stack: keep one line per host. */
function reasonOf(e: unknown): string {
  const inner = (e as { innerErrors?: Record<string, unknown> } | null)?.innerErrors;
  if (inner && typeof inner === 'object' && Object.keys(inner).length > 0) {
    return Object.entries(inner).map(([host, err]) => `${host}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`).join('; ');
  }
  return e instanceof Error ? e.message.split('\n')[0]! : String(e);
}

/** The tables of a keyspace that exist now: adapters check theirs at connect time. */
export async function requireTables(client: cassandra.Client, keyspace: string, tables: readonly string[]): Promise<void> {
  const rs = await client.execute('SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?', [keyspace]);
  const present = new Set(rs.rows.map((r) => String(r.get('table_name'))));
  const missing = tables.filter((t) => !present.has(t));
  if (missing.length > 0) {
    throw new Error(`keyspace ${keyspace} lacks table(s) ${missing.join(', ')}: apply the schema migrations first (adapters/cassandra/migrations.ts)`);
  }
}

/**
 * A client for an adapter: the keyspace name checked, connected, and the adapter's tables
 * required (apply the migrations first); the client is shut down again when they are missing.
 */
export async function connectWithTables(options: CassandraConnectOptions, tables: readonly string[]): Promise<cassandra.Client> {
  checkKeyspace(options.keyspace);
  const client = await connectClient(options);
  try {
    await requireTables(client, options.keyspace, tables);
  } catch (e) {
    await client.shutdown();
    throw e;
  }
  return client;
}

/** Every row of a query, page by page: at most one page is held at a time. */
export async function* pagedRows(
  client: cassandra.Client, query: string, params: unknown[], fetchSize: number,
): AsyncGenerator<cassandra.types.Row[]> {
  let pageState: string | undefined;
  do {
    const rs: cassandra.types.ResultSet = await client.execute(query, params, { fetchSize, ...(pageState ? { pageState } : {}) });
    if (rs.rows.length > 0) yield rs.rows;
    pageState = rs.pageState ?? undefined;
  } while (pageState);
}

/** `fn` over `items` with at most `limit` calls in flight; results in input order. */
export async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** A bigint (a driver Long, or a number) as a JS number; rollup counts stay far below 2^53. */
export function toNumber(v: unknown): number {
  if (v === null || v === undefined) return 0;
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof cassandra.types.Long) return v.toNumber();
  throw new TypeError(`not a number: ${String(v)}`);
}

/** Cassandra refuses TTLs over 20 years. */
export const MAX_TTL_SECONDS = 630_720_000;

/**
 * The TTL (seconds) that makes a cell expire `retentionMs` after `originMs` (a bucket start,
 * an event time) as seen at `nowMs`, so a rewrite or a replay never extends retention. Rounded
 * down, so a cell never outlives its retention. null: already past retention, do not write.
 * 0 (Cassandra's "no TTL") when retention is null.
 */
export function ttlFor(originMs: number, retentionMs: number | null, nowMs: number): number | null {
  if (retentionMs === null) return 0;
  const remaining = Math.floor((originMs + retentionMs - nowMs) / 1000);
  if (remaining < 1) return null;
  return Math.min(remaining, MAX_TTL_SECONDS);
}

export function checkRetention(name: string, retentionMs: number | null): void {
  if (retentionMs === null) return;
  if (!Number.isSafeInteger(retentionMs) || retentionMs < 1000 || retentionMs > MAX_TTL_SECONDS * 1000) {
    throw new RangeError(`${name} must be between 1 s and 20 years in ms (Cassandra's TTL limit), or null; got ${retentionMs}`);
  }
}
