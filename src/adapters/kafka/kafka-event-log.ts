/**
 * KafkaEventLog: the EventLog seam on Apache Kafka through kafkajs 2.2.4. Owns one kafkajs
 * client, one producer (in a worker thread: producer-thread.ts) and one admin client; each
 * `consume` call adds one consumer (kafka-group-consumer.ts explains group membership,
 * revocation and redelivery).
 *
 * Contract, as the seam states it, and how Kafka provides it:
 * - Same key, same partition, append order: the record key (the site) is the Kafka key and
 *   kafkajs's default partitioner (murmur2, the same as Java clients) maps it to a partition.
 *   The partition count is fixed when the topic is created (`ensureTopics`): adding partitions
 *   later would move keys. Producing never creates a topic (allowAutoTopicCreation off), so a
 *   topic cannot appear with the broker's default partition count by accident.
 * - One produce call per partition of an append (usually one: a client batch comes from one
 *   site). kafkajs retries a failed request whole, per broker, so a request for several
 *   partitions of which one failed (NOT_LEADER while a leader moves, or right after a topic is
 *   created) would write the others twice, out of order, in an append that then succeeds.
 *   One partition's records are written all or nothing, so a retry can duplicate them only when
 *   an acknowledgement was lost, and then as a whole, in order.
 * - Durable before resolve: every append is sent with acks = -1 (all in-sync replicas) and
 *   resolves only once the leader confirmed every in-sync replica has it. Durability then rests on the topic's
 *   replication factor and min.insync.replicas (`ensureTopics` sets min.insync.replicas = 2
 *   when the replication factor is 3 or more).
 * - A failed append rejects with a KafkaEventLogError (`retryable` in most cases) naming the
 *   brokers. kafkajs retries internally first (`retry`), so the time to fail is bounded by
 *   about (retries + 1) × (connectionTimeoutMs or requestTimeoutMs) plus the back-off sum
 *   (initialRetryTimeMs doubling up to maxRetryTimeMs). Some records of a failed append may be
 *   written (a lost acknowledgement, a retried request): ingest retries with the same event ids.
 *   The idempotent producer is left off: kafkajs still calls it experimental, it retries
 *   forever by default (retries = MAX_SAFE_INTEGER: an append would never fail within a bound),
 *   and it holds a lock per broker around each produce request, so only one request per broker
 *   would be in flight: concurrent appends would queue behind each other's replication.
 * - Record timestamps are the event time (CreateTime): the log can be searched by event time.
 *   Mind that time-based retention also looks at these timestamps (a segment holding only old
 *   events becomes deletable early), and Kafka 4 rejects timestamps more than
 *   message.timestamp.after.max.ms (1 h by default) in the future; ingest clamps future times
 *   well inside that.
 * - Offsets are numbers, exact below 2^53 (kafka-records.ts).
 *
 * Memory: kafkajs does not batch or linger. Each `append` becomes produce requests right away
 * and holds its records only until acknowledged or failed (their values copied once, into the
 * buffer handed to the producer thread, held until the append settles), so the bytes the
 * producer holds are in proportion to the bytes of appends under way, which ingest bounds
 * (ingest.maxInFlightBytes). kafkajs's `maxInFlightRequests` (per broker connection, default
 * unlimited) does not bound memory: a request over the limit waits in an unbounded queue inside
 * kafkajs. So it is left unset by default, and the bound stays where it can be enforced: before
 * `append` is called. Consumers hold at most one fetch (maxBytes, maxBytesPerPartition) per
 * broker at a time.
 *
 * Dead-letter and late-lane topics are ordinary topics: create them with `ensureTopics` next to
 * the events topic and `append` to them (their headers carry `reason` and the source position).
 */
import { CompressionTypes, Kafka, Partitioners, type Admin, type ITopicMetadata, type PartitionMetadata } from 'kafkajs';
import type { CommittedOffset, ConsumeOptions, EventLog, GroupConsumer, LogRecord, OffsetRange } from '../../ingest/event-log.js';
import { silentLogger, type Logger } from '../../log.js';
import { KafkaEventLogError, toKafkaEventLogError } from './kafka-event-log-error.js';
import { KafkaGroupConsumer, type KafkaConsumerSettings } from './kafka-group-consumer.js';
import { kafkaLogCreator, kafkaLogLevel } from './kafka-log-creator.js';
import { parseOffset } from './kafka-records.js';
import { packRecords, ProducerThread, type PackedAppend } from './producer-thread.js';

export interface KafkaEventLogOptions {
  /** Bootstrap brokers, `host:port`. */
  readonly brokers: readonly string[];
  readonly clientId?: string;
  /** Partitions of every topic `ensureTopics` creates (and expects of existing ones). */
  readonly partitions: number;
  /** Replicas per partition for topics `ensureTopics` creates; 3 in production, 1 on a one-broker stack. */
  readonly replicationFactor: number;
  /** TCP connect timeout per broker. Default 3000. */
  readonly connectionTimeoutMs?: number;
  /** Timeout of one request to a broker. Default 30000. */
  readonly requestTimeoutMs?: number;
  /** How long the leader waits for the in-sync replicas to acknowledge (the produce request's timeout). Default 10000. */
  readonly ackTimeoutMs?: number;
  /** kafkajs retries of one operation (append, connect, admin call). Defaults 5, 300 ms, 5000 ms. */
  readonly retries?: number;
  readonly initialRetryTimeMs?: number;
  readonly maxRetryTimeMs?: number;
  /** Record batch compression. Default gzip (the only codec built into kafkajs). */
  readonly compression?: 'gzip' | 'none';
  /** Requests in flight per broker connection (kafkajs default: unlimited). Bounds the wire, not memory. */
  readonly maxInFlightRequests?: number;
  /**
   * false (default): `connect` fails unless the brokers answer. true: `connect` returns at once
   * and every operation connects on first use, so a process can start while Kafka is down and
   * answer retryable errors until it is back.
   */
  readonly lazy?: boolean;
  readonly consumer?: Partial<KafkaConsumerSettings>;
  readonly logger?: Logger;
}

export interface EnsureTopicsOptions {
  readonly partitions?: number;
  readonly replicationFactor?: number;
  /** Topic configs (retention.ms, …); min.insync.replicas defaults to 2 when the replication factor is 3 or more. */
  readonly configs?: Readonly<Record<string, string>>;
}

const DEFAULT_CONSUMER: Omit<KafkaConsumerSettings, 'retries' | 'initialRetryTimeMs' | 'maxRetryTimeMs'> = {
  sessionTimeoutMs: 30_000,
  rebalanceTimeoutMs: 60_000,
  heartbeatIntervalMs: 3_000,
  maxWaitTimeMs: 500,
  maxBytesPerPartition: 1_048_576,
  maxBytes: 10_485_760,
  partitionsConsumedConcurrently: 0,
  retryDelayMs: 1_000,
  firstJoinRetryMs: 60_000,
};

export class KafkaEventLog implements EventLog {
  readonly partitions: number;
  readonly brokers: readonly string[];
  private readonly kafka: Kafka;
  /** The producer runs in a worker thread: producer-thread.ts says why. */
  private readonly producer: ProducerThread;
  private readonly admin: Admin;
  private readonly logger: Logger;
  private readonly consumers = new Set<KafkaGroupConsumer>();
  private readonly consumerSettings: KafkaConsumerSettings;
  private connecting: Promise<void> | undefined;
  private closed = false;
  /** kafkajs's default (murmur2, Java-compatible) partitioner, applied before sending: see append. */
  private readonly partitioner = Partitioners.DefaultPartitioner();
  private readonly topicPartitions = new Map<string, Promise<PartitionMetadata[]>>();

  private constructor(private readonly options: KafkaEventLogOptions) {
    if (options.brokers.length === 0) throw new KafkaEventLogError('no Kafka brokers configured', false);
    if (!Number.isInteger(options.partitions) || options.partitions < 1) throw new RangeError(`partitions must be a positive integer, not ${options.partitions}`);
    if (!Number.isInteger(options.replicationFactor) || options.replicationFactor < 1) {
      throw new RangeError(`replicationFactor must be a positive integer, not ${options.replicationFactor}`);
    }
    this.partitions = options.partitions;
    this.brokers = [...options.brokers];
    this.logger = (options.logger ?? silentLogger()).child({ component: 'kafka' });
    const retry = {
      retries: options.retries ?? 5,
      initialRetryTime: options.initialRetryTimeMs ?? 300,
      maxRetryTime: options.maxRetryTimeMs ?? 5_000,
    };
    this.consumerSettings = {
      ...DEFAULT_CONSUMER,
      retries: retry.retries,
      initialRetryTimeMs: retry.initialRetryTime,
      maxRetryTimeMs: retry.maxRetryTime,
      ...options.consumer,
    };
    this.kafka = new Kafka({
      clientId: options.clientId ?? 'sluice',
      brokers: [...options.brokers],
      connectionTimeout: options.connectionTimeoutMs ?? 3_000,
      requestTimeout: options.requestTimeoutMs ?? 30_000,
      retry,
      logLevel: kafkaLogLevel(this.logger),
      logCreator: kafkaLogCreator(this.logger),
    });
    const logLevel = kafkaLogLevel(this.logger);
    this.producer = new ProducerThread({
      clientId: options.clientId ?? 'sluice',
      brokers: [...options.brokers],
      connectionTimeout: options.connectionTimeoutMs ?? 3_000,
      requestTimeout: options.requestTimeoutMs ?? 30_000,
      retry,
      logLevel,
      ...(options.maxInFlightRequests !== undefined ? { maxInFlightRequests: options.maxInFlightRequests } : {}),
      ackTimeoutMs: options.ackTimeoutMs ?? 10_000,
      compression: (options.compression ?? 'gzip') === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None,
    }, kafkaLogCreator(this.logger)(logLevel));
    this.admin = this.kafka.admin({ retry });
  }

  /** Creates the client; unless `lazy`, also connects the producer and admin client (and fails if no broker answers). */
  static async connect(options: KafkaEventLogOptions): Promise<KafkaEventLog> {
    const log = new KafkaEventLog(options);
    if (!options.lazy) {
      try {
        await log.ready();
      } catch (e) {
        await log.close().catch(() => undefined);
        throw e;
      }
    }
    return log;
  }

  /** Connects the producer and admin client once; a failed attempt is forgotten so the next call tries again. */
  private ready(): Promise<void> {
    if (this.closed) return Promise.reject(new KafkaEventLogError('the Kafka event log is closed', false));
    this.connecting ??= (async () => {
      try {
        await Promise.all([this.producer.start(), this.admin.connect()]);
      } catch (e) {
        this.connecting = undefined;
        throw toKafkaEventLogError(e, 'connecting to Kafka', this.brokers);
      }
    })();
    return this.connecting;
  }

  /**
   * Creates the topics that do not exist yet, with the configured partition count (fixed from
   * then on) and replication factor, and waits for their leaders. An existing topic with another
   * partition count is an error: its keys would not map as the data already in it does.
   */
  async ensureTopics(topics: readonly string[], options: EnsureTopicsOptions = {}): Promise<void> {
    await this.ready();
    const numPartitions = options.partitions ?? this.partitions;
    const replicationFactor = options.replicationFactor ?? this.options.replicationFactor;
    const configs: Record<string, string> = {
      ...(replicationFactor >= 3 ? { 'min.insync.replicas': '2' } : {}),
      ...options.configs,
    };
    const configEntries = Object.entries(configs).map(([name, value]) => ({ name, value }));
    const unique = [...new Set(topics)];
    if (unique.length === 0) return;
    try {
      const existing = new Set(await this.admin.listTopics());
      const missing = unique.filter((t) => !existing.has(t));
      // Another process may create one meanwhile: kafkajs then reports "already exists" as false.
      if (missing.length > 0) await this.admin.createTopics({
        topics: missing.map((topic) => ({ topic, numPartitions, replicationFactor, configEntries })),
        // kafkajs's own wait gives up when the new topic is not in the metadata yet
        // (UNKNOWN_TOPIC_OR_PARTITION, common right after creation on KRaft): we wait below.
        waitForLeaders: false,
      });
    } catch (e) {
      throw toKafkaEventLogError(e, `creating topics ${unique.join(', ')}`, this.brokers);
    }
    const topicsMetadata = await this.awaitLeaders(unique);
    for (const t of topicsMetadata) {
      if (t.partitions.length !== numPartitions) {
        throw new KafkaEventLogError(
          `topic ${t.name} has ${t.partitions.length} partitions, not the ${numPartitions} configured; `
          + 'partition counts are fixed up front (adding partitions moves keys): use a new topic or configure the existing count',
          false,
        );
      }
      this.topicPartitions.set(t.name, Promise.resolve(t.partitions.map((_, partitionId) => ({
        partitionId, leader: 0, partitionErrorCode: 0, replicas: [], isr: [],
      }))));
    }
  }

  /** Deletes topics (tests, retired reprocessing topics); topics that do not exist are ignored. */
  async deleteTopics(topics: readonly string[]): Promise<void> {
    if (topics.length === 0) return;
    await this.ready();
    try {
      const existing = new Set(await this.admin.listTopics());
      const present = [...new Set(topics)].filter((t) => existing.has(t));
      if (present.length > 0) await this.admin.deleteTopics({ topics: present });
    } catch (e) {
      throw toKafkaEventLogError(e, `deleting topics ${topics.join(', ')}`, this.brokers);
    }
    for (const t of topics) this.topicPartitions.delete(t);
  }

  /** Topic metadata once every partition of every topic has a leader; bounded by the request timeout. */
  private async awaitLeaders(topics: readonly string[]): Promise<ITopicMetadata[]> {
    const deadline = Date.now() + (this.options.requestTimeoutMs ?? 30_000);
    for (let attempt = 1; ; attempt++) {
      let why: unknown;
      try {
        const { topics: found } = await this.admin.fetchTopicMetadata({ topics: [...topics] });
        const waiting = found.filter((t) => t.partitions.length === 0 || t.partitions.some((p) => p.leader < 0));
        if (found.length === topics.length && waiting.length === 0) {
          // Metadata names a leader slightly before it serves (NOT_LEADER on a fresh topic):
          // asking every leader for its offsets proves each partition is ready to be used.
          await Promise.all(topics.map((t) => this.admin.fetchTopicOffsets(t)));
          return found;
        }
        why = `no leader yet for ${waiting.map((t) => t.name).join(', ') || 'some topics'}`;
      } catch (e) {
        why = e;
      }
      if (Date.now() > deadline) {
        throw toKafkaEventLogError(why instanceof Error ? why : new Error(String(why)), `waiting for the leaders of topics ${topics.join(', ')}`, this.brokers);
      }
      await new Promise((r) => setTimeout(r, Math.min(100 * attempt, 1_000)));
    }
  }

  async append(topic: string, records: readonly LogRecord[]): Promise<void> {
    if (records.length === 0) return;
    const what = `appending ${records.length} records to ${topic}`;
    let packed: PackedAppend;
    try {
      await this.ready();
      const partitionMetadata = await this.partitionsOf(topic);
      const byPartition = new Map<number, LogRecord[]>();
      // kafkajs's murmur2 emulates 64-bit integers and costs microseconds a record; a call's
      // records mostly share a key (one site), so each key is hashed once per call.
      const partitionOfKey = new Map<string, number>();
      for (const record of records) {
        let partition = partitionOfKey.get(record.key);
        if (partition === undefined) {
          partition = this.partitioner({ topic, partitionMetadata, message: { key: record.key, value: null } });
          partitionOfKey.set(record.key, partition);
        }
        const list = byPartition.get(partition);
        if (list) list.push(record);
        else byPartition.set(partition, [record]);
      }
      packed = packRecords(byPartition);
    } catch (e) {
      throw toKafkaEventLogError(e, what, this.brokers);
    }
    // One produce call per partition, made by the producer thread. kafkajs retries a failed
    // produce request whole, per broker: one request for several partitions, of which one failed
    // (NOT_LEADER while a leader moves), would write the others twice. A request for one
    // partition is written all or nothing, so a retry duplicates records only when an
    // acknowledgement was lost. The thread answers once every call has settled, so a rejected
    // append holds no records in kafkajs any more (ingest's byte budget).
    try {
      await this.producer.send(topic, packed);
    } catch (e) {
      throw toKafkaEventLogError(e, what, this.brokers);
    }
  }

  /**
   * The partition list the partitioner needs (only its length matters for keyed records), read
   * once per topic: partition counts are fixed up front.
   */
  private partitionsOf(topic: string): Promise<PartitionMetadata[]> {
    let known = this.topicPartitions.get(topic);
    if (!known) {
      known = (async () => {
        const { topics } = await this.admin.fetchTopicMetadata({ topics: [topic] });
        const count = topics.find((t) => t.name === topic)?.partitions.length ?? 0;
        if (count === 0) throw new KafkaEventLogError(`topic ${topic} does not exist (create it with ensureTopics)`, true);
        return Array.from({ length: count }, (_, partitionId) => ({ partitionId, leader: 0, partitionErrorCode: 0, replicas: [], isr: [] }));
      })();
      this.topicPartitions.set(topic, known);
      known.catch(() => this.topicPartitions.delete(topic));
    }
    return known;
  }

  async consume(options: ConsumeOptions): Promise<GroupConsumer> {
    await this.ready();
    const consumer = new KafkaGroupConsumer({
      kafka: this.kafka,
      admin: this.admin,
      brokers: this.brokers,
      partitions: this.partitions,
      options,
      settings: this.consumerSettings,
      logger: this.logger,
      onStopped: (c) => this.consumers.delete(c),
    });
    this.consumers.add(consumer);
    try {
      await consumer.start();
    } catch (e) {
      this.consumers.delete(consumer);
      throw e;
    }
    return consumer;
  }

  /**
   * Per partition of `topic` (index = partition), the offset the next appended record gets
   * (the high watermark: what consumers can read up to). LogPositions (src/ops/log-positions.ts).
   */
  async endOffsets(topic: string): Promise<number[]> {
    return (await this.offsetRanges(topic)).map((r) => r.end);
  }

  /** Per partition of `topic`, [log start, high watermark). LogPositions. */
  async offsetRanges(topic: string): Promise<OffsetRange[]> {
    await this.ready();
    try {
      const offsets = await this.admin.fetchTopicOffsets(topic);
      const out: OffsetRange[] = [];
      for (const o of offsets) out[o.partition] = { start: parseOffset(o.low), end: parseOffset(o.high) };
      // A partition missing from the answer is not known to be empty: no answer rather than a guess.
      for (let p = 0; p < out.length; p++) {
        if (!out[p]) throw new KafkaEventLogError(`no offsets for partition ${p} of ${topic} in the broker's answer`, true);
      }
      return out;
    } catch (e) {
      throw toKafkaEventLogError(e, `reading the offsets of ${topic}`, this.brokers);
    }
  }

  /** Per partition of `topic`, the offset `groupId` last committed, null where it committed none. LogPositions. */
  async committedOffsets(groupId: string, topic: string): Promise<Array<number | null>> {
    await this.ready();
    try {
      const [found] = await this.admin.fetchOffsets({ groupId, topics: [topic] });
      const partitions = found?.partitions ?? [];
      const out = new Array<number | null>(partitions.length).fill(null);
      for (const p of partitions) out[p.partition] = Number(p.offset) < 0 ? null : parseOffset(p.offset);
      return out;
    } catch (e) {
      throw toKafkaEventLogError(e, `reading the offsets of group ${groupId}`, this.brokers);
    }
  }

  /**
   * Per partition of `topic`, the first offset whose record timestamp (the event time, see
   * above) is at or after `timestampMs`; the end offset where there is none. Every record with
   * a timestamp at or after it is at or after that offset.
   */
  async offsetsAtTime(topic: string, timestampMs: number): Promise<number[]> {
    await this.ready();
    try {
      const offsets = await this.admin.fetchTopicOffsetsByTimestamp(topic, timestampMs);
      const out = new Array<number>(offsets.length).fill(0);
      for (const o of offsets) out[o.partition] = parseOffset(o.offset);
      return out;
    } catch (e) {
      throw toKafkaEventLogError(e, `finding the offsets of ${topic} at ${timestampMs}`, this.brokers);
    }
  }

  /** The members of a consumer group now: offsets may only be rewritten while it has none. */
  async groupMembers(groupId: string): Promise<{ state: string; members: number }> {
    await this.ready();
    try {
      const { groups } = await this.admin.describeGroups([groupId]);
      const g = groups.find((x) => x.groupId === groupId);
      return { state: g?.state ?? 'Dead', members: g?.members.length ?? 0 };
    } catch (e) {
      throw toKafkaEventLogError(e, `describing group ${groupId}`, this.brokers);
    }
  }

  /**
   * Commits `offsets` (index = partition, offset and metadata) for `groupId`, as a member of the
   * group: it joins, waits until every partition is assigned to it, commits, and leaves. The
   * group must have no other member (groupMembers): a running member would share the
   * partitions and overwrite the commits. kafkajs's admin.setOffsets cannot carry commit
   * metadata, which the aggregator's restart needs (aggregator.ts), hence a member.
   */
  async commitGroupOffsets(groupId: string, topic: string, offsets: readonly CommittedOffset[], timeoutMs = 60_000): Promise<void> {
    const assigned = new Set<number>();
    let allAssigned!: () => void;
    const ready = new Promise<void>((resolve) => {
      allAssigned = resolve;
    });
    const member = await this.consume({
      topic, groupId, fromBeginning: true,
      handlers: {
        onAssigned: async (partition) => {
          assigned.add(partition);
          if (assigned.size >= offsets.length) allAssigned();
        },
        onRevoked: async () => {},
        // Records fetched meanwhile are not processed: only the commits below are made.
        onBatch: async () => {},
      },
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([ready, new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new KafkaEventLogError(`group ${groupId} did not assign all ${offsets.length} partitions of ${topic} to one member within ${timeoutMs} ms: is another member running?`, true)), timeoutMs);
      })]);
      for (let p = 0; p < offsets.length; p++) await member.commit(p, offsets[p]!);
    } finally {
      clearTimeout(timer);
      await member.stop();
    }
  }

  /** Stops every consumer (each revokes and commits first), then disconnects the producer and admin client. */
  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.all([...this.consumers].map((c) => c.stop()));
    this.closed = true;
    // The producer thread first lets the appends under way settle.
    await Promise.allSettled([this.producer.close(), this.admin.disconnect()]);
  }
}
