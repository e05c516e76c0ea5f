/**
 * Civil time for the accuracy reference, computed with Intl alone (no luxon), so that the
 * reference does not share a time library, let alone code, with the query engine it checks.
 *
 * Every zone offset in use today is a whole number of minutes and changes only on a minute
 * boundary, which is all the arithmetic below relies on: the start of a local hour is the
 * instant minus its local minutes, seconds and milliseconds; the start of a local day is the
 * first instant whose local date is that day.
 */

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone, hourCycle: 'h23',
      year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric',
    });
    formatters.set(zone, f);
  }
  return f;
}

export interface LocalParts {
  readonly year: number;
  readonly month: number;
  readonly day: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
}

/** Wall-clock fields of `ms` in `zone` (milliseconds dropped). */
export function localParts(zone: string, ms: number): LocalParts {
  const out: Record<string, number> = {};
  for (const p of formatter(zone).formatToParts(new Date(ms))) {
    if (p.type !== 'literal') out[p.type] = Number(p.value);
  }
  return { year: out.year!, month: out.month!, day: out.day!, hour: out.hour!, minute: out.minute!, second: out.second! };
}

/** Offset of `zone` from UTC at `ms`, in ms (local = UTC + offset): +05:45 → 20 700 000. */
export function zoneOffsetMs(zone: string, ms: number): number {
  const whole = Math.floor(ms / 1000) * 1000;
  const p = localParts(zone, whole);
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - whole;
}

/** Start (UTC ms) of the local hour holding `ms`. In a repeated hour (DST end) the two hours are two buckets. */
export function localHourStart(zone: string, ms: number): number {
  const p = localParts(zone, ms);
  const intoMs = ((ms % 1000) + 1000) % 1000;
  return ms - (p.minute * MINUTE_MS + p.second * 1000 + intoMs);
}

/** 'YYYY-MM-DD' of the local date of `ms`. */
export function localDate(zone: string, ms: number): string {
  const p = localParts(zone, ms);
  return `${p.year}-${String(p.month).padStart(2, '0')}-${String(p.day).padStart(2, '0')}`;
}

/**
 * Start (UTC ms) of the local day holding `ms`: the first instant whose local date is that
 * date. Found from the offset guess and then walked to the exact minute, so it is right also
 * on days that start at 01:00 (zones whose DST change is at midnight).
 */
export function localDayStart(zone: string, ms: number): number {
  const p = localParts(zone, ms);
  const date = localDate(zone, ms);
  const midnightAsUtc = Date.UTC(p.year, p.month - 1, p.day);
  // The offset at `ms` may differ from the one at midnight (a DST day): take the latter's.
  let t = midnightAsUtc - zoneOffsetMs(zone, ms);
  t = midnightAsUtc - zoneOffsetMs(zone, t);
  // Walk to the first minute of the date: offsets and transitions are whole minutes.
  t = Math.floor(t / MINUTE_MS) * MINUTE_MS;
  while (localDate(zone, t) !== date) t += MINUTE_MS;
  while (localDate(zone, t - MINUTE_MS) === date) t -= MINUTE_MS;
  return t;
}

/** Start (UTC ms) of the local day after the one holding `ms`. */
export function nextLocalDayStart(zone: string, ms: number): number {
  // 26 h after the day's start is always inside the next day (days last 23 to 25 hours).
  return localDayStart(zone, localDayStart(zone, ms) + 26 * HOUR_MS);
}

/** Bucket start of `ms` for a local interval. */
export function localBucket(zone: string, interval: 'hour' | 'day', ms: number): number {
  return interval === 'hour' ? localHourStart(zone, ms) : localDayStart(zone, ms);
}

/** Every bucket start of `interval` in [fromMs, toMs), the first being the bucket holding fromMs. */
export function localBuckets(zone: string, interval: 'hour' | 'day', fromMs: number, toMs: number): number[] {
  const out: number[] = [];
  let t = localBucket(zone, interval, fromMs);
  while (t < toMs) {
    out.push(t);
    const step = interval === 'hour' ? HOUR_MS : 26 * HOUR_MS;
    // Hours: offsets change by whole quarter hours at most on a quarter boundary, so one UTC hour on is the next local hour start.
    t = interval === 'hour' ? localHourStart(zone, t + step) : localDayStart(zone, t + step);
  }
  return out;
}

/** The latest instant ≤ beforeMs (to the minute) at which `zone` changed its offset, searching back `lookBackDays`; null if none. */
export function lastOffsetChange(zone: string, beforeMs: number, lookBackDays: number): number | null {
  let hi = Math.floor(beforeMs / MINUTE_MS) * MINUTE_MS;
  const offsetAtHi = zoneOffsetMs(zone, hi);
  for (let day = 1; day <= lookBackDays; day++) {
    const lo = hi - DAY_MS;
    if (zoneOffsetMs(zone, lo) !== offsetAtHi) {
      // Bisect to the first minute with the new offset.
      let a = lo;
      let b = hi;
      while (b - a > MINUTE_MS) {
        const mid = a + Math.floor((b - a) / 2 / MINUTE_MS) * MINUTE_MS;
        if (zoneOffsetMs(zone, mid) === offsetAtHi) b = mid;
        else a = mid;
      }
      return b;
    }
    hi = lo;
  }
  return null;
}
