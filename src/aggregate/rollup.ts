/**
 * The rollup model: what one bucket of one site holds, in every tier. This file is the shared
 * contract between aggregation (which builds minute rows), the tier roller (which merges them
 * into coarser rows), the stores (which keep them) and the query engine (which merges the rows
 * a question covers). Everything here is additive, so merging rows is summing counts and
 * merging sketches; nothing is ever an increment applied to a stored value (DESIGN invariant 3).
 *
 * ## What an event contributes (the definition the accuracy suite recomputes)
 *
 * Counted events are those not from bots, not repeated (same site, id and UTC minute of event
 * time) and not late beyond the allowed lateness. For each visitor (site, visitorId), take their
 * counted events in (ts, id) order — ids compared as UTF-8 bytes. An event starts a new visit
 * when it is the visitor's first, or comes sessionTimeoutMs (30 min) or more after the
 * visitor's previous event; otherwise it continues the previous event's visit. Each event adds
 * to the bucket of its own event time:
 *
 *   pageviews   +1 for a pageview
 *   events      +1 for a custom event
 *   visits      +1 when it starts a visit
 *   bounces     +1 at the first pageview of a visit, −1 at its second pageview (so a visit
 *               with exactly one pageview adds 1 in all, any other visit 0)
 *   durationMs  + (ts − previous event's ts) when it continues a visit
 *   visitors    its visitorId added to the bucket's sketch
 *
 * An anonymous event (visitorId '': Do-Not-Track, GPC or no consent) belongs to no visitor: it
 * is a visit of its own (visits +1, bounces +1 if a pageview, exit +1 on its path, no duration),
 * never continues or is continued by another event, and adds to no visitors sketch.
 *
 * Over any range, bounce rate = bounces / visits, visit duration = durationMs / visits and
 * views per visit = pageviews / visits. A visit that straddles the range start contributes only
 * its in-range part; inside a range every number is exact.
 *
 * Dimensions come in three kinds (`DIMENSION_KINDS`):
 * - session dimensions take their value from the visit's FIRST event (its entry): the event's
 *   whole contribution above (every field) goes to the cell of the visit's entry value;
 * - event dimensions take the event's own value and get pageviews, events and visitors only;
 * - `exit_page` counts visits by their last event's path: +1 visits to the cell of the event's
 *   path, and, when it continues a visit, −1 visits to the cell of the previous event's path
 *   (both in the bucket of this event). Only `visits` is used there.
 * An event with no value for a dimension (no UTM campaign, no country…) adds nothing to it.
 * `page` has a value for pageviews only (a custom event's path is not a page view of it), so a
 * page cell's visitors are the visitors who viewed it.
 * `prop` cells are keyed `propKey(name, key, value)`, one per custom property of the event
 * (pageviews too, with name 'pageview'); `event` cells count custom events by name.
 */
import type { Channel } from '../ingest/referrer.js';

export type Tier = 'minute' | 'quarter' | 'hour' | 'day';
export const TIERS: readonly Tier[] = ['minute', 'quarter', 'hour', 'day'];
export const TIER_MS: Readonly<Record<Tier, number>> = { minute: 60_000, quarter: 900_000, hour: 3_600_000, day: 86_400_000 };

export const SESSION_DIMENSIONS = [
  'entry_page', 'hostname', 'source', 'referrer', 'channel',
  'utm_source', 'utm_medium', 'utm_campaign', 'utm_term', 'utm_content',
  'country', 'region', 'city', 'browser', 'browser_version', 'os', 'os_version', 'device', 'screen',
] as const;
export const EVENT_DIMENSIONS = ['page', 'event', 'prop'] as const;
export const EXIT_DIMENSIONS = ['exit_page'] as const;
export type SessionDimension = typeof SESSION_DIMENSIONS[number];
export type EventDimension = typeof EVENT_DIMENSIONS[number];
export type DimensionName = SessionDimension | EventDimension | 'exit_page';
export const DIMENSIONS: readonly DimensionName[] = [...SESSION_DIMENSIONS, ...EVENT_DIMENSIONS, ...EXIT_DIMENSIONS];
export const DIMENSION_KINDS: Readonly<Record<DimensionName, 'session' | 'event' | 'exit'>> = Object.fromEntries([
  ...SESSION_DIMENSIONS.map((d) => [d, 'session']),
  ...EVENT_DIMENSIONS.map((d) => [d, 'event']),
  ...EXIT_DIMENSIONS.map((d) => [d, 'exit']),
]) as Record<DimensionName, 'session' | 'event' | 'exit'>;

/**
 * The value of each dimension for one event, before session attribution; null: no value.
 * `browser_version` is 'Chrome 120' (name and major version), `os_version` 'iOS 17'; `screen`
 * is the screen class of screenClass(); `referrer` is the referrer host.
 */
export type DimensionValues = Readonly<Record<Exclude<DimensionName, 'prop' | 'exit_page'>, string | null>>;

export const OTHER_KEY = '(other)';

/** The key of a `prop` cell; split with splitPropKey. NUL never occurs in a validated string. */
export function propKey(eventName: string, key: string, value: string | number | boolean): string {
  return `${eventName}\u0000${key}\u0000${String(value)}`;
}
export function splitPropKey(cell: string): { name: string; key: string; value: string } | null {
  const parts = cell.split('\u0000');
  if (parts.length !== 3) return null;
  return { name: parts[0]!, key: parts[1]!, value: parts[2]! };
}

/** Additive counts, signed where the definition above subtracts (bounces, exit visits). */
export interface Counts {
  pageviews: number;
  events: number;
  visits: number;
  bounces: number;
  durationMs: number;
}

export const zeroCounts = (): Counts => ({ pageviews: 0, events: 0, visits: 0, bounces: 0, durationMs: 0 });

/** One dimension value's share of a bucket. */
export interface DimCell extends Counts {
  /**
   * Distinct visitors, as a HyperLogLog of DIMENSION_SKETCH_PRECISION (hyperloglog.ts); absent
   * for `exit_page` cells and for the "(other)" cell, which has no meaningful union.
   */
  visitors?: Uint8Array;
}

/** HyperLogLog precision of per-dimension-value sketches: smaller than the bucket's own to bound row size. */
export const DIMENSION_SKETCH_PRECISION = 11;

export interface Rollup {
  readonly site: string;
  readonly tier: Tier;
  /** Start of the bucket in UTC, ms since epoch; a multiple of TIER_MS[tier]. */
  readonly bucketMs: number;
  readonly totals: Counts;
  /** HyperLogLog of the bucket's visitors at the full precision (hyperloglog.ts PRECISION). */
  readonly visitors: Uint8Array;
  /**
   * Per dimension, per value. Each dimension keeps at most maxBreakdownKeys values; the rest
   * are summed into the OTHER_KEY cell. A dimension with no values is absent.
   */
  readonly dims: Readonly<Partial<Record<DimensionName, Readonly<Record<string, DimCell>>>>>;
  /** Revenue of custom events: event name → ISO currency → amount (sum). */
  readonly revenue: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /** Bot events seen in the bucket: kept out of every other number. */
  readonly bots: number;
}

/** Screen class from a screen width in CSS pixels (Plausible's classes). */
export function screenClass(width: number): string {
  if (width < 576) return 'Mobile';
  if (width < 992) return 'Tablet';
  if (width < 1440) return 'Laptop';
  return 'Desktop';
}

export type { Channel };
