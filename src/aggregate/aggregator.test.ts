import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { Registry } from 'prom-client';
import { waitFor } from '../../test/support/wait-for.js';
import { MemoryEventLog } from '../adapters/memory/memory-event-log.js';
import { MemoryLiveBus } from '../adapters/memory/memory-live-bus.js';
import { MemoryRollupStore } from '../adapters/memory/memory-rollup-store.js';
import { loadConfig, type Config } from '../config.js';
import type { EnrichedEvent } from '../ingest/enriched-event.js';
import type { EventLog, LogRecord, PartitionBatch } from '../ingest/event-log.js';
import type { BucketsChanged } from '../query/live-bus.js';
import { Aggregator } from './aggregator.js';
import { HyperLogLog, STANDARD_ERROR } from './hyperloglog.js';
import { MINUTE_MS } from './minute-windows.js';
import type { MinuteRollup, RollupStore } from './rollup-store.js';
import { rng as prng } from '../demo/demo-traffic.js';

const T0 = Date.UTC(2024, 0, 1, 12, 0, 0);
const SITES = ['site-a', 'site-b', 'site-c', 'site-d', 'site-e'];
const PATHS = Array.from({ length: 15 }, (_, i) => `/page/${i}`);
const SOURCES = ['Direct / None', 'Google', 'Facebook', 'Newsletter', 'Bing', 'news.example.com'];

/** What the aggregator reads of an EnrichedEvent (the rest of the record is ingest's business). */
type TestEvent = Pick<EnrichedEvent, 'v' | 'id' | 'site' | 'type' | 'name' | 'ts' | 'path' | 'source' | 'visitorId' | 'bot'>;

function visitorId(site: string, n: number): string {
  // 32 hex chars, as ingest's keyed hash.
  const rand = prng(n * 7919 + site.length * 104729 + site.charCodeAt(site.length - 1));
  let s = '';
  for (let i = 0; i < 4; i++) s += Math.floor(rand() * 2 ** 32).toString(16).padStart(8, '0');
  return s;
}

function event(site: string, ts: number, fields: Partial<TestEvent> = {}): TestEvent {
  return {
    v: 1, id: randomUUID(), site, type: 'pageview', name: 'pageview', ts, path: '/', source: 'Direct / None',
    visitorId: visitorId(site, 0), bot: false, ...fields,
  };
}

const toRecord = (e: TestEvent): LogRecord => ({ key: e.site, value: Buffer.from(JSON.stringify(e)), timestampMs: e.ts, headers: { id: e.id } });

/**
 * Random traffic in append order: event times advance over `minutes`, each shifted back by up to
 * 80% of maxOutOfOrderMs (so none is late), with bots and client retries (same id, same time).
 */
function traffic(seed: number, count: number, minutes: number, maxOutOfOrderMs: number): TestEvent[] {
  const rand = prng(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
  const out: TestEvent[] = [];
  const stepMs = (minutes * MINUTE_MS) / count;
  for (let i = 0; i < count; i++) {
    const site = pick(SITES);
    const pageview = rand() < 0.8;
    out.push(event(site, Math.round(T0 + i * stepMs - rand() * 0.8 * maxOutOfOrderMs), {
      type: pageview ? 'pageview' : 'event',
      name: pageview ? 'pageview' : pick(['signup', 'download', 'play']),
      path: pick(PATHS),
      source: pick(SOURCES),
      visitorId: visitorId(site, Math.floor(rand() * 300)),
      bot: rand() < 0.05,
    }));
    if (rand() < 0.05) out.push(out[Math.max(0, out.length - 1 - Math.floor(rand() * 10))]!);
  }
  return out;
}

interface RefBucket {
  pageviews: number;
  events: number;
  readonly visitors: Set<string>;
  readonly pages: Map<string, number>;
  readonly sources: Map<string, number>;
  readonly ids: Set<string>;
}

/** The exact recomputation from the raw events the rollups must equal. */
function reference(events: readonly TestEvent[]): Map<string, Map<number, RefBucket>> {
  const sites = new Map<string, Map<number, RefBucket>>();
  const inc = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  for (const e of events) {
    if (e.bot) continue;
    const bucketMs = Math.floor(e.ts / MINUTE_MS) * MINUTE_MS;
    let site = sites.get(e.site);
    if (!site) sites.set(e.site, (site = new Map()));
    let b = site.get(bucketMs);
    if (!b) site.set(bucketMs, (b = { pageviews: 0, events: 0, visitors: new Set(), pages: new Map(), sources: new Map(), ids: new Set() }));
    if (b.ids.has(e.id)) continue;
    b.ids.add(e.id);
    b.visitors.add(e.visitorId);
    if (e.type === 'pageview') {
      b.pageviews++;
      inc(b.pages, e.path);
      inc(b.sources, e.source);
    } else {
      b.events++;
    }
  }
  return sites;
}

/** The store with its upsert replaced, to inject failures and crashes at the write. */
function withUpsert(inner: RollupStore, upsert: (rows: readonly MinuteRollup[]) => Promise<void>): RollupStore {
  return {
    upsert,
    read: (site, fromMs, toMs) => inner.read(site, fromMs, toMs),
    setWatermark: (partition, watermarkMs) => inner.setWatermark(partition, watermarkMs),
    watermark: () => inner.watermark(),
    close: () => inner.close(),
  };
}

/** The log with every batch passed through `gate` first: a test holds a consumer at a chosen offset. */
function gatedLog(inner: EventLog, gate: (batch: PartitionBatch) => Promise<void>): EventLog {
  return {
    partitions: inner.partitions,
    append: (t, records) => inner.append(t, records),
    consume: (options) => inner.consume({
      ...options,
      handlers: {
        ...options.handlers,
        onBatch: async (batch) => {
          await gate(batch);
          await options.handlers.onBatch(batch);
        },
      },
    }),
    close: () => inner.close(),
  };
}

/**
 * Holds a consumer's batches (through gatedLog), per partition, once the records `grant`ed to
 * that partition have passed: a test decides exactly how far an aggregator gets before it
 * crashes. After abort() held batches fail, as they would for a consumer that is gone.
 */
class RecordGate {
  private readonly taken = new Map<number, number>();
  private readonly budget = new Map<number, number>();
  private aborted = false;
  private waiters: Array<() => void> = [];

  readonly gate = async (batch: PartitionBatch): Promise<void> => {
    const p = batch.partition;
    while (this.takenBy(p) >= (this.budget.get(p) ?? 0)) {
      if (this.aborted) throw new Error('consumer gone');
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    this.taken.set(p, this.takenBy(p) + batch.records.length);
  };

  takenBy(partition: number): number {
    return this.taken.get(partition) ?? 0;
  }

  grant(partition: number, records: number): void {
    this.budget.set(partition, this.takenBy(partition) + records);
    this.wake();
  }

  /** Every partition granted records has taken them all. */
  spent(): boolean {
    return [...this.budget].every(([p, budget]) => this.takenBy(p) >= budget);
  }

  abort(): void {
    this.aborted = true;
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

const readSite = (store: RollupStore, site: string) => store.read(site, 0, Number.MAX_SAFE_INTEGER);

async function expectRollupsToEqual(store: RollupStore, events: readonly TestEvent[]): Promise<void> {
  const ref = reference(events);
  for (const site of SITES) {
    const rows = await readSite(store, site);
    const expected = [...(ref.get(site) ?? new Map<number, RefBucket>())].sort((a, b) => a[0] - b[0]);
    expect(rows.map((r) => ({ bucketMs: r.bucketMs, pageviews: r.pageviews, events: r.events, pages: r.pages, sources: r.sources })), site)
      .to.deep.equal(expected.map(([bucketMs, b]) => ({
        bucketMs, pageviews: b.pageviews, events: b.events, pages: Object.fromEntries(b.pages), sources: Object.fromEntries(b.sources),
      })));
    rows.forEach((r, i) => {
      // A minute holds at most a few hundred visitors: the sparse sketch is exact to ±1.
      expect(Math.abs(HyperLogLog.fromBytes(r.visitors).count() - expected[i]![1].visitors.size), `${site} ${r.bucketMs}`).to.be.at.most(1);
    });
    const union = HyperLogLog.empty();
    for (const r of rows) union.merge(HyperLogLog.fromBytes(r.visitors));
    const exact = new Set(expected.flatMap(([, b]) => [...b.visitors])).size;
    expect(Math.abs(union.count() - exact)).to.be.at.most(Math.max(1, 3 * STANDARD_ERROR * exact));
  }
}

describe('Aggregator', function () {
  this.timeout(60_000);

  let log: MemoryEventLog;
  let store: MemoryRollupStore;
  let bus: MemoryLiveBus;
  let topic: string;
  let lateTopic: string;
  let deadLetterTopic: string;
  let groupId: string;
  let config: Config['aggregate'];
  let started: Aggregator[];

  beforeEach(() => {
    log = new MemoryEventLog({ partitions: 4, maxBatchRecords: 50, retryDelayMs: 5 });
    store = new MemoryRollupStore();
    bus = new MemoryLiveBus();
    topic = `events-${randomUUID()}`;
    lateTopic = `late-${randomUUID()}`;
    deadLetterTopic = `dead-${randomUUID()}`;
    groupId = `aggregate-${randomUUID()}`;
    config = loadConfig({ aggregate: { maxOutOfOrderMs: 5_000, allowedLatenessMs: 60_000, flushIntervalMs: 10, groupId } }).aggregate;
    started = [];
  });

  afterEach(async () => {
    await Promise.all(started.map((a) => a.stop()));
    await log.close();
  });

  async function startAggregator(overrides: {
    log?: EventLog; store?: RollupStore; config?: Partial<Config['aggregate']>; now?: () => number;
  } = {}) {
    const registry = new Registry();
    const aggregator = new Aggregator({
      log: overrides.log ?? log, store: overrides.store ?? store, bus, topic, lateTopic, deadLetterTopic,
      config: { ...config, ...overrides.config }, registry,
      // A clock that stands still keeps idle advance out of these tests: lateness comes from event times alone.
      now: overrides.now ?? (() => T0),
    });
    started.push(aggregator);
    await aggregator.start();
    return { aggregator, registry };
  }

  async function append(events: readonly TestEvent[], chunk = 100): Promise<void> {
    for (let i = 0; i < events.length; i += chunk) await log.append(topic, events.slice(i, i + chunk).map(toRecord));
  }

  /** Wait until the live aggregators have taken every record of the topic, then flush them. */
  async function settle(aggregators: readonly Aggregator[]): Promise<void> {
    await waitFor(() => {
      for (let p = 0; p < log.partitions; p++) {
        const part = log.partition(topic, p);
        const end = part.base + part.records.length;
        if (end === 0) continue;
        const position = aggregators.map((a) => a.positions().get(p)).find((x) => x !== undefined);
        if (position === undefined || position < end) return false;
      }
      return true;
    }, { what: 'aggregators caught up with the log' });
    for (const a of aggregators) await a.flushNow();
  }

  async function outcomes(registry: Registry): Promise<Record<string, number>> {
    const metric = await registry.getSingleMetric('sluice_aggregate_events_total')!.get();
    return Object.fromEntries(metric.values.map((v) => [String(v.labels.outcome), v.value]));
  }

  it('writes rollups equal to an exact recomputation of random traffic, and a restart keeps them', async () => {
    const events = traffic(1, 6_000, 20, config.maxOutOfOrderMs);
    const { aggregator, registry } = await startAggregator();
    await append(events);
    await settle([aggregator]);
    await expectRollupsToEqual(store, events);
    expect(log.readAll(lateTopic)).to.have.length(0);
    const counted = await outcomes(registry);
    expect(counted.late ?? 0).to.equal(0);
    expect(counted.duplicate).to.be.greaterThan(0);
    const bots = await registry.getSingleMetric('sluice_aggregate_bot_events_total')!.get();
    expect(bots.values[0]!.value).to.equal(events.filter((e) => e.bot).length);

    await aggregator.stop();
    const more = traffic(2, 1_000, 3, config.maxOutOfOrderMs).map((e) => ({ ...e, ts: e.ts + 20 * MINUTE_MS }));
    const next = await startAggregator();
    await append(more);
    await settle([next.aggregator]);
    await expectRollupsToEqual(store, [...events, ...more]);
  });

  it('converges to the exact rollups across repeated crashes mid-stream, without a final flush or commit', async () => {
    // Small batches, so that a crash can land between any few records.
    log = new MemoryEventLog({ partitions: 4, maxBatchRecords: 2, retryDelayMs: 5 });
    const events = traffic(3, 8_000, 30, config.maxOutOfOrderMs);
    const logEnd = (p: number) => {
      const part = log.partition(topic, p);
      return part.base + part.records.length;
    };
    // Each stage appends its events, lets its aggregator take a share of what each partition
    // has to read (the replay of its predecessor's work included), and crashes it; `flush`
    // first commits what was taken, as a flush tick would. A tiny share (one batch) crashes the
    // aggregator inside the replay, after a commit, as a consumer that is slow to fetch would.
    const stages = [
      { append: events.slice(0, 1_500), take: 0.5, flush: true },
      { append: events.slice(1_500, 3_000), take: 0, flush: true },
      { append: [], take: 0.3, flush: false },
      { append: events.slice(3_000, 5_000), take: 0.5, flush: true },
      { append: events.slice(5_000, 6_500), take: 0, flush: true },
      { append: [], take: 0, flush: true },
      { append: [], take: 0.5, flush: false },
    ];
    for (const stage of stages) {
      const gate = new RecordGate();
      const { aggregator } = await startAggregator({ log: gatedLog(log, gate.gate) });
      await append(stage.append, 37);
      for (const [p, position] of aggregator.positions()) {
        const toRead = logEnd(p) - position;
        if (toRead > 0) gate.grant(p, Math.max(1, Math.floor(toRead * stage.take)));
      }
      await waitFor(() => gate.spent(), { what: 'the aggregator to take its share' });
      if (stage.flush) await aggregator.flushNow();
      expect([...aggregator.positions()].some(([p, position]) => position < logEnd(p)), 'a crash before the end of the log').to.equal(true);
      const crashed = aggregator.crash();
      gate.abort();
      await crashed;
    }
    const { aggregator } = await startAggregator();
    await append(events.slice(6_500), 37);
    await settle([aggregator]);
    await expectRollupsToEqual(store, events);
    expect(log.readAll(lateTopic)).to.have.length(0);
  });

  it('converges when a crash falls between the rollup write and the commit', async () => {
    const events = traffic(4, 3_000, 10, config.maxOutOfOrderMs);
    let crashNext = false;
    let victim: Aggregator | undefined;
    const crashing = withUpsert(store, async (rows) => {
      await store.upsert(rows);
      if (crashNext && victim) {
        crashNext = false;
        // Not awaited: the crash lands while this flush is between its write and its commit.
        void victim.crash();
      }
    });
    const first = await startAggregator({ store: crashing });
    victim = first.aggregator;
    await append(events.slice(0, 2_000));
    // Caught up and flushed: a commit with open buckets exists before the crash.
    await waitFor(() => [...first.aggregator.positions().values()].reduce((a, b) => a + b, 0) >= 2_000);
    await first.aggregator.flushNow();
    crashNext = true;
    await append(events.slice(2_000, 2_500));
    await waitFor(() => !crashNext, { what: 'the crash after an upsert' });
    const second = await startAggregator();
    await append(events.slice(2_500));
    await settle([second.aggregator]);
    await expectRollupsToEqual(store, events);
  });

  it('hands partitions over on a rebalance without loss or double count', async () => {
    const events = traffic(5, 6_000, 20, config.maxOutOfOrderMs);
    const a = await startAggregator();
    const b = await startAggregator();
    await append(events.slice(0, 3_000));
    await waitFor(() => a.aggregator.positions().size > 0 && b.aggregator.positions().size > 0);
    await b.aggregator.stop();
    await append(events.slice(3_000));
    await settle([a.aggregator]);
    await expectRollupsToEqual(store, events);
  });

  it('retries a failed rollup write and still commits nothing past it', async () => {
    const events = traffic(6, 1_000, 5, config.maxOutOfOrderMs);
    let failures = 2;
    const flaky = withUpsert(store, async (rows) => {
      if (failures-- > 0) throw new Error('store unavailable');
      await store.upsert(rows);
    });
    const { aggregator } = await startAggregator({ store: flaky });
    await append(events);
    await settle([aggregator]);
    await expectRollupsToEqual(store, events);
  });

  it('sends events past the allowed lateness to the late lane and does not count them', async () => {
    const onTime = [event('site-a', T0), event('site-a', T0 + 10 * MINUTE_MS)];
    const late = event('site-a', T0 + 5_000, { id: 'late-one' });
    const after = event('site-a', T0 + 10 * MINUTE_MS + 1_000);
    const { aggregator, registry } = await startAggregator();
    await append([...onTime, late, after]);
    await settle([aggregator]);
    await expectRollupsToEqual(store, [...onTime, after]);
    const lane = log.readAll(lateTopic);
    expect(lane.map((r) => r.headers?.id)).to.deep.equal(['late-one']);
    expect(lane[0]!.headers).to.include({ reason: 'late', 'source-topic': topic, 'source-offset': '2' });
    expect(JSON.parse(lane[0]!.value.toString())).to.deep.equal(late);
    expect((await outcomes(registry)).late).to.equal(1);
  });

  it('does not append a late event again when a successor replays it after a crash', async () => {
    const first = await startAggregator();
    await append([event('site-a', T0), event('site-a', T0 + 10 * MINUTE_MS), event('site-a', T0 + 5_000, { id: 'late-one' })]);
    await settle([first.aggregator]);
    await first.aggregator.crash();
    const second = await startAggregator();
    const after = event('site-a', T0 + 10 * MINUTE_MS + 1_000);
    await append([after]);
    await settle([second.aggregator]);
    expect(log.readAll(lateTopic).map((r) => r.headers?.id)).to.deep.equal(['late-one']);
    expect((await outcomes(second.registry)).replay_skipped).to.equal(1);
    const rows = await readSite(store, 'site-a');
    expect(rows.map((r) => [r.bucketMs, r.pageviews])).to.deep.equal([[T0, 1], [T0 + 10 * MINUTE_MS, 2]]);
  });

  it('keeps the replay boundary across a successor that crashes before replaying all of it', async () => {
    // One record per batch, so that a consumer can be held between any two records.
    log = new MemoryEventLog({ partitions: 4, maxBatchRecords: 1, retryDelayMs: 5 });
    const counted = [
      event('site-a', T0 + 3 * MINUTE_MS), // 0: opens minute 3, the oldest open bucket at the commit
      event('site-a', T0 + MINUTE_MS), // 1: counted in minute 1, which then closes
      event('site-a', T0 + 3 * MINUTE_MS + 10_000), // 2: moves the watermark past minute 1's lateness
    ];
    const late = event('site-a', T0 + 5_000, { id: 'late-one' }); // 3: late
    const first = await startAggregator();
    await log.append(topic, [...counted.map(toRecord), toRecord(late), { key: 'site-a', value: Buffer.from('not json{'), timestampMs: T0 }]);
    await settle([first.aggregator]);
    // Committed: offset 0 (minute 3 is open) with the watermark past minute 1, replay through 4.
    await first.aggregator.crash();
    expect(log.readAll(lateTopic).map((r) => r.headers?.id)).to.deep.equal(['late-one']);
    expect(log.readAll(deadLetterTopic)).to.have.length(1);

    // The successor takes offset 0 again, commits, and crashes before it replays the rest.
    const gate = new RecordGate();
    const second = await startAggregator({ log: gatedLog(log, gate.gate) });
    const partition = log.readAll(topic)[0]!.partition;
    gate.grant(partition, 1);
    await waitFor(() => second.aggregator.positions().get(partition) === 1, { what: 'the successor at offset 1' });
    await second.aggregator.flushNow();
    const crashed = second.aggregator.crash();
    gate.abort();
    await crashed;

    const third = await startAggregator();
    await settle([third.aggregator]);
    await expectRollupsToEqual(store, counted);
    // Offsets 1 to 4 were reflected before the first commit: none is sent to a lane again.
    expect(log.readAll(lateTopic).map((r) => r.headers?.id)).to.deep.equal(['late-one']);
    expect(log.readAll(deadLetterTopic)).to.have.length(1);
    expect((await outcomes(third.registry)).late ?? 0).to.equal(0);
  });

  it('does not close buckets by the clock while replaying, when the successor stalls mid-replay', async () => {
    log = new MemoryEventLog({ partitions: 1, maxBatchRecords: 1, retryDelayMs: 5 });
    const events = [event('site-a', T0 + 3 * MINUTE_MS), event('site-a', T0 + 3 * MINUTE_MS + 1_000)];
    const first = await startAggregator();
    await append(events);
    await settle([first.aggregator]);
    // Committed: offset 0 (minute 3 is open), replay through 1.
    await first.aggregator.crash();

    let clock = T0;
    let clockReads = 0;
    const gate = new RecordGate();
    const second = await startAggregator({
      log: gatedLog(log, gate.gate),
      now: () => {
        clockReads++;
        return clock;
      },
    });
    gate.grant(0, 1);
    await waitFor(() => second.aggregator.positions().get(0) === 1, { what: 'the successor at offset 1' });
    // Stalled mid-replay for far longer than idleAdvanceMs; while held, only flush ticks read the clock.
    clock = T0 + 60 * MINUTE_MS;
    const readsBefore = clockReads;
    await waitFor(() => clockReads >= readsBefore + 2, { what: 'flush ticks with the advanced clock' });
    gate.grant(0, Number.POSITIVE_INFINITY);
    await settle([second.aggregator]);
    await expectRollupsToEqual(store, events);
  });

  it('sends undecodable records to the dead-letter topic with a reason and carries on', async () => {
    const good = [event('site-b', T0), event('site-b', T0 + 1_000)];
    const { aggregator, registry } = await startAggregator();
    await log.append(topic, [
      toRecord(good[0]!),
      { key: 'site-b', value: Buffer.from('not json{'), timestampMs: T0 },
      { key: 'site-b', value: Buffer.from(JSON.stringify({ ...good[0]!, id: 'no-site', site: 7 })), timestampMs: T0 },
      toRecord(good[1]!),
    ]);
    await settle([aggregator]);
    await expectRollupsToEqual(store, good);
    expect(log.readAll(deadLetterTopic).map((r) => r.headers?.reason)).to.deep.equal(['invalid_json', 'invalid_field:site']);
    expect((await outcomes(registry)).dead_letter).to.equal(2);
  });

  it('publishes bucket notices only once their rows are readable', async () => {
    const events = traffic(7, 2_000, 6, config.maxOutOfOrderMs);
    const checks: Array<Promise<{ notice: BucketsChanged; missing: number[] }>> = [];
    for (const site of SITES) {
      await bus.subscribe(site, (notice) => {
        // The memory store answers synchronously, so this read sees the store as of the notice.
        checks.push(store.read(site, Math.min(...notice.buckets), Math.max(...notice.buckets) + 1).then((rows) => ({
          notice, missing: notice.buckets.filter((b) => !rows.some((r) => r.bucketMs === b)),
        })));
      });
    }
    const { aggregator } = await startAggregator();
    await append(events);
    await settle([aggregator]);
    await waitFor(() => checks.length > 0);
    const results = await Promise.all(checks);
    expect(results.filter((r) => r.missing.length > 0)).to.deep.equal([]);
    const notified = new Set(results.flatMap((r) => r.notice.buckets.map((b) => `${r.notice.site}@${b}`)));
    const ref = reference(events);
    expect(notified).to.deep.equal(new Set([...ref].flatMap(([site, buckets]) => [...buckets.keys()].map((b) => `${site}@${b}`))));
  });
});
