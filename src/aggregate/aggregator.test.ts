import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { Registry } from 'prom-client';
import { waitFor } from '../../test/support/wait-for.js';
import { MemoryEventLog } from '../adapters/memory/memory-event-log.js';
import { MemoryLiveBus } from '../adapters/memory/memory-live-bus.js';
import { MemoryRollupStore } from '../adapters/memory/memory-rollup-store.js';
import { loadConfig, type Config } from '../config.js';
import type { EnrichedEvent } from '../ingest/enriched-event.js';
import type { LogRecord } from '../ingest/event-log.js';
import type { BucketsChanged } from '../query/live-bus.js';
import { Aggregator } from './aggregator.js';
import { HyperLogLog, STANDARD_ERROR } from './hyperloglog.js';
import { MINUTE_MS } from './minute-windows.js';
import type { MinuteRollup, RollupStore } from './rollup-store.js';

const T0 = Date.UTC(2024, 0, 1, 12, 0, 0);
const SITES = ['site-a', 'site-b', 'site-c', 'site-d', 'site-e'];
const PATHS = Array.from({ length: 15 }, (_, i) => `/page/${i}`);
const SOURCES = ['Direct / None', 'Google', 'Facebook', 'Newsletter', 'Bing', 'news.example.com'];

/** What the aggregator reads of an EnrichedEvent (the rest of the record is ingest's business). */
type TestEvent = Pick<EnrichedEvent, 'v' | 'id' | 'site' | 'type' | 'name' | 'ts' | 'path' | 'source' | 'visitorId' | 'bot'>;

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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

  async function startAggregator(overrides: { store?: RollupStore; config?: Partial<Config['aggregate']> } = {}) {
    const registry = new Registry();
    const aggregator = new Aggregator({
      log, store: overrides.store ?? store, bus, topic, lateTopic, deadLetterTopic,
      config: { ...config, ...overrides.config }, registry,
      // A clock that stands still keeps idle advance out of these tests: lateness comes from event times alone.
      now: () => T0,
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
    const events = traffic(3, 8_000, 30, config.maxOutOfOrderMs);
    const parts = [events.slice(0, 1_500), events.slice(1_500, 3_000), events.slice(3_000, 5_000), events.slice(5_000)];
    let taken = 0;
    for (const [i, part] of parts.entries()) {
      const { aggregator } = await startAggregator();
      const appending = append(part, 37);
      if (i === parts.length - 1) {
        await appending;
        await settle([aggregator]);
        break;
      }
      // Crash half-way through the part: some records are taken, some flushed, some committed.
      const target = taken + part.length / 2;
      await waitFor(() => [...aggregator.positions().values()].reduce((a, b) => a + b, 0) >= target);
      await aggregator.crash();
      await appending;
      taken += part.length;
    }
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
