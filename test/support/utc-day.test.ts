import { expect } from 'chai';
import { withinOneUtcDay } from './utc-day.js';

const DAY = Date.UTC(2026, 10, 22);
const MINUTE = 60_000;

async function waitAt(nowMs: number, window: { lookbackMs?: number; aheadMs: number }) {
  let timeout = 120_000;
  const slept: number[] = [];
  const ctx = { timeout: ((ms?: number) => { if (ms !== undefined) timeout = ms; return timeout; }) as Mocha.Context['timeout'] };
  const waited = await withinOneUtcDay(ctx, window, { now: () => nowMs, sleep: async (ms) => { slept.push(ms); } });
  return { waited, slept, timeout };
}

describe('withinOneUtcDay', () => {
  it('does not wait when the window lies within the day', async () => {
    expect(await waitAt(DAY + 12 * 60 * MINUTE, { lookbackMs: 4 * MINUTE, aheadMs: 10 * MINUTE })).to.deep.equal({ waited: 0, slept: [], timeout: 120_000 });
  });

  it('waits for the next day (and its lookback) when the window would cross midnight ahead, lengthening the timeout by the wait', async () => {
    const at = DAY + 24 * 60 * MINUTE - 3 * MINUTE;
    const wait = 3 * MINUTE + 4 * MINUTE + 1_000;
    expect(await waitAt(at, { lookbackMs: 4 * MINUTE, aheadMs: 10 * MINUTE })).to.deep.equal({ waited: wait, slept: [wait], timeout: 120_000 + wait });
  });

  it('waits out the lookback just after midnight', async () => {
    const at = DAY + MINUTE;
    const wait = 3 * MINUTE + 1_000;
    expect(await waitAt(at, { lookbackMs: 4 * MINUTE, aheadMs: 10 * MINUTE })).to.deep.equal({ waited: wait, slept: [wait], timeout: 120_000 + wait });
  });
});
