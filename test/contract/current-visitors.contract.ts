/** The CurrentVisitors contract, run against every implementation. Sites are unique per test. */
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { CURRENT_WINDOW_MS, type CurrentVisitors } from '../../src/query/current-visitors.js';

export interface CurrentVisitorsFixture {
  /** Two handles on the same state (two processes, for a real implementation). */
  readonly a: CurrentVisitors;
  readonly b: CurrentVisitors;
  close(): Promise<void>;
}

/** The recorders' clock in these tests; `count` is given its time explicitly. */
export interface TestClock {
  nowMs: number;
}

const MIN = 60_000;

export function currentVisitorsContract(name: string, setup: (clock: () => number) => Promise<CurrentVisitorsFixture>): void {
  describe(`CurrentVisitors contract: ${name}`, function () {
    this.timeout(30_000);
    let fx: CurrentVisitorsFixture;
    let site: string;
    const clock: TestClock = { nowMs: 0 };
    beforeEach(async () => {
      clock.nowMs = Date.UTC(2026, 0, 10, 12, 0) + Math.floor(Math.random() * 1000) * MIN;
      fx = await setup(() => clock.nowMs);
      site = `s-${randomUUID().slice(0, 8)}`;
    });
    afterEach(async () => fx.close());

    it('counts distinct visitors of the last five minutes, across handles', async () => {
      const now = clock.nowMs;
      await fx.a.record([
        { site, visitorId: 'v1', tsMs: now - MIN },
        { site, visitorId: 'v2', tsMs: now - 2 * MIN },
        { site, visitorId: 'v1', tsMs: now - 3 * MIN },
      ]);
      await fx.b.record([{ site, visitorId: 'v3', tsMs: now }, { site, visitorId: 'v2', tsMs: now }]);
      expect(await fx.a.count(site, now)).to.equal(3);
      expect(await fx.b.count(site, now)).to.equal(3);
    });

    it('a visitor leaves the count five minutes after last seen, not before', async () => {
      const now = clock.nowMs;
      await fx.a.record([{ site, visitorId: 'v1', tsMs: now - 4 * MIN }, { site, visitorId: 'v2', tsMs: now - MIN }]);
      expect(await fx.b.count(site, now)).to.equal(2);
      expect(await fx.b.count(site, now - 4 * MIN + CURRENT_WINDOW_MS - 1)).to.equal(2);
      expect(await fx.b.count(site, now - 4 * MIN + CURRENT_WINDOW_MS)).to.equal(1);
      expect(await fx.b.count(site, now - MIN + CURRENT_WINDOW_MS)).to.equal(0);
    });

    it('an older event never moves a visitor back', async () => {
      const now = clock.nowMs;
      await fx.a.record([{ site, visitorId: 'v1', tsMs: now - MIN }]);
      await fx.b.record([{ site, visitorId: 'v1', tsMs: now - 4 * MIN }]);
      expect(await fx.a.count(site, now + 3 * MIN)).to.equal(1);
    });

    it('event time is clamped to the recorder\'s clock', async () => {
      const now = clock.nowMs;
      await fx.a.record([{ site, visitorId: 'future', tsMs: now + 60 * MIN }]);
      expect(await fx.b.count(site, now)).to.equal(1);
      // Seen "now", so gone five minutes later, not an hour later.
      expect(await fx.b.count(site, now + CURRENT_WINDOW_MS)).to.equal(0);
    });

    it('ignores events already out of the window, and keeps sites apart', async () => {
      const now = clock.nowMs;
      const other = `${site}-other`;
      await fx.a.record([
        { site, visitorId: 'old', tsMs: now - CURRENT_WINDOW_MS },
        { site, visitorId: 'older', tsMs: now - 60 * MIN },
        { site: other, visitorId: 'x', tsMs: now },
        { site: other, visitorId: 'y', tsMs: now },
      ]);
      expect(await fx.b.count(site, now)).to.equal(0);
      expect(await fx.b.count(site, now - 30 * MIN)).to.equal(0);
      expect(await fx.b.count(other, now)).to.equal(2);
      expect(await fx.b.count(`${site}-never`, now)).to.equal(0);
      await fx.a.record([]);
    });

    it('trims as time moves on: visitors of long ago are forgotten', async () => {
      const start = clock.nowMs;
      await fx.a.record([{ site, visitorId: 'early', tsMs: start }]);
      clock.nowMs = start + 10 * MIN;
      await fx.a.record([{ site, visitorId: 'late', tsMs: clock.nowMs }]);
      // Even a reader whose clock is behind no longer sees the trimmed visitor.
      expect(await fx.b.count(site, start)).to.equal(1);
      expect(await fx.b.count(site, clock.nowMs)).to.equal(1);
    });

    it('handles large batches', async () => {
      const now = clock.nowMs;
      const entries = Array.from({ length: 5_000 }, (_, i) => ({ site, visitorId: `v${i % 2_500}`, tsMs: now - (i % 240) * 1_000 }));
      await fx.a.record(entries);
      expect(await fx.b.count(site, now)).to.equal(2_500);
    });
  });
}
