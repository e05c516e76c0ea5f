/**
 * Static API keys from the configuration (`gateway.apiKeys`), and which sites each may use.
 * Keys are held only as SHA-256 digests, so a heap dump does not reveal them. The authenticator
 * (authenticator.ts) turns them into principals beside the account store's keys, which carry
 * the full model (organisations, scopes, revocation, expiry).
 */
import { createHash, randomBytes } from 'node:crypto';

export interface KeyGrant {
  /** undefined: every site. */
  readonly sites: ReadonlySet<string> | undefined;
}

const digest = (key: string) => createHash('sha256').update(key).digest('hex');

export class ApiKeys {
  private readonly grants = new Map<string, KeyGrant>();

  /** Entries are `key` (every site) or `key:site1,site2`. */
  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const colon = entry.indexOf(':');
      const key = colon < 0 ? entry : entry.slice(0, colon);
      const sites = colon < 0 ? undefined : new Set(entry.slice(colon + 1).split(',').map((s) => s.trim()).filter(Boolean));
      this.grants.set(digest(key), { sites });
    }
  }

  static generateKey(): string {
    return `slk_${randomBytes(24).toString('base64url')}`;
  }

  get size(): number {
    return this.grants.size;
  }

  lookup(key: string): KeyGrant | undefined {
    return this.grants.get(digest(key));
  }

  /** A stable, non-secret name for a key (a prefix of its digest): for logs, metrics and per-key limits. */
  idOf(key: string): string {
    return digest(key).slice(0, 12);
  }

  static allows(grant: KeyGrant, site: string): boolean {
    return grant.sites === undefined || grant.sites.has(site);
  }
}
