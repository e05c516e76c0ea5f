/**
 * The account model on the wire: organisations, sites, users with roles per site, and API keys.
 * Admin routes (routes.ts) take and return these; the account store keeps them. A key's secret
 * is never part of any of these shapes except the one response that creates it.
 */
import { Type, type Static } from '@sinclair/typebox';
import { EpochMs, Goal, SiteId } from './schema.js';

const Id = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' });
const Name = Type.String({ minLength: 1, maxLength: 200 });
const Domain = Type.String({ minLength: 1, maxLength: 253, pattern: '^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$' });
/** `https://example.com` or `http://localhost:8080`: the WebSocket Origin a browser sends. */
const Origin = Type.String({ minLength: 1, maxLength: 300, pattern: '^https?://[^/\\s]+$' });

export const Role = Type.Union([Type.Literal('owner'), Type.Literal('admin'), Type.Literal('analyst'), Type.Literal('viewer')]);
export type Role = Static<typeof Role>;

export const Organisation = Type.Object({ id: Id, name: Name, createdAt: EpochMs }, { additionalProperties: false });
export type Organisation = Static<typeof Organisation>;

export const Retention = Type.Object({
  rawDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3660 })),
  minuteDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3660 })),
  quarterDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3660 })),
  hourDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3660 })),
  dayDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 36600 })),
}, { additionalProperties: false });

export const Site = Type.Object({
  id: SiteId,
  orgId: Id,
  domains: Type.Array(Domain, { maxItems: 50 }),
  timeZone: Type.String({ minLength: 1, maxLength: 64 }),
  retention: Retention,
  goals: Type.Array(Goal, { maxItems: 100 }),
  /** Public id for browser tracking: accepted without a secret, only from `allowedOrigins`. */
  publicId: Type.String({ minLength: 1, maxLength: 64 }),
  allowedOrigins: Type.Array(Origin, { maxItems: 50 }),
  createdAt: EpochMs,
}, { additionalProperties: false });
export type Site = Static<typeof Site>;

export const User = Type.Object({
  id: Id,
  orgId: Id,
  email: Type.String({ minLength: 3, maxLength: 254, pattern: '^[^@\\s]+@[^@\\s]+$' }),
  /** Role per site id. */
  roles: Type.Record(SiteId, Role),
  createdAt: EpochMs,
}, { additionalProperties: false });
export type User = Static<typeof User>;

/**
 * What a key may do: `ingest` sends events for one site; `read` queries and streams the given
 * sites; `site` both, for the given sites (a server that sends and reads back, and the keys of
 * the static configuration); `admin` manages one organisation (orgId) or, with orgId null, the
 * whole deployment.
 */
export const KeyScope = Type.Union([
  Type.Object({ kind: Type.Literal('ingest'), site: SiteId }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('site'), sites: Type.Array(SiteId, { minItems: 1, maxItems: 1000 }) }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('read'), sites: Type.Array(SiteId, { minItems: 1, maxItems: 1000 }) }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('admin'), orgId: Type.Union([Id, Type.Null()]) }, { additionalProperties: false }),
]);
export type KeyScope = Static<typeof KeyScope>;

/** A key as stored and listed: its secret only as a digest. */
export const ApiKeyInfo = Type.Object({
  id: Id,
  label: Type.String({ maxLength: 200 }),
  scope: KeyScope,
  createdAt: EpochMs,
  expiresAt: Type.Union([EpochMs, Type.Null()]),
  revokedAt: Type.Union([EpochMs, Type.Null()]),
}, { additionalProperties: false });
export type ApiKeyInfo = Static<typeof ApiKeyInfo>;

// ---- Admin route requests and responses (routes.ts `admin.*`) ----

const Empty = Type.Object({}, { additionalProperties: false });
const OrgRef = Type.Object({ orgId: Id }, { additionalProperties: false });
const OrgOrDeployment = Type.Union([Id, Type.Null()]);

export const OrgCreateRequest = Type.Object({ name: Name, id: Type.Optional(Id) }, { additionalProperties: false });
export const OrgListRequest = Empty;
export const OrgListResponse = Type.Object({ organisations: Type.Array(Organisation) });

export const SiteCreateRequest = Type.Object({
  orgId: Id, id: SiteId,
  domains: Type.Optional(Type.Array(Domain, { maxItems: 50 })),
  timeZone: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  goals: Type.Optional(Type.Array(Goal, { maxItems: 100 })),
  allowedOrigins: Type.Optional(Type.Array(Origin, { maxItems: 50 })),
  retention: Type.Optional(Retention),
}, { additionalProperties: false });
export const SiteUpdateRequest = Type.Object({
  id: SiteId,
  domains: Type.Optional(Type.Array(Domain, { maxItems: 50 })),
  timeZone: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  goals: Type.Optional(Type.Array(Goal, { maxItems: 100 })),
  allowedOrigins: Type.Optional(Type.Array(Origin, { maxItems: 50 })),
  retention: Type.Optional(Retention),
}, { additionalProperties: false });
export const SiteListRequest = OrgRef;
export const SiteListResponse = Type.Object({ sites: Type.Array(Site) });

export const UserCreateRequest = Type.Object({
  orgId: Id,
  email: Type.String({ minLength: 3, maxLength: 254, pattern: '^[^@\\s]+@[^@\\s]+$' }),
  roles: Type.Record(SiteId, Role, { maxProperties: 1000 }),
}, { additionalProperties: false });
export const UserListRequest = OrgRef;
export const UserListResponse = Type.Object({ users: Type.Array(User) });

export const KeyCreateRequest = Type.Object({
  /** null: a deployment-wide admin key (only a deployment admin may create one). */
  orgId: OrgOrDeployment,
  scope: KeyScope,
  label: Type.Optional(Type.String({ maxLength: 200 })),
  expiresAt: Type.Optional(Type.Union([EpochMs, Type.Null()])),
  userId: Type.Optional(Id),
}, { additionalProperties: false });
/** The only response that carries a secret: show it once, it cannot be read back. */
export const KeyCreated = Type.Object({ secret: Type.String(), key: ApiKeyInfo });
export const KeyListRequest = Type.Object({ orgId: OrgOrDeployment }, { additionalProperties: false });
export const KeyListResponse = Type.Object({ keys: Type.Array(ApiKeyInfo) });
export const KeyRef = Type.Object({ id: Id }, { additionalProperties: false });

export type OrgCreateRequest = Static<typeof OrgCreateRequest>;
export type SiteCreateRequest = Static<typeof SiteCreateRequest>;
export type SiteUpdateRequest = Static<typeof SiteUpdateRequest>;
export type UserCreateRequest = Static<typeof UserCreateRequest>;
export type KeyCreateRequest = Static<typeof KeyCreateRequest>;
