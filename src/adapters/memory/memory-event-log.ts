/**
 * In-memory EventLog for the embedded default and tests. Mirrors Kafka's semantics that the
 * pipeline relies on: key → partition, dense offsets, consumer groups with eager rebalancing,
 * committed offsets with metadata, at-least-once redelivery of a batch whose handler failed.
 * Not durable across restarts (the embedded default says so in its start-up log).
 *
 * Memory is bounded: a topic read by groups drops records every group has committed; a topic no
 * group reads (late lane, dead letters) keeps its newest `maxUnreadRecords` and counts the rest.
 * Both drop whole segments of SEGMENT_RECORDS records, so up to that many more per partition stay.
 * Like a broker, the log owns the bytes it holds: values are copied on append into arenas of
 * their partition, so what the log retains follows its own trimming, never the lifetime of the
 * producer's buffers (ingest writes a call's records as views of one buffer; a retained view
 * would keep the whole buffer, and a slow partition would pin buffers shared with fast ones).
 */
import type {
  CommittedOffset, ConsumeOptions, ConsumedRecord, EventLog, GroupConsumer, LogRecord,
} from '../../ingest/event-log.js';

/** Records per segment: a partition keeps its records in segments and drops whole ones. */
const SEGMENT_RECORDS = 1024;
/** Values are copied into arenas of this size, one being filled per partition; larger values get their own copy. */
const ARENA_BYTES = 64 * 1024;
const MAX_ARENA_VALUE_BYTES = ARENA_BYTES / 8;
/** Distinct record keys whose partition is remembered. */
const KEY_CACHE_SIZE = 100_000;

type Headers = Readonly<Record<string, string>>;

interface KnownKey {
  readonly key: string;
  readonly partition: number;
}

/**
 * Up to SEGMENT_RECORDS consecutive records of a partition, stored by column: what stays in
 * memory per record is its key, headers, time and where its value lies in an arena; the
 * ConsumedRecord objects are built when records are read. A log holds many records for long,
 * and each object it held per record would be copied by young-generation GCs until promoted and
 * then traced by every full one: this layout keeps that to the strings and headers the producer
 * gave (keys are shared per distinct key, see MemoryEventLog.knownKey).
 */
class Segment {
  length = 0;
  // Allocated at full size once, rather than grown (and copied) by pushes.
  readonly keys = new Array<string>(SEGMENT_RECORDS);
  readonly headers = new Array<Headers | undefined>(SEGMENT_RECORDS);
  /** Per record, the buffer holding its value (an arena, or its own copy) and the value's bounds in it. */
  readonly buffers = new Array<Buffer>(SEGMENT_RECORDS);
  readonly times = new Float64Array(SEGMENT_RECORDS);
  readonly starts = new Int32Array(SEGMENT_RECORDS);
  readonly ends = new Int32Array(SEGMENT_RECORDS);

  constructor(readonly base: number) {}
}

/** One partition: dense offsets from `base`, in segments dropped whole from the front. */
class Partition {
  readonly waiters: Array<() => void> = [];
  private segments: Segment[] = [new Segment(0)];
  private arena: Buffer | undefined;
  private arenaUsed = 0;

  constructor(readonly index: number) {}

  /** Offset of the first record held. */
  get base(): number {
    return this.segments[0]!.base;
  }

  /** The next offset. */
  get end(): number {
    const last = this.segments[this.segments.length - 1]!;
    return last.base + last.length;
  }

  /** Records held. */
  get length(): number {
    return this.end - this.base;
  }

  /** Every record held, built on each call (tests and inspection; consumers use `read`). */
  get records(): ConsumedRecord[] {
    return this.read(this.base, this.length);
  }

  /** Appends `r`, keyed by `key` (equal to r.key: the log's own copy of it). */
  push(r: LogRecord, key: string): void {
    let segment = this.segments[this.segments.length - 1]!;
    if (segment.length === SEGMENT_RECORDS) {
      segment = new Segment(segment.base + SEGMENT_RECORDS);
      this.segments.push(segment);
    }
    const n = r.value.length;
    let buffer: Buffer;
    let start = 0;
    if (n > MAX_ARENA_VALUE_BYTES) {
      buffer = Buffer.allocUnsafeSlow(n);
    } else {
      let arena = this.arena;
      if (arena === undefined || arena.length - this.arenaUsed < n) {
        arena = Buffer.allocUnsafeSlow(ARENA_BYTES);
        this.arena = arena;
        this.arenaUsed = 0;
      }
      buffer = arena;
      start = this.arenaUsed;
      this.arenaUsed = start + n;
    }
    r.value.copy(buffer, start);
    const i = segment.length++;
    segment.keys[i] = key;
    segment.headers[i] = r.headers;
    segment.buffers[i] = buffer;
    segment.times[i] = r.timestampMs;
    segment.starts[i] = start;
    segment.ends[i] = start + n;
  }

  /** Up to `max` records from `offset` on (from the first held when `offset` was dropped). */
  read(offset: number, max: number): ConsumedRecord[] {
    const out: ConsumedRecord[] = [];
    let at = Math.max(offset, this.base);
    const to = Math.min(this.end, at + max);
    // Every segment but the last is full, so the one holding an offset is found by division.
    for (let s = Math.floor((at - this.base) / SEGMENT_RECORDS); at < to; s++) {
      const segment = this.segments[s]!;
      for (let i = at - segment.base; i < segment.length && at < to; i++, at++) {
        const value = segment.buffers[i]!.subarray(segment.starts[i], segment.ends[i]);
        const headers = segment.headers[i];
        const key = segment.keys[i]!;
        const timestampMs = segment.times[i]!;
        out.push(headers === undefined
          ? { key, value, timestampMs, partition: this.index, offset: at }
          : { key, value, timestampMs, headers, partition: this.index, offset: at });
      }
    }
    return out;
  }

  /** Drops the whole segments before `offset`; returns how many records went. */
  dropBefore(offset: number): number {
    let drop = 0;
    while (drop < this.segments.length) {
      const segment = this.segments[drop]!;
      if (segment.length < SEGMENT_RECORDS || segment.base + SEGMENT_RECORDS > offset) break;
      drop++;
    }
    if (drop === 0) return 0;
    const base = this.base;
    this.segments.splice(0, drop);
    if (this.segments.length === 0) this.segments.push(new Segment(base + drop * SEGMENT_RECORDS));
    return this.base - base;
  }
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
    let position = committed ? committed.offset : this.options.fromBeginning ? part.base : part.end;
    const maxBatch = this.log.maxBatchRecords;
    while (!state.stop) {
      position = Math.max(position, part.base);
      if (position >= part.end) {
        await new Promise<void>((resolve) => part.waiters.push(resolve));
        continue;
      }
      const records = part.read(position, maxBatch);
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
  private readonly keys = new Map<string, KnownKey>();
  /** Serialises rebalances so that joins and leaves never interleave. */
  private rebalancing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(options: MemoryEventLogOptions) {
    this.partitions = options.partitions;
    this.maxBatchRecords = options.maxBatchRecords ?? 500;
    this.maxUnreadRecords = options.maxUnreadRecords ?? 100_000;
    this.retryDelayMs = options.retryDelayMs ?? 100;
  }

  /**
   * The partition of a key, remembered per distinct key (sites: few, and every event has one),
   * and the key itself kept once: the held records share one string per key rather than each
   * keeping the copy its producer parsed. Forgotten whole past KEY_CACHE_SIZE keys.
   */
  private knownKey(key: string): KnownKey {
    let known = this.keys.get(key);
    if (known === undefined) {
      if (this.keys.size >= KEY_CACHE_SIZE) this.keys.clear();
      known = { key, partition: partitionForKey(key, this.partitions) };
      this.keys.set(key, known);
    }
    return known;
  }

  private topic(name: string): Topic {
    let t = this.topics.get(name);
    if (!t) {
      t = { partitions: Array.from({ length: this.partitions }, (_, index) => new Partition(index)), trimmed: 0 };
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
      const known = this.knownKey(r.key);
      const p = t.partitions[known.partition]!;
      p.push(r, known.key);
      touched.add(p);
    }
    for (const p of touched) this.wake(p);
    this.trim(topic, touched);
  }

  /** Records a topic has dropped to stay within its bound (unread topics only). */
  trimmedCount(topic: string): number {
    return this.topics.get(topic)?.trimmed ?? 0;
  }

  /** Messages held for a topic, for tests and metrics. */
  size(topic: string): number {
    return this.topic(topic).partitions.reduce((n, p) => n + p.length, 0);
  }

  /** Every record of a topic in partition order (tests, late-lane inspection). */
  readAll(topic: string): ConsumedRecord[] {
    return this.topic(topic).partitions.flatMap((p) => p.read(p.base, p.length));
  }

  /** Drops what the bound allows, in `partitions` of the topic (all by default). */
  trim(topic: string, partitions: Iterable<Partition> = this.topic(topic).partitions): void {
    const t = this.topic(topic);
    let groups: Group[] | undefined;
    for (const p of partitions) {
      groups ??= [...this.groups.values()].filter((g) => g.topic === topic);
      let keepFrom = p.end - this.maxUnreadRecords;
      if (groups.length > 0) {
        keepFrom = Number.POSITIVE_INFINITY;
        for (const g of groups) keepFrom = Math.min(keepFrom, g.committed.get(p.index)?.offset ?? p.base);
      }
      // Whole segments only: each record is dropped with its segment, never moved.
      const dropped = p.dropBefore(keepFrom);
      if (groups.length === 0) t.trimmed += dropped;
    }
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
