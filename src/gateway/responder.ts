/**
 * The per-connection RSocket responder: routes each request, checks the key's sites, calls the
 * ingest and query services and maps every failure to a catalog error on that request only.
 * Nothing thrown here can reach the connection: each interaction catches and answers.
 */
import type { Cancellable, OnExtensionSubscriber, OnNextSubscriber, OnTerminalSubscriber, Payload, Requestable, RSocket } from 'rsocket-core';
import type { ErrorCode } from '../../protocol/errors.js';
import type { Event } from '../../protocol/schema.js';
import { SluiceError, isSluiceError } from '../errors.js';
import type { ConnectionContext, IngestService } from '../ingest/ingest-service.js';
import type { Logger } from '../log.js';
import { openLiveQuery } from '../query/live-query.js';
import { openLiveStream } from '../query/live-stream.js';
import { CURRENT_WINDOW_MS, type CurrentVisitors } from '../query/current-visitors.js';
import type { LiveBus } from '../query/live-bus.js';
import type { QueryService } from '../query/query-service.js';
import { ApiKeys, type KeyGrant } from './api-keys.js';
import type { GatewayMetrics } from './gateway-metrics.js';
import { routeRequest, type RoutedRequest } from './request-router.js';
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
}

/** What the responder may do to its connection: stop reading it while the event log is full. */
export interface ConnectionControl {
  pauseReading(): void;
  resumeReading(): void;
}

export interface ConnectionInfo {
  readonly context: ConnectionContext;
  readonly grant: KeyGrant;
  readonly control?: ConnectionControl;
}

function asSluiceError(e: unknown, logger: Logger): SluiceError {
  if (isSluiceError(e)) return e;
  logger.error({ err: e }, 'unexpected fault while serving a request');
  return new SluiceError('INTERNAL', 'internal error; the request may be retried');
}

export function createResponder(deps: ResponderDeps, conn: ConnectionInfo): Partial<RSocket> {
  const { metrics, logger } = deps;
  let openStreams = 0;
  let paused = false;
  let stopDrainWatch: (() => void) | undefined;

  const checkSite = (site: string) => {
    if (!ApiKeys.allows(conn.grant, site)) throw new SluiceError('SITE_FORBIDDEN', `this key may not use site "${site}"`);
  };
  const context: ConnectionContext = { ...conn.context, authorize: (site: string) => ApiKeys.allows(conn.grant, site) };

  const fail = (route: string, e: unknown): SluiceError => {
    const err = asSluiceError(e, logger);
    metrics.requests.inc({ route, outcome: err.code });
    metrics.errors.inc({ code: err.code });
    return err;
  };

  /** TCP backpressure for fire-and-forget: stop reading this socket until the log drains. */
  const applyBackpressure = () => {
    if (!conn.control || paused || !deps.ingest.saturated) return;
    paused = true;
    metrics.readPauses.inc();
    conn.control.pauseReading();
    stopDrainWatch = deps.ingest.onDrain(() => {
      stopDrainWatch?.();
      stopDrainWatch = undefined;
      paused = false;
      conn.control?.resumeReading();
    });
  };

  const respond = async (req: RoutedRequest): Promise<unknown> => {
    switch (req.route) {
      case 'ingest.batch':
        return deps.ingest.ingest(req.body.events, context, 'ack');
      case 'query.timeseries':
        checkSite(req.body.site);
        return deps.query.timeseries(req.body);
      case 'query.totals':
        checkSite(req.body.site);
        return deps.query.totals(req.body);
      case 'query.breakdown':
        checkSite(req.body.site);
        return deps.query.breakdown(req.body);
      case 'query.run':
        checkSite(req.body.site);
        return deps.query.run(req.body);
      case 'query.current': {
        checkSite(req.body.site);
        const at = Date.now();
        const visitors = await deps.currentVisitors.count(req.body.site, at);
        return { site: req.body.site, visitors, windowMinutes: CURRENT_WINDOW_MS / 60_000, at };
      }
      default:
        throw new SluiceError('ROUTE_WRONG_INTERACTION', `route "${req.route}" is not request/response`);
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
        const events: readonly unknown[] = Array.isArray(body.events) ? body.events : [body];
        deps.ingest.ingest(events, context, 'fnf').then(
          () => metrics.requests.inc({ route, outcome: 'ok' }),
          (e: unknown) => {
            const err = fail(route, e);
            metrics.fnfDropped.inc({ code: err.code });
          },
        );
        applyBackpressure();
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
      const inert = { request() {}, cancel() {}, onExtension() {} };
      let route = 'unknown';
      try {
        if (deps.shuttingDown()) throw new SluiceError('SHUTTING_DOWN', 'server is shutting down');
        const req = routeRequest('requestStream', payload, deps.maxDataBytes);
        route = req.route;
        if (req.route !== 'live.metrics' && req.route !== 'live.query') throw new SluiceError('ROUTE_WRONG_INTERACTION', `route "${req.route}" is not request-stream`);
        checkSite(req.body.site);
        if (openStreams >= deps.maxStreamsPerConnection) {
          throw new SluiceError('STREAM_LIMIT', `at most ${deps.maxStreamsPerConnection} live streams per connection`);
        }
        openStreams++;
        metrics.liveStreams.inc();
        metrics.requests.inc({ route, outcome: 'ok' });
        let ended = false;
        const sink = {
          next: (message: unknown) => responderStream.onNext({ data: Buffer.from(JSON.stringify(message)) }, false),
          error: (e: unknown) => {
            const err = fail(route, e);
            responderStream.onError(rsocketError(err.code as ErrorCode, err.message));
          },
        };
        const onClose = () => {
          if (ended) return;
          ended = true;
          openStreams--;
          metrics.liveStreams.dec();
        };
        const stream = req.route === 'live.query'
          // An invalid query fails on its first run, before any message: as an error of this stream.
          ? openLiveQuery({ request: req.body, query: deps.query, bus: deps.bus, sink, onClose })
          : openLiveStream({ site: req.body.site, windowMinutes: req.body.windowMinutes ?? 30, query: deps.query, bus: deps.bus, sink, onClose });
        stream.request(initialRequestN);
        return { request: (n: number) => stream.request(n), cancel: () => stream.cancel(), onExtension() {} };
      } catch (e) {
        const err = fail(route, e);
        responderStream.onError(rsocketError(err.code as ErrorCode, err.message));
        return inert;
      }
    },
  };
}
