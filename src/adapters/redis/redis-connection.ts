/**
 * Opening and closing ioredis connections the same way for every Redis adapter. This folder
 * is the only place that imports the driver.
 *
 * A connection is given either as a URL (`redis://host:port/db`) or as ioredis options; the
 * adapter's own defaults (timeouts, retries) apply under whatever the caller set explicitly.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../../log.js';

export type RedisConnection = string | RedisOptions;
export type { Redis, RedisOptions };

/** Host and port a connection points at, for messages that must name the address. */
export function describeRedis(connection: RedisConnection): string {
  if (typeof connection === 'string') {
    try {
      const url = new URL(/^rediss?:\/\//i.test(connection) ? connection : `redis://${connection}`);
      return `${url.hostname || '127.0.0.1'}:${url.port || '6379'}`;
    } catch {
      return connection;
    }
  }
  if (connection.path) return connection.path;
  return `${connection.host ?? '127.0.0.1'}:${connection.port ?? 6379}`;
}

/**
 * A new connection (connecting in the background, reconnecting by ioredis's retry strategy).
 * `defaults` yield to what the caller set; `forced` does not (options the adapter's
 * correctness depends on). Connection errors go to the logger instead of ioredis's
 * "unhandled error event" console output; commands still reject on their own.
 */
export function openRedis(connection: RedisConnection, defaults: RedisOptions, logger?: Logger, role = 'redis', forced: RedisOptions = {}): Redis {
  const redis = typeof connection === 'string'
    ? new Redis(connection, { ...defaults, ...forced })
    : new Redis({ ...defaults, ...connection, ...forced });
  const address = describeRedis(connection);
  let lastLogged = '';
  redis.on('error', (e: unknown) => {
    // One line per distinct error while reconnecting, not one per retry.
    const message = e instanceof Error ? e.message : String(e);
    if (message === lastLogged) return;
    lastLogged = message;
    logger?.warn({ err: e, role, address }, 'redis connection error');
  });
  redis.on('ready', () => {
    lastLogged = '';
  });
  return redis;
}

/** Close gracefully (QUIT, waiting for pending replies) when connected; otherwise at once. */
export async function closeRedis(redis: Redis, timeoutMs = 2_000): Promise<void> {
  if (redis.status === 'end') return;
  if (redis.status !== 'ready') {
    redis.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.quit().then(() => undefined),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
  } catch {
    // The connection is going away either way.
  } finally {
    clearTimeout(timer);
    redis.disconnect();
  }
}

/**
 * Fail fast, with the address in the message, when Redis cannot be reached: for start-up
 * checks and for tests that must fail (never skip) without a server.
 */
export async function checkRedisReachable(connection: RedisConnection, timeoutMs = 3_000): Promise<void> {
  const address = describeRedis(connection);
  const probe = openRedis(connection, {
    lazyConnect: true, connectTimeout: timeoutMs, retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false,
  });
  // The cause (ECONNREFUSED, ETIMEDOUT, NOAUTH) arrives as an 'error' event; the rejection
  // itself only says the connection is closed.
  let cause: unknown;
  probe.on('error', (e: unknown) => {
    cause ??= e;
  });
  try {
    await probe.connect();
    const pong = await probe.ping();
    if (pong !== 'PONG') throw new Error(`unexpected PING reply ${JSON.stringify(pong)}`);
  } catch (e) {
    cause ??= e;
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new Error(`Redis is not reachable at ${address}: ${reason}`, { cause });
  } finally {
    probe.disconnect();
  }
}
