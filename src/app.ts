/**
 * The composition root: the only module that knows which adapters run.
 * - embedded: every seam in memory, all roles in one process (`npm start`);
 * - distributed: Kafka event log, Cassandra rollups and raw archive, Redis live bus, query
 *   cache and current visitors; `roles` picks gateway, aggregate or both for this process.
 * `main.ts` is the command line around it; tests start it in-process on port 0.
 */
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { AccountStore } from './accounts/account-store.js';
import { Accounts } from './accounts/accounts.js';
import { createAdminHandlers } from './accounts/admin-handlers.js';
import { createAdminService } from './accounts/admin-service.js';
import { RevocationWatcher } from './accounts/revocation-watcher.js';
import { CassandraAccountStore } from './adapters/cassandra/cassandra-account-store.js';
import { CassandraRawArchive } from './adapters/cassandra/cassandra-raw-archive.js';
import { CassandraReprocessJournal } from './adapters/cassandra/cassandra-reprocess-journal.js';
import { CassandraRollupStore } from './adapters/cassandra/cassandra-rollup-store.js';
import { CassandraVersionDirectory } from './adapters/cassandra/cassandra-version-directory.js';
import { applyMigrations, type Replication } from './adapters/cassandra/migrations.js';
import { KafkaEventLog } from './adapters/kafka/kafka-event-log.js';
import { MemoryAccountStore } from './adapters/memory/memory-account-store.js';
import { MemoryCurrentVisitors } from './adapters/memory/memory-current-visitors.js';
import { MemoryEventLog } from './adapters/memory/memory-event-log.js';
import { MemoryLiveBus } from './adapters/memory/memory-live-bus.js';
import { MemoryLogPositions } from './adapters/memory/memory-log-positions.js';
import { MemoryQueryCache } from './adapters/memory/memory-query-cache.js';
import { MemoryRawArchive } from './adapters/memory/memory-raw-archive.js';
import { MemoryReprocessJournal } from './adapters/memory/memory-reprocess-journal.js';
import { MemoryRollupStore } from './adapters/memory/memory-rollup-store.js';
import { MemoryVersionDirectory } from './adapters/memory/memory-version-directory.js';
import { RedisCurrentVisitors } from './adapters/redis/redis-current-visitors.js';
import { RedisLiveBus } from './adapters/redis/redis-live-bus.js';
import { RedisQueryCache } from './adapters/redis/redis-query-cache.js';
import { tierRetentionFromDays } from './aggregate/tier-roller.js';
import { Aggregator } from './aggregate/aggregator.js';
import { EventTap } from './aggregate/event-tap.js';
import { IDENTITY_LOGIC, type ProcessingLogic } from './aggregate/minute-windows.js';
import type { RawArchive } from './aggregate/raw-archive.js';
import type { RollupStore } from './aggregate/rollup-store.js';
import type { Config } from './config.js';
import { ApiKeys } from './gateway/api-keys.js';
import { createAuthenticator, hasStaticAdmin } from './gateway/authenticator.js';
import { Gateway } from './gateway/gateway.js';
import { HttpServer } from './gateway/http-server.js';
import { joinHandlers } from './gateway/route-handlers.js';
import type { EventLog } from './ingest/event-log.js';
import { createIngestService, type IngestService } from './ingest/ingest-service.js';
import type { Logger } from './log.js';
import type { CurrentVisitors } from './query/current-visitors.js';
import { createInvalidatingLiveBus } from './query/invalidating-live-bus.js';
import type { LiveBus } from './query/live-bus.js';
import type { QueryCache } from './query/query-cache.js';
import { createQueryService, type QueryService } from './query/query-service.js';
import { createVisitorErasure } from './privacy/visitor-erasure.js';
import { configSiteSettings, storeSiteSettings } from './query/site-settings.js';
import type { LogPositions } from './ops/log-positions.js';
import { createOpsModule, recordLiveLogic, type OpsModule } from './ops/ops-module.js';
import type { ReplayLog } from './ops/replay.js';
import type { ReprocessJournal } from './ops/reprocess-journal.js';
import type { VersionDirectory } from './ops/version-directory.js';

/**
 * The processing logic the aggregator and reprocessing run. Bump its version with every change
 * to what an event contributes (rollup.ts), so rows say which logic made them and a reprocess
 * of history with the new logic is a new version beside the old one.
 */
export const PROCESSING_LOGIC: ProcessingLogic = IDENTITY_LOGIC;

const DAY_MS = 86_400_000;

export interface AppPorts {
  /** Undefined when this process does not run the gateway role. */
  readonly tcp?: number;
  readonly ws?: number;
  readonly http: number;
}

export interface App {
  readonly ports: AppPorts;
  /**
   * Set on the first start of a deployment without a static admin key: the deployment admin key
   * just created in the account store. Show it once; it cannot be read back.
   */
  readonly bootstrapAdminKey: string | undefined;
  /** The account rules over this process's account store; undefined without the gateway role. */
  readonly accounts: Accounts | undefined;
  readonly registry: Registry;
  readonly ingest: IngestService | undefined;
  readonly query: QueryService | undefined;
  readonly aggregator: Aggregator | undefined;
  readonly eventLog: EventLog;
  stop(): Promise<void>;
}

interface Adapters {
  readonly eventLog: EventLog;
  /** Opened only for the gateway role (authentication, admin routes, site settings). */
  readonly accountStore: AccountStore | undefined;
  readonly store: RollupStore;
  readonly archive: RawArchive;
  readonly bus: LiveBus;
  readonly cache: QueryCache;
  readonly currentVisitors: CurrentVisitors;
  /** Reprocessing: the active rollup version per site and day, and the run journal. */
  readonly directory: VersionDirectory;
  readonly journal: ReprocessJournal;
  /** Where the event log ends and consumer groups stand (is the archive complete?). */
  readonly positions: LogPositions;
  /** The Kafka log for replay; null in embedded mode, where replay is refused. */
  readonly replayLog: ReplayLog | null;
  /** The log the archive tap reads: embedded, one that reports its commits to `positions`. */
  tapLog(log: EventLog): EventLog;
  /** False once an embedded archive evicted events: a reprocess would lose them. */
  archiveIntact(): boolean;
  close(): Promise<void>;
}

function embeddedAdapters(config: Config, withAccounts: boolean): Adapters {
  const eventLog = new MemoryEventLog({ partitions: config.eventLog.partitions });
  const r = config.rollups;
  const store = new MemoryRollupStore({ retentionMs: {
    minute: r.minuteRetentionDays * DAY_MS, quarter: r.quarterRetentionDays * DAY_MS, hour: r.hourRetentionDays * DAY_MS, day: r.dayRetentionDays * DAY_MS,
  } });
  const archive = new MemoryRawArchive({ retentionMs: config.cassandra.rawRetentionDays * DAY_MS });
  const positions = new MemoryLogPositions(eventLog);
  const bus = new MemoryLiveBus();
  const cache = new MemoryQueryCache();
  const currentVisitors = new MemoryCurrentVisitors();
  const accountStore = withAccounts ? new MemoryAccountStore() : undefined;
  return {
    eventLog, store, archive, bus, cache, currentVisitors, accountStore,
    directory: new MemoryVersionDirectory(), journal: new MemoryReprocessJournal(), positions, replayLog: null,
    tapLog: (log) => positions.track(log),
    archiveIntact: () => archive.evictedTotal === 0,
    async close() {
      await eventLog.close();
      await Promise.all([bus.close(), cache.close(), currentVisitors.close(), archive.close(), store.close(), accountStore?.close()]);
    },
  };
}

function replicationOf(config: Config['cassandra']): Replication {
  if (config.replicationDataCenters.length === 0) return { class: 'SimpleStrategy', replicationFactor: config.replicationFactor };
  return {
    class: 'NetworkTopologyStrategy',
    dataCenters: Object.fromEntries(config.replicationDataCenters.map((e) => {
      const [dc, rf] = e.split(':');
      return [dc!, Number(rf)];
    })),
  };
}

async function distributedAdapters(config: Config, logger: Logger, registry: Registry, withAccounts: boolean): Promise<Adapters> {
  const opened: Array<{ close(): Promise<void> }> = [];
  const closeAll = async () => {
    for (const c of opened.reverse()) await c.close().catch((e: unknown) => logger.warn({ err: e }, 'closing an adapter failed'));
  };
  try {
    const session = config.kafka.sessionTimeoutMs;
    const eventLog = await KafkaEventLog.connect({
      brokers: config.kafka.brokers, clientId: config.kafka.clientId,
      partitions: config.eventLog.partitions, replicationFactor: config.kafka.replicationFactor,
      consumer: { sessionTimeoutMs: session, heartbeatIntervalMs: Math.floor(session / 3), rebalanceTimeoutMs: Math.max(2 * session, 30_000) },
      logger: logger.child({ adapter: 'kafka' }),
    });
    opened.push(eventLog);
    await eventLog.ensureTopics([config.eventLog.eventsTopic, config.eventLog.lateTopic, config.eventLog.deadLetterTopic]);

    const c = config.cassandra;
    const connection = { contactPoints: c.contactPoints, localDataCenter: c.localDataCenter, keyspace: c.keyspace };
    const migrated = await applyMigrations({ ...connection, replication: replicationOf(c), logger: logger.child({ adapter: 'cassandra' }) });
    if (migrated.applied.length > 0) logger.info({ applied: migrated.applied }, 'schema migrations applied');
    const store = await CassandraRollupStore.connect({
      ...connection, consistency: c.consistency,
      retentionMs: {
        minute: config.rollups.minuteRetentionDays * DAY_MS, quarter: config.rollups.quarterRetentionDays * DAY_MS,
        hour: config.rollups.hourRetentionDays * DAY_MS, day: config.rollups.dayRetentionDays * DAY_MS,
      },
      writeConcurrency: c.writeConcurrency, watermarkScope: config.aggregate.groupId, logger: logger.child({ adapter: 'cassandra' }),
    });
    opened.push(store);
    const archive = await CassandraRawArchive.connect({
      ...connection, consistency: c.consistency, retentionMs: c.rawRetentionDays * DAY_MS,
      shards: c.archiveShards, writeConcurrency: c.writeConcurrency, logger: logger.child({ adapter: 'cassandra' }),
    });
    opened.push(archive);
    // Its tables come with migration 4, applied above.
    const accountStore = withAccounts ? await CassandraAccountStore.connect({ ...connection, consistency: c.consistency }) : undefined;
    if (accountStore) opened.push(accountStore);
    const directory = await CassandraVersionDirectory.connect({ ...connection, consistency: c.consistency });
    opened.push(directory);
    const journal = await CassandraReprocessJournal.connect({ ...connection, consistency: c.consistency });
    opened.push(journal);

    const redis = { connection: config.redis.url, keyPrefix: config.redis.keyPrefix, logger: logger.child({ adapter: 'redis' }) };
    const bus = new RedisLiveBus({ ...redis, registry });
    opened.push(bus);
    const cache = new RedisQueryCache(redis);
    opened.push(cache);
    const currentVisitors = new RedisCurrentVisitors(redis);
    opened.push(currentVisitors);
    return {
      eventLog, store, archive, bus, cache, currentVisitors, accountStore, directory, journal,
      positions: eventLog, replayLog: eventLog, tapLog: (log) => log, archiveIntact: () => true, close: closeAll,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

export interface StartOptions {
  /** Tests wrap the event log to make it slow or failing (overload, backpressure). */
  readonly wrapEventLog?: (log: EventLog) => EventLog;
}

export async function startApp(config: Config, logger: Logger, options: StartOptions = {}): Promise<App> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const runsGateway = config.roles.includes('gateway');
  const adapters = config.mode === 'embedded' ? embeddedAdapters(config, runsGateway) : await distributedAdapters(config, logger, registry, runsGateway);
  const { store, archive, bus, cache, currentVisitors } = adapters;
  const eventLog = options.wrapEventLog ? options.wrapEventLog(adapters.eventLog) : adapters.eventLog;
  const runsAggregate = config.roles.includes('aggregate');
  const runsArchive = config.roles.includes('archive');

  let aggregator: Aggregator | undefined;
  let tap: EventTap | undefined;
  // Invalidation on the writer side: the cache is bumped after rows are written, before the notice.
  const invalidatingBus = createInvalidatingLiveBus(bus, cache, { logger: logger.child({ stage: 'cache' }) });
  if (runsAggregate) {
    aggregator = new Aggregator({
      log: eventLog, positions: adapters.positions, store, bus: invalidatingBus,
      topic: config.eventLog.eventsTopic, lateTopic: config.eventLog.lateTopic, deadLetterTopic: config.eventLog.deadLetterTopic,
      config: config.aggregate, registry, logger: logger.child({ stage: 'aggregate' }),
      retention: tierRetentionFromDays(config.rollups), logic: PROCESSING_LOGIC,
    });
    await aggregator.start();
    await recordLiveLogic({ directory: adapters.directory, store, scope: config.aggregate.groupId, logic: PROCESSING_LOGIC });
  }
  if (runsArchive) {
    tap = new EventTap({
      log: adapters.tapLog(eventLog), topic: config.eventLog.eventsTopic, lateTopic: config.eventLog.lateTopic, groupId: `${config.aggregate.groupId}-tap`,
      archive, currentVisitors, registry, logger: logger.child({ stage: 'tap' }),
    });
    await tap.start();
  }

  let bootstrapAdminKey: string | undefined;
  let accounts: Accounts | undefined;
  let watcher: RevocationWatcher | undefined;
  let ops: OpsModule | undefined;
  let ingest: IngestService | undefined;
  let query: QueryService | undefined;
  let gateway: Gateway | undefined;
  let http: HttpServer | undefined;
  let ready = false;
  let ports: AppPorts;
  if (runsGateway && adapters.accountStore) {
    const accountStore = adapters.accountStore;
    accounts = new Accounts(accountStore, { defaultTimeZone: config.query.defaultTimeZone });
    if (!hasStaticAdmin(config.gateway.apiKeys)) bootstrapAdminKey = (await accounts.bootstrapAdminKey()) ?? undefined;
    ingest = createIngestService({
      log: eventLog, topic: config.eventLog.eventsTopic, config: config.ingest, registry, logger: logger.child({ stage: 'ingest' }),
    });
    ops = createOpsModule({
      store, archive, directory: adapters.directory, journal: adapters.journal, bus: invalidatingBus, logic: PROCESSING_LOGIC,
      aggregate: config.aggregate, eventsTopic: config.eventLog.eventsTopic, tapGroupId: `${config.aggregate.groupId}-tap`,
      positions: adapters.positions, replayLog: adapters.replayLog, rawRetentionMs: config.cassandra.rawRetentionDays * DAY_MS,
      archiveIntact: () => adapters.archiveIntact(), options: config.ops, logger: logger.child({ stage: 'ops' }),
    });
    query = createQueryService({
      // Each day is read from its active rollup version (live, or a reprocess switched to).
      store: ops.readStore, archive, cache, provenance: (site, fromMs, toMs) => ops!.readStore.provenance(site, fromMs, toMs), cacheTtlMs: config.redis.queryCacheTtlMs, logger: logger.child({ stage: 'query' }),
      settings: storeSiteSettings({
        getSite: (id) => accountStore.getSite(id), fallback: configSiteSettings(config.sites), cacheMs: config.accounts.siteSettingsCacheMs,
      }),
      retention: config.rollups, defaultTimeZone: config.query.defaultTimeZone,
      maxRawScanEvents: config.query.maxRawScanEvents, sessionTimeoutMs: config.aggregate.sessionTimeoutMs,
    });
    const adminHandlers = createAdminHandlers(createAdminService(accounts, accountStore), {
      erase: createVisitorErasure(archive, config.ingest.visitorSecret),
      // This process closes the key's connections at once; others at their next poll.
      onRevoked: (keyId) => gateway?.revoke([keyId]),
    });
    gateway = new Gateway({
      config: config.gateway, ingest, query, bus, currentVisitors, registry,
      authenticator: createAuthenticator(new ApiKeys(config.gateway.apiKeys), accounts),
      limits: config.limits, authorizationCacheMs: config.accounts.authorizationCacheMs,
      // Modules serving routes outside the core (ops.*) join theirs here.
      handlers: joinHandlers(adminHandlers, ops.handlers),
      logger: logger.child({ stage: 'gateway' }), ready: () => ready,
    });
    const gw = gateway;
    watcher = new RevocationWatcher({
      store: accountStore, pollMs: config.accounts.revocationPollMs, onRevoked: (ids) => gw.revoke(ids), logger: logger.child({ stage: 'accounts' }),
    });
    watcher.start();
    const p = await gateway.start();
    ports = { tcp: p.tcp, ws: p.ws, http: p.http };
  } else {
    http = new HttpServer({ host: config.gateway.host, port: config.gateway.httpPort, registry, ready: () => ready });
    ports = { http: await http.start() };
  }
  ready = true;

  let stopping: Promise<void> | undefined;
  return {
    ports, bootstrapAdminKey, accounts, registry, ingest, query, aggregator, eventLog,
    stop() {
      stopping ??= (async () => {
        ready = false;
        // Gateway first so nothing new arrives; then the aggregator flushes and commits what it holds.
        watcher?.stop();
        await gateway?.stop();
        await ops?.stop();
        await http?.close();
        await aggregator?.stop();
        await tap?.stop();
        await invalidatingBus.close();
        await adapters.close();
      })();
      return stopping;
    },
  };
}
