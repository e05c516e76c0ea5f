/**
 * CassandraRawArchive against a real node, beyond the contract: TTLs counted from event time,
 * sharded partitions, raising the shard count, unknown record formats failing loudly, the
 * late-mark columns (required at connect; marks and copies across a shard raise).
 *
 * The keyspace here is migrated with the late-mark columns (RAW_EVENTS_LATE_MARKS_CQL) added
 * when the shared migration list does not have them yet, and the contract runs against it.
 */
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { CassandraRawArchive, RAW_EVENTS_LATE_MARKS_CQL, shardOf, type CassandraRawArchiveOptions } from '../../src/adapters/cassandra/cassandra-raw-archive.js';
import { createTestKeyspace, type TestKeyspace } from '../../src/adapters/cassandra/cassandra-test-kit.js';
import { MIGRATIONS, type Migration } from '../../src/adapters/cassandra/migrations.js';
import type { ArchivedEvent } from '../../src/aggregate/raw-archive.js';
import { rawArchiveContract, rawEvent } from '../contract/raw-archive.contract.js';
import { stackEndpoints } from '../support/stack-fixture.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

async function all(it: AsyncIterable<ArchivedEvent>): Promise<ArchivedEvent[]> {
  const out: ArchivedEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

/** The shared migrations, with the late-mark columns appended while the list lacks them. */
function withLateMarks(): readonly Migration[] {
  const has = MIGRATIONS.some((m) => RAW_EVENTS_LATE_MARKS_CQL.every((cql) => m.statements.includes(cql)));
  if (has) return MIGRATIONS;
  const version = Math.max(...MIGRATIONS.map((m) => m.version)) + 1;
  return [...MIGRATIONS, { version, name: 'raw events: late marks (test keyspace)', statements: RAW_EVENTS_LATE_MARKS_CQL }];
}

describe('CassandraRawArchive (real node)', function () {
  this.timeout(60_000);
  let ks: TestKeyspace | undefined;
  const archives: CassandraRawArchive[] = [];
  let site: string;
  let t0: number;

  const open = async (options: Partial<CassandraRawArchiveOptions> = {}) => {
    if (!ks) throw new Error('no test keyspace: see the failure of the "before all" hook');
    const a = await CassandraRawArchive.connect({ ...ks.options, ...options });
    archives.push(a);
    return a;
  };

  before(async () => {
    const s = stackEndpoints();
    ks = await createTestKeyspace({ contactPoints: s.cassandraContactPoints, localDataCenter: s.cassandraDataCenter }, { migrations: withLateMarks() });
  });
  after(async () => ks?.drop());

  rawArchiveContract('cassandra (late-mark columns)', async ({ retentionMs }) => {
    const archive = await open({ retentionMs, fetchSize: 7 });
    return { archive, close: async () => {} };
  });
  rawArchiveContract('cassandra (late-mark columns), 3 shards an hour', async ({ retentionMs }) => {
    const archive = await open({ retentionMs, shards: 3, fetchSize: 7 });
    return { archive, close: async () => {} };
  });

  // Batches of a couple of events: every contract case then spans several batches a partition.
  rawArchiveContract('cassandra (late-mark columns), small batches', async ({ retentionMs }) => {
    const archive = await open({ retentionMs, shards: 2, maxBatchBytes: 900, writeConcurrency: 3, fetchSize: 7 });
    return { archive, close: async () => {} };
  });

  beforeEach(() => {
    site = `s-${randomUUID().slice(0, 8)}`;
    t0 = Math.floor(Date.now() / HOUR) * HOUR - 2 * HOUR;
  });
  afterEach(async () => {
    await Promise.all(archives.splice(0).map((a) => a.close()));
  });

  it('sets each event\'s TTL from its event time, so archiving again never extends it', async () => {
    const ts = Date.now() - 30 * MINUTE;
    let now = Date.now();
    const archive = await open({ retentionMs: HOUR, now: () => now });
    await archive.archive([rawEvent(site, 'e', ts)]);
    const ttl = async () => Number((await ks!.query(
      `SELECT TTL(record) AS ttl FROM ${ks!.keyspace}.raw_events WHERE site = ? AND hour = ? AND shard = 0`, [site, Math.floor(ts / HOUR)],
    ))[0]!.ttl);
    const first = await ttl();
    expect(first).to.be.within(1_800 - 30, 1_800);
    now += 60_000;
    await archive.archive([rawEvent(site, 'e', ts)]);
    expect(await ttl()).to.be.within(1_740 - 30, 1_740);
  });

  it('spreads a big site\'s hour over its shards and reads them back merged in order', async () => {
    const archive = await open({ shards: 4, fetchSize: 5 });
    const evs = Array.from({ length: 60 }, (_, i) => rawEvent(site, `id-${i}`, t0 + Math.floor(i / 3) * 1_000));
    await archive.archive([...evs].reverse());
    const shards = await ks!.query(`SELECT DISTINCT site, hour, shard FROM ${ks!.keyspace}.raw_events`);
    expect(new Set(shards.filter((r) => r.site === site).map((r) => r.shard)).size).to.equal(4);
    const got = await all(archive.read(site, t0, t0 + HOUR));
    const expected = [...evs].sort((a, b) => a.ts - b.ts || Buffer.compare(Buffer.from(a.id), Buffer.from(b.id)));
    expect(got.map((e) => e.id)).to.deep.equal(expected.map((e) => e.id));
  });

  it('still finds events archived under a smaller shard count after it is raised', async () => {
    const before = await open({ shards: 1 });
    await before.archive([rawEvent(site, 'one', t0 + 1), rawEvent(site, 'two', t0 + 2)]);
    const after = await open({ shards: 3 });
    await after.archive([rawEvent(site, 'three', t0 + 3)]);
    expect((await all(after.read(site, t0, t0 + HOUR))).map((e) => e.id)).to.deep.equal(['one', 'two', 'three']);
  });

  it('archives a call spanning sites, hours and shards in bounded batches, an oversized event alone, copies of one event together', async () => {
    const archive = await open({ shards: 2, maxBatchBytes: 2_000, writeConcurrency: 2 });
    const other = `${site}-b`;
    const evs = Array.from({ length: 90 }, (_, i) => rawEvent(i % 3 === 0 ? other : site, `id-${i}`, t0 + (i % 3) * HOUR + i * 1_000));
    const big = rawEvent(site, 'big', t0 + 5, { title: 'x'.repeat(5_000) });
    // Two copies of one event in one call (a retried produce): both positions are kept.
    const twice = evs[4]!;
    await archive.archive([...evs, big, twice], [...evs.map((_, i) => ({ partition: 1, offset: i })), { partition: 1, offset: 500 }, { partition: 2, offset: 7 }]);
    const mine = evs.filter((e) => e.site === site).concat(big).sort((a, b) => a.ts - b.ts || Buffer.compare(Buffer.from(a.id), Buffer.from(b.id)));
    expect(await all(archive.read(site, t0, t0 + 3 * HOUR))).to.deep.equal(mine);
    expect((await all(archive.read(other, t0, t0 + 3 * HOUR))).map((e) => e.id)).to.deep.equal(evs.filter((e) => e.site === other).map((e) => e.id));
    const copies = await ks!.query(
      `SELECT copies FROM ${ks!.keyspace}.raw_events WHERE site = ? AND hour = ? AND shard = ? AND ts = ? AND id = ?`,
      [site, Math.floor(twice.ts / HOUR), shardOf(twice.id, 2), twice.ts, twice.id],
    );
    expect([...(copies[0]!.copies as string[])].sort()).to.deep.equal(['1:4', '2:7']);
    await archive.markLate([{ site, ts: twice.ts, id: twice.id, position: { partition: 1, offset: 4 } }, { site, ts: twice.ts, id: twice.id, position: { partition: 2, offset: 7 } }]);
    expect((await all(archive.read(site, twice.ts, twice.ts + 1)))[0]!.late).to.equal(true);
  });

  it('refuses a bad batch bound', async () => {
    let err: unknown;
    try {
      await open({ maxBatchBytes: 0 });
    } catch (e) {
      err = e;
    }
    expect(String(err)).to.match(/maxBatchBytes must be a positive integer/);
  });

  it('fails loudly on a record format it does not know', async () => {
    await ks!.query(
      `INSERT INTO ${ks!.keyspace}.raw_events (site, hour, shard, ts, id, format, record) VALUES (?, ?, 0, ?, 'future', 99, '{}')`,
      [site, Math.floor(t0 / HOUR), t0],
    );
    const archive = await open();
    let err: unknown;
    try {
      await all(archive.read(site, t0, t0 + HOUR));
    } catch (e) {
      err = e;
    }
    expect(String(err)).to.match(/record format 99, newer than this code reads/);
  });

  it('refuses to connect to a keyspace without the late-mark columns, naming them', async () => {
    const s = stackEndpoints();
    const bare = await createTestKeyspace({ contactPoints: s.cassandraContactPoints, localDataCenter: s.cassandraDataCenter }, {
      migrations: MIGRATIONS.filter((m) => !RAW_EVENTS_LATE_MARKS_CQL.some((cql) => m.statements.includes(cql))),
    });
    try {
      let err: unknown;
      try {
        archives.push(await CassandraRawArchive.connect(bare.options));
      } catch (e) {
        err = e;
      }
      expect(String(err)).to.match(/raw_events lacks column\(s\) copies, late: apply the schema migrations/);
    } finally {
      await bare.drop();
    }
  });

  it('after a shard raise, reads copies and marks of one event from both of its rows, and erases both', async () => {
    const before = await open({ shards: 1 });
    const e = rawEvent(site, 'moved-on', t0 + 1, { visitorId: 'd'.repeat(32) });
    const ids = Array.from({ length: 40 }, (_, i) => `id-${i}`);
    // An id the raised count puts in another shard than 0.
    const id = ids.find((x) => shardOf(x, 4) !== 0)!;
    const moved = { ...e, id };
    await before.archive([moved], [{ partition: 0, offset: 5 }]);
    const after = await open({ shards: 4 });
    // The retry's copy and both marks land in the new shard's row.
    await after.archive([moved], [{ partition: 0, offset: 9 }]);
    await after.markLate([{ site, ts: moved.ts, id, position: { partition: 0, offset: 9 } }]);
    expect(await all(after.read(site, t0, t0 + HOUR))).to.deep.equal([moved]);
    await after.markLate([{ site, ts: moved.ts, id, position: { partition: 0, offset: 5 } }]);
    expect(await all(after.read(site, t0, t0 + HOUR))).to.deep.equal([{ ...moved, late: true }]);
    expect(await after.clearLate(site, t0, t0 + HOUR)).to.equal(1);
    expect(await all(after.read(site, t0, t0 + HOUR))).to.deep.equal([moved]);
    expect(await after.deleteVisitors(site, new Set([moved.visitorId]), t0, t0 + HOUR)).to.equal(1);
    expect(await ks!.query(`SELECT id FROM ${ks!.keyspace}.raw_events WHERE site = ? AND hour = ? AND shard IN (0, 1, 2, 3)`, [site, Math.floor(t0 / HOUR)])).to.deep.equal([]);
  });
});
