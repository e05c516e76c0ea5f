/**
 * `--demo`: sends realistic traffic through the real front door (RSocket over TCP, batched
 * fire-and-forget) and watches one site over a live stream on WebSocket, asking for one update
 * every two seconds — so the printed numbers show both live push and conflation at work.
 */
import type { LiveMessage, BreakdownResponse } from '../../protocol/schema.js';
import { SluiceClient } from '../client/sluice-client.js';
import type { Config } from '../config.js';
import type { GatewayPorts } from '../gateway/gateway.js';
import type { Logger } from '../log.js';
import { DemoTraffic } from './demo-traffic.js';

export async function startDemo(opts: { config: Config; ports: GatewayPorts; apiKey: string; logger: Logger }): Promise<() => Promise<void>> {
  const { config, ports, apiKey, logger } = opts;
  const host = config.gateway.host;
  const sites = Array.from({ length: config.demo.sites }, (_, i) => `demo-${i + 1}.example`);
  const traffic = new DemoTraffic({ sites, seed: Date.now() % 100_000 });
  const source = await SluiceClient.connect({ url: `tcp://${host}:${ports.tcp}`, apiKey });
  const dashboard = await SluiceClient.connect({ url: `ws://${host}:${ports.ws}`, apiKey });

  const tickMs = 200;
  const perTick = Math.max(1, Math.round((config.demo.eventsPerSecond * tickMs) / 1000));
  const sender = setInterval(() => source.sendEvents(traffic.batch(perTick, Date.now())), tickMs);
  logger.info({ sites, eventsPerSecond: config.demo.eventsPerSecond }, `demo traffic: sending to ${sites.join(', ')}; watching ${sites[0]} live`);

  const watched = sites[0]!;
  const stream = dashboard.stream<LiveMessage>('live.metrics', { site: watched, windowMinutes: 30 }, 1, {
    next: (m) => {
      const t = m.totals;
      logger.info(`live ${m.type.padEnd(8)} ${watched} last 30 min: ${t.pageviews} pageviews, ${t.events} events, ${t.visitors} visitors` +
        (m.type === 'update' ? ` (${m.points.length} minute bucket(s) changed)` : ''));
    },
    error: (e) => logger.error({ code: e.code }, `live stream failed: ${e.message}`),
  });
  const pacer = setInterval(() => stream.request(1), 2_000);
  const reporter = setInterval(() => {
    const to = Date.now();
    dashboard.request<BreakdownResponse>('query.breakdown', { site: watched, from: to - 30 * 60_000, to, dimension: 'source', limit: 5 }).then(
      (r) => logger.info(`top sources ${watched}: ${r.rows.map((row) => `${row.value} ${row.pageviews}`).join(', ')}`),
      (e: unknown) => logger.warn({ err: e }, 'breakdown query failed'),
    );
  }, 10_000);

  return async () => {
    clearInterval(sender);
    clearInterval(pacer);
    clearInterval(reporter);
    stream.cancel();
    source.close();
    dashboard.close();
  };
}
