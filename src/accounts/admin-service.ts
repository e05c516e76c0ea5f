/**
 * The admin routes' logic: each takes the caller's Principal and a validated request and
 * answers, or fails with a catalog error. Authorisation is decided here, once per route, so
 * the gateway only validates and dispatches:
 * - organisations: created by a deployment admin; listed whole by one, an org admin sees its own;
 * - sites, users and keys of an organisation: its admins and the deployment's;
 * - deployment-wide admin keys (orgId null): only a deployment admin.
 * A caller who may not see a record gets ADMIN_NOT_FOUND, not FORBIDDEN, for records named by
 * id, so ids of other tenants cannot be probed.
 */
import type {
  ApiKeyInfo, KeyCreateRequest, Organisation, OrgCreateRequest, Site, SiteCreateRequest, SiteUpdateRequest, User, UserCreateRequest,
} from '../../protocol/admin-schema.js';
import { SluiceError } from '../errors.js';
import type { AccountStore } from './account-store.js';
import { Accounts, type Principal } from './accounts.js';

export interface AdminService {
  createOrganisation(p: Principal, req: OrgCreateRequest): Promise<Organisation>;
  listOrganisations(p: Principal): Promise<{ organisations: Organisation[] }>;
  createSite(p: Principal, req: SiteCreateRequest): Promise<Site>;
  updateSite(p: Principal, req: SiteUpdateRequest): Promise<Site>;
  listSites(p: Principal, req: { orgId: string }): Promise<{ sites: Site[] }>;
  createUser(p: Principal, req: UserCreateRequest): Promise<User>;
  listUsers(p: Principal, req: { orgId: string }): Promise<{ users: User[] }>;
  createKey(p: Principal, req: KeyCreateRequest): Promise<{ secret: string; key: ApiKeyInfo }>;
  listKeys(p: Principal, req: { orgId: string | null }): Promise<{ keys: ApiKeyInfo[] }>;
  revokeKey(p: Principal, req: { id: string }): Promise<ApiKeyInfo>;
  rotateKey(p: Principal, req: { id: string }): Promise<{ secret: string; key: ApiKeyInfo }>;
}

function requireAdmin(p: Principal, orgId: string | null): void {
  if (p.scope.kind !== 'admin') throw new SluiceError('FORBIDDEN', 'this key is not an admin key');
  if (!Accounts.administers(p, orgId)) {
    throw new SluiceError('FORBIDDEN', orgId === null ? 'only a deployment admin key may do this' : `this key does not administer organisation "${orgId}"`);
  }
}

export function createAdminService(accounts: Accounts, store: AccountStore): AdminService {
  /** The organisation of a record the caller names by id; unknown and not-yours look the same. */
  const visibleOrg = (p: Principal, orgId: string | null | undefined, what: string): string | null => {
    if (orgId === undefined || p.scope.kind !== 'admin' || !Accounts.administers(p, orgId)) throw new SluiceError('ADMIN_NOT_FOUND', `${what} does not exist`);
    return orgId;
  };

  return {
    async createOrganisation(p, req) {
      requireAdmin(p, null);
      return accounts.createOrganisation(req.name, ...(req.id !== undefined ? [req.id] : []));
    },
    async listOrganisations(p) {
      if (p.scope.kind !== 'admin') throw new SluiceError('FORBIDDEN', 'this key is not an admin key');
      if (p.scope.orgId === null) return { organisations: await store.listOrganisations() };
      const own = await store.getOrganisation(p.scope.orgId);
      return { organisations: own ? [own] : [] };
    },
    async createSite(p, req) {
      requireAdmin(p, req.orgId);
      return accounts.createSite(req);
    },
    async updateSite(p, req) {
      const site = await store.getSite(req.id);
      visibleOrg(p, site?.orgId, `site "${req.id}"`);
      const { id, ...change } = req;
      return accounts.updateSite(id, change);
    },
    async listSites(p, req) {
      requireAdmin(p, req.orgId);
      return { sites: await store.listSites(req.orgId) };
    },
    async createUser(p, req) {
      requireAdmin(p, req.orgId);
      return accounts.createUser(req.orgId, req.email, req.roles);
    },
    async listUsers(p, req) {
      requireAdmin(p, req.orgId);
      return { users: await store.listUsers(req.orgId) };
    },
    async createKey(p, req) {
      requireAdmin(p, req.orgId);
      return accounts.createKey({
        scope: req.scope, orgId: req.orgId,
        ...(req.label !== undefined ? { label: req.label } : {}),
        ...(req.expiresAt !== undefined ? { expiresAt: req.expiresAt } : {}),
        ...(req.userId !== undefined ? { userId: req.userId } : {}),
      });
    },
    async listKeys(p, req) {
      requireAdmin(p, req.orgId);
      return { keys: await accounts.listKeys(req.orgId) };
    },
    async revokeKey(p, req) {
      const key = await store.getKey(req.id);
      visibleOrg(p, key ? key.orgId : undefined, `key "${req.id}"`);
      return accounts.revokeKey(req.id);
    },
    async rotateKey(p, req) {
      const key = await store.getKey(req.id);
      visibleOrg(p, key ? key.orgId : undefined, `key "${req.id}"`);
      return accounts.rotateKey(req.id);
    },
  };
}
