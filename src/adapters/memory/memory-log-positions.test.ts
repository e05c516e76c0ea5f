import { expect } from 'chai';
import { waitFor } from '../../../test/support/wait-for.js';
import { MemoryEventLog } from './memory-event-log.js';
import { MemoryLogPositions } from './memory-log-positions.js';

const record = (n: number) => ({ key: 'one-key', value: Buffer.from(String(n)), timestampMs: n });

describe('MemoryLogPositions', () => {
  it('reports each partition\'s offset range, empty where nothing was appended, and moved on where retention dropped records', async () => {
    const log = new MemoryEventLog({ partitions: 3, maxUnreadRecords: 0 });
    const positions = new MemoryLogPositions(log);
    expect(await positions.offsetRanges('t')).to.deep.equal([{ start: 0, end: 0 }, { start: 0, end: 0 }, { start: 0, end: 0 }]);
    // No group reads the topic and it keeps no unread record: whole segments (1,024) go.
    await log.append('t', Array.from({ length: 2_500 }, (_, n) => record(n)));
    const ranges = await positions.offsetRanges('t');
    const used = ranges.findIndex((r) => r.end > 0);
    expect(ranges[used]).to.deep.equal({ start: 2_048, end: 2_500 });
    expect(ranges.filter((_, p) => p !== used)).to.deep.equal([{ start: 0, end: 0 }, { start: 0, end: 0 }]);
    expect(await positions.endOffsets('t')).to.deep.equal(ranges.map((r) => r.end));

    // A consumer that commits everything lets the rest go too, once whole segments are read.
    const consumer = await log.consume({
      topic: 't', groupId: 'g', fromBeginning: true,
      handlers: {
        onAssigned: async () => {}, onRevoked: async () => {},
        onBatch: async (b) => { await consumer.commit(b.partition, { offset: b.records.at(-1)!.offset + 1, metadata: '' }); },
      },
    });
    await log.append('t', Array.from({ length: 572 }, (_, n) => record(2_500 + n)));
    await waitFor(async () => (await positions.offsetRanges('t'))[used]!.start === 3_072, { what: 'the read segments dropped' });
    expect((await positions.offsetRanges('t'))[used]).to.deep.equal({ start: 3_072, end: 3_072 });
    await consumer.stop();
    await log.close();
  });
});
