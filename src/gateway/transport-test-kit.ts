/**
 * Shared by the transport tests: an echo acceptor for a real RSocketServer, raw clients that
 * speak bytes (for hostile input), and condition waits. Test-only; nothing in src imports it.
 */
import { connect, type Socket } from 'node:net';
import {
  ErrorCodes,
  FrameTypes,
  RSocketError,
  deserializeFrame,
  serializeFrame,
  serializeFrameWithLength,
  type ErrorFrame,
  type Frame,
  type Payload,
  type RSocket,
  type SetupFrame,
  type SocketAcceptor,
} from 'rsocket-core';
import { WebSocket } from 'ws';
import { parseErrorBody, type ErrorBody } from '../../protocol/errors.js';
import type { ConnectionContext as IngestContext, IngestService } from '../ingest/ingest-service.js';
import { acceptingConnection, type ConnectionContext, type FrameConnection } from './frame-connection.js';
import { rsocketError } from './rsocket-errors.js';
import { FrameSplitter } from './tcp-server-transport.js';

export const MAX_REQUEST_N = 0x7fffffff;

export async function waitFor(condition: () => boolean, what: string, deadlineMs = 10_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Records unhandled rejections and uncaught exceptions while installed; a hostile test asserts none. */
export function trapProcessErrors(): { readonly errors: unknown[]; dispose(): void } {
  const errors: unknown[] = [];
  const onError = (error: unknown): void => { errors.push(error); };
  process.on('unhandledRejection', onError);
  process.on('uncaughtException', onError);
  return {
    errors,
    dispose: () => {
      process.off('unhandledRejection', onError);
      process.off('uncaughtException', onError);
    },
  };
}

/** What the echo responder saw, per server. */
export class EchoProbe {
  fireAndForgets = 0;
  readonly contexts: ConnectionContext[] = [];
  readonly connections: FrameConnection[] = [];
  readonly streams: StreamProbe[] = [];
}

export interface StreamProbe {
  sent: number;
  demand: number;
  /** Times the producer found the connection not writable and parked on onDrain. */
  parks: number;
  /** Largest socket queue seen right after a send. */
  maxBufferedBytes: number;
  cancelled: boolean;
}

export interface EchoOptions {
  /** Throw this from accept (the library answers REJECTED_SETUP). */
  readonly rejectWith?: Error;
}

/**
 * request-response echoes (or fails on 'route-unknown' / 'plain-rsocket-error'); request-stream
 * takes `{count, bytes}` and emits `count` payloads of `bytes`, honouring request(n) and the
 * connection's write backpressure; fire-and-forget counts.
 */
export function echoAcceptor(probe: EchoProbe, options: EchoOptions = {}): SocketAcceptor {
  return {
    accept: async () => {
      const connection = acceptingConnection();
      if (connection === undefined) throw new Error('acceptor ran outside the accepting connection');
      probe.contexts.push(connection.context);
      probe.connections.push(connection);
      if (options.rejectWith !== undefined) throw options.rejectWith;
      return {
        requestResponse(payload, subscriber) {
          const text = payload.data?.toString() ?? '';
          if (text === 'route-unknown') subscriber.onError(rsocketError('ROUTE_UNKNOWN', 'no such route'));
          else if (text === 'plain-rsocket-error') subscriber.onError(new RSocketError(ErrorCodes.INVALID, 'plain'));
          else subscriber.onNext({ data: payload.data }, true);
          return { cancel() {}, onExtension() {} };
        },
        requestStream(payload, initialRequestN, subscriber) {
          const { count, bytes } = JSON.parse(payload.data?.toString() ?? '{}') as { count: number; bytes: number };
          const probeEntry: StreamProbe = { sent: 0, demand: initialRequestN, parks: 0, maxBufferedBytes: 0, cancelled: false };
          probe.streams.push(probeEntry);
          const item = Buffer.alloc(bytes, 0x61);
          let parked = false;
          const pump = (): void => {
            parked = false;
            while (!probeEntry.cancelled && probeEntry.demand > 0 && probeEntry.sent < count) {
              if (!connection.writable) {
                if (!parked) {
                  parked = true;
                  probeEntry.parks++;
                  connection.onDrain(pump);
                }
                return;
              }
              probeEntry.demand--;
              probeEntry.sent++;
              subscriber.onNext({ data: item }, probeEntry.sent === count);
              probeEntry.maxBufferedBytes = Math.max(probeEntry.maxBufferedBytes, connection.bufferedBytes);
            }
          };
          setImmediate(pump);
          return {
            request(n) { probeEntry.demand += n; if (!parked) pump(); },
            cancel() { probeEntry.cancelled = true; },
            onExtension() {},
          };
        },
        fireAndForget() {
          probe.fireAndForgets++;
          return { cancel() {} };
        },
      };
    },
  };
}

/**
 * What ingest learns from a transport's connection context: the address, and every hint the
 * upgrade request gave under the same field name (user agent, DNT/GPC, the trusted CDN's geo).
 * The gateway hands the same fields on (gateway.ts); here it is spelled out so the transport
 * tests can run the real ingest over the wire, and so a renamed field fails to compile.
 */
export function ingestContextOf(context: ConnectionContext): IngestContext {
  const { remoteAddress, userAgent, dnt, gpc, country, region, city } = context;
  return { ip: remoteAddress, userAgent, dnt, gpc, country, region, city };
}

/** request-response: the data is `{events}`, ingested with the connection's context; the reply is the ack. */
export function ingestAcceptor(ingest: IngestService): SocketAcceptor {
  return {
    accept: async () => {
      const connection = acceptingConnection();
      if (connection === undefined) throw new Error('acceptor ran outside the accepting connection');
      const context = ingestContextOf(connection.context);
      return {
        requestResponse(payload, subscriber) {
          const { events } = JSON.parse(payload.data?.toString() ?? '{}') as { events: unknown[] };
          ingest.ingest(events, context, 'ack').then(
            (ack) => subscriber.onNext({ data: Buffer.from(JSON.stringify(ack)) }, true),
            (error: unknown) => subscriber.onError(error instanceof Error ? error : new Error(String(error))),
          );
          return { cancel() {}, onExtension() {} };
        },
      };
    },
  };
}

export function setupFrame(overrides: Partial<SetupFrame> = {}): SetupFrame {
  return {
    type: FrameTypes.SETUP,
    streamId: 0,
    flags: 0,
    majorVersion: 1,
    minorVersion: 0,
    keepAlive: 60_000,
    lifetime: 300_000,
    resumeToken: undefined,
    metadataMimeType: 'message/x.rsocket.composite-metadata.v0',
    dataMimeType: 'application/json',
    metadata: undefined,
    data: undefined,
    ...overrides,
  };
}

export function requestStreamFrame(streamId: number, count: number, bytes: number, requestN = MAX_REQUEST_N): Frame {
  return {
    type: FrameTypes.REQUEST_STREAM,
    streamId,
    flags: 0,
    requestN,
    data: Buffer.from(JSON.stringify({ count, bytes })),
    metadata: undefined,
  };
}

/** The stream-0 ERROR frame with its parsed catalog body. */
export function connectionError(frames: readonly Frame[]): { frame: ErrorFrame; body: ErrorBody | undefined } | undefined {
  const frame = frames.find((f): f is ErrorFrame => f.type === FrameTypes.ERROR && f.streamId === 0);
  return frame === undefined ? undefined : { frame, body: parseErrorBody(frame.message) };
}

/** Counts PAYLOAD frames on a stream and whether one completed it. */
export function streamProgress(frames: readonly Frame[], streamId: number): { items: number; complete: boolean } {
  let items = 0;
  let complete = false;
  for (const f of frames) {
    if (f.type === FrameTypes.PAYLOAD && f.streamId === streamId) {
      items++;
      if ((f.flags & 0x40) !== 0) complete = true;
    }
  }
  return { items, complete };
}

/** A TCP client that writes whatever bytes it is told to and decodes what comes back. */
export class RawTcpClient {
  readonly frames: Frame[] = [];
  closed = false;
  private readonly splitter = new FrameSplitter(16_777_215);

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.splitter.push(chunk, (bytes) => this.frames.push(deserializeFrame(bytes)));
    });
    socket.on('close', () => { this.closed = true; });
    socket.on('error', () => { /* the server cutting us off is what these tests provoke */ });
  }

  /** `paused`: do not read at all until `socket.resume()`, so the server's writes back up. */
  static connect(port: number, options: { paused?: boolean } = {}): Promise<RawTcpClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.off('error', reject);
        if (options.paused === true) socket.pause();
        resolve(new RawTcpClient(socket));
      });
      socket.once('error', reject);
    });
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  send(frame: Frame): void {
    this.socket.write(serializeFrameWithLength(frame));
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** A WebSocket client sending raw messages and decoding each binary message as one frame. */
export class RawWsClient {
  readonly frames: Frame[] = [];
  closed = false;
  closeCode: number | undefined;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => this.frames.push(deserializeFrame(data)));
    ws.on('close', (code: number) => { this.closed = true; this.closeCode = code; });
    ws.on('error', () => { /* expected when the server cuts us off */ });
  }

  static connect(port: number, headers: Record<string, string> = {}): Promise<RawWsClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}`, { headers });
      ws.once('open', () => { ws.off('error', reject); resolve(new RawWsClient(ws)); });
      ws.once('error', reject);
    });
  }

  send(frame: Frame): void {
    this.ws.send(serializeFrame(frame));
  }

  destroy(): void {
    this.ws.terminate();
  }
}

export function requestResponse(rsocket: RSocket, data: string): Promise<Payload> {
  return new Promise((resolve, reject) => {
    rsocket.requestResponse({ data: Buffer.from(data) }, {
      onNext: (payload) => resolve(payload),
      onError: reject,
      onComplete: () => {},
      onExtension: () => {},
    });
  });
}

/** A request-stream whose demand the test drives; `items` fills as payloads arrive. */
export function requestStream(rsocket: RSocket, count: number, bytes: number, initialRequestN: number) {
  const state = { items: 0, complete: false, error: undefined as Error | undefined };
  const subscription = rsocket.requestStream({ data: Buffer.from(JSON.stringify({ count, bytes })) }, initialRequestN, {
    onNext: (_payload, isComplete) => { state.items++; if (isComplete) state.complete = true; },
    onError: (error) => { state.error = error; },
    onComplete: () => { state.complete = true; },
    onExtension: () => {},
  });
  return { state, request: (n: number) => subscription.request(n) };
}

export function fireAndForget(rsocket: RSocket, data: string): void {
  rsocket.fireAndForget({ data: Buffer.from(data) }, { onError: () => {}, onComplete: () => {} });
}
