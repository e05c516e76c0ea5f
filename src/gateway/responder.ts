/**
 * The per-connection RSocket responder: routes each request, checks that the connection's key
 * may make it, applies the tenant limits, calls the ingest and query services or a registered
 * route handler (admin.*, ops.*), and maps every failure to a catalog error on that request only.
 * Nothing thrown here can reach the connection: each interaction catches and answers.
 *
 * Authorisation, per route:
 * - ingest.*: the key's kind must allow ingest (else FORBIDDEN for the request); each event's
 *   site is checked on its own, so an event for a site the key may not write fails alone with
 *   SITE_FORBIDDEN and the rest of the batch goes on;
 * - query.* and live.*: the kind must allow read (FORBIDDEN), and the site (SITE_FORBIDDEN);
 * - every other route: its handler decides, with the Caller built from the key.
 * Rate limits are checked after authorisation, so another tenant cannot spend a site's budget.
 *
 * Ordering: fire-and-forget frames of one connection reach ingest in arrival order, also while
 * the sites they name are being looked up (those waits are chained, and a long chain pauses
 * reading the socket rather than growing).
 */
import type { Cancellable, OnExtensionSubscriber, OnNextSubscriber, OnTerminalSubscriber, Payload, Requestable, RSocket } from 'rsocket-core';
import type { ErrorCode } from '../../protocol/errors.js';
import type { Event } from '../../protocol/schema.js';
import type { Action, Principal } from '../accounts/accounts.js';
import { Accounts } from '../accounts/accounts.js';
import { ConnectionAuthority } from '../accounts/connection-authority.js';
import { SluiceError, isSluiceError } from '../errors.js';
import type { ConnectionContext, IngestService } from '../ingest/ingest-service.js';
import type { Logger } from '../log.js';
import { NO_LIMITS, type TenantLimits } from '../limits/tenant-limits.js';
import { openLiveQuery } from '../query/live-query.js';
import { openLiveStream } from '../query/live-stream.js';
import { CURRENT_WINDOW_MS, type CurrentVisitors } from '../query/current-visitors.js';
import type { LiveBus } from '../query/live-bus.js';
import type { QueryService } from '../query/query-service.js';
import type { KeyGrant } from './api-keys.js';
import type { GatewayMetrics } from './gateway-metrics.js';
import { routeRequest, type RoutedRequest } from './request-router.js';
import type { Caller, RouteHandlers, StreamControl, StreamSink } from './route-handlers.js';
import { rsocketError } from './rsocket-errors.js';

export interface ResponderDeps {
  readonly ingest: IngestService;
  readonly query: QueryService;
  readonly bus: LiveBus;
  readonly currentVisitors: CurrentVisitors;
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  readonly maxDataBytes: number;
  readonly maxStreamsPerConnection: number;
  readonly shuttingDown: () => boolean;
  /** Per-tenant rate limits; none when absent. */
  readonly limits?: TenantLimits;
  /** Handlers of the routes outside the core (admin.*, ops.*); a route without one is ROUTE_UNKNOWN here. */
  readonly handlers?: RouteHandlers;
}

/** What the responder may do to its connection: stop reading it while the event log is full. */
export interface ConnectionControl {
  pauseReading(): void;
  resumeReading(): void;
}

export interface ConnectionInfo {
  readonly context: ConnectionContext;
  /** Who the connection is and what it may do, decided at SETUP (gateway.ts). */
  readonly authority?: ConnectionAuthority;
  /**
   * Instead of `authority`: a static key's grant (api-keys.ts), for responders built without
   * an account store (benchmarks). One of the two must be given.
   */
  readonly grant?: KeyGrant;
  readonly control?: ConnectionControl;
}

/** Fire-and-forget frames waiting for site lookups beyond which the socket stops being read. */
const MAX_QUEUED_FRAMES = 64;

function asSluiceError(e: unknown, logger: Logger): SluiceError {
  if (isSluiceError(e)) return e;
  logger.error({ err: e }, 'unexpected fault while serving a request');
  return new SluiceError('INTERNAL', 'internal error; the request may be retried');
}

/** A static grant as a principal: every site is a deployment admin, some sites a 'site' key. */
function grantAuthority(grant: KeyGrant): ConnectionAuthority {
  const principal: Principal = grant.sites === undefined
    ? { keyId: 'static', orgId: null, scope: { kind: 'admin', orgId: null }, expiresAt: null }
    : { keyId: 'static', orgId: null, scope: { kind: 'site', sites: [...grant.sites] }, expiresAt: null };
  return new ConnectionAuthority({ principal, ttlMs: 0, allows: async (p, action, site) => Accounts.decide(p, action, site, Date.now()) ?? false });
}

/** The distinct sites a raw (unvalidated) batch names; events without one fail validation in ingest. */
function sitesOf(events: readonly unknown[]): Set<string> {
  const sites = new Set<string>();
  for (const e of events) {
    const site = typeof e === 'object' && e !== null ? (e as { site?: unknown }).site : undefined;
    if (typeof site === 'string') sites.add(site);
  }
  return sites;
}

const LIMIT_OF: Partial<Record<ErrorCode, 'streams' | 'payload_size'>> = { STREAM_LIMIT: 'streams', PAYLOAD_TOO_LARGE: 'payload_size' };

export function createResponder(deps: ResponderDeps, conn: ConnectionInfo): Partial<RSocket> {
  const { metrics, logger } = deps;
  const limits = deps.limits ?? NO_LIMITS;
  const authority = conn.authority ?? (conn.grant ? grantAuthority(conn.grant) : undefined);
  if (!authority) throw new Error('a responder needs an authority or a grant');
  const principal = authority.principal;
  const caller: Caller = { principal, allows: (action, site) => authority.allows(action, site) };
  let openStreams = 0;
  let pausedForLog = false;
  let pausedForLookups = false;
  let stopDrainWatch: (() => void) | undefined;
  /** The last queued fire-and-forget frame (site lookups pending), and how many are queued. */
  let queueTail: Promise<void> | undefined;
  let queued = 0;

  // One context for the connection: ingest asks it per event, after `ensure` fetched the sites.
  const context: ConnectionContext = { ...conn.context, authorize: (site: string) => authority.known('ingest', site) === true };

  const fail = (route: string, e: unknown): SluiceError => {
    const err = asSluiceError(e, logger);
    metrics.requests.inc({ route, outcome: err.code });
    metrics.errors.inc({ code: err.code });
    const limit = LIMIT_OF[err.code];
    if (limit) metrics.limitRejections.inc({ limit });
    return err;
  };

  const requireKind = (action: Action) => {
    if (!authority.kindAllows(action)) {
      throw new SluiceError('FORBIDDEN', `this key (scope ${principal.scope.kind}) may not ${action === 'ingest' ? 'send events' : action === 'read' ? 'query or stream' : 'administer'}`);
    }
  };

  /** Read access to one site, then its query budget. */
  const checkRead = async (site: string) => {
    requireKind('read');
    if (!(await authority.allows('read', site))) throw new SluiceError('SITE_FORBIDDEN', `this key may not read site "${site}"`);
    limits.query(principal, site);
  };

  /** Pause reading while the log is saturated or too many frames wait for lookups; resume when neither holds. */
  const updateReading = () => {
    if (!conn.control) return;
    if (pausedForLog || pausedForLookups) conn.control.pauseReading();
    else conn.control.resumeReading();
  };

  /** TCP backpressure for fire-and-forget: stop reading this socket until the log drains. */
  const applyBackpressure = () => {
    if (!conn.control || pausedForLog || !deps.ingest.saturated) return;
    pausedForLog = true;
    metrics.readPauses.inc();
    updateReading();
    stopDrainWatch = deps.ingest.onDrain(() => {
      stopDrainWatch?.();
      stopDrainWatch = undefined;
      pausedForLog = false;
      updateReading();
    });
  };

  const ingestFnf = (route: string, events: readonly unknown[]) => {
    deps.ingest.ingest(events, context, 'fnf').then(
      () => metrics.requests.inc({ route, outcome: 'ok' }),
      (e: unknown) => metrics.fnfDropped.inc({ code: fail(route, e).code }),
    );
    applyBackpressure();
  };

  const fireAndForgetEvents = (route: string, events: readonly unknown[]) => {
    requireKind('ingest');
    limits.ingest(principal, events.length);
    // Only an organisation admin's key needs the store to judge a site: others skip collecting them.
    const ready = authority.asksStore ? authority.ensure('ingest', sitesOf(events)) : undefined;
    if (ready === undefined && queued === 0) {
      ingestFnf(route, events);
      return;
    }
    // Handled at once so a failed lookup is never an unhandled rejection while it waits its turn.
    ready?.catch(() => undefined);
    const previous = queueTail;
    queued++;
    if (queued >= MAX_QUEUED_FRAMES && !pausedForLookups) {
      pausedForLookups = true;
      updateReading();
    }
    const job = (async () => {
      await previous;
      await ready;
      ingestFnf(route, events);
    })().catch((e: unknown) => {
      metrics.fnfDropped.inc({ code: fail(route, e).code });
    }).finally(() => {
      queued--;
      if (queued === 0) {
        queueTail = undefined;
        if (pausedForLookups) {
          pausedForLookups = false;
          updateReading();
        }
      }
    });
    queueTail = job;
  };

  const ingestBatch = async (events: readonly unknown[]) => {
    requireKind('ingest');
    limits.ingest(principal, events.length);
    if (authority.asksStore) await authority.ensure('ingest', sitesOf(events));
    return deps.ingest.ingest(events, context, 'ack');
  };

  const respond = async (req: RoutedRequest): Promise<unknown> => {
    switch (req.route) {
      case 'ingest.batch':
        return ingestBatch(req.body.events);
      case 'query.timeseries':
        await checkRead(req.body.site);
        return deps.query.timeseries(req.body);
      case 'query.totals':
        await checkRead(req.body.site);
        return deps.query.totals(req.body);
      case 'query.breakdown':
        await checkRead(req.body.site);
        return deps.query.breakdown(req.body);
      case 'query.run':
        await checkRead(req.body.site);
        return deps.query.run(req.body);
      case 'query.current': {
        await checkRead(req.body.site);
        const at = Date.now();
        const visitors = await deps.currentVisitors.count(req.body.site, at);
        return { site: req.body.site, visitors, windowMinutes: CURRENT_WINDOW_MS / 60_000, at };
      }
      case 'ingest.events':
      case 'live.metrics':
      case 'live.query':
        // The router already refused these for request/response; kept for exhaustiveness.
        throw new SluiceError('ROUTE_WRONG_INTERACTION', `route "${req.route}" is not request/response`);
      default: {
        const handler = deps.handlers?.requestResponse?.[req.route];
        if (!handler) throw new SluiceError('ROUTE_UNKNOWN', `route "${req.route}" is not served by this process`);
        return handler(req.body, caller);
      }
    }
  };

  /** Opens the stream of a validated request-stream route (checks done); returns its control. */
  const openStream = async (req: RoutedRequest, sink: StreamSink, onClose: () => void): Promise<StreamControl> => {
    switch (req.route) {
      case 'live.query':
        // An invalid query fails on its first run, before any message: as an error of this stream.
        return openLiveQuery({ request: req.body, query: deps.query, bus: deps.bus, sink, onClose });
      case 'live.metrics':
        return openLiveStream({ site: req.body.site, windowMinutes: req.body.windowMinutes ?? 30, query: deps.query, bus: deps.bus, sink, onClose });
      default: {
        const handler = deps.handlers?.requestStream?.[req.route];
        if (!handler) throw new SluiceError('ROUTE_UNKNOWN', `route "${req.route}" is not served by this process`);
        return handler(req.body, caller, sink);
      }
    }
  };

  return {
    fireAndForget(payload: Payload, responderStream: OnTerminalSubscriber): Cancellable {
      let route = 'unknown';
      try {
        if (deps.shuttingDown()) throw new SluiceError('SHUTTING_DOWN', 'server is shutting down');
        const req = routeRequest('fireAndForget', payload, deps.maxDataBytes);
        route = req.route;
        if (req.route !== 'ingest.events') throw new SluiceError('ROUTE_WRONG_INTERACTION', `route "${req.route}" is not fire-and-forget`);
        const body = req.body as { events?: unknown[] } & Partial<Event>;
        fireAndForgetEvents(route, Array.isArray(body.events) ? body.events : [body]);
      } catch (e) {
        const err = fail(route, e);
        metrics.fnfDropped.inc({ code: err.code });
      }
      responderStream.onComplete();
      return { cancel() {} };
    },

    requestResponse(
      payload: Payload,
      responderStream: OnTerminalSubscriber & OnNextSubscriber & OnExtensionSubscriber,
    ): Cancellable & OnExtensionSubscriber {
      let cancelled = false;
      let route = 'unknown';
      const run = async () => {
        if (deps.shuttingDown()) throw new SluiceError('SHUTTING_DOWN', 'server is shutting down');
        const req = routeRequest('requestResponse', payload, deps.maxDataBytes);
        route = req.route;
        return respond(req);
      };
      run().then(
        (result) => {
          if (cancelled) return;
          metrics.requests.inc({ route, outcome: 'ok' });
          responderStream.onNext({ data: Buffer.from(JSON.stringify(result)) }, true);
        },
        (e: unknown) => {
          const err = fail(route, e);
          if (!cancelled) responderStream.onError(rsocketError(err.code as ErrorCode, err.message));
        },
      );
      return { cancel: () => { cancelled = true; }, onExtension() {} };
    },

    requestStream(
      payload: Payload,
      initialRequestN: number,
      responderStream: OnTerminalSubscriber & OnNextSubscriber & OnExtensionSubscriber,
    ): Requestable & Cancellable & OnExtensionSubscriber {
      let route = 'unknown';
      let cancelled = false;
      let terminated = false;
      /** Demand that arrived before the stream was open (checks are asynchronous). */
      let pendingN = initialRequestN;
      let stream: StreamControl | undefined;
      let closeStream: (() => void) | undefined;
      const terminate = (e: unknown) => {
        const err = fail(route, e);
        if (terminated || cancelled) return;
        terminated = true;
        responderStream.onError(rsocketError(err.code as ErrorCode, err.message));
      };
      const start = async () => {
        if (deps.shuttingDown()) throw new SluiceError('SHUTTING_DOWN', 'server is shutting down');
        const req = routeRequest('requestStream', payload, deps.maxDataBytes);
        route = req.route;
        const live = req.route === 'live.metrics' || req.route === 'live.query';
        const checkStreamLimit = () => {
          if (openStreams >= deps.maxStreamsPerConnection) {
            throw new SluiceError('STREAM_LIMIT', `at most ${deps.maxStreamsPerConnection} streams per connection`);
          }
        };
        // Before the checks (no query budget spent on a stream that cannot open) and after them (they wait).
        checkStreamLimit();
        if (live) await checkRead(req.body.site);
        if (cancelled) return;
        checkStreamLimit();
        openStreams++;
        if (live) metrics.liveStreams.inc();
        metrics.requests.inc({ route, outcome: 'ok' });
        let ended = false;
        const onClose = () => {
          if (ended) return;
          ended = true;
          openStreams--;
          if (live) metrics.liveStreams.dec();
        };
        closeStream = onClose;
        const sink: StreamSink = {
          next: (message: unknown) => {
            if (!terminated) responderStream.onNext({ data: Buffer.from(JSON.stringify(message)) }, false);
          },
          error: (e: unknown) => {
            onClose();
            terminate(e);
          },
          complete: () => {
            onClose();
            if (terminated || cancelled) return;
            terminated = true;
            responderStream.onComplete();
          },
        };
        try {
          stream = await openStream(req, sink, onClose);
        } catch (e) {
          onClose();
          throw e;
        }
        if (cancelled) {
          stream.cancel();
          onClose();
          return;
        }
        stream.request(pendingN);
      };
      start().catch(terminate);
      return {
        request: (n: number) => {
          if (stream) stream.request(n);
          else pendingN = Math.min(pendingN + n, 2 ** 31 - 1);
        },
        cancel: () => {
          cancelled = true;
          stream?.cancel();
          // Live streams report their own end; a handler's stream need not.
          closeStream?.();
        },
        onExtension() {},
      };
    },
  };
}
