/**
 * `npm run bench:pipeline`: the distributed pipeline on the local stack (real Kafka, Cassandra,
 * Redis), five figures measured in ONE run on the same machine, each against a bare baseline
 * measured in the same run:
 *
 *   1. bare kafkajs producer: the gateway's exact record bytes (captured from the project's own
 *      ingest service), acks=all, gzip, keyed by site, one send per ingest call, K sends in flight;
 *   2. gateway → Kafka: a worker-thread RSocket client (SluiceClient, acknowledged ingest.batch of
 *      100 events, K requests in flight) into an in-process app, distributed mode, roles
 *      ['gateway']. Ratio vs 1. 1 and 2 run interleaved in rounds; the best round of each counts;
 *   3. bare kafkajs consumer: reads the topic of 2 from the beginning, fresh group, eachBatch, no
 *      processing, from joining the group until the end offsets (best of several passes); and,
 *      for context only (3d), the same consumer decoding each record, the least any aggregation
 *      of these JSON records must do;
 *   4. aggregation: an in-process app with roles ['aggregate'] and a fresh group reads the same
 *      topic into Cassandra, from its first partition assignment until its positions reach the
 *      end offsets AND a final flush (rows, live notices, watermarks, commits) is durable.
 *      Measured as deployed (aggregator + event tap, which archives every event to Cassandra) and
 *      with the tap's group placed at the log end beforehand (the aggregator alone). Ratio vs 3.
 *      For context, the CPU the aim asks of this machine: 4b's CPU seconds per event (its
 *      process, every thread, with Kafka and Cassandra) times 0.8 × the rate of 3, in cores;
 *   5. freshness at half of the maximum rate the deployed pipeline sustains end to end on this
 *      machine (5m). 5m: the pipeline as deployed in distributed mode, one process per role
 *      (gateway, aggregate, archive; the compiled product configured by SLUICE_* env), under
 *      unthrottled load for 15 s after a 3 s warm-up; records appended to the topic, taken by the
 *      aggregator and archived by the tap are counted at both ends of the window, and the slowest
 *      of the three rates is what it sustains (a slower stage's backlog grows). 5: the same shape
 *      on fresh topics with load at half of 5m; probe pageviews of a dedicated site every 100 ms;
 *      time from send to the first live.metrics update (over WebSocket) whose totals.pageviews
 *      reach the probe's sequence number. For context, without an aim: 5x, the same at half the
 *      rate of 2 (gateway → Kafka with nothing else running, more than the whole pipeline
 *      sustains on a small machine, so it measures queueing), and 5r, every role in one
 *      in-process app at a tenth of 2. With BENCH_CPU_PROFILE_DIR the role processes write their
 *      own CPU profiles there on exit.
 *
 * Every run uses its own topics, consumer groups, keyspace and Redis prefix and removes them at
 * the end (also on Ctrl-C). Env: BENCH_DURATION_MS (each round of 1 and 2, default 6000),
 * BENCH_ROUNDS (2), BENCH_WARMUP_MS (1000), BENCH_FRESHNESS_MS (20000 for 5 and 5x; 5r runs half),
 * BENCH_CONNECTIONS (2), BENCH_IN_FLIGHT (per connection, 4), BENCH_FRESHNESS_ONLY_RATE (skip 1
 * to 4 and take this as 2's rate for 5x and 5r; 5m and 5 still run), BENCH_LOG_LEVEL (warn; app
 * logs go to stderr), BENCH_CPU_PROFILE_DIR (a main-thread CPU profile per scenario).
 */
import { randomUUID } from 'node:crypto';
import { cpus } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Worker } from 'node:worker_threads';
import cassandra from 'cassandra-driver';
import { Redis } from 'ioredis';
import { CompressionTypes, Kafka, Partitioners, logLevel, type Admin, type Message, type Producer } from 'kafkajs';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { Event } from '../protocol/schema.js';
import { KafkaEventLog } from '../src/adapters/kafka/kafka-event-log.js';
import { toMessage } from '../src/adapters/kafka/kafka-records.js';
import { startApp, type App } from '../src/app.js';
import { loadConfig, type Config } from '../src/config.js';
import { DemoTraffic, rng } from '../src/demo/demo-traffic.js';
import type { EventLog, GroupConsumer, LogRecord } from '../src/ingest/event-log.js';
import { decodeEventRecord } from '../src/ingest/event-record.js';
import { createIngestService } from '../src/ingest/ingest-service.js';
import type { Logger } from '../src/log.js';
import type { LoadResult, LoadSpec } from './pipeline-load-worker.js';
import type { ProbeResult, ProbeSpec } from './pipeline-probe-worker.js';
import {
  CassandraHeapGuard, ScenarioProfiler, cpuMark, cpuSeconds, cpuSince, envNumber, int, locateEngines, machineLine, ms, percentile, scrapeCounter, secs, sleep, stackUp,
  startRoleProcess, startWorker, trackProcess, untrackProcess, type RoleProcess,
} from './pipeline-support.js';

const DURATION_MS = envNumber('BENCH_DURATION_MS', 6_000);
const ROUNDS = Math.max(1, Math.round(envNumber('BENCH_ROUNDS', 2)));
const WARMUP_MS = envNumber('BENCH_WARMUP_MS', 1_000);
const FRESHNESS_MS = envNumber('BENCH_FRESHNESS_MS', 20_000);
/** Development aid: skip 1 to 4 and run 5r and 5x as if 2 had measured this rate (5m and 5 do not depend on 2). */
const FRESHNESS_ONLY_RATE = process.env.BENCH_FRESHNESS_ONLY_RATE === undefined ? undefined : envNumber('BENCH_FRESHNESS_ONLY_RATE', 0);
const CONNECTIONS = envNumber('BENCH_CONNECTIONS', 2);
const IN_FLIGHT = envNumber('BENCH_IN_FLIGHT', 4);
const SENDS_IN_FLIGHT = CONNECTIONS * IN_FLIGHT;
const BATCH = 100;
const POOL_BATCHES = 200;
const SITES = Array.from({ length: 16 }, (_, i) => `s${i}.bench.example`);
const PROBE_SITE = 'probe.bench.example';
const REF_PROBE_SITE = 'probe-ref.bench.example';
// Each probed run has a site of its own: the keyspace is shared, and a probe waits for its site's
// totals to reach its sequence number, which another run's probes of that site would already have.
const OVER_PROBE_SITE = 'probe-over.bench.example';
const MAX_WARMUP_MS = 3_000;
const MAX_MEASURE_MS = 15_000;
const PROBE_INTERVAL_MS = 100;
const KEY = 'bench-pipeline-key-0001';
const AIM_RATIO = 0.8;
const AIM_P99_MS = 2_000;
const UA = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0';
const profiler = new ScenarioProfiler(process.env.BENCH_CPU_PROFILE_DIR);

const run = randomUUID().slice(0, 8);
const names = {
  bareTopic: `bench-${run}.bare`,
  events: `bench-${run}.events`,
  late: `bench-${run}.late`,
  deadLetter: `bench-${run}.dead-letter`,
  freshEvents: `bench-${run}.fresh.events`,
  freshLate: `bench-${run}.fresh.late`,
  freshDeadLetter: `bench-${run}.fresh.dead-letter`,
  bareGroup: `bench-${run}-bare-consumer`,
  aggGroupTap: `bench-${run}-aggregate-with-tap`,
  aggGroupAlone: `bench-${run}-aggregate-alone`,
  freshGroup: `bench-${run}-fresh-aggregate`,
  refEvents: `bench-${run}.ref.events`,
  refLate: `bench-${run}.ref.late`,
  refDeadLetter: `bench-${run}.ref.dead-letter`,
  refGroup: `bench-${run}-ref-aggregate`,
  maxEvents: `bench-${run}.max.events`,
  maxLate: `bench-${run}.max.late`,
  maxDeadLetter: `bench-${run}.max.dead-letter`,
  maxGroup: `bench-${run}-max-aggregate`,
  overEvents: `bench-${run}.over.events`,
  overLate: `bench-${run}.over.late`,
  overDeadLetter: `bench-${run}.over.dead-letter`,
  overGroup: `bench-${run}-over-aggregate`,
  keyspace: `sluice_bench_${run}`,
  redisPrefix: `sluice-bench-${run}:`,
};
const allTopics = [names.bareTopic, names.events, names.late, names.deadLetter, names.freshEvents, names.freshLate, names.freshDeadLetter,
  names.refEvents, names.refLate, names.refDeadLetter, names.maxEvents, names.maxLate, names.maxDeadLetter, names.overEvents, names.overLate, names.overDeadLetter];
const allGroups = [...Array.from({ length: ROUNDS }, (_, i) => `${names.bareGroup}-${i + 1}`),
  ...[names.aggGroupTap, names.aggGroupAlone, names.freshGroup, names.refGroup, names.maxGroup, names.overGroup].flatMap((g) => [g, `${g}-tap`]),
  `${names.bareGroup}-decode`];

// ---------------------------------------------------------------------------------------------
// Ctrl-C: stop the workers, interrupt the scenario under way, then clean up in `finally`.

class Interrupted extends Error {
  override readonly name = 'Interrupted';
}
const abort = new AbortController();
const workers = new Set<Worker>();
const apps = new Set<App>();
const processes = new Set<RoleProcess>();
let interruptedBy: string | undefined;
function interrupt(why: string, message: string): void {
  interruptedBy = why;
  console.error(`\n${message}`);
  for (const w of workers) void w.terminate();
  for (const p of processes) p.child.kill('SIGKILL');
  abort.abort();
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interruptedBy) {
      console.error(`\n${signal} again: exiting without cleaning up (topics bench-${run}.*, keyspace ${names.keyspace} are left)`);
      process.exit(130);
    }
    interrupt(signal, `${signal}: stopping, then removing this run's topics, groups, keyspace and Redis keys (${signal} again to skip)`);
  });
}
const heapGuard = new CassandraHeapGuard((line) => {
  if (interruptedBy) return;
  interrupt('cassandra-heap', `the local Cassandra ran a full GC, its heap is nearly exhausted ("${line.slice(0, 160)}"): `
    + 'stopping now so that it survives; removing this run\'s topics, groups, keyspace and Redis keys');
});
/** Rejects with Interrupted as soon as Ctrl-C is pressed. */
function abortable<T>(p: Promise<T>): Promise<T> {
  if (abort.signal.aborted) return Promise.reject(new Interrupted('interrupted'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Interrupted('interrupted'));
    abort.signal.addEventListener('abort', onAbort, { once: true });
    p.then((v) => { abort.signal.removeEventListener('abort', onAbort); resolve(v); },
      (e: unknown) => { abort.signal.removeEventListener('abort', onAbort); reject(e); });
  });
}
const pause = (msValue: number) => abortable(sleep(msValue));

function withTimeout<T>(p: Promise<T>, msValue: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${msValue} ms`)), msValue);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------
// Configuration and traffic

/**
 * The apps' logger: lines at BENCH_LOG_LEVEL (warn) and above go to stderr. It runs at info so
 * that the aggregator's "partition assigned" line (one per partition, at assignment) gives the
 * time the aggregator's consumer was ready to read: where scenario 4's clock starts.
 */
const showLevel = pino.levels.values[process.env.BENCH_LOG_LEVEL ?? 'warn'] ?? 40;
let firstAssignedAt = 0;
const logger: Logger = pino({ name: 'sluice-bench', level: showLevel < 30 ? pino.levels.labels[showLevel]! : 'info' }, {
  write(line: string) {
    const at = performance.now();
    const entry = JSON.parse(line) as { level: number; msg?: string; stage?: string };
    if (entry.msg === 'partition assigned' && entry.stage === 'aggregate' && firstAssignedAt === 0) firstAssignedAt = at;
    if (entry.level >= showLevel) process.stderr.write(line);
  },
});

function appConfig(roles: Array<'gateway' | 'aggregate' | 'archive'>, topics: { events: string; late: string; deadLetter: string }, groupId: string): Config {
  return loadConfig({
    mode: 'distributed',
    roles,
    logLevel: 'warn',
    gateway: { tcpPort: 0, wsPort: 0, httpPort: 0, apiKeys: [KEY] },
    eventLog: { eventsTopic: topics.events, lateTopic: topics.late, deadLetterTopic: topics.deadLetter },
    aggregate: { groupId },
    cassandra: { keyspace: names.keyspace },
    redis: { keyPrefix: names.redisPrefix },
  });
}
const defaults = loadConfig({});

/**
 * POOL_BATCHES batches of BATCH events, each batch from one site (as one website's tracker or
 * one server SDK batches), sites taken in turn. No client ids, so nothing is a duplicate when the
 * pool is sent again. With timestamps: event times up to 30 s before `nowMs` (trackers batch).
 */
function eventPool(nowMs: number, withTimestamps: boolean): Event[][] {
  const traffic = SITES.map((site, i) => new DemoTraffic({ sites: [site], seed: 1_000 + i, visitorsPerSite: 5_000 }));
  const random = rng(42);
  return Array.from({ length: POOL_BATCHES }, (_, b) => traffic[b % SITES.length]!.batch(BATCH, nowMs).map(({ id: _id, timestamp: _ts, ...e }) => (
    withTimestamps ? { ...e, timestamp: nowMs - Math.floor(random() * 30_000) } : e)));
}

const encodeBatch = (events: readonly Event[]) => new Uint8Array(Buffer.from(JSON.stringify({ events })));

/** An EventLog that keeps what ingest appends: the gateway's exact records, without Kafka. */
class CapturingLog implements EventLog {
  readonly appends: LogRecord[][] = [];
  constructor(readonly partitions: number) {}
  async append(_topic: string, records: readonly LogRecord[]): Promise<void> {
    this.appends.push([...records]);
  }
  consume(): Promise<GroupConsumer> {
    throw new Error('capture only');
  }
  async close(): Promise<void> {}
}

// ---------------------------------------------------------------------------------------------
// Kafka helpers

const RETRY = { retries: 5, initialRetryTime: 300, maxRetryTime: 5_000 };
const kafka = new Kafka({ clientId: 'sluice-bench', brokers: [...defaults.kafka.brokers], retry: RETRY, logLevel: logLevel.ERROR });

async function endOffsets(admin: Admin, topic: string): Promise<Map<number, number>> {
  const offsets = await admin.fetchTopicOffsets(topic);
  return new Map(offsets.map((o) => [o.partition, Number(o.high)]));
}
const sum = (m: ReadonlyMap<number, number>) => [...m.values()].reduce((a, b) => a + b, 0);

async function committedOffsets(admin: Admin, groupId: string, topic: string): Promise<Map<number, number>> {
  const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
  return new Map((t?.partitions ?? []).map((p) => [p.partition, Math.max(0, Number(p.offset))]));
}

// ---------------------------------------------------------------------------------------------
// Scenarios

interface Row {
  readonly scenario: string;
  readonly rate: number;
  readonly ratio: string;
  readonly aim: string;
}

/** 1. The captured records replayed by a bare kafkajs producer, as KafkaEventLog sends them. */
async function bareProducer(sends: Message[][]): Promise<{ rate: number; records: number; latencyP50: number; latencyP99: number }> {
  const producer: Producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false, idempotent: false, retry: RETRY });
  await abortable(producer.connect());
  try {
    const start = performance.now();
    const warmEnd = start + WARMUP_MS;
    const end = start + DURATION_MS;
    let next = 0;
    let measured = 0;
    let total = 0;
    let lastAck = warmEnd;
    const latencies: number[] = [];
    const loop = async () => {
      while (!abort.signal.aborted && performance.now() < end) {
        const messages = sends[next]!;
        next = (next + 1) % sends.length;
        const t = performance.now();
        await producer.send({ topic: names.bareTopic, messages, acks: -1, timeout: 10_000, compression: CompressionTypes.GZIP });
        const at = performance.now();
        total += messages.length;
        if (at >= warmEnd) {
          measured += messages.length;
          lastAck = Math.max(lastAck, at);
          if (latencies.length < 200_000) latencies.push(at - t);
        }
      }
    };
    await abortable(Promise.all(Array.from({ length: SENDS_IN_FLIGHT }, loop)));
    return { rate: (measured / (lastAck - warmEnd)) * 1000, records: total, latencyP50: percentile(latencies, 0.5), latencyP99: percentile(latencies, 0.99) };
  } finally {
    await producer.disconnect();
  }
}

async function startTrackedApp(config: Config): Promise<{ app: App; startMs: number }> {
  const t = performance.now();
  const app = await abortable(startApp(config, logger));
  apps.add(app);
  return { app, startMs: performance.now() - t };
}

async function stopTrackedApp(app: App): Promise<void> {
  apps.delete(app);
  await withTimeout(app.stop(), 60_000, 'stopping the app');
}

/** 3. A bare kafkajs consumer, fetch settings as KafkaEventLog's consumers, no processing. */
async function bareConsumer(topic: string, groupId: string, ends: ReadonlyMap<number, number>, decode = false): Promise<{ rate: number; records: number; elapsedMs: number }> {
  const consumer = kafka.consumer({
    groupId, maxWaitTimeInMs: 500, maxBytesPerPartition: 1_048_576, maxBytes: 10_485_760,
    allowAutoTopicCreation: false, sessionTimeout: 30_000, heartbeatInterval: 3_000, retry: RETRY,
  });
  await abortable(consumer.connect());
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    const reached = new Map<number, number>();
    let first = 0;
    let last = 0;
    let records = 0;
    consumer.on(consumer.events.GROUP_JOIN, () => {
      if (first === 0) first = performance.now();
    });
    let finish: () => void = () => {};
    const done = new Promise<void>((r) => { finish = r; });
    const complete = () => [...ends].every(([p, end]) => end === 0 || (reached.get(p) ?? 0) >= end);
    await consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: ends.size,
      eachBatch: async ({ batch }) => {
        const now = performance.now();
        const n = batch.messages.length;
        if (n === 0) return;
        records += n;
        if (decode) {
          for (const m of batch.messages) {
            if (m.value && !decodeEventRecord(m.value).ok) throw new Error(`undecodable record at ${batch.partition}/${m.offset}`);
          }
        }
        reached.set(batch.partition, Number(batch.messages[n - 1]!.offset) + 1);
        if (complete() && last === 0) {
          last = now;
          finish();
        }
      },
    });
    await abortable(withTimeout(done, 180_000, 'bare consumer reaching the end offsets'));
    return { rate: (records / (last - first)) * 1000, records, elapsedMs: last - first };
  } finally {
    await consumer.disconnect();
  }
}

interface AggregationResult {
  readonly rate: number;
  readonly elapsedMs: number;
  readonly startMs: number;
  readonly outcomes: string;
  readonly taken: number;
  readonly tapArchived: number;
  readonly committed: number;
  readonly cpu: string;
  /** CPU seconds from before the app started to the final flush: its process, and Kafka with Cassandra. */
  readonly cpuS: { readonly processS: number; readonly enginesS: number };
}

async function counterValues(registry: Registry, name: string): Promise<Map<string, number>> {
  const metric = registry.getSingleMetric(name);
  const out = new Map<string, number>();
  if (!metric) return out;
  for (const v of (await metric.get()).values) out.set(String(v.labels.outcome ?? ''), (out.get(String(v.labels.outcome ?? '')) ?? 0) + v.value);
  return out;
}

/** 4. An app with roles ['aggregate'] reads `names.events` with a fresh group until done and flushed. */
async function aggregation(admin: Admin, groupId: string, ends: ReadonlyMap<number, number>, n: number, roles: Array<'aggregate' | 'archive'>): Promise<AggregationResult> {
  firstAssignedAt = 0;
  const mark = cpuMark();
  const { app, startMs } = await startTrackedApp(appConfig(roles, { events: names.events, late: names.late, deadLetter: names.deadLetter }, groupId));
  try {
    const aggregator = app.aggregator!;
    const deadline = performance.now() + 180_000;
    for (;;) {
      const positions = aggregator.positions();
      const now = performance.now();
      if ([...ends].every(([p, end]) => end === 0 || (positions.get(p) ?? 0) >= end)) break;
      if (now > deadline) throw new Error(`aggregator did not reach the end offsets within 180 s: ${JSON.stringify([...positions])}`);
      await pause(2);
    }
    // Everything is taken; the final flush writes what the windows hold (rows, notices,
    // watermarks) and commits: the measure ends once it is durable.
    await abortable(aggregator.flushNow());
    const end = performance.now();
    const first = firstAssignedAt;
    if (first === 0) throw new Error('the aggregator never logged "partition assigned"');
    const cpu = cpuSince(mark);
    const cpuS = cpuSeconds(mark);
    const outcomes = await counterValues(app.registry, 'sluice_aggregate_events_total');
    const bots = [...(await counterValues(app.registry, 'sluice_aggregate_bot_events_total')).values()].reduce((a, b) => a + b, 0);
    if (bots > 0) outcomes.set('bot', bots);
    const taken = [...outcomes.values()].reduce((a, b) => a + b, 0);
    const tapArchived = (await counterValues(app.registry, 'sluice_event_tap_records_total')).get('archived') ?? 0;
    const committed = sum(await committedOffsets(admin, groupId, names.events));
    return {
      rate: (n / (end - first)) * 1000, elapsedMs: end - first, startMs, taken, tapArchived, committed, cpu, cpuS,
      outcomes: [...outcomes].filter(([, v]) => v > 0).map(([k, v]) => `${k} ${int(v)}`).join(', '),
    };
  } finally {
    await stopTrackedApp(app);
  }
}

/** A pipeline of its own: topics, consumer group, and the tag of its CPU profiles. */
interface PipelineSpec {
  readonly topics: { events: string; late: string; deadLetter: string };
  readonly groupId: string;
  readonly profile: string;
}

interface FreshnessSpec extends PipelineSpec {
  readonly label: string;
  /**
   * 'processes': the deployed shape, one process per role (gateway, aggregate, archive), each
   * `node dist/src/main.js` configured by env; 'one-app': every role in one in-process app, one
   * event loop (the embedded-style worst case).
   */
  readonly shape: 'processes' | 'one-app';
  readonly rate: number;
  readonly durationMs: number;
  readonly site: string;
  readonly loadSpec: LoadSpec;
}

interface FreshnessResult {
  readonly achieved: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly unseen: number;
}

/** 5. Load at `rate` through one gateway+aggregate app while a probe worker measures send → live update. */
async function freshness(admin: Admin, spec: FreshnessSpec): Promise<FreshnessResult> {
  console.log(`    ${spec.label}: target ${int(spec.rate)} events/s for ${spec.durationMs} ms, probe site ${spec.site}`);
  const pipeline = spec.shape === 'processes' ? await roleProcesses(spec) : await oneApp(spec);
  const { startMs } = pipeline;
  try {
    const pool = eventPool(Date.now(), false); // no timestamps: event time = received time, as live traffic
    const load = startWorker<LoadResult>('./pipeline-load-worker.js', {
      ...spec.loadSpec, url: `tcp://127.0.0.1:${pipeline.tcp}`, durationMs: spec.durationMs + 120_000, warmupMs: 2_000,
      payloads: pool.map(encodeBatch), eventsPerPayload: pool.map((b) => b.length), eventsPerSecond: spec.rate,
    } satisfies LoadSpec, workers);
    await pause(2_000);
    const mark = cpuMark();
    await profiler.start(spec.profile);
    const probe = startWorker<ProbeResult>('./pipeline-probe-worker.js', {
      tcpUrl: `tcp://127.0.0.1:${pipeline.tcp}`, wsUrl: `ws://127.0.0.1:${pipeline.ws}`, apiKey: KEY, site: spec.site,
      durationMs: spec.durationMs, intervalMs: PROBE_INTERVAL_MS, windowMinutes: 10, graceMs: 10_000, userAgent: UA,
    } satisfies ProbeSpec, workers);
    // While probing: how far the aggregator and the tap trail the log, and main-thread event-loop delay.
    const lag = { aggregatorMax: 0, tapMax: 0, samples: 0 };
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    let probing = true;
    const sampler = (async () => {
      while (probing && !abort.signal.aborted) {
        await sleep(250);
        const topicEnd = await endOffsets(admin, spec.topics.events).catch(() => undefined);
        if (!topicEnd) continue;
        const taken = await pipeline.taken().catch(() => undefined);
        if (!taken) continue;
        lag.aggregatorMax = Math.max(lag.aggregatorMax, sum(topicEnd) - taken.aggregator);
        lag.tapMax = Math.max(lag.tapMax, sum(topicEnd) - taken.tap);
        lag.samples++;
      }
    })();
    const probed = await abortable(probe.result).finally(() => { probing = false; });
    await sampler;
    loopDelay.disable();
    await profiler.stop();
    const cpu = cpuSince(mark, [{ name: 'load worker', elu: load.elu() }, { name: 'probe worker', elu: probe.elu() }]);
    load.stop();
    const loaded = await abortable(load.result);
    const f = probed.freshnessMs;
    // A probe never seen counts as infinitely stale, so it weighs in the percentiles.
    const all = [...f, ...Array.from({ length: probed.sent - f.length }, () => Number.POSITIVE_INFINITY)];
    const result: FreshnessResult = {
      achieved: (loaded.acceptedMeasured / loaded.measuredMs) * 1000,
      p50: percentile(all, 0.5), p99: percentile(all, 0.99), max: all.length ? Math.max(...all) : Number.NaN,
      unseen: probed.sent - f.length,
    };
    console.log(`        app started in ${secs(startMs)}; load achieved ${int(result.achieved)} events/s; ack latency p50 ${ms(loaded.latencyMs.p50)}, p99 ${ms(loaded.latencyMs.p99)}`
      + `${Object.keys(loaded.errors).length > 0 ? `; errors ${JSON.stringify(loaded.errors)}` : ''}`);
    console.log(`        probes: ${probed.sent} sent, ${probed.acked} acknowledged (ack p50 ${ms(percentile(probed.ackMs, 0.5))}, p99 ${ms(percentile(probed.ackMs, 0.99))}), `
      + `${f.length} seen live, in ${probed.liveMessages} live messages${probed.ackErrors > 0 ? `; ${probed.ackErrors} ack errors` : ''}`);
    console.log(`        freshness (probe sent → live update received): p50 ${ms(result.p50)}, p99 ${ms(result.p99)}, max ${ms(result.max)}`
      + `${result.unseen > 0 ? ` (${result.unseen} probes not seen by 10 s after the last one count as never; of the seen, max ${ms(Math.max(...f))})` : ''}`);
    console.log(`        while probing (${lag.samples} samples, 250 ms apart): aggregator up to ${int(lag.aggregatorMax)} records behind the log end, `
      + `tap up to ${int(lag.tapMax)}; main-thread event-loop delay p50 ${ms(loopDelay.percentile(50) / 1e6)}, p99 ${ms(loopDelay.percentile(99) / 1e6)}, max ${ms(loopDelay.max / 1e6)}`);
    console.log(`        ${cpu}`);
    return result;
  } finally {
    await pipeline.stop();
  }
}

interface MaxSustainedResult {
  /** The slowest stage's rate: what the pipeline keeps up with end to end. */
  readonly sustained: number;
  readonly bound: 'ingest' | 'aggregator' | 'archive';
}

/**
 * 5m. The deployed pipeline (one process per role, as in 5) under unthrottled load: after a
 * warm-up, records appended to the topic (ingest), taken by the aggregator and archived by the
 * tap, each counted at both ends of a window. A stage slower than ingest cannot keep its rate (its
 * backlog grows), so the pipeline sustains the slowest stage's rate. Since the load gets all the
 * CPU ingest can take, the consumers here share the cores with a gateway running flat out: at
 * the slowest stage's rate ingest would need less, so the figure is, if anything, an underestimate.
 */
async function maxSustained(admin: Admin, spec: PipelineSpec & { readonly loadSpec: LoadSpec }): Promise<MaxSustainedResult> {
  console.log(`    5m role processes, load unthrottled: ${MAX_WARMUP_MS} ms warm-up, then ${MAX_MEASURE_MS} ms measured; topic ${spec.topics.events}`);
  const pipeline = await roleProcesses(spec);
  try {
    const pool = eventPool(Date.now(), false); // no timestamps, as 5's load
    const load = startWorker<LoadResult>('./pipeline-load-worker.js', {
      ...spec.loadSpec, url: `tcp://127.0.0.1:${pipeline.tcp}`, durationMs: MAX_WARMUP_MS + MAX_MEASURE_MS + 120_000, warmupMs: MAX_WARMUP_MS,
      payloads: pool.map(encodeBatch), eventsPerPayload: pool.map((b) => b.length),
    } satisfies LoadSpec, workers);
    // One instant per sample: the middle of the reads (end offsets and two /metrics scrapes).
    const sample = async () => {
      const before = performance.now();
      const [ends, taken] = await Promise.all([endOffsets(admin, spec.topics.events), pipeline.taken()]);
      return { at: (before + performance.now()) / 2, log: sum(ends), aggregator: taken.aggregator, tap: taken.tap };
    };
    await pause(MAX_WARMUP_MS);
    const mark = cpuMark();
    await profiler.start(spec.profile);
    const s0 = await abortable(sample());
    await pause(MAX_MEASURE_MS);
    const s1 = await abortable(sample());
    await profiler.stop();
    const cpu = cpuSince(mark, [{ name: 'load worker', elu: load.elu() }]);
    load.stop();
    const loaded = await abortable(load.result);
    const elapsedS = (s1.at - s0.at) / 1000;
    const rates = {
      ingest: (s1.log - s0.log) / elapsedS,
      aggregator: (s1.aggregator - s0.aggregator) / elapsedS,
      archive: (s1.tap - s0.tap) / elapsedS,
    };
    const [bound, sustained] = (Object.entries(rates) as Array<[MaxSustainedResult['bound'], number]>).reduce((a, b) => (b[1] < a[1] ? b : a));
    const backlog = (stage: 'aggregator' | 'tap') => {
      const from = s0.log - s0[stage];
      const to = s1.log - s1[stage];
      return `${int(from)} → ${int(to)} records behind the log end (${to >= from ? '+' : ''}${int(to - from)}, ${int((to - from) / elapsedS)}/s)`;
    };
    console.log(`        pipeline started in ${secs(pipeline.startMs)}; window ${secs(s1.at - s0.at)}: ingest (records appended to the topic) ${int(rates.ingest)} events/s, `
      + `aggregator took ${int(rates.aggregator)} events/s, archive tap archived ${int(rates.archive)} events/s`);
    console.log(`        backlog over the window: aggregator ${backlog('aggregator')}; tap ${backlog('tap')}`);
    console.log(`        sustained end to end: ${int(sustained)} events/s (the slowest stage: ${bound})`);
    console.log(`        load worker: ack latency p50 ${ms(loaded.latencyMs.p50)}, p99 ${ms(loaded.latencyMs.p99)}`
      + `${Object.keys(loaded.errors).length > 0 ? `; errors ${JSON.stringify(loaded.errors)}` : ''}${loaded.rejectedEvents > 0 ? `; rejected ${loaded.rejectedEvents}` : ''}`);
    console.log(`        ${cpu}`);
    // 0 events/s would make 5's load worker unthrottled (eventsPerSecond unset): stop instead.
    if (!(sustained > 0)) throw new Error(`5m: the pipeline sustained ${sustained} events/s (${JSON.stringify(rates)}); 5 cannot run at half of it`);
    return { sustained, bound };
  } finally {
    await pipeline.stop();
  }
}

/** The pipeline of a freshness run: where its gateway listens, how much each consumer has taken, how to stop it. */
interface FreshnessPipeline {
  readonly tcp: number;
  readonly ws: number;
  readonly startMs: number;
  /** Records taken so far by the aggregator (every outcome) and archived by the tap. */
  taken(): Promise<{ aggregator: number; tap: number }>;
  stop(): Promise<void>;
}

async function oneApp(spec: FreshnessSpec): Promise<FreshnessPipeline> {
  const { app, startMs } = await startTrackedApp(appConfig(['gateway', 'aggregate', 'archive'], spec.topics, spec.groupId));
  return {
    tcp: app.ports.tcp!, ws: app.ports.ws!, startMs,
    taken: async () => {
      // Fresh topics start at offset 0: the next offset to take is the count taken.
      const taken = [...app.aggregator!.positions().values()].reduce((a, b) => a + b, 0);
      return { aggregator: taken, tap: (await counterValues(app.registry, 'sluice_event_tap_records_total')).get('archived') ?? 0 };
    },
    stop: () => stopTrackedApp(app),
  };
}

/** The run's names and the local stack as SLUICE_* env for a role process (config.ts reads SLUICE_<SECTION>_<KEY>). */
function roleEnv(role: 'gateway' | 'aggregate' | 'archive', spec: PipelineSpec): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    SLUICE_MODE: 'distributed',
    SLUICE_ROLES: role,
    // info: the "Sluice started" line carries the ports (nothing is logged per event at info).
    SLUICE_LOG_LEVEL: 'info',
    SLUICE_GATEWAY_TCP_PORT: '0',
    SLUICE_GATEWAY_WS_PORT: '0',
    SLUICE_GATEWAY_HTTP_PORT: '0',
    SLUICE_GATEWAY_API_KEYS: KEY,
    SLUICE_KAFKA_BROKERS: defaults.kafka.brokers.join(' '),
    SLUICE_CASSANDRA_CONTACT_POINTS: defaults.cassandra.contactPoints.join(' '),
    SLUICE_CASSANDRA_LOCAL_DATA_CENTER: defaults.cassandra.localDataCenter,
    SLUICE_CASSANDRA_KEYSPACE: names.keyspace,
    SLUICE_REDIS_URL: defaults.redis.url,
    SLUICE_REDIS_KEY_PREFIX: names.redisPrefix,
    SLUICE_EVENT_LOG_EVENTS_TOPIC: spec.topics.events,
    SLUICE_EVENT_LOG_LATE_TOPIC: spec.topics.late,
    SLUICE_EVENT_LOG_DEAD_LETTER_TOPIC: spec.topics.deadLetter,
    SLUICE_AGGREGATE_GROUP_ID: spec.groupId,
  };
}

/** Three processes, one per role, on the run's topics, keyspace and Redis prefix. */
async function roleProcesses(spec: PipelineSpec): Promise<FreshnessPipeline> {
  const t = performance.now();
  const started: RoleProcess[] = [];
  const stop = async () => {
    // The gateway first (no more appends), then the consumers: each flushes and commits on SIGTERM.
    for (const p of started) {
      await p.stop().catch(() => {});
      untrackProcess(p.name);
      processes.delete(p);
    }
  };
  try {
    // One at a time: the first applies the Cassandra migrations of the fresh keyspace.
    for (const role of ['gateway', 'aggregate', 'archive'] as const) {
      const p = await abortable(startRoleProcess(role, roleEnv(role, spec), { cpuProfileDir: process.env.BENCH_CPU_PROFILE_DIR, cpuProfileTag: spec.profile, signal: abort.signal }));
      started.push(p);
      processes.add(p);
      trackProcess(`${role} process`, p.child.pid!);
    }
  } catch (e) {
    await stop();
    throw e;
  }
  const [gateway, aggregate, archive] = started as [RoleProcess, RoleProcess, RoleProcess];
  return {
    tcp: gateway.ports.tcp!, ws: gateway.ports.ws!, startMs: performance.now() - t,
    taken: async () => {
      const [counted, bots, archived] = await Promise.all([
        scrapeCounter(aggregate.ports.http, 'sluice_aggregate_events_total'),
        scrapeCounter(aggregate.ports.http, 'sluice_aggregate_bot_events_total'),
        scrapeCounter(archive.ports.http, 'sluice_event_tap_records_total', 'archived'),
      ]);
      return { aggregator: counted + bots, tap: archived };
    },
    stop,
  };
}

// ---------------------------------------------------------------------------------------------

async function cleanup(admin: Admin | undefined): Promise<string[]> {
  const notes: string[] = [];
  for (const app of [...apps]) {
    // Interrupted: do not wait for the event tap to archive the batches it holds (that can take a
    // minute and keeps Cassandra busy); what it leaves goes with the keyspace.
    const stopping = stopTrackedApp(app);
    await (interruptedBy ? Promise.race([stopping, sleep(3_000)]) : stopping).catch((e: unknown) => notes.push(`stopping an app failed: ${String(e)}`));
  }
  if (admin) {
    try {
      const existing = new Set(await admin.listTopics());
      const mine = allTopics.filter((t) => existing.has(t));
      if (mine.length > 0) await withTimeout(admin.deleteTopics({ topics: mine, timeout: 30_000 }), 40_000, 'deleting topics');
      notes.push(`deleted ${mine.length} topics (bench-${run}.*)`);
    } catch (e) {
      notes.push(`deleting topics failed: ${String(e)}`);
    }
    try {
      const groups = new Set((await admin.listGroups()).groups.map((g) => g.groupId));
      const mine = allGroups.filter((g) => groups.has(g));
      if (mine.length > 0) await admin.deleteGroups(mine);
      notes.push(`deleted ${mine.length} consumer groups`);
    } catch (e) {
      // A group with a member still in it (an app not stopped after an interruption) stays; it
      // holds no offsets once its topics are gone and Kafka expires it.
      const failed = ((e as { groups?: Array<{ groupId: string; errorCode: number }> }).groups ?? []).filter((g) => g.errorCode !== 0);
      notes.push(failed.length > 0 ? `${failed.length} consumer groups still had members and stay (${failed.map((g) => g.groupId).join(', ')})` : `deleting consumer groups failed: ${String(e)}`);
    }
  }
  const cql = new cassandra.Client({
    contactPoints: [...defaults.cassandra.contactPoints], localDataCenter: defaults.cassandra.localDataCenter,
    socketOptions: { readTimeout: 60_000, connectTimeout: 5_000 },
  });
  try {
    await cql.execute(`DROP KEYSPACE IF EXISTS ${names.keyspace}`);
    notes.push(`dropped keyspace ${names.keyspace}`);
  } catch (e) {
    notes.push(`dropping keyspace ${names.keyspace} failed: ${String(e)}`);
  } finally {
    await cql.shutdown().catch(() => {});
  }
  const redis = new Redis(defaults.redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let removed = 0;
    let cursor = '0';
    do {
      const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', `${names.redisPrefix}*`, 'COUNT', 1000);
      cursor = nextCursor;
      if (keys.length > 0) removed += await redis.del(...keys);
    } while (cursor !== '0');
    notes.push(`removed ${removed} Redis keys (${names.redisPrefix}*)`);
  } catch (e) {
    notes.push(`removing Redis keys failed: ${String(e)}`);
  } finally {
    redis.disconnect();
  }
  return notes;
}

async function main(): Promise<number> {
  const t0 = performance.now();
  console.log(machineLine());
  console.log(`run ${run}: topics bench-${run}.*, keyspace ${names.keyspace}, Redis prefix ${names.redisPrefix}; `
    + `BENCH_DURATION_MS=${DURATION_MS} (warm-up ${WARMUP_MS}) × BENCH_ROUNDS=${ROUNDS}, BENCH_FRESHNESS_MS=${FRESHNESS_MS}`);

  // The local stack: up() reuses what answers and starts the rest, or says why it cannot.
  const stackLines: string[] = [];
  let stack;
  try {
    stack = await abortable(stackUp((line) => stackLines.push(line)));
  } catch (e) {
    if (e instanceof Interrupted) throw e;
    console.error(stackLines.join('\n'));
    console.error(`\nthe local stack (Kafka ${defaults.kafka.brokers.join(',')}, Cassandra ${defaults.cassandra.contactPoints.join(',')}, Redis ${defaults.redis.url}) is not available:\n${(e as Error).message}`);
    return 1;
  }
  console.log(`stack: ${Object.entries(stack.details).map(([k, v]) => `${k}: ${v}`).join('; ')}`);
  console.log(`${locateEngines()}; ${heapGuard.watching ? 'watching the Cassandra log for full GCs (the run stops before the node runs out of heap)' : 'Cassandra log not found: no heap guard'}`);
  heapGuard.start();
  const partitions = defaults.eventLog.partitions;
  console.log(`topics: ${partitions} partitions, replication 1; records: ingest's encoding, gzip, acks=all, keyed by site; `
    + `${SITES.length} sites, ${BATCH} events per batch from one site; ${SENDS_IN_FLIGHT} sends/requests in flight `
    + `(${CONNECTIONS} connections × ${IN_FLIGHT})`);
  console.log(`aggregator defaults: flushIntervalMs ${defaults.aggregate.flushIntervalMs}, maxOutOfOrderMs ${defaults.aggregate.maxOutOfOrderMs}, `
    + `allowedLatenessMs ${defaults.aggregate.allowedLatenessMs}, idleAdvanceMs ${defaults.aggregate.idleAdvanceMs}\n`);

  const topicLog = await abortable(KafkaEventLog.connect({ brokers: defaults.kafka.brokers, partitions, replicationFactor: 1, logger }));
  const admin = kafka.admin({ retry: RETRY });
  let adminConnected = false;
  const rows: Row[] = [];
  try {
    await abortable(admin.connect());
    adminConnected = true;
    await abortable(topicLog.ensureTopics(allTopics));
    await topicLog.close();

    // Pre-encode the traffic once: JSON request bodies for the RSocket client, and the exact
    // records the gateway would append for them (the project's ingest service, captured).
    const pool = eventPool(Date.now(), true);
    const payloads = pool.map(encodeBatch);
    const capture = new CapturingLog(partitions);
    const ingest = createIngestService({ log: capture, topic: names.bareTopic, config: defaults.ingest, registry: new Registry() });
    for (const batch of pool) {
      const ack = await ingest.ingest(batch, { ip: '127.0.0.1' }, 'ack');
      if (ack.accepted !== batch.length) throw new Error(`ingest rejected pool events: ${JSON.stringify(ack.rejected.slice(0, 3))}`);
    }
    const partitioner = Partitioners.DefaultPartitioner();
    const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({ partitionId, leader: 0, partitionErrorCode: 0, replicas: [], isr: [] }));
    const sends: Message[][] = [];
    for (const records of capture.appends) {
      // As KafkaEventLog.append: one send per partition of an ingest call (here one: one site per batch).
      const byPartition = new Map<number, Message[]>();
      for (const r of records) {
        const m = toMessage(r);
        m.partition = partitioner({ topic: names.bareTopic, partitionMetadata, message: m });
        byPartition.set(m.partition, [...(byPartition.get(m.partition) ?? []), m]);
      }
      sends.push(...byPartition.values());
    }
    const recordBytes = capture.appends.flat().reduce((a, r) => a + r.value.length, 0) / (POOL_BATCHES * BATCH);
    const requestBytes = payloads.reduce((a, p) => a + p.length, 0) / POOL_BATCHES;
    console.log(`traffic: ${POOL_BATCHES} batches × ${BATCH} events pre-encoded; ${int(requestBytes)} B per ingest.batch request, `
      + `${int(recordBytes)} B per record value (+ key, id header, timestamp)\n`);

    let loadSpec: LoadSpec = {
      url: '', apiKey: KEY, connections: CONNECTIONS, inFlight: IN_FLIGHT,
      durationMs: DURATION_MS, warmupMs: WARMUP_MS, payloads, eventsPerPayload: pool.map((b) => b.length),
    };
    let gwRate = FRESHNESS_ONLY_RATE ?? 0;
    if (FRESHNESS_ONLY_RATE !== undefined) {
      console.log(`BENCH_FRESHNESS_ONLY_RATE=${FRESHNESS_ONLY_RATE}: scenarios 1 to 4 skipped; 5x and 5r take that as the rate of 2 (5m and 5 do not depend on it)\n`);
    } else {
      // 1 and 2, interleaved in rounds: both see the same machine conditions ---------------------
      console.log(`[1] bare kafkajs producer → ${names.bareTopic}: ${SENDS_IN_FLIGHT} sends of one ingest call's records (${BATCH}, one partition) in flight`);
      console.log(`[2] gateway → Kafka ${names.events}: app roles [gateway], worker-thread client, ${CONNECTIONS} RSocket TCP connections × ${IN_FLIGHT} acknowledged ingest.batch(${BATCH}) in flight`);
      console.log(`    ${ROUNDS} rounds of ${DURATION_MS} ms each (first ${WARMUP_MS} ms not counted), 1 and 2 interleaved; best round of each reported`);
      const gw = await startTrackedApp(appConfig(['gateway'], { events: names.events, late: names.late, deadLetter: names.deadLetter }, names.aggGroupTap));
      console.log(`    gateway app started in ${secs(gw.startMs)} (Kafka connect, Cassandra migrations on a fresh keyspace, Redis)`);
      loadSpec = { ...loadSpec, url: `tcp://127.0.0.1:${gw.app.ports.tcp!}` };
      let bareRate = 0;
      let acceptedAll = 0;
      for (let round = 1; round <= ROUNDS; round++) {
        let mark = cpuMark();
        await profiler.start(`1-bare-producer-r${round}`);
        const bare = await bareProducer(sends);
        await profiler.stop();
        console.log(`    round ${round} [1] ${int(bare.rate).padStart(8)} records/s; ${int(bare.records)} acknowledged; send latency p50 ${ms(bare.latencyP50)}, p99 ${ms(bare.latencyP99)}`);
        console.log(`              ${cpuSince(mark)}`);
        bareRate = Math.max(bareRate, bare.rate);

        mark = cpuMark();
        await profiler.start(`2-gateway-r${round}`);
        const load = startWorker<LoadResult>('./pipeline-load-worker.js', loadSpec, workers);
        const g = await abortable(load.result);
        await profiler.stop();
        const rate = (g.acceptedMeasured / g.measuredMs) * 1000;
        acceptedAll += g.acceptedTotal;
        console.log(`    round ${round} [2] ${int(rate).padStart(8)} events/s; ${int(g.acceptedTotal)} accepted in ${int(g.requests)} requests; ack latency p50 ${ms(g.latencyMs.p50)}, p99 ${ms(g.latencyMs.p99)}`
          + `${Object.keys(g.errors).length > 0 ? `; errors ${JSON.stringify(g.errors)}` : ''}${g.rejectedEvents > 0 ? `; rejected ${g.rejectedEvents}` : ''}`);
        console.log(`              ${cpuSince(mark, [{ name: 'client worker', elu: load.elu() }])}`);
        gwRate = Math.max(gwRate, rate);
      }
      await stopTrackedApp(gw.app);
      const ends = await endOffsets(admin, names.events);
      const n = sum(ends);
      console.log(`    ${names.events}: ${int(n)} records (${int(acceptedAll)} acknowledged as accepted), over ${[...ends.values()].filter((e) => e > 0).length} of ${partitions} partitions`);
      const r2 = gwRate / bareRate;
      rows.push({ scenario: '1 bare kafkajs producer (acks=all, gzip)', rate: bareRate, ratio: '1.00 (base)', aim: '' });
      rows.push({ scenario: '2 gateway → Kafka (RSocket ingest.batch)', rate: gwRate, ratio: `${r2.toFixed(2)} vs 1`, aim: `≥ ${AIM_RATIO.toFixed(2)} ${r2 >= AIM_RATIO ? 'met' : 'NOT met'}` });

      // 3 and 4 -------------------------------------------------------------------------------------
      let consRate = 0;
      /** CPU seconds per record of the fastest pass (from connect to the end, so a little high). */
      let consCpuPerRecordS = 0;
      const consumerPass = async (pass: number) => {
        const mark = cpuMark();
        await profiler.start(`3-bare-consumer-p${pass}`);
        const c = await bareConsumer(names.events, `${names.bareGroup}-${pass}`, ends);
        await profiler.stop();
        const spent = cpuSeconds(mark);
        if (c.rate > consRate) consCpuPerRecordS = (spent.processS + spent.enginesS) / c.records;
        console.log(`    pass ${pass}: ${int(c.rate)} records/s; ${int(c.records)} records in ${secs(c.elapsedMs)} (group joined → last batch reaching the end offsets)`);
        console.log(`            ${cpuSince(mark)}`);
        consRate = Math.max(consRate, c.rate);
      };
      console.log(`\n[3] bare kafkajs consumer ← ${names.events} from the beginning, fresh group per pass, eachBatch, no processing; `
        + `${ROUNDS} passes (one before 4, the others after), best reported`);
      await consumerPass(1);
      // Context for 4, not a baseline: the records are JSON, and any aggregation must at least
      // decode each one; this is how far that alone moves the bare consumer.
      const decodeMark = cpuMark();
      const decoding = await bareConsumer(names.events, `${names.bareGroup}-decode`, ends, true);
      console.log(`    3d the same consumer decoding each record (decodeEventRecord, nothing else): ${int(decoding.rate)} records/s; ${int(decoding.records)} records in ${secs(decoding.elapsedMs)}`);
      console.log(`            ${cpuSince(decodeMark)}`);

      const describe = (label: string, a: AggregationResult) => {
        console.log(`    ${label}: ${int(a.rate)} events/s; ${int(n)} records taken and flushed in ${secs(a.elapsedMs)} (first partition assigned → final flush durable); app start ${secs(a.startMs)}`);
        console.log(`        outcomes: ${a.outcomes} (sum ${int(a.taken)}); tap archived ${int(a.tapArchived)} of ${int(n)} by then; `
          + `group committed ${int(a.committed)} of ${int(n)} (commits stop at the oldest open bucket: these are all open)`);
        console.log(`        ${a.cpu}`);
      };
      console.log(`[4] aggregation: app roles [aggregate], fresh group, ${names.events} from the beginning → Cassandra rollups`);
      console.log('    note: the aggregate role runs two consumers in one event loop: the aggregator and the event tap (raw archive in Cassandra, current visitors in Redis)');
      await profiler.start('4a-aggregate-with-tap');
      const withTap = await aggregation(admin, names.aggGroupTap, ends, n, ['aggregate', 'archive']);
      await profiler.stop();
      describe('4a roles aggregate + archive in one process (aggregator + tap)', withTap);
      // The tap's group is placed at the log end beforehand: it joins but has nothing to read.
      await abortable(admin.setOffsets({ groupId: `${names.aggGroupAlone}-tap`, topic: names.events, partitions: [...ends].map(([partition, offset]) => ({ partition, offset: String(offset) })) }));
      await profiler.start('4b-aggregator-alone');
      const alone = await aggregation(admin, names.aggGroupAlone, ends, n, ['aggregate']);
      await profiler.stop();
      describe('4b role aggregate alone (the archive tap runs elsewhere)', alone);
      if (ROUNDS > 1) console.log('[3] again:');
      for (let pass = 2; pass <= ROUNDS; pass++) await consumerPass(pass);
      const r4a = withTap.rate / consRate;
      const r4b = alone.rate / consRate;
      rows.push({ scenario: '3 bare kafkajs consumer', rate: consRate, ratio: '1.00 (base)', aim: '' });
      rows.push({ scenario: '3d bare consumer + record decoding (context)', rate: decoding.rate, ratio: `${(decoding.rate / consRate).toFixed(2)} vs 3`, aim: '' });
      rows.push({ scenario: '4a aggregate role → Cassandra (with tap)', rate: withTap.rate, ratio: `${r4a.toFixed(2)} vs 3`, aim: `≥ ${AIM_RATIO.toFixed(2)} ${r4a >= AIM_RATIO ? 'met' : 'NOT met'}` });
      rows.push({ scenario: '4b aggregator alone → Cassandra (no tap)', rate: alone.rate, ratio: `${r4b.toFixed(2)} vs 3`, aim: `≥ ${AIM_RATIO.toFixed(2)} ${r4b >= AIM_RATIO ? 'met' : 'NOT met'}` });
      // What the aim asks of this machine's CPU: 4b's CPU per event (its process with every
      // thread, Kafka and Cassandra; app start included, so a little high) at the aim's rate.
      const aimRate = AIM_RATIO * consRate;
      const perEventS = (alone.cpuS.processS + alone.cpuS.enginesS) / n;
      const coresAtAim = aimRate * perEventS;
      console.log(`    CPU per event: 3 ${(consCpuPerRecordS * 1e6).toFixed(1)} µs (process and engines); 4b ${(perEventS * 1e6).toFixed(1)} µs `
        + `(${(alone.cpuS.processS / n * 1e6).toFixed(1)} in the app's process, ${(alone.cpuS.enginesS / n * 1e6).toFixed(1)} in Kafka and Cassandra). `
        + `At the aim's rate (${AIM_RATIO.toFixed(2)} × 3 = ${int(aimRate)} events/s), 4b's work takes ${coresAtAim.toFixed(2)} cores; this machine has ${cpus().length}`);
      rows.push({ scenario: '4b CPU at the aim\'s rate (context)', rate: aimRate, ratio: `${coresAtAim.toFixed(2)} of ${cpus().length} cores`, aim: '' });

    }

    // 5 -------------------------------------------------------------------------------------------
    console.log(`\n[5] freshness: fresh topic and group per run; load from the worker-thread client, `
      + `probe pageviews of a site of their own every ${PROBE_INTERVAL_MS} ms (timestamp = send time), live.metrics over WebSocket (n = 2^31-1)`);
    console.log('    5m: the maximum rate the pipeline as deployed (one process per role: gateway, aggregate, archive; `node dist/src/main.js`, SLUICE_* env, '
      + 'default settings) sustains end to end on this machine: the slowest of ingest, aggregator and archive under unthrottled load');
    console.log('    5: freshness as deployed at half of 5m; 5x: the same at half of 2 (context: above what the pipeline sustains here, '
      + 'so it measures queueing); 5r (reference): every role in one in-process app, one event loop (the embedded-style worst case), at 1/10 of 2');
    const reference = await freshness(admin, {
      label: '5r reference, one app, 1/10 of 2', shape: 'one-app', rate: gwRate / 10, durationMs: FRESHNESS_MS / 2, profile: '5r-freshness-low',
      topics: { events: names.refEvents, late: names.refLate, deadLetter: names.refDeadLetter }, groupId: names.refGroup, site: REF_PROBE_SITE, loadSpec,
    });
    const max = await maxSustained(admin, {
      topics: { events: names.maxEvents, late: names.maxLate, deadLetter: names.maxDeadLetter }, groupId: names.maxGroup, profile: '5m-max', loadSpec,
    });
    const half = await freshness(admin, {
      label: '5 role processes, half of 5m', shape: 'processes', rate: max.sustained / 2, durationMs: FRESHNESS_MS, profile: '5-freshness',
      topics: { events: names.freshEvents, late: names.freshLate, deadLetter: names.freshDeadLetter }, groupId: names.freshGroup, site: PROBE_SITE, loadSpec,
    });
    const over = await freshness(admin, {
      label: '5x role processes, half of 2', shape: 'processes', rate: gwRate / 2, durationMs: FRESHNESS_MS, profile: '5x-freshness-half-of-2',
      topics: { events: names.overEvents, late: names.overLate, deadLetter: names.overDeadLetter }, groupId: names.overGroup, site: OVER_PROBE_SITE, loadSpec,
    });
    rows.push({ scenario: `5m pipeline as deployed, max sustained (${max.bound}-bound)`, rate: max.sustained, ratio: FRESHNESS_ONLY_RATE === undefined ? `${(max.sustained / gwRate).toFixed(2)} vs 2` : '', aim: '' });
    const freshnessRow = (name: string, f: FreshnessResult, withAim: boolean) => rows.push({
      scenario: `${name}: p50 ${ms(f.p50)}, max ${ms(f.max)}`, rate: f.achieved, ratio: `p99 ${ms(f.p99)}`,
      aim: withAim ? `p99 ≤ ${AIM_P99_MS} ms ${f.unseen === 0 && f.p99 <= AIM_P99_MS ? 'met' : `NOT met${f.unseen === 0 ? '' : ` (${f.unseen} probes never seen)`}`}` : '',
    });
    freshnessRow('5 freshness, half of 5m, processes', half, true);
    freshnessRow('5x half of 2 (above what the pipeline sustains here; context)', over, false);
    freshnessRow('5r one app, 1/10 of 2 (ref.)', reference, false);

    // Table -------------------------------------------------------------------------------------
    console.log('\nscenario                                               events/s   ratio / figure   aim');
    for (const r of rows) console.log(`${r.scenario.padEnd(52)} ${int(r.rate).padStart(10)}   ${r.ratio.padEnd(15)}  ${r.aim}`);
    console.log(`\ntotal ${secs(performance.now() - t0)}, peak RSS of the bench process ${int(process.resourceUsage().maxRSS / 1024)} MiB`);
    return 0;
  } finally {
    heapGuard.stop();
    if (interruptedBy) console.error('cleaning up…');
    await topicLog.close().catch(() => {});
    for (const w of workers) await w.terminate();
    const notes = await cleanup(adminConnected ? admin : undefined);
    await admin.disconnect().catch(() => {});
    console.log(`cleanup: ${notes.join('; ')}`);
  }
}

const exitCode = () => (interruptedBy === 'cassandra-heap' ? 1 : 130);
main().then((code) => process.exit(interruptedBy ? exitCode() : code), (e: unknown) => {
  if (e instanceof Interrupted || interruptedBy) process.exit(exitCode());
  console.error(e);
  process.exit(1);
});
