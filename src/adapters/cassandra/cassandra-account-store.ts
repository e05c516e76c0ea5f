/**
 * The AccountStore on Cassandra. Each record is one row holding its JSON body, looked up by id;
 * the lookups by organisation, public id and key digest are separate tables written with the
 * record in one logged batch, so a crash never leaves a record reachable one way and not another.
 * Revocations are also kept by UTC day, so gateways can poll "revoked since t" cheaply.
 *
 * Records are small and change rarely; reads use the configured consistency (LOCAL_QUORUM in
 * production), so a revocation seen by one gateway is seen by the others at their next poll.
 */
import cassandra from 'cassandra-driver';
import type { Organisation, Site, User } from '../../../protocol/admin-schema.js';
import type { AccountStore, StoredKey } from '../../accounts/account-store.js';
import { type CassandraConnectOptions, connectWithTables, pagedRows } from './cassandra-client.js';

/** The tables, as migration statements (migrations.ts applies them under its lease). */
export const ACCOUNT_TABLES_CQL: readonly string[] = [
  'CREATE TABLE IF NOT EXISTS {keyspace}.account_orgs (id text PRIMARY KEY, body text)',
  'CREATE TABLE IF NOT EXISTS {keyspace}.account_sites (id text PRIMARY KEY, org_id text, body text)',
  'CREATE TABLE IF NOT EXISTS {keyspace}.account_sites_by_org (org_id text, id text, PRIMARY KEY (org_id, id))',
  'CREATE TABLE IF NOT EXISTS {keyspace}.account_sites_by_public_id (public_id text PRIMARY KEY, id text)',
  'CREATE TABLE IF NOT EXISTS {keyspace}.account_users (id text PRIMARY KEY, org_id text, body text)',
  'CREATE TABLE IF NOT EXISTS {keyspace}.account_users_by_org (org_id text, id text, PRIMARY KEY (org_id, id))',
  'CREATE TABLE IF NOT EXISTS {keyspace}.account_keys (id text PRIMARY KEY, body text)',
  'CREATE TABLE IF NOT EXISTS {keyspace}.account_keys_by_digest (digest text PRIMARY KEY, id text)',
  'CREATE TABLE IF NOT EXISTS {keyspace}.account_keys_by_org (org_id text, id text, PRIMARY KEY (org_id, id))',
  'CREATE TABLE IF NOT EXISTS {keyspace}.account_revocations (day int, revoked_at bigint, id text, PRIMARY KEY (day, revoked_at, id))',
];

const TABLES = ['account_orgs', 'account_sites', 'account_sites_by_org', 'account_sites_by_public_id', 'account_users',
  'account_users_by_org', 'account_keys', 'account_keys_by_digest', 'account_keys_by_org', 'account_revocations'];

/** The organisation column of a deployment-wide key (null and '' have no place in a partition key; no organisation id can be '-'). */
const NO_ORG = '-';
const DAY_MS = 86_400_000;

export interface CassandraAccountStoreOptions extends CassandraConnectOptions {
  readonly now?: () => number;
}

function parse<T>(body: unknown): T {
  return JSON.parse(String(body)) as T;
}

export class CassandraAccountStore implements AccountStore {
  private readonly ks: string;
  private readonly now: () => number;

  static async connect(options: CassandraAccountStoreOptions): Promise<CassandraAccountStore> {
    return new CassandraAccountStore(await connectWithTables(options, TABLES), options);
  }

  private constructor(private readonly client: cassandra.Client, options: CassandraAccountStoreOptions) {
    this.ks = options.keyspace;
    this.now = options.now ?? Date.now;
  }

  private async one<T>(table: string, id: string): Promise<T | null> {
    const rs = await this.client.execute(`SELECT body FROM ${this.ks}.${table} WHERE id = ?`, [id], { prepare: true });
    const row = rs.first();
    return row ? parse<T>(row.get('body')) : null;
  }

  private async idsOf(table: string, orgId: string): Promise<string[]> {
    const ids: string[] = [];
    for await (const page of pagedRows(this.client, `SELECT id FROM ${this.ks}.${table} WHERE org_id = ?`, [orgId], 1000)) {
      for (const row of page) ids.push(String(row.get('id')));
    }
    return ids;
  }

  private async many<T>(table: string, ids: readonly string[]): Promise<T[]> {
    const out: T[] = [];
    for (const id of ids) {
      const r = await this.one<T>(table, id);
      if (r) out.push(r);
    }
    return out;
  }

  async putOrganisation(org: Organisation): Promise<void> {
    await this.client.execute(`INSERT INTO ${this.ks}.account_orgs (id, body) VALUES (?, ?)`, [org.id, JSON.stringify(org)], { prepare: true });
  }

  getOrganisation(id: string): Promise<Organisation | null> {
    return this.one('account_orgs', id);
  }

  async listOrganisations(): Promise<Organisation[]> {
    const out: Organisation[] = [];
    for await (const page of pagedRows(this.client, `SELECT body FROM ${this.ks}.account_orgs`, [], 1000)) {
      for (const row of page) out.push(parse<Organisation>(row.get('body')));
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async putSite(site: Site): Promise<void> {
    const previous = await this.getSite(site.id);
    const queries: Array<{ query: string; params: unknown[] }> = [
      { query: `INSERT INTO ${this.ks}.account_sites (id, org_id, body) VALUES (?, ?, ?)`, params: [site.id, site.orgId, JSON.stringify(site)] },
      { query: `INSERT INTO ${this.ks}.account_sites_by_org (org_id, id) VALUES (?, ?)`, params: [site.orgId, site.id] },
      { query: `INSERT INTO ${this.ks}.account_sites_by_public_id (public_id, id) VALUES (?, ?)`, params: [site.publicId, site.id] },
    ];
    if (previous && previous.publicId !== site.publicId) {
      queries.push({ query: `DELETE FROM ${this.ks}.account_sites_by_public_id WHERE public_id = ?`, params: [previous.publicId] });
    }
    if (previous && previous.orgId !== site.orgId) {
      queries.push({ query: `DELETE FROM ${this.ks}.account_sites_by_org WHERE org_id = ? AND id = ?`, params: [previous.orgId, site.id] });
    }
    await this.client.batch(queries, { prepare: true, logged: true });
  }

  getSite(id: string): Promise<Site | null> {
    return this.one('account_sites', id);
  }

  async getSiteByPublicId(publicId: string): Promise<Site | null> {
    const rs = await this.client.execute(`SELECT id FROM ${this.ks}.account_sites_by_public_id WHERE public_id = ?`, [publicId], { prepare: true });
    const row = rs.first();
    if (!row) return null;
    const site = await this.getSite(String(row.get('id')));
    return site && site.publicId === publicId ? site : null;
  }

  async listSites(orgId: string): Promise<Site[]> {
    return (await this.many<Site>('account_sites', await this.idsOf('account_sites_by_org', orgId))).filter((s) => s.orgId === orgId);
  }

  async putUser(user: User): Promise<void> {
    await this.client.batch([
      { query: `INSERT INTO ${this.ks}.account_users (id, org_id, body) VALUES (?, ?, ?)`, params: [user.id, user.orgId, JSON.stringify(user)] },
      { query: `INSERT INTO ${this.ks}.account_users_by_org (org_id, id) VALUES (?, ?)`, params: [user.orgId, user.id] },
    ], { prepare: true, logged: true });
  }

  getUser(id: string): Promise<User | null> {
    return this.one('account_users', id);
  }

  async listUsers(orgId: string): Promise<User[]> {
    return (await this.many<User>('account_users', await this.idsOf('account_users_by_org', orgId))).filter((u) => u.orgId === orgId);
  }

  async putKey(key: StoredKey): Promise<void> {
    const previous = await this.getKey(key.id);
    const queries: Array<{ query: string; params: unknown[] }> = [
      { query: `INSERT INTO ${this.ks}.account_keys (id, body) VALUES (?, ?)`, params: [key.id, JSON.stringify(key)] },
      { query: `INSERT INTO ${this.ks}.account_keys_by_digest (digest, id) VALUES (?, ?)`, params: [key.digest, key.id] },
      { query: `INSERT INTO ${this.ks}.account_keys_by_org (org_id, id) VALUES (?, ?)`, params: [key.orgId ?? NO_ORG, key.id] },
    ];
    if (previous && previous.digest !== key.digest) {
      queries.push({ query: `DELETE FROM ${this.ks}.account_keys_by_digest WHERE digest = ?`, params: [previous.digest] });
    }
    if (key.revokedAt !== null && previous?.revokedAt !== key.revokedAt) {
      queries.push({
        query: `INSERT INTO ${this.ks}.account_revocations (day, revoked_at, id) VALUES (?, ?, ?)`,
        params: [Math.floor(key.revokedAt / DAY_MS), cassandra.types.Long.fromNumber(key.revokedAt), key.id],
      });
    }
    await this.client.batch(queries, { prepare: true, logged: true });
  }

  getKey(id: string): Promise<StoredKey | null> {
    return this.one('account_keys', id);
  }

  async getKeyByDigest(digest: string): Promise<StoredKey | null> {
    const rs = await this.client.execute(`SELECT id FROM ${this.ks}.account_keys_by_digest WHERE digest = ?`, [digest], { prepare: true });
    const row = rs.first();
    if (!row) return null;
    const key = await this.getKey(String(row.get('id')));
    return key && key.digest === digest ? key : null;
  }

  async listKeys(orgId: string | null): Promise<StoredKey[]> {
    return (await this.many<StoredKey>('account_keys', await this.idsOf('account_keys_by_org', orgId ?? NO_ORG))).filter((k) => k.orgId === orgId);
  }

  async revocationsSince(sinceMs: number): Promise<string[]> {
    const ids = new Set<string>();
    const lastDay = Math.floor(this.now() / DAY_MS) + 1;
    // Gateways poll a recent `since`; an old one is bounded to a year of days rather than scanning forever.
    for (let day = Math.max(Math.floor(sinceMs / DAY_MS), lastDay - 366); day <= lastDay; day++) {
      const rs = await this.client.execute(`SELECT id FROM ${this.ks}.account_revocations WHERE day = ? AND revoked_at >= ?`,
        [day, cassandra.types.Long.fromNumber(sinceMs)], { prepare: true });
      for (const row of rs.rows) ids.add(String(row.get('id')));
    }
    return [...ids].sort();
  }

  async close(): Promise<void> {
    await this.client.shutdown();
  }
}
