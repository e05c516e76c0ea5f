/**
 * The aggregator: a consumer-group member that turns each assigned event-log partition into
 * absolute 'minute' rollups (minute-windows.ts), written to the RollupStore and rolled up into
 * the coarser tiers (tier-roller.ts), announced on the LiveBus, with late events and
 * undecodable records appended to their own topics. Visits need state that outlives a bucket
 * (a visitor's previous event may be in a bucket closed long ago), so each commit also names a
 * checkpoint of that state.
 *
 * Why a crash, restart, rebalance or replay converges to the same rollups (DESIGN invariant 3):
 *
 * 1. Rows are absolute values, rebuilt whole from the contributions of their bucket's events,
 *    and written by idempotent upserts; coarser tiers are recomputed from the rows beneath them.
 *    A contribution depends on the visitor's earlier events, which the windows hold as the
 *    frozen visit states of closed buckets plus the events of open ones (minute-windows.ts):
 *    the same events of a bucket over the same frozen states give the same row.
 * 2. Bucket state and visit state in memory are lost on a crash, so a commit must let a
 *    successor rebuild both. Only a checkpoint flush commits (every checkpointIntervalMs, and
 *    at revoke or stop); it commits
 *      c = the first offset of the oldest still-open bucket (or last offset + 1 if none is open)
 *    and does so only after every row of a bucket closed so far is durably written (final),
 *    every late and dead-letter append so far has resolved, and the checkpoint is saved. Every
 *    record below c therefore is counted in a closed bucket that is final in the store (its
 *    visit contribution folded into the checkpoint's frozen states), or sits in the late lane
 *    or the dead-letter topic, or is a bot event or repeated id of a closed bucket (final too):
 *    nothing below c is needed again. Flushes between checkpoints write rows, appends and the
 *    store watermark, but commit nothing: the committed offset always matches a saved
 *    checkpoint.
 * 3. The commit carries metadata { watermarkMs, highOffset, checkpoint } (highOffset = last
 *    offset processed, or the restored highOffset if that is further: see 6; checkpoint = the
 *    id the visit states were saved under). The checkpoint holds the windows' frozen states at
 *    the commit's flush: the fold of exactly the counted events of the buckets closed under
 *    watermarkMs. The successor restores the watermark, so buckets closed before the commit stay
 *    closed, loads those states, and replays [c, highOffset]:
 *    - a record whose bucket is closed under the restored watermark was already reflected (in
 *      a final row and the frozen states, in the late lane, or dropped as a duplicate or bot)
 *      and is SKIPPED, not counted again nor sent to the late lane again;
 *    - a record whose bucket is open is aggregated again: every event of an open bucket is at
 *      an offset ≥ c (the bucket's first offset is ≥ c by the choice of c), so the bucket is
 *      rebuilt from all of its events, in the same order, over the same frozen states, to the
 *      same row. Duplicate detection sees the same sequence, so it decides the same way.
 *    Records after highOffset are new and processed normally. The watermark is monotone, so a
 *    bucket open under the restored watermark was open when its events were first processed:
 *    none of them went to the late lane then.
 * 4. Work done after the last commit and before a crash (rows, tier rows, watermarks, late
 *    appends, an orphan checkpoint) is done again by the successor from the same records over
 *    the same states: rows converge by (1); the late and dead-letter topics are at-least-once
 *    and keep each record's event id and source offset, so readers dedupe. Each checkpoint is
 *    saved under a fresh id, so a save never overwrites the one the current commit names; an
 *    orphan (saved, then a crash before the commit) is never loaded and expires in the store.
 * 5. A redelivered batch (a handler rejected) is not counted twice: records below the
 *    partition's position are skipped. Writes that fail are retried in order; a later flush
 *    never commits past an earlier one that has not been written.
 * 6. A successor may itself commit, and crash, before it has replayed through the restored
 *    highOffset h. Its commit then still carries h, not its own last offset: the records after
 *    that up to h were reflected by a predecessor exactly as in (3), and without h the next
 *    successor would take those of closed buckets for new records and send them to the late
 *    lane (or the dead-letter topic) again, counted events among them. This is sound because
 *    the watermark cannot move during the replay: replayed events are at or below the
 *    restored watermark (it was computed from them), and idle advance waits until the replay
 *    is done (the partition is not idle while records it has yet to replay exist). So such a
 *    commit carries the restored watermark, and a bucket is closed under it exactly when it was
 *    closed under the predecessor's commit; no bucket closed, so its frozen states are the
 *    restored ones (less states too old to continue any visit, which change nothing).
 * 7. When the checkpoint a commit names cannot be loaded (missing, unreadable, or a commit
 *    from a version without checkpoints), the partition starts with no visit state, logs a
 *    warning and counts sluice_aggregate_checkpoint_fallbacks_total. Pageviews, events,
 *    visitors, bots and revenue stay exact. What it costs is the visits in progress at the
 *    restored watermark (visitors with an event less than sessionTimeoutMs before the first
 *    open bucket): the next event of each starts a visit again, so such a visit counts twice
 *    in visits and exits, its duration loses the gap, a lone pageview after the gap counts a
 *    bounce, and its later events are attributed to a new entry (session dimensions).
 *
 * Flushes run on a timer (flushIntervalMs) from the injected scheduler, one partition at a
 * time in order; the LiveBus notice for a bucket is published as soon as its minute row is
 * written: queries read buckets the watermark does not call final from minute rows only
 * (query-engine.ts), so a dashboard that re-reads on a notice sees the change. Quarters, hours
 * and days are rolled at most every coarseRollIntervalMs (and in every checkpoint flush, before
 * its commit: see TierRoller), each such roll followed by a notice of its own for the buckets it
 * rolled; a quiet partition rolls what it owes on a timer.
 */
import { randomUUID } from 'node:crypto';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { Subject, asyncScheduler, interval, type SchedulerLike, type Subscription } from 'rxjs';
import type { Config } from '../config.js';
import type { CommittedOffset, ConsumedRecord, EventLog, GroupConsumer, LogExtent, LogRecord, OffsetRange, PartitionBatch } from '../ingest/event-log.js';
import { silentLogger, type Logger } from '../log.js';
import type { LiveBus } from '../query/live-bus.js';
import { decodeEvent } from './decode-event.js';
import { IDENTITY_LOGIC, minuteWindows, type FlushRequest, type ProcessingLogic, type WindowFlush, type WindowInput, type WindowOutcome } from './minute-windows.js';
import type { RollupStore } from './rollup-store.js';
import { decodeVisitStates, encodeVisitStates, type VisitorState } from './sessions.js';
import { TierRoller, type TierRetention } from './tier-roller.js';

export interface AggregatorDeps {
  readonly log: EventLog;
  /**
   * Where the events topic's partitions start and end (the same log's LogPositions): idle
   * advance waits while records are waiting for a partition (see logReading).
   */
  readonly positions: LogExtent;
  readonly store: RollupStore;
  readonly bus: LiveBus;
  readonly topic: string;
  readonly lateTopic: string;
  readonly deadLetterTopic: string;
  readonly config: Config['aggregate'];
  /**
   * The stores' tier retention (tierRetentionFromDays(config.rollups)): the tier roller leaves
   * coarse buckets alone whose finer rows may have expired. Default: kept forever.
   */
  readonly retention?: TierRetention;
  readonly registry: Registry;
  readonly logger?: Logger;
  /** Wall clock for idle advance and watermark lag; defaults to the scheduler's clock. */
  readonly now?: () => number;
  /** Drives flush ticks. */
  readonly scheduler?: SchedulerLike;
  /**
   * The processing logic (minute-windows.ts ProcessingLogic) applied to every event before it
   * is windowed; default IDENTITY_LOGIC (version 1). Reprocessing (src/ops) recomputes history
   * with the same hook, so give both the same current version.
   */
  readonly logic?: ProcessingLogic;
  /** Records a partition may take while a flush is being written (default MAX_UNFLUSHED_RECORDS). */
  readonly maxUnflushedRecords?: number;
}

/** The metadata committed with each offset: what a successor needs to replay correctly. */
interface CommitMetadata {
  /** The partition's watermark at the commit; null before the first event. */
  readonly watermarkMs: number | null;
  /** The last offset processed before the commit. */
  readonly highOffset: number;
  /** Id of the visit-state checkpoint saved for this commit; null in commits of versions before checkpoints. */
  readonly checkpoint: string | null;
}

function parseCommitMetadata(metadata: string): CommitMetadata | null {
  try {
    const m = JSON.parse(metadata) as Partial<Record<keyof CommitMetadata, unknown>> | null;
    if (typeof m !== 'object' || m === null) return null;
    const { watermarkMs, highOffset, checkpoint } = m;
    if (!Number.isInteger(highOffset)) return null;
    if (watermarkMs !== null && (typeof watermarkMs !== 'number' || !Number.isFinite(watermarkMs))) return null;
    if (checkpoint !== undefined && checkpoint !== null && (typeof checkpoint !== 'string' || checkpoint === '')) return null;
    return { watermarkMs, highOffset: highOffset as number, checkpoint: checkpoint ?? null };
  } catch {
    return null;
  }
}

interface AggregatorInput extends WindowInput {
  readonly record: ConsumedRecord;
}

type RunState = 'active' | 'revoking' | 'dropped';

/** One assigned partition. */
interface PartitionRun {
  readonly partition: number;
  readonly inputs: Subject<AggregatorInput>;
  readonly flushes: Subject<FlushRequest>;
  subscription?: Subscription;
  /** Rolls owed hours and days when no flush comes to do it (a quiet partition). */
  coarseTimer?: Subscription;
  /** Next offset to take: a redelivered batch skips what is below it. */
  nextOffset: number;
  readonly replayThroughOffset: number;
  /** Appends owed to the late lane and dead-letter topic, written by the next flush. */
  late: LogRecord[];
  deadLetters: LogRecord[];
  /** Flush writes, one at a time and in order, so a commit never overtakes an earlier write. */
  queue: Promise<void>;
  queued: number;
  /** Once set (a write given up on, a pipeline fault), nothing more is written or committed. */
  failed: boolean;
  state: RunState;
  watermarkMs: number;
  openBuckets: number;
  /** Quarters, hours and days when due and at every checkpoint flush (tier-roller.ts). */
  readonly roller: TierRoller;
  /** The store watermark the last flush's windows allow (see writeWatermark); -Infinity before any. */
  finalMs: number;
  /** Whether this run has written the partition's store watermark yet (see writeFlush). */
  watermarkWritten: boolean;
  /** A timer flush was held while writes were queued: it is taken when they drain. */
  flushHeld: boolean;
  /** Records taken since the last flush was taken (see MAX_UNFLUSHED_RECORDS). */
  takenSinceFlush: number;
}

/** Pending late and dead-letter records beyond which a batch forces a flush before returning. */
const MAX_PENDING_APPENDS = 10_000;
/**
 * Records taken since the flush being written began, beyond which a batch waits for it: timer
 * flushes are held while one is written (holdFlush), so without this a store that stalls would
 * let the windows grow (closed rows, events) without bound.
 */
const MAX_UNFLUSHED_RECORDS = 50_000;
/** Attempts per write step once a partition is being revoked (then the successor replays). */
const REVOKE_ATTEMPTS = 3;
const RETRY_BASE_MS = 50;
const RETRY_MAX_MS = 5_000;
/** Attempts to load a checkpoint on assignment before falling back to no visit state (see 7). */
const LOAD_ATTEMPTS = 5;
/** Bounds on how often the log's offsets are read for idle advance (a quarter of idleAdvanceMs in between). */
const MIN_LOG_READ_INTERVAL_MS = 25;
const MAX_LOG_READ_INTERVAL_MS = 5_000;

class Abandoned extends Error {
  override readonly name = 'Abandoned';
}

export class Aggregator {
  private readonly runs = new Map<number, PartitionRun>();
  private readonly logger: Logger;
  private readonly scheduler: SchedulerLike;
  private readonly now: () => number;
  private consumer: GroupConsumer | undefined;
  private stopping: Promise<void> | undefined;
  /** Set by crash(): revoked partitions are dropped without a flush or commit. */
  private crashing = false;
  /**
   * The events topic's offset ranges at the latest reading, and when that reading was asked
   * for. Idle advance closes a quiet partition's buckets by the clock, which is only right when
   * no record is waiting for it in the log: records wait while this member holds input back
   * for slow writes (onBatch), while the consumer fetches late or is cut off from Kafka, and
   * while a successor catches up. So a partition counts as quiet only while it has taken every
   * record of a reading asked for within the last idleAdvanceMs (see hasTakenAll). A record
   * appended after the reading has an event time within the clock's allowance (maxOutOfOrderMs
   * + idleAdvanceMs), the assumption idle advance rests on anyway.
   */
  private logReading: { readonly atMs: number; readonly ranges: readonly OffsetRange[] } | undefined;
  private readingLog = false;
  private logReadFailing = false;

  private readonly eventsTotal: Counter<'outcome'>;
  private readonly botEventsTotal: Counter;
  private readonly flushSeconds: Histogram;
  private readonly checkpointBytes: Histogram;
  private readonly checkpointFallbacks: Counter<'reason'>;

  constructor(private readonly deps: AggregatorDeps) {
    this.logger = deps.logger ?? silentLogger();
    this.scheduler = deps.scheduler ?? asyncScheduler;
    this.now = deps.now ?? (() => this.scheduler.now());
    const registers = [deps.registry];
    this.eventsTotal = new Counter({
      name: 'sluice_aggregate_events_total', help: 'Event-log records taken by the aggregator, by outcome.',
      labelNames: ['outcome'], registers,
    });
    this.botEventsTotal = new Counter({
      name: 'sluice_aggregate_bot_events_total', help: 'Bot events, excluded from every rollup.', registers,
    });
    this.flushSeconds = new Histogram({
      name: 'sluice_aggregate_flush_seconds', help: 'Time to write one partition flush: appends, rows, notices, watermark, commit.',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers,
    });
    this.checkpointBytes = new Histogram({
      name: 'sluice_aggregate_checkpoint_bytes', help: 'Size of each saved visit-state checkpoint.',
      buckets: [1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000], registers,
    });
    this.checkpointFallbacks = new Counter({
      name: 'sluice_aggregate_checkpoint_fallbacks_total',
      help: 'Partitions assigned without their committed visit state (missing, unreadable, or not recorded): visits in progress then count again.',
      labelNames: ['reason'], registers,
    });
    const runs = this.runs;
    const now = this.now;
    new Gauge({
      name: 'sluice_aggregate_open_buckets', help: 'Buckets still accepting events, as of the last flush.', registers,
      collect() {
        let n = 0;
        for (const r of runs.values()) n += r.openBuckets;
        this.set(n);
      },
    });
    const reading = () => this.logReading;
    new Gauge({
      name: 'sluice_aggregate_log_reading_age_seconds',
      help: 'Age of the newest reading of the events topic\'s offsets. Quiet partitions close buckets by the clock only while it is under idleAdvanceMs (see logReading); -1 before the first reading.',
      registers,
      collect() {
        const r = reading();
        this.set(r ? Math.max(0, now() - r.atMs) / 1000 : -1);
      },
    });
    new Gauge({
      name: 'sluice_aggregate_watermark_lag_seconds', help: 'Wall clock minus the partition watermark, as of the last flush.',
      labelNames: ['partition'], registers,
      collect() {
        this.reset();
        for (const r of runs.values()) {
          if (Number.isFinite(r.watermarkMs)) this.set({ partition: String(r.partition) }, (now() - r.watermarkMs) / 1000);
        }
      },
    });
  }

  async start(): Promise<void> {
    if (this.consumer) return;
    this.consumer = await this.deps.log.consume({
      topic: this.deps.topic,
      groupId: this.deps.config.groupId,
      // Every accepted event must reach the rollups, so a new group reads the log from its start.
      fromBeginning: true,
      handlers: {
        onAssigned: (partition, committed) => this.onAssigned(partition, committed),
        onRevoked: (partition) => this.onRevoked(partition),
        onBatch: (batch) => this.onBatch(batch),
      },
    });
  }

  /** Flushes and commits every partition, then leaves the group. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const run of this.runs.values()) run.state = 'revoking';
      await this.consumer?.stop();
    })();
    return this.stopping;
  }

  /**
   * Test-only: leave the group as a crashed process would, without a final flush or commit.
   * Writes already under way stop at their next step; nothing more is committed.
   */
  async crash(): Promise<void> {
    this.crashing = true;
    for (const run of this.runs.values()) run.state = 'dropped';
    this.stopping ??= this.consumer?.stop() ?? Promise.resolve();
    await this.stopping;
  }

  /** Flush and checkpoint every owned partition now; resolves once its rows, appends, checkpoint and commit are written. */
  async flushNow(): Promise<void> {
    const runs = [...this.runs.values()];
    for (const run of runs) run.flushes.next({ checkpoint: true });
    await Promise.all(runs.map((r) => r.queue));
  }

  /** The next offset to take, per owned partition: tests compare it with the log's end. */
  positions(): ReadonlyMap<number, number> {
    return new Map([...this.runs].map(([p, r]) => [p, r.nextOffset]));
  }

  private async onAssigned(partition: number, committed: CommittedOffset | null): Promise<void> {
    const { config } = this.deps;
    let restored: CommitMetadata = { watermarkMs: null, highOffset: -1, checkpoint: null };
    let sessions: VisitorState[] = [];
    if (committed) {
      const parsed = parseCommitMetadata(committed.metadata);
      if (parsed) {
        restored = parsed;
        sessions = await this.loadSessions(partition, parsed.checkpoint);
      } else {
        // Not committed by this code: the best known watermark keeps at least the buckets that
        // are final everywhere closed; the exact replay boundary is unknown, so none is skipped.
        const storeWatermark = await this.deps.store.watermark();
        restored = { watermarkMs: storeWatermark === null ? null : storeWatermark + config.allowedLatenessMs, highOffset: -1, checkpoint: null };
        this.checkpointFallbacks.inc({ reason: 'not_recorded' });
        this.logger.warn({ partition, metadata: committed.metadata }, 'commit metadata unreadable; restoring the store watermark, without visit state');
      }
    }
    const storedFinalMs = await this.storedWatermark(partition);
    const nextOffset = committed?.offset ?? 0;
    // Only a non-empty range is a replay: the windows hold idle advance back until it is done.
    const replayThroughOffset = nextOffset <= restored.highOffset ? restored.highOffset : -1;
    const run: PartitionRun = {
      partition,
      inputs: new Subject(),
      flushes: new Subject(),
      nextOffset,
      replayThroughOffset,
      late: [],
      deadLetters: [],
      queue: Promise.resolve(),
      queued: 0,
      failed: false,
      state: 'active',
      watermarkMs: restored.watermarkMs ?? Number.NEGATIVE_INFINITY,
      openBuckets: 0,
      finalMs: Number.NEGATIVE_INFINITY,
      watermarkWritten: false,
      flushHeld: false,
      takenSinceFlush: 0,
      roller: new TierRoller(this.deps.store, config.maxBreakdownKeys, {
        retentionMs: this.deps.retention ?? null, now: this.now, coarseIntervalMs: config.coarseRollIntervalMs,
      }),
    };
    run.subscription = run.inputs.pipe(minuteWindows<AggregatorInput>({
      ...config,
      initialWatermarkMs: run.watermarkMs,
      replayThroughOffset,
      initialSessions: sessions,
      lastActiveMs: () => (this.hasTakenAll(run) ? Number.NEGATIVE_INFINITY : this.now()),
      // A predecessor that crashed may have made buckets final in the store (its watermark past
      // them, written after its last commit) that this run, replaying from that commit, has yet
      // to close: until it does, it may hold only part of their events, and writing their rows
      // would restate final numbers lower (and the coarse rows rolled from them). The windows
      // keep them changed and emit their rows when they close.
      withholdOpenThroughMs: storedFinalMs,
      logic: this.deps.logic ?? IDENTITY_LOGIC,
      scheduler: this.scheduler,
      now: this.now,
      flush$: run.flushes,
      // A timer flush waits until the previous one is written: when the store is slow, flushes
      // grow instead of queueing, and taking records never waits on them (see onBatch). The
      // held flush is taken as soon as the writes drain (see enqueue), not a tick later.
      holdFlush: () => {
        if (run.queued === 0) return false;
        run.flushHeld = true;
        return true;
      },
    })).subscribe({
      next: (out) => {
        if (out.kind === 'late') run.late.push(this.laneRecord(run, out.input.record, 'late'));
        else this.enqueueFlush(run, out.flush);
      },
      error: (e: unknown) => {
        run.failed = true;
        this.logger.error({ err: e, partition }, 'window pipeline failed; the partition stops committing');
      },
    });
    if (config.coarseRollIntervalMs > 0) {
      // A flush rolls what is owed when due; a partition gone quiet has no flush until its next
      // checkpoint, so the owed coarse rows are rolled on their own, between flushes.
      run.coarseTimer = interval(config.coarseRollIntervalMs, this.scheduler).subscribe(() => {
        if (run.queued > 0 || run.roller.owing === 0 || run.state !== 'active' || run.failed) return;
        this.enqueue(run, 'tier roll', async () => {
          await this.rollAndAnnounce(run, false);
        });
      });
    }
    this.runs.set(partition, run);
    this.logger.info({ partition, committed: committed?.offset ?? null, restored, visitors: sessions.length }, 'partition assigned');
  }

  /**
   * The visit states a commit names, or none (see 7 at the top) when it names none, or the
   * checkpoint is missing or unreadable. A store error is retried a few times first: falling
   * back costs accuracy, so it is the last resort, but an assignment must not hang forever.
   */
  private async loadSessions(partition: number, id: string | null): Promise<VisitorState[]> {
    const fallBack = (reason: string, err?: unknown): VisitorState[] => {
      this.checkpointFallbacks.inc({ reason });
      this.logger.warn({ partition, checkpoint: id, reason, err }, 'visit state not restored; visits in progress at the commit will count again');
      return [];
    };
    if (id === null) return fallBack('not_recorded');
    const loaded = await this.loadOnAssignment(partition, 'checkpoint load', () => this.deps.store.loadCheckpoint(partition, id));
    if (!loaded.ok) return fallBack('load_failed', loaded.error);
    const data = loaded.value;
    if (data === null) return fallBack('missing');
    try {
      return decodeVisitStates(data);
    } catch (e) {
      return fallBack('unreadable', e);
    }
  }

  /**
   * The partition's store watermark as assignment finds it (-Infinity: none, or unreadable, and
   * then nothing is withheld: see withholdOpenThroughMs in onAssigned).
   */
  private async storedWatermark(partition: number): Promise<number> {
    const loaded = await this.loadOnAssignment(partition, 'watermark read', () => this.deps.store.partitionWatermark(partition));
    if (!loaded.ok) {
      this.logger.warn({ err: loaded.error, partition }, 'partition watermark unreadable; rows the store already calls final may be restated partial until taken again');
      return Number.NEGATIVE_INFINITY;
    }
    return loaded.value ?? Number.NEGATIVE_INFINITY;
  }

  /** A read on assignment, retried a few times: it must not hang an assignment forever. */
  private async loadOnAssignment<T>(partition: number, what: string, load: () => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
    for (let attempt = 1; ; attempt++) {
      try {
        return { ok: true, value: await load() };
      } catch (e) {
        if (attempt >= LOAD_ATTEMPTS) return { ok: false, error: e };
        const delayMs = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (attempt - 1));
        this.logger.warn({ err: e, partition, attempt, delayMs }, `${what} failed; retrying`);
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
  }

  private async onRevoked(partition: number): Promise<void> {
    const run = this.runs.get(partition);
    if (!run) return;
    if (this.crashing) {
      run.state = 'dropped';
    } else {
      if (run.state === 'active') run.state = 'revoking';
      // Completing the input makes the windows emit a last flush of whatever changed.
      run.inputs.complete();
    }
    await run.queue;
    run.subscription?.unsubscribe();
    run.coarseTimer?.unsubscribe();
    this.runs.delete(partition);
    this.logger.info({ partition, flushed: !this.crashing && !run.failed }, 'partition revoked');
  }

  private async onBatch(batch: PartitionBatch): Promise<void> {
    const run = this.runs.get(batch.partition);
    if (!run) throw new Error(`batch for partition ${batch.partition}, which is not assigned`);
    // Rejecting makes the log redeliver, so a broken partition neither advances nor commits.
    if (run.failed) throw new Error(`partition ${batch.partition} failed; not consuming`);
    for (const record of batch.records) {
      if (record.offset < run.nextOffset) continue;
      run.nextOffset = record.offset + 1;
      const decoded = decodeEvent(record.value);
      if (decoded.ok) {
        run.inputs.next({ offset: record.offset, event: decoded.event, record });
        continue;
      }
      if (record.offset <= run.replayThroughOffset) {
        this.eventsTotal.inc({ outcome: 'replay_skipped' });
      } else {
        run.deadLetters.push(this.laneRecord(run, record, decoded.reason));
        this.eventsTotal.inc({ outcome: 'dead_letter' });
        this.logger.warn({ partition: run.partition, offset: record.offset, reason: decoded.reason }, 'record dead-lettered');
      }
      run.inputs.next({ offset: record.offset, event: null, record });
    }
    // Bounded memory: owed appends and queued flushes hold records, so the partition waits for them.
    if (run.late.length + run.deadLetters.length >= MAX_PENDING_APPENDS) run.flushes.next({ checkpoint: false });
    run.takenSinceFlush += batch.records.length;
    if (run.queued > 1 || run.late.length + run.deadLetters.length >= MAX_PENDING_APPENDS
      || (run.queued > 0 && run.takenSinceFlush >= (this.deps.maxUnflushedRecords ?? MAX_UNFLUSHED_RECORDS))) {
      await run.queue;
    }
  }

  /**
   * Whether the partition has taken every record the events topic held at a reading asked for
   * within the last idleAdvanceMs (see logReading); asks for a new reading when one is due.
   */
  private hasTakenAll(run: PartitionRun): boolean {
    const now = this.now();
    const { idleAdvanceMs } = this.deps.config;
    const reading = this.logReading;
    const readEveryMs = Math.max(MIN_LOG_READ_INTERVAL_MS, Math.min(idleAdvanceMs / 4, MAX_LOG_READ_INTERVAL_MS));
    if (!reading || now - reading.atMs >= readEveryMs) this.readLog(now);
    if (!reading || now - reading.atMs > idleAdvanceMs) return false;
    const range = reading.ranges[run.partition];
    if (!range) return false;
    // An empty partition (retention removed every record) has nothing to wait for, wherever
    // this member's position is.
    return run.nextOffset >= range.end || range.start >= range.end;
  }

  private readLog(atMs: number): void {
    if (this.readingLog || this.stopping) return;
    this.readingLog = true;
    this.deps.positions.offsetRanges(this.deps.topic).then((ranges) => {
      if (!this.logReading || atMs > this.logReading.atMs) this.logReading = { atMs, ranges };
      if (this.logReadFailing) this.logger.info('reading the events topic\'s offsets works again; quiet partitions advance by the clock');
      this.logReadFailing = false;
    }, (e: unknown) => {
      // A reading cut short by stop() says nothing about the log.
      if (!this.logReadFailing && !this.stopping) {
        this.logger.warn({ err: e, topic: this.deps.topic }, 'reading the events topic\'s offsets failed; quiet partitions keep their buckets open until it works');
      }
      this.logReadFailing = true;
    }).finally(() => {
      this.readingLog = false;
    });
  }

  /** The record as appended to the late lane or dead-letter topic: unchanged, with where it came from and why. */
  private laneRecord(run: PartitionRun, record: ConsumedRecord, reason: string): LogRecord {
    return {
      key: record.key,
      value: record.value,
      timestampMs: record.timestampMs,
      headers: {
        ...record.headers,
        reason,
        'source-topic': this.deps.topic,
        'source-partition': String(run.partition),
        'source-offset': String(record.offset),
      },
    };
  }

  private enqueueFlush(run: PartitionRun, flush: WindowFlush): void {
    const late = run.late;
    const deadLetters = run.deadLetters;
    run.late = [];
    run.deadLetters = [];
    run.watermarkMs = flush.watermarkMs;
    run.openBuckets = flush.openBuckets;
    run.takenSinceFlush = 0;
    for (const [outcome, n] of Object.entries(flush.outcomes) as Array<[WindowOutcome, number]>) {
      if (n === 0) continue;
      if (outcome === 'bot') this.botEventsTotal.inc(n);
      else this.eventsTotal.inc({ outcome }, n);
    }
    this.enqueue(run, 'flush', () => this.writeFlush(run, flush, late, deadLetters));
  }

  /** Queues a write after the partition's earlier ones; one given up on fails the partition. */
  private enqueue(run: PartitionRun, what: string, write: () => Promise<void>): void {
    run.queued++;
    run.queue = run.queue.then(async () => {
      try {
        if (!run.failed) await write();
      } catch (e) {
        run.failed = true;
        if (!(e instanceof Abandoned)) this.logger.error({ err: e, partition: run.partition }, `${what} given up; the successor replays from the last commit`);
      } finally {
        run.queued--;
      }
      if (run.queued === 0 && run.flushHeld) {
        run.flushHeld = false;
        // As the tick it stands for: a checkpoint when one is due, or a store slower than the
        // flush interval (every tick held) would never see one, and nothing would be committed.
        if (run.state === 'active' && !run.failed) run.flushes.next({ checkpoint: 'due' });
      }
    });
  }

  /**
   * The partition's store watermark: final as of the last flush, but never past a bucket whose
   * hours and days are still owed (the store's tiers are final only once those are rolled).
   * Stores keep the highest value written, so a lower one changes nothing.
   */
  private async writeWatermark(run: PartitionRun): Promise<void> {
    const finalMs = Math.min(run.finalMs, run.roller.oldestOwedMs);
    if (!Number.isFinite(finalMs)) return;
    await this.attempt(run, 'watermark', () => this.deps.store.setWatermark(run.partition, finalMs));
    run.watermarkWritten = true;
  }

  /**
   * Rolls the coarser tiers owed when due or forced, then writes the watermark that allows, and
   * then announces the buckets whose coarser rows it rolled: a dashboard re-reading on the
   * notice sees them final where they now are.
   */
  private async rollAndAnnounce(run: PartitionRun, force: boolean): Promise<void> {
    let rolled: ReadonlyMap<string, number[]> = new Map();
    await this.attempt(run, 'tier roll', async () => {
      rolled = await run.roller.roll(force);
    });
    await this.writeWatermark(run);
    await this.announce(rolled);
  }

  /** Publishes one LiveBus notice per site. */
  private async announce(bySite: ReadonlyMap<string, readonly number[]>): Promise<void> {
    // Best effort by the LiveBus contract: a missed notice only delays a dashboard's re-read.
    await Promise.all([...bySite].map(([site, buckets]) => this.deps.bus.publish({ site, buckets }).catch((e: unknown) => {
      this.logger.warn({ err: e, site }, 'live notice not published');
    })));
  }

  private async writeFlush(run: PartitionRun, flush: WindowFlush, late: LogRecord[], deadLetters: LogRecord[]): Promise<void> {
    const { log, store, config } = this.deps;
    const done = this.flushSeconds.startTimer();
    if (deadLetters.length > 0) await this.attempt(run, 'dead-letter append', () => log.append(this.deps.deadLetterTopic, deadLetters));
    if (late.length > 0) await this.attempt(run, 'late append', () => log.append(this.deps.lateTopic, late));
    if (Number.isFinite(flush.watermarkMs)) {
      // The store's watermark means "buckets ending at or before it are final", which lags ours by the lateness.
      run.finalMs = flush.watermarkMs - config.allowedLatenessMs;
    }
    const { rows } = flush;
    if (rows.length > 0) {
      run.roller.owe(rows);
      // The store's watermark is the lowest the partitions wrote; one that never wrote does not
      // hold it back. So before its first rows are visible, a partition writes one, capped at
      // its oldest owed bucket: queries must not take coarse rows not rolled yet for final. Later
      // flushes need none first: a bucket accepted now ends after every watermark this run wrote
      // before, and the windows withhold the rows of those a predecessor made final (onAssigned).
      if (!run.watermarkWritten) await this.writeWatermark(run);
      await this.attempt(run, 'rollup upsert', () => store.upsert(rows));
      // Announced before any coarser tier is rolled: until the watermark calls them final, these
      // buckets are read from minute rows (see the top), so the notice need not wait for a roll.
      const bySite = new Map<string, number[]>();
      for (const r of rows) {
        const buckets = bySite.get(r.site);
        if (buckets) buckets.push(r.bucketMs);
        else bySite.set(r.site, [r.bucketMs]);
      }
      await this.announce(bySite);
    }
    // Coarser tiers when due (at most coarseRollIntervalMs apart), and always before a commit.
    await this.rollAndAnnounce(run, flush.checkpoint !== null);
    // Only a checkpoint flush commits, so the committed offset always names saved visit state (see 2).
    if (flush.checkpoint !== null && flush.commitOffset !== null && flush.lastOffset !== null) {
      const data = encodeVisitStates(flush.checkpoint);
      // A fresh id per save: the checkpoint the current commit names is never overwritten (see 4).
      const id = `${flush.commitOffset}-${randomUUID()}`;
      await this.attempt(run, 'checkpoint save', () => store.saveCheckpoint(run.partition, id, data));
      this.checkpointBytes.observe(data.length);
      const metadata: CommitMetadata = {
        watermarkMs: Number.isFinite(flush.watermarkMs) ? flush.watermarkMs : null,
        // Mid-replay, the replay boundary is carried forward (see 6 at the top).
        highOffset: Math.max(flush.lastOffset, run.replayThroughOffset),
        checkpoint: id,
      };
      const committed: CommittedOffset = { offset: flush.commitOffset, metadata: JSON.stringify(metadata) };
      await this.attempt(run, 'commit', () => this.consumer!.commit(run.partition, committed));
    }
    done();
  }

  /** One retry policy for flush writes: back off and retry while the partition is ours; bounded once it is being revoked. */
  private async attempt(run: PartitionRun, what: string, write: () => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (run.state === 'dropped') throw new Abandoned(what);
      try {
        await write();
        return;
      } catch (e) {
        if (run.state === 'revoking' && attempt >= REVOKE_ATTEMPTS) throw e;
        const delayMs = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (attempt - 1));
        this.logger.warn({ err: e, partition: run.partition, attempt, delayMs }, `${what} failed; retrying`);
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
  }
}
