/**
 * VersionDirectory: which rollup version of each (site, UTC day) is active, the audit trail of
 * every switch, and the history of the live aggregator's logic versions. Real implementation:
 * Cassandra (adapters/cassandra/cassandra-version-directory.ts); embedded: adapters/memory.
 *
 * Contract (test/integration/reprocess-directory.test.ts, against both):
 * - `active(site)` lists the days of the site that were ever switched, each with its current
 *   version; a day not listed is LIVE_VERSION (rows under the site key itself);
 * - `switchDay` is a compare-and-set of one (site, day), atomic: it applies only when the day's
 *   current version is `fromVersion` (a day never switched counts as LIVE_VERSION), so two
 *   runners, or a runner resuming after a crash, can never switch a day twice; when it does not
 *   apply it says what the current entry is;
 * - an applied switch appends its audit entry; `recordAudit` appends one again idempotently
 *   (same site, day, atMs and runId: one entry), for a runner that crashed between the two;
 * - `audit` returns entries of days [fromDay, toDay) in (day, atMs, runId) order;
 * - the live logic history is kept per scope, ordered by sinceMs; recording the same sinceMs
 *   again replaces that entry;
 * - a site never sees another site's entries.
 */
export type SwitchAction = 'reprocess' | 'rollback';

/** The current version of one (site, day), as the last applied switch left it. */
export interface DayVersion {
  readonly site: string;
  readonly day: number;
  /** The active rollup version: LIVE_VERSION (0), or a reprocess run's version. */
  readonly version: number;
  /** What was active before this switch. */
  readonly previousVersion: number;
  /** The logic version that built the active rows; null for LIVE_VERSION (see the live logic history). */
  readonly logicVersion: number | null;
  readonly runId: string;
  readonly action: SwitchAction;
  readonly actor: string;
  readonly switchedAtMs: number;
}

/** One switch, as the audit trail keeps it (forever: it is small and it is the record). */
export interface AuditEntry {
  readonly site: string;
  readonly day: number;
  readonly atMs: number;
  readonly runId: string;
  readonly action: SwitchAction;
  readonly fromVersion: number;
  readonly toVersion: number;
  readonly logicVersion: number | null;
  readonly actor: string;
}

export interface SwitchRequest {
  readonly site: string;
  readonly day: number;
  readonly fromVersion: number;
  readonly toVersion: number;
  readonly logicVersion: number | null;
  readonly runId: string;
  readonly action: SwitchAction;
  readonly actor: string;
  readonly atMs: number;
}

export type SwitchOutcome =
  | { readonly applied: true }
  | { readonly applied: false; readonly current: DayVersion | null };

/** From `sinceMs` (a store watermark: days ending after it were aggregated live from then on), the live aggregator ran `logicVersion`. */
export interface LiveLogicEntry {
  readonly sinceMs: number;
  readonly logicVersion: number;
  readonly recordedAtMs: number;
}

export interface VersionDirectory {
  active(site: string): Promise<DayVersion[]>;
  switchDay(request: SwitchRequest): Promise<SwitchOutcome>;
  recordAudit(entry: AuditEntry): Promise<void>;
  audit(site: string, fromDay: number, toDay: number): Promise<AuditEntry[]>;
  liveLogic(scope: string): Promise<LiveLogicEntry[]>;
  recordLiveLogic(scope: string, entry: LiveLogicEntry): Promise<void>;
  close(): Promise<void>;
}

/** The audit entry an applied switch writes: derivable from the directory row alone (a resumed run rebuilds it). */
export function auditEntryOf(v: DayVersion): AuditEntry {
  return {
    site: v.site, day: v.day, atMs: v.switchedAtMs, runId: v.runId, action: v.action,
    fromVersion: v.previousVersion, toVersion: v.version, logicVersion: v.logicVersion, actor: v.actor,
  };
}

export function dayVersionOf(r: SwitchRequest): DayVersion {
  return {
    site: r.site, day: r.day, version: r.toVersion, previousVersion: r.fromVersion, logicVersion: r.logicVersion,
    runId: r.runId, action: r.action, actor: r.actor, switchedAtMs: r.atMs,
  };
}

export function compareAudit(a: AuditEntry, b: AuditEntry): number {
  return a.day - b.day || a.atMs - b.atMs || (a.runId < b.runId ? -1 : a.runId > b.runId ? 1 : 0);
}
