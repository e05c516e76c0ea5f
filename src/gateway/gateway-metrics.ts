/** The gateway's Prometheus metrics, registered once on the injected registry. */
import { Counter, Gauge, type Registry } from 'prom-client';

export interface GatewayMetrics {
  readonly requests: Counter<'route' | 'outcome'>;
  readonly errors: Counter<'code'>;
  readonly fnfDropped: Counter<'code'>;
  readonly liveStreams: Gauge;
  readonly connections: Gauge<'transport'>;
  readonly readPauses: Counter;
  /** Requests or connections refused by a limit: ingest_rate, query_rate, connections, streams, payload_size. */
  readonly limitRejections: Counter<'limit'>;
  /** SETUPs refused for their credential or the connection limit, by catalog code. */
  readonly setupRejections: Counter<'code'>;
  /** Open connections closed because their key was revoked or expired, by catalog code. */
  readonly keyClosures: Counter<'code'>;
}

export function createGatewayMetrics(registry: Registry): GatewayMetrics {
  return {
    requests: new Counter({ name: 'sluice_gateway_requests_total', help: 'Requests by route and outcome (ok or the error code).', labelNames: ['route', 'outcome'], registers: [registry] }),
    errors: new Counter({ name: 'sluice_gateway_errors_total', help: 'Errors sent, by catalog code.', labelNames: ['code'], registers: [registry] }),
    fnfDropped: new Counter({ name: 'sluice_gateway_fnf_dropped_total', help: 'Fire-and-forget requests dropped whole, by catalog code (there is no one to tell).', labelNames: ['code'], registers: [registry] }),
    liveStreams: new Gauge({ name: 'sluice_gateway_live_streams', help: 'Live request-streams open now.', registers: [registry] }),
    connections: new Gauge({ name: 'sluice_gateway_connections', help: 'RSocket connections open now, by transport.', labelNames: ['transport'], registers: [registry] }),
    readPauses: new Counter({ name: 'sluice_gateway_read_pauses_total', help: 'Times a connection stopped being read because the event log was full.', registers: [registry] }),
    limitRejections: new Counter({ name: 'sluice_limit_rejections_total', help: 'Requests and connections refused by a per-tenant limit (per process), by limit.', labelNames: ['limit'], registers: [registry] }),
    setupRejections: new Counter({ name: 'sluice_gateway_setup_rejections_total', help: 'SETUPs refused for their credential or the connection limit, by catalog code.', labelNames: ['code'], registers: [registry] }),
    keyClosures: new Counter({ name: 'sluice_gateway_key_closures_total', help: 'Open connections closed because their key was revoked or expired, by catalog code.', labelNames: ['code'], registers: [registry] }),
  };
}
