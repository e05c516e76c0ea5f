/**
 * Admin routes: organisations, sites, users and keys (admin-schema.ts), and GDPR erasure of one
 * visitor. Every one needs an admin key; which admin may do what is documented in README.md
 * ("Admin routes"). All are request/response.
 */
import { Type, type Static } from '@sinclair/typebox';
import {
  ApiKeyInfo, KeyCreated, KeyCreateRequest, KeyListRequest, KeyListResponse, KeyRef, Organisation, OrgCreateRequest, OrgListRequest,
  OrgListResponse, Site, SiteCreateRequest, SiteListRequest, SiteListResponse, SiteUpdateRequest, User, UserCreateRequest, UserListRequest,
  UserListResponse,
} from './admin-schema.js';
import type { RouteSpec } from './route-spec.js';
import { EpochMs, SiteId } from './schema.js';

const ErasureRange = { site: SiteId, from: EpochMs, to: EpochMs };

/**
 * One visitor's raw events of a site in [from, to): named as ingest saw them — the SDK's
 * `visitor` value, or the `ip` and `userAgent` the events came with.
 */
export const VisitorEraseRequest = Type.Union([
  Type.Object({ ...ErasureRange, visitor: Type.String({ minLength: 1, maxLength: 128 }) }, { additionalProperties: false }),
  Type.Object({ ...ErasureRange, ip: Type.String({ minLength: 2, maxLength: 45 }), userAgent: Type.String({ maxLength: 1024 }) }, { additionalProperties: false }),
]);
export type VisitorEraseRequest = Static<typeof VisitorEraseRequest>;
/** `erased`: raw events removed; `days`: UTC days whose visitor ids were recomputed. */
export const VisitorEraseResponse = Type.Object({ erased: Type.Integer({ minimum: 0 }), days: Type.Integer({ minimum: 0 }) });

export const ADMIN_ROUTES = {
  'admin.org.create': { interaction: 'requestResponse', request: OrgCreateRequest, response: Organisation },
  'admin.org.list': { interaction: 'requestResponse', request: OrgListRequest, response: OrgListResponse },
  'admin.site.create': { interaction: 'requestResponse', request: SiteCreateRequest, response: Site },
  'admin.site.update': { interaction: 'requestResponse', request: SiteUpdateRequest, response: Site },
  'admin.site.list': { interaction: 'requestResponse', request: SiteListRequest, response: SiteListResponse },
  'admin.user.create': { interaction: 'requestResponse', request: UserCreateRequest, response: User },
  'admin.user.list': { interaction: 'requestResponse', request: UserListRequest, response: UserListResponse },
  'admin.key.create': { interaction: 'requestResponse', request: KeyCreateRequest, response: KeyCreated },
  'admin.key.list': { interaction: 'requestResponse', request: KeyListRequest, response: KeyListResponse },
  'admin.key.revoke': { interaction: 'requestResponse', request: KeyRef, response: ApiKeyInfo },
  'admin.key.rotate': { interaction: 'requestResponse', request: KeyRef, response: KeyCreated },
  'admin.visitor.erase': { interaction: 'requestResponse', request: VisitorEraseRequest, response: VisitorEraseResponse },
} as const satisfies Record<string, RouteSpec>;

export type AdminRouteName = keyof typeof ADMIN_ROUTES;
