/** Operations routes: reprocessing, replay, import and export (ops-schema.ts, ops.md). Every one needs an admin key. */
import {
  ExportMessage, ExportRequest, ReplayRequest, ReplayResponse, ReprocessMessage, ReprocessRequest, RunsRequest, RunsResponse,
  VersionsRequest, VersionsResponse,
} from './ops-schema.js';
import type { RouteSpec } from './route-spec.js';

export const OPS_ROUTES = {
  'ops.reprocess': { interaction: 'requestStream', request: ReprocessRequest, response: ReprocessMessage },
  'ops.runs': { interaction: 'requestResponse', request: RunsRequest, response: RunsResponse },
  'ops.versions': { interaction: 'requestResponse', request: VersionsRequest, response: VersionsResponse },
  'ops.replay': { interaction: 'requestResponse', request: ReplayRequest, response: ReplayResponse },
  'ops.export': { interaction: 'requestStream', request: ExportRequest, response: ExportMessage },
} as const satisfies Record<string, RouteSpec>;
