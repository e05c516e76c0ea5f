/**
 * A reprocess whose process is killed (SIGKILL) in the middle of a day, on the real engines:
 * the first day switched, the second half-written, the lease still held by the dead process.
 * The same command, run from the gateway once the lease has expired, resumes the run: it ends
 * equal to the exact reference, and each day is switched exactly once.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import type { ReprocessMessage, RunsResponse, VersionsResponse } from '../../protocol/ops-schema.js';
import { FIXED_LOGIC } from '../../src/ops/ops-test-kit.js';
import { stackEndpoints } from '../support/stack-fixture.js';
import { waitFor } from '../support/wait-for.js';
import { DAY_MS, HOUR_MS, MINUTE_MS, Pipeline, daysAgo, referenceMinutes, send, storedMinutes, wireTraffic } from './reprocess-pipeline.js';
import { withinOneUtcDay } from '../support/utc-day.js';

describe('reprocessing: the process running it is killed (distributed)', function () {
  this.timeout(300_000);
  let p: Pipeline;
  let child: ChildProcess | undefined;
  after(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await p?.stop();
  });

  it('resumes with the same command and ends equal, each day switched once', async function () {
    await withinOneUtcDay(this, { aheadMs: 10 * MINUTE_MS });
    p = await Pipeline.start({ mode: 'distributed', liveLogic: FIXED_LOGIC, opsLogic: FIXED_LOGIC });
    const dayA = daysAgo(3);
    const dayB = dayA + DAY_MS;
    const end = dayB + DAY_MS;
    const sent = wireTraffic({ site: p.site, seed: 5, fromMs: dayA + 18 * HOUR_MS, toMs: dayB + 20 * HOUR_MS, count: 2_000, late: 20, idPrefix: `k${p.run}` });
    await send(await p.client(), sent);
    await p.awaitFinal(end, 120_000);

    const s = stackEndpoints();
    child = spawn(process.execPath, ['--import', 'tsx', 'test/e2e/reprocess-child.ts'], {
      env: {
        ...process.env,
        REPROCESS_CHILD: JSON.stringify({
          cassandra: p.engines.keyspace!.options, brokers: s.kafkaBrokers, topic: p.config.eventLog.eventsTopic,
          tapGroupId: `${p.config.aggregate.groupId}-tap`, watermarkScope: p.config.aggregate.groupId,
          site: p.site, fromMs: dayA, toMs: end, holdFromMs: dayB,
        }),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (c: Buffer) => { output += c.toString(); });
    child.stderr!.on('data', (c: Buffer) => { output += c.toString(); });
    await waitFor(() => {
      if (child!.exitCode !== null) throw new Error(`the child ended early (${child!.exitCode}):\n${output}`);
      return output.includes('HELD');
    }, { what: 'the child to reach the second day', deadlineMs: 120_000, intervalMs: 50 });
    child.kill('SIGKILL');
    await waitFor(() => child!.signalCode === 'SIGKILL', { what: 'the child to die' });

    const client = await p.client();
    const { runs } = await client.request<RunsResponse>('ops.runs', { site: p.site });
    expect(runs).to.have.length(1);
    expect(runs[0]!.state).to.equal('running');
    const days = await client.request<RunsResponse>('ops.runs', { site: p.site, runId: runs[0]!.runId });
    expect(days.days!.map((d) => d.state)).to.deep.equal(['switched']);

    // The dead process's lease expires (3 s); until then the same command is told the site is busy.
    const resumed = await waitFor(async () => {
      const r = await p.cli('reprocess', '--site', p.site, '--from', iso(dayA), '--to', iso(end));
      if (r.status !== 0 && !r.err.includes('OPS_BUSY')) throw new Error(r.err);
      return r.status === 0 ? r : undefined;
    }, { what: 'the resumed run to succeed', deadlineMs: 60_000, intervalMs: 500 });
    const done = JSON.parse(resumed.out) as Extract<ReprocessMessage, { type: 'done' }>;
    expect(done.runId).to.equal(runs[0]!.runId);
    expect(done.resumed).to.equal(true);
    expect(done.days.map((d) => d.state)).to.deep.equal(['switched', 'switched']);
    expect(await storedMinutes(p.ops.readStore, p.site, dayA, end)).to.deep.equal(referenceMinutes(sent, p.site, dayA, end));
    const versions = await client.request<VersionsResponse>('ops.versions', { site: p.site, from: dayA, to: end });
    expect(versions.audit.map((a) => [a.day, a.fromVersion, a.toVersion, a.runId])).to.deep.equal([
      [iso(dayA), 0, 1, done.runId], [iso(dayB), 0, 1, done.runId],
    ]);
  });
});

function iso(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}
