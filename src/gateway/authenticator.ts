/**
 * Who a connection is, decided once at SETUP, and what it may do, asked per request.
 *
 * Three kinds of credential, tried in this order:
 * - static keys from the configuration (`gateway.apiKeys`): `key` is a deployment admin,
 *   `key:site1,site2` may ingest and read those sites. For operators who provision keys as
 *   secrets (Kubernetes) and for tests; held only as SHA-256 digests (api-keys.ts);
 * - a site's public id (`pub_…`), for browsers that cannot keep a secret: ingest only, and only
 *   when the WebSocket's Origin is one the site allows (like a Google Analytics measurement id);
 * - keys in the account store (accounts.ts): scoped, revocable, with an optional expiry.
 */
import { Accounts, type Action, type Principal } from '../accounts/accounts.js';
import { ApiKeys } from './api-keys.js';

export type Refusal = 'AUTH_INVALID' | 'AUTH_EXPIRED' | 'AUTH_REVOKED';

export interface ConnectionIdentity {
  /** The WebSocket upgrade's Origin header, lower-cased; undefined over TCP. */
  readonly origin?: string | undefined;
}

export interface Authenticator {
  authenticate(token: string, who: ConnectionIdentity): Promise<Principal | { readonly refused: Refusal }>;
  allows(principal: Principal, action: Action, site: string): Promise<boolean>;
}

export const PUBLIC_ID_PREFIX = 'pub_';

/**
 * Without `accounts` only the static keys are known (a gateway built for a benchmark); every
 * other credential is AUTH_INVALID.
 */
export function createAuthenticator(staticKeys: ApiKeys, accounts?: Accounts): Authenticator {
  return {
    async authenticate(token, who) {
      const grant = staticKeys.lookup(token);
      if (grant) {
        const keyId = `static:${staticKeys.idOf(token)}`;
        return grant.sites === undefined
          ? { keyId, orgId: null, scope: { kind: 'admin', orgId: null }, expiresAt: null }
          : { keyId, orgId: null, scope: { kind: 'site', sites: [...grant.sites] }, expiresAt: null };
      }
      if (!accounts) return { refused: 'AUTH_INVALID' };
      if (token.startsWith(PUBLIC_ID_PREFIX)) {
        return (await accounts.authenticatePublic(token, who.origin)) ?? { refused: 'AUTH_INVALID' };
      }
      return accounts.authenticate(token);
    },
    // Without a store an organisation admin's site cannot be resolved: refused, not guessed.
    allows: async (principal, action, site) => (accounts ? accounts.allows(principal, action, site) : Accounts.decide(principal, action, site, Date.now()) ?? false),
  };
}

/** Whether a static key list holds a deployment admin (an entry without sites). */
export function hasStaticAdmin(entries: readonly string[]): boolean {
  return entries.some((e) => !e.includes(':'));
}
