import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { Registry } from 'prom-client';
import { VirtualAction, VirtualTimeScheduler, type SchedulerLike } from 'rxjs';
import { waitFor } from '../../test/support/wait-for.js';
import { MemoryEventLog, partitionForKey } from '../adapters/memory/memory-event-log.js';
import { MemoryLiveBus } from '../adapters/memory/memory-live-bus.js';
import { MemoryLogPositions } from '../adapters/memory/memory-log-positions.js';
import { MemoryRollupStore } from '../adapters/memory/memory-rollup-store.js';
import { loadConfig, type Config } from '../config.js';
import type { EnrichedEvent } from '../ingest/enriched-event.js';
import type { CommittedOffset, EventLog, LogExtent, LogRecord, PartitionBatch } from '../ingest/event-log.js';
import { encodeEventRecord } from '../ingest/event-record.js';
import type { LiveBus } from '../query/live-bus.js';
import { createQueryEngine } from '../query/query-engine.js';
import { configSiteSettings } from '../query/site-settings.js';
import { Aggregator } from './aggregator.js';
import { decodeEvent } from './decode-event.js';
import { HyperLogLog } from './hyperloglog.js';
import { MINUTE_MS, MinuteWindows, type WindowFlush } from './minute-windows.js';
import { decodeRollup, encodeRollup } from './rollup-codec.js';
import type { Rollup, RollupStore } from './rollup-store.js';
import { TIER_MS, zeroCounts, type Counts } from './rollup.js';
import { compareEvents, contributions } from './sessions.js';
import { rng as prng } from '../demo/demo-traffic.js';

const T0 = Date.UTC(2024, 0, 1, 12, 0, 0);
const SITES = ['site-a', 'site-b', 'site-c', 'site-d', 'site-e'];
const PATHS = Array.from({ length: 15 }, (_, i) => `/page/${i}`);
const SOURCES = ['Direct / None', 'Google', 'Facebook', 'Newsletter', 'Bing', 'news.example.com'];

function visitorId(site: string, n: number): string {
  // 32 hex chars, as ingest's keyed hash.
  const rand = prng(n * 7919 + site.length * 104729 + site.charCodeAt(site.length - 1));
  let s = '';
  for (let i = 0; i < 4; i++) s += Math.floor(rand() * 2 ** 32).toString(16).padStart(8, '0');
  return s;
}

function event(site: string, ts: number, fields: Partial<EnrichedEvent> = {}): EnrichedEvent {
  return {
    v: 2, id: randomUUID(), site, type: 'pageview', name: 'pageview', ts, receivedAt: ts, host: `${site}.example`, path: '/', title: null,
    referrerHost: '', source: 'Direct / None', channel: 'direct', utm: { source: null, medium: null, campaign: null, term: null, content: null },
    browser: 'Firefox', browserVersion: '125', os: 'Linux', osVersion: '', device: 'desktop', bot: false, screen: null, language: null,
    props: {}, revenue: null, visitorId: visitorId(site, 0), country: null, region: null, city: null, ...fields,
  };
}

const toRecord = (e: EnrichedEvent): LogRecord => ({ key: e.site, value: encodeEventRecord(e), timestampMs: e.ts, headers: { id: e.id } });

/**
 * Random traffic in append order: event times advance over `minutes`, each shifted back by up to
 * 80% of maxOutOfOrderMs (so none is late), with bots, client retries (same id, same time),
 * anonymous events, custom events with props and revenue, and visitors whose visits span many
 * minutes (a pool that drifts, so visitors also leave and come back).
 */
function traffic(seed: number, count: number, minutes: number, maxOutOfOrderMs: number): EnrichedEvent[] {
  const rand = prng(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
  const out: EnrichedEvent[] = [];
  const stepMs = (minutes * MINUTE_MS) / count;
  for (let i = 0; i < count; i++) {
    const site = pick(SITES);
    const pageview = rand() < 0.8;
    const drift = Math.floor((i / count) * 200);
    const visitor = rand() < 0.85 ? drift + Math.floor(rand() * 60) : Math.floor(rand() * 300);
    out.push(event(site, Math.round(T0 + i * stepMs - rand() * 0.8 * maxOutOfOrderMs), {
      type: pageview ? 'pageview' : 'event',
      name: pageview ? 'pageview' : pick(['signup', 'download', 'play']),
      path: pick(PATHS),
      source: pick(SOURCES),
      country: pick(['FR', 'DE', 'IN', 'NP', null]),
      browser: pick(['Chrome', 'Firefox', 'Safari']),
      screen: rand() < 0.5 ? null : { width: Math.floor(rand() * 2000), height: 900 },
      props: rand() < 0.2 ? { plan: pick(['free', 'pro']) } : {},
      revenue: !pageview && rand() < 0.3 ? { amount: Math.floor(rand() * 1000) / 4, currency: pick(['EUR', 'USD']) } : null,
      visitorId: rand() < 0.02 ? '' : visitorId(site, visitor),
      bot: rand() < 0.05,
    }));
    if (rand() < 0.05) out.push(out[Math.max(0, out.length - 1 - Math.floor(rand() * 10))]!);
  }
  return out;
}

/** A row as the store gives it back: through the row codec. */
const stored = (r: Rollup): Rollup => decodeRollup(r.site, r.tier, r.bucketMs, encodeRollup(r));

/**
 * The minute rows of an uncrashed run: one MinuteWindows over the events in append order. No
 * test event is late, so how sites share partitions (and so watermarks) does not matter: each
 * site's rows depend on its own events alone.
 */
function uncrashedRows(events: readonly EnrichedEvent[], config: Config['aggregate']): Map<string, Rollup[]> {
  const w = new MinuteWindows(config, 0);
  const flushes: WindowFlush[] = [];
  events.forEach((e, offset) => {
    const decoded = decodeEvent(encodeEventRecord(e));
    if (!decoded.ok) throw new Error(decoded.reason);
    expect(w.offer({ offset, event: decoded.event }, 0)).to.not.equal('late');
    if (offset % 100 === 0) flushes.push(...[w.takeFlush()].filter((f): f is WindowFlush => f !== null));
  });
  flushes.push(...[w.takeFlush()].filter((f): f is WindowFlush => f !== null));
  const latest = new Map<string, Rollup>();
  for (const f of flushes) for (const r of f.rows) latest.set(`${r.site}@${r.bucketMs}`, r);
  const bySite = new Map<string, Rollup[]>();
  for (const r of [...latest.values()].sort((a, b) => a.bucketMs - b.bucketMs)) bySite.set(r.site, [...(bySite.get(r.site) ?? []), stored(r)]);
  return bySite;
}

/** Per site and minute, the totals rollup.ts defines, straight from sessions.ts over the sorted events. */
function referenceTotals(events: readonly EnrichedEvent[], config: Config['aggregate']): Map<string, Counts> {
  const totals = new Map<string, Counts>();
  for (const { event: e, contribution: c } of contributions([...events].sort(compareEvents), config)) {
    const key = `${e.site}@${Math.floor(e.ts / MINUTE_MS) * MINUTE_MS}`;
    const t = totals.get(key) ?? zeroCounts();
    t.pageviews += c.pageviews;
    t.events += c.events;
    t.visits += c.visits;
    t.bounces += c.bounces;
    t.durationMs += c.durationMs;
    totals.set(key, t);
  }
  return totals;
}

/** Virtual time for the timers: each tick() runs what falls due in the next `stepMs`, and nothing else moves them. */
function virtualTime(stepMs: number) {
  const scheduler = new VirtualTimeScheduler(VirtualAction, 0);
  const tick = () => {
    scheduler.maxFrames += stepMs;
    scheduler.flush();
  };
  return { scheduler, tick };
}

/**
 * A wall clock the test moves by hand. Flush ticks read it, so its reads tell when the
 * aggregator has ticked since a move.
 */
function handClock(startMs = T0) {
  let ms = startMs;
  let reads = 0;
  return {
    now: () => {
      reads++;
      return ms;
    },
    /** Moves the clock to `toMs`, then waits until it has been read `ticks` more times. */
    async moveTo(toMs: number, ticks: number): Promise<void> {
      ms = toMs;
      const before = reads;
      await waitFor(() => reads >= before + ticks, { what: 'flush ticks with the moved clock' });
    },
  };
}

/** Records an aggregator has taken, over its partitions. */
function takenBy(aggregator: Aggregator): number {
  return [...aggregator.positions().values()].reduce((a, b) => a + b, 0);
}

/** The store with some of its methods replaced, to inject failures and crashes. */
function wrapStore(inner: RollupStore, overrides: Partial<RollupStore>): RollupStore {
  return {
    upsert: (rows) => inner.upsert(rows),
    read: (site, tier, fromMs, toMs) => inner.read(site, tier, fromMs, toMs),
    setWatermark: (partition, watermarkMs) => inner.setWatermark(partition, watermarkMs),
    watermark: () => inner.watermark(),
    partitionWatermark: (partition) => inner.partitionWatermark(partition),
    saveCheckpoint: (partition, id, data) => inner.saveCheckpoint(partition, id, data),
    loadCheckpoint: (partition, id) => inner.loadCheckpoint(partition, id),
    close: () => inner.close(),
    ...overrides,
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

/** The log with every commit reported to `onCommit` before it is made. */
function watchedLog(inner: EventLog, onCommit: (partition: number, committed: CommittedOffset) => void): EventLog {
  return {
    partitions: inner.partitions,
    append: (t, records) => inner.append(t, records),
    consume: async (options) => {
      const consumer = await inner.consume(options);
      return {
        commit: (partition, committed) => {
          onCommit(partition, committed);
          return consumer.commit(partition, committed);
        },
        stop: () => consumer.stop(),
      };
    },
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

const readSite = (store: RollupStore, site: string, tier: Rollup['tier'] = 'minute') => store.read(site, tier, 0, Number.MAX_SAFE_INTEGER);

/**
 * The store holds exactly the minute rows of an uncrashed run (sketches included), whose
 * totals are the definition's (sessions.ts over the sorted events), and coarser rows whose
 * totals sum the minutes they cover.
 */
async function expectRollupsToEqual(store: RollupStore, events: readonly EnrichedEvent[], config: Config['aggregate']): Promise<void> {
  const want = uncrashedRows(events, config);
  const totals = referenceTotals(events, config);
  for (const site of SITES) {
    const rows = await readSite(store, site);
    expect(rows, site).to.deep.equal(want.get(site) ?? []);
    for (const r of rows) {
      const key = `${site}@${r.bucketMs}`;
      // A bucket with bots only has zero totals and no reference entry.
      expect(r.totals, key).to.deep.equal(totals.get(key) ?? zeroCounts());
    }
    for (const tier of ['quarter', 'day'] as const) {
      const coarse = await readSite(store, site, tier);
      expect(coarse.map((c) => c.bucketMs), `${site} ${tier}`).to.deep.equal(
        [...new Set(rows.map((r) => Math.floor(r.bucketMs / TIER_MS[tier]) * TIER_MS[tier]))]);
      for (const c of coarse) {
        const covered = rows.filter((r) => r.bucketMs >= c.bucketMs && r.bucketMs < c.bucketMs + TIER_MS[tier]);
        expect(c.totals.pageviews, `${site} ${tier} ${c.bucketMs}`).to.equal(covered.reduce((n, r) => n + r.totals.pageviews, 0));
        expect(c.totals.visits, `${site} ${tier} ${c.bucketMs}`).to.equal(covered.reduce((n, r) => n + r.totals.visits, 0));
      }
    }
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
    log?: EventLog; store?: RollupStore; bus?: LiveBus; config?: Partial<Config['aggregate']>; now?: () => number; maxUnflushedRecords?: number;
    scheduler?: SchedulerLike; positions?: LogExtent;
  } = {}) {
    const registry = new Registry();
    const aggregator = new Aggregator({
      maxUnflushedRecords: overrides.maxUnflushedRecords,
      log: overrides.log ?? log, positions: overrides.positions ?? new MemoryLogPositions(log), store: overrides.store ?? store, bus: overrides.bus ?? bus, topic, lateTopic, deadLetterTopic,
      config: { ...config, ...overrides.config }, registry,
      // A clock that stands still keeps idle advance out of these tests: lateness comes from event times alone.
      now: overrides.now ?? (() => T0),
      scheduler: overrides.scheduler,
    });
    started.push(aggregator);
    await aggregator.start();
    return { aggregator, registry };
  }

  async function append(events: readonly EnrichedEvent[], chunk = 100): Promise<void> {
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
    await expectRollupsToEqual(store, events, config);
    expect(log.readAll(lateTopic)).to.have.length(0);
    const counted = await outcomes(registry);
    expect(counted.late ?? 0).to.equal(0);
    expect(counted.duplicate).to.be.greaterThan(0);
    // Bot events count once per id, as other events do.
    const bots = await registry.getSingleMetric('sluice_aggregate_bot_events_total')!.get();
    expect(bots.values[0]!.value).to.equal(new Set(events.filter((e) => e.bot).map((e) => e.id)).size);
    const stored = (await Promise.all(SITES.map((site) => readSite(store, site)))).flat();
    expect(stored.reduce((n, r) => n + r.bots, 0)).to.equal(bots.values[0]!.value);

    await aggregator.stop();
    const more = traffic(2, 1_000, 3, config.maxOutOfOrderMs).map((e) => ({ ...e, ts: e.ts + 20 * MINUTE_MS }));
    const next = await startAggregator();
    await append(more);
    await settle([next.aggregator]);
    await expectRollupsToEqual(store, [...events, ...more], config);
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
    await expectRollupsToEqual(store, events, config);
    expect(log.readAll(lateTopic)).to.have.length(0);
  });

  it('converges when a crash falls between the rollup write and the commit', async () => {
    const events = traffic(4, 3_000, 10, config.maxOutOfOrderMs);
    let crashNext = false;
    let victim: Aggregator | undefined;
    const crashing = wrapStore(store, { upsert: async (rows) => {
      await store.upsert(rows);
      if (crashNext && victim) {
        crashNext = false;
        // Not awaited: the crash lands while this flush is between its write and its commit.
        void victim.crash();
      }
    } });
    const first = await startAggregator({ store: crashing });
    victim = first.aggregator;
    await append(events.slice(0, 2_000));
    // Caught up and flushed: a commit with open buckets exists before the crash.
    await waitFor(() => takenBy(first.aggregator) >= 2_000);
    await first.aggregator.flushNow();
    crashNext = true;
    await append(events.slice(2_000, 2_500));
    await waitFor(() => !crashNext, { what: 'the crash after an upsert' });
    const second = await startAggregator();
    await append(events.slice(2_500));
    await settle([second.aggregator]);
    await expectRollupsToEqual(store, events, config);
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
    await expectRollupsToEqual(store, events, config);
  });

  /**
   * One visit of six minutes (a pageview every 20 s from T0), cut by a crash after a commit at
   * T0 + 4 min: by then its first minutes are closed (lateness 60 s), so the successor can only
   * continue the visit from the checkpointed state.
   */
  async function crashMidVisit(successorStore: RollupStore) {
    log = new MemoryEventLog({ partitions: 1, maxBatchRecords: 5, retryDelayMs: 5 });
    const visit = Array.from({ length: 19 }, (_, i) => event('site-a', T0 + i * 20_000, { path: `/step/${i % 4}`, visitorId: visitorId('site-a', 1) }));
    const first = await startAggregator();
    await append(visit.slice(0, 13));
    await settle([first.aggregator]);
    await first.aggregator.crash();
    const second = await startAggregator({ store: successorStore });
    await append(visit.slice(13));
    await settle([second.aggregator]);
    const rows = await readSite(store, 'site-a');
    const sum = (f: keyof Counts) => rows.reduce((n, r) => n + r.totals[f], 0);
    const fallbacks = await second.registry.getSingleMetric('sluice_aggregate_checkpoint_fallbacks_total')!.get();
    return {
      visit, pageviews: sum('pageviews'), visits: sum('visits'), bounces: sum('bounces'), durationMs: sum('durationMs'),
      fallbacks: Object.fromEntries(fallbacks.values.map((v) => [String(v.labels.reason), v.value])),
    };
  }

  it('continues a visit across a crash from the checkpoint, exactly as an uncrashed run', async () => {
    const result = await crashMidVisit(store);
    expect(result).to.deep.include({ pageviews: 19, visits: 1, bounces: 0, durationMs: 6 * MINUTE_MS, fallbacks: {} });
    await expectRollupsToEqual(store, result.visit, config);
  });

  it('falls back to no visit state when the checkpoint is missing, counting the visit in progress again', async () => {
    const result = await crashMidVisit(wrapStore(store, { loadCheckpoint: async () => null }));
    // Counts stay exact; the visit in progress at the commit starts again (aggregator.ts, point 7).
    expect(result).to.deep.include({ pageviews: 19, visits: 2, fallbacks: { missing: 1 } });
    expect(result.durationMs).to.be.below(6 * MINUTE_MS);
  });

  it('falls back to no visit state when the checkpoint is unreadable', async () => {
    const result = await crashMidVisit(wrapStore(store, { loadCheckpoint: async () => Uint8Array.from([0x53, 0x56, 1, 200]) }));
    expect(result).to.deep.include({ pageviews: 19, visits: 2, fallbacks: { unreadable: 1 } });
  });

  it('commits only with a checkpoint saved before it: on request, every checkpointIntervalMs, never in between', async () => {
    const saved: string[] = [];
    const commits: Array<{ partition: number; committed: CommittedOffset; savedBefore: boolean }> = [];
    const watched = watchedLog(log, (partition, committed) => {
      const id = (JSON.parse(committed.metadata) as { checkpoint: string }).checkpoint;
      commits.push({ partition, committed, savedBefore: saved.includes(`${partition}/${id}`) });
    });
    const recording = wrapStore(store, {
      saveCheckpoint: async (partition, id, data) => {
        await store.saveCheckpoint(partition, id, data);
        saved.push(`${partition}/${id}`);
      },
    });
    const events = traffic(9, 1_000, 5, config.maxOutOfOrderMs);
    const { aggregator } = await startAggregator({ log: watched, store: recording, config: { checkpointIntervalMs: 1_000_000 } });
    await append(events);
    // Flushes write rows all the while…
    await waitFor(async () => (await Promise.all(SITES.map((site) => readSite(store, site)))).some((rows) => rows.length > 0), { what: 'rows written' });
    await waitFor(() => takenBy(aggregator) >= events.length, { what: 'all taken' });
    // …but commit nothing until a checkpoint is due.
    expect(commits).to.deep.equal([]);
    await aggregator.flushNow();
    expect(commits.length).to.be.greaterThan(0);
    expect(commits.every((c) => c.savedBefore)).to.equal(true);
    for (const { partition, committed } of commits) {
      const id = (JSON.parse(committed.metadata) as { checkpoint: string }).checkpoint;
      expect(await store.loadCheckpoint(partition, id), id).to.not.equal(null);
    }
    await aggregator.stop();

    // With a short interval, the timer commits by itself.
    commits.length = 0;
    const next = await startAggregator({ log: watched, store: recording, config: { checkpointIntervalMs: 20 } });
    await append(traffic(10, 500, 2, config.maxOutOfOrderMs).map((e) => ({ ...e, ts: e.ts + 5 * MINUTE_MS })));
    await waitFor(() => commits.length > 0, { what: 'a commit by the checkpoint timer' });
    expect(commits.every((c) => c.savedBefore)).to.equal(true);
    await next.aggregator.stop();
  });

  it('retries a failed rollup write and still commits nothing past it', async () => {
    const events = traffic(6, 1_000, 5, config.maxOutOfOrderMs);
    let failures = 2;
    const flaky = wrapStore(store, { upsert: async (rows) => {
      if (failures-- > 0) throw new Error('store unavailable');
      await store.upsert(rows);
    } });
    const { aggregator } = await startAggregator({ store: flaky });
    await append(events);
    await settle([aggregator]);
    await expectRollupsToEqual(store, events, config);
  });

  /** The store whose upserts all wait until release(): a stuck write. */
  function stuckStore() {
    let release: () => void = () => {};
    const stuck = new Promise<void>((r) => { release = r; });
    const state = { upserts: 0 };
    const stalled = wrapStore(store, { upsert: async (rows) => {
      state.upserts++;
      await stuck;
      await store.upsert(rows);
    } });
    return { stalled, release: () => release(), started: () => state.upserts > 0 };
  }

  it('takes no more than maxUnflushedRecords per partition while a flush is stuck, then catches up exactly', async () => {
    const events = traffic(8, 2_000, 5, config.maxOutOfOrderMs);
    const { stalled, release, started } = stuckStore();
    const { aggregator } = await startAggregator({ store: stalled, maxUnflushedRecords: 200 });
    try {
      await append(events.slice(0, 200));
      await waitFor(started, { what: 'a flush to start writing' });
      const before = takenBy(aggregator);
      await append(events.slice(200));
      // Give the partitions time to take all they would: each stops within a batch (50) past its bound.
      await new Promise((r) => setTimeout(r, 300));
      const taken = takenBy(aggregator);
      expect(taken - before).to.be.at.most(log.partitions * (200 + 50));
    } finally {
      release();
    }
    await settle([aggregator]);
    await expectRollupsToEqual(store, events, config);
  });

  it('takes a timer flush held by a slow write as soon as the write is done, not a tick later', async () => {
    // Virtual time: flush ticks happen only when the test says, so "a tick later" never comes.
    const { scheduler, tick } = virtualTime(1_000);
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => { release = r; });
    let upserts = 0;
    const slow = wrapStore(store, { upsert: async (rows) => {
      if (++upserts === 1) await gate;
      await store.upsert(rows);
    } });
    const { aggregator } = await startAggregator({ store: slow, scheduler, config: { flushIntervalMs: 1_000 } });
    const taken = () => takenBy(aggregator);
    const events = Array.from({ length: 40 }, (_, i) => event('site-a', T0 + i * 1_000));
    await append(events.slice(0, 20));
    await waitFor(() => taken() === 20, { what: 'the first events taken' });
    tick();
    await waitFor(() => upserts === 1, { what: 'the first flush writing' });
    await append(events.slice(20));
    await waitFor(() => taken() === 40, { what: 'the next events taken' });
    tick();
    expect(upserts, 'the second tick is held while the first flush is written').to.equal(1);
    release();
    await waitFor(() => upserts === 2, { what: 'the held flush, taken once the first is written' });
    await settle([aggregator]);
    await expectRollupsToEqual(store, events, config);
  });

  it('takes a checkpoint in a held flush when one is due, so a store slower than the flush interval still sees commits', async () => {
    const { scheduler, tick } = virtualTime(1_000);
    // Every write takes until after the next tick: every tick is held.
    let pending: Array<() => void> = [];
    let saves = 0;
    const slow = wrapStore(store, {
      upsert: async (rows) => {
        await new Promise<void>((r) => pending.push(r));
        await store.upsert(rows);
      },
      saveCheckpoint: async (partition, id, data) => {
        saves++;
        await store.saveCheckpoint(partition, id, data);
      },
    });
    const { aggregator } = await startAggregator({ store: slow, scheduler, config: { flushIntervalMs: 1_000, checkpointIntervalMs: 3_000 } });
    const taken = () => takenBy(aggregator);
    const events = Array.from({ length: 60 }, (_, i) => event('site-a', T0 + i * 500));
    for (let i = 0; i < 12; i++) {
      await append(events.slice(i * 5, i * 5 + 5));
      await waitFor(() => taken() === (i + 1) * 5, { what: `events of round ${i} taken` });
      const before = pending.splice(0);
      tick();
      for (const release of before) release();
      await waitFor(() => pending.length > 0, { what: `a write under way after round ${i}` });
    }
    expect(saves, 'checkpoints saved while every tick was held').to.be.greaterThan(0);
    const drain = setInterval(() => { for (const release of pending.splice(0)) release(); }, 5);
    try {
      await settle([aggregator]);
    } finally {
      clearInterval(drain);
    }
    await expectRollupsToEqual(store, events, config);
  });

  /**
   * A successor on partition 0 (virtual time, coarse rows on every flush) that takes `records`
   * and stops there while three flush ticks come and go; then a pause for a flush, had one
   * written rows, to land (a wrong pass needs a slow machine, a wrong failure cannot happen).
   */
  async function successorStoppedAt(records: number, successorStore?: RollupStore) {
    const { scheduler, tick } = virtualTime(config.flushIntervalMs);
    const gate = new RecordGate();
    const second = await startAggregator({ log: gatedLog(log, gate.gate), store: successorStore, scheduler, config: { coarseRollIntervalMs: 0 } });
    gate.grant(0, records);
    await waitFor(() => second.aggregator.positions().get(0) === records, { what: `the successor at offset ${records}` });
    for (let i = 0; i < 3; i++) tick();
    await new Promise((r) => setTimeout(r, 100));
    return { second, gate };
  }

  it('writes no rows while replaying: rows the predecessor wrote are not restated lower, even open ones', async () => {
    log = new MemoryEventLog({ partitions: 1, maxBatchRecords: 10, retryDelayMs: 5 });
    const inMinute = Array.from({ length: 100 }, (_, i) => event('site-a', T0 + i * 100));
    // Coarse rows on every flush, so the predecessor's hour row is there too.
    const first = await startAggregator({ config: { coarseRollIntervalMs: 0 } });
    await append(inMinute);
    await settle([first.aggregator]);
    // Committed with minute 0 open (replay from offset 0 through 99), and never final.
    const pageviews = async (tier: 'minute' | 'hour') => (await store.read('site-a', tier, T0, T0 + 1)).map((r) => r.totals.pageviews);
    expect(await pageviews('hour')).to.deep.equal([100]);
    expect(await store.partitionWatermark(0)).to.be.lessThan(T0 + MINUTE_MS);
    await first.aggregator.crash();

    // The successor replays 30 of the 100 and stops there; timer ticks come and go.
    const { second, gate } = await successorStoppedAt(30);
    expect(await pageviews('minute')).to.deep.equal([100]);
    expect(await pageviews('hour')).to.deep.equal([100]);
    gate.grant(0, Number.POSITIVE_INFINITY);
    await settle([second.aggregator]);
    await expectRollupsToEqual(store, inMinute, config);
  });

  it('withholds, after a crash, its rows of buckets the predecessor made final after its last commit until it closes them, then writes them whole', async () => {
    log = new MemoryEventLog({ partitions: 1, maxBatchRecords: 10, retryDelayMs: 5 });
    const committed = Array.from({ length: 50 }, (_, i) => event('site-a', T0 + i * 100));
    // After the commit: more of minute 0 (still on time), then an event that closes it.
    const more = Array.from({ length: 20 }, (_, i) => event('site-a', T0 + 10_000 + i * 100));
    const closing = event('site-a', T0 + 3 * MINUTE_MS);
    const first = await startAggregator({ config: { coarseRollIntervalMs: 0 } });
    await append(committed);
    await settle([first.aggregator]);
    await append([...more, closing]);
    await waitFor(async () => ((await store.partitionWatermark(0)) ?? 0) >= T0 + MINUTE_MS, { what: 'minute 0 final in the store' });
    const pageviews = async (tier: 'minute' | 'hour') => (await store.read('site-a', tier, T0, T0 + 1)).map((r) => r.totals.pageviews);
    expect(await pageviews('minute')).to.deep.equal([70]);
    expect(await pageviews('hour')).to.deep.equal([71]);
    await first.aggregator.crash();

    // The successor's writes of minute 0, as pageviews.
    const written: number[] = [];
    const spy = wrapStore(store, { upsert: async (rows) => {
      for (const r of rows) if (r.tier === 'minute' && r.bucketMs === T0) written.push(r.totals.pageviews);
      await store.upsert(rows);
    } });
    // It replays the 50, takes 10 of the 20 more and stops there: ticks come and go. Then it
    // takes the other 10, and a checkpoint flush (a commit) comes while minute 0 is still open.
    const { second, gate } = await successorStoppedAt(60, spy);
    expect(await pageviews('minute')).to.deep.equal([70]);
    expect(await pageviews('hour')).to.deep.equal([71]);
    gate.grant(0, 10);
    await waitFor(() => second.aggregator.positions().get(0) === 70, { what: 'the successor at offset 70' });
    await second.aggregator.flushNow();
    expect(written, 'nothing of minute 0 written while it is open').to.deep.equal([]);
    // Whole once it closes here too: written then, not lost.
    gate.grant(0, Number.POSITIVE_INFINITY);
    await settle([second.aggregator]);
    expect(written).to.deep.equal([70]);
    await expectRollupsToEqual(store, [...committed, ...more, closing], config);
  });

  it('does not close buckets by the clock while it holds input back for a stuck write: no on-time event goes late', async () => {
    const events = traffic(8, 2_000, 5, config.maxOutOfOrderMs);
    const { stalled, release, started } = stuckStore();
    const clock = handClock();
    const { aggregator, registry } = await startAggregator({
      store: stalled, maxUnflushedRecords: 200, now: clock.now,
    });
    try {
      await append(events.slice(0, 200));
      await waitFor(started, { what: 'a flush to start writing' });
      await append(events.slice(200));
      // The store is stuck far longer than idleAdvanceMs plus the lateness, by the clock.
      await clock.moveTo(T0 + 30 * MINUTE_MS, 20);
    } finally {
      release();
    }
    await settle([aggregator]);
    expect(log.readAll(lateTopic)).to.have.length(0);
    expect((await outcomes(registry)).late ?? 0).to.equal(0);
    await expectRollupsToEqual(store, events, config);
  });

  it('does not close buckets by the clock while records wait in the log undelivered (a consumer cut off, or fetching late)', async () => {
    log = new MemoryEventLog({ partitions: 1, maxBatchRecords: 10, retryDelayMs: 5 });
    const events = traffic(9, 300, 3, config.maxOutOfOrderMs);
    const clock = handClock();
    const gate = new RecordGate();
    const { aggregator, registry } = await startAggregator({
      log: gatedLog(log, gate.gate),
      now: clock.now,
    });
    gate.grant(0, 50);
    await append(events);
    await waitFor(() => aggregator.positions().get(0) === 50, { what: 'the first 50 records taken' });
    // Nothing arrives for far longer than idleAdvanceMs plus the lateness, by the clock, though
    // 250 records wait in the log: the aggregator itself is not holding anything back.
    await clock.moveTo(T0 + 30 * MINUTE_MS, 40);
    gate.grant(0, Number.POSITIVE_INFINITY);
    await settle([aggregator]);
    expect(log.readAll(lateTopic)).to.have.length(0);
    expect((await outcomes(registry)).late ?? 0).to.equal(0);
    await expectRollupsToEqual(store, events, config);
  });

  it('does not close buckets by the clock while the log\'s offsets cannot be read, and says how old its reading is', async () => {
    log = new MemoryEventLog({ partitions: 1, maxBatchRecords: 50, retryDelayMs: 5 });
    const events = traffic(10, 200, 3, config.maxOutOfOrderMs);
    const clock = handClock();
    let reads = 0;
    const { aggregator, registry } = await startAggregator({
      positions: { offsetRanges: async () => { reads++; throw new Error('broker unreachable'); } },
      now: clock.now,
    });
    await append(events.slice(0, 100));
    await settle([aggregator]);
    await clock.moveTo(T0 + 30 * MINUTE_MS, 40);
    expect(reads).to.be.greaterThan(1);
    const age = (await registry.getSingleMetric('sluice_aggregate_log_reading_age_seconds')!.get()).values[0]!.value;
    expect(age).to.equal(-1);
    // Nothing closed by the clock: the rest, as old as the first half, is on time.
    await append(events.slice(100));
    await settle([aggregator]);
    expect((await outcomes(registry)).late ?? 0).to.equal(0);
    await expectRollupsToEqual(store, events, config);
  });

  it('closes the buckets of a quiet partition that has taken all its records by the clock, while another holds input back for a stuck write', async () => {
    const [busy, quiet] = ['site-a', 'site-c'];
    const quietPartition = partitionForKey(quiet, log.partitions);
    expect(partitionForKey(busy, log.partitions)).to.not.equal(quietPartition);
    let release: () => void = () => {};
    const stuck = new Promise<void>((r) => { release = r; });
    let busyWriting = false;
    const stalled = wrapStore(store, { upsert: async (rows) => {
      if (rows.some((r) => r.site === busy)) {
        busyWriting = true;
        await stuck;
      }
      await store.upsert(rows);
    } });
    let clock = T0;
    const { aggregator } = await startAggregator({ store: stalled, maxUnflushedRecords: 20, now: () => clock });
    const events = [
      event(quiet, T0 + 1_000),
      ...Array.from({ length: 20 }, (_, i) => event(busy, T0 + i * 100)),
    ];
    const more = Array.from({ length: 100 }, (_, i) => event(busy, T0 + 2_000 + i * 100));
    try {
      await append(events);
      await waitFor(() => busyWriting, { what: 'the busy partition\'s first flush to be stuck' });
      await append(more);
      // The busy partition took its bound and waits for its write; the quiet one has all it will get.
      await waitFor(() => takenBy(aggregator) >= events.length + 20, { what: 'the busy partition at its bound' });
      clock = T0 + 30 * MINUTE_MS;
      await waitFor(async () => ((await store.partitionWatermark(quietPartition)) ?? 0) > T0 + 20 * MINUTE_MS, {
        what: 'the quiet partition\'s watermark moved on by the clock',
      });
    } finally {
      release();
    }
    await settle([aggregator]);
    await expectRollupsToEqual(store, [...events, ...more], config);
  });

  it('closes buckets by the clock in a partition whose every record retention removed before this group read any', async () => {
    // Kept no unread record and read by no group yet: two whole segments go, the partition is empty at [2048, 2048).
    log = new MemoryEventLog({ partitions: 1, maxBatchRecords: 50, retryDelayMs: 5, maxUnreadRecords: 0 });
    await append(Array.from({ length: 2_048 }, (_, i) => event('site-a', T0 - 60 * MINUTE_MS + i)));
    expect(log.partition(topic, 0).base).to.equal(2_048);
    const clock = handClock();
    const { aggregator, registry } = await startAggregator({
      now: clock.now,
    });
    await clock.moveTo(T0 + 30 * MINUTE_MS, 40);
    // Its buckets closed by the clock: an event half an hour old is past the allowed lateness.
    await append([event('site-a', T0)]);
    await settle([aggregator]);
    expect((await outcomes(registry)).late).to.equal(1);
  });

  it('sends events past the allowed lateness to the late lane and does not count them', async () => {
    const onTime = [event('site-a', T0), event('site-a', T0 + 10 * MINUTE_MS)];
    const late = event('site-a', T0 + 5_000, { id: 'late-one' });
    const after = event('site-a', T0 + 10 * MINUTE_MS + 1_000);
    const { aggregator, registry } = await startAggregator();
    await append([...onTime, late, after]);
    await settle([aggregator]);
    await expectRollupsToEqual(store, [...onTime, after], config);
    const lane = log.readAll(lateTopic);
    expect(lane.map((r) => r.headers?.id)).to.deep.equal(['late-one']);
    expect(lane[0]!.headers).to.include({ reason: 'late', 'source-topic': topic, 'source-offset': '2' });
    expect(lane[0]!.value.equals(encodeEventRecord(late))).to.equal(true);
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
    expect(rows.map((r) => [r.bucketMs, r.totals.pageviews])).to.deep.equal([[T0, 1], [T0 + 10 * MINUTE_MS, 2]]);
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
    await expectRollupsToEqual(store, counted, config);
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

    const clock = handClock();
    const gate = new RecordGate();
    const second = await startAggregator({
      log: gatedLog(log, gate.gate),
      now: clock.now,
    });
    gate.grant(0, 1);
    await waitFor(() => second.aggregator.positions().get(0) === 1, { what: 'the successor at offset 1' });
    // Stalled mid-replay for far longer than idleAdvanceMs; while held, only flush ticks read the clock.
    await clock.moveTo(T0 + 60 * MINUTE_MS, 2);
    gate.grant(0, Number.POSITIVE_INFINITY);
    await settle([second.aggregator]);
    await expectRollupsToEqual(store, events, config);
  });

  it('sends undecodable records to the dead-letter topic with a reason and carries on', async () => {
    const good = [event('site-b', T0), event('site-b', T0 + 1_000)];
    const { aggregator, registry } = await startAggregator();
    await log.append(topic, [
      toRecord(good[0]!),
      { key: 'site-b', value: Buffer.from('not json{'), timestampMs: T0 },
      { key: 'site-b', value: Buffer.from(JSON.stringify({ ...good[0]!, v: 1, id: 'no-site', site: 7 })), timestampMs: T0 },
      toRecord(good[1]!),
    ]);
    await settle([aggregator]);
    await expectRollupsToEqual(store, good, config);
    expect(log.readAll(deadLetterTopic).map((r) => r.headers?.reason)).to.deep.equal(['invalid_json', 'invalid_field:site']);
    expect((await outcomes(registry)).dead_letter).to.equal(2);
  });

  /**
   * A LiveBus that, before each notice goes out, answers the hour and the day around its buckets
   * with the query engine (the store's watermark decides the tiers) and compares with the minute
   * rows. It runs inside publish, which the flush awaits: a site's rows are written by its
   * partition's flushes alone (records are keyed by site), so nothing changes them meanwhile.
   */
  function checkingBus() {
    const retention = { minuteRetentionDays: 100_000, quarterRetentionDays: 100_000, hourRetentionDays: 100_000, dayRetentionDays: 100_000 };
    const engine = createQueryEngine({
      store, settings: configSiteSettings({}), retention, defaultTimeZone: 'UTC', maxRawScanEvents: 1, sessionTimeoutMs: config.sessionTimeoutMs, now: () => T0,
    });
    const HOUR = TIER_MS.hour;
    const DAY = TIER_MS.day;
    const result = { checked: 0, mismatches: [] as string[], tiers: new Set<string>() };
    const checking: LiveBus = {
      publish: async (notice) => {
        const from = Math.min(...notice.buckets);
        const to = Math.max(...notice.buckets) + MINUTE_MS;
        for (const [a, b] of [[Math.floor(from / HOUR) * HOUR, Math.ceil(to / HOUR) * HOUR], [Math.floor(from / DAY) * DAY, Math.ceil(to / DAY) * DAY]] as const) {
          const answer = await engine.run({ site: notice.site, metrics: ['pageviews'], date_range: { from: a, to: b } });
          const minutes = (await store.read(notice.site, 'minute', a, b)).reduce((n, r) => n + r.totals.pageviews, 0);
          result.checked++;
          for (const t of answer.meta.tiers) result.tiers.add(t);
          if (answer.totals.pageviews !== minutes) {
            result.mismatches.push(`${notice.site} [${a}, ${b}) watermark ${answer.watermark} tiers ${answer.meta.tiers.join(',')}: ${answer.totals.pageviews} vs ${minutes} in minute rows`);
          }
        }
        await bus.publish(notice);
      },
      subscribe: (site, listener) => bus.subscribe(site, listener),
      close: () => bus.close(),
    };
    return { checking, result };
  }

  it('publishes a bucket notice only once a query re-reading on it sees the new rows, whichever tiers it reads', async () => {
    const events = traffic(7, 2_000, 6, config.maxOutOfOrderMs);
    const { checking, result } = checkingBus();
    const notified = new Set<string>();
    for (const site of SITES) await bus.subscribe(site, (n) => { for (const b of n.buckets) notified.add(`${n.site}@${b}`); });
    // Frequent checkpoints (each forces a coarse roll): coarse rows exist, and trail, all along.
    const { aggregator } = await startAggregator({ bus: checking, config: { checkpointIntervalMs: 30 } });
    for (let i = 0; i < events.length; i += 500) {
      await append(events.slice(i, i + 500));
      await new Promise((r) => setTimeout(r, 40));
    }
    await settle([aggregator]);
    expect(result.checked).to.be.greaterThan(0);
    expect(result.mismatches).to.deep.equal([]);
    expect([...result.tiers]).to.include('hour');
    const want = uncrashedRows(events, config);
    expect(notified).to.deep.equal(new Set([...want].flatMap(([site, rows]) => rows.map((r) => `${site}@${r.bucketMs}`))));
  });

  it('a partition\'s first rows are not taken for final under the watermark other partitions wrote', async () => {
    // Site a's partition writes a watermark well past 11:59; then site b, on another partition,
    // sends its first events, at 11:59. The store's watermark is the lowest the partitions wrote,
    // so b's partition must write its own before its rows show, or a query takes b's hour
    // 11:00-12:00 as final and reads an hour row that was never rolled.
    const [a, b] = ['site-a', 'site-c'];
    expect(partitionForKey(a, log.partitions)).to.not.equal(partitionForKey(b, log.partitions));
    const { checking, result } = checkingBus();
    const { aggregator } = await startAggregator({ bus: checking });
    await append(Array.from({ length: 50 }, (_, i) => event(a, T0 + 10 * MINUTE_MS + i * 1_000)));
    await settle([aggregator]);
    expect(await store.watermark()).to.be.greaterThan(T0);
    await append(Array.from({ length: 20 }, (_, i) => event(b, T0 - MINUTE_MS + i * 1_000)));
    await settle([aggregator]);
    expect(result.mismatches).to.deep.equal([]);
    expect((await store.read(b, 'minute', T0 - MINUTE_MS, T0 + MINUTE_MS)).reduce((n, r) => n + r.totals.pageviews, 0)).to.equal(20);
  });
});
