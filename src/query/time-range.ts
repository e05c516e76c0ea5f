/**
 * Time zones, date ranges and local intervals for the query API: everything that turns a
 * request's words ("30d", "week", "Asia/Kathmandu") into UTC milliseconds. Local boundaries
 * come from luxon over the IANA database (via Intl), so days of 23 or 25 hours, zones of +05:30
 * and +05:45 and ISO weeks are exact. Pure functions of their inputs and `nowMs`.
 *
 * Every resolved time is a whole UTC minute (ceil): the base rollup bucket is one minute, and
 * a minute bucket counts in a range when its start does (the old API's rule), so [10:00:30,
 * 10:05:30) and [10:01, 10:06) are the same question.
 */
import { DateTime, IANAZone } from 'luxon';
import type { DateRange, QueryInterval, RelativeRange, ResolvedRange } from '../../protocol/query-schema.js';
import { SluiceError } from '../errors.js';

export const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
/** `realtime` covers this many trailing minutes, the current one included. */
export const REALTIME_MINUTES = 30;

/** The IANA zone name, checked; TIME_ZONE_UNKNOWN otherwise. `UTC` and `Etc/*` are IANA names too. */
export function checkTimeZone(name: string): string {
  if (!IANAZone.isValidZone(name)) throw new SluiceError('TIME_ZONE_UNKNOWN', `"${name}" is not a known IANA time zone`);
  return name;
}

const ceilMinute = (ms: number) => Math.ceil(ms / MINUTE_MS) * MINUTE_MS;
const floorMinute = (ms: number) => Math.floor(ms / MINUTE_MS) * MINUTE_MS;

const BARE_DATE = /^\d{4}-\d{2}-\d{2}$/;

/** A range endpoint: ms as is; ISO without an offset as local time in `zone`; a bare date as `to` is the end of that day. */
function instant(value: number | string, zone: string, isEnd: boolean, field: string): number {
  if (typeof value === 'number') return value;
  const dt = DateTime.fromISO(value, { zone });
  if (!dt.isValid) throw new SluiceError('QUERY_INVALID', `date_range.${field} "${value}" is not a valid date or time (${dt.invalidExplanation ?? dt.invalidReason ?? 'invalid'})`);
  return isEnd && BARE_DATE.test(value) ? dt.plus({ days: 1 }).toMillis() : dt.toMillis();
}

export interface UtcRange {
  readonly fromMs: number;
  readonly toMs: number;
}

/** Resolve a date range in `zone` at `nowMs`: minute-aligned, `to` exclusive, non-empty. */
export function resolveDateRange(range: DateRange, zone: string, nowMs: number): UtcRange {
  let fromMs: number;
  let toMs: number;
  if (typeof range === 'string') {
    ({ fromMs, toMs } = relativeRange(range, zone, nowMs));
  } else {
    fromMs = instant(range.from, zone, false, 'from');
    toMs = instant(range.to, zone, true, 'to');
  }
  fromMs = ceilMinute(fromMs);
  toMs = ceilMinute(toMs);
  if (!Number.isSafeInteger(fromMs) || !Number.isSafeInteger(toMs) || fromMs < 0) {
    throw new SluiceError('QUERY_INVALID', 'date_range is outside the supported time span');
  }
  if (toMs <= fromMs) throw new SluiceError('QUERY_INVALID', `date_range "to" (${toMs}) must be after "from" (${fromMs}) (whole minutes)`);
  return { fromMs, toMs };
}

function relativeRange(range: RelativeRange, zone: string, nowMs: number): UtcRange {
  if (range === 'realtime') {
    const toMs = floorMinute(nowMs) + MINUTE_MS;
    return { fromMs: toMs - REALTIME_MINUTES * MINUTE_MS, toMs };
  }
  const today = DateTime.fromMillis(nowMs, { zone }).startOf('day');
  const tomorrow = today.plus({ days: 1 }).toMillis();
  switch (range) {
    case 'today': return { fromMs: today.toMillis(), toMs: tomorrow };
    case 'yesterday': return { fromMs: today.minus({ days: 1 }).toMillis(), toMs: today.toMillis() };
    case '7d': return { fromMs: today.minus({ days: 6 }).toMillis(), toMs: tomorrow };
    case '30d': return { fromMs: today.minus({ days: 29 }).toMillis(), toMs: tomorrow };
    case 'month': return { fromMs: today.startOf('month').toMillis(), toMs: tomorrow };
    case 'year': return { fromMs: today.startOf('year').toMillis(), toMs: tomorrow };
  }
}

/**
 * When a relative range resolves differently next: the next minute for `realtime`, the next
 * local midnight for the others; null for an explicit range (it never moves).
 */
export function nextRangeChangeMs(range: DateRange, zone: string, nowMs: number): number | null {
  if (typeof range !== 'string') return null;
  if (range === 'realtime') return floorMinute(nowMs) + MINUTE_MS;
  return DateTime.fromMillis(nowMs, { zone }).startOf('day').plus({ days: 1 }).toMillis();
}

/** The period of equal length just before: [from − (to − from), from). */
export function previousPeriod(range: UtcRange): UtcRange {
  const length = range.toMs - range.fromMs;
  return { fromMs: range.fromMs - length, toMs: range.fromMs };
}

/** A resolved range for the response: UTC and local ISO forms. */
export function describeRange(range: UtcRange, zone: string): ResolvedRange {
  const local = (ms: number) => DateTime.fromMillis(ms, { zone }).toISO({ suppressMilliseconds: false }) ?? new Date(ms).toISOString();
  return { from: range.fromMs, to: range.toMs, from_local: local(range.fromMs), to_local: local(range.toMs) };
}

/** One point of a series: the interval's own UTC start `t` and label, clipped to the range as [fromMs, toMs). */
export interface IntervalPiece extends UtcRange {
  readonly t: number;
  readonly label: string;
}

const LABEL_FORMAT: Record<QueryInterval, string> = {
  minute: "yyyy-MM-dd'T'HH:mmZZ",
  hour: "yyyy-MM-dd'T'HH:mmZZ",
  day: 'yyyy-MM-dd',
  week: "kkkk-'W'WW",
  month: 'yyyy-MM',
};

/** The local start of the interval holding `ms`. Luxon's `week` is the ISO week (Monday). */
function intervalStart(ms: number, interval: QueryInterval, zone: string): DateTime {
  return DateTime.fromMillis(ms, { zone }).startOf(interval);
}

/** How many pieces `splitIntervals` would return, without building them (for limits). */
export function countIntervals(range: UtcRange, interval: QueryInterval, zone: string): number {
  if (interval === 'minute') return Math.ceil((range.toMs - floorMinute(range.fromMs)) / MINUTE_MS);
  if (interval === 'hour') return Math.ceil((range.toMs - range.fromMs) / 3_600_000) + 1;
  const days = Math.ceil((range.toMs - range.fromMs) / DAY_MS) + 1;
  if (interval === 'day') return days;
  if (interval === 'week') return Math.ceil(days / 7) + 1;
  // Months: by calendar, cheaply.
  const a = DateTime.fromMillis(range.fromMs, { zone });
  const b = DateTime.fromMillis(range.toMs, { zone });
  return (b.year - a.year) * 12 + (b.month - a.month) + 1;
}

/**
 * Split [fromMs, toMs) into local intervals. Each piece is the part of one interval inside the
 * range; `t` is the interval's real start (before fromMs for a partial first piece), so a week
 * series starting on a Wednesday still has its point on Monday. Intervals are wall-clock ones:
 * the repeated hour of a DST fall-back is two points (told apart by the offset in the label),
 * the skipped hour none, a DST day is 23 or 25 hours, and after a half-hour change (Lord Howe)
 * the hour that straddles it is half an hour long.
 */
export function splitIntervals(range: UtcRange, interval: QueryInterval, zone: string): IntervalPiece[] {
  const pieces: IntervalPiece[] = [];
  let start = intervalStart(range.fromMs, interval, zone);
  const step = interval === 'minute' ? { minutes: 1 } : interval === 'hour' ? { hours: 1 } : interval === 'day' ? { days: 1 } : interval === 'week' ? { weeks: 1 } : { months: 1 };
  while (start.toMillis() < range.toMs) {
    // Renormalise to the interval's start: after a half-hour DST change (Australia/Lord_Howe)
    // one real hour later is hh:30 local, and a day whose midnight does not exist (DST at 00:00)
    // starts later than plus() keeps it; the next interval starts at its wall-clock boundary.
    let next = start.plus(step);
    if (interval !== 'minute') {
      const aligned = next.startOf(interval);
      if (aligned.toMillis() > start.toMillis()) next = aligned;
    }
    const t = start.toMillis();
    let nextMs = next.toMillis();
    if (nextMs <= t) nextMs = t + MINUTE_MS; // never loop: a degenerate zone rule cannot stall the split
    pieces.push({
      t,
      label: start.toFormat(LABEL_FORMAT[interval]),
      fromMs: Math.max(t, range.fromMs),
      toMs: Math.min(nextMs, range.toMs),
    });
    start = DateTime.fromMillis(nextMs, { zone });
  }
  return pieces;
}
