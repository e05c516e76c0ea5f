/**
 * The gateway: RSocket over TCP and WebSocket (our own hardened transports), SETUP checks
 * (MIME types, flags, keepalive bounds, bearer credential), one responder per connection, and
 * the HTTP health/metrics port. The only server code that touches RSocket.
 */
import type { Registry } from 'prom-client';
import { RSocketServer, type SetupFrame, type SetupPayload } from 'rsocket-core';
import { WellKnownAuthType, WellKnownMimeType, decodeAuthMetadata, decodeCompositeMetadata } from 'rsocket-composite-metadata';
import { ACCEPTED_DATA_MIME, ACCEPTED_METADATA_MIME, MIME } from '../../protocol/mime.js';
import { Accounts } from '../accounts/accounts.js';
import { ConnectionAuthority } from '../accounts/connection-authority.js';
import { KeyConnections } from '../accounts/key-connections.js';
import type { Config } from '../config.js';
import type { IngestService } from '../ingest/ingest-service.js';
import type { Logger } from '../log.js';
import { createTenantLimits, NO_LIMITS, type TenantLimits } from '../limits/tenant-limits.js';
import type { CurrentVisitors } from '../query/current-visitors.js';
import type { LiveBus } from '../query/live-bus.js';
import type { QueryService } from '../query/query-service.js';
import { ApiKeys } from './api-keys.js';
import { createAuthenticator, PUBLIC_ID_PREFIX, type Authenticator } from './authenticator.js';
import { acceptingConnection, type ConnectionContext, type FrameConnection, type SetupRejection } from './frame-connection.js';
import { createGatewayMetrics, type GatewayMetrics } from './gateway-metrics.js';
import { HttpServer } from './http-server.js';
import { createResponder } from './responder.js';
import type { RouteHandlers } from './route-handlers.js';
import { rsocketError } from './rsocket-errors.js';
import { TcpServerTransport } from './tcp-server-transport.js';
import { WsServerTransport } from './ws-server-transport.js';

export interface GatewayPorts {
  readonly tcp: number;
  readonly ws: number;
  readonly http: number;
}

export interface GatewayDeps {
  readonly config: Config['gateway'];
  readonly ingest: IngestService;
  readonly query: QueryService;
  readonly bus: LiveBus;
  readonly currentVisitors: CurrentVisitors;
  readonly registry: Registry;
  /** Who a SETUP's bearer token is; without one, only `apiKeys` (static keys) are known. */
  readonly authenticator?: Authenticator;
  /** Static keys, when no authenticator is given (benchmarks). */
  readonly apiKeys?: ApiKeys;
  /** Per-tenant limits (config `limits`); none when absent. */
  readonly limits?: Config['limits'];
  /** How long a connection remembers a site decision (config accounts.authorizationCacheMs). */
  readonly authorizationCacheMs?: number;
  /** Handlers of the routes outside the core (admin.*, ops.*). */
  readonly handlers?: RouteHandlers;
  readonly logger: Logger;
  readonly ready: () => boolean;
}

const LEASE_FLAG = 0x40;
const RESUME_FLAG = 0x80;
/** Keepalive bounds: a zero lifetime would close at once, a huge one would keep dead peers forever. */
const KEEPALIVE_MS = { min: 100, max: 600_000 };
const LIFETIME_MS = { min: 1_000, max: 3_600_000 };

/** SETUP checks that must answer with INVALID_SETUP or UNSUPPORTED_SETUP (the library only sends REJECTED_SETUP). */
export function validateSetup(frame: SetupFrame): SetupRejection | undefined {
  if (!ACCEPTED_METADATA_MIME.includes(frame.metadataMimeType)) {
    return { code: 'SETUP_UNSUPPORTED_MIME', message: `metadata MIME type "${frame.metadataMimeType}" is not supported; use ${MIME.compositeMetadata}` };
  }
  if (!ACCEPTED_DATA_MIME.includes(frame.dataMimeType)) {
    return { code: 'SETUP_UNSUPPORTED_MIME', message: `data MIME type "${frame.dataMimeType}" is not supported; use ${MIME.json}` };
  }
  if (frame.flags & (LEASE_FLAG | RESUME_FLAG)) return { code: 'SETUP_INVALID', message: 'lease and resume are not offered' };
  if (frame.keepAlive < KEEPALIVE_MS.min || frame.keepAlive > KEEPALIVE_MS.max) {
    return { code: 'SETUP_INVALID', message: `keepalive interval must be ${KEEPALIVE_MS.min}..${KEEPALIVE_MS.max} ms` };
  }
  if (frame.lifetime < LIFETIME_MS.min || frame.lifetime > LIFETIME_MS.max) {
    return { code: 'SETUP_INVALID', message: `keepalive max lifetime must be ${LIFETIME_MS.min}..${LIFETIME_MS.max} ms` };
  }
  return undefined;
}

const AUTH_ID = WellKnownMimeType.MESSAGE_RSOCKET_AUTHENTICATION.identifier;

/** The bearer token in SETUP's composite metadata, or undefined when there is none. */
export function bearerTokenOf(metadata: Buffer | undefined): string | undefined {
  if (!metadata || metadata.length === 0) return undefined;
  try {
    for (const entry of decodeCompositeMetadata(metadata)) {
      const typed = entry as { mimeType?: string; type?: unknown };
      const isAuth = typed.mimeType === MIME.authentication || typed.type === MIME.authentication
        || (typeof typed.type === 'object' && typed.type !== null && (typed.type as { identifier?: unknown }).identifier === AUTH_ID);
      if (!isAuth) continue;
      const auth = decodeAuthMetadata(entry.content);
      const isBearer = auth.type.identifier === WellKnownAuthType.BEARER.identifier || auth.type.string === WellKnownAuthType.BEARER.string;
      return isBearer ? auth.payload.toString('utf8') : undefined;
    }
  } catch {
    throw rsocketError('AUTH_REQUIRED', 'SETUP metadata is not composite metadata with a bearer authentication entry');
  }
  return undefined;
}

export class Gateway {
  private readonly metrics: GatewayMetrics;
  private readonly authenticator: Authenticator;
  private readonly limits: TenantLimits;
  private readonly keyConnections: KeyConnections;
  private tcp: TcpServerTransport | undefined;
  private ws: WsServerTransport | undefined;
  private readonly http: HttpServer;
  private shuttingDown = false;

  constructor(private readonly deps: GatewayDeps) {
    this.metrics = createGatewayMetrics(deps.registry);
    this.http = new HttpServer({ host: deps.config.host, port: deps.config.httpPort, registry: deps.registry, ready: () => !this.shuttingDown && deps.ready() });
    this.authenticator = deps.authenticator ?? createAuthenticator(deps.apiKeys ?? new ApiKeys([]));
    this.limits = deps.limits ? createTenantLimits(deps.limits, { onRejected: (limit) => this.metrics.limitRejections.inc({ limit }) }) : NO_LIMITS;
    this.keyConnections = new KeyConnections({
      maxPerKey: deps.limits?.maxConnectionsPerKey ?? 0,
      // A public id is shared by every visitor's browser; the operator's own keys are not a tenant's.
      unlimited: (p) => Accounts.isDeploymentAdmin(p) || p.keyId.startsWith(`public:${PUBLIC_ID_PREFIX}`),
      onRefused: () => this.metrics.limitRejections.inc({ limit: 'connections' }),
      onClosed: (code) => this.metrics.keyClosures.inc({ code }),
    });
  }

  /**
   * Close this process's connections of revoked keys (AUTH_REVOKED). Called by the revocation
   * watcher for revocations made anywhere, and at once for a revoke served here.
   */
  revoke(keyIds: readonly string[]): void {
    const closed = this.keyConnections.revoke(keyIds);
    if (closed > 0) {
      this.deps.logger.info({ keys: keyIds, connections: closed }, 'closed the connections of revoked keys');
    }
  }

  private clientContext(conn: FrameConnection): ConnectionContext & { ip: string } {
    const ctx = conn.context;
    const forwarded = this.deps.config.trustForwardedFor ? ctx.forwardedFor?.split(',')[0]?.trim() : undefined;
    return { ...ctx, ip: forwarded || ctx.remoteAddress };
  }

  private refuse(code: 'AUTH_REQUIRED' | 'AUTH_INVALID' | 'AUTH_EXPIRED' | 'AUTH_REVOKED' | 'CONNECTION_LIMIT', message: string): never {
    this.metrics.setupRejections.inc({ code });
    throw rsocketError(code, message);
  }

  private readonly acceptor = {
    accept: async (setup: SetupPayload) => {
      // Before any await: the connection is known only in the acceptor's synchronous start.
      const conn = acceptingConnection();
      if (!conn) throw rsocketError('INTERNAL', 'connection context unavailable');
      const token = bearerTokenOf(setup.metadata);
      if (token === undefined) this.refuse('AUTH_REQUIRED', 'SETUP must carry a bearer API key in the authentication extension');
      const ctx = this.clientContext(conn);
      const principal = await this.authenticator.authenticate(token, { origin: ctx.origin });
      if ('refused' in principal) {
        const messages = {
          AUTH_INVALID: 'unknown API key (or a public site id from an origin the site does not allow)',
          AUTH_EXPIRED: 'the API key expired',
          AUTH_REVOKED: 'the API key was revoked',
        } as const;
        this.refuse(principal.refused, messages[principal.refused]);
      }
      if (!this.keyConnections.admit(conn, principal)) {
        this.refuse('CONNECTION_LIMIT', `this key holds its maximum of ${this.deps.limits?.maxConnectionsPerKey ?? 0} connections; close one or retry later`);
      }
      const authority = new ConnectionAuthority({
        principal, allows: (p, action, site) => this.authenticator.allows(p, action, site), ttlMs: this.deps.authorizationCacheMs ?? 5_000,
      });
      return createResponder({
        ingest: this.deps.ingest,
        query: this.deps.query,
        bus: this.deps.bus,
        currentVisitors: this.deps.currentVisitors,
        metrics: this.metrics,
        logger: this.deps.logger,
        maxDataBytes: this.deps.config.maxFrameBytes,
        maxStreamsPerConnection: this.deps.config.maxStreamsPerConnection,
        shuttingDown: () => this.shuttingDown,
        limits: this.limits,
        ...(this.deps.handlers ? { handlers: this.deps.handlers } : {}),
      }, {
        context: { ip: ctx.ip, userAgent: ctx.userAgent, dnt: ctx.dnt, gpc: ctx.gpc, country: ctx.country, region: ctx.region, city: ctx.city },
        authority,
        control: conn,
      });
    },
  };

  async start(): Promise<GatewayPorts> {
    const { config, logger } = this.deps;
    const common = {
      host: config.host,
      maxFrameBytes: config.maxFrameBytes,
      setupTimeoutMs: config.setupTimeoutMs,
      highWaterBytes: config.socketHighWaterBytes,
      validateSetup,
      logger,
    };
    const onConnection = (transport: 'tcp' | 'ws') => (conn: FrameConnection) => {
      this.metrics.connections.inc({ transport });
      conn.onClose(() => this.metrics.connections.dec({ transport }));
    };
    this.tcp = new TcpServerTransport({ ...common, port: config.tcpPort, onConnection: onConnection('tcp') });
    this.ws = new WsServerTransport({ ...common, port: config.wsPort, cdnGeoHeaders: config.cdnGeoHeaders, onConnection: onConnection('ws') });
    await new RSocketServer({ transport: this.tcp, acceptor: this.acceptor }).bind();
    await new RSocketServer({ transport: this.ws, acceptor: this.acceptor }).bind();
    const http = await this.http.start();
    return { tcp: this.tcp.port, ws: this.ws.port, http };
  }

  /** Stop accepting, tell every connection why it closes, close the HTTP port. */
  async stop(): Promise<void> {
    this.shuttingDown = true;
    for (const transport of [this.tcp, this.ws]) {
      if (!transport) continue;
      transport.close();
      for (const conn of [...transport.connections]) conn.fail('CONNECTION_CLOSING', 'server is shutting down');
    }
    await this.http.close();
  }
}
