/**
 * Freshness probe of the pipeline benchmark (bench/pipeline.ts), in its own worker thread so its
 * clock readings are not delayed by the server's event loop.
 *
 * A dashboard connection over WebSocket subscribes to `live.metrics` for a probe site nobody
 * else writes to (requesting a large n, so the server never waits for demand). A source
 * connection over TCP sends one probe pageview every `intervalMs`, with timestamp = send time,
 * as an acknowledged `ingest.batch` of one event (not awaited before the next probe). Probe k
 * (1-based) is fresh when the first live message whose totals.pageviews ≥ k arrives; its
 * freshness is that arrival time minus its send time. All times are read in this thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Event, LiveMessage } from '../protocol/schema.js';
import { SluiceClient } from '../src/client/sluice-client.js';

export interface ProbeSpec {
  readonly tcpUrl: string;
  readonly wsUrl: string;
  readonly apiKey: string;
  readonly site: string;
  readonly durationMs: number;
  readonly intervalMs: number;
  readonly windowMinutes: number;
  /** After the last probe, how long to wait for the live stream to show it. */
  readonly graceMs: number;
  readonly userAgent: string;
}

export interface ProbeResult {
  readonly ok: true;
  readonly sent: number;
  readonly acked: number;
  readonly ackErrors: number;
  /** Freshness (ms) of each probe seen in the live stream, in send order. */
  readonly freshnessMs: number[];
  /** Ack latency (ms) of each acknowledged probe. */
  readonly ackMs: number[];
  readonly liveMessages: number;
  readonly snapshotPageviews: number;
}

const spec = workerData as ProbeSpec;
let stopped = false;
parentPort?.on('message', (m: unknown) => {
  if (m === 'stop') stopped = true;
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function run(): Promise<ProbeResult> {
  const dashboard = await SluiceClient.connect({ url: spec.wsUrl, apiKey: spec.apiKey });
  const source = await SluiceClient.connect({ url: spec.tcpUrl, apiKey: spec.apiKey });
  const sentAt: number[] = [];
  const freshnessMs: number[] = [];
  const ackMs: number[] = [];
  let acked = 0;
  let ackErrors = 0;
  let seen = 0; // probes already matched by a live message
  let liveMessages = 0;
  let snapshot: LiveMessage | undefined;
  let streamError: Error | undefined;

  const stream = dashboard.stream<LiveMessage>('live.metrics', { site: spec.site, windowMinutes: spec.windowMinutes }, 2_147_483_647, {
    next(m) {
      const at = performance.now();
      liveMessages++;
      snapshot ??= m;
      const pv = m.totals.pageviews;
      while (seen < pv && seen < sentAt.length) {
        freshnessMs.push(at - sentAt[seen]!);
        seen++;
      }
    },
    error(e) {
      streamError = e;
    },
  });
  const snapDeadline = performance.now() + 15_000;
  while (!snapshot && !streamError && performance.now() < snapDeadline) await sleep(10);
  if (!snapshot) throw streamError ?? new Error('no live snapshot within 15 s');
  if (snapshot.totals.pageviews !== 0) throw new Error(`probe site ${spec.site} is not fresh: its snapshot has ${snapshot.totals.pageviews} pageviews`);
  parentPort?.postMessage({ ready: true });

  const start = performance.now();
  let k = 0;
  while (!stopped && performance.now() - start < spec.durationMs) {
    const slot = start + k * spec.intervalMs;
    const wait = slot - performance.now();
    if (wait > 0) await sleep(wait);
    const now = Date.now();
    const event: Event = {
      type: 'pageview', site: spec.site, url: `https://${spec.site}/probe/${k % 10}`, timestamp: now,
      visitor: `probe-visitor-${k % 50}`, userAgent: spec.userAgent, ip: '198.51.100.7',
    };
    const t = performance.now();
    sentAt.push(t);
    k++;
    source.sendBatch([event]).then((ack) => {
      if (ack.accepted === 1) {
        acked++;
        ackMs.push(performance.now() - t);
      } else {
        ackErrors++;
      }
    }, () => {
      ackErrors++;
    });
  }
  const graceEnd = performance.now() + spec.graceMs;
  while (!stopped && seen < sentAt.length && performance.now() < graceEnd) await sleep(20);
  stream.cancel();
  source.close();
  dashboard.close();
  if (streamError) throw streamError;
  return { ok: true, sent: sentAt.length, acked, ackErrors, freshnessMs, ackMs, liveMessages, snapshotPageviews: snapshot.totals.pageviews };
}

run().then(
  (result) => parentPort?.postMessage(result),
  (e: unknown) => parentPort?.postMessage({ ok: false, error: e instanceof Error ? e.stack ?? e.message : String(e) }),
);
