/**
 * Load generator of the pipeline benchmark (bench/pipeline.ts), run in a worker thread so the
 * client has its own event loop and the main thread runs only the server side.
 *
 * It behaves like a server-side SDK: `connections` RSocket TCP connections (the project's own
 * SluiceClient), each with `inFlight` acknowledged `ingest.batch` requests outstanding at all
 * times; a new batch goes out as soon as an ack comes back. Payloads are JSON encoded once, up
 * front, so the loop measures the server, not client-side JSON. With `eventsPerSecond` set,
 * requests are paced on a fixed schedule instead (still at most `inFlight` per connection).
 *
 * Measured: events acknowledged as accepted whose ack arrived after the warm-up, divided by the
 * time from the end of the warm-up to the last ack (requests under way when the duration ends
 * are awaited and counted). Ack latency percentiles come from the same requests.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { WellKnownMimeType, encodeCompositeMetadata, encodeRoute } from 'rsocket-composite-metadata';
import { SluiceClient, SluiceClientError } from '../src/client/sluice-client.js';

export interface LoadSpec {
  readonly url: string;
  readonly apiKey: string;
  readonly connections: number;
  /** Requests outstanding per connection. */
  readonly inFlight: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  /** Pre-encoded `{"events":[…]}` request bodies, sent round-robin. */
  readonly payloads: readonly Uint8Array[];
  /** Events in each payload (same order). */
  readonly eventsPerPayload: readonly number[];
  /** Pace requests to this many events per second; unset: as fast as acks come back. */
  readonly eventsPerSecond?: number;
}

export interface LoadResult {
  readonly ok: true;
  /** Events accepted over the whole run, warm-up included. */
  readonly acceptedTotal: number;
  /** Events accepted by acks that arrived after the warm-up. */
  readonly acceptedMeasured: number;
  /** Milliseconds from the end of the warm-up to the last ack. */
  readonly measuredMs: number;
  readonly requests: number;
  readonly rejectedEvents: number;
  readonly errors: Readonly<Record<string, number>>;
  /** Ack latency of measured requests, ms. */
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number };
}

const spec = workerData as LoadSpec;
let stopped = false;
parentPort?.on('message', (m: unknown) => {
  if (m === 'stop') stopped = true;
});

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function run(): Promise<LoadResult> {
  const metadata = Buffer.from(encodeCompositeMetadata([[WellKnownMimeType.MESSAGE_RSOCKET_ROUTING, encodeRoute('ingest.batch')]]));
  const payloads = spec.payloads.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength));
  const clients = await Promise.all(Array.from({ length: spec.connections }, () => SluiceClient.connect({ url: spec.url, apiKey: spec.apiKey })));

  const start = performance.now();
  const warmEnd = start + spec.warmupMs;
  const end = start + spec.durationMs;
  // Bounded: one latency sample per request, at most this many kept (oldest overwritten).
  const latencies = new Float64Array(200_000);
  let latencyCount = 0;
  let acceptedTotal = 0;
  let acceptedMeasured = 0;
  let rejectedEvents = 0;
  let requests = 0;
  let lastAck = warmEnd;
  const errors: Record<string, number> = {};
  let next = 0;
  const intervalMs = spec.eventsPerSecond ? (1000 * (spec.eventsPerPayload.reduce((a, b) => a + b, 0) / spec.eventsPerPayload.length)) / spec.eventsPerSecond : 0;
  let nextSlot = start;

  const loop = async (client: SluiceClient): Promise<void> => {
    while (!stopped) {
      if (intervalMs > 0) {
        const slot = nextSlot;
        nextSlot += intervalMs;
        const wait = slot - performance.now();
        if (wait > 1) await sleep(wait);
      }
      if (stopped || performance.now() >= end) return;
      const i = next;
      next = (next + 1) % payloads.length;
      const sentAt = performance.now();
      requests++;
      try {
        const data = await client.requestRaw({ data: payloads[i]!, metadata });
        const ackAt = performance.now();
        const ack = JSON.parse(data!.toString('utf8')) as { accepted: number; rejected: unknown[] };
        acceptedTotal += ack.accepted;
        rejectedEvents += ack.rejected.length;
        if (ackAt >= warmEnd) {
          acceptedMeasured += ack.accepted;
          lastAck = Math.max(lastAck, ackAt);
          latencies[latencyCount++ % latencies.length] = ackAt - sentAt;
        }
      } catch (e) {
        const code = e instanceof SluiceClientError ? (e.code ?? 'TRANSPORT') : 'UNKNOWN';
        errors[code] = (errors[code] ?? 0) + 1;
        if (code === 'TRANSPORT' || code === 'UNKNOWN') throw e;
        await sleep(5); // OVERLOADED and the like: retryable, back off a little
      }
    }
  };
  await Promise.all(clients.flatMap((c) => Array.from({ length: spec.inFlight }, () => loop(c))));
  for (const c of clients) c.close();
  const kept = latencies.subarray(0, Math.min(latencyCount, latencies.length)).slice().sort();
  return {
    ok: true,
    acceptedTotal,
    acceptedMeasured,
    measuredMs: lastAck - warmEnd,
    requests,
    rejectedEvents,
    errors,
    latencyMs: { p50: percentile(kept, 0.5), p99: percentile(kept, 0.99), max: kept.length ? kept[kept.length - 1]! : Number.NaN },
  };
}

run().then(
  (result) => parentPort?.postMessage(result),
  (e: unknown) => parentPort?.postMessage({ ok: false, error: e instanceof Error ? e.stack ?? e.message : String(e) }),
);
