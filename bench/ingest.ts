/**
 * `npm run bench:ingest`: events/s through gateway → ingest → in-memory event log, for
 * single-event frames and batched frames, beside a bare rsocket-js fire-and-forget loop
 * (the library's own TCP server and a responder that only counts) measured in the same run on
 * the same machine. Each scenario: a worker-thread client sends fire-and-forget frames for a
 * fixed time; the server thread counts events arriving (bare) or durably appended (gateway);
 * the rate is events over the time between the first and the last arrival.
 * Figures are ratios against the bare loop: absolute numbers vary with the machine's load.
 * The ratio is only fair on a quiet machine: the bare loop needs both cores (client and server
 * both busy), the gateway scenarios mostly one (the server), so other load depresses the bare
 * figure more and flatters the ratio. For where server time goes, `bench/ingest-cpu.ts`.
 */
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import { Worker } from 'node:worker_threads';
import { Registry } from 'prom-client';
import { RSocketServer } from 'rsocket-core';
import { WellKnownMimeType, encodeCompositeMetadata, encodeRoute } from 'rsocket-composite-metadata';
import { TcpServerTransport as LibraryTcpServerTransport } from 'rsocket-tcp-server';
import type { Event } from '../protocol/schema.js';
import { MemoryEventLog } from '../src/adapters/memory/memory-event-log.js';
import { MemoryCurrentVisitors } from '../src/adapters/memory/memory-current-visitors.js';
import { MemoryLiveBus } from '../src/adapters/memory/memory-live-bus.js';
import { MemoryRollupStore } from '../src/adapters/memory/memory-rollup-store.js';
import { loadConfig } from '../src/config.js';
import { DemoTraffic } from '../src/demo/demo-traffic.js';
import { ApiKeys } from '../src/gateway/api-keys.js';
import { Gateway } from '../src/gateway/gateway.js';
import type { LogRecord } from '../src/ingest/event-log.js';
import { createIngestService } from '../src/ingest/ingest-service.js';
import { silentLogger } from '../src/log.js';
import { createQueryService } from '../src/query/query-service.js';
import type { LoadSpec } from './load-worker.js';

const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 4_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const BATCH = 100;
const KEY = 'bench-key-000000';

const routeMetadata = encodeCompositeMetadata([[WellKnownMimeType.MESSAGE_RSOCKET_ROUTING, encodeRoute('ingest.events')]]);

function events(count: number): Event[] {
  const traffic = new DemoTraffic({ sites: Array.from({ length: 20 }, (_, i) => `bench-${i}.example`), seed: 7, visitorsPerSite: 5_000 });
  // No client ids: every event is new to the server, so none is dropped as a duplicate.
  return traffic.batch(count, Date.now()).map(({ id: _id, ...e }) => e);
}

function runLoad(spec: LoadSpec): Promise<{ frames: number }> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./load-worker.js', import.meta.url), { workerData: spec });
    worker.once('message', (m: { ok: boolean; frames?: number; error?: string }) => (m.ok ? resolve({ frames: m.frames! }) : reject(new Error(m.error))));
    worker.once('error', reject);
  });
}

class ArrivalMeter {
  count = 0;
  first = 0;
  last = 0;
  add(n: number): void {
    const t = performance.now();
    if (this.count === 0) this.first = t;
    this.count += n;
    this.last = t;
  }
  rate(): number {
    return this.last > this.first ? (this.count / (this.last - this.first)) * 1000 : 0;
  }
}

async function settle(meter: ArrivalMeter): Promise<void> {
  let prev = -1;
  while (meter.count !== prev) {
    prev = meter.count;
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function bare(singleEvents: Event[]): Promise<number> {
  const meter = new ArrivalMeter();
  const transport = new LibraryTcpServerTransport({ listenOptions: { host: '127.0.0.1', port: 0 } });
  const server = new RSocketServer({
    transport,
    acceptor: {
      accept: async () => ({
        fireAndForget(_payload, responder) {
          meter.add(1);
          responder.onComplete();
          return { cancel() {} };
        },
      }),
    },
  });
  const closeable = await server.bind();
  const port = ((closeable as unknown as { server: { address(): { port: number } } }).server).address().port;
  const payloads = singleEvents.map((e) => ({ data: Buffer.from(JSON.stringify(e)), metadata: routeMetadata }));
  await runLoad({ port, apiKey: KEY, durationMs: DURATION_MS, payloads });
  await settle(meter);
  closeable.close();
  return meter.rate();
}

async function gateway(payloadEvents: Event[][]): Promise<{ rate: number; accepted: number }> {
  const meter = new ArrivalMeter();
  const config = loadConfig({ logLevel: 'silent', gateway: { tcpPort: 0, wsPort: 0, httpPort: 0, apiKeys: [KEY] } });
  const registry = new Registry();
  // No consumer: an unread topic keeps a bounded tail, so memory stays flat however long it runs.
  const log = new MemoryEventLog({ partitions: config.eventLog.partitions, maxUnreadRecords: 20_000 });
  const append = log.append.bind(log);
  log.append = async (topic: string, records: readonly LogRecord[]) => {
    await append(topic, records);
    meter.add(records.length);
  };
  const ingest = createIngestService({ log, topic: config.eventLog.eventsTopic, config: config.ingest, registry });
  const gw = new Gateway({
    config: config.gateway, ingest, query: createQueryService({ store: new MemoryRollupStore() }), bus: new MemoryLiveBus(), currentVisitors: new MemoryCurrentVisitors(),
    registry, apiKeys: new ApiKeys([KEY]), logger: silentLogger(), ready: () => true,
  });
  const ports = await gw.start();
  const payloads = payloadEvents.map((batch) => ({
    data: Buffer.from(JSON.stringify(batch.length === 1 ? batch[0] : { events: batch })),
    metadata: routeMetadata,
  }));
  await runLoad({ port: ports.tcp, apiKey: KEY, durationMs: DURATION_MS, payloads });
  await settle(meter);
  await gw.stop();
  await log.close();
  return { rate: meter.rate(), accepted: meter.count };
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US').padStart(10);
}

async function main(): Promise<void> {
  const cpu = cpus();
  console.log(`machine: ${cpu.length} × ${cpu[0]?.model ?? 'unknown cpu'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB (${(freemem() / 2 ** 30).toFixed(1)} free), ` +
    `load ${loadavg().map((l) => l.toFixed(2)).join(' ')}, node ${process.version}`);
  console.log(`each scenario: ${DURATION_MS} ms of fire-and-forget from a worker-thread client, ${ROUNDS} rounds interleaved; best round reported\n`);
  const pool = events(20_000);
  const singles = pool.map((e) => [e]);
  const batches = Array.from({ length: pool.length / BATCH }, (_, i) => pool.slice(i * BATCH, (i + 1) * BATCH));

  const results = { bare: 0, single: 0, batched: 0 };
  for (let round = 1; round <= ROUNDS; round++) {
    // BENCH_ONLY=batched (or bare, single) runs one scenario, e.g. under a profiler.
    const only = process.env.BENCH_ONLY;
    const b = !only || only === 'bare' ? await bare(pool) : 0;
    const s = !only || only === 'single' ? await gateway(singles) : { rate: 0 };
    const m = !only || only === 'batched' ? await gateway(batches) : { rate: 0 };
    console.log(`round ${round}: bare ${fmt(b)} ev/s | gateway single ${fmt(s.rate)} ev/s | gateway batched(${BATCH}) ${fmt(m.rate)} ev/s`);
    results.bare = Math.max(results.bare, b);
    results.single = Math.max(results.single, s.rate);
    results.batched = Math.max(results.batched, m.rate);
  }
  console.log('\nscenario                                          events/s   vs bare');
  console.log(`bare rsocket-js fire-and-forget (1 event/frame) ${fmt(results.bare)}     1.00`);
  console.log(`gateway → ingest → memory log, 1 event/frame     ${fmt(results.single)}     ${(results.single / results.bare).toFixed(2)}`);
  console.log(`gateway → ingest → memory log, ${BATCH} events/frame  ${fmt(results.batched)}     ${(results.batched / results.bare).toFixed(2)}`);
  const aim = results.batched / results.bare >= 0.5;
  console.log(`\naim: batched ≥ 0.50 × bare — ${aim ? 'met' : 'NOT met'} (${(results.batched / results.bare).toFixed(2)})`);
}

main().then(() => process.exit(0), (e: unknown) => {
  console.error(e);
  process.exit(1);
});
