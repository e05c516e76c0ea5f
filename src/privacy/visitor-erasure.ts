/**
 * GDPR erasure of one visitor's raw events. Visitor ids are daily-salted hashes (ingest/visitor-id.ts),
 * so the visitor is named the way ingest saw them — the SDK's visitor value, or the IP and user
 * agent — and their id is recomputed for every UTC day of the range (plus the day before: ids
 * follow the received time, which can be a little after the event time). Only a deployment with
 * a configured `ingest.visitorSecret` can do this: with a per-process random secret the ids of
 * earlier processes cannot be recomputed, and erasure says so instead of reporting zero.
 *
 * Rollups are aggregates without per-visitor data and are not touched.
 */
import type { RawArchive } from '../aggregate/raw-archive.js';
import { SluiceError } from '../errors.js';
import { createVisitorIdHasher } from '../ingest/visitor-id.js';

const DAY_MS = 86_400_000;
/** Erasure walks one id per day; a bound keeps a typo'd range from running for hours. */
export const MAX_ERASURE_DAYS = 800;

export type VisitorIdentity =
  | { readonly visitor: string }
  | { readonly ip: string; readonly userAgent: string };

export interface ErasureRequest {
  readonly site: string;
  readonly identity: VisitorIdentity;
  readonly fromMs: number;
  readonly toMs: number;
}

/** The spelling ingest hashes (ingest-service.ts canonicalIp): IPv6 lower case, IPv4-mapped IPv6 as IPv4. */
function canonicalIp(ip: string): string {
  if (!ip.includes(':')) return ip;
  const lower = ip.toLowerCase();
  return lower.startsWith('::ffff:') && lower.includes('.') ? lower.slice(7) : lower;
}

export function createVisitorErasure(archive: Pick<RawArchive, 'deleteVisitors'>, visitorSecret: string) {
  return async function erase(req: ErasureRequest): Promise<{ erased: number; days: number }> {
    if (visitorSecret === '') {
      throw new SluiceError('ADMIN_INVALID', 'erasure needs ingest.visitorSecret configured: without it visitor ids cannot be recomputed');
    }
    if (!(req.toMs > req.fromMs)) throw new SluiceError('ADMIN_INVALID', '"to" must be after "from"');
    const firstDay = Math.floor(req.fromMs / DAY_MS) - 1;
    const lastDay = Math.floor((req.toMs - 1) / DAY_MS);
    if (lastDay - firstDay + 1 > MAX_ERASURE_DAYS) throw new SluiceError('ADMIN_INVALID', `at most ${MAX_ERASURE_DAYS} days per erasure`);
    // A fresh hasher: nothing it computes is cached beyond this call.
    const hash = createVisitorIdHasher(visitorSecret, 1);
    const ids = new Set<string>();
    for (let day = firstDay; day <= lastDay + 1; day++) {
      const at = day * DAY_MS;
      ids.add('visitor' in req.identity
        ? hash(req.site, req.identity.visitor, '', '', at)
        : hash(req.site, undefined, canonicalIp(req.identity.ip), req.identity.userAgent, at));
    }
    const erased = await archive.deleteVisitors(req.site, ids, req.fromMs, req.toMs);
    return { erased, days: lastDay - firstDay + 1 };
  };
}
