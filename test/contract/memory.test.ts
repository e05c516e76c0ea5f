/** The seam contracts against the in-memory implementations (the embedded default). */
import { MemoryEventLog } from '../../src/adapters/memory/memory-event-log.js';
import { MemoryLiveBus } from '../../src/adapters/memory/memory-live-bus.js';
import { MemoryRollupStore } from '../../src/adapters/memory/memory-rollup-store.js';
import { eventLogContract } from './event-log.contract.js';
import { liveBusContract } from './live-bus.contract.js';
import { rollupStoreContract } from './rollup-store.contract.js';

eventLogContract('memory', async () => {
  const log = new MemoryEventLog({ partitions: 4, retryDelayMs: 5 });
  return { log, createTopic: async () => {}, close: () => log.close() };
});

rollupStoreContract('memory', async (options) => {
  const store = new MemoryRollupStore(options);
  return { store, close: () => store.close() };
});

liveBusContract('memory', async () => {
  const bus = new MemoryLiveBus();
  return { a: bus, b: bus, close: () => bus.close() };
});
