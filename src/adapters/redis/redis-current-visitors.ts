/**
 * CurrentVisitors over Redis: one sorted set per site, member = visitor id, score = last-seen
 * ms (event time clamped to the recorder's clock).
 *
 * Each `record` call is one pipeline: per site, ZADD GT (adds new visitors, moves existing ones
 * only forward, so an older or replayed event never moves a visitor back), ZREMRANGEBYSCORE of
 * everything at or before the window (storage stays the visitors of the last five minutes), and
 * PEXPIRE so a site that goes quiet disappears on its own. `count` is one ZCOUNT.
 *
 * Key: <prefix>cv:{<site>} (site URI-encoded; the hash tag keeps it cluster-safe).
 */
import type { Logger } from '../../log.js';
import { CURRENT_WINDOW_MS, latestSeen, type CurrentVisitors, type VisitorSeen } from '../../query/current-visitors.js';
import { closeRedis, openRedis, type Redis, type RedisConnection } from './redis-connection.js';

export interface RedisCurrentVisitorsOptions {
  readonly connection: RedisConnection;
  /** Prepended to every key, e.g. 'sluice:'. */
  readonly keyPrefix: string;
  /** The recorder's clock, which event times are clamped to. */
  readonly now?: () => number;
  /** Default 2 s. */
  readonly commandTimeoutMs?: number;
  readonly logger?: Logger;
}

/** Members per ZADD, so one huge batch does not become one huge command. */
const ZADD_CHUNK = 1_000;
/** The key outlives the window a little, so a slow clock does not drop live visitors. */
const EXPIRE_SLACK_MS = 60_000;

export class RedisCurrentVisitors implements CurrentVisitors {
  private readonly redis: Redis;
  private readonly keyPrefix: string;
  private readonly now: () => number;

  constructor(options: RedisCurrentVisitorsOptions) {
    this.keyPrefix = options.keyPrefix;
    this.now = options.now ?? Date.now;
    this.redis = openRedis(options.connection, {
      commandTimeout: options.commandTimeoutMs ?? 2_000,
      maxRetriesPerRequest: 2,
    }, options.logger, 'current-visitors');
  }

  async record(entries: readonly VisitorSeen[]): Promise<void> {
    const nowMs = this.now();
    const bySite = latestSeen(entries, nowMs);
    if (bySite.size === 0) return;
    const pipeline = this.redis.pipeline();
    for (const [site, seen] of bySite) {
      const key = this.key(site);
      const pairs: (string | number)[] = [];
      for (const [visitor, ts] of seen) {
        pairs.push(ts, visitor);
        if (pairs.length >= ZADD_CHUNK * 2) {
          pipeline.zadd(key, 'GT', ...pairs);
          pairs.length = 0;
        }
      }
      if (pairs.length > 0) pipeline.zadd(key, 'GT', ...pairs);
      pipeline.zremrangebyscore(key, '-inf', nowMs - CURRENT_WINDOW_MS);
      pipeline.pexpire(key, CURRENT_WINDOW_MS + EXPIRE_SLACK_MS);
    }
    const results = await pipeline.exec();
    for (const [error] of results ?? []) if (error) throw error;
  }

  async count(site: string, nowMs: number): Promise<number> {
    return this.redis.zcount(this.key(site), `(${nowMs - CURRENT_WINDOW_MS}`, '+inf');
  }

  async close(): Promise<void> {
    await closeRedis(this.redis);
  }

  private key(site: string): string {
    return `${this.keyPrefix}cv:{${encodeURIComponent(site)}}`;
  }
}
