/**
 * `npm run bench:query`: query latency over Cassandra holding the rollups of 10 million events
 * (issue 4). Prints p50 and p99 of
 *   - a 30-day hourly series,
 *   - a 12-month daily series,
 *   - a top-10 page breakdown over 30 days,
 * each uncached (the query engine over the Cassandra RollupStore) and cached (through the Redis
 * query cache), beside a baseline run in the same process on the same rows: the bare store read
 * of exactly the rows and parts the engine plans (what no engine can avoid), so `ratio` =
 * engine / bare read; and, for scale, the read of the same rows whole (every dimension: what a
 * read cost before reads named their parts; fewer iterations, it is slow by design).
 * Aims: p99 ≤ 50 ms uncached and ≤ 5 ms cached.
 *
 * Loading: the events are generated (seeded), rolled up by the aggregator's own code
 * (MinuteWindows for minute rows, mergeRollups for the coarser tiers) and written to a keyspace
 * of their own, once: a marker checkpoint names the event count, so later runs reuse the data
 * (BENCH_RELOAD=1 loads again). A load first empties the rollup tables of that keyspace (its own),
 * so no row of an earlier load (another size, another day) stays beside the new ones. Minute
 * rows older than their retention are dropped by the store
 * as in production, so old months are served from quarter, hour and day rows. A day's rows are
 * written while the next day's are built (one write in flight), so loading takes the larger of
 * the two costs, not their sum.
 *
 * Environment: BENCH_EVENTS (default 10,000,000), BENCH_DAYS (400), BENCH_ITERATIONS (200),
 * BENCH_RELOAD, BENCH_KEYSPACE (default sluice_bench_query: keep loads of several sizes apart).
 * Needs the local stack (started when absent, like the tests).
 */
import { randomUUID } from 'node:crypto';
import cassandra from 'cassandra-driver';
import { performance } from 'node:perf_hooks';
import type { QueryRequest } from '../protocol/query-schema.js';
import { CassandraRollupStore } from '../src/adapters/cassandra/cassandra-rollup-store.js';
import { applyMigrations } from '../src/adapters/cassandra/migrations.js';
import { RedisQueryCache } from '../src/adapters/redis/redis-query-cache.js';
import { MinuteWindows, type WindowEvent } from '../src/aggregate/minute-windows.js';
import { mergeRollups } from '../src/aggregate/rollup-merge.js';
import { TIER_MS, TIERS, type Rollup, type Tier } from '../src/aggregate/rollup.js';
import { rng } from '../src/demo/demo-traffic.js';
import { createQueryService } from '../src/query/query-service.js';
import { goalScope, partsOf } from '../src/query/rollup-reader.js';
import { envNumber, int, machineLine, percentile, stackUp } from './pipeline-support.js';

const DAY_MS = 86_400_000;
const SITE = 'bench-query.example';
const KEYSPACE = process.env.BENCH_KEYSPACE ?? 'sluice_bench_query';
const MAX_KEYS = 200;
/** A partition number no event log has: the marker never meets a real checkpoint. */
const MARKER_PARTITION = 999_999;

const EVENTS = envNumber('BENCH_EVENTS', 10_000_000);
const DAYS = envNumber('BENCH_DAYS', 400);
const ITERATIONS = envNumber('BENCH_ITERATIONS', 200);

const PAGES = Array.from({ length: 150 }, (_, i) => (i === 0 ? '/' : `/section-${i % 12}/page-${i}`));
const SOURCES: Array<[string, string, string]> = [
  ['Direct / None', 'direct', ''], ['Google', 'organic_search', 'google.com'], ['Bing', 'organic_search', 'bing.com'],
  ['Facebook', 'social', 'facebook.com'], ['Newsletter', 'email', ''], ['news.example', 'referral', 'news.example'],
];
const BROWSERS: Array<[string, string, string, string, WindowEvent['device']]> = [
  ['Chrome', '124.0', 'Windows', '10', 'desktop'], ['Safari', '17.4', 'iOS', '17.4', 'mobile'], ['Firefox', '125.0', 'Linux', '', 'desktop'],
  ['Chrome', '124.0', 'Android', '14', 'mobile'], ['Edge', '124.0', 'Windows', '11', 'desktop'],
];
const COUNTRIES = ['US', 'DE', 'FR', 'IN', 'GB', 'BR', 'JP', 'NP'];

/** One day of events in time order: visitors with visits of 1–6 events a minute or three apart. */
function dayEvents(dayMs: number, count: number, random: () => number): WindowEvent[] {
  const out: WindowEvent[] = [];
  let n = 0;
  while (out.length < count) {
    const visitor = `v${Math.floor(random() * count * 0.4)}`;
    const [browser, bv, os, ov, device] = BROWSERS[Math.floor(random() * BROWSERS.length)]!;
    const [source, channel, referrerHost] = SOURCES[Math.floor(random() * SOURCES.length)]!;
    const country = COUNTRIES[Math.floor(random() * COUNTRIES.length)]!;
    // Diurnal: more traffic in the afternoon (UTC).
    let t = dayMs + Math.floor(Math.abs(Math.sin(random() * Math.PI)) * (DAY_MS - 3_600_000));
    const events = 1 + Math.floor(random() * 6);
    for (let i = 0; i < events && out.length < count; i++) {
      const custom = random() < 0.1;
      out.push({
        id: `e${dayMs}-${n++}`, site: SITE, type: custom ? 'event' : 'pageview', name: custom ? 'signup' : 'pageview', ts: t,
        host: 'bench-query.example', path: PAGES[Math.floor(random() ** 2 * PAGES.length)]!, referrerHost, source, channel: channel as WindowEvent['channel'],
        utm: { source: null, medium: null, campaign: random() < 0.05 ? 'spring' : null, term: null, content: null },
        browser, browserVersion: bv, os, osVersion: ov, device, screen: { width: device === 'mobile' ? 390 : 1920, height: 900 },
        country, region: null, city: null, visitorId: visitor, bot: false, props: custom ? { plan: random() < 0.5 ? 'pro' : 'free' } : {},
        revenue: custom && random() < 0.2 ? { amount: 49, currency: 'EUR' } : null,
      });
      t += 20_000 + Math.floor(random() * 180_000);
    }
  }
  return out.sort((a, b) => a.ts - b.ts || (a.id < b.id ? -1 : 1));
}

function coarser(rows: readonly Rollup[], tier: Tier): Rollup[] {
  const groups = new Map<number, Rollup[]>();
  for (const r of rows) {
    const b = Math.floor(r.bucketMs / TIER_MS[tier]) * TIER_MS[tier];
    const g = groups.get(b);
    if (g) g.push(r);
    else groups.set(b, [r]);
  }
  return [...groups].sort((a, b) => a[0] - b[0]).map(([b, g]) => mergeRollups(g, SITE, tier, b, MAX_KEYS));
}

async function load(store: CassandraRollupStore, firstDayMs: number): Promise<void> {
  const random = rng(20261122);
  const perDay = Math.ceil(EVENTS / DAYS);
  const started = performance.now();
  let written = 0;
  let writing: Promise<void> = Promise.resolve();
  for (let d = 0; d < DAYS; d++) {
    const dayMs = firstDayMs + d * DAY_MS;
    const windows = new MinuteWindows({ maxOutOfOrderMs: 0, allowedLatenessMs: DAY_MS, idleAdvanceMs: DAY_MS, maxBreakdownKeys: MAX_KEYS, sessionTimeoutMs: 1_800_000 }, 0);
    const events = dayEvents(dayMs, Math.min(perDay, EVENTS - written), random);
    events.forEach((event, offset) => windows.offer({ offset, event }, 0));
    const minutes = windows.takeFlush()?.rows ?? [];
    const quarters = coarser(minutes, 'quarter');
    const hours = coarser(quarters, 'hour');
    const days = coarser(hours, 'day');
    // The previous day's write overlapped this day's building; at most one write in flight.
    await writing;
    writing = store.upsert([...minutes, ...quarters, ...hours, ...days]);
    written += events.length;
    if (d % 20 === 0 || d === DAYS - 1) {
      if (d === DAYS - 1) await writing;
      const rate = written / ((performance.now() - started) / 1000);
      process.stdout.write(`  loaded ${int(written)} events (${d + 1}/${DAYS} days, ${int(rate)} events/s)\n`);
    }
  }
  await writing;
  process.stdout.write(`loaded in ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
}

/** Empties the bench keyspace's rollup tables: a load must leave exactly its own rows. */
async function emptyRollupTables(connection: { contactPoints: string[]; localDataCenter: string; keyspace: string }): Promise<void> {
  const client = new cassandra.Client({ contactPoints: connection.contactPoints, localDataCenter: connection.localDataCenter });
  try {
    await client.connect();
    for (const tier of TIERS) await client.execute(`TRUNCATE ${connection.keyspace}.rollup_parts_${tier}`);
  } finally {
    await client.shutdown();
  }
}

interface Measured { p50: number; p99: number }

async function measure(fn: () => Promise<unknown>, iterations = ITERATIONS): Promise<Measured> {
  for (let i = 0; i < Math.min(20, iterations); i++) await fn(); // warm-up: JIT, prepared statements, connections
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t = performance.now();
    await fn();
    times.push(performance.now() - t);
  }
  return { p50: percentile(times, 0.5), p99: percentile(times, 0.99) };
}

const f = (msValue: number) => `${msValue.toFixed(msValue < 10 ? 2 : 1)} ms`;

async function main(): Promise<void> {
  process.stdout.write(`bench:query — ${machineLine()}\n`);
  const stack = await stackUp(() => {});
  process.stdout.write(`stack: started ${stack.started.join(', ') || 'nothing'}; reused ${stack.reused.join(', ') || 'nothing'}\n`);
  const connection = { contactPoints: ['127.0.0.1:9042'], localDataCenter: 'datacenter1', keyspace: KEYSPACE };
  await applyMigrations({ ...connection, replication: { class: 'SimpleStrategy', replicationFactor: 1 } });
  const store = await CassandraRollupStore.connect({ ...connection, consistency: 'LOCAL_ONE' });
  const cache = new RedisQueryCache({ connection: { host: '127.0.0.1', port: 6379 }, keyPrefix: `sluice-bench-query-${randomUUID().slice(0, 6)}:` });
  try {
    const today = Math.floor(Date.now() / DAY_MS) * DAY_MS;
    const firstDayMs = today - DAYS * DAY_MS;
    const marker = `loaded-parts:${EVENTS}:${DAYS}:${firstDayMs}`;
    if (process.env.BENCH_RELOAD === '1' || (await store.loadCheckpoint(MARKER_PARTITION, marker)) === null) {
      process.stdout.write(`loading ${int(EVENTS)} events over ${DAYS} days into ${KEYSPACE}…\n`);
      await emptyRollupTables(connection);
      await load(store, firstDayMs);
      await store.saveCheckpoint(MARKER_PARTITION, marker, Buffer.from(new Date().toISOString()));
    } else {
      process.stdout.write(`reusing the rollups of ${int(EVENTS)} events in ${KEYSPACE} (BENCH_RELOAD=1 to load again)\n`);
    }
    await store.setWatermark(0, today);

    const uncached = createQueryService({ store });
    const cached = createQueryService({ store, cache });
    const to = today;
    const queries: Array<[string, QueryRequest]> = [
      ['30-day hourly series', { site: SITE, metrics: ['visitors', 'pageviews', 'visits', 'bounce_rate', 'visit_duration'], date_range: { from: to - 30 * DAY_MS, to }, interval: 'hour', time_zone: 'UTC' }],
      ['12-month daily series', { site: SITE, metrics: ['visitors', 'pageviews', 'visits', 'bounce_rate'], date_range: { from: to - 365 * DAY_MS, to }, interval: 'day', time_zone: 'UTC' }],
      ['top-10 pages, 30 days', { site: SITE, metrics: ['visitors', 'pageviews'], dimensions: ['page'], date_range: { from: to - 30 * DAY_MS, to }, time_zone: 'UTC', limit: 10 }],
    ];
    const wholeIterations = Math.min(ITERATIONS, 20);
    process.stdout.write(`\n${ITERATIONS} iterations each (after warm-up; whole-row reads ${wholeIterations}); aims: p99 ≤ 50 ms uncached, ≤ 5 ms cached\n`);
    process.stdout.write(`${'query'.padEnd(24)} ${'whole rows p50/p99'.padEnd(22)} ${'bare read p50/p99'.padEnd(22)} ${'uncached p50/p99'.padEnd(22)} ${'ratio p50'.padEnd(10)} ${'cached p50/p99'.padEnd(20)} aims\n`);
    for (const [name, q] of queries) {
      const plannedTiers = (await uncached.run(q)).meta.tiers as Tier[];
      const spec = await uncached.spec(q);
      const parts = partsOf(spec, goalScope(spec));
      const range = q.date_range as { from: number; to: number };
      const whole = await measure(() => Promise.all(plannedTiers.map((t) => store.read(SITE, t, range.from, range.to))), wholeIterations);
      const bare = await measure(() => Promise.all(plannedTiers.map((t) => store.read(SITE, t, range.from, range.to, parts))));
      const cold = await measure(() => uncached.run(q));
      await cached.run(q);
      const warm = await measure(() => cached.run(q));
      const ok = cold.p99 <= 50 && warm.p99 <= 5;
      process.stdout.write(`${name.padEnd(24)} ${`${f(whole.p50)} / ${f(whole.p99)}`.padEnd(22)} ${`${f(bare.p50)} / ${f(bare.p99)}`.padEnd(22)} ${`${f(cold.p50)} / ${f(cold.p99)}`.padEnd(22)} `
        + `${(cold.p50 / bare.p50).toFixed(2).padEnd(10)} ${`${f(warm.p50)} / ${f(warm.p99)}`.padEnd(20)} ${ok ? 'met' : 'NOT met'} (tiers ${plannedTiers.join('+')}; parts head${parts.dims.map((d) => `+${d}`).join('')})\n`);
    }
  } finally {
    await cache.close();
    await store.close();
  }
}

main().then(() => process.exit(0), (e: unknown) => {
  process.stderr.write(`bench:query failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
