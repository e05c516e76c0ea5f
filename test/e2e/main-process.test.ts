/**
 * The product as an operator runs it: `sluice` in its own process on the embedded default.
 * It logs its mode and ports, serves /healthz, /readyz and /metrics, takes events and queries
 * over real sockets, and shuts down cleanly on SIGTERM and SIGINT.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { TotalsResponse } from '../../protocol/schema.js';
import { SluiceClient } from '../../src/client/sluice-client.js';
import { waitFor } from '../support/wait-for.js';

const KEY = 'process-test-key-01';

interface Running {
  readonly child: ChildProcess;
  readonly lines: string[];
  readonly ports: { tcp: number; ws: number; http: number };
}

async function startProcess(extraArgs: string[] = []): Promise<Running> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...extraArgs], {
    env: { ...process.env, SLUICE_GATEWAY_TCP_PORT: '0', SLUICE_GATEWAY_WS_PORT: '0', SLUICE_GATEWAY_HTTP_PORT: '0', SLUICE_GATEWAY_API_KEYS: KEY },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let buffered = '';
  const collect = (chunk: Buffer) => {
    buffered += chunk.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    lines.push(...parts);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const started = await waitFor(() => lines.map((l) => { try { return JSON.parse(l) as Record<string, unknown>; } catch { return undefined; } })
    .find((l) => typeof l?.msg === 'string' && l.msg.startsWith('Sluice started')), { what: 'start-up log line', deadlineMs: 30_000 });
  expect(started.mode).to.equal('embedded');
  return { child, lines, ports: { tcp: Number(started.tcp), ws: Number(started.ws), http: Number(started.http) } };
}

describe('the sluice process', function () {
  this.timeout(60_000);
  let running: Running | undefined;
  afterEach(() => {
    if (running && running.child.exitCode === null) running.child.kill('SIGKILL');
  });

  it('logs its mode and ports, serves health and metrics, works, and stops cleanly on SIGTERM', async () => {
    running = await startProcess();
    const { ports, child, lines } = running;
    const base = `http://127.0.0.1:${ports.http}`;
    expect((await fetch(`${base}/healthz`)).status).to.equal(200);
    expect((await fetch(`${base}/readyz`)).status).to.equal(200);

    const client = await SluiceClient.connect({ url: `tcp://127.0.0.1:${ports.tcp}`, apiKey: KEY });
    const now = Date.now();
    const ack = await client.sendBatch([{ type: 'pageview', site: 'proc.example', url: 'https://proc.example/', timestamp: now }]);
    expect(ack.accepted).to.equal(1);
    await waitFor(async () => (await client.request<TotalsResponse>('query.totals', { site: 'proc.example', from: now - 60_000, to: now + 60_000 })).totals.pageviews === 1,
      { what: 'the pageview to be counted', deadlineMs: 20_000 });
    client.close();

    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).to.match(/^sluice_ingest_events_total\{outcome="accepted"\} 1$/m);
    expect(metrics).to.match(/^sluice_gateway_requests_total\{route="ingest\.batch",outcome="ok"\} 1$/m);
    expect(metrics).to.contain('sluice_gateway_live_streams 0');

    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    expect(code).to.equal(0);
    expect(lines.some((l) => l.includes('"msg":"stopped"'))).to.equal(true);
  });

  it('with --demo shows live numbers within seconds, and stops on SIGINT', async () => {
    running = await startProcess(['--demo']);
    const { child, lines } = running;
    await waitFor(() => lines.find((l) => /live update .* [1-9]\d* pageviews/.test(l)), { what: 'a live update with pageviews', deadlineMs: 30_000 });
    child.kill('SIGINT');
    const [code] = await once(child, 'exit');
    expect(code).to.equal(0);
  });

  it('refuses a bad configuration with a message naming the key', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      env: { ...process.env, SLUICE_GATEWAY_TCP_PORT: 'seventy' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
    const [code] = await once(child, 'exit');
    expect(code).to.equal(2);
    expect(err).to.contain('SLUICE_GATEWAY_TCP_PORT');
  });
});
