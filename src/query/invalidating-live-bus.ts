/**
 * The writer side of query-cache invalidation: a LiveBus decorator that, for every
 * BucketsChanged published through it, invalidates those buckets in the QueryCache and only
 * then publishes. The composition root wraps the bus it hands to the aggregator with it:
 *
 *   aggregator: store.upsert(rows) -> bus.publish(notice)        (aggregator.ts, unchanged)
 *   this bus:                        cache.invalidate -> inner.publish
 *
 * Why the writer and not the subscribers: pub/sub is best effort and may have no subscriber at
 * all, so a gateway that missed a notice (or no gateway listening) would leave entries stale.
 * The writer's publish always runs, after the store write resolved, and the aggregator awaits
 * it before moving its watermark and committing offsets; a crash before it means a replay that
 * writes the rows and invalidates again.
 *
 * Why invalidate before publishing: a dashboard that re-queries on the notice must not be
 * served the entry the notice is about.
 *
 * When invalidation fails: it is retried (`attempts`, backing off); if it still fails, the
 * notice is published anyway (live streams read the store directly, not the cache, and must
 * not starve), the failure is logged, and the days stay pending — retried in the background
 * and with every later publish for the site — until an invalidation succeeds. Entries are
 * stale meanwhile, for at most their TTL (the query service's `cacheTtlMs`), which is the
 * bound this design gives if the cache is unreachable from the writer or the writer dies with
 * invalidations pending.
 */
import { silentLogger, type Logger } from '../log.js';
import type { BucketsChanged, LiveBus } from './live-bus.js';
import { CACHE_DAY_MS, cacheDaysOf, type QueryCache } from './query-cache.js';

export interface InvalidatingLiveBusOptions {
  readonly logger?: Logger;
  /** Tries of each invalidation before the notice goes out regardless; default 3. */
  readonly attempts?: number;
  /** First back-off; doubles per try, also for background retries; default 50 ms. */
  readonly retryBaseMs?: number;
  /** Longest back-off between background retries; default 5 s. */
  readonly retryMaxMs?: number;
}

export interface InvalidatingLiveBus extends LiveBus {
  /** Sites with invalidations still pending after failures. */
  pendingSites(): number;
}

/**
 * Wraps `bus` so that every publish first invalidates `cache`. Owns neither: `close` stops the
 * background retries (after one last try) and leaves the bus and the cache to their owner.
 */
export function createInvalidatingLiveBus(bus: LiveBus, cache: QueryCache, options: InvalidatingLiveBusOptions = {}): InvalidatingLiveBus {
  const logger = options.logger ?? silentLogger();
  const attempts = Math.max(1, options.attempts ?? 3);
  const baseMs = options.retryBaseMs ?? 50;
  const maxMs = options.retryMaxMs ?? 5_000;
  /**
   * site -> (day -> when it was last owed) for invalidations that failed so far. The stamp
   * makes clearing exact: a success clears a day only if nothing owed it again meanwhile.
   */
  const pending = new Map<string, Map<number, number>>();
  let owedSeq = 0;
  let timer: NodeJS.Timeout | undefined;
  let backgroundTry = 0;
  let closed = false;

  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  const owe = (site: string, buckets: readonly number[]) => {
    let days = pending.get(site);
    if (!days) {
      days = new Map();
      pending.set(site, days);
    }
    owedSeq++;
    for (const d of cacheDaysOf(buckets)) days.set(d, owedSeq);
  };

  /** Invalidate the buckets plus whatever the site owes; what was owed clears on success. */
  const invalidate = async (site: string, buckets: readonly number[]): Promise<void> => {
    const owed = [...(pending.get(site) ?? [])];
    await cache.invalidate(site, owed.length === 0 ? buckets : [...buckets, ...owed.map(([d]) => d * CACHE_DAY_MS)]);
    const days = pending.get(site);
    if (!days) return;
    for (const [d, seq] of owed) if (days.get(d) === seq) days.delete(d);
    if (days.size === 0) pending.delete(site);
  };

  const retryPending = async (): Promise<void> => {
    for (const site of [...pending.keys()]) {
      try {
        await invalidate(site, []);
      } catch (e) {
        logger.warn({ err: e, site }, 'query cache invalidation still failing; cached responses of the site may be stale until their TTL');
        return;
      }
    }
  };

  const schedule = () => {
    if (closed || timer || pending.size === 0) return;
    const delayMs = Math.min(maxMs, baseMs * 2 ** Math.min(backgroundTry, 30));
    backgroundTry++;
    timer = setTimeout(() => {
      timer = undefined;
      void retryPending().finally(() => {
        if (pending.size === 0) backgroundTry = 0;
        else schedule();
      });
    }, delayMs);
    timer.unref();
  };

  return {
    async publish(notice: BucketsChanged): Promise<void> {
      let failure: { error: unknown } | undefined;
      for (let attempt = 1; attempt <= attempts; attempt++) {
        try {
          await invalidate(notice.site, notice.buckets);
          failure = undefined;
          break;
        } catch (e) {
          failure = { error: e };
          if (attempt < attempts) await sleep(Math.min(maxMs, baseMs * 2 ** (attempt - 1)));
        }
      }
      if (failure) {
        owe(notice.site, notice.buckets);
        logger.warn({ err: failure.error, site: notice.site }, 'query cache invalidation failed; publishing the notice anyway and retrying in the background');
        schedule();
      }
      await bus.publish(notice);
    },

    subscribe(site, listener) {
      return bus.subscribe(site, listener);
    },

    pendingSites() {
      return pending.size;
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      timer = undefined;
      await retryPending();
      if (pending.size > 0) logger.error({ sites: pending.size }, 'closing with query cache invalidations pending; those entries stay stale until their TTL');
    },
  };
}
