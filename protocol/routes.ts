/**
 * Every route the server offers, its interaction model and its request and response schemas.
 * The gateway dispatches from this table; the README documents each entry (a test checks).
 */
import type { TSchema } from '@sinclair/typebox';
import {
  BreakdownRequest, BreakdownResponse, CurrentVisitorsRequest, CurrentVisitorsResponse, IngestAck, IngestBatchRequest, IngestEnvelope, LiveMessage, LiveRequest,
  TimeseriesRequest, TimeseriesResponse, TotalsRequest, TotalsResponse,
} from './schema.js';
import { LiveQueryMessage, QueryRequest, QueryResponse } from './query-schema.js';

export type Interaction = 'fireAndForget' | 'requestResponse' | 'requestStream';

export interface RouteSpec {
  readonly interaction: Interaction;
  readonly request: TSchema;
  /** Response schema; for streams, the schema of each message; absent for fire-and-forget. */
  readonly response?: TSchema;
}

export const ROUTES = {
  'ingest.events': { interaction: 'fireAndForget', request: IngestEnvelope },
  'ingest.batch': { interaction: 'requestResponse', request: IngestBatchRequest, response: IngestAck },
  'query.timeseries': { interaction: 'requestResponse', request: TimeseriesRequest, response: TimeseriesResponse },
  'query.totals': { interaction: 'requestResponse', request: TotalsRequest, response: TotalsResponse },
  'query.breakdown': { interaction: 'requestResponse', request: BreakdownRequest, response: BreakdownResponse },
  'query.current': { interaction: 'requestResponse', request: CurrentVisitorsRequest, response: CurrentVisitorsResponse },
  'query.run': { interaction: 'requestResponse', request: QueryRequest, response: QueryResponse },
  'live.metrics': { interaction: 'requestStream', request: LiveRequest, response: LiveMessage },
  'live.query': { interaction: 'requestStream', request: QueryRequest, response: LiveQueryMessage },
} as const satisfies Record<string, RouteSpec>;

export type RouteName = keyof typeof ROUTES;

export function isRouteName(value: string): value is RouteName {
  return Object.prototype.hasOwnProperty.call(ROUTES, value);
}
