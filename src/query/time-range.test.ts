import { expect } from 'chai';
import { SluiceError } from '../errors.js';
import { checkTimeZone, nextRangeChangeMs, previousPeriod, resolveDateRange, splitIntervals } from './time-range.js';

const MIN = 60_000;
const DAY = 86_400_000;

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof SluiceError ? e.code : 'not a SluiceError';
  }
  return undefined;
}

describe('date ranges in a time zone', () => {
  // 2026-03-10 02:00 UTC = 07:30 in Kolkata, 22:00 (Mar 9) in New York.
  const now = Date.UTC(2026, 2, 10, 2, 0, 30);

  it('resolves relative ranges in the zone, ending with today', () => {
    expect(resolveDateRange('today', 'Asia/Kolkata', now)).to.deep.equal({ fromMs: Date.UTC(2026, 2, 9, 18, 30), toMs: Date.UTC(2026, 2, 10, 18, 30) });
    expect(resolveDateRange('today', 'America/New_York', now)).to.deep.equal({ fromMs: Date.UTC(2026, 2, 9, 4), toMs: Date.UTC(2026, 2, 10, 4) });
    expect(resolveDateRange('yesterday', 'America/New_York', now)).to.deep.equal({ fromMs: Date.UTC(2026, 2, 8, 5), toMs: Date.UTC(2026, 2, 9, 4) });
    const week = resolveDateRange('7d', 'Asia/Kathmandu', now);
    expect(week.toMs).to.equal(Date.UTC(2026, 2, 10, 18, 15));
    expect(week.toMs - week.fromMs).to.equal(7 * DAY);
    expect(resolveDateRange('30d', 'UTC', now)).to.deep.equal({ fromMs: Date.UTC(2026, 1, 9), toMs: Date.UTC(2026, 2, 11) });
    expect(resolveDateRange('month', 'UTC', now)).to.deep.equal({ fromMs: Date.UTC(2026, 2, 1), toMs: Date.UTC(2026, 2, 11) });
    expect(resolveDateRange('year', 'Asia/Kolkata', now)).to.deep.equal({ fromMs: Date.UTC(2025, 11, 31, 18, 30), toMs: Date.UTC(2026, 2, 10, 18, 30) });
    expect(resolveDateRange('realtime', 'Asia/Kolkata', now)).to.deep.equal({ fromMs: Date.UTC(2026, 2, 10, 1, 31), toMs: Date.UTC(2026, 2, 10, 2, 1) });
  });

  it('reads explicit ranges: ms as given, local ISO in the zone, a bare date `to` inclusive', () => {
    expect(resolveDateRange({ from: '2026-03-01', to: '2026-03-01' }, 'Asia/Kolkata', now)).to.deep.equal({ fromMs: Date.UTC(2026, 1, 28, 18, 30), toMs: Date.UTC(2026, 2, 1, 18, 30) });
    expect(resolveDateRange({ from: '2026-03-01T10:00', to: '2026-03-01T12:00Z' }, 'Asia/Kolkata', now)).to.deep.equal({ fromMs: Date.UTC(2026, 2, 1, 4, 30), toMs: Date.UTC(2026, 2, 1, 12) });
    // Whole minutes: a minute counts when it starts in the range.
    expect(resolveDateRange({ from: 1_000 * MIN + 1, to: 1_005 * MIN + 1 }, 'UTC', now)).to.deep.equal({ fromMs: 1_001 * MIN, toMs: 1_006 * MIN });
    expect(code(() => resolveDateRange({ from: '2026-03-02', to: '2026-03-01T00:00' }, 'UTC', now))).to.equal('QUERY_INVALID');
    expect(code(() => resolveDateRange({ from: '2026-02-30', to: '2026-03-01' }, 'UTC', now))).to.equal('QUERY_INVALID');
  });

  it('knows IANA zones and rejects others', () => {
    expect(checkTimeZone('Asia/Kathmandu')).to.equal('Asia/Kathmandu');
    expect(code(() => checkTimeZone('Mars/Olympus_Mons'))).to.equal('TIME_ZONE_UNKNOWN');
    expect(code(() => checkTimeZone('+05:30'))).to.equal('TIME_ZONE_UNKNOWN');
  });

  it('says when a relative range moves on, and gives the previous period', () => {
    expect(nextRangeChangeMs('realtime', 'UTC', now)).to.equal(Date.UTC(2026, 2, 10, 2, 1));
    expect(nextRangeChangeMs('today', 'Asia/Kolkata', now)).to.equal(Date.UTC(2026, 2, 10, 18, 30));
    expect(nextRangeChangeMs({ from: 0, to: MIN }, 'UTC', now)).to.equal(null);
    expect(previousPeriod({ fromMs: 10 * DAY, toMs: 17 * DAY })).to.deep.equal({ fromMs: 3 * DAY, toMs: 10 * DAY });
  });

  it('labels points locally', () => {
    const r = resolveDateRange({ from: '2026-03-01', to: '2026-03-31' }, 'Asia/Kathmandu', now);
    expect(splitIntervals(r, 'month', 'Asia/Kathmandu').map((p) => p.label)).to.deep.equal(['2026-03']);
    expect(splitIntervals(r, 'week', 'Asia/Kathmandu')[0]!.label).to.equal('2026-W09');
    expect(splitIntervals({ fromMs: Date.UTC(2026, 0, 1), toMs: Date.UTC(2026, 0, 1, 1) }, 'hour', 'Asia/Kathmandu').map((p) => p.label))
      .to.deep.equal(['2026-01-01T05:00+05:45', '2026-01-01T06:00+05:45']);
  });
});
