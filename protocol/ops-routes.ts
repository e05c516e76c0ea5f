/** Operations routes: reprocessing, replay, import and export. Every one needs an admin key. */
import type { RouteSpec } from './route-spec.js';

export const OPS_ROUTES = {
} as const satisfies Record<string, RouteSpec>;
