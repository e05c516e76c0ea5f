/**
 * Settings shared by the accuracy runs (embedded and distributed): the seed, the lateness rules
 * the generator and the reference assume (which the runs configure), and the guard against a
 * visitor-salt rotation in the middle of sending.
 */
import { waitFor } from '../support/wait-for.js';
import type { Traffic } from './traffic-generator.js';

export const TRAFFIC_SEED = 20_261_122;
/** config aggregate: the defaults, except maxOutOfOrderMs as the harnesses set it. */
export const RUN_RULES = { allowedLatenessMs: 5 * 60_000, maxOutOfOrderMs: 2_000 } as const;
export const SESSION_TIMEOUT_MS = 30 * 60_000;

const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;

/**
 * Visitor ids are keyed hashes with a salt of the UTC day of the *received* time
 * (visitor-id.ts), so every event of a run must be received on one UTC day for the reference's
 * identities to hold. A run sends for well under two minutes: closer to midnight than
 * `marginMs`, wait for the new day.
 */
export async function avoidUtcMidnight(marginMs = 5 * MINUTE_MS): Promise<void> {
  const now = Date.now();
  const midnight = Math.ceil(now / DAY_MS) * DAY_MS;
  if (midnight - now > marginMs) return;
  await waitFor(() => Date.now() >= midnight + 1_000, { what: 'the UTC day to change before sending', deadlineMs: marginMs + 10_000, intervalMs: 1_000 });
}

/** Every bucket of the traffic is final once the watermark reaches the end of its last minute. */
export function finalAtOf(traffic: Traffic): number {
  const end = Math.max(...traffic.windows.map((w) => w.toMs));
  return Math.ceil(end / MINUTE_MS) * MINUTE_MS + MINUTE_MS;
}
