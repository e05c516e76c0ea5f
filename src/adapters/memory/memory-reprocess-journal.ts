/**
 * In-memory ReprocessJournal (src/ops/reprocess-journal.ts) for the embedded default and tests.
 * Leases expire by the injectable clock. Not durable across a restart: an embedded process that
 * dies loses its runs' journal together with every other embedded seam, and its rollups.
 */
import type { DayRecord, LeaseOutcome, ReprocessJournal, RunRecord, RunState } from '../../ops/reprocess-journal.js';

export interface MemoryReprocessJournalOptions {
  readonly now?: () => number;
}

export class MemoryReprocessJournal implements ReprocessJournal {
  /** site → runId → run. */
  private readonly runsBySite = new Map<string, Map<string, RunRecord>>();
  /** `${site}\0${runId}` → day → record. */
  private readonly dayRecords = new Map<string, Map<number, DayRecord>>();
  private readonly leases = new Map<string, { owner: string; untilMs: number }>();
  private readonly now: () => number;

  constructor(options: MemoryReprocessJournalOptions = {}) {
    this.now = options.now ?? Date.now;
  }

  async createRun(run: RunRecord): Promise<void> {
    let runs = this.runsBySite.get(run.site);
    if (!runs) {
      runs = new Map();
      this.runsBySite.set(run.site, runs);
    }
    runs.set(run.runId, { ...run });
  }

  async updateRun(site: string, runId: string, change: { state: RunState; message: string; updatedAtMs: number }): Promise<void> {
    const runs = this.runsBySite.get(site);
    const run = runs?.get(runId);
    if (!runs || !run) throw new Error(`no run ${runId} of site ${site}`);
    runs.set(runId, { ...run, ...change });
  }

  async runs(site: string): Promise<RunRecord[]> {
    return [...(this.runsBySite.get(site)?.values() ?? [])].sort((a, b) => a.createdAtMs - b.createdAtMs || (a.runId < b.runId ? -1 : 1));
  }

  async run(site: string, runId: string): Promise<RunRecord | null> {
    return this.runsBySite.get(site)?.get(runId) ?? null;
  }

  async putDay(site: string, runId: string, day: DayRecord): Promise<void> {
    const key = `${site}\u0000${runId}`;
    let days = this.dayRecords.get(key);
    if (!days) {
      days = new Map();
      this.dayRecords.set(key, days);
    }
    days.set(day.day, { ...day });
  }

  async days(site: string, runId: string): Promise<DayRecord[]> {
    return [...(this.dayRecords.get(`${site}\u0000${runId}`)?.values() ?? [])].sort((a, b) => a.day - b.day);
  }

  async acquireLease(name: string, owner: string, ttlMs: number): Promise<LeaseOutcome> {
    const now = this.now();
    const held = this.leases.get(name);
    if (held && held.untilMs > now && held.owner !== owner) return { acquired: false, holder: held.owner };
    this.leases.set(name, { owner, untilMs: now + ttlMs });
    return { acquired: true };
  }

  async renewLease(name: string, owner: string, ttlMs: number): Promise<boolean> {
    const now = this.now();
    const held = this.leases.get(name);
    if (!held || held.owner !== owner || held.untilMs <= now) return false;
    held.untilMs = now + ttlMs;
    return true;
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    if (this.leases.get(name)?.owner === owner) this.leases.delete(name);
  }

  async close(): Promise<void> {}
}
