/**
 * `npm run bench:aggregate-cpu`: CPU per event of the aggregator's own work, in one thread and
 * without engines: the exact records ingest appends (the project's ingest service, captured as
 * bench/pipeline.ts does) are decoded (decodeEvent) and windowed (MinuteWindows.offer), with a
 * takeFlush every FLUSH_EVERY events, as the aggregator's 1 s flushes at ~30k events/s.
 *
 * Traffic as bench:pipeline's: 16 sites, 5000 visitors a site, a pool of 200 batches × 100
 * events with event times up to 30 s before start, sent ROUNDS times with fresh ids. So buckets
 * grow big (~18k events per site-minute) and a visitor's events arrive out of event-time order
 * often — the stress case for restating visits.
 *
 * Prints, best of REPEATS passes each (after a warm-up): (a) decoding only, (b) decoding + windows
 * + flushes, in µs per event of process CPU (the steadier figure on a shared machine) and wall
 * time, and b / a. Env: AGG_BENCH_ROUNDS (sends of the pool, default
 * 15), AGG_BENCH_FLUSH_EVERY (default 30 000), AGG_BENCH_REPEATS (default 2). Run with --expose-gc
 * (as the npm script does) to also print the heap the windows hold after the warm-up pass.
 */
import { Registry } from 'prom-client';
import type { Event } from '../protocol/schema.js';
import { loadConfig } from '../src/config.js';
import { DemoTraffic, rng } from '../src/demo/demo-traffic.js';
import { decodeEvent } from '../src/aggregate/decode-event.js';
import { MinuteWindows, type WindowEvent } from '../src/aggregate/minute-windows.js';
import type { EventLog, GroupConsumer, LogRecord } from '../src/ingest/event-log.js';
import { createIngestService } from '../src/ingest/ingest-service.js';
import { machineLine } from './pipeline-support.js';

const ROUNDS = Number(process.env.AGG_BENCH_ROUNDS ?? 15);
const FLUSH_EVERY = Number(process.env.AGG_BENCH_FLUSH_EVERY ?? 30_000);
const REPEATS = Number(process.env.AGG_BENCH_REPEATS ?? 2);
const BATCH = 100;
const POOL_BATCHES = 200;
const SITES = Array.from({ length: 16 }, (_, i) => `s${i}.bench.example`);

/** As bench/pipeline.ts eventPool with timestamps: one site per batch, sites in turn, no ids. */
function eventPool(nowMs: number): Event[][] {
  const traffic = SITES.map((site, i) => new DemoTraffic({ sites: [site], seed: 1_000 + i, visitorsPerSite: 5_000 }));
  const random = rng(42);
  return Array.from({ length: POOL_BATCHES }, (_, b) => traffic[b % SITES.length]!.batch(BATCH, nowMs)
    .map(({ id: _id, timestamp: _ts, ...e }) => ({ ...e, timestamp: nowMs - Math.floor(random() * 30_000) })));
}

/** An EventLog that keeps what ingest appends. */
class CapturingLog implements EventLog {
  readonly partitions = 1;
  readonly records: LogRecord[] = [];
  async append(_topic: string, records: readonly LogRecord[]): Promise<void> {
    this.records.push(...records);
  }
  consume(): Promise<GroupConsumer> {
    throw new Error('capture only');
  }
  async close(): Promise<void> {}
}

async function records(nowMs: number): Promise<Buffer[]> {
  const config = loadConfig({});
  const pool = eventPool(nowMs);
  const capture = new CapturingLog();
  const ingest = createIngestService({ log: capture, topic: 'bench', config: config.ingest, registry: new Registry(), now: () => nowMs });
  for (let round = 0; round < ROUNDS; round++) {
    for (const batch of pool) {
      const ack = await ingest.ingest(batch, { ip: '127.0.0.1' }, 'ack');
      if (ack.accepted !== batch.length) throw new Error(`ingest rejected pool events: ${JSON.stringify(ack.rejected.slice(0, 3))}`);
    }
  }
  return capture.records.map((r) => r.value);
}

/** Wall and process CPU time (user + system, every thread: GC helpers included) of `work`. */
function timed<T>(work: () => T): { result: T; wallMs: number; cpuMs: number } {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const result = work();
  const wallMs = performance.now() - t0;
  const used = process.cpuUsage(c0);
  return { result, wallMs, cpuMs: (used.user + used.system) / 1000 };
}

function decodeOnly(values: readonly Buffer[]): number {
  let sink = 0;
  for (const value of values) {
    const d = decodeEvent(value);
    if (d.ok) sink += d.event.ts & 1;
  }
  return sink;
}

const gc = (globalThis as { gc?: () => void }).gc;

/**
 * Decodes and windows every record, flushing every FLUSH_EVERY; returns the rows flushed, the
 * wall time in flushes and, with `measureHeap` (and node --expose-gc), the heap the windows hold
 * at the end: every bucket is still open then, so it is the state of all the events.
 */
function decodeAndWindow(values: readonly Buffer[], nowMs: number, measureHeap = false): { rows: number; flushMs: number; heapBytes: number | null } {
  const heapBefore = measureHeap && gc ? (gc(), process.memoryUsage().heapUsed) : null;
  const windows = new MinuteWindows(loadConfig({}).aggregate, nowMs);
  let rows = 0;
  let flushMs = 0;
  const flush = (checkpoint: boolean) => {
    const f0 = performance.now();
    rows += windows.takeFlush(checkpoint)?.rows.length ?? 0;
    flushMs += performance.now() - f0;
  };
  for (let offset = 0; offset < values.length; offset++) {
    const d = decodeEvent(values[offset]!);
    windows.offer({ offset, event: d.ok ? (d.event as WindowEvent) : null }, nowMs);
    if ((offset + 1) % FLUSH_EVERY === 0) flush(false);
  }
  flush(true);
  const heapBytes = heapBefore !== null ? (gc!(), process.memoryUsage().heapUsed - heapBefore) : null;
  if (windows.openBuckets === 0) throw new Error('every bucket should still be open');
  return { rows, flushMs, heapBytes };
}

async function main(): Promise<void> {
  console.log(machineLine());
  // 45 s into a minute: the pool's 30 s of event times fall in one minute, so every run has
  // one bucket per site whatever the clock says.
  const nowMs = Math.floor(Date.now() / 60_000) * 60_000 + 45_000;
  const values = await records(nowMs);
  const n = values.length;
  console.log(`${n} records (${POOL_BATCHES} × ${BATCH} events × ${ROUNDS} sends, ${SITES.length} sites), a flush every ${FLUSH_EVERY} events`);
  const us = (ms: number) => ((ms * 1000) / n).toFixed(2);
  let a = { wallMs: Infinity, cpuMs: Infinity };
  let b = { wallMs: Infinity, cpuMs: Infinity, flushMs: 0 };
  for (let pass = 0; pass <= REPEATS; pass++) {
    const d = timed(() => decodeOnly(values));
    const w = timed(() => decodeAndWindow(values, nowMs, pass === 0));
    if (w.result.heapBytes !== null) console.log(`windows' heap at the end: ${(w.result.heapBytes / 2 ** 20).toFixed(0)} MiB, ${(w.result.heapBytes / n).toFixed(0)} B per event`);
    console.log(`${pass === 0 ? 'warm-up' : `pass ${pass}`}: (a) decode ${us(d.cpuMs)} µs/event cpu, ${us(d.wallMs)} wall; `
      + `(b) decode + windows ${us(w.cpuMs)} µs/event cpu, ${us(w.wallMs)} wall (flushes ${us(w.result.flushMs)} wall; ${w.result.rows} rows)`);
    if (pass === 0) continue;
    if (d.cpuMs < a.cpuMs) a = d;
    if (w.cpuMs < b.cpuMs) b = { wallMs: w.wallMs, cpuMs: w.cpuMs, flushMs: w.result.flushMs };
  }
  console.log(`best: (a) decode ${us(a.cpuMs)} µs/event cpu (${us(a.wallMs)} wall); (b) decode + windows + flushes ${us(b.cpuMs)} µs/event cpu `
    + `(${us(b.wallMs)} wall, flushes ${us(b.flushMs)}); b / a = ${(b.cpuMs / a.cpuMs).toFixed(2)} cpu, ${(b.wallMs / a.wallMs).toFixed(2)} wall`);
}

main().then(() => process.exit(0), (e: unknown) => {
  console.error(e);
  process.exit(1);
});
