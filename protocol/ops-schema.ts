/**
 * The operations routes on the wire (ops-routes.ts, documented in ops.md): reprocessing and
 * rollback of a site's history, its runs and versions, replay of the event log, and export.
 * Every one needs an admin key: of the site's organisation for site routes, of the deployment
 * for replay (it moves the whole aggregator group).
 */
import { Type, type Static } from '@sinclair/typebox';
import { EpochMs, SiteId } from './schema.js';

const RunId = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' });
/** A UTC day, YYYY-MM-DD. */
const DayText = Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}$' });
const Version = Type.Integer({ minimum: 0 });
const RunKind = Type.Union([Type.Literal('reprocess'), Type.Literal('rollback')]);
const DayState = Type.Union([Type.Literal('pending'), Type.Literal('written'), Type.Literal('switched'), Type.Literal('skipped')]);

/** `ops.reprocess`: recompute (or roll back) the UTC days [from, to) of a site. */
export const ReprocessRequest = Type.Object({
  site: SiteId,
  /** UTC midnight, ms since epoch. */
  from: EpochMs,
  /** UTC midnight after `from`. */
  to: EpochMs,
  /** Switch the days back to the version active before the last reprocess, instead of recomputing. */
  rollback: Type.Optional(Type.Boolean()),
  /** Resume this run (same site, range and kind). Without it, an unfinished run of the same range and kind resumes. */
  resume: Type.Optional(RunId),
  /** Leave out days that are not final yet instead of refusing (what import does). */
  skipNotFinal: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });
export type ReprocessRequest = Static<typeof ReprocessRequest>;

export const ReprocessProgress = Type.Object({
  type: Type.Literal('progress'),
  runId: RunId,
  kind: RunKind,
  site: SiteId,
  phase: Type.Union(['starting', 'waiting-for-archive', 'recomputing', 'writing', 'switching', 'done'].map((p) => Type.Literal(p))),
  day: Type.Union([DayText, Type.Null()]),
  daysDone: Type.Integer({ minimum: 0 }),
  daysTotal: Type.Integer({ minimum: 0 }),
  eventsRead: Type.Integer({ minimum: 0 }),
  rowsWritten: Type.Integer({ minimum: 0 }),
  elapsedMs: Type.Integer({ minimum: 0 }),
  /** Estimated time left; null until a day is done. */
  etaMs: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
  archiveBehind: Type.Optional(Type.Integer({ minimum: 0 })),
}, { additionalProperties: false });

export const RunDay = Type.Object({
  day: DayText,
  state: DayState,
  fromVersion: Version,
  toVersion: Version,
  events: Type.Integer({ minimum: 0 }),
  rows: Type.Integer({ minimum: 0 }),
  note: Type.Optional(Type.String()),
}, { additionalProperties: false });

export const ReprocessDone = Type.Object({
  type: Type.Literal('done'),
  runId: RunId,
  kind: RunKind,
  site: SiteId,
  from: EpochMs,
  to: EpochMs,
  /** The version written (0 for a rollback). */
  rollupVersion: Version,
  logicVersion: Type.Integer({ minimum: 1 }),
  resumed: Type.Boolean(),
  days: Type.Array(RunDay),
  eventsRead: Type.Integer({ minimum: 0 }),
  rowsWritten: Type.Integer({ minimum: 0 }),
  elapsedMs: Type.Integer({ minimum: 0 }),
}, { additionalProperties: false });

/** Each message of an `ops.reprocess` stream: progress (conflated to the newest under backpressure), then one `done`. */
export const ReprocessMessage = Type.Union([ReprocessProgress, ReprocessDone]);
export type ReprocessMessage = Static<typeof ReprocessMessage>;

/** `ops.runs`: a site's runs, or one run with its days. */
export const RunsRequest = Type.Object({
  site: SiteId,
  runId: Type.Optional(RunId),
}, { additionalProperties: false });
export type RunsRequest = Static<typeof RunsRequest>;

export const RunInfo = Type.Object({
  runId: RunId,
  kind: RunKind,
  from: EpochMs,
  to: EpochMs,
  rollupVersion: Version,
  logicVersion: Type.Integer({ minimum: 1 }),
  actor: Type.String(),
  createdAt: EpochMs,
  state: Type.Union([Type.Literal('running'), Type.Literal('interrupted'), Type.Literal('done'), Type.Literal('superseded')]),
  updatedAt: EpochMs,
  message: Type.String(),
}, { additionalProperties: false });

export const RunsResponse = Type.Object({
  site: SiteId,
  runs: Type.Array(RunInfo),
  /** With `runId`: that run's days. */
  days: Type.Optional(Type.Array(RunDay)),
}, { additionalProperties: false });
export type RunsResponse = Static<typeof RunsResponse>;

/** `ops.versions`: which version serves each day of [from, to), the audit trail, and the range's provenance. */
export const VersionsRequest = Type.Object({
  site: SiteId,
  from: EpochMs,
  to: EpochMs,
}, { additionalProperties: false });
export type VersionsRequest = Static<typeof VersionsRequest>;

export const VersionsResponse = Type.Object({
  site: SiteId,
  from: EpochMs,
  to: EpochMs,
  /** Days served by a reprocessed version (every other day is served live). */
  days: Type.Array(Type.Object({
    day: DayText,
    version: Version,
    logicVersion: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()]),
    runId: Type.String(),
    switchedAt: EpochMs,
  }, { additionalProperties: false })),
  audit: Type.Array(Type.Object({
    day: DayText,
    at: EpochMs,
    action: RunKind,
    fromVersion: Version,
    toVersion: Version,
    logicVersion: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()]),
    runId: Type.String(),
    actor: Type.String(),
  }, { additionalProperties: false })),
  /** The logic versions behind the range's numbers, and whether it is final (ends at or before the store watermark). */
  logicVersions: Type.Array(Type.Integer({ minimum: 1 })),
  status: Type.Union([Type.Literal('final'), Type.Literal('provisional')]),
  watermark: Type.Union([EpochMs, Type.Null()]),
}, { additionalProperties: false });
export type VersionsResponse = Static<typeof VersionsResponse>;

/** `ops.replay`: move a consumer group of the event log back to a time (distributed mode). */
export const ReplayRequest = Type.Object({
  /** The group to move; default the live aggregator's (then every aggregator must be stopped). */
  groupId: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  /** Re-aggregate events from this event time on (rounded down to a minute). */
  at: EpochMs,
  /** Only say where the group would be moved. */
  dryRun: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });
export type ReplayRequest = Static<typeof ReplayRequest>;

export const ReplayResponse = Type.Object({
  groupId: Type.String(),
  topic: Type.String(),
  at: EpochMs,
  applied: Type.Boolean(),
  partitions: Type.Array(Type.Object({
    partition: Type.Integer({ minimum: 0 }),
    /** Where the group resumes. */
    offset: Type.Integer({ minimum: 0 }),
    /** The log's end now: records up to it are replayed without being sent to the late lane again. */
    end: Type.Integer({ minimum: 0 }),
    /** Where the group stood before, null when it had committed nothing. */
    previous: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
  }, { additionalProperties: false })),
}, { additionalProperties: false });
export type ReplayResponse = Static<typeof ReplayResponse>;

/** `ops.export`: a site's raw events or rollup rows of [from, to), as NDJSON or CSV lines. */
export const ExportRequest = Type.Object({
  site: SiteId,
  from: EpochMs,
  to: EpochMs,
  what: Type.Union([Type.Literal('raw'), Type.Literal('rollups')]),
  format: Type.Union([Type.Literal('ndjson'), Type.Literal('csv')]),
  /** For rollups: the tier. Default hour. */
  tier: Type.Optional(Type.Union([Type.Literal('minute'), Type.Literal('quarter'), Type.Literal('hour'), Type.Literal('day')])),
  /** Lines per message. Default 500. */
  chunkLines: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000 })),
}, { additionalProperties: false });
export type ExportRequest = Static<typeof ExportRequest>;

/** Each message of an `ops.export` stream: lines (one credit each), progress, then one `done`. */
export const ExportMessage = Type.Union([
  Type.Object({ type: Type.Literal('lines'), lines: Type.Array(Type.String()) }, { additionalProperties: false }),
  Type.Object({
    type: Type.Literal('progress'),
    /** Lines sent so far. */
    lines: Type.Integer({ minimum: 0 }),
    /** How far through the range, by event or bucket time. */
    at: EpochMs,
    fraction: Type.Number({ minimum: 0, maximum: 1 }),
  }, { additionalProperties: false }),
  Type.Object({
    type: Type.Literal('done'),
    lines: Type.Integer({ minimum: 0 }),
    /** Raw export: bot events left out (the wire event format has no bot flag, so they would come back as people). */
    skippedBots: Type.Integer({ minimum: 0 }),
  }, { additionalProperties: false }),
]);
export type ExportMessage = Static<typeof ExportMessage>;
