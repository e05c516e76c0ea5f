/**
 * The composition root: the only module that knows which adapters run. Builds the embedded
 * default (every seam in memory) and wires gateway, ingest, aggregation and queries.
 * `main.ts` is the command line around it; end-to-end tests start it in-process on port 0.
 */
import { Registry, collectDefaultMetrics } from 'prom-client';
import { MemoryEventLog } from './adapters/memory/memory-event-log.js';
import { MemoryLiveBus } from './adapters/memory/memory-live-bus.js';
import { MemoryRollupStore } from './adapters/memory/memory-rollup-store.js';
import { Aggregator } from './aggregate/aggregator.js';
import type { Config } from './config.js';
import { ApiKeys } from './gateway/api-keys.js';
import { Gateway, type GatewayPorts } from './gateway/gateway.js';
import { createIngestService, type IngestService } from './ingest/ingest-service.js';
import type { Logger } from './log.js';
import { createQueryService, type QueryService } from './query/query-service.js';

export interface App {
  readonly ports: GatewayPorts;
  /** Set when no key was configured: the generated key, shown once at start. */
  readonly generatedApiKey: string | undefined;
  readonly registry: Registry;
  readonly ingest: IngestService;
  readonly query: QueryService;
  readonly aggregator: Aggregator;
  readonly eventLog: MemoryEventLog;
  stop(): Promise<void>;
}

export async function startApp(config: Config, logger: Logger): Promise<App> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const eventLog = new MemoryEventLog({ partitions: config.eventLog.partitions });
  const store = new MemoryRollupStore();
  const bus = new MemoryLiveBus();

  let generatedApiKey: string | undefined;
  let keyEntries = config.gateway.apiKeys;
  if (keyEntries.length === 0) {
    generatedApiKey = ApiKeys.generateKey();
    keyEntries = [generatedApiKey];
  }
  const apiKeys = new ApiKeys(keyEntries);

  const ingest = createIngestService({
    log: eventLog, topic: config.eventLog.eventsTopic, config: config.ingest, registry, logger: logger.child({ stage: 'ingest' }),
  });
  const aggregator = new Aggregator({
    log: eventLog, store, bus,
    topic: config.eventLog.eventsTopic, lateTopic: config.eventLog.lateTopic, deadLetterTopic: config.eventLog.deadLetterTopic,
    config: config.aggregate, registry, logger: logger.child({ stage: 'aggregate' }),
  });
  const query = createQueryService({ store });

  await aggregator.start();
  let ready = false;
  const gateway = new Gateway({
    config: config.gateway, ingest, query, bus, registry, apiKeys,
    logger: logger.child({ stage: 'gateway' }), ready: () => ready,
  });
  const ports = await gateway.start();
  ready = true;

  let stopping: Promise<void> | undefined;
  return {
    ports, generatedApiKey, registry, ingest, query, aggregator, eventLog,
    stop() {
      stopping ??= (async () => {
        ready = false;
        // Gateway first so nothing new arrives; then the aggregator flushes what it holds.
        await gateway.stop();
        await aggregator.stop();
        await eventLog.close();
        await bus.close();
        await store.close();
      })();
      return stopping;
    },
  };
}
