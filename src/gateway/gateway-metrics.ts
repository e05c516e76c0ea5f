/** The gateway's Prometheus metrics, registered once on the injected registry. */
import { Counter, Gauge, type Registry } from 'prom-client';

export interface GatewayMetrics {
  readonly requests: Counter<'route' | 'outcome'>;
  readonly errors: Counter<'code'>;
  readonly fnfDropped: Counter<'code'>;
  readonly liveStreams: Gauge;
  readonly connections: Gauge<'transport'>;
  readonly readPauses: Counter;
}

export function createGatewayMetrics(registry: Registry): GatewayMetrics {
  return {
    requests: new Counter({ name: 'sluice_gateway_requests_total', help: 'Requests by route and outcome (ok or the error code).', labelNames: ['route', 'outcome'], registers: [registry] }),
    errors: new Counter({ name: 'sluice_gateway_errors_total', help: 'Errors sent, by catalog code.', labelNames: ['code'], registers: [registry] }),
    fnfDropped: new Counter({ name: 'sluice_gateway_fnf_dropped_total', help: 'Fire-and-forget requests dropped whole, by catalog code (there is no one to tell).', labelNames: ['code'], registers: [registry] }),
    liveStreams: new Gauge({ name: 'sluice_gateway_live_streams', help: 'Live request-streams open now.', registers: [registry] }),
    connections: new Gauge({ name: 'sluice_gateway_connections', help: 'RSocket connections open now, by transport.', labelNames: ['transport'], registers: [registry] }),
    readPauses: new Counter({ name: 'sluice_gateway_read_pauses_total', help: 'Times a connection stopped being read because the event log was full.', registers: [registry] }),
  };
}
