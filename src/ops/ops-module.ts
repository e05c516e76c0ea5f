/**
 * The ops module: reprocessing, rollback, runs and versions, replay and export, as route
 * handlers (gateway/route-handlers.ts) for the `ops.*` routes (protocol/ops-routes.ts), plus the
 * read side the query service must be built on (VersionedRollupStore), made from the seams the
 * composition root hands it. Nothing here knows which adapters run.
 *
 * Authorisation, decided here per route: site routes need an admin key that administers the
 * site (`caller.allows('admin', site)`: its organisation's admin keys and the deployment's);
 * a non-admin key gets FORBIDDEN, an admin key of another organisation SITE_FORBIDDEN. Replay
 * moves the whole aggregator group, every tenant's: only a deployment admin key.
 */
import type {
  ExportRequest, ReplayRequest, ReplayResponse, ReprocessRequest, RunsRequest, RunsResponse, VersionsRequest, VersionsResponse,
} from '../../protocol/ops-schema.js';
import type { ProcessingLogic } from '../aggregate/minute-windows.js';
import type { RawArchive } from '../aggregate/raw-archive.js';
import type { RollupStore } from '../aggregate/rollup-store.js';
import type { Config } from '../config.js';
import { SluiceError } from '../errors.js';
import type { Caller, RouteHandlers, StreamControl, StreamSink } from '../gateway/route-handlers.js';
import { silentLogger, type Logger } from '../log.js';
import type { LiveBus } from '../query/live-bus.js';
import { ARCHIVE_ALWAYS_COMPLETE, tapCompleteness } from './archive-completeness.js';
import { runExport } from './exporter.js';
import type { LogPositions } from './log-positions.js';
import { opsError } from './ops-errors.js';
import { replay, type ReplayLog } from './replay.js';
import type { DayRecord, ReprocessJournal } from './reprocess-journal.js';
import { ReprocessRunner } from './reprocess-runner.js';
import { StreamOutbox } from './stream-outbox.js';
import type { VersionDirectory } from './version-directory.js';
import { dayLabel } from './version-key.js';
import { VersionedRollupStore } from './versioned-rollup-store.js';

export interface OpsModuleDeps {
  /** The base rollup store (the one the aggregator writes). */
  readonly store: RollupStore;
  readonly archive: RawArchive;
  readonly directory: VersionDirectory;
  readonly journal: ReprocessJournal;
  /** The cache-invalidating LiveBus (query/invalidating-live-bus.ts): switch notices invalidate cached responses too. */
  readonly bus: LiveBus;
  /** The current processing logic: the aggregator's. */
  readonly logic: ProcessingLogic;
  readonly aggregate: Pick<Config['aggregate'], 'sessionTimeoutMs' | 'maxBreakdownKeys' | 'allowedLatenessMs' | 'groupId'>;
  readonly eventsTopic: string;
  /** The archive tap's consumer group (event-tap.ts): whose progress says the archive is complete. */
  readonly tapGroupId: string;
  /** Where the log ends and groups stand; null: no check (nothing feeds the archive through the log). */
  readonly positions: LogPositions | null;
  /** The Kafka event log (replay); null in embedded mode, where replay is refused. */
  readonly replayLog: ReplayLog | null;
  /** The raw archive's retention (cassandra.rawRetentionDays); null: forever. */
  readonly rawRetentionMs: number | null;
  /** Embedded: false once the memory archive evicted events (MemoryRawArchive.evictedTotal > 0). */
  readonly archiveIntact?: () => boolean;
  readonly options?: OpsOptions;
  readonly logger?: Logger;
  readonly now?: () => number;
}

export interface OpsOptions {
  /** Reprocess lease lifetime. Default 30 s. */
  readonly leaseTtlMs?: number;
  /** How long a run waits for the archive tap. Default 60 s. */
  readonly archiveWaitMs?: number;
  /** How long the read side reuses a site's directory. Default 1 s. */
  readonly directoryCacheMs?: number;
  /** Events folded before a stretch of days, for visits crossing midnight. Default a day. */
  readonly lookbackMs?: number;
  /** Rows per upsert call. Default 500. */
  readonly writeBatchRows?: number;
}

export interface OpsModule {
  readonly handlers: RouteHandlers;
  /** Give the query service this store instead of the base one: each day read from its active version. */
  readonly readStore: VersionedRollupStore;
  readonly runner: ReprocessRunner;
  /** Record the running aggregator's logic version in the live logic history; call where the aggregator runs, at start. */
  recordLiveLogic(): Promise<void>;
  /** The ops streams open now (runs, exports), and whether each was cancelled (it stops at its next step). */
  inFlight(): Array<{ readonly route: string; readonly cancelled: boolean }>;
  /** Cancels the runs under way (they stay resumable) and the delayed notices. */
  stop(): Promise<void>;
}

/**
 * Records that the live aggregator (group `scope`) runs `logic` from the store's watermark on:
 * the logic version of the live rows written from then (versioned-rollup-store.ts provenance).
 * Call it where an aggregator starts (a process with the aggregate role, with or without the
 * ops module); a version already the latest recorded is not recorded again.
 */
export async function recordLiveLogic(o: {
  readonly directory: VersionDirectory; readonly store: Pick<RollupStore, 'watermark'>; readonly scope: string;
  readonly logic: ProcessingLogic; readonly now?: () => number;
}): Promise<void> {
  const history = await o.directory.liveLogic(o.scope);
  if (history.at(-1)?.logicVersion === o.logic.version) return;
  const watermark = await o.store.watermark();
  await o.directory.recordLiveLogic(o.scope, { sinceMs: watermark ?? 0, logicVersion: o.logic.version, recordedAtMs: (o.now ?? Date.now)() });
}

export function createOpsModule(deps: OpsModuleDeps): OpsModule {
  const logger = deps.logger ?? silentLogger();
  const now = deps.now ?? Date.now;
  const o = deps.options ?? {};
  const directoryCacheMs = o.directoryCacheMs ?? 1_000;
  const readStore = new VersionedRollupStore(deps.store, deps.directory, {
    directoryCacheMs, liveLogicScope: deps.aggregate.groupId, liveLogicVersion: deps.logic.version, now,
  });
  const completeness = deps.positions === null ? ARCHIVE_ALWAYS_COMPLETE : tapCompleteness({
    positions: deps.positions, topic: deps.eventsTopic, tapGroupId: deps.tapGroupId, deadlineMs: o.archiveWaitMs ?? 60_000,
  });
  const runner = new ReprocessRunner({
    store: deps.store, archive: deps.archive, directory: deps.directory, journal: deps.journal, bus: deps.bus, readStore,
    logic: deps.logic, sessionTimeoutMs: deps.aggregate.sessionTimeoutMs, maxBreakdownKeys: deps.aggregate.maxBreakdownKeys,
    completeness, rawRetentionMs: deps.rawRetentionMs, now, logger: logger.child({ stage: 'reprocess' }),
    noticeRepeatMs: directoryCacheMs + 500,
    ...(deps.archiveIntact ? { archiveIntact: deps.archiveIntact } : {}),
    ...(o.leaseTtlMs !== undefined ? { leaseTtlMs: o.leaseTtlMs } : {}),
    ...(o.lookbackMs !== undefined ? { lookbackMs: o.lookbackMs } : {}),
    ...(o.writeBatchRows !== undefined ? { writeBatchRows: o.writeBatchRows } : {}),
  });
  const streams = new Map<StreamOutbox, { route: string; done: Promise<void> }>();

  const requireSite = async (caller: Caller, site: string) => {
    if (caller.principal.scope.kind !== 'admin') throw new SluiceError('FORBIDDEN', 'ops routes need an admin key');
    if (!(await caller.allows('admin', site))) throw new SluiceError('SITE_FORBIDDEN', `this key does not administer site "${site}"`);
  };

  /** A request-stream whose work starts after the caller is checked; errors end that stream only. */
  const stream = (route: string, sink: StreamSink, work: (out: StreamOutbox) => Promise<void>): StreamControl => {
    const out = new StreamOutbox(sink);
    const done = work(out).catch((e: unknown) => out.fail(e)).finally(() => streams.delete(out));
    streams.set(out, { route, done });
    return out;
  };

  const handlers: RouteHandlers = {
    requestStream: {
      'ops.reprocess': (body, caller, sink) => stream('ops.reprocess', sink, async (out) => {
        const req = body as ReprocessRequest;
        await requireSite(caller, req.site);
        const summary = await runner.run({
          site: req.site, fromMs: req.from, toMs: req.to, actor: caller.principal.keyId,
          ...(req.rollback !== undefined ? { rollback: req.rollback } : {}),
          ...(req.resume !== undefined ? { resume: req.resume } : {}),
          ...(req.skipNotFinal !== undefined ? { skipNotFinal: req.skipNotFinal } : {}),
        }, (p) => out.progress({ type: 'progress', ...p }), out.signal);
        out.finish({ type: 'done', ...summary });
      }),
      'ops.export': (body, caller, sink) => stream('ops.export', sink, async (out) => {
        const req = body as ExportRequest;
        await requireSite(caller, req.site);
        if (!(req.to > req.from)) throw opsError('invalid', `"to" (${req.to}) must be after "from" (${req.from})`);
        await runExport({ archive: deps.archive, store: readStore }, req, out);
      }),
    },
    requestResponse: {
      'ops.runs': async (body, caller): Promise<RunsResponse> => {
        const req = body as RunsRequest;
        await requireSite(caller, req.site);
        const runs = await deps.journal.runs(req.site);
        const info = runs.filter((r) => req.runId === undefined || r.runId === req.runId).map((r) => ({
          runId: r.runId, kind: r.kind, from: r.fromMs, to: r.toMs, rollupVersion: r.rollupVersion, logicVersion: r.logicVersion,
          actor: r.actor, createdAt: r.createdAtMs, state: r.state, updatedAt: r.updatedAtMs, message: r.message,
        }));
        if (req.runId === undefined) return { site: req.site, runs: info };
        if (info.length === 0) throw opsError('notFound', `site ${req.site} has no run ${req.runId}`);
        const days = (await deps.journal.days(req.site, req.runId)).map((d: DayRecord) => ({
          day: dayLabel(d.day), state: d.state, fromVersion: d.fromVersion, toVersion: d.toVersion, events: d.events, rows: d.rows,
        }));
        return { site: req.site, runs: info, days };
      },
      'ops.versions': async (body, caller): Promise<VersionsResponse> => {
        const req = body as VersionsRequest;
        await requireSite(caller, req.site);
        if (!(req.to > req.from)) throw opsError('invalid', `"to" (${req.to}) must be after "from" (${req.from})`);
        const fromDay = Math.floor(req.from / 86_400_000);
        const toDay = Math.ceil(req.to / 86_400_000);
        const [active, audit, provenance] = await Promise.all([
          deps.directory.active(req.site), deps.directory.audit(req.site, fromDay, toDay), readStore.provenance(req.site, req.from, req.to),
        ]);
        return {
          site: req.site, from: req.from, to: req.to,
          days: active.filter((d) => d.day >= fromDay && d.day < toDay && d.version !== 0).map((d) => ({
            day: dayLabel(d.day), version: d.version, logicVersion: d.logicVersion, runId: d.runId, switchedAt: d.switchedAtMs,
          })),
          audit: audit.map((e) => ({
            day: dayLabel(e.day), at: e.atMs, action: e.action, fromVersion: e.fromVersion, toVersion: e.toVersion,
            logicVersion: e.logicVersion, runId: e.runId, actor: e.actor,
          })),
          logicVersions: provenance.logicVersions, status: provenance.status, watermark: provenance.watermarkMs,
        };
      },
      'ops.replay': async (body, caller): Promise<ReplayResponse> => {
        const req = body as ReplayRequest;
        const scope = caller.principal.scope;
        if (scope.kind !== 'admin' || scope.orgId !== null) throw new SluiceError('FORBIDDEN', 'replay moves every tenant\'s aggregation: it needs a deployment admin key');
        if (deps.replayLog === null) throw opsError('unsupported', 'replay needs the Kafka event log (distributed mode); the embedded log keeps no history to replay: use reprocess');
        return replay(deps.replayLog, {
          topic: deps.eventsTopic, groupId: req.groupId ?? deps.aggregate.groupId, atMs: req.at,
          allowedLatenessMs: deps.aggregate.allowedLatenessMs, dryRun: req.dryRun ?? false,
        });
      },
    },
  };

  return {
    handlers,
    readStore,
    runner,
    recordLiveLogic: () => recordLiveLogic({ directory: deps.directory, store: deps.store, scope: deps.aggregate.groupId, logic: deps.logic, now }),
    inFlight() {
      return [...streams].map(([out, s]) => ({ route: s.route, cancelled: out.signal.aborted }));
    },
    async stop() {
      // Runs stop at their next step and journal themselves interrupted: the same command resumes them.
      const running = [...streams];
      for (const [out] of running) out.fail(new SluiceError('SHUTTING_DOWN', 'the server is shutting down; the same command resumes the run'));
      await Promise.all(running.map(([, s]) => s.done));
      runner.stop();
    },
  };
}
