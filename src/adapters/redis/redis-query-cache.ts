/**
 * QueryCache over Redis, shared by every gateway process: the per-(site, day) generation
 * scheme of query/query-cache.ts, with each operation one Lua script so that computing a
 * version and reading or writing against it is atomic and one round trip.
 *
 * Keys (site URI-encoded, so it cannot contain ':' or the braces of a hash tag; the hash tag
 * keeps a site's keys in one slot on a cluster, which scripts need):
 *   <prefix>qc:{<site>}:g         hash: '_e' = epoch, '<utc day number>' = generation
 *   <prefix>qc:{<site>}:e:<key>   string: '<version>\n<value>', PX = the entry's TTL
 * The generation hash expires too (it is extended to outlive every entry stored against it);
 * when it is gone, or was evicted, the next use starts a new random epoch, which makes every
 * older entry of the site stale — a reset costs hits, never correctness.
 *
 * Failures reject (commands time out after `commandTimeoutMs`); callers treat them as misses.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../log.js';
import {
  cacheDaysOf, cacheDaySpan,
  type CacheLookup, type CacheScope, type CacheTicket, type QueryCache,
} from '../../query/query-cache.js';
import { closeRedis, openRedis, type Redis, type RedisConnection } from './redis-connection.js';

export interface RedisQueryCacheOptions {
  readonly connection: RedisConnection;
  /** Prepended to every key, e.g. 'sluice:'. */
  readonly keyPrefix: string;
  /** Lifetime of a site's generations when nothing longer-lived refers to them; default 1 h. */
  readonly generationTtlMs?: number;
  /** Day counters per site before the site starts a new epoch; default 10 000. */
  readonly maxDaysPerSite?: number;
  /** A command without a reply by then fails (as a miss), so a sick Redis cannot stall queries; default 1 s. */
  readonly commandTimeoutMs?: number;
  readonly logger?: Logger;
}

/**
 * Lua: the current version of a scope, or false when the site has no epoch.
 * Cost is min(days in scope, days tracked): a scope of years reads the tracked days instead.
 */
const VERSION_LUA = `
local function scope_version(gkey, first, last)
  local epoch = redis.call('HGET', gkey, '_e')
  if not epoch then return false end
  local lo = tonumber(first)
  local hi = tonumber(last)
  local sum = 0
  if hi - lo + 1 <= redis.call('HLEN', gkey) then
    for d = lo, hi do
      local n = redis.call('HGET', gkey, string.format('%d', d))
      if n then sum = sum + tonumber(n) end
    end
  else
    local all = redis.call('HGETALL', gkey)
    for i = 1, #all, 2 do
      local d = tonumber(all[i])
      if d and d >= lo and d <= hi then sum = sum + tonumber(all[i + 1]) end
    end
  end
  return epoch .. ':' .. first .. ':' .. last .. ':' .. string.format('%d', sum)
end
local function ensure_ttl(gkey, ms)
  local ttl = redis.call('PTTL', gkey)
  if ttl == -1 or (ttl >= 0 and ttl < ms) then redis.call('PEXPIRE', gkey, ms) end
end
`;

/** KEYS: gen, entry. ARGV: new epoch, first day, last day, generation TTL. Returns {version[, value]}. */
const GET_LUA = `${VERSION_LUA}
redis.call('HSETNX', KEYS[1], '_e', ARGV[1])
ensure_ttl(KEYS[1], tonumber(ARGV[4]))
local version = scope_version(KEYS[1], ARGV[2], ARGV[3])
local e = redis.call('GET', KEYS[2])
if e then
  local sep = string.find(e, '\\n', 1, true)
  if sep and string.sub(e, 1, sep - 1) == version then return {version, string.sub(e, sep + 1)} end
end
return {version}
`;

/** KEYS: gen, entry. ARGV: version, first day, last day, value, TTL. Returns 1 if stored. */
const SET_LUA = `${VERSION_LUA}
if scope_version(KEYS[1], ARGV[2], ARGV[3]) ~= ARGV[1] then return 0 end
local ttl = tonumber(ARGV[5])
redis.call('SET', KEYS[2], ARGV[1] .. '\\n' .. ARGV[4], 'PX', ttl)
ensure_ttl(KEYS[1], ttl)
return 1
`;

/** KEYS: gen. ARGV: new epoch, generation TTL, max days, day... */
const INVALIDATE_LUA = `${VERSION_LUA}
if redis.call('HSETNX', KEYS[1], '_e', ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) + #ARGV - 3 > tonumber(ARGV[3]) + 1 then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], '_e', ARGV[1])
end
for i = 4, #ARGV do redis.call('HINCRBY', KEYS[1], ARGV[i], 1) end
ensure_ttl(KEYS[1], tonumber(ARGV[2]))
return 1
`;

interface ScriptCommands {
  sluiceQueryCacheGet(gen: string, entry: string, epoch: string, first: string, last: string, genTtlMs: string): Promise<[string, string?]>;
  sluiceQueryCacheSet(gen: string, entry: string, version: string, first: string, last: string, value: string, ttlMs: string): Promise<number>;
  sluiceQueryCacheInvalidate(gen: string, ...args: string[]): Promise<number>;
}

export class RedisQueryCache implements QueryCache {
  private readonly redis: Redis;
  private readonly scripts: ScriptCommands;
  private readonly keyPrefix: string;
  private readonly generationTtlMs: number;
  private readonly maxDaysPerSite: number;

  constructor(options: RedisQueryCacheOptions) {
    this.keyPrefix = options.keyPrefix;
    this.generationTtlMs = options.generationTtlMs ?? 3_600_000;
    this.maxDaysPerSite = options.maxDaysPerSite ?? 10_000;
    this.redis = openRedis(options.connection, {
      commandTimeout: options.commandTimeoutMs ?? 1_000,
      maxRetriesPerRequest: 1,
    }, options.logger, 'query-cache');
    this.redis.defineCommand('sluiceQueryCacheGet', { numberOfKeys: 2, lua: GET_LUA });
    this.redis.defineCommand('sluiceQueryCacheSet', { numberOfKeys: 2, lua: SET_LUA });
    this.redis.defineCommand('sluiceQueryCacheInvalidate', { numberOfKeys: 1, lua: INVALIDATE_LUA });
    this.scripts = this.redis as unknown as ScriptCommands;
  }

  async get(scope: CacheScope, key: string): Promise<CacheLookup> {
    const { firstDay, lastDay } = cacheDaySpan(scope);
    const [version, value] = await this.scripts.sluiceQueryCacheGet(
      this.genKey(scope.site), this.entryKey(scope.site, key), randomUUID(), String(firstDay), String(lastDay), String(this.generationTtlMs));
    return { value: value ?? undefined, ticket: { scope, key, version } };
  }

  async set(ticket: CacheTicket, value: string, ttlMs: number): Promise<void> {
    if (!(ttlMs > 0)) return;
    const { firstDay, lastDay } = cacheDaySpan(ticket.scope);
    await this.scripts.sluiceQueryCacheSet(
      this.genKey(ticket.scope.site), this.entryKey(ticket.scope.site, ticket.key),
      ticket.version, String(firstDay), String(lastDay), value, String(Math.ceil(ttlMs)));
  }

  async invalidate(site: string, bucketsMs: readonly number[]): Promise<void> {
    const days = cacheDaysOf(bucketsMs);
    if (days.length === 0) return;
    await this.scripts.sluiceQueryCacheInvalidate(
      this.genKey(site), randomUUID(), String(this.generationTtlMs), String(this.maxDaysPerSite), ...days.map(String));
  }

  async close(): Promise<void> {
    await closeRedis(this.redis);
  }

  private genKey(site: string): string {
    return `${this.keyPrefix}qc:{${encodeURIComponent(site)}}:g`;
  }

  private entryKey(site: string, key: string): string {
    return `${this.keyPrefix}qc:{${encodeURIComponent(site)}}:e:${key}`;
  }
}
