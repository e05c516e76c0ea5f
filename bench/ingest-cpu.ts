/**
 * `node dist/bench/ingest-cpu.js`: server-side CPU per event of the fire-and-forget ingest path,
 * in one thread and without sockets: pre-encoded request payloads go straight into the
 * connection responder (route, parse, envelope check) → ingest → in-memory event log.
 * A diagnostic beside `bench:ingest`, not a replacement for it: it leaves out rsocket-js framing
 * and the socket, so its figures are steadier on a busy machine and show what the
 * gateway and ingest code itself costs. Reports, per round and best of all, wall-clock µs per
 * event and process CPU µs per event (user + system, every thread: GC helpers included); on a
 * shared machine the CPU figure is the steadier one.
 *
 * Env: CPU_BENCH_EVENTS (per round, default 200 000), CPU_BENCH_ROUNDS (default 5),
 * CPU_BENCH_BATCH (events per frame, default 100; 1 for single-event frames), CPU_BENCH_TAIL
 * (records the log keeps per partition, default 20 000 as in bench:ingest),
 * CPU_BENCH_ALLOC_PROFILE=<file> (writes a sampling allocation profile of the measured rounds,
 * garbage included, for `chrome://inspect` or a script).
 *
 * CPU_BENCH_KAFKA=<host:port>: the same path into a real Kafka (KafkaEventLog, a fresh topic of
 * 8 partitions, deleted at the end) instead of the in-memory log, as acknowledged `ingest.batch`
 * requests with CPU_BENCH_IN_FLIGHT (default 8) in flight, each batch from one site, as
 * `bench:pipeline`'s gateway scenario without sockets. CPU then includes kafkajs (encoding,
 * gzip in libuv threads) but not the broker, which runs in its own process.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { Registry } from 'prom-client';
import { WellKnownMimeType, encodeCompositeMetadata, encodeRoute } from 'rsocket-composite-metadata';
import type { Event } from '../protocol/schema.js';
import { KafkaEventLog } from '../src/adapters/kafka/kafka-event-log.js';
import { MemoryEventLog } from '../src/adapters/memory/memory-event-log.js';
import { MemoryCurrentVisitors } from '../src/adapters/memory/memory-current-visitors.js';
import { MemoryLiveBus } from '../src/adapters/memory/memory-live-bus.js';
import { MemoryRollupStore } from '../src/adapters/memory/memory-rollup-store.js';
import { loadConfig } from '../src/config.js';
import { DemoTraffic } from '../src/demo/demo-traffic.js';
import { createGatewayMetrics } from '../src/gateway/gateway-metrics.js';
import { createResponder } from '../src/gateway/responder.js';
import { createIngestService } from '../src/ingest/ingest-service.js';
import { silentLogger } from '../src/log.js';
import { createQueryService } from '../src/query/query-service.js';

const ROUND_EVENTS = Number(process.env.CPU_BENCH_EVENTS ?? 200_000);
const ROUNDS = Number(process.env.CPU_BENCH_ROUNDS ?? 5);
const BATCH = Number(process.env.CPU_BENCH_BATCH ?? 100);
const KAFKA = process.env.CPU_BENCH_KAFKA;
const IN_FLIGHT = Number(process.env.CPU_BENCH_IN_FLIGHT ?? 8);
const BATCH_METADATA = Buffer.from(encodeCompositeMetadata([[WellKnownMimeType.MESSAGE_RSOCKET_ROUTING, encodeRoute('ingest.batch')]]));

const metadata = Buffer.from(encodeCompositeMetadata([[WellKnownMimeType.MESSAGE_RSOCKET_ROUTING, encodeRoute('ingest.events')]]));

function events(count: number): Event[] {
  const traffic = new DemoTraffic({ sites: Array.from({ length: 20 }, (_, i) => `bench-${i}.example`), seed: 7, visitorsPerSite: 5_000 });
  return traffic.batch(count, Date.now()).map(({ id: _id, ...e }) => e);
}

/** Batches of BATCH events, each from one site (sites in turn), as bench:pipeline's pool. */
function siteBatches(count: number): Event[][] {
  const sites = Array.from({ length: 16 }, (_, i) => new DemoTraffic({ sites: [`s${i}.bench.example`], seed: 1_000 + i, visitorsPerSite: 5_000 }));
  return Array.from({ length: count }, (_, b) => sites[b % sites.length]!.batch(BATCH, Date.now()).map(({ id: _id, ...e }) => e));
}

async function main(): Promise<void> {
  const config = loadConfig({ logLevel: 'silent' });
  const registry = new Registry();
  const kafkaTopic = `bench-ingest-cpu-${process.pid}-${Date.now()}`;
  const kafka = KAFKA ? await KafkaEventLog.connect({ brokers: [KAFKA], partitions: 8, replicationFactor: 1 }) : undefined;
  if (kafka) await kafka.ensureTopics([kafkaTopic]);
  const log = kafka ?? new MemoryEventLog({ partitions: config.eventLog.partitions, maxUnreadRecords: Number(process.env.CPU_BENCH_TAIL ?? 20_000) });
  let appended = 0;
  const append = log.append.bind(log);
  log.append = async (topic, records) => {
    await append(topic, records);
    appended += records.length;
  };
  const ingest = createIngestService({ log, topic: kafka ? kafkaTopic : config.eventLog.eventsTopic, config: config.ingest, registry });
  const responder = createResponder({
    ingest, query: createQueryService({ store: new MemoryRollupStore() }), bus: new MemoryLiveBus(), currentVisitors: new MemoryCurrentVisitors(),
    metrics: createGatewayMetrics(registry), logger: silentLogger(), maxDataBytes: config.gateway.maxFrameBytes,
    maxStreamsPerConnection: config.gateway.maxStreamsPerConnection, shuttingDown: () => false,
  }, {
    context: { ip: '127.0.0.1' },
    grant: { sites: undefined },
  });
  const pool = events(20_000);
  const payloads = kafka
    ? siteBatches(200).map((batch) => ({ data: Buffer.from(JSON.stringify({ events: batch })), metadata: BATCH_METADATA }))
    : Array.from({ length: pool.length / BATCH }, (_, i) => {
      const batch = pool.slice(i * BATCH, (i + 1) * BATCH);
      return { data: Buffer.from(JSON.stringify(batch.length === 1 ? batch[0] : { events: batch })), metadata };
    });
  const sink = { onComplete() {}, onError() {}, onNext() {}, onExtension() {} };
  let nextPayload = 0;
  /** One acknowledged request at a time, until `until` events were appended; as a client with one request in flight. */
  const ackLoop = async (until: number) => {
    while (appended < until) {
      const payload = payloads[nextPayload]!;
      nextPayload = (nextPayload + 1) % payloads.length;
      await new Promise<void>((resolve, reject) => {
        responder.requestResponse!(payload, {
          onNext: () => resolve(), onComplete: () => resolve(), onError: (e: Error) => reject(e), onExtension() {},
        });
      });
    }
  };
  const burst = Math.max(1, Math.floor(65_536 / payloads[0]!.data.length));
  const allocProfile = process.env.CPU_BENCH_ALLOC_PROFILE;
  const session = allocProfile ? new Session() : undefined;
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let round = 0; round <= ROUNDS; round++) {
    if (round === 1 && session) {
      session.connect();
      await session.post('HeapProfiler.startSampling', {
        samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true,
      });
    }
    const start = appended;
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    let i = 0;
    if (kafka) await Promise.all(Array.from({ length: IN_FLIGHT }, () => ackLoop(start + ROUND_EVENTS)));
    while (appended - start < ROUND_EVENTS) {
      // As many frames per macrotask as one 64 KiB socket read would carry, as on a real connection.
      for (let k = 0; k < burst; k++) {
        responder.fireAndForget!(payloads[i]!, sink);
        i = (i + 1) % payloads.length;
      }
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
    const n = appended - start;
    const us = ((performance.now() - t0) * 1000) / n;
    const used = process.cpuUsage(c0);
    const cpuUs = (used.user + used.system) / n;
    if (round > 0) { // round 0 warms up
      wall.push(us);
      cpu.push(cpuUs);
    }
    console.log(`${round === 0 ? 'warm-up' : `round ${round}`}: ${us.toFixed(2)} µs/event wall, ${cpuUs.toFixed(2)} µs/event cpu (${n} events)`);
  }
  if (session && allocProfile) {
    const { profile } = await session.post('HeapProfiler.stopSampling');
    writeFileSync(allocProfile, JSON.stringify(profile));
    session.disconnect();
  }
  const summary = (xs: number[]) => {
    xs.sort((a, b) => a - b);
    return `best ${xs[0]!.toFixed(2)}, median ${xs[Math.floor(xs.length / 2)]!.toFixed(2)}`;
  };
  console.log(`batch ${BATCH}${kafka ? `, Kafka, ${IN_FLIGHT} in flight` : ''}: wall µs/event ${summary(wall)}; cpu µs/event ${summary(cpu)}`);
  if (kafka) await kafka.deleteTopics([kafkaTopic]);
  await log.close();
}

main().then(() => process.exit(0), (e: unknown) => {
  console.error(e);
  process.exit(1);
});
