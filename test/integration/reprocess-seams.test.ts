/**
 * The reprocessing seams' contracts — VersionDirectory (src/ops/version-directory.ts) and
 * ReprocessJournal (src/ops/reprocess-journal.ts) — run against the in-memory implementations
 * and against Cassandra (the local stack; a keyspace of its own, migrated, dropped after).
 */
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { CassandraReprocessJournal } from '../../src/adapters/cassandra/cassandra-reprocess-journal.js';
import { createTestKeyspace, type TestKeyspace } from '../../src/adapters/cassandra/cassandra-test-kit.js';
import { CassandraVersionDirectory } from '../../src/adapters/cassandra/cassandra-version-directory.js';
import { MemoryReprocessJournal } from '../../src/adapters/memory/memory-reprocess-journal.js';
import { MemoryVersionDirectory } from '../../src/adapters/memory/memory-version-directory.js';
import type { DayRecord, ReprocessJournal, RunRecord } from '../../src/ops/reprocess-journal.js';
import type { SwitchRequest, VersionDirectory } from '../../src/ops/version-directory.js';
import { LIVE_VERSION } from '../../src/ops/version-key.js';
import { stackEndpoints } from '../support/stack-fixture.js';
import { waitFor } from '../support/wait-for.js';

function directoryContract(name: string, open: () => Promise<VersionDirectory>): void {
  describe(`VersionDirectory contract: ${name}`, () => {
    let dir: VersionDirectory;
    let site: string;
    beforeEach(async () => {
      dir = await open();
      site = `s${randomUUID().slice(0, 8)}.example`;
    });
    afterEach(async () => dir.close());

    const req = (over: Partial<SwitchRequest>): SwitchRequest => ({
      site, day: 20_000, fromVersion: LIVE_VERSION, toVersion: 1, logicVersion: 2, runId: 'run-a', action: 'reprocess', actor: 'ops@test', atMs: 1_000, ...over,
    });

    it('lists nothing for a site never switched (every day live)', async () => {
      expect(await dir.active(site)).to.deep.equal([]);
      expect(await dir.audit(site, 0, 100_000)).to.deep.equal([]);
    });

    it('switches a day by compare-and-set, once, and records the audit entry', async () => {
      expect(await dir.switchDay(req({}))).to.deep.equal({ applied: true });
      const again = await dir.switchDay(req({ runId: 'run-b', toVersion: 2, atMs: 2_000 }));
      expect(again.applied).to.equal(false);
      expect(again.applied === false && again.current?.version).to.equal(1);
      expect(again.applied === false && again.current?.runId).to.equal('run-a');
      const active = await dir.active(site);
      expect(active).to.deep.equal([{
        site, day: 20_000, version: 1, previousVersion: 0, logicVersion: 2, runId: 'run-a', action: 'reprocess', actor: 'ops@test', switchedAtMs: 1_000,
      }]);
      expect(await dir.switchDay(req({ fromVersion: 1, toVersion: 2, runId: 'run-b', atMs: 2_000 }))).to.deep.equal({ applied: true });
      expect(await dir.switchDay(req({ fromVersion: 2, toVersion: 1, runId: 'rb-1', action: 'rollback', atMs: 3_000 }))).to.deep.equal({ applied: true });
      expect(await dir.switchDay(req({ fromVersion: 1, toVersion: LIVE_VERSION, runId: 'rb-2', action: 'rollback', logicVersion: null, atMs: 4_000 }))).to.deep.equal({ applied: true });
      // Back to live (a row with version 0): switching from live works again.
      expect(await dir.switchDay(req({ fromVersion: LIVE_VERSION, toVersion: 3, runId: 'run-c', atMs: 5_000 }))).to.deep.equal({ applied: true });
      const audit = await dir.audit(site, 20_000, 20_001);
      expect(audit.map((e) => [e.fromVersion, e.toVersion, e.action, e.runId])).to.deep.equal([
        [0, 1, 'reprocess', 'run-a'], [1, 2, 'reprocess', 'run-b'], [2, 1, 'rollback', 'rb-1'], [1, 0, 'rollback', 'rb-2'], [0, 3, 'reprocess', 'run-c'],
      ]);
      expect(audit[3]!.logicVersion).to.equal(null);
    });

    it('of two concurrent switches of one day from the same version, exactly one applies', async () => {
      const results = await Promise.all([1, 2, 3, 4].map((v) => dir.switchDay(req({ toVersion: v, runId: `run-${v}`, atMs: v }))));
      expect(results.filter((r) => r.applied)).to.have.length(1);
      expect(await dir.audit(site, 0, 100_000)).to.have.length(1);
    });

    it('re-recording an audit entry keeps one entry; audit filters days and orders them', async () => {
      await dir.switchDay(req({ day: 20_002 }));
      await dir.switchDay(req({ day: 20_001 }));
      const [first] = await dir.audit(site, 20_002, 20_003);
      await dir.recordAudit(first!);
      expect((await dir.audit(site, 0, 100_000)).map((e) => e.day)).to.deep.equal([20_001, 20_002]);
      expect(await dir.audit(site, 20_001, 20_002)).to.have.length(1);
      expect((await dir.active(site)).map((d) => d.day)).to.deep.equal([20_001, 20_002]);
    });

    it('keeps sites apart', async () => {
      await dir.switchDay(req({}));
      expect(await dir.active(`${site}x`)).to.deep.equal([]);
      expect(await dir.audit(`${site}x`, 0, 100_000)).to.deep.equal([]);
    });

    it('keeps the live logic history per scope, ordered, a repeated sinceMs replacing its entry', async () => {
      const scope = `scope-${randomUUID()}`;
      await dir.recordLiveLogic(scope, { sinceMs: 5_000, logicVersion: 3, recordedAtMs: 10 });
      await dir.recordLiveLogic(scope, { sinceMs: 1_000, logicVersion: 2, recordedAtMs: 9 });
      await dir.recordLiveLogic(scope, { sinceMs: 5_000, logicVersion: 4, recordedAtMs: 11 });
      expect(await dir.liveLogic(scope)).to.deep.equal([
        { sinceMs: 1_000, logicVersion: 2, recordedAtMs: 9 }, { sinceMs: 5_000, logicVersion: 4, recordedAtMs: 11 },
      ]);
      expect(await dir.liveLogic(`${scope}x`)).to.deep.equal([]);
    });
  });
}

function journalContract(name: string, open: () => Promise<ReprocessJournal>): void {
  describe(`ReprocessJournal contract: ${name}`, () => {
    let journal: ReprocessJournal;
    let site: string;
    beforeEach(async () => {
      journal = await open();
      site = `s${randomUUID().slice(0, 8)}.example`;
    });
    afterEach(async () => journal.close());

    const run = (over: Partial<RunRecord> = {}): RunRecord => ({
      site, runId: 'r1', kind: 'reprocess', fromMs: 86_400_000 * 20_000, toMs: 86_400_000 * 20_002, rollupVersion: 3, logicVersion: 2,
      actor: 'ops@test', createdAtMs: 1_000, state: 'running', updatedAtMs: 1_000, message: '', ...over,
    });

    it('stores runs, updates their state, keeps sites apart', async () => {
      await journal.createRun(run());
      await journal.createRun(run({ runId: 'r2', kind: 'rollback', rollupVersion: 0, createdAtMs: 2_000, updatedAtMs: 2_000 }));
      await journal.updateRun(site, 'r1', { state: 'done', message: 'ok', updatedAtMs: 3_000 });
      expect(await journal.run(site, 'r1')).to.deep.equal(run({ state: 'done', message: 'ok', updatedAtMs: 3_000 }));
      expect((await journal.runs(site)).map((r) => r.runId)).to.deep.equal(['r1', 'r2']);
      expect(await journal.run(site, 'r3')).to.equal(null);
      expect(await journal.runs(`${site}x`)).to.deep.equal([]);
    });

    it('stores day records whole, the last write winning, in day order', async () => {
      const day = (d: number, state: DayRecord['state']): DayRecord => ({ day: d, state, fromVersion: 0, toVersion: 3, events: 10 * d, rows: d, updatedAtMs: d });
      await journal.putDay(site, 'r1', day(20_001, 'pending'));
      await journal.putDay(site, 'r1', day(20_000, 'written'));
      await journal.putDay(site, 'r1', day(20_001, 'switched'));
      expect(await journal.days(site, 'r1')).to.deep.equal([day(20_000, 'written'), day(20_001, 'switched')]);
      expect(await journal.days(site, 'r2')).to.deep.equal([]);
    });

    it('leases: one holder at a time, renewed by the holder, freed by release or expiry', async () => {
      const name = `lease-${randomUUID()}`;
      expect(await journal.acquireLease(name, 'a', 2_000)).to.deep.equal({ acquired: true });
      expect(await journal.acquireLease(name, 'b', 2_000)).to.deep.equal({ acquired: false, holder: 'a' });
      expect(await journal.acquireLease(name, 'a', 2_000)).to.deep.equal({ acquired: true });
      expect(await journal.renewLease(name, 'b', 2_000)).to.equal(false);
      expect(await journal.renewLease(name, 'a', 2_000)).to.equal(true);
      await journal.releaseLease(name, 'b');
      expect((await journal.acquireLease(name, 'b', 2_000)).acquired).to.equal(false);
      await journal.releaseLease(name, 'a');
      expect(await journal.acquireLease(name, 'b', 1_000)).to.deep.equal({ acquired: true });
      // Not renewed: free again once the TTL ran out.
      await waitFor(async () => (await journal.acquireLease(name, 'c', 1_000)).acquired, { what: 'the lease to expire', deadlineMs: 10_000, intervalMs: 200 });
    });

    it('of concurrent acquirers exactly one wins', async () => {
      const name = `lease-${randomUUID()}`;
      const results = await Promise.all(['a', 'b', 'c', 'd'].map((o) => journal.acquireLease(name, o, 10_000)));
      expect(results.filter((r) => r.acquired)).to.have.length(1);
    });
  });
}

directoryContract('memory', async () => new MemoryVersionDirectory());
journalContract('memory', async () => new MemoryReprocessJournal());

describe('reprocessing seams on Cassandra', function () {
  this.timeout(120_000);
  let ks: TestKeyspace | undefined;
  const options = () => {
    if (!ks) throw new Error('no test keyspace: see the failure of the "before all" hook');
    return ks.options;
  };
  before(async () => {
    const s = stackEndpoints();
    ks = await createTestKeyspace({ contactPoints: s.cassandraContactPoints, localDataCenter: s.cassandraDataCenter });
  });
  after(async () => ks?.drop());

  directoryContract('cassandra', () => CassandraVersionDirectory.connect(options()));
  journalContract('cassandra', () => CassandraReprocessJournal.connect(options()));
});
