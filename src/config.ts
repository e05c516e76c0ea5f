/**
 * The one configuration tree: every key has a default, a unit in its name and an env name.
 * Loaded once by the composition root (main.ts); no other module reads process.env.
 * Unknown keys and bad values stop start-up with a message naming the key.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { SiteId, SiteSettings } from '../protocol/schema.js';
import { compileValidator } from '../protocol/validate.js';

const port = (def: number) => Type.Integer({ minimum: 0, maximum: 65535, default: def });

export const ConfigSchema = Type.Object({
  /** embedded: every seam in memory, one process. distributed: Kafka, Cassandra and Redis. */
  mode: Type.Union([Type.Literal('embedded'), Type.Literal('distributed')], { default: 'embedded' }),
  /**
   * What this process runs: the gateway (RSocket, queries, live), the aggregator (rollups), the
   * archive tap (raw archive and current visitors), in any combination. The tap is a role of its
   * own because its archive writes cost more than aggregation: it scales on separate processes.
   */
  roles: Type.Array(Type.Union([Type.Literal('gateway'), Type.Literal('aggregate'), Type.Literal('archive')]), { minItems: 1, uniqueItems: true, default: ['gateway', 'aggregate', 'archive'] }),
  logLevel: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info' }),
  gateway: Type.Object({
    host: Type.String({ default: '127.0.0.1' }),
    tcpPort: port(7878),
    wsPort: port(7879),
    httpPort: port(7880),
    /** Largest frame accepted, in bytes; larger ones close the connection before being buffered. */
    maxFrameBytes: Type.Integer({ minimum: 1024, maximum: 16_777_215, default: 1_048_576 }),
    setupTimeoutMs: Type.Integer({ minimum: 100, default: 10_000 }),
    /** Bytes queued on a socket beyond which responses pause their producers. */
    socketHighWaterBytes: Type.Integer({ minimum: 1024, default: 1_048_576 }),
    /** Take the client address from X-Forwarded-For (WebSocket behind a trusted proxy) instead of the socket. */
    trustForwardedFor: Type.Boolean({ default: false }),
    /**
     * The one CDN in front of the WebSocket port whose geo headers to trust (a CDN overwrites its
     * own headers but passes others' through, so trusting several would let clients fake them).
     */
    cdnGeoHeaders: Type.Union([Type.Literal('none'), Type.Literal('cloudflare'), Type.Literal('vercel'), Type.Literal('cloudfront')], { default: 'none' }),
    /** Request-streams (live.*) open at once on one connection; more get STREAM_LIMIT. */
    maxStreamsPerConnection: Type.Integer({ minimum: 1, default: 256 }),
    /**
     * Static API keys accepted in SETUP besides the account store's: 'key' (a deployment admin)
     * or 'key:site1,site2' (ingest and read of those sites). For operators who provision keys as
     * secrets. When none is a deployment admin and the store has no deployment admin key, one is
     * created on first start and shown once in the log.
     */
    apiKeys: Type.Array(Type.String({ minLength: 8 }), { default: [] }),
  }, { default: {}, additionalProperties: false }),
  /** Organisations, sites, users and keys (the account store: Cassandra when distributed, memory when embedded). */
  accounts: Type.Object({
    /** How often each gateway asks the store for revoked keys; their open connections close within about this long. */
    revocationPollMs: Type.Integer({ minimum: 100, default: 2_000 }),
    /** How long a connection remembers that its key may (or may not) use a site. */
    authorizationCacheMs: Type.Integer({ minimum: 0, default: 5_000 }),
    /** How long a site's time zone and goals from the store are reused by queries. */
    siteSettingsCacheMs: Type.Integer({ minimum: 0, default: 5_000 }),
  }, { default: {}, additionalProperties: false }),
  /**
   * Per-tenant limits, enforced by each gateway process on its own (with G gateways a tenant can
   * reach G times a rate). 0 turns a limit off. Deployment admin keys are not limited.
   */
  limits: Type.Object({
    /** Events per second one key may send (token bucket refill rate). */
    ingestEventsPerSecond: Type.Number({ minimum: 0, default: 10_000 }),
    /** Events one key may send at once above the rate (bucket size). */
    ingestBurstEvents: Type.Integer({ minimum: 1, default: 20_000 }),
    /** Query requests per second on one site (query.*, and opening a live.* stream). */
    queryRequestsPerSecond: Type.Number({ minimum: 0, default: 50 }),
    queryBurstRequests: Type.Integer({ minimum: 1, default: 100 }),
    /** Open connections per key (a site's public id, shared by its visitors' browsers, is not counted). */
    maxConnectionsPerKey: Type.Integer({ minimum: 0, default: 1_000 }),
  }, { default: {}, additionalProperties: false }),
  ingest: Type.Object({
    /** Bytes of events accepted but not yet durable in the log; beyond it sockets pause and batches get OVERLOADED. */
    maxInFlightBytes: Type.Integer({ minimum: 1024, default: 64 * 1_048_576 }),
    /** Secret for the daily visitor-id salt; generated per process when absent (ids then change on restart). */
    visitorSecret: Type.String({ default: '' }),
    /** Event times further than this in the future are clamped to the received time. */
    maxFutureSkewMs: Type.Integer({ minimum: 0, default: 5 * 60_000 }),
    /** Ids remembered for duplicate detection at the gateway (per process). */
    dedupCacheSize: Type.Integer({ minimum: 0, default: 200_000 }),
    keepQueryParams: Type.Array(Type.String(), { default: [] }),
    /**
     * An offline GeoIP database file the operator provides (nothing is downloaded): country,
     * region and city from the client address when the edge sent no geo hint. Empty: none.
     */
    geoDatabasePath: Type.String({ default: '' }),
  }, { default: {}, additionalProperties: false }),
  /** Rollup tiers: one-minute base buckets (UTC) and coarser ones, each kept this many days. */
  rollups: Type.Object({
    minuteRetentionDays: Type.Integer({ minimum: 1, default: 35 }),
    quarterRetentionDays: Type.Integer({ minimum: 1, default: 400 }),
    hourRetentionDays: Type.Integer({ minimum: 1, default: 800 }),
    dayRetentionDays: Type.Integer({ minimum: 1, default: 3660 }),
  }, { default: {}, additionalProperties: false }),
  query: Type.Object({
    /** Time zone of a site without one of its own (IANA name). */
    defaultTimeZone: Type.String({ minLength: 1, default: 'UTC' }),
    /** Filtered queries scan the raw archive; beyond this many events they fail with QUERY_TOO_LARGE. */
    maxRawScanEvents: Type.Integer({ minimum: 1, default: 2_000_000 }),
  }, { default: {}, additionalProperties: false }),
  /** Reprocessing history (src/ops). */
  ops: Type.Object({
    /** A reprocess run holds its site's lease this long without renewal before another may take over. */
    leaseTtlMs: Type.Integer({ minimum: 1_000, default: 30_000 }),
    /** How long a run waits for the archive tap to catch up with the event log. */
    archiveWaitMs: Type.Integer({ minimum: 0, default: 60_000 }),
    /** How long the query side reuses a site's version directory. */
    directoryCacheMs: Type.Integer({ minimum: 0, default: 1_000 }),
    /** Events folded before a stretch of reprocessed days, for visits crossing midnight. */
    lookbackMs: Type.Integer({ minimum: 0, default: 86_400_000 }),
    /** Rows per upsert call while reprocessing. */
    writeBatchRows: Type.Integer({ minimum: 1, maximum: 5_000, default: 500 }),
  }, { default: {}, additionalProperties: false }),
  /** Per-site time zone and goals for sites the account store does not hold (the store wins for its sites). */
  sites: Type.Record(SiteId, SiteSettings, { default: {} }),
  aggregate: Type.Object({
    /** How far behind the newest event time the watermark trails. */
    maxOutOfOrderMs: Type.Integer({ minimum: 0, default: 5_000 }),
    /** How long after the watermark passes a bucket's end it still accepts (and restates for) late events. */
    allowedLatenessMs: Type.Integer({ minimum: 0, default: 5 * 60_000 }),
    /** A partition without events for this long advances its watermark by the wall clock. */
    idleAdvanceMs: Type.Integer({ minimum: 100, default: 10_000 }),
    /** How often open buckets are written to the rollup store. */
    flushIntervalMs: Type.Integer({ minimum: 10, default: 1_000 }),
    /** Distinct values kept per bucket per breakdown before the rest go to "(other)". */
    maxBreakdownKeys: Type.Integer({ minimum: 1, default: 200 }),
    /** A visitor's event this long or longer after their previous one starts a new visit (session). */
    sessionTimeoutMs: Type.Integer({ minimum: 60_000, default: 30 * 60_000 }),
    /**
     * How often a partition checkpoints its session state and commits its offset. Rows are
     * still written every flushIntervalMs; a restart replays from the last checkpoint.
     */
    checkpointIntervalMs: Type.Integer({ minimum: 10, default: 30_000 }),
    /**
     * Quarter, hour and day rollups are recomputed at most this often (and at every checkpoint).
     * Queries read them only for buckets the watermark calls final, so they trail nothing a
     * dashboard sees; the watermark trails by up to this more.
     */
    coarseRollIntervalMs: Type.Integer({ minimum: 0, default: 5_000 }),
    groupId: Type.String({ default: 'sluice-aggregate-v1' }),
  }, { default: {}, additionalProperties: false }),
  eventLog: Type.Object({
    partitions: Type.Integer({ minimum: 1, maximum: 1024, default: 8 }),
    eventsTopic: Type.String({ default: 'sluice.events' }),
    lateTopic: Type.String({ default: 'sluice.late' }),
    deadLetterTopic: Type.String({ default: 'sluice.dead-letter' }),
  }, { default: {}, additionalProperties: false }),
  kafka: Type.Object({
    brokers: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, default: ['127.0.0.1:9092'] }),
    clientId: Type.String({ default: 'sluice' }),
    replicationFactor: Type.Integer({ minimum: 1, default: 1 }),
    /** A consumer silent this long is dropped from its group and its partitions move (Kafka's session timeout). */
    sessionTimeoutMs: Type.Integer({ minimum: 3_000, default: 30_000 }),
  }, { default: {}, additionalProperties: false }),
  cassandra: Type.Object({
    contactPoints: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, default: ['127.0.0.1:9042'] }),
    localDataCenter: Type.String({ default: 'datacenter1' }),
    keyspace: Type.String({ pattern: '^[a-z][a-z0-9_]{0,47}$', default: 'sluice' }),
    /** SimpleStrategy with this factor, unless replicationDataCenters is set. */
    replicationFactor: Type.Integer({ minimum: 1, default: 1 }),
    /** NetworkTopologyStrategy as 'dc1:3' entries; empty: SimpleStrategy. */
    replicationDataCenters: Type.Array(Type.String({ pattern: '^[A-Za-z0-9_.-]+:[1-9][0-9]*$' }), { default: [] }),
    /** LOCAL_ONE suits a one-node dev stack; production wants LOCAL_QUORUM. */
    consistency: Type.Union([Type.Literal('LOCAL_ONE'), Type.Literal('LOCAL_QUORUM')], { default: 'LOCAL_ONE' }),
    /** Concurrent statements per write call. */
    writeConcurrency: Type.Integer({ minimum: 1, maximum: 1024, default: 32 }),
    rawRetentionDays: Type.Integer({ minimum: 1, default: 400 }),
    /** Partitions per site and hour of the raw archive: raise for very large sites, never lower. */
    archiveShards: Type.Integer({ minimum: 1, maximum: 256, default: 1 }),
  }, { default: {}, additionalProperties: false }),
  redis: Type.Object({
    url: Type.String({ default: 'redis://127.0.0.1:6379' }),
    keyPrefix: Type.String({ default: 'sluice:' }),
    queryCacheTtlMs: Type.Integer({ minimum: 0, default: 300_000 }),
  }, { default: {}, additionalProperties: false }),
  demo: Type.Object({
    enabled: Type.Boolean({ default: false }),
    eventsPerSecond: Type.Integer({ minimum: 1, default: 50 }),
    sites: Type.Integer({ minimum: 1, default: 3 }),
  }, { default: {}, additionalProperties: false }),
}, { additionalProperties: false });

export type Config = Static<typeof ConfigSchema>;

/** Env names beside their keys: SLUICE_<SECTION>_<KEY> in upper snake case. */
export const ENV_PREFIX = 'SLUICE_';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

function envName(path: readonly string[]): string {
  return ENV_PREFIX + path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

function leafKind(schema: TSchema): 'number' | 'boolean' | 'array' | 'string' | 'json' {
  const t = (schema as { type?: unknown }).type;
  // A record (an object without fixed keys, such as `sites`) is given whole, as JSON.
  if (t === 'object') return 'json';
  if (t === 'integer' || t === 'number') return 'number';
  if (t === 'boolean') return 'boolean';
  if (t === 'array') return 'array';
  return 'string';
}

function applyDefaults(schema: TSchema, value: unknown): unknown {
  const s = schema as { type?: string; properties?: Record<string, TSchema>; default?: unknown };
  if (value === undefined && s.default !== undefined) value = structuredClone(s.default);
  if (s.type === 'object' && s.properties && typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
    for (const [k, sub] of Object.entries(s.properties)) out[k] = applyDefaults(sub, out[k]);
    return out;
  }
  return value;
}

/** Every leaf key with its env name, for docs and `--help`. */
export function configKeys(schema: TSchema = ConfigSchema, path: string[] = []): Array<{ key: string; env: string; default: unknown }> {
  const s = schema as { type?: string; properties?: Record<string, TSchema>; default?: unknown };
  if (s.type === 'object' && s.properties) {
    return Object.entries(s.properties).flatMap(([k, sub]) => configKeys(sub, [...path, k]));
  }
  return [{ key: path.join('.'), env: envName(path), default: s.default }];
}

function fromEnv(schema: TSchema, env: Readonly<Record<string, string | undefined>>, path: string[] = []): Record<string, unknown> | undefined {
  const s = schema as { type?: string; properties?: Record<string, TSchema> };
  if (!(s.type === 'object' && s.properties)) return undefined;
  const out: Record<string, unknown> = {};
  for (const [k, sub] of Object.entries(s.properties)) {
    const subPath = [...path, k];
    const subSchema = sub as { type?: string; properties?: unknown };
    if (subSchema.type === 'object' && subSchema.properties) {
      const nested = fromEnv(sub, env, subPath);
      if (nested && Object.keys(nested).length > 0) out[k] = nested;
      continue;
    }
    const raw = env[envName(subPath)];
    if (raw === undefined || raw === '') continue;
    switch (leafKind(sub)) {
      case 'number': {
        const n = Number(raw);
        if (!Number.isFinite(n)) throw new ConfigError(`${envName(subPath)}=${raw}: not a number`);
        out[k] = n;
        break;
      }
      case 'boolean':
        if (!['true', 'false', '1', '0'].includes(raw)) throw new ConfigError(`${envName(subPath)}=${raw}: expected true or false`);
        out[k] = raw === 'true' || raw === '1';
        break;
      case 'array':
        out[k] = raw.split(/[\s;]+/).filter(Boolean);
        break;
      case 'json':
        try {
          out[k] = JSON.parse(raw) as unknown;
        } catch {
          throw new ConfigError(`${envName(subPath)}: not valid JSON`);
        }
        break;
      default:
        out[k] = raw;
    }
  }
  return out;
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] = typeof v === 'object' && v !== null && !Array.isArray(v) && typeof prev === 'object' && prev !== null && !Array.isArray(prev)
      ? deepMerge(prev as Record<string, unknown>, v as Record<string, unknown>)
      : v;
  }
  return out;
}

const validateConfig = compileValidator(ConfigSchema);

/**
 * Build the config from (lowest to highest precedence) defaults, an object (file or test
 * overrides) and the environment.
 */
export function loadConfig(overrides: Record<string, unknown> = {}, env: Readonly<Record<string, string | undefined>> = {}): Config {
  const merged = deepMerge(overrides, fromEnv(ConfigSchema, env) ?? {});
  const withDefaults = applyDefaults(ConfigSchema, merged);
  const result = validateConfig(withDefaults);
  if (!result.ok) throw new ConfigError(`invalid configuration at ${result.message}`);
  return result.value;
}
