/**
 * A live metric stream for one subscriber: a snapshot first, then updates, pushed only as fast
 * as the subscriber asks (request(n)). Between requests, changes are conflated: the stream keeps
 * a set of changed buckets, not a queue of messages, and each message is built from the store
 * at send time — so a slow subscriber gets the latest value of every bucket that changed and
 * memory per stream is bounded by the window size, whatever the event rate.
 */
import type { LiveMessage } from '../../protocol/schema.js';
import type { LiveBus } from './live-bus.js';
import { MINUTE_MS, type QueryService } from './query-service.js';

export interface LiveStreamSink {
  next(message: LiveMessage): void;
  error(error: unknown): void;
}

export interface LiveStream {
  request(n: number): void;
  cancel(): void;
}

export interface LiveStreamOptions {
  readonly site: string;
  readonly windowMinutes: number;
  readonly query: QueryService;
  readonly bus: LiveBus;
  readonly sink: LiveStreamSink;
  readonly now?: () => number;
  /** Called exactly once when the stream ends for any reason (cancel, error). */
  readonly onClose?: () => void;
}

export function openLiveStream(options: LiveStreamOptions): LiveStream {
  const { site, windowMinutes, query, bus, sink } = options;
  const now = options.now ?? Date.now;
  let demand = 0;
  let snapshotSent = false;
  let sending = false;
  let closed = false;
  const dirty = new Set<number>();
  let unsubscribe: (() => void) | undefined;

  const windowRange = () => {
    const to = Math.floor(now() / MINUTE_MS) * MINUTE_MS + MINUTE_MS;
    return { from: to - windowMinutes * MINUTE_MS, to };
  };

  const close = () => {
    if (closed) return;
    closed = true;
    unsubscribe?.();
    dirty.clear();
    options.onClose?.();
  };

  const pump = async (): Promise<void> => {
    // Nothing is read before the bus subscription is live, so no change can fall between the
    // snapshot and the first update.
    if (sending || !unsubscribe) return;
    sending = true;
    try {
      while (!closed && demand > 0 && (!snapshotSent || dirty.size > 0)) {
        const { from, to } = windowRange();
        if (!snapshotSent) {
          dirty.clear();
          const m = await query.minutes(site, from, to);
          if (closed) return;
          snapshotSent = true;
          demand--;
          sink.next({ type: 'snapshot', site, windowMinutes, points: m.points, totals: m.totals, watermark: m.watermark });
          continue;
        }
        const changed = [...dirty].filter((b) => b >= from && b < to).sort((a, b) => a - b);
        dirty.clear();
        if (changed.length === 0) continue;
        const m = await query.minutes(site, from, to);
        if (closed) return;
        const wanted = new Set(changed);
        demand--;
        sink.next({ type: 'update', site, points: m.points.filter((p) => wanted.has(p.t)), totals: m.totals, watermark: m.watermark });
      }
    } catch (e) {
      if (!closed) {
        close();
        sink.error(e);
      }
    } finally {
      sending = false;
    }
    // Changes or demand that arrived during the last await are served now.
    if (!closed && demand > 0 && dirty.size > 0) void pump();
  };

  bus.subscribe(site, (notice) => {
    if (closed) return;
    for (const b of notice.buckets) dirty.add(b);
    void pump();
  }).then((unsub) => {
    if (closed) unsub();
    else {
      unsubscribe = unsub;
      void pump();
    }
  }, (e: unknown) => {
    if (!closed) {
      close();
      sink.error(e);
    }
  });

  return {
    request(n: number) {
      if (closed) return;
      // request(n) values add up; the RSocket maximum (2^31-1) means "unbounded".
      demand = Math.min(Number.MAX_SAFE_INTEGER, demand + n);
      void pump();
    },
    cancel: close,
  };
}
