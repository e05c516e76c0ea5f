/**
 * Turns an RSocket request payload into a validated (route, body) pair, or a SluiceError with
 * the catalog code for what is wrong. Pure: no I/O, so every hostile-input case is unit-tested.
 * Both the numeric well-known MIME id and the string form of the routing entry are accepted.
 */
import { WellKnownMimeType, decodeCompositeMetadata, decodeRoutes } from 'rsocket-composite-metadata';
import type { Static } from '@sinclair/typebox';
import { isAscii, isUtf8 } from 'node:buffer';
import { MIME } from '../../protocol/mime.js';
import { ROUTES, isRouteName, type Interaction, type RouteName } from '../../protocol/routes.js';
import { compileValidator, type Validator } from '../../protocol/validate.js';
import { SluiceError } from '../errors.js';

type RouteBodies = { [R in RouteName]: Static<(typeof ROUTES)[R]['request']> };

export type RoutedRequest = { [R in RouteName]: { readonly route: R; readonly body: RouteBodies[R] } }[RouteName];

const validators = Object.fromEntries(
  Object.entries(ROUTES).map(([name, spec]) => [name, compileValidator(spec.request)]),
) as { [R in RouteName]: Validator<(typeof ROUTES)[R]['request']> };

const ROUTING_ID = WellKnownMimeType.MESSAGE_RSOCKET_ROUTING.identifier;

/**
 * The last routing metadata decoded and its route. A client sends the same metadata with
 * every request, and comparing bytes is far cheaper than decoding composite metadata, which
 * single-event fire-and-forget frames would otherwise pay per event. A pure function of the
 * bytes, so one entry serves every connection.
 */
let lastMetadata: Buffer | undefined;
let lastRoute: string | undefined;
const MAX_REMEMBERED_METADATA_BYTES = 256;

/** The first route named in the composite metadata, or undefined when there is none. */
export function routeOf(metadata: Buffer | undefined | null): string | undefined {
  if (!metadata || metadata.length === 0) return undefined;
  if (lastMetadata !== undefined && metadata.equals(lastMetadata)) return lastRoute;
  const route = decodeRouteOf(metadata);
  if (metadata.length <= MAX_REMEMBERED_METADATA_BYTES) {
    // A copy: the metadata is a view of the request frame, which must not be kept alive.
    lastMetadata = Buffer.from(metadata);
    lastRoute = route;
  }
  return route;
}

function decodeRouteOf(metadata: Buffer): string | undefined {
  let entries;
  try {
    // Decode eagerly so that a malformed buffer fails here, inside the try.
    entries = [...decodeCompositeMetadata(metadata)];
  } catch (e) {
    throw new SluiceError('METADATA_MALFORMED', `request metadata is not composite metadata: ${(e as Error).message}`);
  }
  for (const entry of entries) {
    const typed = entry as { mimeType?: string; type?: unknown };
    const isRouting = typed.mimeType === MIME.routing || typed.type === MIME.routing || typed.type === ROUTING_ID
      || (typeof typed.type === 'object' && typed.type !== null && (typed.type as { identifier?: unknown }).identifier === ROUTING_ID);
    if (!isRouting) continue;
    try {
      for (const route of decodeRoutes(entry.content)) return route;
    } catch (e) {
      throw new SluiceError('METADATA_MALFORMED', `routing entry is malformed: ${(e as Error).message}`);
    }
    return undefined;
  }
  return undefined;
}

/** JSON from UTF-8 bytes; rejects invalid UTF-8 rather than silently replacing it. */
export function parseJson(data: Buffer | undefined | null): unknown {
  if (!data || data.length === 0) throw new SluiceError('PAYLOAD_INVALID_JSON', 'request data is empty; expected JSON');
  // isAscii and isUtf8 are native scans, far cheaper than a fatal TextDecoder on the ingest hot
  // path. ASCII (nearly all traffic) decodes as Latin-1, a plain copy, to the same string.
  const ascii = isAscii(data);
  if (!ascii && !isUtf8(data)) throw new SluiceError('PAYLOAD_INVALID_JSON', 'request data is not valid UTF-8');
  try {
    return JSON.parse(data.toString(ascii ? 'latin1' : 'utf8'));
  } catch (e) {
    throw new SluiceError('PAYLOAD_INVALID_JSON', `request data is not UTF-8 JSON: ${(e as Error).message}`);
  }
}

export function routeRequest(
  interaction: Interaction,
  payload: { readonly data?: Buffer | null; readonly metadata?: Buffer | null },
  maxDataBytes: number,
): RoutedRequest {
  const route = routeOf(payload.metadata);
  if (route === undefined) throw new SluiceError('ROUTE_MISSING', 'request metadata names no route (composite metadata with a routing entry)');
  if (!isRouteName(route)) throw new SluiceError('ROUTE_UNKNOWN', `no route "${route.slice(0, 100)}"`);
  const spec = ROUTES[route];
  if (spec.interaction !== interaction) {
    throw new SluiceError('ROUTE_WRONG_INTERACTION', `route "${route}" is ${spec.interaction}, not ${interaction}`);
  }
  if (payload.data && payload.data.length > maxDataBytes) {
    throw new SluiceError('PAYLOAD_TOO_LARGE', `request data is ${payload.data.length} bytes; at most ${maxDataBytes}`);
  }
  const body = parseJson(payload.data);
  const result = validators[route](body);
  if (!result.ok) throw new SluiceError('PAYLOAD_SCHEMA', `${route}: ${result.message}`);
  return { route, body: result.value } as RoutedRequest;
}
