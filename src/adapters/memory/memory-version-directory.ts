/**
 * In-memory VersionDirectory (src/ops/version-directory.ts) for the embedded default and tests:
 * the same compare-and-set and audit semantics as the Cassandra one. Not durable across a
 * restart, like every embedded seam.
 */
import {
  auditEntryOf, compareAudit, dayVersionOf,
  type AuditEntry, type DayVersion, type LiveLogicEntry, type SwitchOutcome, type SwitchRequest, type VersionDirectory,
} from '../../ops/version-directory.js';
import { LIVE_VERSION } from '../../ops/version-key.js';

export class MemoryVersionDirectory implements VersionDirectory {
  /** site → day → entry. */
  private readonly days = new Map<string, Map<number, DayVersion>>();
  /** site → `${day}\0${atMs}\0${runId}` → entry. */
  private readonly audits = new Map<string, Map<string, AuditEntry>>();
  private readonly logic = new Map<string, Map<number, LiveLogicEntry>>();

  async active(site: string): Promise<DayVersion[]> {
    return [...(this.days.get(site)?.values() ?? [])].sort((a, b) => a.day - b.day);
  }

  async switchDay(r: SwitchRequest): Promise<SwitchOutcome> {
    let byDay = this.days.get(r.site);
    if (!byDay) {
      byDay = new Map();
      this.days.set(r.site, byDay);
    }
    const current = byDay.get(r.day) ?? null;
    if ((current?.version ?? LIVE_VERSION) !== r.fromVersion) return { applied: false, current };
    const next = dayVersionOf(r);
    byDay.set(r.day, next);
    await this.recordAudit(auditEntryOf(next));
    return { applied: true };
  }

  async recordAudit(e: AuditEntry): Promise<void> {
    let bySite = this.audits.get(e.site);
    if (!bySite) {
      bySite = new Map();
      this.audits.set(e.site, bySite);
    }
    bySite.set(`${e.day}\u0000${e.atMs}\u0000${e.runId}`, { ...e });
  }

  async audit(site: string, fromDay: number, toDay: number): Promise<AuditEntry[]> {
    return [...(this.audits.get(site)?.values() ?? [])].filter((e) => e.day >= fromDay && e.day < toDay).sort(compareAudit);
  }

  async liveLogic(scope: string): Promise<LiveLogicEntry[]> {
    return [...(this.logic.get(scope)?.values() ?? [])].sort((a, b) => a.sinceMs - b.sinceMs);
  }

  async recordLiveLogic(scope: string, entry: LiveLogicEntry): Promise<void> {
    let byScope = this.logic.get(scope);
    if (!byScope) {
      byScope = new Map();
      this.logic.set(scope, byScope);
    }
    byScope.set(entry.sinceMs, { ...entry });
  }

  async close(): Promise<void> {}
}
