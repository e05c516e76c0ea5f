/**
 * Tier retention, shared by the stores and the tier roller.
 */
import { TIERS, type Tier } from './rollup.js';

const DAY_MS = 86_400_000;

/** How long rows of each tier live, counted from their bucket start, in ms; null: forever. */
export type TierRetention = Readonly<Record<Tier, number | null>>;

/** The config's defaults (config.ts `rollups`): 35 days of minutes, 400 of quarters, 800 of hours, 3660 of days. */
export const DEFAULT_TIER_RETENTION: TierRetention = { minute: 35 * DAY_MS, quarter: 400 * DAY_MS, hour: 800 * DAY_MS, day: 3660 * DAY_MS };

/** Retention from the config's `rollups` section (days). */
export function tierRetentionFromDays(days: {
  readonly minuteRetentionDays: number; readonly quarterRetentionDays: number;
  readonly hourRetentionDays: number; readonly dayRetentionDays: number;
}): TierRetention {
  return {
    minute: days.minuteRetentionDays * DAY_MS,
    quarter: days.quarterRetentionDays * DAY_MS,
    hour: days.hourRetentionDays * DAY_MS,
    day: days.dayRetentionDays * DAY_MS,
  };
}

/**
 * A full retention from a partial one: null keeps every tier forever; absent tiers take
 * `defaults`.
 */
export function resolveRetention(given: Partial<TierRetention> | null | undefined, defaults: TierRetention): TierRetention {
  if (given === null) return { minute: null, quarter: null, hour: null, day: null };
  const out = { ...defaults };
  for (const tier of TIERS) {
    const v = given?.[tier];
    if (v !== undefined) out[tier] = v;
  }
  return out;
}
