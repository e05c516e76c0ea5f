/**
 * RSocket over raw TCP: each frame is prefixed with its length as a uint24 (the rsocket-tcp-client
 * convention). Replaces rsocket-tcp-server, which any client could crash with two bytes.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { Deferred, serializeFrameWithLength, type Closeable, type ServerTransport } from 'rsocket-core';
import {
  FrameConnection,
  type ConnectionAcceptor,
  type FrameSocket,
  type MultiplexerFactory,
  type ServerTransportOptions,
} from './frame-connection.js';

const LENGTH_PREFIX_BYTES = 3;

/**
 * Splits a byte stream into uint24-length-prefixed frames. A frame's length is checked against
 * the maximum as soon as its prefix is complete, before any of its body is kept. Frames inside
 * one chunk are zero-copy views; a frame spread over chunks is assembled in one buffer grown by
 * doubling, so each byte is copied O(1) times and a peer trickling one byte per segment costs
 * neither quadratic time nor per-chunk overhead.
 */
export class FrameSplitter {
  /** The record (prefix + body) being assembled across chunks. Never reused once emitted: the library keeps views of it. */
  private partial: Buffer | undefined;
  private partialLength = 0;
  /** Prefix + body length of the partial record once its prefix is known, else -1. */
  private recordBytes = -1;

  constructor(private readonly maxFrameBytes: number) {}

  /** Bytes held for an incomplete frame. */
  get bufferedBytes(): number {
    return this.partialLength;
  }

  /**
   * Feed the next chunk; `onFrame` gets each complete frame body in order. Returns the announced
   * length of an oversized frame (the splitter has then dropped everything and must not be fed
   * again), otherwise undefined.
   */
  push(chunk: Buffer, onFrame: (frame: Buffer) => void): number | undefined {
    let offset = 0;
    if (this.partial !== undefined) {
      if (this.recordBytes < 0) {
        offset = this.append(chunk, offset, LENGTH_PREFIX_BYTES);
        if (this.partialLength < LENGTH_PREFIX_BYTES) return undefined;
        const announced = this.partial.readUIntBE(0, LENGTH_PREFIX_BYTES);
        if (announced > this.maxFrameBytes) return this.reject(announced);
        this.recordBytes = LENGTH_PREFIX_BYTES + announced;
      }
      offset = this.append(chunk, offset, this.recordBytes);
      if (this.partialLength < this.recordBytes) return undefined;
      const record = this.partial.subarray(LENGTH_PREFIX_BYTES, this.recordBytes);
      this.reject(0);
      onFrame(record);
    }
    while (chunk.length - offset >= LENGTH_PREFIX_BYTES) {
      const announced = chunk.readUIntBE(offset, LENGTH_PREFIX_BYTES);
      if (announced > this.maxFrameBytes) return this.reject(announced);
      const end = offset + LENGTH_PREFIX_BYTES + announced;
      if (end > chunk.length) {
        this.recordBytes = LENGTH_PREFIX_BYTES + announced;
        break;
      }
      onFrame(chunk.subarray(offset + LENGTH_PREFIX_BYTES, end));
      offset = end;
    }
    if (offset < chunk.length) this.append(chunk, offset, this.recordBytes < 0 ? LENGTH_PREFIX_BYTES : this.recordBytes);
    return undefined;
  }

  /** Copy from chunk[offset] into the partial record, up to `limit` record bytes; returns the new offset. */
  private append(chunk: Buffer, offset: number, limit: number): number {
    const n = Math.min(chunk.length - offset, limit - this.partialLength);
    const needed = this.partialLength + n;
    if (this.partial === undefined || this.partial.length < needed) {
      const capacity = Math.min(limit, Math.max(needed, 2 * (this.partial?.length ?? 0), 256));
      const grown = Buffer.allocUnsafe(capacity);
      this.partial?.copy(grown, 0, 0, this.partialLength);
      this.partial = grown;
    }
    chunk.copy(this.partial, this.partialLength, offset, offset + n);
    this.partialLength = needed;
    return offset + n;
  }

  /** Drop the partial record; returns its argument for the oversized path. */
  private reject(announced: number): number {
    this.partial = undefined;
    this.partialLength = 0;
    this.recordBytes = -1;
    return announced;
  }
}

export class TcpServerTransport extends Deferred implements ServerTransport, Closeable {
  private server: Server | undefined;
  private readonly live = new Set<FrameConnection>();

  constructor(private readonly options: ServerTransportOptions) {
    super();
  }

  /** The port actually bound (useful with port 0). */
  get port(): number {
    const address = this.server?.address();
    if (address === null || address === undefined || typeof address === 'string') throw new Error('TcpServerTransport is not bound');
    return address.port;
  }

  /** Connections from socket accept until close, including those still in SETUP. */
  get connections(): ReadonlySet<FrameConnection> {
    return this.live;
  }

  /** Resolves to this transport once listening; `RSocketServer.bind()` hands it back. */
  bind(acceptor: ConnectionAcceptor, multiplexerFactory: MultiplexerFactory): Promise<Closeable> {
    if (this.server !== undefined) return Promise.reject(new Error('TcpServerTransport is already bound'));
    const server = createServer({ noDelay: true }, (socket) => this.accept(socket, acceptor, multiplexerFactory));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.options.host, port: this.options.port }, () => {
        server.off('error', reject);
        // After listen, errors are accept failures (e.g. EMFILE): transient, never fatal.
        server.on('error', (error) => this.options.logger?.warn({ err: error }, 'tcp accept failed'));
        resolve(this);
      });
    });
  }

  /** Stops accepting; live connections stay (close them via `connections` for a full stop). */
  override close(error?: Error): void {
    if (this.done) return;
    this.server?.close();
    super.close(error);
  }

  private accept(socket: Socket, acceptor: ConnectionAcceptor, multiplexerFactory: MultiplexerFactory): void {
    const { maxFrameBytes, setupTimeoutMs, highWaterBytes, validateSetup, logger } = this.options;
    const frameSocket: FrameSocket = {
      encode: serializeFrameWithLength,
      write: (bytes, onFlushed) => { socket.write(bytes, onFlushed); },
      get bufferedBytes() { return socket.writableLength; },
      pause: () => { socket.pause(); },
      resume: () => { socket.resume(); },
      end: () => { socket.end(); },
      destroy: () => { socket.destroy(); },
    };
    const connection = new FrameConnection(
      frameSocket,
      { transport: 'tcp', remoteAddress: socket.remoteAddress ?? '' },
      { maxFrameBytes, setupTimeoutMs, highWaterBytes, validateSetup, logger, acceptor, multiplexerFactory },
    );
    this.live.add(connection);
    connection.onClose(() => this.live.delete(connection));

    const splitter = new FrameSplitter(maxFrameBytes);
    const onFrame = (frame: Buffer): void => connection.receive(frame);
    socket.on('data', (chunk: Buffer) => {
      if (connection.closed) return;
      const oversized = splitter.push(chunk, onFrame);
      if (oversized !== undefined) {
        connection.fail('FRAME_TOO_LARGE', `frame of ${oversized} bytes exceeds the maximum of ${maxFrameBytes}`);
      }
    });
    socket.on('end', () => connection.socketGone());
    // Stays attached after close: a late ECONNRESET must not become an uncaught 'error'.
    socket.on('error', (error) => connection.socketGone(error));
    socket.on('close', () => connection.socketClosed());
    try {
      this.options.onConnection?.(connection);
    } catch (error) {
      // Thrown from here it would escape the server's 'connection' event and end the process.
      logger?.error({ err: error, connection: connection.id }, 'onConnection threw');
    }
  }
}
