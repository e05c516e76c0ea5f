/** The query-side seam contracts (query cache, current visitors) against the in-memory implementations. */
import { MemoryCurrentVisitors } from '../../src/adapters/memory/memory-current-visitors.js';
import { MemoryQueryCache } from '../../src/adapters/memory/memory-query-cache.js';
import { currentVisitorsContract } from './current-visitors.contract.js';
import { queryCacheContract } from './query-cache.contract.js';

queryCacheContract('memory', async () => {
  const cache = new MemoryQueryCache();
  return { a: cache, b: cache, close: () => cache.close() };
});

currentVisitorsContract('memory', async (now) => {
  const visitors = new MemoryCurrentVisitors({ now });
  return { a: visitors, b: visitors, close: () => visitors.close() };
});
