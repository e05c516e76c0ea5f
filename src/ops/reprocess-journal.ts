/**
 * ReprocessJournal: the state of every reprocess and rollback run, per day, so that a run that
 * crashed or was interrupted resumes where it stopped, and a lease per site so that two runs of
 * one site never interleave. Real implementation: Cassandra
 * (adapters/cassandra/cassandra-reprocess-journal.ts); embedded: adapters/memory.
 *
 * Contract (test/integration/reprocess-journal.test.ts, against both):
 * - `createRun` stores a run; `updateRun` changes its state, message and time; `runs(site)`
 *   lists a site's runs, `run` finds one; a site never sees another's;
 * - `putDay` stores a day's record whole (the last write wins); `days` lists a run's days in
 *   day order;
 * - leases: `acquireLease` succeeds when the lease is free, expired, or already held by the
 *   same owner (then it is renewed); it is atomic (of two concurrent acquirers one wins);
 *   `renewLease` extends it only for its holder; `releaseLease` frees it only for its holder;
 *   a lease not renewed is free again after `ttlMs`.
 */
export type RunKind = 'reprocess' | 'rollback';
/** running: in progress, or crashed (a lease no longer held says which); interrupted: stopped with a recorded reason; superseded: replaced by a newer run of the same range. */
export type RunState = 'running' | 'interrupted' | 'done' | 'superseded';
/** pending → written (rows of the new version stored) → switched; skipped: nothing to do for that day (rollback of a live day). */
export type DayState = 'pending' | 'written' | 'switched' | 'skipped';

export interface RunRecord {
  readonly site: string;
  readonly runId: string;
  readonly kind: RunKind;
  /** The range [fromMs, toMs), UTC midnights. */
  readonly fromMs: number;
  readonly toMs: number;
  /** The rollup version this run writes (LIVE_VERSION for a rollback, which writes no rows). */
  readonly rollupVersion: number;
  /** The logic version the run computes with (the current one when it started). */
  readonly logicVersion: number;
  readonly actor: string;
  readonly createdAtMs: number;
  readonly state: RunState;
  readonly updatedAtMs: number;
  readonly message: string;
}

export interface DayRecord {
  readonly day: number;
  readonly state: DayState;
  readonly fromVersion: number;
  readonly toVersion: number;
  /** Archived events read for the day (lookback excluded). */
  readonly events: number;
  /** Rows written for the day, every tier. */
  readonly rows: number;
  readonly updatedAtMs: number;
}

export type LeaseOutcome = { readonly acquired: true } | { readonly acquired: false; readonly holder: string };

export interface ReprocessJournal {
  createRun(run: RunRecord): Promise<void>;
  updateRun(site: string, runId: string, change: { readonly state: RunState; readonly message: string; readonly updatedAtMs: number }): Promise<void>;
  runs(site: string): Promise<RunRecord[]>;
  run(site: string, runId: string): Promise<RunRecord | null>;
  putDay(site: string, runId: string, day: DayRecord): Promise<void>;
  days(site: string, runId: string): Promise<DayRecord[]>;
  acquireLease(name: string, owner: string, ttlMs: number): Promise<LeaseOutcome>;
  renewLease(name: string, owner: string, ttlMs: number): Promise<boolean>;
  releaseLease(name: string, owner: string): Promise<void>;
  close(): Promise<void>;
}
