import { expect } from 'chai';
import { rng } from '../demo/demo-traffic.js';
import { isFixedOffsetZone, splitFixedOffsetIntervals } from './fixed-offset-intervals.js';
import { splitIntervals } from './time-range.js';

const MINUTE = 60_000;
const DAY = 86_400_000;

describe('fixed-offset intervals', () => {
  const zones = ['UTC', 'GMT', 'Etc/UTC', 'Etc/GMT+5', 'Etc/GMT-14', 'Etc/GMT+12', 'Etc/GMT-5', 'Zulu', 'Universal'];

  it('split exactly as splitIntervals does: same starts, clipped ends and labels', function () {
    this.timeout(120_000); // splitIntervals, the reference, is the slow one
    const rand = rng(44);
    for (const zone of zones) {
      for (const [interval, spanMs] of [['minute', 3 * 60 * MINUTE], ['hour', 4 * DAY], ['day', 120 * DAY]] as const) {
        for (let i = 0; i < 6; i++) {
          // Minute-aligned ranges, as resolveDateRange makes them, from 1970 to 2100, some inside one interval.
          const fromMs = Math.floor((rand() * 4_100_000_000_000) / MINUTE) * MINUTE;
          const toMs = fromMs + Math.max(MINUTE, Math.floor((rand() * spanMs) / MINUTE) * MINUTE);
          const fast = splitFixedOffsetIntervals({ fromMs, toMs }, interval, zone);
          expect(fast, `${zone} ${interval} ${fromMs}..${toMs}`).to.deep.equal(splitIntervals({ fromMs, toMs }, interval, zone));
        }
      }
    }
  });

  it('serves only constant-offset zones and minute, hour and day intervals', () => {
    expect(isFixedOffsetZone('UTC')).to.equal(true);
    expect(isFixedOffsetZone('Etc/GMT-14')).to.equal(true);
    expect(isFixedOffsetZone('Asia/Kolkata')).to.equal(false);
    expect(isFixedOffsetZone('Europe/London')).to.equal(false);
    const range = { fromMs: Date.UTC(2026, 0, 1), toMs: Date.UTC(2026, 2, 1) };
    expect(splitFixedOffsetIntervals(range, 'hour', 'Asia/Kathmandu')).to.equal(null);
    expect(splitFixedOffsetIntervals(range, 'week', 'UTC')).to.equal(null);
    expect(splitFixedOffsetIntervals(range, 'month', 'UTC')).to.equal(null);
  });
});
