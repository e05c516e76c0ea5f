/**
 * VersionDirectory on Cassandra (src/ops/version-directory.ts; schema: migrations.ts version 5,
 * tables rollup_versions, rollup_version_audit, live_logic_versions).
 *
 * - The directory is one partition per site (a row per day ever switched), read whole by the
 *   read-side wrapper in one single-partition query.
 * - `switchDay` is a lightweight transaction on the day's row: `INSERT … IF NOT EXISTS` for a
 *   day never switched, `UPDATE … IF version = ?` otherwise, so the compare-and-set is atomic
 *   per (site, day) whatever the number of runners. A day switched back to live keeps its row
 *   (version 0), so "from live" tries the insert first and, when a row exists with version 0,
 *   the conditional update. The Paxos commit is written at the client's consistency, so reads
 *   at that consistency afterwards see it; serial consistency is SERIAL (cluster-wide).
 * - The audit entry is written after the switch applied; its key (site, day, at_ms, run_id) is
 *   the switch's own, so a resumed run writing it again writes the same row.
 */
import cassandra from 'cassandra-driver';
import {
  auditEntryOf, compareAudit, dayVersionOf,
  type AuditEntry, type DayVersion, type LiveLogicEntry, type SwitchAction, type SwitchOutcome, type SwitchRequest, type VersionDirectory,
} from '../../ops/version-directory.js';
import { LIVE_VERSION } from '../../ops/version-key.js';
import { type CassandraConnectOptions, connectWithTables, toNumber } from './cassandra-client.js';

const TABLES = ['rollup_versions', 'rollup_version_audit', 'live_logic_versions'] as const;
const LWT = { serialConsistency: cassandra.types.consistencies.serial, isIdempotent: false } as const;

export class CassandraVersionDirectory implements VersionDirectory {
  private readonly selectSite: string;
  private readonly insertIfAbsent: string;
  private readonly updateIfVersion: string;
  private readonly insertAudit: string;
  private readonly selectAudit: string;
  private readonly selectLogic: string;
  private readonly insertLogic: string;
  private closing: Promise<void> | undefined;

  /** Connects and checks that the schema is there; apply the migrations first. */
  static async connect(options: CassandraConnectOptions): Promise<CassandraVersionDirectory> {
    return new CassandraVersionDirectory(await connectWithTables(options, TABLES), options.keyspace);
  }

  private constructor(private readonly client: cassandra.Client, ks: string) {
    const cols = 'version, previous_version, logic_version, run_id, action, actor, switched_at_ms';
    this.selectSite = `SELECT day, ${cols} FROM ${ks}.rollup_versions WHERE site = ?`;
    this.insertIfAbsent = `INSERT INTO ${ks}.rollup_versions (site, day, ${cols}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS`;
    this.updateIfVersion = `UPDATE ${ks}.rollup_versions SET version = ?, previous_version = ?, logic_version = ?, run_id = ?, action = ?, actor = ?, switched_at_ms = ? WHERE site = ? AND day = ? IF version = ?`;
    this.insertAudit = `INSERT INTO ${ks}.rollup_version_audit (site, day, at_ms, run_id, action, from_version, to_version, logic_version, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`;
    this.selectAudit = `SELECT day, at_ms, run_id, action, from_version, to_version, logic_version, actor FROM ${ks}.rollup_version_audit WHERE site = ? AND day >= ? AND day < ?`;
    this.selectLogic = `SELECT since_ms, logic_version, recorded_at_ms FROM ${ks}.live_logic_versions WHERE scope = ?`;
    this.insertLogic = `INSERT INTO ${ks}.live_logic_versions (scope, since_ms, logic_version, recorded_at_ms) VALUES (?, ?, ?, ?)`;
  }

  async active(site: string): Promise<DayVersion[]> {
    const rs = await this.client.execute(this.selectSite, [site], { fetchSize: 5000 });
    const out: DayVersion[] = [];
    for await (const r of rs) out.push(rowToVersion(site, r));
    return out;
  }

  async switchDay(r: SwitchRequest): Promise<SwitchOutcome> {
    const values = [r.toVersion, r.fromVersion, r.logicVersion, r.runId, r.action, r.actor, cassandra.types.Long.fromNumber(r.atMs)];
    let rs: cassandra.types.ResultSet | undefined;
    if (r.fromVersion === LIVE_VERSION) {
      rs = await this.client.execute(this.insertIfAbsent, [r.site, r.day, ...values], LWT);
      if (!rs.wasApplied() && Number(rs.first()?.get('version')) !== LIVE_VERSION) return { applied: false, current: rowToVersion(r.site, rs.first()!, r.day) };
    }
    if (!rs?.wasApplied()) {
      rs = await this.client.execute(this.updateIfVersion, [...values, r.site, r.day, r.fromVersion], LWT);
      if (!rs.wasApplied()) {
        const row = rs.first();
        // A failed condition on a missing row returns only [applied] = false.
        const current = row && row.get('version') !== null && row.get('version') !== undefined ? rowToVersion(r.site, row, r.day) : null;
        return { applied: false, current };
      }
    }
    await this.recordAudit(auditEntryOf(dayVersionOf(r)));
    return { applied: true };
  }

  async recordAudit(e: AuditEntry): Promise<void> {
    await this.client.execute(this.insertAudit, [
      e.site, e.day, cassandra.types.Long.fromNumber(e.atMs), e.runId, e.action, e.fromVersion, e.toVersion, e.logicVersion, e.actor,
    ]);
  }

  async audit(site: string, fromDay: number, toDay: number): Promise<AuditEntry[]> {
    const rs = await this.client.execute(this.selectAudit, [site, fromDay, toDay], { fetchSize: 5000 });
    const out: AuditEntry[] = [];
    for await (const r of rs) {
      out.push({
        site, day: Number(r.get('day')), atMs: toNumber(r.get('at_ms')), runId: String(r.get('run_id')),
        action: r.get('action') as SwitchAction, fromVersion: Number(r.get('from_version')), toVersion: Number(r.get('to_version')),
        logicVersion: nullableInt(r.get('logic_version')), actor: String(r.get('actor') ?? ''),
      });
    }
    return out.sort(compareAudit);
  }

  async liveLogic(scope: string): Promise<LiveLogicEntry[]> {
    const rs = await this.client.execute(this.selectLogic, [scope]);
    return rs.rows.map((r) => ({
      sinceMs: toNumber(r.get('since_ms')), logicVersion: Number(r.get('logic_version')), recordedAtMs: toNumber(r.get('recorded_at_ms')),
    }));
  }

  async recordLiveLogic(scope: string, entry: LiveLogicEntry): Promise<void> {
    await this.client.execute(this.insertLogic, [
      scope, cassandra.types.Long.fromNumber(entry.sinceMs), entry.logicVersion, cassandra.types.Long.fromNumber(entry.recordedAtMs),
    ]);
  }

  close(): Promise<void> {
    this.closing ??= this.client.shutdown();
    return this.closing;
  }
}

function nullableInt(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}

function rowToVersion(site: string, r: cassandra.types.Row, day?: number): DayVersion {
  return {
    site,
    day: day ?? Number(r.get('day')),
    version: Number(r.get('version')),
    previousVersion: Number(r.get('previous_version') ?? LIVE_VERSION),
    logicVersion: nullableInt(r.get('logic_version')),
    runId: String(r.get('run_id') ?? ''),
    action: (r.get('action') ?? 'reprocess') as SwitchAction,
    actor: String(r.get('actor') ?? ''),
    switchedAtMs: toNumber(r.get('switched_at_ms')),
  };
}
