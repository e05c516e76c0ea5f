/**
 * Schema migrations against a real node: idempotent, safe from concurrent runners, recovering
 * from a runner that died holding the lease, refusing edited history. A keyspace per test.
 */
import { expect } from 'chai';
import { createTestKeyspace, type TestKeyspace } from '../../src/adapters/cassandra/cassandra-test-kit.js';
import { applyMigrations, MIGRATIONS, type Migration, type MigrationOptions } from '../../src/adapters/cassandra/migrations.js';
import { stackEndpoints } from '../support/stack-fixture.js';

const ALL = MIGRATIONS.map((m) => m.version);

describe('Cassandra schema migrations (real node)', function () {
  this.timeout(120_000);
  let ks: TestKeyspace;
  let base: MigrationOptions;

  beforeEach(async () => {
    const s = stackEndpoints();
    const endpoints = { contactPoints: s.cassandraContactPoints, localDataCenter: s.cassandraDataCenter };
    ks = await createTestKeyspace(endpoints, { migrate: false, prefix: 'sluice_migr' });
    base = { ...endpoints, keyspace: ks.keyspace, replication: { class: 'SimpleStrategy', replicationFactor: 1 } };
  });
  afterEach(async () => ks?.drop());

  const history = async () => (await ks.query(`SELECT version, checksum, applied_by FROM ${ks.keyspace}.schema_migrations WHERE scope = 'sluice'`))
    .map((r) => r.version);
  const tables = async () => (await ks.query('SELECT table_name, compaction, compression FROM system_schema.tables WHERE keyspace_name = ?', [ks.keyspace]))
    .reduce<Record<string, Record<string, unknown>>>((acc, r) => ({ ...acc, [String(r.table_name)]: r }), {});

  it('creates the keyspace and tables once; a second run applies nothing', async () => {
    const first = await applyMigrations(base);
    expect(first).to.deep.equal({ applied: ALL, alreadyApplied: [], replicationMismatch: null });
    const second = await applyMigrations(base);
    expect(second).to.deep.equal({ applied: [], alreadyApplied: ALL, replicationMismatch: null });
    expect(await history()).to.deep.equal(ALL);
    const t = await tables();
    // Exactly the tables the migrations declare, and the runner's two bookkeeping tables.
    const declared = MIGRATIONS.flatMap((m) => m.statements.flatMap((st) => [...st.matchAll(/CREATE TABLE IF NOT EXISTS \{keyspace\}\.(\w+)/g)].map((x) => x[1]!)));
    expect(declared).to.include.members(['aggregate_checkpoints', 'raw_events', 'rollup_watermarks', 'rollups_day', 'rollups_hour', 'rollups_minute', 'rollups_quarter', 'account_keys']);
    expect(Object.keys(t).sort()).to.deep.equal([...new Set([...declared, 'schema_migration_lock', 'schema_migrations'])].sort());
    const windowDays = { rollup_minute: 1, raw_events: 1, aggregate_checkpoints: 1, rollups_minute: 1, rollups_quarter: 14, rollups_hour: 30, rollups_day: 180 };
    for (const [name, days] of Object.entries(windowDays)) {
      expect(t[name]!.compaction, name).to.include({
        class: 'org.apache.cassandra.db.compaction.TimeWindowCompactionStrategy', compaction_window_unit: 'DAYS', compaction_window_size: String(days),
      });
    }
    const [checkpoints] = await ks.query('SELECT default_time_to_live FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?', [ks.keyspace, 'aggregate_checkpoints']);
    expect(checkpoints!.default_time_to_live).to.equal(7 * 86_400);
    expect(String((t.raw_events!.compression as Record<string, string>).class)).to.match(/ZstdCompressor$/);
    const [ksRow] = await ks.query('SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?', [ks.keyspace]);
    expect(ksRow!.replication).to.deep.equal({ class: 'org.apache.cassandra.locator.SimpleStrategy', replication_factor: '1' });
    // The lease is released.
    expect(await ks.query(`SELECT owner FROM ${ks.keyspace}.schema_migration_lock`)).to.deep.equal([]);
  });

  it('is safe from concurrent runners: each version applied by exactly one, both succeed', async () => {
    const results = await Promise.all([applyMigrations(base), applyMigrations(base), applyMigrations(base)]);
    const applied = results.flatMap((r) => r.applied).sort((a, b) => a - b);
    expect(applied).to.deep.equal(ALL);
    for (const r of results) expect([...r.applied, ...r.alreadyApplied].sort((a, b) => a - b)).to.deep.equal(ALL);
    expect(await history()).to.deep.equal(ALL);
    // Every table of every migration, plus the two bookkeeping tables: none created twice, none missing.
    const created = MIGRATIONS.flatMap((m) => m.statements).filter((s) => /CREATE TABLE/i.test(s)).length;
    expect(Object.keys(await tables())).to.have.length(created + 2);
  });

  it('waits out the lease of a runner that died holding it, then applies', async () => {
    await applyMigrations({ ...base, migrations: MIGRATIONS.slice(0, 1) });
    await ks.query(`INSERT INTO ${ks.keyspace}.schema_migration_lock (name, owner) VALUES ('migrations', 'crashed-runner') USING TTL 3`);
    const result = await applyMigrations({ ...base, lockTimeoutMs: 30_000 });
    expect(result.applied).to.deep.equal(ALL.slice(1));
    expect(await history()).to.deep.equal(ALL);
  });

  it('gives up with the holder\'s name when the lease is not freed in time', async () => {
    await applyMigrations({ ...base, migrations: MIGRATIONS.slice(0, 1) });
    await ks.query(`INSERT INTO ${ks.keyspace}.schema_migration_lock (name, owner) VALUES ('migrations', 'stuck-runner') USING TTL 60`);
    let err: unknown;
    try {
      await applyMigrations({ ...base, lockTimeoutMs: 1_000 });
    } catch (e) {
      err = e;
    }
    expect(String(err)).to.match(/held by stuck-runner/);
  });

  it('refuses a released migration that was edited afterwards', async () => {
    const v1: Migration = { version: 1, name: 't', statements: ['CREATE TABLE IF NOT EXISTS {keyspace}.t (a int PRIMARY KEY)'] };
    await applyMigrations({ ...base, migrations: [v1] });
    const edited: Migration = { ...v1, statements: ['CREATE TABLE IF NOT EXISTS {keyspace}.t (a int PRIMARY KEY, b int)'] };
    let err: unknown;
    try {
      await applyMigrations({ ...base, migrations: [edited] });
    } catch (e) {
      err = e;
    }
    expect(String(err)).to.match(/migration 1 \(t\) was applied .* released migrations must not change/);
  });

  it('creates NetworkTopologyStrategy keyspaces, and reports rather than changes an existing keyspace\'s replication', async () => {
    const nts = await applyMigrations({ ...base, replication: { class: 'NetworkTopologyStrategy', dataCenters: { [base.localDataCenter]: 1 } } });
    expect(nts.replicationMismatch).to.equal(null);
    const [row] = await ks.query('SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?', [ks.keyspace]);
    expect(row!.replication).to.deep.equal({ class: 'org.apache.cassandra.locator.NetworkTopologyStrategy', [base.localDataCenter]: '1' });
    const again = await applyMigrations(base);
    expect(again.replicationMismatch).to.match(/left unchanged/);
    const [after] = await ks.query('SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?', [ks.keyspace]);
    expect(after!.replication).to.deep.equal(row!.replication);
  });

  it('rejects a bad keyspace name before connecting', async () => {
    let err: unknown;
    try {
      await applyMigrations({ ...base, keyspace: 'Bad-Name; DROP' });
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(RangeError);
  });
});
