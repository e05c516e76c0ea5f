/**
 * The sending side of an ops request-stream, honouring the subscriber's demand: one message per
 * credit (StreamControl.request). Progress messages are conflated — while there is no credit
 * only the newest is kept, so a slow reader costs one message of memory and always gets the
 * current state —, other messages (data, the final message) are queued in order and never
 * dropped; `send` resolves once the queue is short again, so a producer awaiting it is held
 * back by the reader (export reads the archive only as fast as the client takes lines).
 */
import type { StreamControl, StreamSink } from '../gateway/route-handlers.js';

/** Queued messages beyond which `send` waits for the reader. */
const QUEUE_BOUND = 4;
const MAX_CREDITS = 2 ** 31 - 1;

export class StreamOutbox implements StreamControl {
  private credits = 0;
  private readonly queue: unknown[] = [];
  private latest: unknown = undefined;
  private waiters: Array<() => void> = [];
  private ending: { readonly error?: unknown } | null = null;
  private closed = false;
  private readonly abort = new AbortController();

  constructor(private readonly sink: StreamSink) {}

  /** Aborted when the subscriber cancels: producers stop at their next step. */
  get signal(): AbortSignal {
    return this.abort.signal;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  request(n: number): void {
    if (!(n > 0)) return;
    this.credits = Math.min(MAX_CREDITS, this.credits + n);
    this.pump();
  }

  cancel(): void {
    this.closed = true;
    this.queue.length = 0;
    this.latest = undefined;
    this.abort.abort();
    this.release();
  }

  /** The newest progress: replaces an unsent one. */
  progress(message: unknown): void {
    if (this.closed || this.ending) return;
    this.latest = message;
    this.pump();
  }

  /** A message that must arrive; resolves when the queue has room again (or the stream ended). */
  send(message: unknown): Promise<void> {
    if (this.closed || this.ending) return Promise.resolve();
    this.queue.push(message);
    this.pump();
    if (this.queue.length < QUEUE_BOUND || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The last message, then completion; a pending progress message is dropped (the last one says more). */
  finish(message: unknown): void {
    if (this.closed || this.ending) return;
    this.latest = undefined;
    this.queue.push(message);
    this.ending = {};
    this.pump();
  }

  /** Ends the stream with an error at once (errors need no credit); the producer is told to stop. */
  fail(error: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.latest = undefined;
    this.abort.abort();
    this.release();
    this.sink.error(error);
  }

  private pump(): void {
    while (!this.closed && this.credits > 0) {
      if (this.queue.length > 0) {
        this.credits--;
        this.sink.next(this.queue.shift());
      } else if (this.latest !== undefined) {
        this.credits--;
        const m = this.latest;
        this.latest = undefined;
        this.sink.next(m);
      } else {
        break;
      }
    }
    if (this.queue.length < QUEUE_BOUND) this.release();
    if (!this.closed && this.ending && this.queue.length === 0) {
      this.closed = true;
      this.sink.complete();
    }
  }

  private release(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
