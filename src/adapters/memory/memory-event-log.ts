/**
 * In-memory EventLog for the embedded default and tests. Mirrors Kafka's semantics that the
 * pipeline relies on: key → partition, dense offsets, consumer groups with eager rebalancing,
 * committed offsets with metadata, at-least-once redelivery of a batch whose handler failed.
 * Not durable across restarts (the embedded default says so in its start-up log).
 *
 * Memory is bounded: a topic read by groups drops records every group has committed; a topic no
 * group reads (late lane, dead letters) keeps its newest `maxUnreadRecords` and counts the rest.
 */
import type {
  CommittedOffset, ConsumeOptions, ConsumedRecord, EventLog, GroupConsumer, LogRecord,
} from '../../ingest/event-log.js';

const TRIM_CHUNK = 1024;

interface Partition {
  /** Offset of records[0]. */
  base: number;
  records: ConsumedRecord[];
  waiters: Array<() => void>;
}

interface Topic {
  readonly partitions: Partition[];
  trimmed: number;
}

interface Group {
  readonly id: string;
  readonly topic: string;
  readonly committed: Map<number, CommittedOffset>;
  readonly members: Member[];
}

export interface MemoryEventLogOptions {
  readonly partitions: number;
  readonly maxBatchRecords?: number;
  readonly maxUnreadRecords?: number;
  /** Delay before redelivering a batch whose handler rejected. */
  readonly retryDelayMs?: number;
}

/** FNV-1a: a stable key → partition mapping (the Kafka adapter uses Kafka's own partitioner). */
export function partitionForKey(key: string, partitions: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}

class Member implements GroupConsumer {
  assigned = new Set<number>();
  private loops = new Map<number, { stop: boolean; done: Promise<void> }>();
  stopped = false;

  constructor(private readonly log: MemoryEventLog, readonly group: Group, readonly options: ConsumeOptions) {}

  async commit(partition: number, committed: CommittedOffset): Promise<void> {
    if (!this.assigned.has(partition)) throw new Error(`partition ${partition} is not assigned to this member`);
    this.group.committed.set(partition, committed);
    this.log.trim(this.group.topic);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.log.leave(this);
  }

  async revokeAll(): Promise<void> {
    const loops = [...this.loops.values()];
    for (const l of loops) l.stop = true;
    this.log.wakeAll(this.group.topic);
    await Promise.all(loops.map((l) => l.done));
    this.loops.clear();
    for (const p of this.assigned) await this.options.handlers.onRevoked(p);
    this.assigned.clear();
  }

  async assign(partitions: readonly number[]): Promise<void> {
    for (const p of partitions) {
      this.assigned.add(p);
      const committed = this.group.committed.get(p) ?? null;
      await this.options.handlers.onAssigned(p, committed);
      const state = { stop: false, done: Promise.resolve() };
      state.done = this.run(p, committed, state);
      this.loops.set(p, state);
    }
  }

  private async run(partition: number, committed: CommittedOffset | null, state: { stop: boolean }): Promise<void> {
    const part = this.log.partition(this.group.topic, partition);
    let position = committed ? committed.offset : this.options.fromBeginning ? part.base : part.base + part.records.length;
    const maxBatch = this.log.maxBatchRecords;
    while (!state.stop) {
      position = Math.max(position, part.base);
      const start = position - part.base;
      if (start >= part.records.length) {
        await new Promise<void>((resolve) => part.waiters.push(resolve));
        continue;
      }
      const records = part.records.slice(start, start + maxBatch);
      try {
        await this.options.handlers.onBatch({ topic: this.group.topic, partition, records });
        position += records.length;
      } catch {
        // At-least-once: the same batch is delivered again after a pause, as Kafka would after a failed handler.
        await new Promise((r) => setTimeout(r, this.log.retryDelayMs));
      }
    }
  }
}

export class MemoryEventLog implements EventLog {
  readonly partitions: number;
  readonly maxBatchRecords: number;
  readonly retryDelayMs: number;
  private readonly maxUnreadRecords: number;
  private readonly topics = new Map<string, Topic>();
  private readonly groups = new Map<string, Group>();
  /** Serialises rebalances so that joins and leaves never interleave. */
  private rebalancing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(options: MemoryEventLogOptions) {
    this.partitions = options.partitions;
    this.maxBatchRecords = options.maxBatchRecords ?? 500;
    this.maxUnreadRecords = options.maxUnreadRecords ?? 100_000;
    this.retryDelayMs = options.retryDelayMs ?? 100;
  }

  private topic(name: string): Topic {
    let t = this.topics.get(name);
    if (!t) {
      t = { partitions: Array.from({ length: this.partitions }, () => ({ base: 0, records: [], waiters: [] })), trimmed: 0 };
      this.topics.set(name, t);
    }
    return t;
  }

  partition(topic: string, partition: number): Partition {
    const p = this.topic(topic).partitions[partition];
    if (!p) throw new Error(`no partition ${partition} in ${topic}`);
    return p;
  }

  async append(topic: string, records: readonly LogRecord[]): Promise<void> {
    if (this.closed) throw new Error('event log closed');
    const t = this.topic(topic);
    const touched = new Set<Partition>();
    for (const r of records) {
      const partition = partitionForKey(r.key, this.partitions);
      const p = t.partitions[partition]!;
      p.records.push({ ...r, partition, offset: p.base + p.records.length });
      touched.add(p);
    }
    for (const p of touched) this.wake(p);
    this.trim(topic);
  }

  /** Records a topic has dropped to stay within its bound (unread topics only). */
  trimmedCount(topic: string): number {
    return this.topics.get(topic)?.trimmed ?? 0;
  }

  /** Messages held for a topic, for tests and metrics. */
  size(topic: string): number {
    return this.topic(topic).partitions.reduce((n, p) => n + p.records.length, 0);
  }

  /** Every record of a topic in partition order (tests, late-lane inspection). */
  readAll(topic: string): ConsumedRecord[] {
    return this.topic(topic).partitions.flatMap((p) => p.records);
  }

  trim(topic: string): void {
    const t = this.topic(topic);
    const groups = [...this.groups.values()].filter((g) => g.topic === topic);
    t.partitions.forEach((p, index) => {
      let keepFrom: number;
      if (groups.length > 0) {
        keepFrom = Math.min(...groups.map((g) => g.committed.get(index)?.offset ?? p.base));
      } else {
        keepFrom = p.base + p.records.length - this.maxUnreadRecords;
      }
      // Dropping from the front of an array shifts all that stays, so drop only in chunks:
      // each record is then moved a bounded number of times, not once per append.
      const droppable = keepFrom - p.base;
      if (droppable > 0 && (droppable >= TRIM_CHUNK || droppable * 4 >= p.records.length)) {
        if (groups.length === 0) t.trimmed += droppable;
        p.records.splice(0, droppable);
        p.base = keepFrom;
      }
    });
  }

  private wake(p: Partition): void {
    const waiters = p.waiters.splice(0);
    for (const w of waiters) w();
  }

  wakeAll(topic: string): void {
    for (const p of this.topic(topic).partitions) this.wake(p);
  }

  async consume(options: ConsumeOptions): Promise<GroupConsumer> {
    const key = `${options.groupId}\u0000${options.topic}`;
    let group = this.groups.get(key);
    if (!group) {
      group = { id: options.groupId, topic: options.topic, committed: new Map(), members: [] };
      this.groups.set(key, group);
    }
    const member = new Member(this, group, options);
    const g = group;
    await this.rebalance(g, () => g.members.push(member));
    return member;
  }

  async leave(member: Member): Promise<void> {
    const g = member.group;
    await this.rebalance(g, () => {
      const i = g.members.indexOf(member);
      if (i >= 0) g.members.splice(i, 1);
    }, member);
  }

  /** Eager rebalance, as Kafka's classic protocol: everyone gives everything up, then partitions are dealt round-robin. */
  private rebalance(group: Group, change: () => void, leaving?: Member): Promise<void> {
    const run = async () => {
      const current = [...group.members];
      if (leaving && !current.includes(leaving)) current.push(leaving);
      await Promise.all(current.map((m) => m.revokeAll()));
      change();
      const members = group.members;
      if (members.length === 0) return;
      const shares: number[][] = members.map(() => []);
      for (let p = 0; p < this.partitions; p++) shares[p % members.length]!.push(p);
      for (let i = 0; i < members.length; i++) await members[i]!.assign(shares[i]!);
    };
    const next = this.rebalancing.then(run, run);
    this.rebalancing = next.catch(() => undefined);
    return next;
  }

  async close(): Promise<void> {
    const members = [...this.groups.values()].flatMap((g) => g.members);
    await Promise.all(members.map((m) => m.stop()));
    this.closed = true;
  }
}
