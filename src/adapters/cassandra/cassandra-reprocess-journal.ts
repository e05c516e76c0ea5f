/**
 * ReprocessJournal on Cassandra (src/ops/reprocess-journal.ts; schema: migrations.ts version 5,
 * tables reprocess_runs, reprocess_run_days, ops_leases).
 *
 * - Runs are one partition per site; a run's days one partition per (site, run). Writes are
 *   plain idempotent upserts: only the holder of the site's lease writes a run's records.
 * - Leases are lightweight transactions with a TTL (`INSERT … IF NOT EXISTS USING TTL`, renewed
 *   with `UPDATE … USING TTL … IF owner = ?`), so a holder that dies frees the lease when the
 *   TTL runs out, and of two acquirers exactly one wins. Acquiring a lease one already holds
 *   renews it. TTLs are whole seconds (at least one).
 */
import cassandra from 'cassandra-driver';
import type { DayRecord, DayState, LeaseOutcome, ReprocessJournal, RunKind, RunRecord, RunState } from '../../ops/reprocess-journal.js';
import { type CassandraConnectOptions, connectWithTables, toNumber } from './cassandra-client.js';

const TABLES = ['reprocess_runs', 'reprocess_run_days', 'ops_leases'] as const;
const LWT = { serialConsistency: cassandra.types.consistencies.serial, isIdempotent: false } as const;
const long = (n: number) => cassandra.types.Long.fromNumber(n);

export class CassandraReprocessJournal implements ReprocessJournal {
  private readonly insertRun: string;
  private readonly updateRunState: string;
  private readonly selectRuns: string;
  private readonly selectRun: string;
  private readonly insertDay: string;
  private readonly selectDays: string;
  private readonly leaseInsert: string;
  private readonly leaseRenew: string;
  private readonly leaseRelease: string;
  private closing: Promise<void> | undefined;

  /** Connects and checks that the schema is there; apply the migrations first. */
  static async connect(options: CassandraConnectOptions): Promise<CassandraReprocessJournal> {
    return new CassandraReprocessJournal(await connectWithTables(options, TABLES), options.keyspace);
  }

  private constructor(private readonly client: cassandra.Client, ks: string) {
    const runCols = 'kind, from_ms, to_ms, rollup_version, logic_version, actor, created_at_ms, state, updated_at_ms, message';
    this.insertRun = `INSERT INTO ${ks}.reprocess_runs (site, run_id, ${runCols}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
    this.updateRunState = `UPDATE ${ks}.reprocess_runs SET state = ?, message = ?, updated_at_ms = ? WHERE site = ? AND run_id = ?`;
    this.selectRuns = `SELECT run_id, ${runCols} FROM ${ks}.reprocess_runs WHERE site = ?`;
    this.selectRun = `SELECT run_id, ${runCols} FROM ${ks}.reprocess_runs WHERE site = ? AND run_id = ?`;
    this.insertDay = `INSERT INTO ${ks}.reprocess_run_days (site, run_id, day, state, from_version, to_version, events, rows, updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`;
    this.selectDays = `SELECT day, state, from_version, to_version, events, rows, updated_at_ms FROM ${ks}.reprocess_run_days WHERE site = ? AND run_id = ?`;
    this.leaseInsert = `INSERT INTO ${ks}.ops_leases (name, owner, acquired_at_ms) VALUES (?, ?, ?) IF NOT EXISTS USING TTL ?`;
    this.leaseRenew = `UPDATE ${ks}.ops_leases USING TTL ? SET owner = ? WHERE name = ? IF owner = ?`;
    this.leaseRelease = `DELETE FROM ${ks}.ops_leases WHERE name = ? IF owner = ?`;
  }

  async createRun(r: RunRecord): Promise<void> {
    await this.client.execute(this.insertRun, [
      r.site, r.runId, r.kind, long(r.fromMs), long(r.toMs), r.rollupVersion, r.logicVersion, r.actor,
      long(r.createdAtMs), r.state, long(r.updatedAtMs), r.message,
    ]);
  }

  async updateRun(site: string, runId: string, change: { state: RunState; message: string; updatedAtMs: number }): Promise<void> {
    await this.client.execute(this.updateRunState, [change.state, change.message, long(change.updatedAtMs), site, runId]);
  }

  async runs(site: string): Promise<RunRecord[]> {
    const rs = await this.client.execute(this.selectRuns, [site], { fetchSize: 5000 });
    const out: RunRecord[] = [];
    for await (const r of rs) out.push(runOf(site, r));
    return out.sort((a, b) => a.createdAtMs - b.createdAtMs || (a.runId < b.runId ? -1 : 1));
  }

  async run(site: string, runId: string): Promise<RunRecord | null> {
    const r = (await this.client.execute(this.selectRun, [site, runId])).first();
    return r ? runOf(site, r) : null;
  }

  async putDay(site: string, runId: string, d: DayRecord): Promise<void> {
    await this.client.execute(this.insertDay, [site, runId, d.day, d.state, d.fromVersion, d.toVersion, long(d.events), d.rows, long(d.updatedAtMs)]);
  }

  async days(site: string, runId: string): Promise<DayRecord[]> {
    const rs = await this.client.execute(this.selectDays, [site, runId], { fetchSize: 5000 });
    const out: DayRecord[] = [];
    for await (const r of rs) {
      out.push({
        day: Number(r.get('day')), state: r.get('state') as DayState, fromVersion: Number(r.get('from_version')),
        toVersion: Number(r.get('to_version')), events: toNumber(r.get('events')), rows: Number(r.get('rows')),
        updatedAtMs: toNumber(r.get('updated_at_ms')),
      });
    }
    return out;
  }

  async acquireLease(name: string, owner: string, ttlMs: number): Promise<LeaseOutcome> {
    const rs = await this.client.execute(this.leaseInsert, [name, owner, long(Date.now()), ttlSeconds(ttlMs)], LWT);
    if (rs.wasApplied()) return { acquired: true };
    const holder = String(rs.first()?.get('owner') ?? '');
    // A retried LWT that had in fact applied reports "not applied" with our own name in it; and
    // acquiring a lease one holds renews it.
    if (holder === owner) return (await this.renewLease(name, owner, ttlMs)) ? { acquired: true } : { acquired: false, holder: '' };
    return { acquired: false, holder };
  }

  async renewLease(name: string, owner: string, ttlMs: number): Promise<boolean> {
    const rs = await this.client.execute(this.leaseRenew, [ttlSeconds(ttlMs), owner, name, owner], LWT);
    return rs.wasApplied();
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    await this.client.execute(this.leaseRelease, [name, owner], LWT);
  }

  close(): Promise<void> {
    this.closing ??= this.client.shutdown();
    return this.closing;
  }
}

function ttlSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

function runOf(site: string, r: cassandra.types.Row): RunRecord {
  return {
    site,
    runId: String(r.get('run_id')),
    kind: r.get('kind') as RunKind,
    fromMs: toNumber(r.get('from_ms')),
    toMs: toNumber(r.get('to_ms')),
    rollupVersion: Number(r.get('rollup_version')),
    logicVersion: Number(r.get('logic_version')),
    actor: String(r.get('actor') ?? ''),
    createdAtMs: toNumber(r.get('created_at_ms')),
    state: r.get('state') as RunState,
    updatedAtMs: toNumber(r.get('updated_at_ms')),
    message: String(r.get('message') ?? ''),
  };
}
