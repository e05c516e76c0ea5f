/**
 * Reprocess and rollback runs (DESIGN invariant 6): recompute a site's final UTC days from the
 * raw archive with the current ProcessingLogic into a new rollup version beside the old rows,
 * switch each day over atomically, and record every switch for audit and rollback.
 *
 * A reprocess run, step by step:
 *  1. takes the site's lease (one run per site at a time, renewed while the run lives; a crashed
 *     holder's lease expires after leaseTtlMs);
 *  2. finds its run in the journal — the one named by `resume`, or the latest unfinished run of
 *     the same kind and range (the same command resumes it), unless it was computed with another
 *     logic version (then it is superseded) — or starts a new one, whose rollup version is one
 *     above every version the site has used;
 *  3. checks that every day is final (day end at or before the store watermark: the live
 *     aggregator writes those days no more), that the raw archive still holds them (raw
 *     retention; an embedded archive that evicted events is refused), and waits for the archive
 *     tap to have archived the event log up to now (archive-completeness.ts);
 *  4. for each day not yet switched, in order: recomputes its rows (day-recompute.ts: the
 *     live pipeline's own windows and tier roller), writes them under the version key
 *     (version-key.ts) — first turning into empty rows any row an earlier, interrupted attempt
 *     left there that this computation does not have —, journals the day `written`, switches it
 *     by compare-and-set from whatever version is active to the run's (VersionDirectory, with
 *     its audit entry), journals it `switched`, and tells live subscribers (a LiveBus notice
 *     naming the day, through the cache-invalidating bus; published again after the read
 *     side's directory cache time, for other processes' caches).
 *
 * Why nothing is lost or counted twice at the boundary between live and reprocessed days: the
 * switch chunk is a whole UTC day and every bucket of every tier lies in one day, so a range
 * read takes each bucket from exactly one version (versioned-rollup-store.ts); and only final
 * days are switched, whose live rows no longer change, while ingest goes on into later days.
 *
 * Why a resumed run never switches a day twice: a day is switched by compare-and-set from the
 * version the runner saw active; a day found already active at the run's own version (a crash
 * after the switch, before the journal said so) is only journalled, and its audit entry written
 * again under the same key (one entry). The lease keeps two runners of a site apart; the
 * compare-and-set keeps the directory right even if a lease was lost unnoticed.
 *
 * A rollback run switches each day back to the version that was active before the current one
 * was made by a reprocess (the latest audit entry of a reprocess to the current version), so
 * repeated rollbacks walk back through the reprocesses; a day served live is skipped. Rows are
 * never deleted: every version stays for audit, expiring with its tiers' retention.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { ProcessingLogic } from '../aggregate/minute-windows.js';
import type { RawArchive } from '../aggregate/raw-archive.js';
import { emptyRollup } from '../aggregate/rollup-merge.js';
import { TIERS, type Rollup } from '../aggregate/rollup.js';
import type { RollupStore } from '../aggregate/rollup-store.js';
import { silentLogger, type Logger } from '../log.js';
import type { LiveBus } from '../query/live-bus.js';
import type { ArchiveCompleteness } from './archive-completeness.js';
import { DayRecompute } from './day-recompute.js';
import { opsError, isOpsError } from './ops-errors.js';
import type { DayRecord, DayState, ReprocessJournal, RunKind, RunRecord } from './reprocess-journal.js';
import { auditEntryOf, type DayVersion, type VersionDirectory } from './version-directory.js';
import { DAY_MS, LIVE_VERSION, dayLabel, dayStartMs, daysOfRange, versionSiteKey } from './version-key.js';
import type { VersionedRollupStore } from './versioned-rollup-store.js';

export interface ReprocessRunnerDeps {
  /** The base store: live rows under the site key, versions under version keys. */
  readonly store: RollupStore;
  readonly archive: RawArchive;
  readonly directory: VersionDirectory;
  readonly journal: ReprocessJournal;
  /** Where switch notices go: the cache-invalidating bus, so cached responses of the days go too. */
  readonly bus: LiveBus;
  /** The read side of this process, whose directory cache a switch invalidates at once. */
  readonly readStore?: VersionedRollupStore;
  /** The current logic: what a reprocess computes with. */
  readonly logic: ProcessingLogic;
  readonly sessionTimeoutMs: number;
  readonly maxBreakdownKeys: number;
  readonly completeness: ArchiveCompleteness;
  /** How long the raw archive keeps events; days older than that cannot be recomputed. null: forever. */
  readonly rawRetentionMs: number | null;
  /** False when the archive is known to have dropped events (the embedded archive's cap). */
  readonly archiveIntact?: () => boolean;
  readonly lookbackMs?: number;
  /** Lease lifetime; renewed at a third of it. Default 30 s. */
  readonly leaseTtlMs?: number;
  /** Rows per upsert call. Default 500. */
  readonly writeBatchRows?: number;
  /** When to publish a switch notice again, for other processes' directory caches; 0: never. Default 1.5 s. */
  readonly noticeRepeatMs?: number;
  /** Longest range a run takes, in days. Default 3660. */
  readonly maxDays?: number;
  readonly now?: () => number;
  readonly logger?: Logger;
}

export interface RunRequest {
  readonly site: string;
  /** UTC midnight. */
  readonly fromMs: number;
  /** UTC midnight, after fromMs. */
  readonly toMs: number;
  readonly rollback?: boolean;
  /** Resume this run (its site and kind must match). */
  readonly resume?: string;
  /** Leave days that are not final yet out (import does), instead of refusing the run. */
  readonly skipNotFinal?: boolean;
  /** Who asked (the key's id or label): kept in the journal and the audit trail. */
  readonly actor: string;
}

export type RunPhase = 'starting' | 'waiting-for-archive' | 'recomputing' | 'writing' | 'switching' | 'done';

export interface RunProgress {
  readonly runId: string;
  readonly kind: RunKind;
  readonly site: string;
  readonly phase: RunPhase;
  /** The day being worked on, YYYY-MM-DD. */
  readonly day: string | null;
  readonly daysDone: number;
  readonly daysTotal: number;
  readonly eventsRead: number;
  readonly rowsWritten: number;
  readonly elapsedMs: number;
  /** Estimated time left, from the pace of the days done in this attempt; null before one is done. */
  readonly etaMs: number | null;
  /** Records the archive tap still has to archive (phase waiting-for-archive). */
  readonly archiveBehind?: number;
}

export interface RunDaySummary {
  readonly day: string;
  readonly state: DayState;
  readonly fromVersion: number;
  readonly toVersion: number;
  readonly events: number;
  readonly rows: number;
  /** Why a day was skipped. */
  readonly note?: string;
}

export interface RunSummary {
  readonly runId: string;
  readonly kind: RunKind;
  readonly site: string;
  readonly from: number;
  readonly to: number;
  readonly rollupVersion: number;
  readonly logicVersion: number;
  /** The run continued one journalled before. */
  readonly resumed: boolean;
  readonly days: RunDaySummary[];
  readonly eventsRead: number;
  readonly rowsWritten: number;
  readonly elapsedMs: number;
}

const PROCESS_OWNER = `${hostname()}:${process.pid}`;

export class ReprocessRunner {
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly leaseTtlMs: number;
  private readonly writeBatchRows: number;
  private readonly noticeRepeatMs: number;
  private readonly maxDays: number;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly deps: ReprocessRunnerDeps) {
    this.logger = deps.logger ?? silentLogger();
    this.now = deps.now ?? Date.now;
    this.leaseTtlMs = deps.leaseTtlMs ?? 30_000;
    this.writeBatchRows = deps.writeBatchRows ?? 500;
    this.noticeRepeatMs = deps.noticeRepeatMs ?? 1_500;
    this.maxDays = deps.maxDays ?? 3660;
  }

  /** Stops the delayed repeat notices (the runs themselves end with their callers' signals). */
  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  /**
   * Runs (or resumes) one reprocess or rollback. `onProgress` is called at each step (often;
   * conflate it). Rejects with an OpsError for expected refusals; an aborted `signal` stops the
   * run at its next step with OPS_INTERRUPTED, leaving it resumable.
   */
  async run(req: RunRequest, onProgress: (p: RunProgress) => void = () => {}, signal?: AbortSignal): Promise<RunSummary> {
    let days: number[];
    try {
      days = daysOfRange(req.fromMs, req.toMs);
    } catch (e) {
      throw opsError('invalid', (e as Error).message);
    }
    if (days.length > this.maxDays) throw opsError('invalid', `a run covers at most ${this.maxDays} days, not ${days.length}`);
    const kind: RunKind = req.rollback ? 'rollback' : 'reprocess';
    const { journal } = this.deps;
    const leaseName = `reprocess:${req.site}`;
    const owner = `${PROCESS_OWNER}:${randomUUID()}`;
    const lease = await journal.acquireLease(leaseName, owner, this.leaseTtlMs);
    if (!lease.acquired) throw opsError('busy', `another run of site ${req.site} is in progress (lease held by ${lease.holder}); retry when it ends, or after ${Math.ceil(this.leaseTtlMs / 1000)} s if its process died`);
    let lost = false;
    const renewal = setInterval(() => {
      journal.renewLease(leaseName, owner, this.leaseTtlMs).then((ok) => {
        if (!ok) lost = true;
      }, (e: unknown) => this.logger.warn({ err: e, site: req.site }, 'lease renewal failed; retrying'));
    }, Math.max(100, Math.floor(this.leaseTtlMs / 3)));
    renewal.unref();
    const check = () => {
      if (signal?.aborted) throw opsError('interrupted', 'the run was cancelled; the same command resumes it');
      if (lost) throw opsError('interrupted', 'the run lost its lease (a store outage?); the same command resumes it');
    };
    let run: RunRecord | null = null;
    try {
      const found = await this.findRun(req, kind);
      run = found.run;
      const r = run;
      const summary = kind === 'reprocess'
        ? await this.reprocess(r, found.resumed, days, req, onProgress, check)
        : await this.rollback(r, found.resumed, days, onProgress, check);
      await journal.updateRun(r.site, r.runId, { state: 'done', message: '', updatedAtMs: this.now() });
      return summary;
    } catch (e) {
      if (run) {
        const message = e instanceof Error ? e.message : String(e);
        await journal.updateRun(run.site, run.runId, { state: 'interrupted', message, updatedAtMs: this.now() })
          .catch((err: unknown) => this.logger.warn({ err, runId: run?.runId }, 'could not journal the interruption'));
      }
      if (!isOpsError(e)) this.logger.error({ err: e, site: req.site, runId: run?.runId }, 'reprocess run failed');
      throw e;
    } finally {
      clearInterval(renewal);
      await journal.releaseLease(leaseName, owner).catch((e: unknown) => this.logger.warn({ err: e }, 'lease not released; it expires by itself'));
    }
  }

  private async findRun(req: RunRequest, kind: RunKind): Promise<{ run: RunRecord; resumed: boolean }> {
    const { journal, directory, logic } = this.deps;
    const runs = await journal.runs(req.site);
    if (req.resume !== undefined) {
      const r = runs.find((x) => x.runId === req.resume);
      if (!r) throw opsError('notFound', `site ${req.site} has no run ${req.resume}`);
      if (r.kind !== kind || r.fromMs !== req.fromMs || r.toMs !== req.toMs) {
        throw opsError('invalid', `run ${r.runId} is a ${r.kind} of [${r.fromMs}, ${r.toMs}); resume it with the same range and kind`);
      }
      if (r.state === 'done') throw opsError('invalid', `run ${r.runId} is done; nothing to resume`);
      if (r.state === 'superseded') throw opsError('invalid', `run ${r.runId} was superseded by a newer run of the same range`);
      if (kind === 'reprocess' && r.logicVersion !== logic.version) {
        throw opsError('invalid', `run ${r.runId} computes with logic v${r.logicVersion}, this server runs v${logic.version}: start a new run (without --resume)`);
      }
      return { run: r, resumed: true };
    }
    const unfinished = runs.filter((x) => x.kind === kind && x.fromMs === req.fromMs && x.toMs === req.toMs && (x.state === 'running' || x.state === 'interrupted')).at(-1);
    const nowMs = this.now();
    if (unfinished) {
      if (kind === 'rollback' || unfinished.logicVersion === logic.version) return { run: unfinished, resumed: true };
      await journal.updateRun(req.site, unfinished.runId, { state: 'superseded', message: `superseded by a run with logic v${logic.version}`, updatedAtMs: nowMs });
    }
    let rollupVersion = LIVE_VERSION;
    if (kind === 'reprocess') {
      const used = [...runs.map((x) => x.rollupVersion), ...(await directory.active(req.site)).flatMap((d) => [d.version, d.previousVersion])];
      rollupVersion = Math.max(LIVE_VERSION, ...used) + 1;
    }
    const run: RunRecord = {
      site: req.site, runId: `${kind === 'reprocess' ? 'rp' : 'rb'}-${randomUUID().slice(0, 13)}`, kind, fromMs: req.fromMs, toMs: req.toMs,
      rollupVersion, logicVersion: logic.version, actor: req.actor, createdAtMs: nowMs, state: 'running', updatedAtMs: nowMs, message: '',
    };
    await journal.createRun(run);
    return { run, resumed: false };
  }

  private async reprocess(
    run: RunRecord, resumed: boolean, days: number[], req: RunRequest, onProgress: (p: RunProgress) => void, check: () => void,
  ): Promise<RunSummary> {
    const { store, journal, archive, logic } = this.deps;
    const startedMs = this.now();
    const recorded = new Map((await journal.days(run.site, run.runId)).map((d) => [d.day, d]));
    const progress = new ProgressTracker(run, days.length, startedMs, this.now, onProgress);
    progress.daysDone = days.filter((d) => recorded.get(d)?.state === 'switched' || recorded.get(d)?.state === 'skipped').length;
    progress.emit('starting', null);

    // Finality: the live aggregator writes no more rows for these days.
    const watermarkMs = await store.watermark();
    const notFinal = days.filter((d) => watermarkMs === null || dayStartMs(d) + DAY_MS > watermarkMs);
    if (notFinal.length > 0 && !req.skipNotFinal) {
      throw opsError('notFinal', `${dayLabel(notFinal[0]!)} is not final yet: the store watermark is ${watermarkMs === null ? 'not set' : new Date(watermarkMs).toISOString()}; a day can be reprocessed once the watermark passes its end (plus the allowed lateness)`);
    }
    const skipped = new Set(notFinal);
    // The archive must still hold every event of the days.
    if (this.deps.archiveIntact && !this.deps.archiveIntact()) {
      throw opsError('archiveIncomplete', 'the embedded raw archive has evicted events (its memory cap): it no longer holds every event, so a recomputation could lose some; run the distributed mode for reprocessing');
    }
    if (this.deps.rawRetentionMs !== null) {
      const horizonMs = this.now() - this.deps.rawRetentionMs;
      const expired = days.filter((d) => !skipped.has(d) && dayStartMs(d) < horizonMs);
      if (expired.length > 0) throw opsError('archiveIncomplete', `${dayLabel(expired[0]!)} is older than the raw archive's retention: its events are gone, a recomputation would empty it`);
    }
    check();
    await this.deps.completeness.awaitArchived((behind) => progress.emit('waiting-for-archive', null, { archiveBehind: behind }));
    check();

    let directory = new Map((await this.deps.directory.active(run.site)).map((d) => [d.day, d]));
    const recompute = new DayRecompute(archive, run.site, {
      sessionTimeoutMs: this.deps.sessionTimeoutMs, maxBreakdownKeys: this.deps.maxBreakdownKeys, logic,
      ...(this.deps.lookbackMs !== undefined ? { lookbackMs: this.deps.lookbackMs } : {}),
    });
    const summaries: RunDaySummary[] = [];
    for (const day of days) {
      const prior = recorded.get(day);
      if (skipped.has(day)) {
        const rec = dayRecord(day, 'skipped', LIVE_VERSION, run.rollupVersion, 0, 0, this.now());
        await journal.putDay(run.site, run.runId, rec);
        summaries.push({ ...summaryOf(rec), note: 'not final yet' });
        continue;
      }
      if (prior?.state === 'switched') {
        summaries.push(summaryOf(prior));
        continue;
      }
      check();
      const current = directory.get(day);
      if (current && current.version === run.rollupVersion) {
        // Switched by this run before a crash that lost the journal entry: journal it, never switch again.
        await this.deps.directory.recordAudit(auditEntryOf(current));
        const rec = dayRecord(day, 'switched', current.previousVersion, run.rollupVersion, prior?.events ?? 0, prior?.rows ?? 0, this.now());
        await journal.putDay(run.site, run.runId, rec);
        summaries.push(summaryOf(rec));
        progress.dayDone();
        continue;
      }
      const fromVersion = current?.version ?? LIVE_VERSION;
      progress.emit('recomputing', day);
      const computed = await recompute.next(day, (n) => progress.emit('recomputing', day, { extraEvents: n }));
      progress.eventsRead += computed.events;
      check();
      progress.emit('writing', day);
      const rows = await this.writeDay(run.site, run.rollupVersion, day, computed.rows, check);
      progress.rowsWritten += rows;
      await journal.putDay(run.site, run.runId, dayRecord(day, 'written', fromVersion, run.rollupVersion, computed.events, rows, this.now()));
      check();
      progress.emit('switching', day);
      const outcome = await this.deps.directory.switchDay({
        site: run.site, day, fromVersion, toVersion: run.rollupVersion, logicVersion: run.logicVersion,
        runId: run.runId, action: 'reprocess', actor: req.actor, atMs: this.now(),
      });
      if (!outcome.applied) {
        throw opsError('interrupted', `${dayLabel(day)} changed under the run (now version ${outcome.current?.version ?? LIVE_VERSION} by run ${outcome.current?.runId ?? '-'}); nothing switched; run again`);
      }
      directory = new Map((await this.deps.directory.active(run.site)).map((d) => [d.day, d]));
      const rec = dayRecord(day, 'switched', fromVersion, run.rollupVersion, computed.events, rows, this.now());
      await journal.putDay(run.site, run.runId, rec);
      summaries.push(summaryOf(rec));
      await this.clearLateMarks(run.site, day);
      await this.announce(run.site, [day]);
      progress.dayDone();
    }
    progress.emit('done', null);
    return {
      runId: run.runId, kind: run.kind, site: run.site, from: run.fromMs, to: run.toMs, rollupVersion: run.rollupVersion,
      logicVersion: run.logicVersion, resumed, days: summaries, eventsRead: progress.eventsRead, rowsWritten: progress.rowsWritten,
      elapsedMs: this.now() - startedMs,
    };
  }

  private async rollback(run: RunRecord, resumed: boolean, days: number[], onProgress: (p: RunProgress) => void, check: () => void): Promise<RunSummary> {
    const { journal, directory } = this.deps;
    const startedMs = this.now();
    const recorded = new Map((await journal.days(run.site, run.runId)).map((d) => [d.day, d]));
    const progress = new ProgressTracker(run, days.length, startedMs, this.now, onProgress);
    progress.emit('starting', null);
    const active = new Map((await directory.active(run.site)).map((d) => [d.day, d]));
    const audit = await directory.audit(run.site, days[0]!, days.at(-1)! + 1);
    const summaries: RunDaySummary[] = [];
    for (const day of days) {
      const prior = recorded.get(day);
      if (prior?.state === 'switched' || prior?.state === 'skipped') {
        summaries.push(summaryOf(prior));
        continue;
      }
      check();
      const current: DayVersion | undefined = active.get(day);
      if (current && current.runId === run.runId) {
        await directory.recordAudit(auditEntryOf(current));
        const rec = dayRecord(day, 'switched', current.previousVersion, current.version, 0, 0, this.now());
        await journal.putDay(run.site, run.runId, rec);
        summaries.push(summaryOf(rec));
        progress.dayDone();
        continue;
      }
      if (!current || current.version === LIVE_VERSION) {
        const rec = dayRecord(day, 'skipped', LIVE_VERSION, LIVE_VERSION, 0, 0, this.now());
        await journal.putDay(run.site, run.runId, rec);
        summaries.push({ ...summaryOf(rec), note: 'served live: nothing to roll back' });
        progress.dayDone();
        continue;
      }
      const ofDay = audit.filter((e) => e.day === day);
      const made = ofDay.filter((e) => e.action === 'reprocess' && e.toVersion === current.version).at(-1);
      const target = made?.fromVersion ?? LIVE_VERSION;
      const targetLogic = target === LIVE_VERSION ? null : ofDay.filter((e) => e.action === 'reprocess' && e.toVersion === target).at(-1)?.logicVersion ?? null;
      progress.emit('switching', day);
      const outcome = await directory.switchDay({
        site: run.site, day, fromVersion: current.version, toVersion: target, logicVersion: targetLogic,
        runId: run.runId, action: 'rollback', actor: run.actor, atMs: this.now(),
      });
      if (!outcome.applied) throw opsError('interrupted', `${dayLabel(day)} changed under the rollback; run it again`);
      const rec = dayRecord(day, 'switched', current.version, target, 0, 0, this.now());
      await journal.putDay(run.site, run.runId, rec);
      summaries.push(summaryOf(rec));
      await this.announce(run.site, [day]);
      progress.dayDone();
    }
    progress.emit('done', null);
    return {
      runId: run.runId, kind: run.kind, site: run.site, from: run.fromMs, to: run.toMs, rollupVersion: LIVE_VERSION,
      logicVersion: run.logicVersion, resumed, days: summaries, eventsRead: 0, rowsWritten: 0, elapsedMs: this.now() - startedMs,
    };
  }

  /**
   * Writes a day's rows under the version key; rows an earlier attempt left there that this
   * computation does not have become empty rows, so the version holds exactly this computation.
   */
  private async writeDay(site: string, version: number, day: number, rows: readonly Rollup[], check: () => void): Promise<number> {
    const { store } = this.deps;
    const key = versionSiteKey(site, version);
    const fromMs = dayStartMs(day);
    const fresh = rows.map((r): Rollup => ({ ...r, site: key }));
    const have = new Set(fresh.map((r) => `${r.tier}\u0000${r.bucketMs}`));
    const stale: Rollup[] = [];
    for (const tier of TIERS) {
      for (const r of await store.read(key, tier, fromMs, fromMs + DAY_MS)) {
        if (!have.has(`${tier}\u0000${r.bucketMs}`)) stale.push(emptyRollup(key, tier, r.bucketMs));
      }
    }
    const all = [...stale, ...fresh];
    for (let i = 0; i < all.length; i += this.writeBatchRows) {
      check();
      await store.upsert(all.slice(i, i + this.writeBatchRows));
    }
    return fresh.length;
  }

  /**
   * The recomputed rollups of a switched day count the events the live pipeline judged late; an
   * archive that marks those (raw-archive.ts "Late marks", so that filtered queries count what
   * the active rollups count) is told to forget the day's marks. Archives without marks have
   * no `clearLate`. Best effort: a failure leaves filtered queries skipping late events of the
   * day until the next reprocess, and is logged.
   */
  private async clearLateMarks(site: string, day: number): Promise<void> {
    const archive = this.deps.archive as RawArchive & { clearLate?: (site: string, fromMs: number, toMs: number) => Promise<number> };
    if (typeof archive.clearLate !== 'function') return;
    try {
      await archive.clearLate(site, dayStartMs(day), dayStartMs(day) + DAY_MS);
    } catch (e) {
      this.logger.warn({ err: e, site, day: dayLabel(day) }, 'late marks of a reprocessed day not cleared');
    }
  }

  /** Tell live subscribers the days changed, now and once more after other processes' directory caches expired. */
  private async announce(site: string, days: readonly number[]): Promise<void> {
    this.deps.readStore?.invalidate(site);
    const publish = () => this.deps.bus.publish({ site, buckets: days.map(dayStartMs) }).catch((e: unknown) => {
      this.logger.warn({ err: e, site }, 'switch notice not published');
    });
    await publish();
    if (this.noticeRepeatMs > 0) {
      const t = setTimeout(() => {
        this.timers.delete(t);
        void publish();
      }, this.noticeRepeatMs);
      t.unref();
      this.timers.add(t);
    }
  }
}

function dayRecord(day: number, state: DayState, fromVersion: number, toVersion: number, events: number, rows: number, updatedAtMs: number): DayRecord {
  return { day, state, fromVersion, toVersion, events, rows, updatedAtMs };
}

function summaryOf(d: DayRecord): RunDaySummary {
  return { day: dayLabel(d.day), state: d.state, fromVersion: d.fromVersion, toVersion: d.toVersion, events: d.events, rows: d.rows };
}

/** Counts and the ETA of one attempt of a run. */
class ProgressTracker {
  daysDone = 0;
  eventsRead = 0;
  rowsWritten = 0;
  private doneThisAttempt = 0;
  private firstDayStartedMs: number | null = null;

  constructor(
    private readonly run: RunRecord, private readonly daysTotal: number, private readonly startedMs: number,
    private readonly now: () => number, private readonly sink: (p: RunProgress) => void,
  ) {}

  emit(phase: RunPhase, day: number | null, extra: { archiveBehind?: number; extraEvents?: number } = {}): void {
    if (phase === 'recomputing' && this.firstDayStartedMs === null) this.firstDayStartedMs = this.now();
    const nowMs = this.now();
    const left = this.daysTotal - this.daysDone;
    const paceMs = this.doneThisAttempt > 0 && this.firstDayStartedMs !== null ? (nowMs - this.firstDayStartedMs) / this.doneThisAttempt : null;
    this.sink({
      runId: this.run.runId, kind: this.run.kind, site: this.run.site, phase, day: day === null ? null : dayLabel(day),
      daysDone: this.daysDone, daysTotal: this.daysTotal, eventsRead: this.eventsRead + (extra.extraEvents ?? 0), rowsWritten: this.rowsWritten,
      elapsedMs: nowMs - this.startedMs, etaMs: phase === 'done' ? 0 : paceMs === null ? null : Math.round(paceMs * left),
      ...(extra.archiveBehind !== undefined ? { archiveBehind: extra.archiveBehind } : {}),
    });
  }

  dayDone(): void {
    this.daysDone++;
    this.doneThisAttempt++;
  }
}
