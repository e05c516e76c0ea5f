import { expect } from 'chai';
import { RSocketConnector, RSocketServer, type RSocket } from 'rsocket-core';
import { WebsocketClientTransport } from 'rsocket-websocket-client';
import { WebSocket } from 'ws';
import type { ServerTransportOptions } from './frame-connection.js';
import {
  EchoProbe,
  RawWsClient,
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
import { WsServerTransport } from './ws-server-transport.js';

const MAX_FRAME_BYTES = 64 * 1024;
const HIGH_WATER_BYTES = 64 * 1024;
const BROWSER_HEADERS = {
  'user-agent': 'Mozilla/5.0 (sluice-test)',
  origin: 'https://shop.example',
  'x-forwarded-for': '203.0.113.9, 10.0.0.1',
};

describe('WsServerTransport', () => {
  let transport: WsServerTransport;
  let probe: EchoProbe;
  let clients: RSocket[];
  let raws: RawWsClient[];
  let trap: ReturnType<typeof trapProcessErrors>;

  async function start(options: Partial<ServerTransportOptions> = {}): Promise<void> {
    transport = new WsServerTransport({
      host: '127.0.0.1', port: 0, maxFrameBytes: MAX_FRAME_BYTES, setupTimeoutMs: 300, highWaterBytes: HIGH_WATER_BYTES, ...options,
    });
    await new RSocketServer({ transport, acceptor: echoAcceptor(probe) }).bind();
  }

  async function client(): Promise<RSocket> {
    const rsocket = await new RSocketConnector({
      transport: new WebsocketClientTransport({
        url: `ws://127.0.0.1:${transport.port}`,
        // Node 20 has no global WebSocket; ws's is event-target compatible with what the client uses.
        wsCreator: (url) => new WebSocket(url, { headers: BROWSER_HEADERS }) as unknown as globalThis.WebSocket,
      }),
      setup: { dataMimeType: 'application/json', metadataMimeType: 'message/x.rsocket.composite-metadata.v0' },
    }).connect();
    clients.push(rsocket);
    return rsocket;
  }

  async function raw(): Promise<RawWsClient> {
    const c = await RawWsClient.connect(transport.port);
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
    await sleep(10);
    trap.dispose();
    expect(trap.errors, 'unhandled rejections / uncaught exceptions').to.deep.equal([]);
  });

  describe('with real clients', () => {
    it('serves request-response, request-stream with request(n) and fire-and-forget', async () => {
      await start();
      const rsocket = await client();

      expect((await requestResponse(rsocket, 'ping')).data?.toString()).to.equal('ping');

      const stream = requestStream(rsocket, 10, 16, 3);
      await waitFor(() => stream.state.items === 3, '3 items');
      expect(probe.streams[0]?.sent, 'server sent only what was requested').to.equal(3);
      stream.request(7);
      await waitFor(() => stream.state.complete, 'stream completion');
      expect(stream.state.items).to.equal(10);

      for (let i = 0; i < 100; i++) fireAndForget(rsocket, `e${i}`);
      await waitFor(() => probe.fireAndForgets === 100, '100 fire-and-forgets');
    });

    it('hands the upgrade request headers and remote address to the acceptor', async () => {
      await start();
      await requestResponse(await client(), 'x');
      expect(probe.contexts[0]).to.deep.equal({
        transport: 'ws',
        remoteAddress: '127.0.0.1',
        userAgent: BROWSER_HEADERS['user-agent'],
        origin: BROWSER_HEADERS.origin,
        forwardedFor: BROWSER_HEADERS['x-forwarded-for'],
      });
    });

    it('notices a clean close by the client', async () => {
      await start();
      const rsocket = await client();
      await requestResponse(rsocket, 'x');
      expect(transport.connections.size).to.equal(1);
      rsocket.close();
      clients = []; // closed: rsocket-core warns on a second close
      await waitFor(() => transport.connections.size === 0, 'connection count back to 0');
    });
  });

  describe('with hostile clients', () => {
    it('times out a connection that sends no SETUP with SETUP_TIMEOUT', async () => {
      await start();
      const c = await raw();
      await waitFor(() => c.closed, 'server closing the socket');
      expect(connectionError(c.frames)?.frame.code).to.equal(0x101);
      expect(connectionError(c.frames)?.body?.code).to.equal('SETUP_TIMEOUT');
      await waitFor(() => transport.connections.size === 0, 'connection released');
    });

    it('answers a 2-byte binary message with FRAME_MALFORMED', async () => {
      await start();
      const c = await raw();
      c.ws.send(Buffer.from([0x00, 0x00]));
      await waitFor(() => c.closed, 'server closing the socket');
      expect(connectionError(c.frames)?.frame.code).to.equal(0x101);
      expect(connectionError(c.frames)?.body?.code).to.equal('FRAME_MALFORMED');
    });

    it('rejects text messages with FRAME_MALFORMED', async () => {
      await start();
      const c = await raw();
      c.ws.send('{"hello":"world"}');
      await waitFor(() => c.closed, 'server closing the socket');
      expect(connectionError(c.frames)?.body?.code).to.equal('FRAME_MALFORMED');
    });

    it('lets ws refuse an oversized message (1009) without harm', async () => {
      await start();
      const c = await raw();
      c.ws.send(Buffer.alloc(MAX_FRAME_BYTES + 1));
      await waitFor(() => c.closed, 'server closing the socket');
      expect(c.closeCode).to.equal(1009);
      await waitFor(() => transport.connections.size === 0, 'connection released');
    });

    it('answers a first frame that is not SETUP with SETUP_INVALID', async () => {
      await start();
      const c = await raw();
      c.send(requestStreamFrame(1, 1, 1));
      await waitFor(() => c.closed, 'server closing the socket');
      expect(connectionError(c.frames)?.frame.code).to.equal(0x001);
      expect(connectionError(c.frames)?.body?.code).to.equal('SETUP_INVALID');
    });

    it('keeps serving a valid client while hostile ones are killed', async () => {
      await start();
      const rsocket = await client();
      const hostile = await Promise.all(Array.from({ length: 20 }, () => raw()));
      hostile.forEach((c, i) => {
        switch (i % 4) {
          case 0: c.ws.send(Buffer.from([0x00, 0x00])); break;
          case 1: c.ws.send('text'); break;
          case 2: c.ws.send(Buffer.alloc(MAX_FRAME_BYTES + 1)); break;
          default: c.send(requestStreamFrame(1, 1, 1)); break;
        }
      });
      let answered = 0;
      while (hostile.some((c) => !c.closed)) {
        expect((await requestResponse(rsocket, `ok${answered}`)).data?.toString()).to.equal(`ok${answered}`);
        answered++;
      }
      await waitFor(() => transport.connections.size === 1, 'only the valid connection left');
      expect((await requestResponse(rsocket, 'after')).data?.toString()).to.equal('after');
    });
  });

  describe('write backpressure', () => {
    it('parks a stream producer while the client does not read, then delivers everything', async () => {
      await start({ maxFrameBytes: 1_048_576 });
      const itemBytes = 4096;
      const count = 10_000; // ~40 MB: more than loopback kernel buffers absorb
      const c = await raw();
      c.send(setupFrame());
      c.send(requestStreamFrame(1, count, itemBytes));
      c.ws.pause();

      await waitFor(() => (probe.streams[0]?.parks ?? 0) > 0, 'producer parked on backpressure');
      const stream = probe.streams[0]!;
      const sentWhenParked = stream.sent;
      await sleep(200);
      expect(stream.sent, 'no progress while the client is not reading').to.equal(sentWhenParked);
      expect(stream.sent).to.be.lessThan(count);
      const frameBytes = itemBytes + 6 + 10; // RSocket header + WebSocket frame header
      expect(stream.maxBufferedBytes).to.be.at.most(HIGH_WATER_BYTES + frameBytes);
      expect(probe.connections[0]!.writable).to.equal(false);

      c.ws.resume();
      await waitFor(() => streamProgress(c.frames, 1).complete, 'stream completion', 30_000);
      expect(streamProgress(c.frames, 1).items).to.equal(count);
      expect(stream.maxBufferedBytes).to.be.at.most(HIGH_WATER_BYTES + frameBytes);
    });
  });
});
