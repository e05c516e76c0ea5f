/**
 * Tenants for the tenancy, admin and limits end-to-end tests, made the way an operator makes
 * them: through the admin routes over RSocket with a deployment admin key. Each tenant has an
 * organisation, a site (with an allowed browser origin), a user, and one key of every scope.
 *
 * Also a minimal RSocket client that sends an `Origin` header on its WebSocket upgrade, as a
 * browser does (SluiceClient has no option for it): for public site ids.
 */
import { RSocketConnector, type RSocket } from 'rsocket-core';
import { WellKnownMimeType, encodeBearerAuthMetadata, encodeCompositeMetadata, encodeRoute } from 'rsocket-composite-metadata';
import { WebsocketClientTransport } from 'rsocket-websocket-client';
import WebSocket from 'ws';
import type { ApiKeyInfo, KeyScope, Organisation, Site, User } from '../../protocol/admin-schema.js';
import { parseErrorBody } from '../../protocol/errors.js';
import { MIME } from '../../protocol/mime.js';
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
