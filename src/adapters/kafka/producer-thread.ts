/**
 * ProducerThread: KafkaEventLog's kafkajs producer, run in a worker thread (producer-worker.ts).
 *
 * Why a thread: in bench:pipeline the gateway is CPU-bound on its one event loop (event-loop
 * utilisation 0.98), and kafkajs's produce work (record encoding, request building) is about 70%
 * of that thread's CPU (profile of the gateway scenario). In a worker it runs on another core,
 * beside the gateway's own work (RSocket, parse, validate, enrich, encode). Measured after: the
 * gateway's event loop at 0.67–0.77, total CPU per event 5–15% higher (the hop), and throughput
 * on the 2-core bench machine (shared with Kafka and Cassandra) unchanged within its noise; the
 * gain is headroom on the gateway's event loop, and a second core where a host has one free.
 *
 * What crosses the thread boundary, per append: one message with the records already grouped by
 * partition (partitioning stays with the caller), every value packed into one fresh ArrayBuffer
 * that is transferred, not cloned (values are views into larger buffers: cloning a view clones
 * its whole buffer), and keys, timestamps and headers as arrays. The worker makes one produce
 * call per partition, as KafkaEventLog.append did in-process, and answers once every call has
 * settled, with the first failure as plain data (name, message, retriable, type, code, down the
 * cause chain) that `fromErrorData` rebuilds into errors toKafkaEventLogError reads as it read
 * kafkajs's own.
 *
 * Lifecycle: `start` spawns the worker and resolves once its producer is connected (a failed
 * connect ends that worker; the next `start` tries a new one). If the worker dies, the appends
 * in it fail with a retryable error and the next `send` starts a new one. `close` waits for the
 * appends under way, disconnects the producer and ends the worker.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { LogEntry } from 'kafkajs';
import type { LogRecord } from '../../ingest/event-log.js';
import { KafkaEventLogError } from './kafka-event-log-error.js';

/** What the worker needs to build its kafkajs client and producer (structured-cloneable). */
export interface ProducerWorkerSettings {
  readonly clientId: string;
  readonly brokers: readonly string[];
  readonly connectionTimeout: number;
  readonly requestTimeout: number;
  readonly retry: { readonly retries: number; readonly initialRetryTime: number; readonly maxRetryTime: number };
  /** kafkajs logLevel: the worker only sends the lines this lets through. */
  readonly logLevel: number;
  readonly maxInFlightRequests?: number;
  /** Per produce call: the leader's wait for the in-sync replicas (acks = -1), and kafkajs CompressionTypes. */
  readonly ackTimeoutMs: number;
  readonly compression: number;
}

/** One partition's records of an append; value i is bytes [ends[i - 1] (or start), ends[i]) of the append's buffer. */
export interface PartitionBatch {
  readonly partition: number;
  readonly start: number;
  readonly ends: number[];
  readonly keys: string[];
  /** Event time, ms since the epoch, as the decimal string kafkajs sends. */
  readonly timestamps: string[];
  /** Per record; null when no record of the batch has headers. */
  readonly headers: Array<Readonly<Record<string, string>> | undefined> | null;
}

export interface PackedAppend {
  readonly bytes: ArrayBuffer;
  readonly batches: PartitionBatch[];
}

export type ToWorker =
  | { readonly type: 'send'; readonly id: number; readonly topic: string; readonly bytes: ArrayBuffer; readonly batches: PartitionBatch[] }
  | { readonly type: 'close' };

/** A kafkajs log call, as kafkajs's logCreator receives it. */
export type WorkerLogEntry = LogEntry;

export type FromWorker =
  | { readonly type: 'connected' }
  | { readonly type: 'connect-failed'; readonly error: ErrorData }
  | { readonly type: 'sent'; readonly id: number; readonly error?: ErrorData }
  | { readonly type: 'closed' }
  | { readonly type: 'log'; readonly entry: WorkerLogEntry };

/** A kafkajs error as data: what toKafkaEventLogError reads (name, message, retriable, type, cause). */
export interface ErrorData {
  readonly name: string;
  readonly message: string;
  readonly retriable?: boolean;
  readonly type?: string;
  readonly code?: number;
  readonly cause?: ErrorData;
}

export function toErrorData(e: unknown, depth = 0): ErrorData {
  if (typeof e !== 'object' || e === null) return { name: 'Error', message: String(e) };
  const x = e as { name?: unknown; message?: unknown; retriable?: unknown; type?: unknown; code?: unknown; cause?: unknown };
  return {
    name: typeof x.name === 'string' ? x.name : 'Error',
    message: typeof x.message === 'string' ? x.message : String(e),
    ...(typeof x.retriable === 'boolean' ? { retriable: x.retriable } : {}),
    ...(typeof x.type === 'string' ? { type: x.type } : {}),
    ...(typeof x.code === 'number' ? { code: x.code } : {}),
    ...(x.cause !== undefined && x.cause !== null && depth < 10 ? { cause: toErrorData(x.cause, depth + 1) } : {}),
  };
}

/** An Error chain equivalent to the serialised one, for toKafkaEventLogError. */
export function fromErrorData(d: ErrorData): Error {
  const error = new Error(d.message, d.cause ? { cause: fromErrorData(d.cause) } : undefined);
  error.name = d.name;
  return Object.assign(error, {
    ...(d.retriable !== undefined ? { retriable: d.retriable } : {}),
    ...(d.type !== undefined ? { type: d.type } : {}),
    ...(d.code !== undefined ? { code: d.code } : {}),
  });
}

/**
 * Packs records grouped by partition: one copy of every value into a fresh ArrayBuffer (which can
 * then be transferred), each partition's values contiguous. Throws on a timestamp that is not a number.
 */
export function packRecords(byPartition: ReadonlyMap<number, readonly LogRecord[]>): PackedAppend {
  let total = 0;
  for (const records of byPartition.values()) for (const r of records) total += r.value.byteLength;
  const bytes = new ArrayBuffer(total);
  const view = new Uint8Array(bytes);
  const batches: PartitionBatch[] = [];
  let offset = 0;
  for (const [partition, records] of byPartition) {
    const batch: PartitionBatch = { partition, start: offset, ends: [], keys: [], timestamps: [], headers: null };
    let headers: Array<Readonly<Record<string, string>> | undefined> | null = null;
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      if (!Number.isFinite(r.timestampMs)) throw new RangeError(`record timestamp ${r.timestampMs} is not a number of ms`);
      view.set(r.value, offset);
      offset += r.value.byteLength;
      batch.ends.push(offset);
      batch.keys.push(r.key);
      // CreateTime = event time, so the log can be searched and replayed by event time.
      batch.timestamps.push(String(Math.trunc(r.timestampMs)));
      if (r.headers) {
        headers ??= new Array<Readonly<Record<string, string>> | undefined>(records.length).fill(undefined);
        headers[i] = r.headers;
      }
    }
    batches.push(headers ? { ...batch, headers } : batch);
  }
  return { bytes, batches };
}

/**
 * A worker running producer-worker beside this file: the .js from dist/; run from source (tests
 * under `--import tsx`), the .ts, through tsx's loader registered in the worker, since a worker's
 * entry module does not go through the tsx hooks of the thread that starts it.
 */
function newWorker(workerData: ProducerWorkerSettings): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./producer-worker.js', import.meta.url), { workerData });
  const entry = new URL('./producer-worker.ts', import.meta.url).href;
  // tsx's ESM API (its `import` export; `require` finds the .cjs one beside it).
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
  const boot = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(boot, { eval: true, workerData });
}

interface Pending {
  resolve(): void;
  reject(e: unknown): void;
}

export class ProducerThread {
  private starting: Promise<Worker> | undefined;
  private readonly pending = new Map<number, Pending>();
  private readonly inFlight = new Set<Promise<void>>();
  private nextId = 0;
  private closed = false;

  /** `onLog` receives kafkajs's log lines from the worker. */
  constructor(private readonly settings: ProducerWorkerSettings, private readonly onLog: (entry: WorkerLogEntry) => void) {}

  /** Spawns the worker and connects its producer, once; a failed attempt is forgotten so the next call tries again. */
  start(): Promise<void> {
    return this.worker().then(() => undefined);
  }

  private worker(): Promise<Worker> {
    if (this.closed) return Promise.reject(new KafkaEventLogError('the Kafka producer is closed', false));
    this.starting ??= this.spawn();
    return this.starting;
  }

  private spawn(): Promise<Worker> {
    const attempt = new Promise<Worker>((resolve, reject) => {
      const worker = newWorker(this.settings);
      let connected = false;
      let failure: unknown;
      worker.on('message', (m: FromWorker) => {
        switch (m.type) {
          case 'connected':
            connected = true;
            resolve(worker);
            break;
          case 'connect-failed':
            failure = fromErrorData(m.error);
            void worker.terminate();
            break;
          case 'sent': {
            const p = this.pending.get(m.id);
            this.pending.delete(m.id);
            if (m.error) p?.reject(fromErrorData(m.error));
            else p?.resolve();
            break;
          }
          case 'log':
            this.onLog(m.entry);
            break;
          case 'closed':
            break;
        }
      });
      // An uncaught exception in the worker: reported here (never thrown in this thread), then 'exit'.
      worker.on('error', (e) => {
        failure = e;
      });
      worker.on('exit', (code) => {
        if (this.starting === attempt) this.starting = undefined;
        if (!connected) {
          reject(failure ?? new KafkaEventLogError(`the Kafka producer thread exited (code ${code}) before connecting`, true));
          return;
        }
        if (this.pending.size === 0) return;
        // The appends it held may or may not have been written: retryable, as a lost acknowledgement.
        const why = new KafkaEventLogError(
          `the Kafka producer thread stopped (exit code ${code}${failure instanceof Error ? `: ${failure.message}` : ''}); a new one starts with the next append`,
          true,
          { cause: failure },
        );
        for (const p of this.pending.values()) p.reject(why);
        this.pending.clear();
      });
    });
    return attempt;
  }

  /** Sends a packed append (its buffer is transferred: unusable here afterwards); settles when every partition's produce call has. */
  send(topic: string, append: PackedAppend): Promise<void> {
    const sent = this.worker().then((worker) => new Promise<void>((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      const message: ToWorker = { type: 'send', id, topic, bytes: append.bytes, batches: append.batches };
      worker.postMessage(message, [append.bytes]);
    }));
    const tracked = sent.catch(() => undefined);
    this.inFlight.add(tracked);
    void tracked.then(() => this.inFlight.delete(tracked));
    return sent;
  }

  /** Waits for the appends under way, then disconnects the producer and ends the worker. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.inFlight]);
    const worker = await this.starting?.catch(() => undefined);
    if (!worker) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    const disconnected = new Promise<void>((resolve) => worker.on('message', (m: FromWorker) => {
      if (m.type === 'closed') resolve();
    }));
    worker.postMessage({ type: 'close' } satisfies ToWorker);
    await Promise.race([disconnected, exited]);
    await worker.terminate();
  }
}
