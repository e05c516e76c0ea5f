/**
 * Tenants for the tenancy, admin and limits end-to-end tests, made the way an operator makes
 * them: through the admin routes over RSocket with a deployment admin key. Each tenant has an
 * organisation, a site (with an allowed browser origin), a user, and one key of every scope.
 *
 * Also a minimal RSocket client that sends an `Origin` header on its WebSocket upgrade, as a
 * browser does (SluiceClient has no option for it): for public site ids.
 */
import type { TSchema } from '@sinclair/typebox';
import { RSocketConnector, type RSocket } from 'rsocket-core';
import { WellKnownMimeType, encodeBearerAuthMetadata, encodeCompositeMetadata, encodeRoute } from 'rsocket-composite-metadata';
import { WebsocketClientTransport } from 'rsocket-websocket-client';
import WebSocket from 'ws';
import type { ApiKeyInfo, KeyScope, Organisation, Site, User } from '../../protocol/admin-schema.js';
import { parseErrorBody } from '../../protocol/errors.js';
import { MIME } from '../../protocol/mime.js';
import { ROUTES, type RouteSpec } from '../../protocol/routes.js';
import type { IngestAck } from '../../protocol/schema.js';
import { compileValidator } from '../../protocol/validate.js';
import { SluiceClientError, type SluiceClient, type StreamHandle, type StreamHandlers } from '../../src/client/sluice-client.js';

export type ScopeName = 'ingest' | 'read' | 'site' | 'admin';

export interface Tenant {
  readonly name: string;
  readonly org: Organisation;
  readonly site: Site;
  readonly origin: string;
  readonly user: User;
  readonly keys: Readonly<Record<ScopeName, { readonly secret: string; readonly info: ApiKeyInfo }>>;
}

/** Create a tenant: organisation `${name}-org`, site `site` (or `${name}.example`), its user and keys. */
export async function createTenant(admin: SluiceClient, name: string, site = `${name}.example`): Promise<Tenant> {
  const org = await admin.request<Organisation>('admin.org.create', { name: `Tenant ${name}`, id: `${name}-org` });
  const origin = `https://www.${site}`;
  const created = await admin.request<Site>('admin.site.create', {
    orgId: org.id, id: site, domains: [site], timeZone: 'Asia/Kathmandu', allowedOrigins: [origin],
    goals: [{ name: `${name}-goal`, page: '/signup' }],
  });
  const user = await admin.request<User>('admin.user.create', { orgId: org.id, email: `owner@${site}`, roles: { [site]: 'owner' } });
  const scopes: Record<ScopeName, KeyScope> = {
    ingest: { kind: 'ingest', site },
    read: { kind: 'read', sites: [site] },
    site: { kind: 'site', sites: [site] },
    admin: { kind: 'admin', orgId: org.id },
  };
  const keys = {} as Record<ScopeName, { secret: string; info: ApiKeyInfo }>;
  for (const [scopeName, scope] of Object.entries(scopes) as Array<[ScopeName, KeyScope]>) {
    const k = await admin.request<{ secret: string; key: ApiKeyInfo }>('admin.key.create', { orgId: org.id, scope, label: `${name} ${scopeName}` });
    keys[scopeName] = { secret: k.secret, info: k.key };
  }
  return { name, org, site: created, origin, user, keys };
}

/** Strings that identify a tenant: a response to another tenant that contains one of them leaked. */
export function markersOf(t: Tenant): string[] {
  return [t.org.id, t.site.id, t.site.publicId, t.user.id, t.user.email, ...Object.values(t.keys).map((k) => k.info.id), `${t.name}-goal`];
}

const HOUR = 3_600_000;
const DAY = 86_400_000;
/** What a refused call may answer: nothing else is a clean refusal. */
export const REFUSALS = ['FORBIDDEN', 'SITE_FORBIDDEN', 'ADMIN_NOT_FOUND'];



/** A request body for `route` aimed at the victim's records. */
export function victimBody(route: string, spec: RouteSpec, v: Tenant, now: number): unknown {
  const site = v.site.id;
  const range = { site, from: now - HOUR, to: now + HOUR };
  const event = { type: 'pageview', site, url: `https://${site}/stolen`, timestamp: now };
  const known: Record<string, unknown> = {
    'ingest.events': { events: [event] },
    'ingest.batch': { events: [event] },
    'query.timeseries': { ...range, interval: 'hour' },
    'query.totals': range,
    'query.breakdown': { ...range, dimension: 'page' },
    'query.current': { site },
    'query.run': { site, metrics: ['pageviews', 'visitors'], date_range: '7d' },
    'live.metrics': { site },
    'live.query': { site, metrics: ['pageviews'], date_range: 'realtime' },
    'admin.org.create': { name: 'Intruder' },
    'admin.org.list': {},
    'admin.site.create': { orgId: v.org.id, id: `intruder.${site}` },
    'admin.site.update': { id: site, timeZone: 'UTC', allowedOrigins: ['https://evil.example'] },
    'admin.site.list': { orgId: v.org.id },
    'admin.user.create': { orgId: v.org.id, email: 'intruder@evil.example', roles: {} },
    'admin.user.list': { orgId: v.org.id },
    'admin.key.create': { orgId: v.org.id, scope: { kind: 'read', sites: [site] } },
    'admin.key.list': { orgId: v.org.id },
    'admin.key.revoke': { id: v.keys.read.info.id },
    'admin.key.rotate': { id: v.keys.admin.info.id },
    'admin.visitor.erase': { site, visitor: 'victim-visitor', from: now - HOUR, to: now + HOUR },
  };
  const body = route in known ? known[route] : aimAtVictim(sampleOf(spec.request), v, now);
  const valid = compileValidator(spec.request as TSchema)(body);
  if (!valid.ok) throw new Error(`no valid request body aimed at the victim for route ${route} (${valid.message}): add one to victimBody`);
  return body;
}

/**
 * A minimal value of a request schema: required properties only, the first member of a union,
 * the smallest number, a one-letter string. Fields that name records are then aimed at the
 * victim (aimAtVictim); a schema this cannot satisfy needs an entry in victimBody.
 */
function sampleOf(schema: TSchema): unknown {
  const s = schema as {
    type?: string; const?: unknown; anyOf?: TSchema[]; properties?: Record<string, TSchema>; required?: string[];
    minimum?: number; minLength?: number; minItems?: number; items?: TSchema;
  };
  if (s.const !== undefined) return s.const;
  if (s.anyOf) return sampleOf(s.anyOf[0]!);
  switch (s.type) {
    case 'object':
      return Object.fromEntries((s.required ?? []).map((k) => [k, sampleOf(s.properties![k]!)]));
    case 'array':
      return Array.from({ length: s.minItems ?? 0 }, () => sampleOf(s.items!));
    case 'integer':
    case 'number':
      return s.minimum ?? 0;
    case 'boolean':
      return false;
    case 'string':
      return 'x'.repeat(Math.max(1, s.minLength ?? 1));
    default:
      return null;
  }
}

/** A generated body with every field that names a tenant's record pointed at the victim's. */
function aimAtVictim(value: unknown, v: Tenant, now: number): unknown {
  if (Array.isArray(value)) return value.map((x) => aimAtVictim(x, v, now));
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(value)) {
    out[k] = k === 'site' ? v.site.id
      : k === 'sites' ? [v.site.id]
        : k === 'orgId' ? v.org.id
          : k === 'keyId' ? v.keys.read.info.id
            // UTC midnights: valid for routes that take whole days, and a range for those that do not.
            : k === 'from' ? Math.floor(now / DAY) * DAY - DAY
              : k === 'to' ? Math.floor(now / DAY) * DAY
                : aimAtVictim(x, v, now);
  }
  return out;
}


/**
 * Calls every route of protocol/routes.ts on `client`, each aimed at the victim's records, and
 * lists what got through (`leaks`, empty when nothing did). Routes of the table the server
 * answers with ROUTE_UNKNOWN (no handlers registered) are listed apart (`unserved`): they leak
 * nothing, but they were not checked either. Fire-and-forget requests cannot be answered: they
 * are only counted (`fireAndForget`), for the caller to check their effect.
 */
export async function attackEveryRoute(
  client: TestClient, victim: Tenant, now: number, who: string,
): Promise<{ leaks: string[]; unserved: string[]; fireAndForget: number }> {
  const markers = markersOf(victim);
  const leaks: string[] = [];
  const unserved = new Set<string>();
  let fireAndForget = 0;
  const unclean = (route: string, where: string, code: string | undefined, message: string | undefined) => {
    if (code === 'ROUTE_UNKNOWN') unserved.add(route);
    else leaks.push(`${where}: ended with ${code ?? message}`);
  };
  for (const [route, spec] of Object.entries(ROUTES) as Array<[string, RouteSpec]>) {
    const body = victimBody(route, spec, victim, now);
    const where = `${route} with ${who}`;
    if (spec.interaction === 'fireAndForget') {
      client.fireAndForget(route, body);
      fireAndForget++;
      continue;
    }
    if (spec.interaction === 'requestStream') {
      // Ends at the first of: an error, completion, a message (a leak: the stream is cancelled).
      const end = await new Promise<{ error?: SluiceClientError; message?: unknown }>((resolve) => {
        const handle = client.stream(route, body, 10, {
          next: (message) => { handle.cancel(); resolve({ message }); },
          error: (error) => resolve({ error }),
          complete: () => resolve({ error: new SluiceClientError('the stream completed', undefined, undefined, false) }),
        });
      });
      if (end.message !== undefined) leaks.push(`${where}: a stream message ${JSON.stringify(end.message).slice(0, 200)}`);
      else if (!REFUSALS.includes(end.error?.code ?? '')) unclean(route, where, end.error?.code, end.error?.message);
      continue;
    }
    try {
      const response = await client.request<unknown>(route, body);
      if (route === 'ingest.batch') {
        const ack = response as IngestAck;
        if (ack.accepted !== 0 || ack.duplicates !== 0 || ack.rejected.some((r) => r.code !== 'SITE_FORBIDDEN')) leaks.push(`${where}: ${JSON.stringify(ack)}`);
        continue;
      }
      const text = JSON.stringify(response);
      const named = markers.filter((m) => text.includes(m));
      if (named.length > 0) leaks.push(`${where}: answered with ${named.join(', ')}: ${text.slice(0, 300)}`);
    } catch (e) {
      const code = (e as SluiceClientError).code;
      if (!REFUSALS.includes(code ?? '')) unclean(route, where, code, (e as Error).message);
    }
  }
  return { leaks, unserved: [...unserved], fireAndForget };
}

/** What the tenancy tests need of a client; SluiceClient has it, and so does OriginClient. */
export interface TestClient {
  request<T>(route: string, body: unknown): Promise<T>;
  fireAndForget(route: string, body: unknown): void;
  stream<T>(route: string, body: unknown, initialRequest: number, handlers: StreamHandlers<T>): StreamHandle;
  onClose(listener: (error?: Error) => void): void;
  close(): void;
}

function clientError(e: unknown, closeCause: SluiceClientError | undefined): SluiceClientError {
  const err = e as { message?: unknown; code?: unknown };
  const message = typeof err?.message === 'string' ? err.message : String(e);
  const body = parseErrorBody(message) ?? parseErrorBody(/\{"code":.*\}/.exec(message)?.[0] ?? '');
  if (body) return new SluiceClientError(body.message, body.code, typeof err?.code === 'number' ? err.code : undefined, body.retryable);
  return closeCause ?? new SluiceClientError(message, undefined, undefined, false);
}

/** A WebSocket RSocket client whose upgrade carries `Origin: origin` (a browser's). */
export async function connectWithOrigin(url: string, token: string, origin: string | undefined): Promise<TestClient> {
  const transport = new WebsocketClientTransport({
    url,
    wsCreator: (u) => new WebSocket(u, origin === undefined ? {} : { origin }) as unknown as globalThis.WebSocket,
  });
  const connector = new RSocketConnector({
    transport,
    setup: {
      dataMimeType: MIME.json, metadataMimeType: MIME.compositeMetadata, keepAlive: 20_000, lifetime: 90_000,
      payload: { data: null, metadata: encodeCompositeMetadata([[WellKnownMimeType.MESSAGE_RSOCKET_AUTHENTICATION, encodeBearerAuthMetadata(token)]]) },
    },
  });
  const rsocket: RSocket = await connector.connect();
  let closeCause: SluiceClientError | undefined;
  let closed = false;
  rsocket.onClose((e) => {
    closed = true;
    if (e) closeCause = clientError(e, undefined);
  });
  const payload = (route: string, body: unknown) => ({
    data: Buffer.from(JSON.stringify(body)),
    metadata: encodeCompositeMetadata([[WellKnownMimeType.MESSAGE_RSOCKET_ROUTING, encodeRoute(route)]]),
  });
  return {
    request<T>(route: string, body: unknown): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        rsocket.requestResponse(payload(route, body), {
          onNext: (p) => resolve(JSON.parse(p.data?.toString('utf8') ?? 'null') as T),
          onComplete: () => reject(new SluiceClientError('empty response', undefined, undefined, false)),
          onError: (e) => reject(clientError(e, closeCause)),
          onExtension() {},
        });
      });
    },
    fireAndForget(route, body) {
      rsocket.fireAndForget(payload(route, body), { onComplete() {}, onError() {} });
    },
    stream<T>(route: string, body: unknown, initialRequest: number, handlers: StreamHandlers<T>): StreamHandle {
      const s = rsocket.requestStream(payload(route, body), initialRequest, {
        onNext: (p) => handlers.next(JSON.parse(p.data?.toString('utf8') ?? 'null') as T),
        onComplete: () => handlers.complete?.(),
        onError: (e) => handlers.error?.(clientError(e, closeCause)),
        onExtension() {},
      });
      return { request: (n) => s.request(n), cancel: () => s.cancel() };
    },
    onClose(listener) {
      rsocket.onClose(listener);
    },
    close() {
      if (closed) return;
      closed = true;
      rsocket.close();
    },
  };
}

/** The catalog code of a failed call, or 'ok'. */
export async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return (e as { code?: string }).code ?? `no catalog code: ${(e as Error).message}`;
  }
}

/** Resolves with the catalog code the connection was closed with ('none' when closed without one). */
export function closeCode(client: Pick<TestClient, 'onClose'>): Promise<string> {
  return new Promise((resolve) => {
    client.onClose((e) => {
      const message = e?.message ?? '';
      resolve((parseErrorBody(message) ?? parseErrorBody(/\{"code":.*\}/.exec(message)?.[0] ?? ''))?.code ?? 'none');
    });
  });
}
