import { expect } from 'chai';
import { MemoryCurrentVisitors } from './memory-current-visitors.js';

const MIN = 60_000;

describe('memory current visitors: bounded memory', () => {
  it('forgets expired visitors and quiet sites as time moves on', async () => {
    let now = Date.UTC(2026, 0, 10, 12, 0);
    const cv = new MemoryCurrentVisitors({ now: () => now });
    await cv.record(Array.from({ length: 100 }, (_, i) => ({ site: `quiet-${i % 10}`, visitorId: `v${i}`, tsMs: now })));
    expect(cv.size()).to.equal(100);
    now += 6 * MIN;
    await cv.record([{ site: 'busy', visitorId: 'x', tsMs: now }]);
    expect(cv.size()).to.equal(1);
  });

  it('never holds more than maxVisitors, evicting the least recently active site first', async () => {
    const now = Date.UTC(2026, 0, 10, 12, 0);
    const cv = new MemoryCurrentVisitors({ now: () => now, maxVisitors: 50 });
    await cv.record(Array.from({ length: 40 }, (_, i) => ({ site: 'old', visitorId: `o${i}`, tsMs: now - MIN })));
    await cv.record(Array.from({ length: 30 }, (_, i) => ({ site: 'new', visitorId: `n${i}`, tsMs: now })));
    expect(cv.size()).to.equal(50);
    expect(await cv.count('new', now)).to.equal(30);
    expect(await cv.count('old', now)).to.equal(20);
    await cv.record(Array.from({ length: 80 }, (_, i) => ({ site: 'huge', visitorId: `h${i}`, tsMs: now })));
    expect(cv.size()).to.equal(50);
    expect(await cv.count('old', now)).to.equal(0);
  });
});
