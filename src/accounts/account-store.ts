/**
 * AccountStore: organisations, sites, users and API keys. Real implementation: Cassandra
 * (adapters/cassandra); embedded: adapters/memory.
 *
 * Contract (test/contract/account-store.contract.ts):
 * - `put*` replaces the whole record with that id (idempotent); `get*` returns it or null;
 * - keys are found by the SHA-256 digest of their secret, never by the secret; a key record is
 *   never deleted, only revoked (revokedAt set), so an audit can list it;
 * - lists are ordered by id and scoped: an organisation's list never holds another's records;
 * - `revocationsSince(t)` lists the ids of keys revoked at or after t, so every gateway process
 *   can close the connections of a revoked key within its poll interval.
 */
import type { ApiKeyInfo, Organisation, Site, User } from '../../protocol/admin-schema.js';

export interface StoredKey extends ApiKeyInfo {
  /** Hex SHA-256 of the secret. */
  readonly digest: string;
  /** The organisation the key belongs to; null for a deployment-wide admin key. */
  readonly orgId: string | null;
}

export interface AccountStore {
  putOrganisation(org: Organisation): Promise<void>;
  getOrganisation(id: string): Promise<Organisation | null>;
  listOrganisations(): Promise<Organisation[]>;

  putSite(site: Site): Promise<void>;
  getSite(id: string): Promise<Site | null>;
  getSiteByPublicId(publicId: string): Promise<Site | null>;
  listSites(orgId: string): Promise<Site[]>;

  putUser(user: User): Promise<void>;
  getUser(id: string): Promise<User | null>;
  listUsers(orgId: string): Promise<User[]>;

  putKey(key: StoredKey): Promise<void>;
  getKey(id: string): Promise<StoredKey | null>;
  getKeyByDigest(digest: string): Promise<StoredKey | null>;
  /** Keys of an organisation; null: the deployment-wide admin keys. */
  listKeys(orgId: string | null): Promise<StoredKey[]>;
  revocationsSince(sinceMs: number): Promise<string[]>;

  close(): Promise<void>;
}
