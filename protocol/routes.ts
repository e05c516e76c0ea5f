/**
 * Every route the server offers, its interaction model and its request and response schemas.
 * The gateway dispatches from this table; the README documents each entry (a test checks).
 */
import type { TSchema } from '@sinclair/typebox';
import {
  BreakdownRequest, BreakdownResponse, CurrentVisitorsRequest, CurrentVisitorsResponse, IngestAck, IngestBatchRequest, IngestEnvelope, LiveMessage, LiveRequest,
  TimeseriesRequest, TimeseriesResponse, TotalsRequest, TotalsResponse,
} from './schema.js';
import { ADMIN_ROUTES } from './admin-routes.js';
import { OPS_ROUTES } from './ops-routes.js';
import { LiveQueryMessage, QueryRequest, QueryResponse } from './query-schema.js';
import type { RouteSpec } from './route-spec.js';

export type { Interaction, RouteSpec } from './route-spec.js';

/** Ingest, queries and live streams; admin (accounts) and ops (reprocess, import, export) routes live in their own tables. */
export const CORE_ROUTES = {
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

export const ROUTES = { ...CORE_ROUTES, ...ADMIN_ROUTES, ...OPS_ROUTES } as const satisfies Record<string, RouteSpec>;

export type RouteName = keyof typeof ROUTES;

export function isRouteName(value: string): value is RouteName {
  return Object.prototype.hasOwnProperty.call(ROUTES, value);
}
