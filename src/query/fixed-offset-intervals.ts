/**
 * splitIntervals (time-range.ts) for zones whose offset never changes — UTC and the Etc/* zones
 * — by arithmetic: the same pieces, labels included, without a luxon DateTime per point. Luxon
 * costs about 20 µs a point on a busy machine, so a 30-day hourly series (720 points) spent more
 * time splitting its range than reading its rows. Zones with DST (or any rule change) keep
 * luxon's wall-clock handling; week and month intervals too (few points, calendar rules).
 */
import { DateTime } from 'luxon';
import type { QueryInterval } from '../../protocol/query-schema.js';
import type { IntervalPiece, UtcRange } from './time-range.js';

/** IANA names of zones that are a constant offset by definition (tzdata's Etc area and its aliases). */
const FIXED_NAMES = new Set(['UTC', 'GMT', 'UCT', 'Universal', 'Zulu', 'Greenwich', 'GMT0', 'GMT+0', 'GMT-0']);

const LENGTH_MS: Partial<Record<QueryInterval, number>> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };

/** True when `zone` has one offset at every instant. */
export function isFixedOffsetZone(zone: string): boolean {
  return FIXED_NAMES.has(zone) || zone.startsWith('Etc/');
}

const pad2 = (n: number) => (n < 10 ? `0${n}` : String(n));

/** luxon's `ZZ`: ±HH:MM. */
function offsetLabel(offsetMinutes: number): string {
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  return `${sign}${pad2(Math.floor(abs / 60))}:${pad2(abs % 60)}`;
}

/** luxon's `yyyy`: at least four digits, a sign for years before 1 (never reached: ranges start at 1970). */
function year4(y: number): string {
  return y >= 1000 ? String(y) : String(y).padStart(4, '0');
}

/**
 * The pieces splitIntervals would give, or null when this zone or interval is not one this
 * shortcut serves (then call splitIntervals). Equal to splitIntervals for every range it
 * serves (fixed-offset-intervals.test.ts compares them).
 */
export function splitFixedOffsetIntervals(range: UtcRange, interval: QueryInterval, zone: string): IntervalPiece[] | null {
  const length = LENGTH_MS[interval];
  if (length === undefined || !isFixedOffsetZone(zone)) return null;
  const local = DateTime.fromMillis(range.fromMs, { zone });
  if (!local.isValid) return null;
  const offsetMs = local.offset * 60_000;
  const zz = offsetLabel(local.offset);
  const pieces: IntervalPiece[] = [];
  let t = Math.floor((range.fromMs + offsetMs) / length) * length - offsetMs;
  for (; t < range.toMs; t += length) {
    const d = new Date(t + offsetMs);
    const date = `${year4(d.getUTCFullYear())}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}`;
    const label = interval === 'day' ? date : `${date}T${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}${zz}`;
    pieces.push({ t, label, fromMs: Math.max(t, range.fromMs), toMs: Math.min(t + length, range.toMs) });
  }
  return pieces;
}
