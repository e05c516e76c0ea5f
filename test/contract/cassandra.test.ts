/**
 * The seam contracts against Cassandra: a real node (the local stack, test/support/stack-fixture.ts),
 * one keyspace per run, migrated before and dropped after. Fails, naming the address, when the
 * node is not there.
 */
import { randomUUID } from 'node:crypto';
import { CassandraAccountStore } from '../../src/adapters/cassandra/cassandra-account-store.js';
import { CassandraRawArchive } from '../../src/adapters/cassandra/cassandra-raw-archive.js';
import { CassandraRollupStore } from '../../src/adapters/cassandra/cassandra-rollup-store.js';
import { createTestKeyspace, type TestKeyspace } from '../../src/adapters/cassandra/cassandra-test-kit.js';
import { stackEndpoints } from '../support/stack-fixture.js';
import { accountStoreContract } from './account-store.contract.js';
import { rawArchiveContract } from './raw-archive.contract.js';
import { rollupStoreContract } from './rollup-store.contract.js';

describe('Cassandra seams', function () {
  this.timeout(120_000);
  let ks: TestKeyspace | undefined;
  const keyspace = () => {
    if (!ks) throw new Error('no test keyspace: see the failure of the "before all" hook');
    return ks;
  };

  before(async () => {
    const s = stackEndpoints();
    ks = await createTestKeyspace({ contactPoints: s.cassandraContactPoints, localDataCenter: s.cassandraDataCenter });
  });
  after(async () => ks?.drop());

  rollupStoreContract('cassandra', async (options) => {
    // The contract's rows are dated 2026-01-01: kept forever unless a test asks for retention
    // (real expiry has its own tests). Each test's watermarks and checkpoints are its own scope.
    const store = await CassandraRollupStore.connect({ ...keyspace().options, watermarkScope: randomUUID(), ...options, retentionMs: options.retentionMs ?? null });
    return { store, close: () => store.close() };
  });

  accountStoreContract('cassandra', async () => CassandraAccountStore.connect(keyspace().options));

  rawArchiveContract('cassandra', async ({ retentionMs }) => {
    const archive = await CassandraRawArchive.connect({ ...keyspace().options, retentionMs, fetchSize: 7 });
    return { archive, close: () => archive.close() };
  });

  rawArchiveContract('cassandra, 3 shards an hour', async ({ retentionMs }) => {
    const archive = await CassandraRawArchive.connect({ ...keyspace().options, retentionMs, shards: 3, fetchSize: 7 });
    return { archive, close: () => archive.close() };
  });
});
