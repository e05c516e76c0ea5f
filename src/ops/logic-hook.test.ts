import { expect } from 'chai';
import { IDENTITY_LOGIC, MinuteWindows, type ProcessingLogic } from '../aggregate/minute-windows.js';
import { enriched } from './ops-test-kit.js';

describe('the logic-version hook in the minute windows', () => {
  const options = { maxOutOfOrderMs: 0, allowedLatenessMs: 60_000, idleAdvanceMs: 1e9, maxBreakdownKeys: 50, sessionTimeoutMs: 1_800_000 };
  const T = Date.UTC(2024, 0, 1);

  it('windows what the step returns and treats a dropped event as an input without one', () => {
    const logic: ProcessingLogic = { version: 7, step: (e) => (e.id === 'drop' ? null : { ...e, path: e.path.toUpperCase() }) };
    const w = new MinuteWindows({ ...options, logic }, 0);
    expect(w.offer({ offset: 0, event: enriched('s', T, { id: 'keep', path: '/a' }) }, 0)).to.equal('counted');
    expect(w.offer({ offset: 1, event: enriched('s', T + 1, { id: 'drop', path: '/b' }) }, 0)).to.equal(null);
    const [row] = w.takeFlush()!.rows;
    expect(row!.totals.pageviews).to.equal(1);
    expect(Object.keys(row!.dims.page ?? {})).to.deep.equal(['/A']);
  });

  it('is the identity, version 1, by default', () => {
    const e = enriched('s', T);
    expect(IDENTITY_LOGIC.version).to.equal(1);
    expect(IDENTITY_LOGIC.step(e)).to.equal(e);
  });
});
