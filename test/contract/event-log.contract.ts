/**
 * The EventLog contract, run against every implementation (in-memory now, Kafka with the real
 * engines). Each test uses its own topic and group so implementations with shared state
 * (a real broker) need no clean-up between tests.
 */
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import type { CommittedOffset, ConsumedRecord, EventLog, GroupConsumer, PartitionBatch } from '../../src/ingest/event-log.js';
import { waitFor } from '../support/wait-for.js';

export interface EventLogFixture {
  readonly log: EventLog;
  /** Topics must exist before use on some implementations. */
  createTopic(name: string): Promise<void>;
  close(): Promise<void>;
}

function record(key: string, n: number) {
  return { key, value: Buffer.from(JSON.stringify({ key, n })), timestampMs: 1_700_000_000_000 + n, headers: { id: `${key}-${n}` } };
}

interface Ledger {
  readonly seen: ConsumedRecord[];
  readonly assigned: Array<{ partition: number; committed: CommittedOffset | null }>;
  readonly revoked: number[];
}

function ledgerHandlers(ledger: Ledger, onBatch?: (b: PartitionBatch) => Promise<void>) {
  return {
    onAssigned: async (partition: number, committed: CommittedOffset | null) => { ledger.assigned.push({ partition, committed }); },
    onRevoked: async (partition: number) => { ledger.revoked.push(partition); },
    onBatch: async (b: PartitionBatch) => {
      if (onBatch) await onBatch(b);
      ledger.seen.push(...b.records);
    },
  };
}

const newLedger = (): Ledger => ({ seen: [], assigned: [], revoked: [] });

export function eventLogContract(name: string, setup: () => Promise<EventLogFixture>): void {
  describe(`EventLog contract: ${name}`, function () {
    this.timeout(60_000);
    let fx: EventLogFixture;
    let topic: string;
    const consumers: GroupConsumer[] = [];

    beforeEach(async () => {
      fx = await setup();
      topic = `contract-${randomUUID()}`;
      await fx.createTopic(topic);
    });

    afterEach(async () => {
      await Promise.all(consumers.splice(0).map((c) => c.stop()));
      // fx is unset when setup itself failed: report that failure, not a TypeError here.
      await fx?.close();
    });

    it('keeps per-key order, puts one key in one partition and gives dense offsets', async () => {
      const keys = ['site-a', 'site-b', 'site-c', 'site-d'];
      const batch = keys.flatMap((k) => Array.from({ length: 25 }, (_, i) => record(k, i)));
      await fx.log.append(topic, batch);
      const ledger = newLedger();
      consumers.push(await fx.log.consume({ topic, groupId: `g-${randomUUID()}`, fromBeginning: true, handlers: ledgerHandlers(ledger) }));
      await waitFor(() => ledger.seen.length >= batch.length, { what: 'all records', deadlineMs: 30_000 });
      expect(ledger.seen).to.have.length(batch.length);
      for (const k of keys) {
        const mine = ledger.seen.filter((r) => r.key === k);
        expect(new Set(mine.map((r) => r.partition)).size, `${k} in one partition`).to.equal(1);
        expect(mine.map((r) => JSON.parse(r.value.toString()).n)).to.deep.equal([...Array(25).keys()]);
      }
      const byPartition = new Map<number, number[]>();
      for (const r of ledger.seen) byPartition.set(r.partition, [...(byPartition.get(r.partition) ?? []), r.offset]);
      for (const offsets of byPartition.values()) {
        expect(offsets).to.deep.equal(offsets.map((_, i) => offsets[0]! + i));
      }
      expect(ledger.seen[0]!.headers).to.have.property('id');
    });

    it('resumes a group at its committed offset and returns the commit metadata', async () => {
      await fx.log.append(topic, Array.from({ length: 10 }, (_, i) => record('k', i)));
      const groupId = `g-${randomUUID()}`;
      const first = newLedger();
      const c1 = await fx.log.consume({ topic, groupId, fromBeginning: true, handlers: ledgerHandlers(first) });
      await waitFor(() => first.seen.length >= 10, { what: 'first pass', deadlineMs: 30_000 });
      const partition = first.seen[0]!.partition;
      await c1.commit(partition, { offset: first.seen[6]!.offset, metadata: '{"wm":42}' });
      await c1.stop();

      await fx.log.append(topic, [record('k', 10)]);
      const second = newLedger();
      consumers.push(await fx.log.consume({ topic, groupId, fromBeginning: true, handlers: ledgerHandlers(second) }));
      await waitFor(() => second.seen.length >= 5, { what: 'resumed records', deadlineMs: 30_000 });
      expect(second.seen.map((r) => JSON.parse(r.value.toString()).n)).to.deep.equal([6, 7, 8, 9, 10]);
      const assignment = second.assigned.find((a) => a.partition === partition);
      expect(assignment?.committed).to.deep.equal({ offset: first.seen[6]!.offset, metadata: '{"wm":42}' });
    });

    it('redelivers a batch whose handler failed (at-least-once)', async () => {
      await fx.log.append(topic, Array.from({ length: 3 }, (_, i) => record('k', i)));
      let failures = 0;
      const ledger = newLedger();
      consumers.push(await fx.log.consume({
        topic, groupId: `g-${randomUUID()}`, fromBeginning: true,
        handlers: ledgerHandlers(ledger, async () => {
          if (failures < 2) {
            failures++;
            throw new Error('handler failed');
          }
        }),
      }));
      await waitFor(() => ledger.seen.length >= 3, { what: 'redelivered records', deadlineMs: 30_000 });
      expect(failures).to.equal(2);
      expect(ledger.seen.map((r) => JSON.parse(r.value.toString()).n)).to.deep.equal([0, 1, 2]);
    });

    it('splits partitions between two members and hands them over when one leaves', async () => {
      const groupId = `g-${randomUUID()}`;
      const a = newLedger();
      const b = newLedger();
      const ca = await fx.log.consume({ topic, groupId, fromBeginning: true, handlers: ledgerHandlers(a) });
      consumers.push(await fx.log.consume({ topic, groupId, fromBeginning: true, handlers: ledgerHandlers(b) }));
      const owned = (l: Ledger) => new Set(l.assigned.map((x) => x.partition).filter((p) => !l.revoked.includes(p) || l.assigned.filter((x) => x.partition === p).length > l.revoked.filter((r) => r === p).length));
      await waitFor(() => owned(a).size > 0 && owned(b).size > 0 && owned(a).size + owned(b).size === fx.log.partitions, { what: 'both members assigned', deadlineMs: 30_000 });
      await ca.stop();
      await waitFor(() => owned(b).size === fx.log.partitions, { what: 'survivor owns all', deadlineMs: 30_000 });
      const keys = Array.from({ length: 40 }, (_, i) => `key-${i}`);
      await fx.log.append(topic, keys.map((k) => record(k, 0)));
      await waitFor(() => b.seen.length >= keys.length, { what: 'survivor reads all', deadlineMs: 30_000 });
      expect(new Set(b.seen.map((r) => r.key))).to.deep.equal(new Set(keys));
    });

    it('starts a new group at the end when fromBeginning is false', async () => {
      await fx.log.append(topic, [record('k', 0), record('k', 1)]);
      const ledger = newLedger();
      consumers.push(await fx.log.consume({ topic, groupId: `g-${randomUUID()}`, fromBeginning: false, handlers: ledgerHandlers(ledger) }));
      await waitFor(() => ledger.assigned.length > 0, { what: 'assignment', deadlineMs: 30_000 });
      await fx.log.append(topic, [record('k', 2)]);
      await waitFor(() => ledger.seen.length >= 1, { what: 'new record', deadlineMs: 30_000 });
      expect(ledger.seen.map((r) => JSON.parse(r.value.toString()).n)).to.deep.equal([2]);
    });
  });
}
