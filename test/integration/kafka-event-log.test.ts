/**
 * KafkaEventLog against a real broker at 127.0.0.1:9092 (`npm run stack:up`): the behaviour the
 * aggregator relies on beyond the shared contract. Ledgers of everything delivered give the
 * assertions (nothing lost, duplicates only where nothing was committed, per-key order, revoke
 * before assign); every wait is a condition with a deadline. Fresh topics and group ids per test.
 * Without a broker these tests fail with a message naming the address; they never skip.
 */
import { expect } from 'chai';
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { KafkaJSProtocolError, type ConsumerConfig, type Kafka } from 'kafkajs';
import { KafkaEventLog, type KafkaEventLogOptions } from '../../src/adapters/kafka/kafka-event-log.js';
import { KafkaEventLogError } from '../../src/adapters/kafka/kafka-event-log-error.js';
import type { KafkaGroupConsumer } from '../../src/adapters/kafka/kafka-group-consumer.js';
import { requireKafka, testKafkaOptions } from '../../src/adapters/kafka/kafka-test-kit.js';
import { stackEndpoints } from '../support/stack-fixture.js';
import type { CommittedOffset, ConsumedRecord, ConsumerHandlers, GroupConsumer, LogRecord } from '../../src/ingest/event-log.js';
import { waitFor } from '../support/wait-for.js';

const T0 = Date.UTC(2024, 0, 1);

function record(key: string, n: number): LogRecord {
  return { key, value: Buffer.from(JSON.stringify({ key, n })), timestampMs: T0 + n, headers: { id: `${key}:${n}` } };
}

const idOf = (r: ConsumedRecord) => r.headers?.id ?? '';
const nOf = (r: ConsumedRecord) => (JSON.parse(r.value.toString()) as { n: number }).n;

/** Resolves with what `promise` rejected with; fails if it resolves or neither happens before the deadline. */
async function rejectionOf(promise: Promise<unknown>, what: string, deadlineMs: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: neither failed nor succeeded within ${deadlineMs} ms`)), deadlineMs);
  });
  let outcome: unknown;
  try {
    await Promise.race([promise, deadline]);
  } catch (e) {
    outcome = e;
  } finally {
    clearTimeout(timer);
  }
  if (outcome === undefined) throw new Error(`${what}: expected a failure, but it succeeded`);
  if (outcome instanceof Error && outcome.message.startsWith(`${what}: neither`)) throw outcome;
  return outcome;
}

/** A port nothing listens on: bound once by us, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface LedgerEvent {
  readonly member: string;
  readonly kind: 'assigned' | 'revoked' | 'batch';
  readonly partition: number;
  /** assigned: what the group had committed; revoked: what the member committed on leaving. */
  readonly committed: CommittedOffset | null;
  /** batch: its first offset. */
  readonly offset?: number;
}

describe('KafkaEventLog against a real broker', function () {
  this.timeout(120_000);
  const logs: KafkaEventLog[] = [];
  const consumers: GroupConsumer[] = [];
  const topics: string[] = [];
  let log: KafkaEventLog;
  let topic: string;

  async function open(overrides: Partial<KafkaEventLogOptions> = {}): Promise<KafkaEventLog> {
    const l = await KafkaEventLog.connect(testKafkaOptions({ brokers: stackEndpoints().kafkaBrokers, ...overrides }));
    logs.push(l);
    return l;
  }

  async function consume(l: KafkaEventLog, groupId: string, handlers: ConsumerHandlers, fromBeginning = true): Promise<KafkaGroupConsumer> {
    const c = await l.consume({ topic, groupId, fromBeginning, handlers });
    consumers.push(c);
    return c as KafkaGroupConsumer;
  }

  before(async () => {
    await requireKafka(stackEndpoints().kafkaBrokers[0]);
  });

  beforeEach(async () => {
    log = await open();
    topic = `it-${randomUUID()}`;
    topics.push(topic);
    await log.ensureTopics([topic]);
  });

  afterEach(async () => {
    await Promise.allSettled(consumers.splice(0).map((c) => c.stop()));
    await log.deleteTopics(topics.splice(0));
    await Promise.allSettled(logs.splice(0).map((l) => l.close()));
  });

  it('redelivers a batch whose handler failed: nothing lost, nothing delivered twice, per-key order kept; a restart redelivers only what was not committed', async () => {
    const keys = Array.from({ length: 6 }, (_, i) => `site-${i}`);
    const appended = keys.flatMap((k) => Array.from({ length: 50 }, (_, n) => record(k, n)));
    for (let i = 0; i < appended.length; i += 60) await log.append(topic, appended.slice(i, i + 60));

    const groupId = `g-${randomUUID()}`;
    const seen: ConsumedRecord[] = [];
    let calls = 0;
    let failures = 0;
    const failedFirstOffsets: Array<{ partition: number; offset: number }> = [];
    const a = await consume(log, groupId, {
      onAssigned: async () => {},
      onRevoked: async () => {},
      onBatch: async (b) => {
        calls++;
        if (calls % 3 === 1) {
          failures++;
          failedFirstOffsets.push({ partition: b.partition, offset: b.records[0]!.offset });
          throw new Error('handler failed');
        }
        seen.push(...b.records);
      },
    });
    await waitFor(() => new Set(seen.map(idOf)).size === appended.length, { what: 'every record delivered', deadlineMs: 60_000 });
    expect(failures, 'handler failures exercised').to.be.greaterThan(0);
    expect(seen.length, 'no record delivered twice').to.equal(appended.length);
    for (const k of keys) {
      expect(seen.filter((r) => r.key === k).map(nOf), `order of ${k}`).to.deep.equal([...Array(50).keys()]);
    }
    // Each failed batch was delivered again from its first offset.
    for (const f of failedFirstOffsets) {
      expect(seen.some((r) => r.partition === f.partition && r.offset === f.offset), `redelivery of ${f.partition}@${f.offset}`).to.equal(true);
    }

    // Commit half of each partition, stop, and let a second member of the group take over:
    // it gets exactly the uncommitted rest, the only duplicates a restart may cause.
    const byPartition = new Map<number, ConsumedRecord[]>();
    for (const r of seen) byPartition.set(r.partition, [...(byPartition.get(r.partition) ?? []), r]);
    const committedAt = new Map<number, number>();
    for (const [p, rs] of byPartition) {
      const offset = rs[Math.floor(rs.length / 2)]!.offset;
      await a.commit(p, { offset, metadata: `half-${p}` });
      committedAt.set(p, offset);
    }
    await a.stop();

    const second: ConsumedRecord[] = [];
    const assigned = new Map<number, CommittedOffset | null>();
    await consume(log, groupId, {
      onAssigned: async (p, c) => { assigned.set(p, c); },
      onRevoked: async () => {},
      onBatch: async (b) => { second.push(...b.records); },
    });
    const expected = seen.filter((r) => r.offset >= committedAt.get(r.partition)!);
    await waitFor(() => second.length >= expected.length, { what: 'uncommitted records redelivered', deadlineMs: 30_000 });
    expect(second.map(idOf).sort()).to.deep.equal(expected.map(idOf).sort());
    for (const [p, offset] of committedAt) expect(assigned.get(p)).to.deep.equal({ offset, metadata: `half-${p}` });
  });

  it('moves partitions between two members: the old owner is revoked (and its commit lands) before the new owner is assigned', async () => {
    const groupId = `g-${randomUUID()}`;
    const events: LedgerEvent[] = [];
    const processed = new Map<string, number>();
    const keys = Array.from({ length: 16 }, (_, i) => `site-${i}`);
    let round = 0;
    const appendRound = async () => {
      const batch = keys.map((k) => record(k, round));
      round++;
      await log.append(topic, batch);
      return batch.length;
    };

    /** A member that, like the aggregator, commits its position (with metadata) when a partition is revoked. */
    function member(name: string, l: KafkaEventLog) {
      const positions = new Map<number, number>();
      const holder: { consumer?: GroupConsumer } = {};
      const handlers: ConsumerHandlers = {
        onAssigned: async (p, committed) => {
          events.push({ member: name, kind: 'assigned', partition: p, committed });
          if (committed) positions.set(p, committed.offset);
        },
        onRevoked: async (p) => {
          const offset = positions.get(p);
          positions.delete(p);
          let committed: CommittedOffset | null = null;
          if (offset !== undefined) {
            committed = { offset, metadata: JSON.stringify({ by: name, offset }) };
            await holder.consumer!.commit(p, committed);
          }
          events.push({ member: name, kind: 'revoked', partition: p, committed });
        },
        onBatch: async (b) => {
          events.push({ member: name, kind: 'batch', partition: b.partition, committed: null, offset: b.records[0]!.offset });
          for (const r of b.records) processed.set(idOf(r), (processed.get(idOf(r)) ?? 0) + 1);
          positions.set(b.partition, b.records[b.records.length - 1]!.offset + 1);
        },
      };
      return {
        holder,
        start: async () => { holder.consumer = await consume(l, groupId, handlers); return holder.consumer as KafkaGroupConsumer; },
      };
    }

    let total = 0;
    for (let i = 0; i < 5; i++) total += await appendRound();
    const a = member('A', log);
    const ca = await a.start();
    await waitFor(() => processed.size === total, { what: 'A reads the backlog', deadlineMs: 30_000 });
    expect(ca.ownedPartitions()).to.deep.equal([0, 1, 2, 3]);

    const b = member('B', await open());
    const cb = await b.start();
    await waitFor(() => {
      const mine = ca.ownedPartitions();
      const theirs = cb.ownedPartitions();
      return mine.length > 0 && theirs.length > 0 && mine.length + theirs.length === 4;
    }, { what: 'partitions split between A and B', deadlineMs: 30_000 });
    for (let i = 0; i < 5; i++) total += await appendRound();
    await waitFor(() => processed.size === total, { what: 'records after the split', deadlineMs: 30_000 });

    await ca.stop();
    await waitFor(() => cb.ownedPartitions().length === 4, { what: 'B owns every partition', deadlineMs: 30_000 });
    for (let i = 0; i < 5; i++) total += await appendRound();
    await waitFor(() => processed.size === total, { what: 'records after A left', deadlineMs: 30_000 });

    // Nothing lost, and nothing twice: every handover resumed exactly where the old owner committed.
    expect([...processed.values()].every((n) => n === 1), 'each record processed once').to.equal(true);

    // Every handover, A to B, B to A or a member to itself across a rebalance (eager protocol:
    // every rebalance revokes everything): the previous owner's onRevoked came first, and the
    // next owner was handed what it committed there, metadata included.
    let handovers = 0;
    events.forEach((e, i) => {
      if (e.kind !== 'assigned') return;
      const earlier = events.slice(0, i);
      const j = earlier.map((x) => x.kind === 'assigned' && x.partition === e.partition).lastIndexOf(true);
      if (j < 0) return;
      const previousOwner = earlier[j]!.member;
      const revoked = earlier.slice(j + 1).filter((x) => x.kind === 'revoked' && x.partition === e.partition);
      expect(revoked.map((x) => x.member), `partition ${e.partition}: ${previousOwner} revoked it before ${e.member} was assigned it`).to.deep.equal([previousOwner]);
      if (revoked[0]!.committed) expect(e.committed, `partition ${e.partition}: ${e.member} starts from ${previousOwner}'s commit`).to.deep.equal(revoked[0]!.committed);
      if (previousOwner !== e.member) handovers++;
    });
    expect(handovers, 'partitions moved between members').to.be.greaterThan(0);
    // Batches only between a member's onAssigned and onRevoked of their partition.
    events.forEach((e, i) => {
      if (e.kind !== 'batch') return;
      const mine = events.slice(0, i).filter((x) => x.member === e.member && x.partition === e.partition && x.kind !== 'batch');
      expect(mine[mine.length - 1]?.kind, `${e.member}'s batch of ${e.partition}@${e.offset} while assigned`).to.equal('assigned');
    });
    // Once revoked, A cannot commit for a partition: refused loudly, not dropped silently.
    const err = await rejectionOf(a.holder.consumer!.commit(0, { offset: 0, metadata: '' }), 'commit after stop', 10_000);
    expect(err).to.be.instanceOf(KafkaEventLogError);
  });

  it('round-trips commit metadata (long, non-ASCII, empty) through the broker to the next assignment', async () => {
    await log.append(topic, Array.from({ length: 5 }, (_, n) => record('k', n)));
    const groupId = `g-${randomUUID()}`;
    const seen: ConsumedRecord[] = [];
    const a = await consume(log, groupId, {
      onAssigned: async () => {},
      onRevoked: async () => {},
      onBatch: async (b) => { seen.push(...b.records); },
    });
    await waitFor(() => seen.length >= 5, { what: 'first pass', deadlineMs: 30_000 });
    const p = seen[0]!.partition;
    const other = (p + 1) % 4;
    const metadata = JSON.stringify({ watermarkMs: T0, highOffset: 4, note: 'Zürich → 東京 ✓', pad: 'x'.repeat(1_500) });
    await a.commit(p, { offset: 3, metadata });
    await a.commit(other, { offset: 0, metadata: '' });
    await a.stop();

    const assigned = new Map<number, CommittedOffset | null>();
    const again: ConsumedRecord[] = [];
    await consume(log, groupId, {
      onAssigned: async (partition, committed) => { assigned.set(partition, committed); },
      onRevoked: async () => {},
      onBatch: async (b) => { again.push(...b.records); },
    });
    await waitFor(() => assigned.size === 4 && again.length >= 2, { what: 'second assignment and records', deadlineMs: 30_000 });
    expect(assigned.get(p)).to.deep.equal({ offset: 3, metadata });
    expect(assigned.get(other)).to.deep.equal({ offset: 0, metadata: '' });
    for (const q of [0, 1, 2, 3].filter((q) => q !== p && q !== other)) expect(assigned.get(q)).to.equal(null);
    expect(again.map(nOf)).to.deep.equal([3, 4]);
  });

  it('keeps a member in its group through a batch longer than the session timeout (heartbeats while the handler runs)', async () => {
    const sessionTimeoutMs = 6_000;
    const slow = await open({ consumer: { sessionTimeoutMs, heartbeatIntervalMs: 500 } });
    await slow.append(topic, [record('k', 0)]);
    const events: string[] = [];
    let released = false;
    const c = await consume(slow, `g-${randomUUID()}`, {
      onAssigned: async (p) => { events.push(`assigned ${p}`); },
      onRevoked: async (p) => { events.push(`revoked ${p}`); },
      onBatch: async (b) => {
        events.push(`batch ${b.partition}`);
        // The long batch this test is about: half again as long as the session.
        await new Promise((r) => setTimeout(r, sessionTimeoutMs * 1.5));
        released = true;
      },
    });
    await waitFor(() => released, { what: 'the long batch', deadlineMs: 30_000 });
    const partition = Number(events.find((e) => e.startsWith('batch'))!.split(' ')[1]);
    // Still the same member: nothing was revoked, and a commit under its generation is accepted.
    await c.commit(partition, { offset: 1, metadata: 'after-long-batch' });
    expect(events.filter((e) => e.startsWith('revoked'))).to.deep.equal([]);
  });

  it('creates the events, late and dead-letter topics once, refuses a partition-count mismatch, and keeps headers, keys, bytes and event time', async () => {
    const base = `it-${randomUUID()}`;
    const appTopics = [`${base}.events`, `${base}.late`, `${base}.dead-letter`];
    topics.push(...appTopics);
    await log.ensureTopics(appTopics);
    await log.ensureTopics(appTopics);
    const mismatch = await rejectionOf(log.ensureTopics([appTopics[0]!], { partitions: 2 }), 'ensureTopics with another partition count', 30_000);
    expect(mismatch).to.be.instanceOf(KafkaEventLogError);
    expect((mismatch as KafkaEventLogError).retryable).to.equal(false);
    expect((mismatch as KafkaEventLogError).message).to.contain('has 4 partitions');

    const poison: LogRecord = {
      key: 'site-x',
      value: Buffer.from([0xff, 0x00, 0xfe, 0x7b]),
      timestampMs: Date.UTC(2023, 5, 1, 12, 0, 0, 123),
      headers: { id: 'evt-1', reason: 'invalid-json', 'source-topic': appTopics[0]!, 'source-partition': '2', 'source-offset': '17' },
    };
    await log.append(appTopics[2]!, [poison]);
    topic = appTopics[2]!;
    const seen: ConsumedRecord[] = [];
    await consume(log, `g-${randomUUID()}`, { onAssigned: async () => {}, onRevoked: async () => {}, onBatch: async (b) => { seen.push(...b.records); } });
    await waitFor(() => seen.length >= 1, { what: 'dead-lettered record', deadlineMs: 30_000 });
    const [got] = seen;
    expect(got!.key).to.equal(poison.key);
    expect(got!.value.equals(poison.value)).to.equal(true);
    expect(got!.timestampMs).to.equal(poison.timestampMs);
    expect(got!.headers).to.deep.equal(poison.headers);
    expect(got!.offset).to.equal(0);
  });

  it('fails an append the broker refuses (a record over its size limit) as not retryable, across the producer thread, and appends afterwards', async () => {
    // Random bytes do not compress: over the broker's 1 MiB message.max.bytes even gzipped.
    const huge: LogRecord = { key: 'big', value: randomBytes(2 * 1024 * 1024), timestampMs: T0 };
    const err = await rejectionOf(log.append(topic, [huge]), 'append of a 2 MiB record', 60_000);
    expect(err).to.be.instanceOf(KafkaEventLogError);
    expect((err as KafkaEventLogError).retryable).to.equal(false);
    expect((err as KafkaEventLogError).message).to.contain('MESSAGE_TOO_LARGE');
    await log.append(topic, [record('k', 1), record('other', 2)]);
    const ends = await log.endOffsets(topic);
    expect(ends.reduce((a, b) => a + b, 0)).to.equal(2);
    expect(await log.offsetRanges(topic)).to.deep.equal(ends.map((end) => ({ start: 0, end })));
  });

  /**
   * Makes the first `failures` JoinGroup attempts of the next consumer `l` creates fail as a broker
   * that just started does (GROUP_LOAD_IN_PROGRESS, retriable, which kafkajs does not retry within
   * a join), or with a non-retriable error. The fault sits in front of the cluster's coordinator
   * lookup, the first step of each join, so the rest of the join is the real broker's. Join
   * attempt `holdAttempt` waits after the lookup until release().
   */
  function failFirstJoins(l: KafkaEventLog, failures: number, retriable: boolean, holdAttempt = 0): {
    attempts: () => number; held: () => boolean; release: () => void; assigned: () => number;
  } {
    // The client is private to the adapter; reaching it here keeps a test-only seam out of the product.
    const kafka = (l as unknown as { kafka: Kafka }).kafka;
    const create = kafka.consumer.bind(kafka);
    let attempts = 0;
    let held = false;
    let assigned = 0;
    let release: () => void = () => {};
    const released = new Promise<void>((r) => { release = r; });
    kafka.consumer = (config: ConsumerConfig) => create({
      ...config,
      partitionAssigners: [
        (assignerConfig) => {
          const cluster = assignerConfig.cluster;
          const find = cluster.findGroupCoordinator.bind(cluster);
          cluster.findGroupCoordinator = async (group) => {
            attempts += 1;
            if (attempts <= failures) {
              throw new KafkaJSProtocolError(Object.assign(new Error('The coordinator is loading and hence can\'t process requests for this group'), {
                type: 'GROUP_LOAD_IN_PROGRESS', code: 14, retriable,
              }));
            }
            const coordinator = await find(group);
            if (attempts === holdAttempt) {
              held = true;
              await released;
            }
            return coordinator;
          };
          const assigner = config.partitionAssigners![0]!(assignerConfig);
          // The group leader assigns once every member has joined: a join that got that far.
          return { ...assigner, assign: (group) => { assigned += 1; return assigner.assign(group); } };
        },
      ],
    });
    return { attempts: () => attempts, held: () => held, release: () => release(), assigned: () => assigned };
  }

  it('joins its group when the first joins fail as on a broker still loading its group coordinator, and gives up after firstJoinRetryMs', async () => {
    await log.append(topic, [record('k', 0)]);
    const delivered: number[] = [];
    const handlers: ConsumerHandlers = {
      onAssigned: async () => undefined,
      onRevoked: async () => undefined,
      onBatch: async (b) => { delivered.push(...b.records.map(nOf)); },
    };
    const flaky = failFirstJoins(log, 2, true);
    await consume(log, `g-${randomUUID()}`, handlers);
    expect(flaky.attempts()).to.be.greaterThan(2);
    expect(flaky.assigned()).to.equal(1);
    await waitFor(() => delivered.length === 1, { what: 'the record, after the failed joins', deadlineMs: 30_000 });
    expect(delivered).to.deep.equal([0]);

    // Not retriable: the first failure is the answer.
    const refused = await open();
    const fatal = failFirstJoins(refused, 1, false);
    const err = await rejectionOf(consume(refused, `g-${randomUUID()}`, handlers), 'consume with a refused join', 30_000);
    expect(err).to.be.instanceOf(KafkaEventLogError);
    expect((err as KafkaEventLogError).message).to.contain('GROUP_LOAD_IN_PROGRESS');
    expect(fatal.attempts()).to.equal(1);

    // Retriable but lasting: consume() fails once the window has passed, not before and not never.
    const stuck = await open({ consumer: { firstJoinRetryMs: 1_500 } });
    const lasting = failFirstJoins(stuck, Number.MAX_SAFE_INTEGER, true);
    const started = Date.now();
    const late = await rejectionOf(consume(stuck, `g-${randomUUID()}`, handlers), 'consume with a coordinator that never loads', 30_000);
    expect(Date.now() - started).to.be.at.least(1_500);
    expect(late).to.be.instanceOf(KafkaEventLogError);
    expect((late as KafkaEventLogError).retryable).to.equal(true);
    expect(lasting.attempts()).to.be.greaterThan(1);
  });
  it('leaves no member behind in the group when closed while a retried first join is under way', async () => {
    const closing = await open();
    const flaky = failFirstJoins(closing, 1, true, 2);
    const groupId = `g-${randomUUID()}`;
    const idle: ConsumerHandlers = { onAssigned: async () => undefined, onRevoked: async () => undefined, onBatch: async () => undefined };
    const consuming = closing.consume({ topic, groupId, fromBeginning: true, handlers: idle });
    consuming.catch(() => undefined);
    await waitFor(() => flaky.held(), { what: 'the second join attempt under way', deadlineMs: 20_000 });
    await closing.close();
    flaky.release();
    expect(await rejectionOf(consuming, 'consume closed before it joined', 30_000)).to.be.instanceOf(KafkaEventLogError);
    // The join under way at the close reaches the group all the same; then its member must leave.
    await waitFor(() => flaky.assigned() > 0, { what: 'the held join to reach the group', deadlineMs: 20_000 });
    // Past the session timeout (10 s): a member that stays is heartbeating, not merely not yet expired.
    await waitFor(async () => (await log.groupMembers(groupId)).members === 0, { what: 'the group to have no member', deadlineMs: 25_000 });

    // A member left behind would keep partitions of the group and never read them.
    await log.append(topic, Array.from({ length: 8 }, (_, n) => record(`k${n}`, n)));
    const seen = new Set<number>();
    await consume(log, groupId, { ...idle, onBatch: async (b) => { for (const r of b.records) seen.add(nOf(r)); } });
    await waitFor(() => seen.size === 8, { what: 'every record at the next member of the group', deadlineMs: 30_000 });
  });
});

describe('KafkaEventLog without a reachable broker', function () {
  this.timeout(60_000);

  it('fails connect, and a lazy client\'s append, with a retryable error naming the address, within a bound', async () => {
    const address = `127.0.0.1:${await closedPort()}`;
    const options = testKafkaOptions({
      brokers: [address], retries: 1, initialRetryTimeMs: 50, maxRetryTimeMs: 100, connectionTimeoutMs: 500, requestTimeoutMs: 1_000,
    });

    const connectError = await rejectionOf(KafkaEventLog.connect(options), 'connect to a closed port', 30_000);
    expect(connectError).to.be.instanceOf(KafkaEventLogError);
    expect((connectError as KafkaEventLogError).retryable).to.equal(true);
    expect((connectError as KafkaEventLogError).message).to.contain(address);

    const lazy = await KafkaEventLog.connect({ ...options, lazy: true });
    try {
      const appendError = await rejectionOf(lazy.append('sluice.events', [record('k', 0)]), 'append to a closed port', 30_000);
      expect(appendError).to.be.instanceOf(KafkaEventLogError);
      expect((appendError as KafkaEventLogError).retryable).to.equal(true);
      expect((appendError as KafkaEventLogError).message).to.contain(address);
    } finally {
      await lazy.close();
    }
  });
});
