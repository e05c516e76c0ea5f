/**
 * The embedded default's AccountStore: maps in memory. Records are cloned on the way in and out
 * so a caller mutating what it got cannot change the store (as with a real database).
 */
import type { Organisation, Site, User } from '../../../protocol/admin-schema.js';
import type { AccountStore, StoredKey } from '../../accounts/account-store.js';

const byId = <T extends { id: string }>(a: T, b: T) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

export class MemoryAccountStore implements AccountStore {
  private readonly orgs = new Map<string, Organisation>();
  private readonly sites = new Map<string, Site>();
  private readonly users = new Map<string, User>();
  private readonly keys = new Map<string, StoredKey>();
  private readonly keysByDigest = new Map<string, string>();

  async putOrganisation(org: Organisation): Promise<void> {
    this.orgs.set(org.id, structuredClone(org));
  }

  async getOrganisation(id: string): Promise<Organisation | null> {
    return structuredClone(this.orgs.get(id) ?? null);
  }

  async listOrganisations(): Promise<Organisation[]> {
    return structuredClone([...this.orgs.values()].sort(byId));
  }

  async putSite(site: Site): Promise<void> {
    this.sites.set(site.id, structuredClone(site));
  }

  async getSite(id: string): Promise<Site | null> {
    return structuredClone(this.sites.get(id) ?? null);
  }

  async getSiteByPublicId(publicId: string): Promise<Site | null> {
    for (const s of this.sites.values()) if (s.publicId === publicId) return structuredClone(s);
    return null;
  }

  async listSites(orgId: string): Promise<Site[]> {
    return structuredClone([...this.sites.values()].filter((s) => s.orgId === orgId).sort(byId));
  }

  async putUser(user: User): Promise<void> {
    this.users.set(user.id, structuredClone(user));
  }

  async getUser(id: string): Promise<User | null> {
    return structuredClone(this.users.get(id) ?? null);
  }

  async listUsers(orgId: string): Promise<User[]> {
    return structuredClone([...this.users.values()].filter((u) => u.orgId === orgId).sort(byId));
  }

  async putKey(key: StoredKey): Promise<void> {
    const previous = this.keys.get(key.id);
    if (previous && previous.digest !== key.digest) this.keysByDigest.delete(previous.digest);
    this.keys.set(key.id, structuredClone(key));
    this.keysByDigest.set(key.digest, key.id);
  }

  async getKey(id: string): Promise<StoredKey | null> {
    return structuredClone(this.keys.get(id) ?? null);
  }

  async getKeyByDigest(digest: string): Promise<StoredKey | null> {
    const id = this.keysByDigest.get(digest);
    return id === undefined ? null : this.getKey(id);
  }

  async listKeys(orgId: string | null): Promise<StoredKey[]> {
    return structuredClone([...this.keys.values()].filter((k) => k.orgId === orgId).sort(byId));
  }

  async revocationsSince(sinceMs: number): Promise<string[]> {
    return [...this.keys.values()].filter((k) => k.revokedAt !== null && k.revokedAt >= sinceMs).map((k) => k.id).sort();
  }

  async close(): Promise<void> {}
}
