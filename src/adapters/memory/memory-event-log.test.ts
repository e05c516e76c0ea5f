/**
 * What the in-memory log does beyond the shared EventLog contract (test/contract): it owns the
 * bytes it holds, and its memory bound.
 */
import { expect } from 'chai';
import { waitFor } from '../../../test/support/wait-for.js';
import type { LogRecord } from '../../ingest/event-log.js';
import { MemoryEventLog } from './memory-event-log.js';

const record = (key: string, n: number, value = Buffer.from(`{"n":${n}}`)): LogRecord => ({ key, value, timestampMs: 1_700_000_000_000 + n, headers: { id: `${key}-${n}` } });

describe('MemoryEventLog', () => {
  let log: MemoryEventLog;

  beforeEach(() => {
    log = new MemoryEventLog({ partitions: 3, maxUnreadRecords: 2_000 });
  });

  afterEach(async () => {
    await log.close();
  });

  it('keeps copies of the values: a producer may reuse or drop its buffers once append resolves', async () => {
    const shared = Buffer.from('{"n":1}{"n":2}');
    await log.append('t', [record('k', 1, shared.subarray(0, 7)), record('k', 2, shared.subarray(7))]);
    shared.fill(0x20);
    const held = log.readAll('t');
    expect(held.map((r) => r.value.toString())).to.deep.equal(['{"n":1}', '{"n":2}']);
    expect(held[0]!.value.buffer).to.not.equal(shared.buffer);
  });

  it('gives records back as appended: key, value, time, headers (absent when there were none)', async () => {
    const big = Buffer.alloc(100_000, 0x61);
    await log.append('t', [record('k', 1), { key: 'k', value: big, timestampMs: 5 }]);
    const [a, b] = log.readAll('t');
    expect(a).to.deep.include({ key: 'k', timestampMs: 1_700_000_000_001, headers: { id: 'k-1' }, offset: 0 });
    expect(b).to.not.have.property('headers');
    expect(b!.value.equals(big)).to.equal(true);
    expect(b).to.deep.include({ timestampMs: 5, offset: 1 });
  });

  it('keeps dense offsets across its internal segments', async () => {
    for (let i = 0; i < 5_000; i += 500) await log.append('t', Array.from({ length: 500 }, (_, k) => record('one-key', i + k)));
    const partition = log.readAll('t')[0]!.partition;
    const all = log.partition('t', partition).records;
    expect(all.map((r) => r.offset)).to.deep.equal(all.map((_, i) => all[0]!.offset + i));
    expect(all.map((r) => JSON.parse(r.value.toString()).n)).to.deep.equal(all.map((_, i) => 5_000 - all.length + i));
  });

  it('bounds a topic no group reads to its newest records, in whole segments, and counts what it dropped', async () => {
    for (let i = 0; i < 20_000; i += 1_000) await log.append('t', Array.from({ length: 1_000 }, (_, k) => record('one-key', i + k)));
    const held = log.size('t');
    expect(held).to.be.at.least(2_000);
    expect(held).to.be.at.most(2_000 + 1_024);
    expect(log.trimmedCount('t') + held).to.equal(20_000);
    const newest = log.readAll('t').at(-1)!;
    expect(JSON.parse(newest.value.toString()).n).to.equal(19_999);
  });

  it('drops what every group has committed', async () => {
    const seen: number[] = [];
    const consumer = await log.consume({
      topic: 't', groupId: 'g', fromBeginning: true,
      handlers: {
        onAssigned: async () => {}, onRevoked: async () => {},
        onBatch: async (b) => {
          for (const r of b.records) seen.push(r.offset);
          await consumer.commit(b.partition, { offset: b.records.at(-1)!.offset + 1, metadata: '' });
        },
      },
    });
    for (let i = 0; i < 5_000; i += 500) await log.append('t', Array.from({ length: 500 }, (_, k) => record('one-key', i + k)));
    await waitFor(() => seen.length >= 5_000, { what: 'every record consumed' });
    expect(seen).to.deep.equal([...Array(5_000).keys()]);
    await log.append('t', [record('one-key', 5_000)]); // appends trim too
    expect(log.size('t')).to.be.at.most(1_024 + 1);
    await consumer.stop();
  });
});
