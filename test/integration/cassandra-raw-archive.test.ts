/**
 * CassandraRawArchive against a real node, beyond the contract: TTLs counted from event time,
 * sharded partitions, raising the shard count, unknown record formats failing loudly.
 */
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { CassandraRawArchive, type CassandraRawArchiveOptions } from '../../src/adapters/cassandra/cassandra-raw-archive.js';
import { createTestKeyspace, type TestKeyspace } from '../../src/adapters/cassandra/cassandra-test-kit.js';
import type { EnrichedEvent } from '../../src/ingest/enriched-event.js';
import { rawEvent } from '../contract/raw-archive.contract.js';
import { stackEndpoints } from '../support/stack-fixture.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

async function all(it: AsyncIterable<EnrichedEvent>): Promise<EnrichedEvent[]> {
  const out: EnrichedEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
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
    ks = await createTestKeyspace({ contactPoints: s.cassandraContactPoints, localDataCenter: s.cassandraDataCenter });
  });
  after(async () => ks?.drop());
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
});
