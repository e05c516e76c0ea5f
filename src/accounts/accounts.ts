/**
 * Accounts: the rules over the AccountStore — creating organisations, sites, users and keys,
 * authenticating a key, and deciding what a key may do with a site.
 *
 * Keys are `slk_` + 24 random bytes (192 bits). They are stored only as SHA-256 digests: with
 * that much entropy a fast hash is as safe as a slow one (nobody can enumerate 2^192 secrets),
 * and a fast hash keeps SETUP cheap. The secret is returned once, by the call that creates it.
 *
 * What a scope allows (`allows`):
 *   ingest {site}       ingest for that site only
 *   read {sites}        queries and live streams of those sites only
 *   site {sites}        both of the above, for those sites
 *   admin {orgId}       everything on the organisation's sites, and managing the organisation
 *   admin {orgId: null} everything (the deployment's operator)
 * A user's role bounds the keys made on their behalf: viewer and analyst may hold read keys of
 * their sites, admin and owner also ingest keys, and only an owner an organisation admin key.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { ApiKeyInfo, KeyScope, Organisation, Role, Site, User } from '../../protocol/admin-schema.js';
import type { Goal } from '../../protocol/schema.js';
import { SluiceError } from '../errors.js';
import { normaliseOrigin } from '../gateway/upgrade-headers.js';
import type { AccountStore, StoredKey } from './account-store.js';

export type Action = 'ingest' | 'read' | 'admin';

/** Who a connection is: the key it authenticated with. */
export interface Principal {
  readonly keyId: string;
  readonly orgId: string | null;
  readonly scope: KeyScope;
  readonly expiresAt: number | null;
}

export const digestKey = (secret: string): string => createHash('sha256').update(secret).digest('hex');
const newSecret = (): string => `slk_${randomBytes(24).toString('base64url')}`;
const newId = (prefix: string): string => `${prefix}_${randomBytes(9).toString('base64url').replace(/[^A-Za-z0-9]/g, 'x')}`;

const ROLE_RANK: Readonly<Record<Role, number>> = { viewer: 0, analyst: 1, admin: 2, owner: 3 };

export interface AccountsOptions {
  readonly now?: () => number;
  /** How long a site's organisation is cached for authorisation; sites do not change organisation. */
  readonly siteCacheMs?: number;
  readonly defaultTimeZone?: string;
}

export interface NewSite {
  readonly orgId: string;
  readonly id: string;
  readonly domains?: readonly string[];
  readonly timeZone?: string;
  readonly goals?: readonly Goal[];
  readonly allowedOrigins?: readonly string[];
  readonly retention?: Site['retention'];
}

export interface NewKey {
  readonly scope: KeyScope;
  readonly label?: string;
  readonly expiresAt?: number | null;
  /** The organisation the key belongs to; must be null only for a deployment-wide admin key. */
  readonly orgId: string | null;
  /** When set, the user's roles must allow the scope. */
  readonly userId?: string;
}

export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Origins as the gateway compares them (lower case, no default port), so `https://Shop.example:443` matches. */
function normaliseOrigins(origins: readonly string[]): string[] {
  return origins.map((o) => {
    const n = normaliseOrigin(o);
    if (n === undefined) throw new SluiceError('ADMIN_INVALID', `"${o}" is not an origin (scheme://host[:port])`);
    return n;
  });
}

export class Accounts {
  private readonly now: () => number;
  private readonly siteCacheMs: number;
  private readonly siteOrg = new Map<string, { orgId: string | null; atMs: number }>();

  constructor(private readonly store: AccountStore, private readonly options: AccountsOptions = {}) {
    this.now = options.now ?? Date.now;
    this.siteCacheMs = options.siteCacheMs ?? 30_000;
  }

  async createOrganisation(name: string, id = newId('org')): Promise<Organisation> {
    if (await this.store.getOrganisation(id)) throw new SluiceError('ADMIN_CONFLICT', `organisation "${id}" exists`);
    const org: Organisation = { id, name, createdAt: this.now() };
    await this.store.putOrganisation(org);
    return org;
  }

  async createSite(input: NewSite): Promise<Site> {
    if (!(await this.store.getOrganisation(input.orgId))) throw new SluiceError('ADMIN_NOT_FOUND', `organisation "${input.orgId}" does not exist`);
    if (await this.store.getSite(input.id)) throw new SluiceError('ADMIN_CONFLICT', `site "${input.id}" exists`);
    const timeZone = input.timeZone ?? this.options.defaultTimeZone ?? 'UTC';
    if (!isTimeZone(timeZone)) throw new SluiceError('ADMIN_INVALID', `unknown time zone "${timeZone}"`);
    const site: Site = {
      id: input.id, orgId: input.orgId, domains: [...(input.domains ?? [])], timeZone,
      retention: { ...(input.retention ?? {}) }, goals: [...(input.goals ?? [])],
      publicId: newId('pub'), allowedOrigins: normaliseOrigins(input.allowedOrigins ?? []), createdAt: this.now(),
    };
    await this.store.putSite(site);
    return site;
  }

  async updateSite(id: string, change: Partial<Pick<Site, 'domains' | 'timeZone' | 'goals' | 'allowedOrigins' | 'retention'>>): Promise<Site> {
    const site = await this.store.getSite(id);
    if (!site) throw new SluiceError('ADMIN_NOT_FOUND', `site "${id}" does not exist`);
    if (change.timeZone !== undefined && !isTimeZone(change.timeZone)) throw new SluiceError('ADMIN_INVALID', `unknown time zone "${change.timeZone}"`);
    const updated: Site = { ...site, ...change, ...(change.allowedOrigins ? { allowedOrigins: normaliseOrigins(change.allowedOrigins) } : {}) };
    await this.store.putSite(updated);
    return updated;
  }

  async createUser(orgId: string, email: string, roles: Record<string, Role>, id = newId('usr')): Promise<User> {
    if (!(await this.store.getOrganisation(orgId))) throw new SluiceError('ADMIN_NOT_FOUND', `organisation "${orgId}" does not exist`);
    for (const site of Object.keys(roles)) {
      if ((await this.store.getSite(site))?.orgId !== orgId) throw new SluiceError('ADMIN_INVALID', `site "${site}" is not in organisation "${orgId}"`);
    }
    const user: User = { id, orgId, email, roles: { ...roles }, createdAt: this.now() };
    await this.store.putUser(user);
    return user;
  }

  /** Create a key; the secret is in the result and nowhere else, ever. */
  async createKey(input: NewKey): Promise<{ secret: string; key: ApiKeyInfo }> {
    await this.checkScope(input);
    const secret = newSecret();
    const stored: StoredKey = {
      id: newId('key'), label: input.label ?? '', scope: input.scope, createdAt: this.now(),
      expiresAt: input.expiresAt ?? null, revokedAt: null, digest: digestKey(secret), orgId: input.orgId,
    };
    await this.store.putKey(stored);
    return { secret, key: publicKey(stored) };
  }

  async revokeKey(id: string): Promise<ApiKeyInfo> {
    const key = await this.store.getKey(id);
    if (!key) throw new SluiceError('ADMIN_NOT_FOUND', `key "${id}" does not exist`);
    if (key.revokedAt !== null) return publicKey(key);
    const revoked: StoredKey = { ...key, revokedAt: this.now() };
    await this.store.putKey(revoked);
    return publicKey(revoked);
  }

  /** A new key with the same scope, label and expiry; the old one is revoked. */
  async rotateKey(id: string): Promise<{ secret: string; key: ApiKeyInfo }> {
    const old = await this.store.getKey(id);
    if (!old) throw new SluiceError('ADMIN_NOT_FOUND', `key "${id}" does not exist`);
    if (old.revokedAt !== null) throw new SluiceError('ADMIN_INVALID', `key "${id}" is revoked`);
    const created = await this.createKey({ scope: old.scope, label: old.label, expiresAt: old.expiresAt, orgId: old.orgId });
    await this.revokeKey(id);
    return created;
  }

  async listKeys(orgId: string | null): Promise<ApiKeyInfo[]> {
    return (await this.store.listKeys(orgId)).map(publicKey);
  }

  /** The principal of a secret, or the reason it is refused. */
  async authenticate(secret: string): Promise<Principal | { readonly refused: 'AUTH_INVALID' | 'AUTH_EXPIRED' | 'AUTH_REVOKED' }> {
    const key = await this.store.getKeyByDigest(digestKey(secret));
    if (!key) return { refused: 'AUTH_INVALID' };
    if (key.revokedAt !== null) return { refused: 'AUTH_REVOKED' };
    if (key.expiresAt !== null && key.expiresAt <= this.now()) return { refused: 'AUTH_EXPIRED' };
    return { keyId: key.id, orgId: key.orgId, scope: key.scope, expiresAt: key.expiresAt };
  }

  /**
   * The ingest-only principal of a browser that names a site's public id, when its Origin (as
   * the gateway normalised it) is one the site allows; null otherwise (an unknown id and a
   * wrong origin look the same).
   */
  async authenticatePublic(publicId: string, origin: string | undefined): Promise<Principal | null> {
    if (origin === undefined) return null;
    const site = await this.store.getSiteByPublicId(publicId);
    if (!site || !site.allowedOrigins.includes(origin)) return null;
    return { keyId: `public:${site.publicId}`, orgId: site.orgId, scope: { kind: 'ingest', site: site.id }, expiresAt: null };
  }

  /** Whether the principal may do `action` on `site`. */
  async allows(p: Principal, action: Action, site: string): Promise<boolean> {
    const decided = Accounts.decide(p, action, site, this.now());
    if (decided !== undefined) return decided;
    return p.scope.kind === 'admin' && (await this.orgOfSite(site)) === p.scope.orgId;
  }

  /**
   * `allows` where the scope alone decides (every scope but an organisation admin's, which
   * needs the site's organisation from the store): true or false, or undefined to ask the store.
   * Synchronous, for the gateway's per-event path.
   */
  static decide(p: Principal, action: Action, site: string, nowMs: number): boolean | undefined {
    if (p.expiresAt !== null && p.expiresAt <= nowMs) return false;
    const scope = p.scope;
    switch (scope.kind) {
      case 'ingest':
        return action === 'ingest' && scope.site === site;
      case 'read':
        return action === 'read' && scope.sites.includes(site);
      case 'site':
        return action !== 'admin' && scope.sites.includes(site);
      case 'admin':
        return scope.orgId === null ? true : undefined;
    }
  }

  /**
   * Whether the scope's kind allows the action on some site at all: an ingest key never reads, a
   * read key never ingests, only admin keys administer. Failing this is FORBIDDEN (the route),
   * failing `allows` for one site SITE_FORBIDDEN (the site).
   */
  static kindAllows(scope: KeyScope, action: Action): boolean {
    switch (scope.kind) {
      case 'ingest':
        return action === 'ingest';
      case 'read':
        return action === 'read';
      case 'site':
        return action !== 'admin';
      case 'admin':
        return true;
    }
  }

  /** The deployment's own keys (deployment admins): not subject to per-tenant limits. */
  static isDeploymentAdmin(p: Principal): boolean {
    return p.scope.kind === 'admin' && p.scope.orgId === null;
  }

  /** Whether the principal may manage the organisation (null: the deployment). */
  static administers(p: Principal, orgId: string | null): boolean {
    return p.scope.kind === 'admin' && (p.scope.orgId === null || p.scope.orgId === orgId);
  }

  /**
   * On first start, a deployment-wide admin key so an operator can create the rest; null when
   * one exists already. The caller shows the secret once and never logs it again.
   */
  async bootstrapAdminKey(): Promise<string | null> {
    const existing = (await this.store.listKeys(null)).filter((k) => k.revokedAt === null);
    if (existing.length > 0) return null;
    const { secret } = await this.createKey({ scope: { kind: 'admin', orgId: null }, label: 'bootstrap admin', orgId: null });
    return secret;
  }

  private async orgOfSite(site: string): Promise<string | null> {
    const cached = this.siteOrg.get(site);
    if (cached && this.now() - cached.atMs < this.siteCacheMs) return cached.orgId;
    const orgId = (await this.store.getSite(site))?.orgId ?? null;
    if (this.siteOrg.size > 100_000) this.siteOrg.clear();
    this.siteOrg.set(site, { orgId, atMs: this.now() });
    return orgId;
  }

  private async checkScope(input: NewKey): Promise<void> {
    const { scope, orgId } = input;
    if (scope.kind === 'admin') {
      if (scope.orgId !== orgId) throw new SluiceError('ADMIN_INVALID', 'an admin key belongs to the organisation it administers');
    } else {
      if (orgId === null) throw new SluiceError('ADMIN_INVALID', 'an ingest or read key belongs to an organisation');
      for (const s of scope.kind === 'ingest' ? [scope.site] : scope.sites) {
        if ((await this.store.getSite(s))?.orgId !== orgId) throw new SluiceError('ADMIN_INVALID', `site "${s}" is not in organisation "${orgId}"`);
      }
    }
    if (orgId !== null && !(await this.store.getOrganisation(orgId))) throw new SluiceError('ADMIN_NOT_FOUND', `organisation "${orgId}" does not exist`);
    if (input.expiresAt != null && input.expiresAt <= this.now()) throw new SluiceError('ADMIN_INVALID', 'expiry is in the past');
    if (input.userId === undefined) return;
    const user = await this.store.getUser(input.userId);
    if (!user || user.orgId !== orgId) throw new SluiceError('ADMIN_NOT_FOUND', `user "${input.userId}" is not in organisation "${String(orgId)}"`);
    const need = scope.kind === 'read' ? 'viewer' : scope.kind === 'admin' ? 'owner' : 'admin';
    const sites = scope.kind === 'ingest' ? [scope.site] : scope.kind === 'admin' ? Object.keys(user.roles) : scope.sites;
    const ok = sites.length > 0 && sites.every((s) => {
      const role = user.roles[s];
      return role !== undefined && ROLE_RANK[role] >= ROLE_RANK[need];
    });
    if (!ok) throw new SluiceError('FORBIDDEN', `user "${user.id}" may not hold a ${scope.kind} key for ${sites.join(', ') || 'the organisation'}`);
  }
}

function publicKey(k: StoredKey): ApiKeyInfo {
  return { id: k.id, label: k.label, scope: k.scope, createdAt: k.createdAt, expiresAt: k.expiresAt, revokedAt: k.revokedAt };
}
