/**
 * One member of a Kafka consumer group, driving the EventLog's ConsumerHandlers with kafkajs
 * (one kafkajs consumer per `consume` call, autoCommit off, eachBatch).
 *
 * What the handlers can rely on, and how each is obtained from kafkajs 2.2.4:
 *
 * - REVOKE BEFORE REJOIN. kafkajs has no revocation callback. The classic group protocol is
 *   eager: when a rebalance starts, every member must give up all its partitions and send
 *   JoinGroup again; the coordinator completes the new generation only once every member has
 *   rejoined (or its rebalance timeout expired). So the place to revoke is right before this
 *   member's JoinGroup. kafkajs's join (ConsumerGroup[JOIN]) starts with
 *   `cluster.findGroupCoordinator`, and the consumer hands its cluster to every partition
 *   assigner it is configured with (the documented `PartitionAssigner` signature). Our assigner
 *   is kafkajs's own round-robin one, whose factory also wraps that cluster's
 *   `findGroupCoordinator` so that it first awaits `beforeJoin()`: onRevoked for every owned
 *   partition, after its batch in flight and before any JoinGroup. Consequences:
 *     * commits made in onRevoked go out with the OLD generation while the group is in
 *       PreparingRebalance, which the coordinator accepts (it refuses only in
 *       CompletingRebalance, once everyone has rejoined, and that cannot happen before we
 *       rejoin); checked against the real broker in test/integration/kafka-event-log.test.ts;
 *     * the new owner of a partition is assigned only after the old owner's onRevoked and its
 *       commits finished, so it reads the offset and metadata the old owner committed last;
 *     * a commit can never go out under the NEW generation for a partition that moved away
 *       (which the coordinator would accept, since it does not check ownership): after
 *       onRevoked, commit() refuses the partition.
 *   Every rebalance therefore revokes every partition and assigns the new set afresh, even a
 *   partition that stays here, as the in-memory log does. onRevoked must finish within the
 *   rebalance timeout; the member keeps heartbeating meanwhile, so the session stays alive.
 *   Reacting to kafkajs's REBALANCING or GROUP_JOIN events instead would be too late: kafkajs
 *   does not wait for event listeners, and at GROUP_JOIN the partition may already be read by
 *   its new owner.
 * - ASSIGN BEFORE THE FIRST BATCH. GROUP_JOIN (emitted after SyncGroup, before the first fetch of
 *   the generation) creates each partition in state `assigning`. Its committed offset and
 *   metadata are read with admin.fetchOffsets (kafkajs's own offset fetch keeps the metadata to
 *   itself); a partition without a commit starts at the log start (fromBeginning) or end, read
 *   then and there, so a record appended after onAssigned is never skipped. The consumer is
 *   sought to that offset, then onAssigned runs; batches fetched meanwhile are not delivered and
 *   the partition is paused until it is ready (other partitions keep flowing).
 * - BATCHES: one partition's batches arrive in order, one at a time (a kafkajs fetcher hands one
 *   batch per partition to its workers and waits for all before the next fetch). Offsets are
 *   resolved only after onBatch resolves (eachBatchAutoResolve off). A rejected onBatch is NOT
 *   rethrown to kafkajs, which would restart the batches of every partition (kafkajs #945) and,
 *   after `retry.retries` failures, crash the consumer; instead the offset stays unresolved, the
 *   partition is paused for `retryDelayMs` and the next fetch starts at the same offset: the
 *   batch is redelivered, possibly with more records after it.
 * - HEARTBEATS continue while a handler runs long (a timer in eachBatch, and during revocation).
 * - COMMITS: commit() sends offset + metadata with consumer.commitOffsets. kafkajs silently does
 *   nothing when its runner is no longer running (after a crash or stop); every commit is
 *   therefore checked against kafkajs's COMMIT_OFFSETS event and fails loudly if it was not sent.
 * - STOP: new fetches are paused, every owned partition is revoked (so its commits still go out
 *   while the kafkajs consumer runs), then the consumer leaves the group and disconnects.
 * - CRASH: kafkajs has already left the group when it reports a crash, so partitions are lost:
 *   onRevoked is called (to drop what the handlers hold) but their commits are refused; the
 *   successor replays from the last commit. kafkajs restarts after retriable crashes, and the
 *   next GROUP_JOIN assigns again.
 */
import type { Admin, Batch, Consumer, ConsumerCrashEvent, EachBatchPayload, Kafka, PartitionAssigner } from 'kafkajs';
import { PartitionAssigners } from 'kafkajs';
import type { CommittedOffset, ConsumeOptions, ConsumedRecord, GroupConsumer } from '../../ingest/event-log.js';
import type { Logger } from '../../log.js';
import { KafkaEventLogError, toKafkaEventLogError } from './kafka-event-log-error.js';
import { fromMessage, parseOffset } from './kafka-records.js';

export interface KafkaConsumerSettings {
  /** A member silent for this long is removed from the group (the broker bounds it: group.min/max.session.timeout.ms). */
  readonly sessionTimeoutMs: number;
  /** How long the coordinator waits for every member to rejoin; onRevoked must finish within it. */
  readonly rebalanceTimeoutMs: number;
  /** Heartbeats are sent at most this often; a rebalance is noticed by the next one. About a third of the session timeout. */
  readonly heartbeatIntervalMs: number;
  /** Longest a fetch waits at the broker for new records. */
  readonly maxWaitTimeMs: number;
  /** Bytes fetched per partition per request (a larger first record batch is still returned whole). */
  readonly maxBytesPerPartition: number;
  /** Bytes fetched per request: with maxBytesPerPartition, the bound on records held per fetch. */
  readonly maxBytes: number;
  /** Partitions whose batches are handled at the same time (0: as many as the topic has). */
  readonly partitionsConsumedConcurrently: number;
  /** Pause of a partition after its onBatch rejected, before the batch is delivered again. */
  readonly retryDelayMs: number;
  /**
   * How long a starting member keeps rejoining after a retryable failure of its first join
   * (a broker just started answers GROUP_LOAD_IN_PROGRESS or COORDINATOR_NOT_AVAILABLE while it
   * creates and loads __consumer_offsets). kafkajs does not retry those inside a join.
   */
  readonly firstJoinRetryMs: number;
  /** Retries of kafkajs's own operations (join, fetch, commit) before it gives up and restarts the consumer. */
  readonly retries: number;
  readonly initialRetryTimeMs: number;
  readonly maxRetryTimeMs: number;
}

type Phase = 'assigning' | 'active' | 'revoking';

/** A partition this member owns in the current generation. */
interface OwnedPartition {
  readonly partition: number;
  phase: Phase;
  /** Resolves once onAssigned has run (true) or the assignment was given up (false). */
  ready: Promise<boolean>;
  /** onAssigned completed: onRevoked is owed. */
  assigned: boolean;
  /** The offset the next delivered batch must start at; null until known. */
  position: number | null;
  /** The position we last sought back to after a batch started past it. */
  soughtAfterGap: number | null;
  /** The onBatch call under way, if any. */
  inFlight: Promise<void> | null;
  readonly commits: Set<Promise<unknown>>;
  /** The member left the group without us (crash): commits are refused. */
  lost: boolean;
  revoked?: Promise<void>;
}

interface PendingCommit {
  readonly partition: number;
  readonly offset: string;
  sent: boolean;
}

interface StartPosition {
  readonly committed: CommittedOffset | null;
  readonly start: number;
}

export interface KafkaGroupConsumerDeps {
  readonly kafka: Kafka;
  readonly admin: Admin;
  readonly brokers: readonly string[];
  readonly partitions: number;
  readonly options: ConsumeOptions;
  readonly settings: KafkaConsumerSettings;
  readonly logger: Logger;
  readonly onStopped: (consumer: KafkaGroupConsumer) => void;
}

const ASSIGN_RETRY_MS = 500;

export class KafkaGroupConsumer implements GroupConsumer {
  /** Partitions of the current generation. */
  private readonly owned = new Map<number, OwnedPartition>();
  /** Partitions being revoked: their onRevoked may still commit. */
  private readonly leaving = new Map<number, OwnedPartition>();
  private readonly pendingCommits = new Set<PendingCommit>();
  private readonly consumer: Consumer;
  private readonly logger: Logger;
  private readonly topic: string;
  private readonly groupId: string;
  private hookInstalled = false;
  /** The heartbeat of the running kafkajs runner, taken from the latest eachBatch payload. */
  private heartbeat: (() => Promise<void>) | undefined;
  private joined = false;
  /** Resolves when stop() is called: ends start()'s wait between join attempts. */
  private readonly stopRequested: Promise<void>;
  private requestStop!: () => void;
  private dead: Error | undefined;
  private stopping: Promise<void> | undefined;
  private generation = 0;
  private firstJoin: Deferred;

  constructor(private readonly deps: KafkaGroupConsumerDeps) {
    const { options, settings } = deps;
    this.topic = options.topic;
    this.groupId = options.groupId;
    this.logger = deps.logger.child({ topic: this.topic, groupId: this.groupId });
    this.firstJoin = deferred();
    this.stopRequested = new Promise<void>((resolve) => { this.requestStop = resolve; });

    this.consumer = deps.kafka.consumer({
      groupId: this.groupId,
      partitionAssigners: [this.revokingAssigner],
      sessionTimeout: settings.sessionTimeoutMs,
      rebalanceTimeout: settings.rebalanceTimeoutMs,
      heartbeatInterval: settings.heartbeatIntervalMs,
      maxWaitTimeInMs: settings.maxWaitTimeMs,
      maxBytesPerPartition: settings.maxBytesPerPartition,
      maxBytes: settings.maxBytes,
      // A topic must be created with its partition count fixed up front (ensureTopics), never by a read.
      allowAutoTopicCreation: false,
      retry: {
        retries: settings.retries,
        initialRetryTime: settings.initialRetryTimeMs,
        maxRetryTime: settings.maxRetryTimeMs,
        // Restart after a retriable crash once the member has been running; before its first
        // join, start() retries itself (see there).
        restartOnFailure: async () => this.joined && !this.stopping,
      },
    });
    if (!this.hookInstalled) {
      // kafkajs calls assigner factories while creating the consumer; without the hook no
      // partition could be revoked before a rejoin, so refuse to run rather than lose commits.
      throw new Error('kafkajs did not create the partition assigner: the revoke-before-rejoin hook is missing (kafkajs version changed?)');
    }
    const { GROUP_JOIN, COMMIT_OFFSETS, CRASH } = this.consumer.events;
    this.consumer.on(GROUP_JOIN, (e) => this.onGroupJoin(e.payload.memberAssignment));
    this.consumer.on(COMMIT_OFFSETS, (e) => this.onCommitted(e.payload.topics));
    this.consumer.on(CRASH, (e) => this.onCrash(e));
  }

  /**
   * kafkajs's round-robin assigner, whose factory also makes this member revoke everything it
   * owns before each JoinGroup (see the top of this file).
   */
  private readonly revokingAssigner: PartitionAssigner = (config) => {
    const cluster = config.cluster;
    const findGroupCoordinator = cluster.findGroupCoordinator.bind(cluster);
    cluster.findGroupCoordinator = async (group) => {
      await this.beforeJoin();
      return findGroupCoordinator(group);
    };
    this.hookInstalled = true;
    return PartitionAssigners.roundRobin(config);
  };

  /**
   * Joins the group; resolves after the first assignment, rejects if the member cannot join.
   * A retryable failure of the first join (a broker just started answers GROUP_LOAD_IN_PROGRESS
   * or COORDINATOR_NOT_AVAILABLE while it loads __consumer_offsets, and kafkajs does not retry
   * those within a join) is retried here, backing off, for up to firstJoinRetryMs. Not through
   * kafkajs's restart: that runs the join on a timer nobody awaits, and a stop() meeting such a
   * join leaves a member in the group that holds partitions and never reads them (kafkajs stops
   * only a runner that has started). Here each attempt's run() is awaited, and a stop during it
   * disconnects again once it returned.
   */
  async start(): Promise<void> {
    const { options, settings } = this.deps;
    const until = Date.now() + settings.firstJoinRetryMs;
    for (let attempt = 1; ; attempt++) {
      // Only the join is retried: a broker that cannot be reached fails start() at once, as
      // KafkaEventLog's other calls do.
      let joining = false;
      try {
        await this.consumer.connect();
        await this.consumer.subscribe({ topic: this.topic, fromBeginning: options.fromBeginning });
        joining = true;
        await this.consumer.run({
          autoCommit: false,
          eachBatchAutoResolve: false,
          partitionsConsumedConcurrently: settings.partitionsConsumedConcurrently > 0 ? settings.partitionsConsumedConcurrently : this.deps.partitions,
          eachBatch: (payload) => this.eachBatch(payload),
        });
        await this.firstJoin.promise;
        return;
      } catch (e) {
        await this.consumer.disconnect().catch(() => undefined);
        const failure = toKafkaEventLogError(e, `joining consumer group ${this.groupId} on topic ${this.topic}`, this.deps.brokers);
        if (this.stopping || !joining || !failure.retryable || Date.now() >= until) throw failure;
        // The last attempt falls at the end of the window.
        const backoffMs = Math.min(settings.initialRetryTimeMs * 2 ** (attempt - 1), settings.maxRetryTimeMs, until - Date.now());
        this.logger.warn({ err: e, attempt, backoffMs }, 'kafka consumer could not join its group yet; it tries again');
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([new Promise((r) => { timer = setTimeout(r, backoffMs); }), this.stopRequested]);
        clearTimeout(timer);
        if (this.stopping) throw failure;
        this.firstJoin = deferred();
      }
    }
  }

  async commit(partition: number, committed: CommittedOffset): Promise<void> {
    // A partition being revoked is the one committing (its successor here, if any, is assigned
    // only after the revocation finished).
    const owned = this.leaving.get(partition) ?? this.owned.get(partition);
    if (!owned || owned.lost || this.dead) {
      throw new KafkaEventLogError(`partition ${partition} of ${this.topic} is not assigned to this member of ${this.groupId}`, false);
    }
    if (!Number.isSafeInteger(committed.offset) || committed.offset < 0) {
      throw new RangeError(`commit offset ${committed.offset} is not a non-negative safe integer`);
    }
    const pending: PendingCommit = { partition, offset: String(committed.offset), sent: false };
    this.pendingCommits.add(pending);
    const sending = this.consumer.commitOffsets([{ topic: this.topic, partition, offset: pending.offset, metadata: committed.metadata }]);
    owned.commits.add(sending);
    try {
      await sending;
    } catch (e) {
      throw toKafkaEventLogError(e, `commit of ${this.topic}[${partition}] at ${committed.offset} for ${this.groupId}`, this.deps.brokers);
    } finally {
      owned.commits.delete(sending);
      this.pendingCommits.delete(pending);
    }
    if (!pending.sent) {
      throw new KafkaEventLogError(`commit of ${this.topic}[${partition}] at ${committed.offset} was not sent: the kafkajs consumer of ${this.groupId} is no longer running`, false);
    }
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.firstJoin.reject(new KafkaEventLogError(`consumer of ${this.groupId} stopped before it joined the group`, false));
      this.requestStop();
      try {
        this.consumer.pause([{ topic: this.topic }]);
      } catch {
        // Not running (crashed or never started): nothing is fetched anyway.
      }
      // While the kafkajs consumer still runs, so that onRevoked's commits go out.
      await this.revokeAll('stop');
      try {
        await this.consumer.disconnect();
      } catch (e) {
        this.logger.warn({ err: e }, 'kafka consumer did not disconnect cleanly');
      }
      this.deps.onStopped(this);
    })();
    return this.stopping;
  }

  /** Partitions owned right now (for tests and metrics). */
  ownedPartitions(): number[] {
    return [...this.owned.keys()].sort((a, b) => a - b);
  }

  // --- group membership -------------------------------------------------------------------

  private async beforeJoin(): Promise<void> {
    if (this.owned.size === 0 && this.leaving.size === 0) return;
    await this.revokeAll('rebalance');
  }

  private async revokeAll(reason: 'rebalance' | 'stop' | 'lost'): Promise<void> {
    const owned = [...this.owned.values(), ...this.leaving.values()];
    if (owned.length === 0) return;
    this.logger.info({ partitions: [...this.owned.keys()], reason }, 'revoking partitions');
    // Keep the session alive while the handlers flush: during a rebalance the coordinator still
    // counts heartbeats (it answers REBALANCE_IN_PROGRESS, which is expected here).
    const beat = this.heartbeat;
    const keepAlive = beat && reason !== 'lost'
      ? setInterval(() => { beat().catch(() => undefined); }, this.deps.settings.heartbeatIntervalMs)
      : undefined;
    try {
      await Promise.all(owned.map((o) => this.revoke(o)));
    } finally {
      if (keepAlive) clearInterval(keepAlive);
    }
  }

  private revoke(owned: OwnedPartition): Promise<void> {
    if (owned.revoked) return owned.revoked;
    owned.phase = 'revoking';
    if (this.owned.get(owned.partition) === owned) this.owned.delete(owned.partition);
    this.leaving.set(owned.partition, owned);
    owned.revoked = (async () => {
      await owned.ready;
      await owned.inFlight;
      if (owned.assigned) {
        try {
          await this.deps.options.handlers.onRevoked(owned.partition);
        } catch (e) {
          this.logger.error({ err: e, partition: owned.partition }, 'onRevoked failed; the partition is given up anyway');
        }
      }
      await Promise.allSettled([...owned.commits]);
      if (this.leaving.get(owned.partition) === owned) this.leaving.delete(owned.partition);
    })();
    return owned.revoked;
  }

  private onGroupJoin(assignment: Record<string, number[]>): void {
    this.joined = true;
    this.firstJoin.resolve();
    if (this.stopping || this.dead) return;
    const generation = ++this.generation;
    const partitions = [...(assignment[this.topic] ?? [])].sort((a, b) => a - b);
    this.logger.info({ partitions, generation }, 'partitions assigned');
    // beforeJoin revoked everything before this join; what is still here was lost to a crash
    // and is being dropped. The new assignment starts once that is done, so that it reads what
    // the old one committed last.
    const previous = [...this.owned.values(), ...this.leaving.values()];
    const previousDone = Promise.all(previous.map((o) => this.revoke(o)));
    const positions = previousDone.then(() => this.startPositions(partitions));
    positions.catch(() => undefined);
    for (const partition of partitions) {
      const owned: OwnedPartition = {
        partition, phase: 'assigning', ready: Promise.resolve(false), assigned: false, position: null,
        soughtAfterGap: null, inFlight: null, commits: new Set(), lost: false,
      };
      owned.ready = this.assign(owned, positions);
      this.owned.set(partition, owned);
    }
  }

  private async assign(owned: OwnedPartition, firstLookup: Promise<Map<number, StartPosition>>): Promise<boolean> {
    const { partition } = owned;
    let lookup = firstLookup;
    for (let attempt = 1; ; attempt++) {
      if (owned.phase !== 'assigning') return false;
      let step = 'reading the committed offset';
      try {
        const position = (await lookup).get(partition);
        if (!position) throw new Error(`no start position for partition ${partition}`);
        if (owned.phase !== 'assigning') return false;
        step = 'seeking';
        this.consumer.seek({ topic: this.topic, partition, offset: String(position.start) });
        owned.position = position.start;
        step = 'onAssigned';
        await this.deps.options.handlers.onAssigned(partition, position.committed);
        owned.assigned = true;
        if (owned.phase === 'assigning') owned.phase = 'active';
        this.logger.debug({ partition, committed: position.committed, start: position.start }, 'partition ready');
        return true;
      } catch (e) {
        this.logger.warn({ err: e, partition, attempt, step }, 'assigning a partition failed; retrying');
        await new Promise((r) => setTimeout(r, Math.min(ASSIGN_RETRY_MS * attempt, 5_000)));
        lookup = this.startPositions([partition]);
        lookup.catch(() => undefined);
      }
    }
  }

  /** Committed offset + metadata per partition, and where reading starts (the commit, or the log's start or end). */
  private async startPositions(partitions: readonly number[]): Promise<Map<number, StartPosition>> {
    const out = new Map<number, StartPosition>();
    if (partitions.length === 0) return out;
    const { admin, options } = this.deps;
    const [fetched] = await admin.fetchOffsets({ groupId: this.groupId, topics: [this.topic] });
    const committed = new Map<number, CommittedOffset>();
    for (const p of fetched?.partitions ?? []) {
      // -1: nothing committed. kafkajs turns an empty metadata string into null.
      if (Number(p.offset) >= 0) committed.set(p.partition, { offset: parseOffset(p.offset), metadata: p.metadata ?? '' });
    }
    const missing = partitions.filter((p) => !committed.has(p));
    const ends = new Map<number, { low: number; high: number }>();
    if (missing.length > 0) {
      for (const o of await admin.fetchTopicOffsets(this.topic)) ends.set(o.partition, { low: parseOffset(o.low), high: parseOffset(o.high) });
    }
    for (const p of partitions) {
      const c = committed.get(p);
      if (c) {
        out.set(p, { committed: c, start: c.offset });
        continue;
      }
      const end = ends.get(p);
      if (!end) throw new Error(`no offsets known for partition ${p} of ${this.topic}`);
      out.set(p, { committed: null, start: options.fromBeginning ? end.low : end.high });
    }
    return out;
  }

  private onCommitted(topics: ReadonlyArray<{ topic: string; partitions: ReadonlyArray<{ partition: number; offset: unknown }> }>): void {
    if (this.pendingCommits.size === 0) return;
    for (const t of topics) {
      if (t.topic !== this.topic) continue;
      for (const p of t.partitions) {
        const offset = String(p.offset);
        for (const pending of this.pendingCommits) {
          if (pending.partition === p.partition && pending.offset === offset) pending.sent = true;
        }
      }
    }
  }

  private onCrash(event: ConsumerCrashEvent): void {
    const { error, restart } = event.payload;
    if (!this.joined) {
      this.firstJoin.reject(error);
      return;
    }
    if (this.stopping) return;
    this.logger.error({ err: error, restart }, restart
      ? 'kafka consumer crashed; its partitions are lost and it rejoins the group'
      : 'kafka consumer crashed and will not restart; its partitions are lost');
    if (!restart) this.dead = error;
    for (const owned of [...this.owned.values(), ...this.leaving.values()]) owned.lost = true;
    void this.revokeAll('lost');
  }

  // --- batches ----------------------------------------------------------------------------

  /** Pauses the batch's partition until `until` settles; a stopping member stays paused. */
  private pauseUntil(payload: EachBatchPayload, until: Promise<unknown>): void {
    const resume = payload.pause();
    void until.finally(() => {
      if (!this.stopping) resume();
    });
  }

  private async eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    this.heartbeat = payload.heartbeat;
    const owned = this.owned.get(batch.partition);
    if (!owned || owned.phase === 'revoking' || this.stopping) {
      // Not delivered and not resolved: whoever owns the partition next reads it again from the
      // commit. Paused a while, so that kafkajs does not fetch the same records in a loop.
      this.pauseUntil(payload, new Promise((r) => setTimeout(r, this.deps.settings.retryDelayMs)));
      return;
    }
    if (owned.phase === 'assigning') {
      this.pauseUntil(payload, owned.ready);
      return;
    }
    let records: ConsumedRecord[];
    let lastOffset: number;
    try {
      // kafkajs's Batch keeps the offset it fetched from (not in its typings).
      const fetched = (batch as Batch & { fetchedOffset?: unknown }).fetchedOffset;
      const fetchedOffset = typeof fetched === 'string' || typeof fetched === 'number' ? parseOffset(String(fetched)) : null;
      if (owned.position !== null && fetchedOffset !== null && fetchedOffset > owned.position) {
        if (owned.soughtAfterGap !== owned.position) {
          // A batch from past our position (a fetch that straddled a rejoin): read from where we are.
          this.logger.warn({ partition: batch.partition, expected: owned.position, fetched: fetchedOffset }, 'batch starts past the partition position; seeking back');
          owned.soughtAfterGap = owned.position;
          this.consumer.seek({ topic: this.topic, partition: batch.partition, offset: String(owned.position) });
          return;
        }
        // Seeking back did not help: the records are gone (retention) or kafkajs reset the offset.
        this.logger.error({ partition: batch.partition, expected: owned.position, fetched: fetchedOffset }, 'offsets skipped: records below the fetched offset are no longer in the log');
      }
      records = [];
      for (const m of batch.messages) {
        const r = fromMessage(m, batch.partition);
        if (owned.position === null || r.offset >= owned.position) records.push(r);
      }
      lastOffset = parseOffset(batch.lastOffset());
    } catch (e) {
      this.logger.error({ err: e, partition: batch.partition }, 'undeliverable batch; the partition is paused');
      payload.pause();
      return;
    }
    if (records.length === 0) {
      payload.resolveOffset(String(lastOffset));
      owned.position = lastOffset + 1;
      return;
    }

    const keepAlive = setInterval(() => {
      payload.heartbeat().catch(() => undefined); // a rebalance is acted on after the batch
    }, this.deps.settings.heartbeatIntervalMs);
    let handling: Promise<void>;
    try {
      handling = Promise.resolve(this.deps.options.handlers.onBatch({ topic: this.topic, partition: batch.partition, records }));
    } catch (e) {
      handling = Promise.reject(e);
    }
    owned.inFlight = handling.then(() => undefined, () => undefined);
    try {
      await handling;
      payload.resolveOffset(String(lastOffset));
      owned.position = lastOffset + 1;
      owned.soughtAfterGap = null;
    } catch (e) {
      this.logger.warn({ err: e, partition: batch.partition, firstOffset: records[0]!.offset, retryDelayMs: this.deps.settings.retryDelayMs },
        'onBatch rejected; the batch is redelivered');
      this.pauseUntil(payload, new Promise((r) => setTimeout(r, this.deps.settings.retryDelayMs)));
    } finally {
      clearInterval(keepAlive);
      owned.inFlight = null;
    }
  }
}

interface Deferred {
  readonly promise: Promise<void>;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}
