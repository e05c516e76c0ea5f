/**
 * The accuracy suite against the embedded default: the whole product in this process (memory
 * event log, rollup store, raw archive), traffic sent over a real RSocket TCP connection with
 * acknowledged batches, every answer of `query.run` compared with the exact reference.
 *
 * Ingest-side dedup is switched off (dedupCacheSize 0), so resent duplicates reach the
 * aggregator, whose (site, id, minute) rule must drop them; idleAdvanceMs is an hour so that no
 * partition closes the traffic's buckets by the wall clock (see closeWindows).
 */
import { expect } from 'chai';
import { startHarness, type Harness } from '../support/harness.js';
import { awaitWatermark, closeWindows, compareAll, report, sendTraffic } from './accuracy-run.js';
import { buildReference } from './reference.js';
import { generateTraffic } from './traffic-generator.js';
import { withinOneUtcDay } from '../support/utc-day.js';
import { finalAtOf, RUN_RULES, SESSION_TIMEOUT_MS, TRAFFIC_SEED } from './run-settings.js';

describe('accuracy: embedded default against the exact reference', function () {
  this.timeout(300_000);
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  it('answers every total, series, breakdown and goal as the reference does', async function () {
    // A run sends for well under two minutes.
    await withinOneUtcDay(this, { aheadMs: 5 * 60_000 });
    const nowMs = Date.now();
    const traffic = generateTraffic({ seed: TRAFFIC_SEED, nowMs, rules: RUN_RULES });
    const ref = buildReference(traffic.sent, { ...RUN_RULES, sessionTimeoutMs: SESSION_TIMEOUT_MS });
    // Only to label mismatches: the answers a server would give if it counted late-lane events.
    const whatIfLate = buildReference(traffic.sent, { ...RUN_RULES, sessionTimeoutMs: SESSION_TIMEOUT_MS, countLate: true });
    const lateExpected = ref.fates.filter((f) => f === 'late').length;
    const timings: string[] = [];
    let t = Date.now();
    const lap = (what: string) => {
      timings.push(`${what} ${((Date.now() - t) / 1000).toFixed(1)} s`);
      t = Date.now();
    };
    h = await startHarness({
      aggregate: { ...RUN_RULES, idleAdvanceMs: 3_600_000, flushIntervalMs: 200, sessionTimeoutMs: SESSION_TIMEOUT_MS },
      ingest: { dedupCacheSize: 0, visitorSecret: 'accuracy-embedded-secret' },
      rollups: { minuteRetentionDays: traffic.minuteRetentionDays },
      sites: traffic.siteSettings,
    });
    const client = await h.client('tcp');

    const ledger = await sendTraffic(traffic, [client]);
    expect(ledger.rejected.slice(0, 5), `${ledger.rejected.length} rejected`).to.deep.equal([]);
    expect(ledger.accepted).to.equal(traffic.sent.length);
    await closeWindows(traffic, client, Date.now());
    lap('send');
    try {
      await awaitWatermark(client, traffic.sites[0]!.id, finalAtOf(traffic), 120_000);
    } catch (e) {
      const counted = await h.metric('sluice_aggregate_events_total', { outcome: 'counted' });
      const positions = JSON.stringify([...h.aggregator.positions()]);
      throw new Error(`${(e as Error).message}; the aggregator has counted ${counted} events, positions ${positions}`);
    }
    lap('aggregate');

    const late = await h.metric('sluice_aggregate_events_total', { outcome: 'late' });
    expect(late, 'events in the late lane').to.equal(lateExpected);

    const cmp = await compareAll(client, traffic, ref, { filters: true, whatIfLate });
    lap('compare');
    const text = `${cmp.mismatches.length} mismatches in ${cmp.compared} values from ${cmp.queries} queries `
      + `(seed ${TRAFFIC_SEED}, now ${new Date(nowMs).toISOString()}, ${traffic.sent.length} events; ${timings.join(', ')}):\n`
      + report(cmp.mismatches);
    console.log(`      accuracy (embedded): ${cmp.compared} values, ${cmp.mismatches.length} mismatches; ${timings.join(', ')}`);
    expect(cmp.mismatches.length, text).to.equal(0);
    expect(cmp.compared).to.be.greaterThan(10_000);
  });
});
