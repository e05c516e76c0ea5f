/**
 * The `admin.*` routes (protocol/admin-routes.ts) as route handlers for the gateway's registry:
 * each passes the caller's principal and the validated body to the admin service, which
 * decides who may do what. `admin.visitor.erase` is decided here: an admin of the site's
 * organisation, or a deployment admin.
 *
 * `onRevoked` hears of a key revoked (or rotated away) here at once, so this process closes its
 * connections without waiting for the next revocation poll; other processes learn it by polling.
 */
import type { Static } from '@sinclair/typebox';
import { ADMIN_ROUTES, type AdminRouteName } from '../../protocol/admin-routes.js';
import { SluiceError } from '../errors.js';
import type { Caller, RouteHandlers } from '../gateway/route-handlers.js';
import type { ErasureRequest } from '../privacy/visitor-erasure.js';
import type { AdminService } from './admin-service.js';

type Body<R extends AdminRouteName> = Static<(typeof ADMIN_ROUTES)[R]['request']>;
type Handler = (body: unknown, caller: Caller) => Promise<unknown>;

export interface AdminHandlersOptions {
  /** GDPR erasure over the raw archive (privacy/visitor-erasure.ts). */
  readonly erase: (req: ErasureRequest) => Promise<{ erased: number; days: number }>;
  readonly onRevoked?: (keyId: string) => void;
}

export function createAdminHandlers(service: AdminService, options: AdminHandlersOptions): RouteHandlers {
  // The responder validated each body against the route's request schema before the call.
  const route = <R extends AdminRouteName>(fn: (body: Body<R>, caller: Caller) => Promise<unknown>): Handler =>
    (body, caller) => fn(body as Body<R>, caller);

  const handlers: { readonly [R in AdminRouteName]: Handler } = {
    'admin.org.create': route<'admin.org.create'>((b, c) => service.createOrganisation(c.principal, b)),
    'admin.org.list': route<'admin.org.list'>((_b, c) => service.listOrganisations(c.principal)),
    'admin.site.create': route<'admin.site.create'>((b, c) => service.createSite(c.principal, b)),
    'admin.site.update': route<'admin.site.update'>((b, c) => service.updateSite(c.principal, b)),
    'admin.site.list': route<'admin.site.list'>((b, c) => service.listSites(c.principal, b)),
    'admin.user.create': route<'admin.user.create'>((b, c) => service.createUser(c.principal, b)),
    'admin.user.list': route<'admin.user.list'>((b, c) => service.listUsers(c.principal, b)),
    'admin.key.create': route<'admin.key.create'>((b, c) => service.createKey(c.principal, b)),
    'admin.key.list': route<'admin.key.list'>((b, c) => service.listKeys(c.principal, b)),
    'admin.key.revoke': route<'admin.key.revoke'>(async (b, c) => {
      const key = await service.revokeKey(c.principal, b);
      options.onRevoked?.(key.id);
      return key;
    }),
    'admin.key.rotate': route<'admin.key.rotate'>(async (b, c) => {
      const created = await service.rotateKey(c.principal, b);
      options.onRevoked?.(b.id);
      return created;
    }),
    'admin.visitor.erase': route<'admin.visitor.erase'>(async (b, c) => {
      if (c.principal.scope.kind !== 'admin') throw new SluiceError('FORBIDDEN', 'this key is not an admin key');
      if (!(await c.allows('admin', b.site))) throw new SluiceError('SITE_FORBIDDEN', `this key does not administer site "${b.site}"`);
      const identity = 'visitor' in b ? { visitor: b.visitor } : { ip: b.ip, userAgent: b.userAgent };
      return options.erase({ site: b.site, identity, fromMs: b.from, toMs: b.to });
    }),
  };
  return { requestResponse: handlers };
}
