/**
 * Issue 5, point 7, end to end, against the embedded default and the real engines (Kafka and
 * Cassandra): traffic over two past UTC days is aggregated live with a deliberately faulty
 * processing logic (version 2: it drops some events and files /docs under /wrong), with late
 * events beyond the allowed lateness; the live aggregator is upgraded to the fixed logic
 * (version 3) and, while ingest continues, `sluice reprocess` recomputes the two days: their
 * rollups then equal the exact reference recomputed from the events (late ones included), and
 * the traffic sent meanwhile is counted exactly once, live. A reprocess cancelled half-way
 * resumes with the same command and ends equal, each day switched once; `sluice rollback`
 * restores the version-2 rows exactly; live subscribers are told.
 */
import { expect } from 'chai';
import type { QueryResponse } from '../../protocol/query-schema.js';
import type { ReprocessMessage, RunsResponse, VersionsResponse } from '../../protocol/ops-schema.js';
import { FAULTY_LOGIC, FIXED_LOGIC, snapshot } from '../../src/ops/ops-test-kit.js';
import { waitFor } from '../support/wait-for.js';
import {
  DAY_MS, HOUR_MS, MINUTE_MS, Pipeline, daysAgo, referenceMinutes, referenceVisitors, send, storedMinutes, sumTotals,
  wireTraffic, type Mode, type SentEvent,
} from './reprocess-pipeline.js';
import { withinOneUtcDay } from '../support/utc-day.js';

for (const mode of ['embedded', 'distributed'] as Mode[]) {
  describe(`reprocessing end to end (${mode})`, function () {
    this.timeout(mode === 'distributed' ? 300_000 : 120_000);
    let p: Pipeline;
    const dayA = daysAgo(3);
    const dayB = dayA + DAY_MS;
    const end = dayB + DAY_MS;
    let sent: SentEvent[];

    before(async function () {
      // Today's traffic (sent while the reprocess runs) must be received on one UTC day.
      await withinOneUtcDay(this, { aheadMs: 10 * MINUTE_MS });
      p = await Pipeline.start({ mode, liveLogic: FAULTY_LOGIC, opsLogic: FIXED_LOGIC });
      // Two days, from mid-afternoon of A to the evening of B (visits cross midnight), some late.
      sent = wireTraffic({ site: p.site, seed: 11, fromMs: dayA + 15 * HOUR_MS, toMs: dayB + 21 * HOUR_MS, count: 3_000, late: 40, idPrefix: `a${p.run}` });
      const client = await p.client();
      await send(client, sent);
      await p.awaitFinal(end, mode === 'distributed' ? 120_000 : 60_000);
    });
    after(async () => p?.stop());

    it('reprocesses with the fixed logic while ingest continues; the days equal the exact reference; rollback restores version 2 exactly', async () => {
      const reference = referenceMinutes(sent, p.site, dayA, end);
      const liveRows = await storedMinutes(p.ops.readStore, p.site, dayA, end);
      // The faulty live logic lost events and the late lane holds others: the live days are wrong.
      expect(sumTotals(liveRows).pageviews).to.be.lessThan(sumTotals(reference).pageviews);
      const version2 = await snapshot(p.ops.readStore, p.site, dayA, end);

      // The fix is deployed to the live aggregator first; it resumes where it committed.
      await p.upgradeAggregator(FIXED_LOGIC);

      // Ingest goes on during the reprocess: current traffic of the same site, counted live.
      const client = await p.client();
      const liveFrom = Date.now() - 2 * MINUTE_MS;
      let stopIngest = false;
      const ongoing: SentEvent[] = [];
      let n = 0;
      const ingesting = (async () => {
        while (!stopIngest) {
          const now = Date.now();
          const batch = wireTraffic({ site: p.site, seed: 100 + n, fromMs: now - 1_000, toMs: now, count: 20, idPrefix: `live${p.run}-${n++}` });
          await send(client, batch);
          ongoing.push(...batch);
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      // A live subscriber of the reprocessed range is told, and restates.
      const messages: unknown[] = [];
      const watcher = await p.client();
      watcher.liveQuery({ site: p.site, date_range: { from: dayA, to: end }, metrics: ['pageviews'], time_zone: 'UTC' }, { next: (m) => messages.push(m) });
      await waitFor(() => messages.length > 0, { what: 'the live query snapshot' });

      const run = await p.cli('reprocess', '--site', p.site, '--from', iso(dayA), '--to', iso(end));
      expect(run.status, run.err).to.equal(0);
      const done = JSON.parse(run.out) as Extract<ReprocessMessage, { type: 'done' }>;
      expect(done.days.map((d) => [d.day, d.state, d.fromVersion, d.toVersion])).to.deep.equal([[iso(dayA), 'switched', 0, 1], [iso(dayB), 'switched', 0, 1]]);
      expect(done.logicVersion).to.equal(3);
      expect(run.err).to.match(/days 1\/2, .*ETA/);

      // Exact: every minute of both days, late events included.
      expect(await storedMinutes(p.ops.readStore, p.site, dayA, end)).to.deep.equal(reference);
      for (const day of [dayA, dayB]) {
        const [row] = await p.ops.readStore.read(p.site, 'day', day, day + DAY_MS);
        const ref = sumTotals(new Map([...reference].filter(([m]) => m >= day && m < day + DAY_MS)));
        expect(row!.totals).to.deep.equal(ref);
        const exact = referenceVisitors(sent, p.site, day, day + DAY_MS);
        const { HyperLogLog } = await import('../../src/aggregate/hyperloglog.js');
        expect(Math.abs(HyperLogLog.countOf(row!.visitors) - exact)).to.be.at.most(Math.max(2, exact * 0.02));
        // The faulty logic filed /docs under /wrong; the fixed one does not.
        expect(row!.dims.page ?? {}).to.not.have.property('/wrong');
        expect(row!.dims.page ?? {}).to.have.property('/docs');
      }
      const versions = await (await p.client()).request<VersionsResponse>('ops.versions', { site: p.site, from: dayA, to: end });
      expect(versions.logicVersions).to.deep.equal([3]);
      expect(versions.status).to.equal('final');
      expect(versions.audit.map((a) => [a.day, a.fromVersion, a.toVersion, a.logicVersion])).to.deep.equal([[iso(dayA), 0, 1, 3], [iso(dayB), 0, 1, 3]]);
      // Query responses say so too: the logic version that built the days, final, both reprocessed.
      const restated = await client.query({ site: p.site, date_range: { from: dayA, to: end }, metrics: ['pageviews'], time_zone: 'UTC' }) as QueryResponse;
      expect(restated.meta).to.include({ status: 'final', reprocessed_days: 2 });
      expect(restated.meta.logic_versions).to.deep.equal([3]);
      await waitFor(() => messages.some((m) => (m as { type?: string }).type !== 'snapshot' && JSON.stringify(m).includes(String(sumTotals(reference).pageviews))),
        { what: 'the live query to restate the reprocessed days', deadlineMs: 20_000 });

      // The traffic sent during the run is counted exactly once, live, by the fixed logic.
      stopIngest = true;
      await ingesting;
      const liveTo = Date.now() + MINUTE_MS;
      const expectedLive = sumTotals(referenceMinutes(ongoing, p.site, liveFrom, liveTo)).pageviews;
      await waitFor(async () => sumTotals(await storedMinutes(p.ops.readStore, p.site, liveFrom, liveTo)).pageviews === expectedLive,
        { what: `${expectedLive} live pageviews`, deadlineMs: 60_000, intervalMs: 200 });
      const whole = await client.query({ site: p.site, date_range: { from: dayA, to: liveTo }, metrics: ['pageviews', 'events'], time_zone: 'UTC' }) as QueryResponse;
      expect(whole.totals.pageviews).to.equal(sumTotals(reference).pageviews + expectedLive);

      // Rollback: the version-2 rows, exactly.
      const back = await p.cli('rollback', '--site', p.site, '--from', iso(dayA), '--to', iso(end));
      expect(back.status, back.err).to.equal(0);
      expect(await snapshot(p.ops.readStore, p.site, dayA, end)).to.deep.equal(version2);
      // And forward again: a new version, equal to the reference.
      const again = await p.cli('reprocess', '--site', p.site, '--from', iso(dayA), '--to', iso(end));
      expect(again.status, again.err).to.equal(0);
      expect((JSON.parse(again.out) as { rollupVersion: number }).rollupVersion).to.equal(2);
      expect(await storedMinutes(p.ops.readStore, p.site, dayA, end)).to.deep.equal(reference);
    });

    it('a reprocess cancelled half-way resumes with the same command, ends equal, and switches each day once', async () => {
      const reference = referenceMinutes(sent, p.site, dayA, end);
      const client = await p.client();
      // Hold the run's writes of the second day, cancel the stream there, then let the write go:
      // the run stops at its next step with the first day switched and the second half-written.
      p.gate.hold = (rows) => rows.some((r) => r.site.includes('@v') && r.bucketMs >= dayB);
      const stopped = new Promise<unknown>((resolve) => {
        const handle = client.stream<ReprocessMessage>('ops.reprocess', { site: p.site, from: dayA, to: end }, 1_000, {
          next: () => {},
          error: resolve,
          complete: () => resolve(new Error('the run finished although held')),
        });
        void waitFor(() => p.gate.held > 0, { what: 'the second day\'s write to be held', deadlineMs: 60_000 }).then(() => {
          handle.cancel();
          resolve('cancelled');
        });
      });
      expect(await stopped).to.equal('cancelled');
      // Let the held write go only once the server has seen the cancellation.
      await waitFor(() => p.ops.inFlight().some((s) => s.route === 'ops.reprocess' && s.cancelled), { what: 'the server to see the cancellation' });
      p.gate.release();
      const runs = await waitFor(async () => {
        const r = await client.request<RunsResponse>('ops.runs', { site: p.site });
        const last = r.runs.at(-1)!;
        return last.state === 'interrupted' ? r : undefined;
      }, { what: 'the cancelled run to be journalled as interrupted', deadlineMs: 30_000 });
      const interrupted = runs.runs.at(-1)!;
      const days = await client.request<RunsResponse>('ops.runs', { site: p.site, runId: interrupted.runId });
      expect(days.days!.filter((d) => d.state === 'switched')).to.have.length(1);

      const resumed = await p.cli('reprocess', '--site', p.site, '--from', iso(dayA), '--to', iso(end));
      expect(resumed.status, resumed.err).to.equal(0);
      const done = JSON.parse(resumed.out) as Extract<ReprocessMessage, { type: 'done' }>;
      expect(done.runId).to.equal(interrupted.runId);
      expect(done.resumed).to.equal(true);
      expect(await storedMinutes(p.ops.readStore, p.site, dayA, end)).to.deep.equal(reference);
      const versions = await client.request<VersionsResponse>('ops.versions', { site: p.site, from: dayA, to: end });
      expect(versions.audit.filter((a) => a.runId === interrupted.runId).map((a) => a.day)).to.deep.equal([iso(dayA), iso(dayB)]);
    });

    it('refuses days that are not final and keys that may not run ops', async () => {
      const today = daysAgo(0);
      const notFinal = await p.cli('reprocess', '--site', p.site, '--from', iso(today), '--to', iso(today + DAY_MS));
      expect(notFinal.status).to.equal(1);
      expect(notFinal.err).to.contain('OPS_NOT_FINAL');
    });
  });
}

function iso(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}
