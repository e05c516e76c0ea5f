/**
 * The event tap beside a real aggregator on the memory event log: every record archived with its
 * position, late-lane records turned into late marks, so the archive (and the raw path over it)
 * counts exactly what the rollups count.
 */
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { Registry } from 'prom-client';
import { rawEvent } from '../../test/contract/raw-archive.contract.js';
import { waitFor } from '../../test/support/wait-for.js';
import { MemoryCurrentVisitors } from '../adapters/memory/memory-current-visitors.js';
import { MemoryEventLog } from '../adapters/memory/memory-event-log.js';
import { MemoryLiveBus } from '../adapters/memory/memory-live-bus.js';
import { MemoryLogPositions } from '../adapters/memory/memory-log-positions.js';
import { MemoryRawArchive } from '../adapters/memory/memory-raw-archive.js';
import { MemoryRollupStore } from '../adapters/memory/memory-rollup-store.js';
import { loadConfig } from '../config.js';
import type { EnrichedEvent } from '../ingest/enriched-event.js';
import type { EventLog, LogRecord } from '../ingest/event-log.js';
import { encodeEventRecord } from '../ingest/event-record.js';
import { createQueryEngine } from '../query/query-engine.js';
import { configSiteSettings } from '../query/site-settings.js';
import { Aggregator } from './aggregator.js';
import { EventTap } from './event-tap.js';
import type { ArchivedEvent } from './raw-archive.js';

const T0 = Date.UTC(2024, 0, 1, 12, 0, 0);
const MINUTE = 60_000;
const SITE = 'tap.example';

const toRecord = (e: EnrichedEvent): LogRecord => ({ key: e.site, value: encodeEventRecord(e), timestampMs: e.ts, headers: { id: e.id } });

async function lateness(archive: MemoryRawArchive): Promise<Array<[string, boolean]>> {
  const out: Array<[string, boolean]> = [];
  for await (const e of archive.read(SITE, T0 - 3_600_000, T0 + 3_600_000) as AsyncIterable<ArchivedEvent>) out.push([e.id, e.late === true]);
  return out;
}

async function outcomes(registry: Registry): Promise<Record<string, number>> {
  const metric = await registry.getSingleMetric('sluice_event_tap_records_total')!.get();
  return Object.fromEntries(metric.values.map((v) => [String(v.labels.outcome), v.value]));
}

describe('EventTap', function () {
  this.timeout(30_000);
  let log: MemoryEventLog;
  let archive: MemoryRawArchive;
  let topic: string;
  let lateTopic: string;
  const stops: Array<() => Promise<void>> = [];

  beforeEach(() => {
    log = new MemoryEventLog({ partitions: 2, maxBatchRecords: 3, retryDelayMs: 5 });
    archive = new MemoryRawArchive({ retentionMs: null });
    topic = `events-${randomUUID()}`;
    lateTopic = `late-${randomUUID()}`;
  });
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
    await log.close();
  });

  async function startTap(withLateTopic: boolean, via: EventLog = log): Promise<Registry> {
    const registry = new Registry();
    const tap = new EventTap({
      log: via, topic, ...(withLateTopic ? { lateTopic } : {}), groupId: `tap-${randomUUID()}`, archive,
      currentVisitors: new MemoryCurrentVisitors({ now: () => T0 }), registry,
    });
    await tap.start();
    stops.push(() => tap.stop());
    return registry;
  }

  it('marks what the aggregator sent to the late lane; a late retry of a counted event stays counted; filters then agree with the rollups', async () => {
    const store = new MemoryRollupStore();
    const config = loadConfig({ aggregate: { maxOutOfOrderMs: 5_000, allowedLatenessMs: MINUTE, flushIntervalMs: 10, groupId: `agg-${randomUUID()}` } }).aggregate;
    const aggregator = new Aggregator({
      log, positions: new MemoryLogPositions(log), store, bus: new MemoryLiveBus(), topic, lateTopic, deadLetterTopic: `dead-${randomUUID()}`, config, registry: new Registry(),
      // A clock that stands still: lateness comes from event times alone.
      now: () => T0,
    });
    await aggregator.start();
    stops.push(() => aggregator.stop());
    const registry = await startTap(true);

    const first = rawEvent(SITE, 'first', T0, { path: '/a' });
    const jump = rawEvent(SITE, 'jump', T0 + 10 * MINUTE, { path: '/b' });
    const offline = rawEvent(SITE, 'offline', T0 + 5_000, { path: '/c', visitorId: 'f'.repeat(32) });
    const after = rawEvent(SITE, 'after', T0 + 10 * MINUTE + 1_000, { path: '/a' });
    // `first` again after its bucket closed (a client retry): late in the lane, yet counted once.
    await log.append(topic, [first, jump, offline, first, after].map(toRecord));

    await waitFor(() => aggregator.positions().get(log.readAll(topic)[0]!.partition) === 5, { what: 'the aggregator took every record' });
    await aggregator.flushNow();
    expect(log.readAll(lateTopic).map((r) => r.headers?.id)).to.deep.equal(['offline', 'first']);
    await waitFor(async () => (await outcomes(registry)).late_marked === 2, { what: 'the tap marked both late-lane records' });
    await waitFor(async () => (await outcomes(registry)).archived === 5, { what: 'the tap archived every record' });
    expect(await lateness(archive)).to.deep.equal([['first', false], ['offline', true], ['jump', false], ['after', false]]);

    const engine = createQueryEngine({
      store, archive, retention: { minuteRetentionDays: 1e5, quarterRetentionDays: 1e5, hourRetentionDays: 1e5, dayRetentionDays: 1e5 },
      settings: configSiteSettings({}), defaultTimeZone: 'UTC', maxRawScanEvents: 1_000, sessionTimeoutMs: config.sessionTimeoutMs, now: () => T0 + 86_400_000,
    });
    const question = { site: SITE, metrics: ['visitors', 'visits', 'pageviews', 'bounce_rate', 'visit_duration'] as const, date_range: { from: '2024-01-01', to: '2024-01-01' } };
    const rollups = await engine.run({ ...question, metrics: [...question.metrics] });
    const filtered = await engine.run({ ...question, metrics: [...question.metrics], filters: [{ dimension: 'browser', op: 'is', value: 'Firefox' }] });
    expect(filtered.meta.raw_archive_scanned).to.equal(true);
    expect(rollups.totals.pageviews).to.equal(3);
    expect(filtered.totals).to.deep.equal(rollups.totals);
  });

  it('without a late topic (the default), consumes only the event topic and marks nothing late', async () => {
    const consumed: string[] = [];
    const spy: EventLog = {
      partitions: log.partitions,
      append: (t, records) => log.append(t, records),
      consume: (options) => {
        consumed.push(options.topic);
        return log.consume(options);
      },
      close: () => log.close(),
    };
    const registry = await startTap(false, spy);
    expect(consumed).to.deep.equal([topic]);
    const e = rawEvent(SITE, 'e', T0);
    await log.append(topic, [toRecord(e)]);
    await log.append(lateTopic, [{ ...toRecord(e), headers: { reason: 'late', 'source-topic': topic, 'source-partition': '0', 'source-offset': '0' } }]);
    await waitFor(async () => (await outcomes(registry)).archived === 1, { what: 'archived' });
    expect(await lateness(archive)).to.deep.equal([['e', false]]);
    expect((await outcomes(registry)).late_marked ?? 0).to.equal(0);
  });

  it('skips late-lane records of another topic or reason, or without a readable event or position, and moves on', async () => {
    const registry = await startTap(true);
    const e = rawEvent(SITE, 'marked', T0);
    await log.append(topic, [toRecord(e)]);
    await waitFor(async () => (await outcomes(registry)).archived === 1, { what: 'archived' });
    const position = log.readAll(topic)[0]!;
    const lane = (headers: Record<string, string>, value = encodeEventRecord(e)): LogRecord => ({ key: SITE, value, timestampMs: e.ts, headers });
    const good = { reason: 'late', 'source-topic': topic, 'source-partition': String(position.partition), 'source-offset': String(position.offset) };
    await log.append(lateTopic, [
      lane({ ...good, 'source-topic': 'another.topic' }),
      lane({ ...good, reason: 'dead-letter' }),
      lane({ ...good, 'source-offset': '' }),
      lane({ ...good, 'source-partition': '-1' }),
      lane(good, Buffer.from('not an event')),
      lane(good),
    ]);
    await waitFor(async () => (await outcomes(registry)).late_marked === 1, { what: 'the one readable mark' });
    expect(await outcomes(registry)).to.include({ late_ignored: 2, late_unreadable: 3 });
    expect(await lateness(archive)).to.deep.equal([['marked', true]]);
  });
});
