import { expect } from 'chai';
import { FrameTypes, RSocketConnector, RSocketServer, serializeFrameWithLength, type ErrorFrame, type Frame, type RSocket, type SocketAcceptor } from 'rsocket-core';
import { TcpClientTransport } from 'rsocket-tcp-client';
import { parseErrorBody } from '../../protocol/errors.js';
import type { ServerTransportOptions } from './frame-connection.js';
import { rsocketError } from './rsocket-errors.js';
import { FrameSplitter, TcpServerTransport } from './tcp-server-transport.js';
import {
  EchoProbe,
  RawTcpClient,
  connectionError,
  echoAcceptor,
  fireAndForget,
  requestResponse,
  requestStream,
  requestStreamFrame,
  setupFrame,
  sleep,
  streamProgress,
  trapProcessErrors,
  waitFor,
} from './transport-test-kit.js';

const MAX_FRAME_BYTES = 64 * 1024;
const HIGH_WATER_BYTES = 64 * 1024;

describe('FrameSplitter', () => {
  const frames = [Buffer.from('a'), Buffer.alloc(0), Buffer.alloc(70_000, 7), Buffer.from('hello world')];
  const stream = Buffer.concat(frames.map((f) => Buffer.concat([lengthPrefix(f.length), f])));

  for (const chunkSize of [1, 2, 3, 5, 4096, stream.length]) {
    it(`recovers every frame when fed in ${chunkSize}-byte chunks`, () => {
      const splitter = new FrameSplitter(100_000);
      const out: Buffer[] = [];
      const results = new Set<number | undefined>();
      for (let i = 0; i < stream.length; i += chunkSize) {
        results.add(splitter.push(stream.subarray(i, i + chunkSize), (f) => out.push(Buffer.from(f))));
      }
      expect([...results]).to.deep.equal([undefined]);
      expect(out).to.deep.equal(frames);
      expect(splitter.bufferedBytes).to.equal(0);
    });
  }

  it('reports an oversized frame from its prefix alone and keeps nothing', () => {
    const splitter = new FrameSplitter(1024);
    expect(splitter.push(Buffer.from([0x00, 0x04]), () => {})).to.equal(undefined);
    expect(splitter.push(Buffer.from([0x01, 0xff, 0xff]), () => {})).to.equal(1025);
    expect(splitter.bufferedBytes).to.equal(0);
  });
});

describe('TcpServerTransport', () => {
  let transport: TcpServerTransport;
  let probe: EchoProbe;
  let clients: RSocket[];
  let raws: RawTcpClient[];
  let trap: ReturnType<typeof trapProcessErrors>;

  async function start(options: Partial<ServerTransportOptions> = {}, acceptor?: SocketAcceptor): Promise<void> {
    transport = new TcpServerTransport({
      host: '127.0.0.1', port: 0, maxFrameBytes: MAX_FRAME_BYTES, setupTimeoutMs: 300, highWaterBytes: HIGH_WATER_BYTES, ...options,
    });
    await new RSocketServer({ transport, acceptor: acceptor ?? echoAcceptor(probe) }).bind();
  }

  async function client(setup: { keepAlive?: number; lifetime?: number } = {}): Promise<RSocket> {
    const rsocket = await new RSocketConnector({
      transport: new TcpClientTransport({ connectionOptions: { host: '127.0.0.1', port: transport.port } }),
      setup: { dataMimeType: 'application/json', metadataMimeType: 'message/x.rsocket.composite-metadata.v0', ...setup },
    }).connect();
    clients.push(rsocket);
    return rsocket;
  }

  async function raw(options: { paused?: boolean } = {}): Promise<RawTcpClient> {
    const c = await RawTcpClient.connect(transport.port, options);
    raws.push(c);
    return c;
  }

  beforeEach(() => {
    probe = new EchoProbe();
    clients = [];
    raws = [];
    trap = trapProcessErrors();
  });

  afterEach(async () => {
    for (const c of clients) c.close();
    for (const r of raws) r.destroy();
    for (const c of transport.connections) c.close();
    transport.close();
    await sleep(10); // let close events land while the trap still listens
    trap.dispose();
    expect(trap.errors, 'unhandled rejections / uncaught exceptions').to.deep.equal([]);
  });

  describe('with real clients', () => {
    it('serves request-response, request-stream with request(n) and fire-and-forget', async () => {
      await start();
      const rsocket = await client();

      const reply = await requestResponse(rsocket, 'ping');
      expect(reply.data?.toString()).to.equal('ping');

      const stream = requestStream(rsocket, 10, 16, 3);
      await waitFor(() => stream.state.items === 3, '3 items');
      expect(probe.streams[0]?.sent, 'server sent only what was requested').to.equal(3);
      expect(probe.streams[0]?.demand).to.equal(0);
      stream.request(7);
      await waitFor(() => stream.state.complete, 'stream completion');
      expect(stream.state.items).to.equal(10);

      for (let i = 0; i < 100; i++) fireAndForget(rsocket, `e${i}`);
      await waitFor(() => probe.fireAndForgets === 100, '100 fire-and-forgets');
    });

    it('gives the acceptor its connection and context', async () => {
      await start();
      await requestResponse(await client(), 'x');
      expect(probe.contexts).to.have.length(1);
      expect(probe.contexts[0]).to.include({ transport: 'tcp', remoteAddress: '127.0.0.1' });
      expect(probe.connections[0]).to.equal([...transport.connections][0]);
    });

    it('notices a clean close by the client', async () => {
      const seen: number[] = [];
      await start({ onConnection: (c) => seen.push(c.id) });
      const rsocket = await client();
      await requestResponse(rsocket, 'x');
      expect(transport.connections.size).to.equal(1);
      rsocket.close();
      clients = []; // closed: rsocket-core warns on a second close
      await waitFor(() => transport.connections.size === 0, 'connection count back to 0');
      expect(seen).to.have.length(1);
    });

    it('pauses reading without either keepalive killing the connection', async () => {
      await start();
      const rsocket = await client({ keepAlive: 50, lifetime: 300 });
      let clientClosed = false;
      rsocket.onClose(() => { clientClosed = true; });
      await requestResponse(rsocket, 'x');
      const connection = probe.connections[0]!;

      connection.pauseReading();
      for (let i = 0; i < 50; i++) fireAndForget(rsocket, `e${i}`);
      await sleep(1_000); // several client lifetimes
      expect(probe.fireAndForgets, 'nothing delivered while paused').to.equal(0);
      expect(clientClosed).to.equal(false);
      expect(connection.closed).to.equal(false);

      connection.resumeReading();
      await waitFor(() => probe.fireAndForgets === 50, 'all 50 after resume');
      expect((await requestResponse(rsocket, 'still-there')).data?.toString()).to.equal('still-there');
    });
  });

  describe('with hostile clients', () => {
    it('times out a partial first frame (2 bytes) with SETUP_TIMEOUT', async () => {
      await start();
      const c = await raw();
      c.write(Buffer.from([0x00, 0x00]));
      await waitFor(() => c.closed, 'server closing the socket');
      const error = connectionError(c.frames);
      expect(error?.frame.code).to.equal(0x101);
      expect(error?.body).to.deep.equal({ code: 'SETUP_TIMEOUT', message: 'no complete SETUP frame within 300 ms', retryable: true });
      await waitFor(() => transport.connections.size === 0, 'connection released');
    });

    it('answers undecodable bytes with FRAME_MALFORMED', async () => {
      await start();
      const c = await raw();
      c.write(Buffer.from([0x00, 0x00, 0x03, 0xde, 0xad, 0xbe])); // a 3-byte "frame": shorter than a header
      await waitFor(() => c.closed, 'server closing the socket');
      expect(connectionError(c.frames)?.frame.code).to.equal(0x101);
      expect(connectionError(c.frames)?.body?.code).to.equal('FRAME_MALFORMED');
    });

    it('answers an unknown frame type with FRAME_MALFORMED', async () => {
      await start();
      const c = await raw();
      c.write(Buffer.from([0x00, 0x00, 0x06, 0, 0, 0, 0, 0xfc, 0x00])); // type 0x3F (EXT), not decodable here
      await waitFor(() => c.closed, 'server closing the socket');
      expect(connectionError(c.frames)?.body?.code).to.equal('FRAME_MALFORMED');
    });

    it('rejects an oversized frame from its length prefix, before its body arrives', async () => {
      await start();
      const c = await raw();
      c.write(Buffer.concat([lengthPrefix(MAX_FRAME_BYTES + 1), Buffer.alloc(10)])); // the other 64 KiB never sent
      await waitFor(() => c.closed, 'server closing the socket');
      expect(connectionError(c.frames)?.frame.code).to.equal(0x101);
      expect(connectionError(c.frames)?.body?.code).to.equal('FRAME_TOO_LARGE');
    });

    it('bounds fragmented (FOLLOWS) messages, which rsocket-core would reassemble without limit', async () => {
      await start();
      const c = await raw();
      c.send(setupFrame());
      const fragment = Buffer.alloc(16 * 1024);
      c.send({ type: FrameTypes.REQUEST_RESPONSE, streamId: 1, flags: 0x80, data: fragment, metadata: undefined });
      for (let i = 0; i < 8 && !c.closed; i++) {
        c.send({ type: FrameTypes.PAYLOAD, streamId: 1, flags: 0x80, data: fragment, metadata: undefined });
      }
      await waitFor(() => c.closed, 'server closing the socket');
      expect(connectionError(c.frames)?.body?.code).to.equal('FRAME_TOO_LARGE');
    });

    it('answers a first frame that is not SETUP with SETUP_INVALID', async () => {
      await start();
      const c = await raw();
      c.send(requestStreamFrame(1, 1, 1));
      await waitFor(() => c.closed, 'server closing the socket');
      expect(connectionError(c.frames)?.frame.code).to.equal(0x001);
      expect(connectionError(c.frames)?.body?.code).to.equal('SETUP_INVALID');
    });

    it('sends the code validateSetup chose, before the library sees the SETUP', async () => {
      await start({
        validateSetup: (frame, ctx) => frame.dataMimeType === 'application/json' && ctx.transport === 'tcp'
          ? undefined
          : { code: 'SETUP_UNSUPPORTED_MIME', message: `unsupported data MIME type ${frame.dataMimeType}` },
      });
      const c = await raw();
      c.send(setupFrame({ dataMimeType: 'text/plain' }));
      await waitFor(() => c.closed, 'server closing the socket');
      expect(connectionError(c.frames)?.frame.code).to.equal(0x002);
      expect(connectionError(c.frames)?.body?.code).to.equal('SETUP_UNSUPPORTED_MIME');
      expect(probe.contexts, 'acceptor never ran').to.have.length(0);
    });

    it('lets the acceptor reject with a catalog body (the library always says REJECTED_SETUP)', async () => {
      await start({}, echoAcceptor(probe, { rejectWith: rsocketError('AUTH_INVALID', 'unknown key') }));
      const c = await raw();
      c.send(setupFrame());
      await waitFor(() => c.closed, 'server closing the socket');
      expect(connectionError(c.frames)?.frame.code).to.equal(0x003);
      expect(connectionError(c.frames)?.body?.code).to.equal('AUTH_INVALID');
    });

    it('refuses RESUME with SETUP_INVALID, and survives the library refusing a resume-flagged SETUP (its factory returns undefined)', async () => {
      await start();
      const resume = await raw();
      resume.send({
        type: FrameTypes.RESUME, streamId: 0, flags: 0, majorVersion: 1, minorVersion: 0,
        resumeToken: Buffer.from('token'), clientPosition: 0, serverPosition: 0,
      });
      // Without validateSetup (the gateway's refuses the flag first) the library answers itself.
      const resumeFlag = await raw();
      resumeFlag.send(setupFrame({ flags: 0x80, resumeToken: Buffer.from('token') }));
      await waitFor(() => resume.closed && resumeFlag.closed, 'both closed');
      expect(connectionError(resume.frames)?.frame.code).to.equal(0x001);
      expect(connectionError(resume.frames)?.body?.code).to.equal('SETUP_INVALID');
      expect(connectionError(resumeFlag.frames)?.frame.code).to.equal(0x003);
      await waitFor(() => transport.connections.size === 0, 'connections released');
    });

    it('times out a SETUP the acceptor never answers', async () => {
      await start({}, { accept: () => new Promise(() => {}) });
      const c = await raw();
      c.send(setupFrame());
      c.send(requestStreamFrame(1, 1, 1));
      await waitFor(() => c.closed, 'server closing the socket');
      expect(connectionError(c.frames)?.body).to.deep.include({ code: 'SETUP_TIMEOUT', message: 'SETUP not accepted within 300 ms' });
    });

    it('closes on a malformed frame after SETUP and queues nothing for the library', async () => {
      await start();
      const c = await raw();
      c.write(Buffer.concat([serializeFrameWithLength(setupFrame()), Buffer.from([0x00, 0x00, 0x01, 0x00])]));
      await waitFor(() => c.closed, 'server closing the socket');
      expect(connectionError(c.frames)?.body?.code).to.equal('FRAME_MALFORMED');
    });

    it('keeps serving a valid client while hostile ones are killed', async () => {
      await start();
      const rsocket = await client();
      const hostile = await Promise.all(Array.from({ length: 20 }, () => raw()));
      hostile.forEach((c, i) => {
        switch (i % 4) {
          case 0: c.write(Buffer.from([0x00, 0x00])); break;
          case 1: c.write(Buffer.from([0x00, 0x00, 0x02, 0x01, 0x02])); break;
          case 2: c.write(lengthPrefix(16_000_000)); break;
          default: c.send(requestStreamFrame(1, 1, 1)); break;
        }
      });
      let answered = 0;
      while (hostile.some((c) => !c.closed)) {
        expect((await requestResponse(rsocket, `ok${answered}`)).data?.toString()).to.equal(`ok${answered}`);
        answered++;
      }
      expect(answered).to.be.greaterThan(0);
      await waitFor(() => transport.connections.size === 1, 'only the valid connection left');
      expect((await requestResponse(rsocket, 'after')).data?.toString()).to.equal('after');
    });
  });

  describe('frame rules rsocket-core leaves to the transport', () => {
    /** A raw client through SETUP, with the echo acceptor behind it. */
    async function established(): Promise<RawTcpClient> {
      const c = await raw();
      c.send(setupFrame());
      return c;
    }
    const echo = (streamId: number, text: string): Frame => ({ type: FrameTypes.REQUEST_RESPONSE, streamId, flags: 0, data: Buffer.from(text), metadata: undefined });
    const echoed = (c: RawTcpClient, streamId: number) => c.frames.some((f) => f.type === FrameTypes.PAYLOAD && f.streamId === streamId);
    const streamError = (c: RawTcpClient, streamId: number) => {
      const frame = c.frames.find((f): f is ErrorFrame => f.type === FrameTypes.ERROR && f.streamId === streamId);
      return frame === undefined ? undefined : { code: frame.code, body: parseErrorBody(frame.message) };
    };
    /** The frame's bytes with another stream id in the header (the codec writes 0 for connection-level types). */
    const onStream = (frame: Frame, streamId: number): Buffer => {
      const bytes = serializeFrameWithLength(frame);
      bytes.writeUInt32BE(streamId, 3);
      return bytes;
    };

    it('refuses a first SETUP on a stream other than 0, and any major version but 1, with SETUP_INVALID', async () => {
      await start();
      const stream1 = await raw();
      stream1.write(onStream(setupFrame(), 1));
      const version2 = await raw();
      version2.send(setupFrame({ majorVersion: 2 }));
      const minor9 = await raw();
      minor9.send(setupFrame({ minorVersion: 9 }));
      minor9.send(echo(1, 'minor versions are compatible'));
      await waitFor(() => stream1.closed && version2.closed && echoed(minor9, 1), 'two refusals and an answer');
      for (const c of [stream1, version2]) {
        expect(connectionError(c.frames)?.frame.code).to.equal(0x001);
        expect(connectionError(c.frames)?.body?.code).to.equal('SETUP_INVALID');
      }
      expect(connectionError(version2.frames)?.body?.message).to.equal('RSocket protocol version 2.0 is not supported; this server speaks 1.x');
      expect(probe.contexts, 'the acceptor saw only the good SETUP').to.have.length(1);
    });

    it('closes with FRAME_MALFORMED on a frame stream 0 may not carry after SETUP (the library would answer 0x101 without a body and go on)', async () => {
      await start();
      const zero: Array<[string, Frame]> = [
        ['SETUP', setupFrame()],
        ['RESUME', { type: FrameTypes.RESUME, streamId: 0, flags: 0, majorVersion: 1, minorVersion: 0, resumeToken: Buffer.from('t'), clientPosition: 0, serverPosition: 0 }],
        ['RESUME_OK', { type: FrameTypes.RESUME_OK, streamId: 0, flags: 0, clientPosition: 0 }],
        ['REQUEST_RESPONSE', echo(0, 'on stream 0')],
        ['REQUEST_N', { type: FrameTypes.REQUEST_N, streamId: 0, flags: 0, requestN: 1 }],
        ['CANCEL', { type: FrameTypes.CANCEL, streamId: 0, flags: 0 }],
        ['PAYLOAD', { type: FrameTypes.PAYLOAD, streamId: 0, flags: 0x60, data: Buffer.from('x'), metadata: undefined }],
      ];
      const clients = await Promise.all(zero.map(async ([, frame]) => {
        const c = await established();
        c.send(frame);
        c.send(echo(1, 'too late'));
        return c;
      }));
      await waitFor(() => clients.every((c) => c.closed), 'every connection closed');
      zero.forEach(([name], i) => {
        const c = clients[i]!;
        expect(connectionError(c.frames)?.frame.code, name).to.equal(0x101);
        expect(connectionError(c.frames)?.body?.code, name).to.equal('FRAME_MALFORMED');
        expect(c.frames.filter((f) => f.type === FrameTypes.ERROR && f.streamId === 0), `${name}: one ERROR`).to.have.length(1);
        expect(echoed(c, 1), `${name}: nothing served after it`).to.equal(false);
      });
    });

    it('closes with FRAME_MALFORMED on a connection-level frame (KEEPALIVE, METADATA_PUSH) on another stream', async () => {
      await start();
      const keepalive = await established();
      keepalive.write(onStream({ type: FrameTypes.KEEPALIVE, streamId: 0, flags: 0x80, lastReceivedPosition: 0, data: undefined }, 3));
      const push = await established();
      push.write(onStream({ type: FrameTypes.METADATA_PUSH, streamId: 0, flags: 0x100, metadata: Buffer.from('m') }, 5));
      await waitFor(() => keepalive.closed && push.closed, 'both closed');
      expect(connectionError(keepalive.frames)?.body).to.deep.include({ code: 'FRAME_MALFORMED', message: 'KEEPALIVE is only allowed on stream 0, got stream 3' });
      expect(connectionError(push.frames)?.body).to.deep.include({ code: 'FRAME_MALFORMED', message: 'METADATA_PUSH is only allowed on stream 0' });
    });

    it('ignores METADATA_PUSH on stream 0, which the library cannot even decode', async () => {
      await start();
      const c = await established();
      c.send({ type: FrameTypes.METADATA_PUSH, streamId: 0, flags: 0x100, metadata: Buffer.from('unused') });
      c.send(echo(1, 'still here'));
      await waitFor(() => echoed(c, 1) || c.closed, 'an answer or a close');
      expect(c.closed).to.equal(false);
      expect(c.frames.filter((f) => f.type === FrameTypes.ERROR)).to.deep.equal([]);
    });

    it('answers REQUEST_CHANNEL with ROUTE_WRONG_INTERACTION on its stream only', async () => {
      await start();
      const c = await established();
      c.send({ type: FrameTypes.REQUEST_CHANNEL, streamId: 1, flags: 0, requestN: 1, data: Buffer.from('x'), metadata: undefined });
      c.send(echo(3, 'still here'));
      await waitFor(() => echoed(c, 3) || c.closed, 'an answer or a close');
      expect(streamError(c, 1)).to.deep.equal({
        code: 0x204,
        body: { code: 'ROUTE_WRONG_INTERACTION', message: 'no route takes this interaction model (request-channel is not offered)', retryable: false },
      });
      expect(c.closed).to.equal(false);
    });

    it('gives a frame a stream does not take (PAYLOAD on a live stream, REQUEST_N on a request/response being reassembled) a catalog body, and serves on', async () => {
      await start();
      const c = await established();
      c.send(requestStreamFrame(1, 1_000, 8, 1)); // stays open: one item asked for
      await waitFor(() => streamProgress(c.frames, 1).items === 1, 'the first item');
      c.send({ type: FrameTypes.PAYLOAD, streamId: 1, flags: 0x60, data: Buffer.from('x'), metadata: undefined });
      c.send({ type: FrameTypes.REQUEST_RESPONSE, streamId: 3, flags: 0x80, data: Buffer.from('frag'), metadata: undefined });
      c.send({ type: FrameTypes.REQUEST_N, streamId: 3, flags: 0, requestN: 1 });
      c.send(echo(5, 'still here'));
      await waitFor(() => echoed(c, 5) || c.closed, 'an answer or a close');
      expect(streamError(c, 1)).to.deep.equal({
        code: 0x204,
        body: { code: 'ROUTE_WRONG_INTERACTION', message: 'a PAYLOAD frame is not part of this stream\'s interaction; the stream is ended', retryable: false },
      });
      expect(streamError(c, 3)?.body).to.deep.equal({
        code: 'ROUTE_WRONG_INTERACTION',
        message: 'a REQUEST_N frame is not part of this stream\'s interaction while its request is still arriving in fragments; the stream is ended',
        retryable: false,
      });
      await waitFor(() => probe.streams[0]?.cancelled === true, 'the live stream\'s producer cancelled');
      expect(c.closed).to.equal(false);
    });

    it('passes the responder\'s own catalog errors through unchanged', async () => {
      await start();
      const c = await established();
      c.send(echo(1, 'route-unknown'));
      await waitFor(() => streamError(c, 1) !== undefined, 'the error');
      expect(streamError(c, 1)).to.deep.equal({ code: 0x204, body: { code: 'ROUTE_UNKNOWN', message: 'no such route', retryable: false } });
    });
  });

  describe('write backpressure', () => {
    it('parks a stream producer while the client does not read, then delivers everything', async () => {
      await start({ maxFrameBytes: 1_048_576 });
      const itemBytes = 4096;
      const count = 10_000; // ~40 MB: more than loopback kernel buffers absorb
      const c = await raw({ paused: true });
      c.send(setupFrame());
      c.send(requestStreamFrame(1, count, itemBytes));

      await waitFor(() => (probe.streams[0]?.parks ?? 0) > 0, 'producer parked on backpressure');
      const stream = probe.streams[0]!;
      const sentWhenParked = stream.sent;
      await sleep(200);
      expect(stream.sent, 'no progress while the client is not reading').to.equal(sentWhenParked);
      expect(stream.sent).to.be.lessThan(count);
      const frameBytes = itemBytes + 3 + 6;
      expect(stream.maxBufferedBytes).to.be.at.most(HIGH_WATER_BYTES + frameBytes);
      expect(probe.connections[0]!.bufferedBytes).to.be.at.most(HIGH_WATER_BYTES + frameBytes);
      expect(probe.connections[0]!.writable).to.equal(false);

      c.socket.resume();
      await waitFor(() => streamProgress(c.frames, 1).complete, 'stream completion', 30_000);
      expect(streamProgress(c.frames, 1).items).to.equal(count);
      expect(stream.maxBufferedBytes).to.be.at.most(HIGH_WATER_BYTES + frameBytes);
    });
  });
});

function lengthPrefix(n: number): Buffer {
  const b = Buffer.alloc(3);
  b.writeUIntBE(n, 0, 3);
  return b;
}
