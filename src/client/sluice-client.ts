/**
 * A small Node client SDK for Sluice over RSocket (TCP or WebSocket): the demo traffic, the
 * benchmarks and the end-to-end tests use it, and it is what a server-side source would embed.
 * Errors from the server come back as SluiceClientError carrying the stable catalog code.
 */
import { RSocketConnector, type Payload, type RSocket } from 'rsocket-core';
import {
  WellKnownMimeType, encodeBearerAuthMetadata, encodeCompositeMetadata, encodeRoute,
} from 'rsocket-composite-metadata';
import { TcpClientTransport } from 'rsocket-tcp-client';
import { WebsocketClientTransport } from 'rsocket-websocket-client';
import WebSocket from 'ws';
import { MIME } from '../../protocol/mime.js';
import { parseErrorBody, type ErrorCode } from '../../protocol/errors.js';
import type { LiveQueryMessage, QueryRequest, QueryResponse } from '../../protocol/query-schema.js';
import type { Event, IngestAck } from '../../protocol/schema.js';

export class SluiceClientError extends Error {
  override readonly name = 'SluiceClientError';
  constructor(
    message: string,
    /** The catalog code when the server sent one of ours; undefined for transport failures. */
    readonly code: ErrorCode | undefined,
    /** The RSocket error code of the frame, when there was one. */
    readonly rsocketCode: number | undefined,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

function toClientError(e: unknown): SluiceClientError {
  if (e instanceof SluiceClientError) return e;
  const err = e as { message?: unknown; code?: unknown };
  const message = typeof err?.message === 'string' ? err.message : String(e);
  const rsocketCode = typeof err?.code === 'number' ? err.code : undefined;
  // rsocket-js reports a connection closed by an error frame as "Closed. Original cause [Error: <message>]".
  const body = parseErrorBody(message) ?? parseErrorBody(/\{"code":.*\}/.exec(message)?.[0] ?? '');
  if (body) return new SluiceClientError(body.message, body.code, rsocketCode, body.retryable);
  return new SluiceClientError(message, undefined, rsocketCode, false);
}

export interface ClientOptions {
  /** `tcp://host:port` or `ws://host:port`. */
  readonly url: string;
  readonly apiKey?: string;
  readonly keepAliveMs?: number;
  readonly lifetimeMs?: number;
  /** Send MIME types by their string form instead of the numeric well-known ids. */
  readonly stringMimeTypes?: boolean;
}

export interface StreamHandle {
  request(n: number): void;
  cancel(): void;
}

export interface StreamHandlers<T> {
  next(value: T): void;
  error?(error: SluiceClientError): void;
  complete?(): void;
}

export class SluiceClient {
  private closed = false;
  /** Why the connection closed: a SETUP rejection arrives as the close cause, not on a request. */
  private closeError: SluiceClientError | undefined;

  private constructor(private readonly rsocket: RSocket, private readonly stringMime: boolean) {
    rsocket.onClose((e) => {
      this.closed = true;
      if (e) this.closeError = toClientError(e);
    });
  }

  /** A request failed: when the connection closed with a catalog error, that error is the cause. */
  private failure(e: unknown): SluiceClientError {
    const err = toClientError(e);
    if (err.code === undefined && this.closeError?.code !== undefined) return this.closeError;
    return err;
  }

  static async connect(options: ClientOptions): Promise<SluiceClient> {
    const url = new URL(options.url);
    const transport = url.protocol === 'tcp:'
      ? new TcpClientTransport({ connectionOptions: { host: url.hostname, port: Number(url.port) } })
      : new WebsocketClientTransport({
        url: options.url,
        // The transport expects a browser WebSocket; `ws` offers the same API on Node 20.
        wsCreator: (u) => new WebSocket(u) as unknown as globalThis.WebSocket,
      });
    const metadata = options.apiKey === undefined
      ? undefined
      : encodeCompositeMetadata([[WellKnownMimeType.MESSAGE_RSOCKET_AUTHENTICATION, encodeBearerAuthMetadata(options.apiKey)]]);
    const connector = new RSocketConnector({
      transport,
      setup: {
        dataMimeType: MIME.json,
        metadataMimeType: MIME.compositeMetadata,
        keepAlive: options.keepAliveMs ?? 20_000,
        lifetime: options.lifetimeMs ?? 90_000,
        payload: { data: null, ...(metadata ? { metadata } : {}) },
      },
    });
    try {
      return new SluiceClient(await connector.connect(), options.stringMimeTypes ?? false);
    } catch (e) {
      throw toClientError(e);
    }
  }

  private payload(route: string, body: unknown): Payload {
    const routing = encodeRoute(route);
    const metadata = this.stringMime
      ? encodeCompositeMetadata([[MIME.routing, routing]])
      : encodeCompositeMetadata([[WellKnownMimeType.MESSAGE_RSOCKET_ROUTING, routing]]);
    return { data: Buffer.from(JSON.stringify(body)), metadata };
  }

  /** Fire-and-forget: best effort, no ack. */
  sendEvents(events: Event | readonly Event[]): void {
    this.fireAndForget('ingest.events', Array.isArray(events) ? { events } : events);
  }

  /** Acknowledged batch: resolves once the server holds the accepted events durably. */
  sendBatch(events: readonly Event[]): Promise<IngestAck> {
    return this.request<IngestAck>('ingest.batch', { events });
  }

  /** The declarative query (`query.run`). */
  query(request: QueryRequest): Promise<QueryResponse> {
    return this.request<QueryResponse>('query.run', request);
  }

  /**
   * A live query (`live.query`): a snapshot, then updates with what changed. `initialRequest`
   * credits first; call `request(n)` on the handle for more (updates are conflated meanwhile).
   */
  liveQuery(request: QueryRequest, handlers: StreamHandlers<LiveQueryMessage>, initialRequest = 2 ** 31 - 1): StreamHandle {
    return this.stream<LiveQueryMessage>('live.query', request, initialRequest, handlers);
  }

  fireAndForget(route: string, body: unknown): void {
    this.rsocket.fireAndForget(this.payload(route, body), { onComplete() {}, onError() {} });
  }

  /** Raw request/response: `data` and `metadata` exactly as given (tests of hostile input). */
  requestRaw(payload: Payload): Promise<Buffer | null | undefined> {
    return new Promise((resolve, reject) => {
      this.rsocket.requestResponse(payload, {
        onNext: (p) => resolve(p.data),
        onComplete: () => resolve(null),
        onError: (e) => reject(this.failure(e)),
        onExtension() {},
      });
    });
  }

  async request<T>(route: string, body: unknown): Promise<T> {
    const data = await this.requestRaw(this.payload(route, body));
    if (!data) throw new SluiceClientError('empty response', undefined, undefined, false);
    return JSON.parse(data.toString('utf8')) as T;
  }

  stream<T>(route: string, body: unknown, initialRequest: number, handlers: StreamHandlers<T>): StreamHandle {
    return this.streamRaw(this.payload(route, body), initialRequest, {
      next: (data) => handlers.next(JSON.parse(data.toString('utf8')) as T),
      error: handlers.error,
      complete: handlers.complete,
    });
  }

  streamRaw(payload: Payload, initialRequest: number, handlers: StreamHandlers<Buffer>): StreamHandle {
    const subscription = this.rsocket.requestStream(payload, initialRequest, {
      onNext: (p) => { if (p.data) handlers.next(p.data); },
      onComplete: () => handlers.complete?.(),
      onError: (e) => handlers.error?.(this.failure(e)),
      onExtension() {},
    });
    return { request: (n) => subscription.request(n), cancel: () => subscription.cancel() };
  }

  /** Resolves when the connection is closed from either side. */
  onClose(listener: (error?: Error) => void): void {
    this.rsocket.onClose(listener);
  }

  close(): void {
    // rsocket-core warns on a second close; callers (tests, shutdown paths) may close twice.
    if (this.closed) return;
    this.closed = true;
    this.rsocket.close();
  }
}
