/**
 * One RSocket connection, whatever carries it: the rsocket-core `DuplexConnection` both of the
 * gateway's server transports hand to the library. The transport turns bytes into whole frame
 * buffers and supplies a `FrameSocket`; everything else is here and shared: the SETUP handshake
 * and its timeout, decoding (a malformed frame closes this connection with an ERROR frame, never
 * the process), write backpressure and read pausing.
 *
 * It is also where the protocol's frame rules are enforced, because rsocket-core 1.0.0-alpha.3
 * (which must not be patched) leaves them as TODOs: which frame types may appear where
 * (`protocolViolation`), RESUME and METADATA_PUSH (neither offered), and the catalog body on
 * the ERROR frames the library writes itself for stream-level refusals (`catalogued`).
 *
 * Invariants: frames reach the library in arrival order; none reach it before its acceptor has
 * installed its handlers; after `close` nothing more is sent or delivered; every ERROR frame
 * sent carries a catalog body `{code, message, retryable}` (the library's own ones included).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import {
  ErrorCodes,
  Flags,
  FrameTypes,
  deserializeFrame,
  type Closeable,
  type ConnectionFrameHandler,
  type Demultiplexer,
  type DuplexConnection,
  type ErrorFrame,
  type Frame,
  type FrameHandler,
  type Multiplexer,
  type Outbound,
  type ServerTransport,
  type SetupFrame,
} from 'rsocket-core';
import { errorBody, rsocketCodeOf, type ErrorCode } from '../../protocol/errors.js';
import type { Logger } from '../log.js';
import { errorFrame, rsocketError } from './rsocket-errors.js';
import type { CdnGeoHeaders } from './upgrade-headers.js';

/**
 * Who is on the other end, as far as the transport can tell. A TCP connection knows only its
 * address; a WebSocket one also what its upgrade request's headers said (upgrade-headers.ts):
 * untrusted values, bounded in length and charset, and absent when not well-formed. Field names
 * match ingest's ConnectionContext (ingest-service.ts) where they mean the same, so the gateway
 * can hand them on as they are.
 */
export interface ConnectionContext {
  readonly transport: 'tcp' | 'ws';
  readonly remoteAddress: string;
  /** Cut at MAX_USER_AGENT_LENGTH. */
  readonly userAgent?: string;
  /** Lower-case `scheme://host[:port]`, http(s) only, default port dropped: compare with a site's allowed origins as is. */
  readonly origin?: string;
  /** As sent (cut at MAX_FORWARDED_FOR_LENGTH); only meaningful behind a proxy the operator trusts. */
  readonly forwardedFor?: string;
  /** The upgrade carried `DNT: 1`: the client asked not to be tracked. Absent otherwise. */
  readonly dnt?: true;
  /** The upgrade carried `Sec-GPC: 1` (Global Privacy Control). Absent otherwise. */
  readonly gpc?: true;
  /**
   * The trusted CDN's geo headers (`ServerTransportOptions.cdnGeoHeaders`; never set otherwise),
   * in the forms of ingest's geo hint: country two letters as sent ('XX' for unknown), region a
   * subdivision code as sent ('CA', only with a country), city a name (decoded, at most 100
   * characters, no control characters).
   */
  readonly country?: string;
  readonly region?: string;
  readonly city?: string;
}

export interface SetupRejection {
  /** A catalog code whose RSocket code is INVALID_SETUP, UNSUPPORTED_SETUP or REJECTED_SETUP. */
  readonly code: ErrorCode;
  readonly message: string;
}

/**
 * Runs on the SETUP frame before rsocket-core sees it. It exists because the library answers
 * every acceptor failure with REJECTED_SETUP: INVALID_SETUP and UNSUPPORTED_SETUP (bad MIME
 * type, lease or resume asked for) can only be sent from here. Credentials belong in the
 * acceptor (REJECTED_SETUP is what they need anyway).
 */
export type ValidateSetup = (
  frame: SetupFrame,
  context: ConnectionContext,
) => SetupRejection | undefined | Promise<SetupRejection | undefined>;

/** The options both server transports take. */
export interface ServerTransportOptions {
  readonly host: string;
  /** 0 picks a free port; read it back from the transport's `port` after `bind`. */
  readonly port: number;
  /** Largest frame accepted, in bytes (without the TCP length prefix). */
  readonly maxFrameBytes: number;
  /** A connection not through SETUP (frame received, validated, accepted) by then gets SETUP_TIMEOUT and is closed. */
  readonly setupTimeoutMs: number;
  /** Bytes queued on the socket at which `writable` turns false (and reading pauses). */
  readonly highWaterBytes: number;
  readonly validateSetup?: ValidateSetup;
  /**
   * WebSocket only: whose CDN geo headers to take into the context (`country`, `region`,
   * `city`). Default 'none'. Set it only when every WebSocket connection comes through that CDN:
   * otherwise a client sets its own place.
   */
  readonly cdnGeoHeaders?: CdnGeoHeaders;
  /** Called once per accepted socket, before its SETUP: for gauges and logging. */
  readonly onConnection?: (connection: FrameConnection) => void;
  readonly logger?: Logger;
}

export type ConnectionAcceptor = Parameters<ServerTransport['bind']>[0];
export type MultiplexerFactory = Parameters<ServerTransport['bind']>[1];
type MultiplexerDemultiplexer = Multiplexer & Demultiplexer & FrameHandler;

/** The transport-specific half of a connection: bytes out, flow control, teardown. */
export interface FrameSocket {
  /** Serialise as this transport frames it (TCP adds the uint24 length prefix). */
  encode(frame: Frame): Buffer;
  /** `onFlushed` runs once these bytes have left the user-space buffer. */
  write(bytes: Buffer, onFlushed?: () => void): void;
  /** Bytes written but not yet handed to the kernel. */
  readonly bufferedBytes: number;
  pause(): void;
  resume(): void;
  /** Flush what is queued, then close. */
  end(): void;
  destroy(): void;
}

export interface ConnectionSettings {
  /** Also caps the bytes held for fragmented (FOLLOWS) messages, all streams together. */
  readonly maxFrameBytes: number;
  readonly setupTimeoutMs: number;
  readonly highWaterBytes: number;
  readonly validateSetup?: ValidateSetup;
  readonly logger?: Logger;
  readonly acceptor: ConnectionAcceptor;
  readonly multiplexerFactory: MultiplexerFactory;
}

/**
 * rsocket-core's `RSocketServer` calls `acceptor.accept(setupPayload, requester)` without the
 * connection. Both transports run the library's connection acceptor inside this storage, and the
 * library calls the SocketAcceptor synchronously from there, so the acceptor can fetch the
 * connection it is accepting (context, backpressure, read pausing) with no side table to clean
 * up and no reliance on the library's private fields.
 */
const accepting = new AsyncLocalStorage<FrameConnection>();

/** The connection whose SETUP is being accepted; call it from `SocketAcceptor.accept`. */
export function acceptingConnection(): FrameConnection | undefined {
  return accepting.getStore();
}

/** After a graceful close, how long a peer that will not read gets before the socket is destroyed. */
const CLOSE_LINGER_MS = 2_000;

/** Floor for our keepalive interval while paused, whatever (tiny) interval the client asked for. */
const MIN_KEEPALIVE_MS = 50;

let nextId = 1;

export class FrameConnection implements DuplexConnection, Outbound, Closeable {
  readonly id = nextId++;
  private state: 'awaiting-setup' | 'accepting' | 'established' = 'awaiting-setup';
  private mux: MultiplexerDemultiplexer | undefined;
  private connectionHandler: ConnectionFrameHandler | undefined;
  private isClosed = false;
  /** The transport reported the socket fully closed. */
  private socketIsClosed = false;
  private closeReason: Error | undefined;
  private closeCallbacks: Array<(error?: Error) => void> = [];
  private drainCallbacks: Array<() => void> = [];
  /** Whole frames read while reading is paused; bounded by what the socket had already read. */
  private inbound: Buffer[] = [];
  private inboundHead = 0;
  private pausedByOwner = false;
  private pausedByWrites = false;
  private socketPaused = false;
  private delivering = false;
  private setupTimer: NodeJS.Timeout | undefined;
  private lingerTimer: NodeJS.Timeout | undefined;
  /** The client's KEEPALIVE interval from SETUP, in ms. */
  private keepAliveMs = 0;
  private keepAliveTimer: NodeJS.Timeout | undefined;
  /** Bytes rsocket-core's Reassembler holds per stream for unfinished fragmented messages. */
  private readonly fragments = new Map<number, number>();
  private fragmentBytes = 0;

  constructor(
    private readonly socket: FrameSocket,
    readonly context: ConnectionContext,
    private readonly settings: ConnectionSettings,
  ) {
    // Covers the whole handshake, not just the first frame's bytes: a stuck validateSetup or
    // acceptor must not hold paused sockets forever either.
    this.setupTimer = setTimeout(() => this.fail('SETUP_TIMEOUT', this.state === 'awaiting-setup'
      ? `no complete SETUP frame within ${settings.setupTimeoutMs} ms`
      : `SETUP not accepted within ${settings.setupTimeoutMs} ms`), settings.setupTimeoutMs);
    this.setupTimer.unref();
  }

  get multiplexerDemultiplexer(): MultiplexerDemultiplexer {
    if (this.mux === undefined) throw new Error('no multiplexer before the SETUP frame');
    return this.mux;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** 0 when closed or backpressured: new work sent now would only queue. */
  get availability(): number {
    return this.isClosed || this.pausedByWrites ? 0 : 1;
  }

  get bufferedBytes(): number {
    return this.socket.bufferedBytes;
  }

  /**
   * False once `highWaterBytes` are queued on the socket, true again when half of them have
   * drained. Producers that can wait (stream responders) check it before each send and park on
   * `onDrain`; sending anyway is allowed (nothing is dropped) but grows the queue.
   */
  get writable(): boolean {
    return !this.isClosed && !this.pausedByWrites;
  }

  /** Runs `callback` once when writable again (next microtask if it is now); never after close. */
  onDrain(callback: () => void): void {
    if (this.isClosed) return;
    if (!this.pausedByWrites) queueMicrotask(() => { if (!this.isClosed) this.invoke(callback); });
    else this.drainCallbacks.push(callback);
  }

  /**
   * Stop delivering frames and stop reading the socket, so TCP backpressure reaches the peer.
   * Idempotent (a flag, not a count): one owner decides. A pause must not look like a dead peer
   * to either side's keepalive: the library's timeout here is suspended (we are not reading the
   * client's KEEPALIVEs) and we send our own KEEPALIVE each client interval (the client is not
   * getting its echoes, and rsocket-js closes after `lifetime` without one).
   */
  pauseReading(): void {
    if (this.pausedByOwner) return;
    this.pausedByOwner = true;
    if (this.state === 'established') this.suspendKeepAlive();
    this.updateReading();
  }

  resumeReading(): void {
    if (!this.pausedByOwner) return;
    this.pausedByOwner = false;
    clearInterval(this.keepAliveTimer);
    if (!this.isClosed) this.connectionHandler?.resume();
    this.updateReading();
  }

  get readingPaused(): boolean {
    return this.pausedByOwner;
  }

  send(frame: Frame): void {
    if (this.isClosed) return;
    if (frame.type === FrameTypes.ERROR && frame.streamId !== 0) {
      // An ERROR ends its stream: whatever fragments it held are gone in the library too.
      this.releaseFragments(frame.streamId);
      frame = this.catalogued(frame);
    }
    let bytes: Buffer;
    try {
      bytes = this.socket.encode(frame);
    } catch (error) {
      // An unencodable frame (e.g. metadata over 16 MiB) is a server bug; throwing would leave
      // the library's stream state half-updated, so the connection goes instead.
      this.settings.logger?.error({ err: error, connection: this.id, frameType: frame.type }, 'cannot encode frame');
      this.close(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    const over = this.socket.bufferedBytes + bytes.length >= this.settings.highWaterBytes;
    // Every write made at or over the mark carries a flush callback, so one of them fires once
    // the queue has shrunk: that is the drain signal, the same for TCP and WebSocket.
    this.socket.write(bytes, over || this.pausedByWrites ? this.flushed : undefined);
    if (over && !this.pausedByWrites) {
      this.pausedByWrites = true;
      this.updateReading();
    }
  }

  /** Send a stream-0 ERROR frame with the catalog body, then close. */
  fail(code: ErrorCode, message: string): void {
    if (this.isClosed) return;
    this.settings.logger?.debug({ connection: this.id, code, message, ...this.context }, 'closing connection');
    this.send(errorFrame(code, message));
    this.close(rsocketError(code, message));
  }

  /** Idempotent. Queued frames are flushed first; a peer that does not read them is cut off after a linger. */
  close(error?: Error): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeReason = error;
    clearTimeout(this.setupTimer);
    clearInterval(this.keepAliveTimer);
    this.inbound = [];
    this.inboundHead = 0;
    this.drainCallbacks = [];
    // A socket already gone (the peer closed first) has nothing to flush: a linger timer would
    // only keep this connection, its context included, alive for CLOSE_LINGER_MS.
    if (!this.socketIsClosed) {
      // Read again (and discard: receive() ignores a closed connection) so the peer's side of
      // the close gets through — a WebSocket's closing handshake needs the peer's close frame —
      // instead of a paused socket waiting out the linger.
      if (this.socketPaused) {
        this.socketPaused = false;
        this.socket.resume();
      }
      this.socket.end();
      this.lingerTimer = setTimeout(() => this.socket.destroy(), CLOSE_LINGER_MS);
      this.lingerTimer.unref();
    }
    const callbacks = this.closeCallbacks;
    this.closeCallbacks = [];
    // Library callbacks (streams, responder.close) run here; one throwing must not skip the
    // others or escape into a socket event handler.
    for (const callback of callbacks) this.invoke(() => callback(error));
  }

  onClose(callback: (error?: Error) => void): void {
    if (this.isClosed) this.invoke(() => callback(this.closeReason));
    else this.closeCallbacks.push(callback);
  }

  // ---- transport-facing -------------------------------------------------------------------

  /** One whole frame (no length prefix), in arrival order. */
  receive(bytes: Buffer): void {
    if (this.isClosed) return;
    if (this.state === 'awaiting-setup') {
      this.acceptFirst(bytes);
    } else if (this.canDeliver() && this.inboundHead === this.inbound.length && !this.delivering) {
      this.dispatch(bytes);
    } else {
      this.inbound.push(bytes);
      this.updateReading();
    }
  }

  /** The peer ended, the socket failed, or it is gone: close without sending anything. */
  socketGone(error?: Error): void {
    this.close(error);
  }

  /** The socket is fully closed: nothing left to linger for. */
  socketClosed(): void {
    this.socketIsClosed = true;
    clearTimeout(this.lingerTimer);
    this.close();
  }

  // ---- internals ---------------------------------------------------------------------------

  private readonly flushed = (): void => {
    if (!this.pausedByWrites || this.socket.bufferedBytes > this.settings.highWaterBytes / 2) return;
    this.pausedByWrites = false;
    const callbacks = this.drainCallbacks;
    this.drainCallbacks = [];
    for (const callback of callbacks) {
      if (this.isClosed || this.pausedByWrites) {
        this.drainCallbacks.push(callback);
      } else {
        this.invoke(callback);
      }
    }
    this.updateReading();
  };

  private canDeliver(): boolean {
    return !this.isClosed && this.state === 'established' && !this.pausedByOwner && !this.pausedByWrites;
  }

  /** Deliver queued frames while allowed, then make the socket's flow match. */
  private updateReading(): void {
    if (this.delivering) return; // the loop below re-checks after every frame
    this.delivering = true;
    try {
      while (this.canDeliver() && this.inboundHead < this.inbound.length) {
        const bytes = this.inbound[this.inboundHead];
        this.inbound[this.inboundHead++] = EMPTY;
        if (bytes !== undefined) this.dispatch(bytes);
      }
      if (this.inboundHead === this.inbound.length) {
        this.inbound = [];
        this.inboundHead = 0;
      }
    } finally {
      this.delivering = false;
    }
    if (this.isClosed) return;
    // Before SETUP we must read to see it; while the acceptor runs we must not.
    const read = this.state === 'awaiting-setup' || (this.canDeliver() && this.inbound.length === 0);
    if (read && this.socketPaused) {
      this.socketPaused = false;
      this.socket.resume();
    } else if (!read && !this.socketPaused) {
      this.socketPaused = true;
      this.socket.pause();
    }
  }

  private acceptFirst(bytes: Buffer): void {
    // Before decoding: rsocket-core's decoder throws on every METADATA_PUSH (see dispatch).
    if (typeOf(bytes) === FrameTypes.METADATA_PUSH) {
      this.fail('SETUP_INVALID', `the first frame must be SETUP on stream 0, got METADATA_PUSH on stream ${bytes.readUInt32BE(0)}`);
      return;
    }
    const frame = this.decode(bytes);
    if (frame === undefined) return;
    // The header's stream id, not the decoded one: the codec reports 0 for SETUP and RESUME
    // whatever the header says.
    const streamId = bytes.readUInt32BE(0);
    if (frame.type === FrameTypes.RESUME) {
      // Refused here with the catalog's code: the library would answer 0x004 REJECTED_RESUME
      // "Resume is not enabled", without a catalog body.
      this.fail('SETUP_INVALID', 'resume is not offered: open a new connection with SETUP');
      return;
    }
    if (frame.type !== FrameTypes.SETUP || streamId !== 0) {
      this.fail('SETUP_INVALID', `the first frame must be SETUP on stream 0, got ${frameTypeName(frame.type)} on stream ${streamId}`);
      return;
    }
    // Minor versions are compatible by the spec; another major version is another protocol.
    if (frame.majorVersion !== RSOCKET_MAJOR_VERSION) {
      this.fail('SETUP_INVALID', `RSocket protocol version ${frame.majorVersion}.${frame.minorVersion} is not supported; this server speaks ${RSOCKET_MAJOR_VERSION}.x`);
      return;
    }
    this.state = 'accepting';
    this.updateReading();
    this.establish(frame).catch((error: unknown) => {
      this.settings.logger?.error({ err: error, connection: this.id }, 'connection setup failed');
      this.fail('INTERNAL', 'connection setup failed');
    });
  }

  private async establish(frame: SetupFrame): Promise<void> {
    const { validateSetup, multiplexerFactory, acceptor } = this.settings;
    if (validateSetup !== undefined) {
      const rejection = await validateSetup(frame, this.context);
      if (this.isClosed) return;
      if (rejection !== undefined) {
        this.fail(rejection.code, rejection.message);
        return;
      }
    }
    // Typed as always returning one, but for a SETUP asking to resume (which validateSetup
    // refuses first in the gateway) the library sends its own ERROR frame, closes us and
    // returns undefined.
    const mux: MultiplexerDemultiplexer | undefined = multiplexerFactory(frame, this);
    if (mux === undefined || this.isClosed) {
      this.close();
      return;
    }
    // Capture the library's connection frame handler (public interface, has pause/resume) so
    // pauseReading can suspend its keepalive timeout.
    const install = mux.connectionInbound.bind(mux);
    mux.connectionInbound = (handler: ConnectionFrameHandler): void => {
      this.connectionHandler = handler;
      install(handler);
    };
    this.mux = mux;
    this.keepAliveMs = frame.keepAlive;
    await accepting.run(this, () => acceptor(frame, this));
    if (this.isClosed) return;
    clearTimeout(this.setupTimer);
    this.state = 'established';
    if (this.pausedByOwner) this.suspendKeepAlive();
    this.updateReading();
  }

  private suspendKeepAlive(): void {
    this.connectionHandler?.pause();
    clearInterval(this.keepAliveTimer);
    if (this.keepAliveMs <= 0) return;
    this.keepAliveTimer = setInterval(() => {
      // A peer that does not read gets no more bytes from us, keepalives included.
      if (this.writable) this.send({ type: FrameTypes.KEEPALIVE, streamId: 0, flags: Flags.NONE, data: undefined, lastReceivedPosition: 0 });
    }, Math.max(this.keepAliveMs, MIN_KEEPALIVE_MS));
    this.keepAliveTimer.unref();
  }

  private dispatch(bytes: Buffer): void {
    if (typeOf(bytes) === FrameTypes.METADATA_PUSH) {
      // rsocket-core's decoder throws on every METADATA_PUSH (deserializeMetadataPushFrame reads
      // an undeclared `length`), and no route uses metadata push: a METADATA_PUSH on stream 0 is
      // dropped before decoding, as the library would drop it anyway.
      if (bytes.readUInt32BE(0) !== 0) this.fail('FRAME_MALFORMED', 'METADATA_PUSH is only allowed on stream 0');
      return;
    }
    const frame = this.decode(bytes);
    if (frame === undefined || this.mux === undefined) return;
    const violation = protocolViolation(frame.type, bytes.readUInt32BE(0));
    if (violation !== undefined) {
      this.fail('FRAME_MALFORMED', violation);
      return;
    }
    if (!this.trackFragments(frame)) return;
    try {
      this.mux.handle(frame);
    } catch (error) {
      // Only a handler bug gets here (the router must not throw); the library's stream state is
      // unknown afterwards, so this connection goes and the process stays.
      this.settings.logger?.error({ err: error, connection: this.id, frameType: frame.type }, 'frame handler threw');
      this.fail('INTERNAL', 'the server failed while handling a frame');
    }
  }

  /**
   * rsocket-core reassembles FOLLOWS fragments without any limit, so a peer could grow memory one
   * legal frame at a time; this bounds it. False when the connection was failed.
   */
  private trackFragments(frame: Frame): boolean {
    switch (frame.type) {
      case FrameTypes.REQUEST_RESPONSE:
      case FrameTypes.REQUEST_FNF:
      case FrameTypes.REQUEST_STREAM:
      case FrameTypes.REQUEST_CHANNEL:
      case FrameTypes.PAYLOAD:
        break;
      case FrameTypes.CANCEL:
      case FrameTypes.ERROR:
        this.releaseFragments(frame.streamId);
        return true;
      default:
        return true;
    }
    if (!Flags.hasFollows(frame.flags)) {
      this.releaseFragments(frame.streamId);
      return true;
    }
    const size = (frame.data?.length ?? 0) + (frame.metadata?.length ?? 0);
    this.fragments.set(frame.streamId, (this.fragments.get(frame.streamId) ?? 0) + size);
    this.fragmentBytes += size;
    if (this.fragmentBytes <= this.settings.maxFrameBytes) return true;
    this.fail('FRAME_TOO_LARGE', `fragmented messages exceed the maximum of ${this.settings.maxFrameBytes} bytes`);
    return false;
  }

  private releaseFragments(streamId: number): void {
    const held = this.fragments.get(streamId);
    if (held === undefined) return;
    this.fragments.delete(streamId);
    this.fragmentBytes -= held;
  }

  /**
   * The ERROR frames rsocket-core writes itself when it refuses a frame on a stream carry its
   * own text, not a catalog body. Only the library knows its streams' state (its registry and
   * stream machines are private), so its decision stands — the stream is over — and only the
   * body is replaced: a frame the stream's interaction does not take (a PAYLOAD or REQUEST_N
   * on a request/response stream, a PAYLOAD on a live stream, anything but PAYLOAD while a
   * fragmented request is reassembled) and REQUEST_CHANNEL, for which no route exists, both get
   * ROUTE_WRONG_INTERACTION. Frames already carrying a catalog body (the responder's) pass.
   */
  private catalogued(frame: ErrorFrame): ErrorFrame {
    if (frame.message.startsWith('{')) return frame;
    let message: string | undefined;
    const unexpected = frame.code === ErrorCodes.CANCELED ? UNEXPECTED_FRAME.exec(frame.message) : null;
    if (unexpected !== null) {
      message = `a ${frameTypeName(Number(unexpected[1]))} frame is not part of this stream's interaction${unexpected[2] === undefined ? '' : ' while its request is still arriving in fragments'}; the stream is ended`;
    } else if (frame.code === ErrorCodes.REJECTED && frame.message === NO_HANDLER) {
      message = 'no route takes this interaction model (request-channel is not offered)';
    }
    if (message === undefined) return frame;
    this.settings.logger?.debug({ connection: this.id, streamId: frame.streamId, library: frame.message }, 'stream refused by rsocket-core');
    const code: ErrorCode = 'ROUTE_WRONG_INTERACTION';
    return { type: FrameTypes.ERROR, streamId: frame.streamId, flags: Flags.NONE, code: rsocketCodeOf(code), message: JSON.stringify(errorBody(code, message)) };
  }

  /** The library's decoder throws on short input and returns undefined for unknown types. */
  private decode(bytes: Buffer): Frame | undefined {
    let frame: Frame | undefined;
    try {
      frame = deserializeFrame(bytes) as Frame | undefined;
    } catch (error) {
      this.fail('FRAME_MALFORMED', `undecodable frame: ${error instanceof Error ? error.message : String(error)}`);
      return undefined;
    }
    if (frame === undefined) {
      // The spec lets a receiver skip frames it does not know if they carry the IGNORE flag.
      if (bytes.length >= 6 && Flags.hasIgnore(bytes.readUInt16BE(4))) return undefined;
      this.fail('FRAME_MALFORMED', 'unknown frame type');
      return undefined;
    }
    if (frame.streamId < 0) {
      this.fail('FRAME_MALFORMED', 'negative stream id');
      return undefined;
    }
    return frame;
  }

  private invoke(callback: () => void): void {
    try {
      callback();
    } catch (error) {
      this.settings.logger?.error({ err: error, connection: this.id }, 'connection callback threw');
    }
  }
}

const EMPTY = Buffer.alloc(0);

/** The RSocket major version this server speaks (SETUP's majorVersion). */
const RSOCKET_MAJOR_VERSION = 1;

const FRAME_HEADER_BYTES = 6;

/** rsocket-core's texts for the stream refusals `catalogued` rewrites (1.0.0-alpha.3). */
const UNEXPECTED_FRAME = /^Unexpected frame type \[(\d+)\]( during reassembly)?$/;
const NO_HANDLER = 'No available handler found';

/** Frame types that exist only on stream 0 (RSocket spec, "Frame Types"). */
const CONNECTION_FRAME_TYPES: ReadonlySet<number> = new Set([
  FrameTypes.SETUP, FrameTypes.LEASE, FrameTypes.KEEPALIVE, FrameTypes.METADATA_PUSH, FrameTypes.RESUME, FrameTypes.RESUME_OK,
]);

/** What a client may send on stream 0 once SETUP is done (METADATA_PUSH is dropped before decoding). */
const STREAM_ZERO_AFTER_SETUP: ReadonlySet<number> = new Set([FrameTypes.KEEPALIVE, FrameTypes.LEASE, FrameTypes.ERROR]);

/** The frame type from a frame's header, or undefined when it has no whole header. */
function typeOf(bytes: Buffer): number | undefined {
  return bytes.length < FRAME_HEADER_BYTES ? undefined : bytes.readUInt16BE(4) >>> 10;
}

function frameTypeName(type: number): string {
  return FrameTypes[type] ?? `0x${type.toString(16)}`;
}

/**
 * Why a decoded frame may not appear where it did on an established connection, or undefined.
 * `streamId` is the header's: rsocket-core's codec reports 0 for every connection-level type.
 * These are connection errors in RSocket (a stream-0 ERROR ends the connection), which
 * rsocket-core does not enforce: it answers them with a bare "Received unknown frame type" and
 * carries on.
 */
function protocolViolation(type: number, streamId: number): string | undefined {
  if (streamId !== 0) {
    return CONNECTION_FRAME_TYPES.has(type) ? `${frameTypeName(type)} is only allowed on stream 0, got stream ${streamId}` : undefined;
  }
  if (STREAM_ZERO_AFTER_SETUP.has(type)) return undefined;
  if (type === FrameTypes.SETUP) return 'SETUP was already received on this connection';
  if (type === FrameTypes.RESUME || type === FrameTypes.RESUME_OK) return `${frameTypeName(type)}: resume is not offered`;
  return `${frameTypeName(type)} is not allowed on stream 0 (stream 0 is the connection's)`;
}
