/**
 * EventLog: the durable, partitioned, ordered log between ingest and aggregation.
 * Real implementation: Kafka (adapters/kafka); embedded: adapters/memory.
 *
 * Contract (checked by test/contract/event-log.contract.ts against every implementation):
 * - records with the same key land in the same partition, in append order;
 * - `append` resolves only once every record is durable (in Kafka: acknowledged by all in-sync
 *   replicas); a rejected append may have written some records, and even a resolved one may hold
 *   a record twice (a produce retried after a lost acknowledgement), so consumers rely on
 *   id-based idempotency and callers retry with the same event ids;
 * - `consume` resolves once the member has joined; `onAssigned` may follow it;
 * - offsets in a partition are dense and increasing from 0;
 * - a group resumes each partition at the offset it last committed (at-least-once);
 * - commit metadata travels with the offset and comes back on assignment.
 */
export interface LogRecord {
  readonly key: string;
  readonly value: Buffer;
  /** Event time, ms since epoch: lets the log be replayed from a timestamp. */
  readonly timestampMs: number;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface ConsumedRecord extends LogRecord {
  readonly partition: number;
  readonly offset: number;
}

export interface CommittedOffset {
  /** The next offset to read. */
  readonly offset: number;
  readonly metadata: string;
}

export interface PartitionBatch {
  readonly topic: string;
  readonly partition: number;
  readonly records: readonly ConsumedRecord[];
}

export interface ConsumerHandlers {
  /** Called before any batch of a newly assigned partition, with what the group last committed. */
  onAssigned(partition: number, committed: CommittedOffset | null): Promise<void>;
  /** Called when a partition leaves this member (rebalance or stop): flush what it holds. */
  onRevoked(partition: number): Promise<void>;
  /** Batches of one partition arrive in order, one at a time; a rejection redelivers the batch. */
  onBatch(batch: PartitionBatch): Promise<void>;
}

export interface ConsumeOptions {
  readonly topic: string;
  readonly groupId: string;
  /** Where a group with no committed offset starts. */
  readonly fromBeginning: boolean;
  readonly handlers: ConsumerHandlers;
}

export interface GroupConsumer {
  /** Commit `offset` (the next to read) with metadata for a partition this member owns. */
  commit(partition: number, committed: CommittedOffset): Promise<void>;
  stop(): Promise<void>;
}

/** The offsets a partition holds records at: [start, end). */
export interface OffsetRange {
  readonly start: number;
  readonly end: number;
}

/** Where a topic's partitions start and end now: what the aggregator's idle advance checks. */
export interface LogExtent {
  /**
   * Per partition (index = partition), its offset range. start = end when retention has removed
   * every record (or none was ever appended).
   */
  offsetRanges(topic: string): Promise<OffsetRange[]>;
}

export interface EventLog {
  readonly partitions: number;
  append(topic: string, records: readonly LogRecord[]): Promise<void>;
  consume(options: ConsumeOptions): Promise<GroupConsumer>;
  close(): Promise<void>;
}
