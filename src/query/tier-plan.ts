/**
 * The tier planner: which rollup rows answer a span of time. Each span (one local interval of
 * a series, or the whole range) is covered by the coarsest rows aligned inside it — day rows
 * for the whole UTC days in it, then hour rows, then quarter-hour rows, then minute rows at the
 * edges — so a local day of +05:30 (18:30 to 18:30 UTC) reads quarter rows at both ends, hour
 * rows and day rows in between, and nothing outside the day.
 *
 * Retention: rows of a tier expire `retentionMs` after their bucket's start. A tier is planned
 * only for buckets that start at or after `nowMs − retentionMs + safetyMs` (the safety keeps a
 * row about to expire out of the plan, which could otherwise vanish between plan and read).
 * A tier can also be limited at the recent end (`usableBeforeMs`), for stores that fill coarse
 * tiers only once buckets are complete. When no tier fits a remainder (an edge finer than the
 * finest tier still kept), the finest kept tier's rows starting inside the span are used: the
 * answer then counts whole buckets by their start, like minute rows at a range edge do.
 */
import { TIER_MS, type Tier } from '../aggregate/rollup.js';

/** Coarsest first: the order in which the planner tries tiers. */
export const TIERS_COARSE_FIRST: readonly Tier[] = ['day', 'hour', 'quarter', 'minute'];

/** Where a tier may be read: buckets with usableFromMs <= bucketMs and bucketMs + length <= usableBeforeMs. */
export interface TierWindow {
  readonly usableFromMs: number;
  readonly usableBeforeMs: number;
}

export type TierWindows = Readonly<Record<Tier, TierWindow>>;

/** One read: rows of `tier` with fromMs <= bucketMs < toMs (both multiples of the tier's length, except at a fallback edge). */
export interface Segment {
  readonly tier: Tier;
  readonly fromMs: number;
  readonly toMs: number;
}

export interface RetentionDays {
  readonly minuteRetentionDays: number;
  readonly quarterRetentionDays: number;
  readonly hourRetentionDays: number;
  readonly dayRetentionDays: number;
}

const DAY_MS = 86_400_000;
/** Margin before a row's expiry at which the planner stops relying on it. */
export const RETENTION_SAFETY_MS = 3_600_000;

/** Tier windows from the retention config at `nowMs`; `usableBeforeMs` per tier defaults to unbounded. */
export function tierWindows(retention: RetentionDays, nowMs: number, usableBeforeMs: Partial<Record<Tier, number>> = {}): TierWindows {
  const w = (days: number, tier: Tier): TierWindow => ({
    usableFromMs: nowMs - days * DAY_MS + RETENTION_SAFETY_MS,
    usableBeforeMs: usableBeforeMs[tier] ?? Number.MAX_SAFE_INTEGER,
  });
  return {
    minute: w(retention.minuteRetentionDays, 'minute'),
    quarter: w(retention.quarterRetentionDays, 'quarter'),
    hour: w(retention.hourRetentionDays, 'hour'),
    day: w(retention.dayRetentionDays, 'day'),
  };
}

const ceilTo = (ms: number, step: number) => Math.ceil(ms / step) * step;
const floorTo = (ms: number, step: number) => Math.floor(ms / step) * step;

/**
 * Cover [fromMs, toMs) with segments, coarsest aligned first. The segments are disjoint, in
 * time order, and each lies inside the span. Spans no tier can serve at all (every tier expired
 * there) get no segment: those rows are gone.
 */
export function coverSpan(fromMs: number, toMs: number, windows: TierWindows): Segment[] {
  const out: Segment[] = [];
  cover(fromMs, toMs, 0, windows, out);
  return out;
}

function cover(a: number, b: number, tierIndex: number, windows: TierWindows, out: Segment[]): void {
  if (a >= b) return;
  for (let i = tierIndex; i < TIERS_COARSE_FIRST.length; i++) {
    const tier = TIERS_COARSE_FIRST[i]!;
    const length = TIER_MS[tier];
    const win = windows[tier];
    const s = Math.max(ceilTo(a, length), ceilTo(win.usableFromMs, length));
    const e = Math.min(floorTo(b, length), floorTo(win.usableBeforeMs, length));
    if (s < e) {
      cover(a, s, i + 1, windows, out);
      out.push({ tier, fromMs: s, toMs: e });
      cover(e, b, i + 1, windows, out);
      return;
    }
  }
  // Nothing aligned fits: the edge is finer than every tier kept here. Fall back to the finest
  // tier whose rows exist at this time, counting its buckets that start inside [a, b).
  for (let i = TIERS_COARSE_FIRST.length - 1; i >= 0; i--) {
    const tier = TIERS_COARSE_FIRST[i]!;
    const win = windows[tier];
    const s = Math.max(a, ceilTo(win.usableFromMs, TIER_MS[tier]));
    const e = Math.min(b, win.usableBeforeMs);
    if (s < e) {
      // Only worth a read when a bucket of the tier starts inside [s, e).
      if (ceilTo(s, TIER_MS[tier]) < e) out.push({ tier, fromMs: s, toMs: e });
      if (a < s) cover(a, s, 0, windowsBefore(windows, s), out);
      return;
    }
  }
}

/** The windows restricted to times before `ms`: keeps a fallback from re-covering what it covered. */
function windowsBefore(windows: TierWindows, ms: number): TierWindows {
  const clip = (w: TierWindow): TierWindow => ({ usableFromMs: w.usableFromMs, usableBeforeMs: Math.min(w.usableBeforeMs, ms) });
  return { minute: clip(windows.minute), quarter: clip(windows.quarter), hour: clip(windows.hour), day: clip(windows.day) };
}

/** Per tier, the segments merged where they touch: the store reads to make. */
export function readsOf(segments: readonly Segment[]): Segment[] {
  const byTier = new Map<Tier, Segment[]>();
  for (const s of segments) {
    const list = byTier.get(s.tier);
    if (list) list.push(s);
    else byTier.set(s.tier, [s]);
  }
  const reads: Segment[] = [];
  for (const tier of TIERS_COARSE_FIRST) {
    const list = byTier.get(tier);
    if (!list) continue;
    list.sort((x, y) => x.fromMs - y.fromMs);
    let cur = { ...list[0]! };
    for (const s of list.slice(1)) {
      if (s.fromMs <= cur.toMs) cur = { tier, fromMs: cur.fromMs, toMs: Math.max(cur.toMs, s.toMs) };
      else {
        reads.push(cur);
        cur = { ...s };
      }
    }
    reads.push(cur);
  }
  return reads;
}
