/** Admin routes: organisations, sites, users and keys (admin-schema.ts). Every one needs an admin key. */
import type { RouteSpec } from './route-spec.js';

export const ADMIN_ROUTES = {
} as const satisfies Record<string, RouteSpec>;
