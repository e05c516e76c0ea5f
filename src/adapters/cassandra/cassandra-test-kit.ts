/**
 * For tests against a real Cassandra node: a keyspace of their own (unique per run, migrated,
 * dropped afterwards), a way to run raw CQL (TTL(), WRITETIME()) without importing the
 * driver, and a failure that names the address when the node is not there: tests that need
 * Cassandra fail, never skip.
 */
import { randomBytes } from 'node:crypto';
import cassandra from 'cassandra-driver';
import { connectClient, describeAddress, type CassandraConnectOptions } from './cassandra-client.js';
import { applyMigrations, type Migration } from './migrations.js';

export interface TestEndpoints {
  readonly contactPoints: readonly string[];
  readonly localDataCenter: string;
}

export interface TestKeyspace {
  readonly keyspace: string;
  /** Connection options for adapters under test (LOCAL_ONE: one node). */
  readonly options: CassandraConnectOptions;
  /** Raw CQL, rows as plain objects (bigints as numbers where safe). */
  query(cql: string, params?: unknown[]): Promise<Array<Record<string, unknown>>>;
  drop(): Promise<void>;
}

export function uniqueKeyspace(prefix = 'sluice_test'): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`;
}

/** Throws an error naming the address and how to start the node when it cannot be reached. */
export async function createTestKeyspace(
  endpoints: TestEndpoints,
  options: { readonly migrate?: boolean; readonly migrations?: readonly Migration[]; readonly prefix?: string } = {},
): Promise<TestKeyspace> {
  const keyspace = uniqueKeyspace(options.prefix);
  const connect: CassandraConnectOptions = { ...endpoints, keyspace, consistency: 'LOCAL_ONE' };
  let client: cassandra.Client;
  try {
    client = await connectClient(connect);
  } catch (e) {
    throw new Error(
      `these tests need a Cassandra node at ${describeAddress(endpoints)} (start one with \`npm run stack:up\`): ${(e as Error).message}`,
      { cause: e },
    );
  }
  if (options.migrate !== false) {
    await applyMigrations({ ...endpoints, keyspace, replication: { class: 'SimpleStrategy', replicationFactor: 1 }, ...(options.migrations ? { migrations: options.migrations } : {}) });
  }
  return {
    keyspace,
    options: connect,
    async query(cql, params = []) {
      const rs = await client.execute(cql, params, { prepare: params.length > 0 });
      return (rs.rows ?? []).map((r) => Object.fromEntries(r.keys().map((k) => [k, plain(r.get(k))])));
    },
    async drop() {
      try {
        await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`, [], { prepare: false });
      } finally {
        await client.shutdown();
      }
    },
  };
}

function plain(v: unknown): unknown {
  if (v instanceof cassandra.types.Long) return v.toNumber();
  return v;
}
