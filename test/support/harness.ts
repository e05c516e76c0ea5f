/**
 * Starts the whole product in-process (the embedded default) on free ports, with one key for
 * every site and one restricted to a single site, for end-to-end tests over real sockets.
 */
import { startApp, type App, type StartOptions } from '../../src/app.js';
import type { Aggregator } from '../../src/aggregate/aggregator.js';
import { SluiceClient } from '../../src/client/sluice-client.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';

export const ADMIN_KEY = 'test-admin-key-0001';
export const SITE_A_KEY = 'test-site-a-key-0001';
export const SITE_A = 'site-a.example';
export const SITE_B = 'site-b.example';

export interface Harness {
  readonly app: App;
  /** The embedded default runs every role: these are always set. */
  readonly ports: { readonly tcp: number; readonly ws: number; readonly http: number };
  readonly aggregator: Aggregator;
  url(transport: 'tcp' | 'ws'): string;
  client(transport: 'tcp' | 'ws', apiKey?: string): Promise<SluiceClient>;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  stop(): Promise<void>;
}

export async function startHarness(overrides: Record<string, unknown> = {}, options: StartOptions = {}): Promise<Harness> {
  const config = loadConfig({
    logLevel: 'silent',
    gateway: { tcpPort: 0, wsPort: 0, httpPort: 0, apiKeys: [ADMIN_KEY, `${SITE_A_KEY}:${SITE_A}`], setupTimeoutMs: 1_000, ...(overrides.gateway as object | undefined) },
    aggregate: { flushIntervalMs: 25, maxOutOfOrderMs: 1_000, ...(overrides.aggregate as object | undefined) },
    eventLog: { partitions: 4 },
    ...Object.fromEntries(Object.entries(overrides).filter(([k]) => k !== 'gateway' && k !== 'aggregate')),
  });
  const app = await startApp(config, silentLogger(), options);
  const clients: SluiceClient[] = [];
  const url = (t: 'tcp' | 'ws') => (t === 'tcp' ? `tcp://127.0.0.1:${app.ports.tcp}` : `ws://127.0.0.1:${app.ports.ws}`);
  if (app.ports.tcp === undefined || app.ports.ws === undefined || !app.aggregator) throw new Error('harness needs the gateway and aggregate roles');
  return {
    app,
    ports: { tcp: app.ports.tcp, ws: app.ports.ws, http: app.ports.http },
    aggregator: app.aggregator,
    url,
    async client(transport, apiKey = ADMIN_KEY) {
      const c = await SluiceClient.connect({ url: url(transport), apiKey });
      clients.push(c);
      return c;
    },
    async metric(name, labels = {}) {
      const m = await app.registry.getSingleMetric(name)?.get();
      if (!m) throw new Error(`no metric ${name}`);
      return m.values
        .filter((v) => Object.entries(labels).every(([k, val]) => String((v.labels as Record<string, unknown>)[k]) === val))
        .reduce((sum, v) => sum + v.value, 0);
    },
    async stop() {
      for (const c of clients) c.close();
      await app.stop();
    },
  };
}
