/**
 * The planner against brute force: every minute of a range carries a pseudo-random value; rows
 * of every tier hold the sums of their minutes; a series point's answer is the sum of the rows
 * the plan picks. The expected answer assigns each minute to a point by formatting the minute
 * in the zone (a path independent of the planner's startOf/plus arithmetic).
 */
import { expect } from 'chai';
import { DateTime } from 'luxon';
import type { QueryInterval } from '../../protocol/query-schema.js';
import { TIER_MS, type Tier } from '../aggregate/rollup.js';
import { coverSpan, readsOf, tierWindows, type Segment, type TierWindows } from './tier-plan.js';
import { resolveDateRange, splitIntervals, type UtcRange } from './time-range.js';

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

/** Prefix sums of per-minute values over [startMs, endMs). */
function minuteData(startMs: number, endMs: number) {
  const n = (endMs - startMs) / MIN;
  const prefix = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) {
    const m = startMs / MIN + i;
    // Deterministic, uneven values: a wrong minute shows as a wrong sum.
    const v = ((m * 2654435761) >>> 0) % 97 + 1;
    prefix[i + 1] = prefix[i]! + v;
  }
  const value = (m: number) => prefix[(m - startMs) / MIN + 1]! - prefix[(m - startMs) / MIN]!;
  /** Sum of the minutes in [a, b), a and b minute-aligned and inside the data. */
  const sum = (a: number, b: number) => prefix[(Math.min(b, endMs) - startMs) / MIN]! - prefix[(Math.max(a, startMs) - startMs) / MIN]!;
  return { value, sum };
}

/** What the store would return for a segment: rows of its tier starting in [from, to). */
function segmentSum(seg: Segment, sum: (a: number, b: number) => number): number {
  const len = TIER_MS[seg.tier];
  let total = 0;
  for (let b = Math.ceil(seg.fromMs / len) * len; b < seg.toMs; b += len) total += sum(b, b + len);
  return total;
}

const LABEL: Record<QueryInterval, string> = {
  minute: "yyyy-MM-dd'T'HH:mmZZ", hour: "yyyy-MM-dd'T'HH:00ZZ", day: 'yyyy-MM-dd', week: "kkkk-'W'WW", month: 'yyyy-MM',
};

function bruteForce(range: UtcRange, interval: QueryInterval, zone: string, value: (m: number) => number): Map<string, number> {
  const out = new Map<string, number>();
  // Offsets of the IANA database change only at whole UTC quarter hours (since 1970), so the
  // label of a quarter hour's first minute is every minute's there: formatting each quarter
  // instead of each minute keeps the test fast and still independent of the planner.
  let label = '';
  for (let m = range.fromMs; m < range.toMs; m += MIN) {
    if (interval === 'minute' || m % (15 * MIN) === 0 || m === range.fromMs) label = DateTime.fromMillis(m, { zone }).toFormat(LABEL[interval]);
    out.set(label, (out.get(label) ?? 0) + value(m));
  }
  return out;
}

const ALL: TierWindows = tierWindows({ minuteRetentionDays: 1e5, quarterRetentionDays: 1e5, hourRetentionDays: 1e5, dayRetentionDays: 1e5 }, Date.UTC(2030, 0, 1));

function checkSeries(zone: string, from: string, to: string, interval: QueryInterval, windows = ALL) {
  const range = resolveDateRange({ from, to }, zone, 0);
  const data = minuteData(range.fromMs - 2 * DAY, range.toMs + 2 * DAY);
  const pieces = splitIntervals(range, interval, zone);
  const expected = bruteForce(range, interval, zone, data.value);
  const got = new Map<string, number>();
  const tiersUsed = new Set<Tier>();
  for (const p of pieces) {
    const segments = coverSpan(p.fromMs, p.toMs, windows);
    // Disjoint, ordered, inside the piece.
    for (let i = 0; i < segments.length; i++) {
      const s = segments[i]!;
      expect(s.fromMs).to.be.at.least(p.fromMs);
      expect(s.toMs).to.be.at.most(p.toMs);
      if (i > 0) expect(s.fromMs).to.be.at.least(segments[i - 1]!.toMs);
      tiersUsed.add(s.tier);
    }
    const label = interval === 'hour' ? DateTime.fromMillis(p.t, { zone }).toFormat(LABEL.hour) : p.label;
    got.set(label, (got.get(label) ?? 0) + segments.reduce((a, s) => a + segmentSum(s, data.sum), 0));
  }
  expect([...got]).to.deep.equal([...expected]);
  return { pieces, tiersUsed, range };
}

describe('tier planner and local intervals, against minute-level brute force', function () {
  this.timeout(60_000);
  it('days of Asia/Kolkata (+05:30) start at 18:30 UTC and are read with quarter rows at the edges', () => {
    const { pieces, tiersUsed } = checkSeries('Asia/Kolkata', '2026-01-01', '2026-01-31', 'day');
    expect(pieces).to.have.length(31);
    expect(pieces[0]!.t).to.equal(Date.UTC(2025, 11, 31, 18, 30));
    expect(pieces[0]!.label).to.equal('2026-01-01');
    const plan = coverSpan(pieces[1]!.fromMs, pieces[1]!.toMs, ALL);
    expect(plan.map((s) => s.tier)).to.deep.equal(['quarter', 'hour', 'quarter']);
    expect(tiersUsed.has('minute')).to.equal(false);
    expect(tiersUsed.has('day')).to.equal(false);
  });

  it('days of Asia/Kathmandu (+05:45) start at 18:15 UTC', () => {
    const { pieces } = checkSeries('Asia/Kathmandu', '2026-03-01', '2026-03-20', 'day');
    expect(pieces[0]!.t).to.equal(Date.UTC(2026, 1, 28, 18, 15));
    const plan = coverSpan(pieces[0]!.fromMs, pieces[0]!.toMs, ALL);
    expect(plan[0]).to.deep.equal({ tier: 'quarter', fromMs: Date.UTC(2026, 1, 28, 18, 15), toMs: Date.UTC(2026, 1, 28, 19) });
  });

  it('hours of +05:30 and +05:45 zones', () => {
    checkSeries('Asia/Kolkata', '2026-01-01T00:00', '2026-01-03T00:00', 'hour');
    checkSeries('Asia/Kathmandu', '2026-01-01T05:00', '2026-01-02T07:00', 'hour');
  });

  it('America/New_York: the 23-hour day of March and the 25-hour day of November', () => {
    const spring = checkSeries('America/New_York', '2026-03-01', '2026-03-15', 'day').pieces;
    const dst = spring.find((p) => p.label === '2026-03-08')!;
    expect(dst.toMs - dst.fromMs).to.equal(23 * HOUR);
    const fall = checkSeries('America/New_York', '2026-10-25', '2026-11-07', 'day').pieces;
    const back = fall.find((p) => p.label === '2026-11-01')!;
    expect(back.toMs - back.fromMs).to.equal(25 * HOUR);
    // UTC-aligned whole days never fit a New York day: hour rows carry them.
    expect(coverSpan(back.fromMs, back.toMs, ALL).every((s) => s.tier === 'hour')).to.equal(true);
  });

  it('America/New_York hours across both changes: 23 and 25 points, the repeated hour twice', () => {
    const { pieces: spring } = checkSeries('America/New_York', '2026-03-08', '2026-03-08', 'hour');
    expect(spring).to.have.length(23);
    const { pieces: fall } = checkSeries('America/New_York', '2026-11-01', '2026-11-01', 'hour');
    expect(fall).to.have.length(25);
    expect(fall.filter((p) => p.label.startsWith('2026-11-01T01:00'))).to.have.length(2);
  });

  it('ISO weeks start on Monday; a range starting mid-week keeps its first point on Monday', () => {
    const { pieces } = checkSeries('Europe/Berlin', '2026-03-04', '2026-04-15', 'week');
    expect(pieces[0]!.label).to.equal('2026-W10');
    expect(DateTime.fromMillis(pieces[0]!.t, { zone: 'Europe/Berlin' }).toISODate()).to.equal('2026-03-02');
    expect(pieces[0]!.fromMs).to.equal(DateTime.fromISO('2026-03-04', { zone: 'Europe/Berlin' }).toMillis());
    checkSeries('America/New_York', '2026-10-20', '2026-11-20', 'week');
    checkSeries('Asia/Kathmandu', '2025-12-20', '2026-01-20', 'week');
  });

  it('months, with day rows inside UTC-aligned zones', () => {
    const { tiersUsed } = checkSeries('UTC', '2026-01-01', '2026-03-31', 'month');
    expect([...tiersUsed]).to.deep.equal(['day']);
    checkSeries('America/New_York', '2026-02-01', '2026-04-30', 'month');
    checkSeries('Asia/Kolkata', '2026-01-15', '2026-03-10', 'month');
  });

  it('Lord Howe Island (half-hour DST) and a zone whose midnight vanishes (America/Santiago)', () => {
    checkSeries('Australia/Lord_Howe', '2026-03-30', '2026-04-10', 'day');
    checkSeries('Australia/Lord_Howe', '2026-04-04T20:00', '2026-04-05T06:00', 'hour');
    checkSeries('America/Santiago', '2026-09-01', '2026-09-12', 'day');
  });

  it('minute series and ranges that are not day-aligned', () => {
    checkSeries('Asia/Kathmandu', '2026-01-01T10:07', '2026-01-01T11:22', 'minute');
    checkSeries('UTC', '2026-01-01T10:07', '2026-01-04T11:22', 'day');
    checkSeries('Asia/Kolkata', '2026-01-01T10:07', '2026-01-04T11:23', 'hour');
  });

  describe('retention', () => {
    const now = Date.UTC(2026, 5, 1, 12);
    const retention = { minuteRetentionDays: 35, quarterRetentionDays: 400, hourRetentionDays: 800, dayRetentionDays: 3660 };
    const windows = tierWindows(retention, now);

    it('never plans a tier for a time its rows would have expired', () => {
      const range = { fromMs: now - 900 * DAY, toMs: now + 22 * MIN };
      const segs = coverSpan(range.fromMs, range.toMs, windows);
      for (const s of segs) {
        const firstBucket = Math.ceil(s.fromMs / TIER_MS[s.tier]) * TIER_MS[s.tier];
        expect(firstBucket, `${s.tier} from ${new Date(s.fromMs).toISOString()}`).to.be.at.least(now - (retention as Record<string, number>)[`${s.tier}RetentionDays`]! * DAY);
      }
      expect(readsOf(segs).map((r) => r.tier)).to.deep.equal(['day', 'hour', 'quarter', 'minute']);
    });

    it('a +05:45 day 60 days back (minutes expired) is still exact from quarter rows', () => {
      const from = DateTime.fromMillis(now - 60 * DAY, { zone: 'Asia/Kathmandu' }).startOf('day').toISODate()!;
      const to = DateTime.fromMillis(now - 50 * DAY, { zone: 'Asia/Kathmandu' }).toISODate()!;
      const { tiersUsed } = checkSeries('Asia/Kathmandu', from, to, 'day', windows);
      expect(tiersUsed.has('minute')).to.equal(false);
    });

    it('a +05:30 day beyond quarter retention counts whole hour rows by their start, none twice, none lost', () => {
      const zone = 'Asia/Kolkata';
      const from = DateTime.fromMillis(now - 500 * DAY, { zone }).startOf('day');
      const range = { fromMs: from.toMillis(), toMs: from.plus({ days: 5 }).toMillis() };
      const data = minuteData(range.fromMs - 2 * DAY, range.toMs + 2 * DAY);
      const pieces = splitIntervals(range, 'day', zone);
      let total = 0;
      for (const p of pieces) {
        const segs = coverSpan(p.fromMs, p.toMs, windows);
        for (const s of segs) expect(['hour', 'day']).to.include(s.tier);
        total += segs.reduce((a, s) => a + segmentSum(s, data.sum), 0);
      }
      // Hour buckets starting in [from, to): the one starting at 18:00 before `from` is not.
      const firstHour = Math.ceil(range.fromMs / HOUR) * HOUR;
      const lastHour = Math.ceil(range.toMs / HOUR) * HOUR;
      expect(total).to.equal(data.sum(firstHour, lastHour));
    });

    it('times beyond every tier get no plan (the rows are gone)', () => {
      expect(coverSpan(now - 4000 * DAY, now - 3700 * DAY, windows)).to.deep.equal([]);
    });

    it('a coarse tier limited at the recent end leaves the recent part to finer tiers', () => {
      const w = tierWindows(retention, now, { day: Date.UTC(2026, 4, 30), hour: Date.UTC(2026, 5, 1, 10) });
      const segs = coverSpan(Date.UTC(2026, 4, 1), Date.UTC(2026, 5, 2), w);
      expect(segs.filter((s) => s.tier === 'day').every((s) => s.toMs <= Date.UTC(2026, 4, 30))).to.equal(true);
      expect(segs.filter((s) => s.tier === 'hour').every((s) => s.toMs <= Date.UTC(2026, 5, 1, 10))).to.equal(true);
      const data = minuteData(Date.UTC(2026, 3, 1), Date.UTC(2026, 5, 3));
      expect(segs.reduce((a, s) => a + segmentSum(s, data.sum), 0)).to.equal(data.sum(Date.UTC(2026, 4, 1), Date.UTC(2026, 5, 2)));
    });
  });
});
