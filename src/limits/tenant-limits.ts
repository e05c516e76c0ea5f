/**
 * The gateway's per-tenant rate limits (config `limits`): events per second per key, and query
 * requests per second per site, each a token bucket (token-buckets.ts). Over a limit the one
 * request fails with RATE_LIMITED (retryable), its message saying when to retry; nothing of it
 * is accepted. Per process, like the buckets (README "Limits").
 *
 * Deployment admin keys are not limited: they are the operator's own (imports, benchmarks,
 * the demo). Checks run after authorisation, so another tenant cannot spend a site's budget.
 */
import { SluiceError } from '../errors.js';
import type { Principal } from '../accounts/accounts.js';
import { Accounts } from '../accounts/accounts.js';
import { TokenBuckets } from './token-buckets.js';

export interface TenantLimitsConfig {
  readonly ingestEventsPerSecond: number;
  readonly ingestBurstEvents: number;
  readonly queryRequestsPerSecond: number;
  readonly queryBurstRequests: number;
}

/** The `limit` label of sluice_limit_rejections_total. */
export type LimitName = 'ingest_rate' | 'query_rate' | 'connections' | 'streams' | 'payload_size';

export interface TenantLimits {
  /** Spend `events` of the key's ingest budget, or throw RATE_LIMITED. */
  ingest(p: Principal, events: number): void;
  /** Spend one of the site's query budget, or throw RATE_LIMITED. */
  query(p: Principal, site: string): void;
}

export function createTenantLimits(
  config: TenantLimitsConfig,
  options: { readonly onRejected?: (limit: LimitName) => void; readonly now?: () => number } = {},
): TenantLimits {
  const now = options.now ? { now: options.now } : {};
  const ingest = config.ingestEventsPerSecond > 0
    ? new TokenBuckets({ ratePerSecond: config.ingestEventsPerSecond, burst: config.ingestBurstEvents, ...now })
    : undefined;
  const query = config.queryRequestsPerSecond > 0
    ? new TokenBuckets({ ratePerSecond: config.queryRequestsPerSecond, burst: config.queryBurstRequests, ...now })
    : undefined;
  const exempt = (p: Principal) => Accounts.isDeploymentAdmin(p);
  return {
    ingest(p, events) {
      if (!ingest || exempt(p) || events === 0) return;
      const taken = ingest.take(p.keyId, events);
      if (taken.ok) return;
      options.onRejected?.('ingest_rate');
      throw new SluiceError('RATE_LIMITED',
        `this key is over its ingest rate (${config.ingestEventsPerSecond} events/s, burst ${config.ingestBurstEvents}); retry in ${taken.retryAfterMs} ms`);
    },
    query(p, site) {
      if (!query || exempt(p)) return;
      const taken = query.take(site, 1);
      if (taken.ok) return;
      options.onRejected?.('query_rate');
      throw new SluiceError('RATE_LIMITED',
        `site "${site}" is over its query rate (${config.queryRequestsPerSecond} requests/s, burst ${config.queryBurstRequests}); retry in ${taken.retryAfterMs} ms`);
    },
  };
}

/** No limits: for a gateway built without them (benchmarks). */
export const NO_LIMITS: TenantLimits = { ingest() {}, query() {} };
