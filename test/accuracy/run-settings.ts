/**
 * Settings shared by the accuracy runs (embedded and distributed): the seed, the lateness rules
 * the generator and the reference assume (which the runs configure). The guard against a
 * visitor-salt rotation in the middle of sending is test/support/utc-day.ts.
 */
import type { Traffic } from './traffic-generator.js';

export const TRAFFIC_SEED = 20_261_122;
/** config aggregate: the defaults, except maxOutOfOrderMs as the harnesses set it. */
export const RUN_RULES = { allowedLatenessMs: 5 * 60_000, maxOutOfOrderMs: 2_000 } as const;
export const SESSION_TIMEOUT_MS = 30 * 60_000;

const MINUTE_MS = 60_000;

/** Every bucket of the traffic is final once the watermark reaches the end of its last minute. */
export function finalAtOf(traffic: Traffic): number {
  const end = Math.max(...traffic.windows.map((w) => w.toMs));
  return Math.ceil(end / MINUTE_MS) * MINUTE_MS + MINUTE_MS;
}
