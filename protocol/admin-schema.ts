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
 * sites; `admin` manages one organisation (orgId) or, with orgId null, the whole deployment.
 */
export const KeyScope = Type.Union([
  Type.Object({ kind: Type.Literal('ingest'), site: SiteId }, { additionalProperties: false }),
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
