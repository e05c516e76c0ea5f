/**
 * `sluice replay` on the real engines: live rows of the last minutes are damaged (a window of
 * lost writes), the aggregators are stopped, the group is moved back to the first damaged minute,
 * and the restarted aggregator rewrites the rows from the log: they equal the exact reference
 * again, nothing counted twice. Replay refuses a group with running members, and the embedded
 * mode, which keeps no log history.
 */
import { expect } from 'chai';
import type { ReplayResponse } from '../../protocol/ops-schema.js';
import { emptyRollup } from '../../src/aggregate/rollup-merge.js';
import { FIXED_LOGIC } from '../../src/ops/ops-test-kit.js';
import { waitFor } from '../support/wait-for.js';
import { MINUTE_MS, Pipeline, referenceMinutes, send, storedMinutes, wireTraffic } from './reprocess-pipeline.js';
import { withinOneUtcDay } from '../support/utc-day.js';

describe('replay from the event log', function () {
  this.timeout(300_000);
  let p: Pipeline | undefined;
  afterEach(async () => {
    await p?.stop();
    p = undefined;
  });

  it('re-aggregates damaged live rows from the log once the group is moved back (distributed)', async function () {
    // The traffic (the last three minutes) and the run after it on one UTC day: one day row holds it all.
    await withinOneUtcDay(this, { lookbackMs: 4 * MINUTE_MS, aheadMs: 10 * MINUTE_MS });
    p = await Pipeline.start({ mode: 'distributed', liveLogic: FIXED_LOGIC, opsLogic: FIXED_LOGIC });
    const t0 = Math.floor(Date.now() / MINUTE_MS) * MINUTE_MS - 3 * MINUTE_MS;
    const sent = wireTraffic({ site: p.site, seed: 3, fromMs: t0, toMs: t0 + 3 * MINUTE_MS, count: 600, idPrefix: `r${p.run}` });
    await send(await p.client(), sent);
    const from = t0;
    const to = t0 + 4 * MINUTE_MS;
    const reference = referenceMinutes(sent, p.site, from, to);
    const store = p.engines.store;
    await waitFor(async () => JSON.stringify([...await storedMinutes(store, p!.site, from, to)]) === JSON.stringify([...reference]),
      { what: 'the live rows to equal the reference', deadlineMs: 60_000, intervalMs: 200 });

    // A running group cannot be moved.
    const busy = await p.cli('replay', '--at', String(t0), '--dry-run');
    expect(busy.status).to.equal(1);
    expect(busy.err).to.contain('OPS_BUSY');

    await p.stopAggregator();
    // Lost writes: two minutes of live rows gone.
    await store.upsert([emptyRollup(p.site, 'minute', t0 + MINUTE_MS), emptyRollup(p.site, 'minute', t0 + 2 * MINUTE_MS)]);
    expect(await storedMinutes(store, p.site, from, to)).to.not.deep.equal(reference);

    const replay = await waitFor(async () => {
      const r = await p!.cli('replay', '--at', new Date(t0 + MINUTE_MS).toISOString());
      if (r.status !== 0 && !r.err.includes('OPS_BUSY')) throw new Error(r.err);
      return r.status === 0 ? JSON.parse(r.out) as ReplayResponse : undefined;
    }, { what: 'the group to be empty and replayed', deadlineMs: 60_000, intervalMs: 500 });
    expect(replay.applied).to.equal(true);
    expect(replay.at).to.equal(t0 + MINUTE_MS);
    expect(replay.partitions).to.have.length(4);
    for (const part of replay.partitions) expect(part.offset).to.be.at.most(part.end);
    // The site's partition resumes inside what it already consumed: those records are read again.
    expect(replay.partitions.some((x) => x.previous !== null && x.offset < x.end && x.offset > 0)).to.equal(true);

    await p.startAggregator(FIXED_LOGIC);
    // Pageviews and events exact in every minute; visits in progress at the replay time start
    // afresh (no visit state is carried to a replay: ops.md), so visits may only be more.
    const counts = (m: Map<number, { pageviews: number; events: number }>) => JSON.stringify([...m].map(([k, v]) => [k, v.pageviews, v.events]));
    await waitFor(async () => counts(await storedMinutes(store, p!.site, from, to)) === counts(reference),
      { what: 'the replayed rows to count what the reference counts', deadlineMs: 90_000, intervalMs: 200 });
    const replayed = await storedMinutes(store, p.site, from, to);
    for (const [minute, ref] of reference) {
      if (minute < t0 + MINUTE_MS) expect(replayed.get(minute)).to.deep.equal(ref);
      else expect(replayed.get(minute)!.visits).to.be.at.least(ref.visits);
    }
    // The day row is rolled from the minutes at most coarseRollIntervalMs after them.
    const day = Math.floor(t0 / 86_400_000) * 86_400_000;
    const total = [...reference.values()].reduce((n, t) => n + t.pageviews, 0);
    await waitFor(async () => (await store.read(p!.site, 'day', day, day + 86_400_000))[0]?.totals.pageviews === total,
      { what: `the day row to count ${total} pageviews`, deadlineMs: 30_000, intervalMs: 200 });
  });

  it('is refused in the embedded mode', async () => {
    p = await Pipeline.start({ mode: 'embedded', liveLogic: FIXED_LOGIC, opsLogic: FIXED_LOGIC });
    const r = await p.cli('replay', '--at', new Date().toISOString());
    expect(r.status).to.equal(1);
    expect(r.err).to.contain('OPS_UNSUPPORTED');
  });
});
