/**
 * RSocket over WebSocket: one frame per binary message, no length prefix (the
 * rsocket-websocket-client convention). Replaces rsocket-websocket-server, which pins an old `ws`
 * and shares the TCP server's crash on a malformed first frame.
 */
import type { IncomingMessage } from 'node:http';
import { Deferred, serializeFrame, type Closeable, type ServerTransport } from 'rsocket-core';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import {
  FrameConnection,
  type ConnectionAcceptor,
  type ConnectionContext,
  type FrameSocket,
  type MultiplexerFactory,
  type ServerTransportOptions,
} from './frame-connection.js';
import { rsocketError } from './rsocket-errors.js';
import { distinctHeaders, readUpgradeHeaders, type CdnGeoHeaders } from './upgrade-headers.js';

export class WsServerTransport extends Deferred implements ServerTransport, Closeable {
  private server: WebSocketServer | undefined;
  private readonly live = new Set<FrameConnection>();

  constructor(private readonly options: ServerTransportOptions) {
    super();
  }

  /** The port actually bound (useful with port 0). */
  get port(): number {
    const address = this.server?.address();
    if (address === null || address === undefined || typeof address === 'string') throw new Error('WsServerTransport is not bound');
    return address.port;
  }

  /** Connections from upgrade until close, including those still in SETUP. */
  get connections(): ReadonlySet<FrameConnection> {
    return this.live;
  }

  /** Resolves to this transport once listening; `RSocketServer.bind()` hands it back. */
  bind(acceptor: ConnectionAcceptor, multiplexerFactory: MultiplexerFactory): Promise<Closeable> {
    if (this.server !== undefined) return Promise.reject(new Error('WsServerTransport is already bound'));
    const { host, port, maxFrameBytes, logger } = this.options;
    return new Promise((resolve, reject) => {
      // maxPayload makes ws refuse an oversized message from its header, before buffering it
      // (close 1009). No compression: it would let a small message inflate past any limit we
      // check on the wire, and RSocket payloads are usually compressed by the client if at all.
      const server = new WebSocketServer({ host, port, maxPayload: maxFrameBytes, perMessageDeflate: false, clientTracking: false });
      this.server = server;
      server.once('error', reject);
      server.once('listening', () => {
        server.off('error', reject);
        server.on('error', (error) => logger?.warn({ err: error }, 'websocket server error'));
        resolve(this);
      });
      server.on('connection', (ws, request) => this.accept(ws, request, acceptor, multiplexerFactory));
    });
  }

  /** Stops accepting; live connections stay (close them via `connections` for a full stop). */
  override close(error?: Error): void {
    if (this.done) return;
    this.server?.close();
    super.close(error);
  }

  private accept(ws: WebSocket, request: IncomingMessage, acceptor: ConnectionAcceptor, multiplexerFactory: MultiplexerFactory): void {
    const { maxFrameBytes, setupTimeoutMs, highWaterBytes, validateSetup, logger } = this.options;
    const frameSocket: FrameSocket = {
      encode: serializeFrame,
      write: (bytes, onFlushed) => { ws.send(bytes, { binary: true }, onFlushed); },
      get bufferedBytes() { return ws.bufferedAmount; },
      pause: () => { ws.pause(); },
      resume: () => { ws.resume(); },
      end: () => { ws.close(1000); },
      destroy: () => { ws.terminate(); },
    };
    const connection = new FrameConnection(frameSocket, contextOf(request, this.options.cdnGeoHeaders ?? 'none'), {
      maxFrameBytes, setupTimeoutMs, highWaterBytes, validateSetup, logger, acceptor, multiplexerFactory,
    });
    this.live.add(connection);
    connection.onClose(() => this.live.delete(connection));

    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (!isBinary) {
        connection.fail('FRAME_MALFORMED', 'text messages are not RSocket frames; send binary messages');
        return;
      }
      connection.receive(toBuffer(data));
    });
    // ws has already sent its close frame when it reports a protocol error (1009 for a message
    // over maxPayload), so there is no room for an RSocket ERROR frame: record why and close.
    ws.on('error', (error: Error & { code?: string }) => {
      connection.socketGone(error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'
        ? rsocketError('FRAME_TOO_LARGE', `message exceeds the maximum of ${maxFrameBytes} bytes`)
        : error);
    });
    ws.on('close', () => connection.socketClosed());
    try {
      this.options.onConnection?.(connection);
    } catch (error) {
      // Thrown from here it would escape the server's 'connection' event and end the process.
      logger?.error({ err: error, connection: connection.id }, 'onConnection threw');
    }
  }
}

function contextOf(request: IncomingMessage, cdnGeoHeaders: CdnGeoHeaders): ConnectionContext {
  return {
    transport: 'ws',
    remoteAddress: request.socket.remoteAddress ?? '',
    ...readUpgradeHeaders(distinctHeaders(request), cdnGeoHeaders),
  };
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
