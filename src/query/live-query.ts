/**
 * A `live.query` stream for one subscriber: the same QueryRequest as `query.run`, a snapshot
 * first, then — whenever a bucket the query covers changes (a LiveBus notice), or a relative
 * range moves on — the query runs again and only what changed is pushed: the rows or points
 * whose metrics changed, the totals when they changed, the page's order when it changed.
 *
 * Flow control as in live-stream.ts: one message per request(n) credit; between credits the
 * stream keeps a "something changed" flag, not a queue, and each message is computed at send
 * time from the store — so a slow subscriber gets the newest values, and memory per stream is
 * one response (the last one sent, to diff against), whatever the event rate.
 *
 * Every notice whose buckets overlap the query's range or comparison period marks the stream
 * dirty, including buckets far in the past: a late event restating history the subscriber holds
 * is re-read and, when it changed a number, pushed. A change the diff cannot express (the range
 * moved, the comparison's rows changed) is sent as a new snapshot.
 */
import type { LiveQueryMessage, QueryRequest, QueryResponse, QueryRow } from '../../protocol/query-schema.js';
import { TIER_MS } from '../aggregate/rollup.js';
import type { LiveBus } from './live-bus.js';
import type { QueryService } from './query-service.js';
import { nextRangeChangeMs } from './time-range.js';

export interface LiveQuerySink {
  next(message: LiveQueryMessage): void;
  error(error: unknown): void;
}

export interface LiveQueryStream {
  request(n: number): void;
  cancel(): void;
}

export interface LiveQueryOptions {
  readonly request: QueryRequest;
  readonly query: QueryService;
  readonly bus: LiveBus;
  readonly sink: LiveQuerySink;
  readonly now?: () => number;
  /** Called exactly once when the stream ends for any reason (cancel, error). */
  readonly onClose?: () => void;
}

/** The length of the coarsest tier `bucketMs` is the start of: a notice may name a coarse bucket. */
function bucketLength(bucketMs: number): number {
  for (const t of ['day', 'hour', 'quarter', 'minute'] as const) if (bucketMs % TIER_MS[t] === 0) return TIER_MS[t];
  return TIER_MS.minute;
}

const rowKey = (r: QueryRow): string | number => ('value' in r ? r.value : r.t);
const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** The update from `prev` to `next`, null when nothing changed; 'snapshot' when an update cannot say it. */
export function diffResponses(prev: QueryResponse, next: QueryResponse): LiveQueryMessage | 'snapshot' | null {
  if (prev.range.from !== next.range.from || prev.range.to !== next.range.to || prev.kind !== next.kind) return 'snapshot';
  if (!sameJson(prev.comparison?.rows ?? null, next.comparison?.rows ?? null)) return 'snapshot';
  const before = new Map(prev.rows.map((r) => [rowKey(r), r]));
  const changed = next.rows.filter((r) => {
    const old = before.get(rowKey(r));
    return !old || !sameJson(old.metrics, r.metrics);
  });
  const order = next.rows.map(rowKey);
  const orderChanged = !sameJson(prev.rows.map(rowKey), order);
  const totalsChanged = !sameJson(prev.totals, next.totals);
  const comparisonChanged = !sameJson(prev.comparison?.totals ?? null, next.comparison?.totals ?? null);
  if (changed.length === 0 && !orderChanged && !totalsChanged && !comparisonChanged) return null;
  const update: LiveQueryMessage = { type: 'update', rows: changed, watermark: next.watermark };
  if (totalsChanged) update.totals = next.totals;
  if (comparisonChanged && next.comparison) update.comparison_totals = next.comparison.totals;
  if (orderChanged) update.order = order;
  return update;
}

export function openLiveQuery(options: LiveQueryOptions): LiveQueryStream {
  const { request, query, bus, sink } = options;
  const now = options.now ?? Date.now;
  let demand = 0;
  let last: QueryResponse | null = null;
  let dirty = false;
  let sending = false;
  let closed = false;
  let unsubscribe: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  /** The times the last response covers (comparison included): notices outside are ignored. */
  let scope: { fromMs: number; toMs: number } | null = null;

  const close = () => {
    if (closed) return;
    closed = true;
    unsubscribe?.();
    clearTimeout(timer);
    last = null;
    options.onClose?.();
  };

  const fail = (e: unknown) => {
    if (closed) return;
    close();
    sink.error(e);
  };

  /** Re-run when a relative range next moves on (a new minute of `realtime`, a new local day). */
  const scheduleRoll = (atMs: number | null) => {
    clearTimeout(timer);
    timer = undefined;
    if (atMs === null || closed) return;
    // setTimeout takes at most 2^31-1 ms; a later roll re-arms from the next run.
    const delayMs = Math.min(Math.max(0, atMs - now()), 2 ** 31 - 1);
    timer = setTimeout(() => {
      timer = undefined;
      dirty = true;
      void pump();
    }, delayMs);
    timer.unref();
  };

  const pump = async (): Promise<void> => {
    // Nothing is read before the bus subscription is live, so no change can fall between the
    // snapshot and the first update.
    if (sending || !unsubscribe) return;
    sending = true;
    try {
      while (!closed && demand > 0 && (last === null || dirty)) {
        dirty = false;
        const response = await query.runLive(request);
        if (closed) return;
        scope = { fromMs: response.comparison?.range.from ?? response.range.from, toMs: response.range.to };
        scheduleRoll(nextRangeChangeMs(request.date_range, response.time_zone, now()));
        const diff = last === null ? 'snapshot' : diffResponses(last, response);
        if (diff === null) continue;
        last = response;
        demand--;
        sink.next(diff === 'snapshot' ? { type: 'snapshot', response } : diff);
      }
    } catch (e) {
      fail(e);
    } finally {
      sending = false;
    }
    // Changes or demand that arrived during the last await are served now.
    if (!closed && demand > 0 && dirty) void pump();
  };

  const overlaps = (buckets: readonly number[]) => {
    if (scope === null) return true;
    const { fromMs, toMs } = scope;
    return buckets.some((b) => b < toMs && b + bucketLength(b) > fromMs);
  };

  // Check the query before subscribing: an invalid one fails the stream at once, holding nothing.
  query.spec(request)
    .then(() => (closed ? undefined : bus.subscribe(request.site, (notice) => {
      if (closed || !overlaps(notice.buckets)) return;
      dirty = true;
      void pump();
    })))
    .then((unsub) => {
      if (!unsub) return;
      if (closed) unsub();
      else {
        unsubscribe = unsub;
        void pump();
      }
    }, fail);

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
