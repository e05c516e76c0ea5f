/**
 * A whole pipeline for the reprocessing tests, composed here as the composition root composes
 * it (app.ts), with the ops module's routes served by a real gateway: ingest → event log →
 * aggregator (with an injectable processing logic) and archive tap → rollup store and raw
 * archive; queries on the versioned read side; `ops.*` over RSocket, for the command line.
 *
 * - embedded: every seam in memory;
 * - distributed: Kafka (topics and groups of its own) and Cassandra (a keyspace of its own) for
 *   the event log, the rollup store, the raw archive, the version directory and the journal;
 *   the live bus, cache and current visitors stay in memory (one process).
 *
 * Also: wire traffic over several UTC days with an exact reference of its rollup totals
 * (rollup.ts's definition, recomputed here from what was sent, nothing shared with the server).
 */
import { randomUUID } from 'node:crypto';
import { Registry } from 'prom-client';
import type { Event } from '../../protocol/schema.js';
import { CassandraRawArchive } from '../../src/adapters/cassandra/cassandra-raw-archive.js';
import { CassandraReprocessJournal } from '../../src/adapters/cassandra/cassandra-reprocess-journal.js';
import { CassandraRollupStore } from '../../src/adapters/cassandra/cassandra-rollup-store.js';
import { createTestKeyspace, type TestKeyspace } from '../../src/adapters/cassandra/cassandra-test-kit.js';
import { CassandraVersionDirectory } from '../../src/adapters/cassandra/cassandra-version-directory.js';
import { KafkaEventLog } from '../../src/adapters/kafka/kafka-event-log.js';
import { MemoryCurrentVisitors } from '../../src/adapters/memory/memory-current-visitors.js';
import { MemoryEventLog } from '../../src/adapters/memory/memory-event-log.js';
import { MemoryLiveBus } from '../../src/adapters/memory/memory-live-bus.js';
import { MemoryLogPositions } from '../../src/adapters/memory/memory-log-positions.js';
import { MemoryQueryCache } from '../../src/adapters/memory/memory-query-cache.js';
import { MemoryRawArchive } from '../../src/adapters/memory/memory-raw-archive.js';
import { MemoryReprocessJournal } from '../../src/adapters/memory/memory-reprocess-journal.js';
import { MemoryRollupStore } from '../../src/adapters/memory/memory-rollup-store.js';
import { MemoryVersionDirectory } from '../../src/adapters/memory/memory-version-directory.js';
import { Aggregator } from '../../src/aggregate/aggregator.js';
import { EventTap } from '../../src/aggregate/event-tap.js';
import type { ProcessingLogic } from '../../src/aggregate/minute-windows.js';
import type { RawArchive } from '../../src/aggregate/raw-archive.js';
import type { Rollup } from '../../src/aggregate/rollup.js';
import type { RollupStore } from '../../src/aggregate/rollup-store.js';
import { SluiceClient } from '../../src/client/sluice-client.js';
import { runOpsCommand } from '../../src/cli/ops-cli.js';
import { loadConfig, type Config } from '../../src/config.js';
import { ApiKeys } from '../../src/gateway/api-keys.js';
import { Gateway } from '../../src/gateway/gateway.js';
import type { EventLog } from '../../src/ingest/event-log.js';
import { createIngestService } from '../../src/ingest/ingest-service.js';
import { silentLogger } from '../../src/log.js';
import type { LogPositions } from '../../src/ops/log-positions.js';
import { createOpsModule, type OpsModule, type OpsOptions } from '../../src/ops/ops-module.js';
import type { ReplayLog } from '../../src/ops/replay.js';
import type { ReprocessJournal } from '../../src/ops/reprocess-journal.js';
import type { VersionDirectory } from '../../src/ops/version-directory.js';
import { createInvalidatingLiveBus } from '../../src/query/invalidating-live-bus.js';
import { createQueryService } from '../../src/query/query-service.js';
import { stackEndpoints } from '../support/stack-fixture.js';
import { waitFor } from '../support/wait-for.js';

export const ADMIN_KEY = 'reprocess-admin-key-0001';
export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;
const BOT_AGENT = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';
const HUMAN_AGENT = 'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0';

export type Mode = 'embedded' | 'distributed';

export interface PipelineOptions {
  readonly mode: Mode;
  /** The live aggregator's logic at start. */
  readonly liveLogic: ProcessingLogic;
  /** The ops module's (current) logic. */
  readonly opsLogic: ProcessingLogic;
  readonly ops?: OpsOptions;
}

interface Engines {
  readonly log: EventLog;
  readonly positions: LogPositions;
  readonly replayLog: ReplayLog | null;
  readonly tapLog: EventLog;
  readonly store: RollupStore;
  readonly archive: RawArchive;
  readonly directory: VersionDirectory;
  readonly journal: ReprocessJournal;
  readonly keyspace?: TestKeyspace;
  close(): Promise<void>;
}

/**
 * Holds the ops module's writes of versioned rows while `hold` says so: lets a test stop a
 * reprocess at a known step (the aggregator's live writes never wait).
 */
export class WriteGate {
  hold: ((rows: readonly Rollup[]) => boolean) | null = null;
  private waiting: Array<() => void> = [];
  /** Writes held so far. */
  held = 0;

  wrap(store: RollupStore): RollupStore {
    return {
      upsert: async (rows) => {
        if (this.hold?.(rows)) {
          this.held++;
          await new Promise<void>((r) => this.waiting.push(r));
        }
        return store.upsert(rows);
      },
      read: (...a) => store.read(...a),
      setWatermark: (...a) => store.setWatermark(...a),
      watermark: () => store.watermark(),
      partitionWatermark: (...a) => store.partitionWatermark(...a),
      saveCheckpoint: (...a) => store.saveCheckpoint(...a),
      loadCheckpoint: (...a) => store.loadCheckpoint(...a),
      close: () => store.close(),
    };
  }

  release(): void {
    this.hold = null;
    const w = this.waiting;
    this.waiting = [];
    for (const r of w) r();
  }
}

export class Pipeline {
  aggregator!: Aggregator;
  readonly gate = new WriteGate();
  ops!: OpsModule;
  private tap!: EventTap;
  private gateway!: Gateway;
  private readonly clients: SluiceClient[] = [];
  readonly config: Config;
  url = '';

  private constructor(readonly options: PipelineOptions, readonly engines: Engines, readonly run: string) {
    const names = options.mode === 'distributed'
      ? { eventsTopic: `rp-${run}.events`, lateTopic: `rp-${run}.late`, deadLetterTopic: `rp-${run}.dead-letter` }
      : {};
    this.config = loadConfig({
      logLevel: 'silent',
      gateway: { tcpPort: 0, wsPort: 0, httpPort: 0, apiKeys: [ADMIN_KEY], setupTimeoutMs: 2_000 },
      ingest: { visitorSecret: 'reprocess-test-secret' },
      eventLog: { partitions: 4, ...names },
      aggregate: {
        flushIntervalMs: 50, maxOutOfOrderMs: 1_000, idleAdvanceMs: options.mode === 'distributed' ? 6_000 : 3_000,
        checkpointIntervalMs: 500, groupId: `rp-${run}-aggregate`,
      },
    });
  }

  static async start(options: PipelineOptions): Promise<Pipeline> {
    const run = randomUUID().slice(0, 8);
    const engines = options.mode === 'embedded' ? embeddedEngines() : await distributedEngines(run);
    const p = new Pipeline(options, engines, run);
    try {
      await p.boot();
    } catch (e) {
      await p.stop().catch(() => undefined);
      throw e;
    }
    return p;
  }

  get site(): string {
    return `shop-${this.run}.example`;
  }

  private async boot(): Promise<void> {
    const { config, engines } = this;
    if (this.options.mode === 'distributed') {
      await (engines.log as KafkaEventLog).ensureTopics([config.eventLog.eventsTopic, config.eventLog.lateTopic, config.eventLog.deadLetterTopic]);
    }
    const registry = new Registry();
    const bus = new MemoryLiveBus();
    const cache = new MemoryQueryCache();
    const invalidating = createInvalidatingLiveBus(bus, cache);
    const currentVisitors = new MemoryCurrentVisitors();
    this.ops = createOpsModule({
      store: this.gate.wrap(engines.store), archive: engines.archive, directory: engines.directory, journal: engines.journal, bus: invalidating,
      logic: this.options.opsLogic, aggregate: config.aggregate, eventsTopic: config.eventLog.eventsTopic,
      tapGroupId: `${config.aggregate.groupId}-tap`, positions: engines.positions, replayLog: engines.replayLog,
      rawRetentionMs: config.cassandra.rawRetentionDays * DAY_MS, options: { leaseTtlMs: 3_000, ...this.options.ops },
    });
    await this.startAggregator(this.options.liveLogic, registry, invalidating);
    this.tap = new EventTap({
      log: engines.tapLog, topic: config.eventLog.eventsTopic, lateTopic: config.eventLog.lateTopic, groupId: `${config.aggregate.groupId}-tap`,
      archive: engines.archive, currentVisitors, registry,
    });
    await this.tap.start();
    const ingest = createIngestService({ log: engines.log, topic: config.eventLog.eventsTopic, config: config.ingest, registry });
    const query = createQueryService({
      store: this.ops.readStore, archive: engines.archive, cache, retention: config.rollups,
      provenance: (site, fromMs, toMs) => this.ops.readStore.provenance(site, fromMs, toMs),
      sessionTimeoutMs: config.aggregate.sessionTimeoutMs,
    });
    this.gateway = new Gateway({
      config: config.gateway, ingest, query, bus, currentVisitors, registry: new Registry(), apiKeys: new ApiKeys(config.gateway.apiKeys),
      handlers: this.ops.handlers, logger: silentLogger(), ready: () => true,
    });
    const ports = await this.gateway.start();
    this.url = `tcp://127.0.0.1:${ports.tcp}`;
    this.bus = invalidating;
    this.registry = registry;
  }

  private bus!: ReturnType<typeof createInvalidatingLiveBus>;
  private registry!: Registry;

  /** Starts the live aggregator (after stopAggregator) with `logic`; it resumes where the group committed. */
  async startAggregator(logic: ProcessingLogic, registry: Registry = new Registry(), bus: ReturnType<typeof createInvalidatingLiveBus> = this.bus): Promise<void> {
    this.aggregator = new Aggregator({
      log: this.engines.log, positions: this.engines.positions, store: this.engines.store, bus, topic: this.config.eventLog.eventsTopic,
      lateTopic: this.config.eventLog.lateTopic, deadLetterTopic: this.config.eventLog.deadLetterTopic,
      config: this.config.aggregate, registry, logic,
    });
    await this.aggregator.start();
    await this.ops.recordLiveLogic();
  }

  /** Stops the live aggregator: it flushes, commits and leaves its group. */
  async stopAggregator(): Promise<void> {
    await this.aggregator.stop();
  }

  /** A new release of the live aggregator: stopped (it flushes and commits), started with `logic`, resuming where it committed. */
  async upgradeAggregator(logic: ProcessingLogic): Promise<void> {
    await this.aggregator.stop();
    await this.startAggregator(logic, new Registry(), this.bus);
  }

  async client(): Promise<SluiceClient> {
    const c = await SluiceClient.connect({ url: this.url, apiKey: ADMIN_KEY });
    this.clients.push(c);
    return c;
  }

  /** `sluice <argv>` against this pipeline's gateway, in process: exit status, stdout, stderr. */
  async cli(...argv: string[]): Promise<{ status: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const status = await runOpsCommand([...argv, '--server', this.url, '--key', ADMIN_KEY], {
      env: {}, out: (t) => { out += t; }, err: (t) => { err += t; },
    });
    return { status, out, err };
  }

  /** Waits until every buckets ending at or before `ms` is final in the store. */
  async awaitFinal(ms: number, deadlineMs = 90_000): Promise<void> {
    await waitFor(async () => {
      const w = await this.engines.store.watermark();
      return w !== null && w >= ms;
    }, { what: `the store watermark to pass ${new Date(ms).toISOString()}`, deadlineMs, intervalMs: 100 });
  }

  async stop(): Promise<void> {
    for (const c of this.clients) c.close();
    await this.gateway?.stop().catch(() => undefined);
    await this.ops?.stop().catch(() => undefined);
    await this.aggregator?.stop().catch(() => undefined);
    await this.tap?.stop().catch(() => undefined);
    await this.bus?.close().catch(() => undefined);
    await this.engines.close();
  }
}

function embeddedEngines(): Engines {
  const log = new MemoryEventLog({ partitions: 4 });
  const positions = new MemoryLogPositions(log);
  const store = new MemoryRollupStore();
  const archive = new MemoryRawArchive({ retentionMs: null });
  return {
    log, positions, replayLog: null, tapLog: positions.track(log), store, archive,
    directory: new MemoryVersionDirectory(), journal: new MemoryReprocessJournal(),
    async close() {
      await log.close();
    },
  };
}

async function distributedEngines(run: string): Promise<Engines> {
  const s = stackEndpoints();
  const keyspace = await createTestKeyspace({ contactPoints: s.cassandraContactPoints, localDataCenter: s.cassandraDataCenter }, { prefix: 'sluice_rp' });
  const opened: Array<{ close(): Promise<void> }> = [];
  try {
    const log = await KafkaEventLog.connect({
      brokers: s.kafkaBrokers, clientId: `rp-${run}`, partitions: 4, replicationFactor: 1,
      consumer: { sessionTimeoutMs: 10_000, heartbeatIntervalMs: 1_000, rebalanceTimeoutMs: 20_000, maxWaitTimeMs: 100 },
    });
    opened.push(log);
    const options = keyspace.options;
    const store = await CassandraRollupStore.connect({ ...options, retentionMs: null, watermarkScope: `rp-${run}-aggregate` });
    opened.push(store);
    const archive = await CassandraRawArchive.connect({ ...options, retentionMs: 400 * DAY_MS });
    opened.push(archive);
    const directory = await CassandraVersionDirectory.connect(options);
    opened.push(directory);
    const journal = await CassandraReprocessJournal.connect(options);
    opened.push(journal);
    return {
      log, positions: log, replayLog: log, tapLog: log, store, archive, directory, journal, keyspace,
      async close() {
        for (const c of opened.reverse()) await c.close().catch(() => undefined);
        await log.deleteTopics([`rp-${run}.events`, `rp-${run}.late`, `rp-${run}.dead-letter`]).catch(() => undefined);
        await keyspace.drop().catch(() => undefined);
      },
    };
  } catch (e) {
    for (const c of opened.reverse()) await c.close().catch(() => undefined);
    await keyspace.drop().catch(() => undefined);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Traffic and its exact reference.

export interface SentEvent {
  readonly event: Event;
  /** The identity the reference folds visits by: the visitor hint; null for an anonymous event. */
  readonly visitor: string | null;
  readonly bot: boolean;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface TrafficSpec {
  readonly site: string;
  readonly seed: number;
  readonly fromMs: number;
  readonly toMs: number;
  readonly count: number;
  /** Events sent last, hours after their time: late for the live pipeline. */
  readonly late?: number;
  readonly idPrefix: string;
}

/** Wire events in send order: in time order with a little disorder, retries, bots, anonymous events, late ones at the end. */
export function wireTraffic(spec: TrafficSpec): SentEvent[] {
  const rand = rng(spec.seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
  const step = (spec.toMs - spec.fromMs) / spec.count;
  const out: SentEvent[] = [];
  const make = (i: number, ts: number): SentEvent => {
    const pageview = rand() < 0.8;
    const bot = rand() < 0.03;
    const anonymous = !bot && rand() < 0.02;
    const visitor = `v${Math.floor((i / spec.count) * 120) + Math.floor(rand() * 25)}`;
    const event: Record<string, unknown> = {
      id: `${spec.idPrefix}-${i}`, type: pageview ? 'pageview' : 'event', site: spec.site, timestamp: ts,
      url: `https://${spec.site}${pick(['/', '/pricing', '/docs', '/blog/a', '/blog/b'])}`,
      userAgent: bot ? BOT_AGENT : HUMAN_AGENT,
    };
    if (!pageview) event.name = pick(['signup', 'download']);
    if (anonymous) event.dnt = true;
    else if (!bot) event.visitor = visitor;
    if (!pageview && rand() < 0.3) event.revenue = { amount: Math.floor(rand() * 1000) / 4, currency: 'EUR' };
    return { event: event as Event, visitor: anonymous || bot ? null : visitor, bot };
  };
  for (let i = 0; i < spec.count; i++) {
    const ts = Math.max(spec.fromMs, Math.round(spec.fromMs + i * step - rand() * 500));
    const e = make(i, ts);
    out.push(e);
    // A client retry: the same event again.
    if (rand() < 0.03) out.push(e);
  }
  for (let j = 0; j < (spec.late ?? 0); j++) {
    // Hours before the last event: beyond the live lateness.
    const ts = Math.round(spec.fromMs + rand() * (spec.toMs - spec.fromMs - 3 * HOUR_MS));
    out.push(make(spec.count + j, ts));
  }
  return out;
}

export interface Totals {
  pageviews: number;
  events: number;
  visits: number;
  bounces: number;
  durationMs: number;
}

const zero = (): Totals => ({ pageviews: 0, events: 0, visits: 0, bounces: 0, durationMs: 0 });

/** Per UTC minute of [fromMs, toMs), the totals rollup.ts defines, from every distinct sent event (late ones too). */
export function referenceMinutes(sent: readonly SentEvent[], site: string, fromMs: number, toMs: number, sessionTimeoutMs = 30 * MINUTE_MS): Map<number, Totals> {
  const distinct = new Map<string, SentEvent>();
  for (const s of sent) if (s.event.site === site && !s.bot) distinct.set(`${s.event.id}`, s);
  const events = [...distinct.values()].sort((a, b) => a.event.timestamp! - b.event.timestamp! || (a.event.id! < b.event.id! ? -1 : 1));
  const last = new Map<string, { ts: number; pageviews: number }>();
  const out = new Map<number, Totals>();
  for (const s of events) {
    const ts = s.event.timestamp!;
    const pageview = s.event.type === 'pageview';
    let visit = 1;
    let duration = 0;
    let before = 0;
    const prev = s.visitor === null ? undefined : last.get(s.visitor);
    if (prev && ts - prev.ts < sessionTimeoutMs) {
      visit = 0;
      duration = ts - prev.ts;
      before = prev.pageviews;
    }
    const bounce = !pageview ? 0 : before === 0 ? 1 : before === 1 ? -1 : 0;
    if (s.visitor !== null) last.set(s.visitor, { ts, pageviews: pageview ? Math.min(2, before + 1) : before });
    if (ts < fromMs || ts >= toMs) continue;
    const minute = Math.floor(ts / MINUTE_MS) * MINUTE_MS;
    let t = out.get(minute);
    if (!t) {
      t = zero();
      out.set(minute, t);
    }
    t.pageviews += pageview ? 1 : 0;
    t.events += pageview ? 0 : 1;
    t.visits += visit;
    t.bounces += bounce;
    t.durationMs += duration;
  }
  return out;
}

/** Distinct visitors of a UTC day (the sketch must estimate it within its error). */
export function referenceVisitors(sent: readonly SentEvent[], site: string, fromMs: number, toMs: number): number {
  return new Set(sent.filter((s) => s.event.site === site && s.visitor !== null && s.event.timestamp! >= fromMs && s.event.timestamp! < toMs).map((s) => s.visitor)).size;
}

/** The minute totals in the store as the query side reads them (non-empty minutes only). */
export async function storedMinutes(store: RollupStore, site: string, fromMs: number, toMs: number): Promise<Map<number, Totals>> {
  const out = new Map<number, Totals>();
  for (const r of await store.read(site, 'minute', fromMs, toMs)) {
    const t = r.totals;
    if (t.pageviews === 0 && t.events === 0 && t.visits === 0 && t.bounces === 0 && t.durationMs === 0) continue;
    out.set(r.bucketMs, { pageviews: t.pageviews, events: t.events, visits: t.visits, bounces: t.bounces, durationMs: t.durationMs });
  }
  return out;
}

export function sumTotals(m: ReadonlyMap<number, Totals>): Totals {
  const t = zero();
  for (const v of m.values()) {
    t.pageviews += v.pageviews;
    t.events += v.events;
    t.visits += v.visits;
    t.bounces += v.bounces;
    t.durationMs += v.durationMs;
  }
  return t;
}

/** Sends events in acknowledged batches, in order. */
export async function send(client: SluiceClient, sent: readonly SentEvent[], batch = 200): Promise<void> {
  for (let i = 0; i < sent.length; i += batch) {
    const ack = await client.sendBatch(sent.slice(i, i + batch).map((s) => s.event));
    if (ack.rejected.length > 0) throw new Error(`events rejected: ${JSON.stringify(ack.rejected.slice(0, 3))}`);
  }
}

/** UTC midnight `days` days before today's. */
export function daysAgo(days: number): number {
  return Math.floor(Date.now() / DAY_MS) * DAY_MS - days * DAY_MS;
}
