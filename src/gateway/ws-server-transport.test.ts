import { expect } from 'chai';
import { connect, type Socket } from 'node:net';
import { Registry } from 'prom-client';
import { FrameTypes, RSocketConnector, RSocketServer, type RSocket, type SocketAcceptor } from 'rsocket-core';
import { WebsocketClientTransport } from 'rsocket-websocket-client';
import { WebSocket } from 'ws';
import { MemoryEventLog } from '../adapters/memory/memory-event-log.js';
import { loadConfig } from '../config.js';
import { decodeEventRecord } from '../ingest/event-record.js';
import { createIngestService } from '../ingest/ingest-service.js';
import type { ServerTransportOptions } from './frame-connection.js';
import {
  EchoProbe,
  RawWsClient,
  connectionError,
  echoAcceptor,
  fireAndForget,
  ingestAcceptor,
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

  async function start(options: Partial<ServerTransportOptions> = {}, acceptor: SocketAcceptor = echoAcceptor(probe)): Promise<void> {
    transport = new WsServerTransport({
      host: '127.0.0.1', port: 0, maxFrameBytes: MAX_FRAME_BYTES, setupTimeoutMs: 300, highWaterBytes: HIGH_WATER_BYTES, ...options,
    });
    await new RSocketServer({ transport, acceptor }).bind();
  }

  async function client(headers: Record<string, string> = BROWSER_HEADERS): Promise<RSocket> {
    const rsocket = await new RSocketConnector({
      transport: new WebsocketClientTransport({
        url: `ws://127.0.0.1:${transport.port}`,
        // Node 20 has no global WebSocket; ws's is event-target compatible with what the client uses.
        wsCreator: (url) => new WebSocket(url, { headers }) as unknown as globalThis.WebSocket,
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

  describe('upgrade headers', () => {
    let rawSockets: Socket[] = [];

    afterEach(() => {
      for (const socket of rawSockets) socket.destroy();
      rawSockets = [];
    });

    const CDN_HEADERS = {
      'CF-IPCountry': 'DE', 'CF-Region-Code': 'BE', 'CF-IPCity': 'Berlin',
      'X-Vercel-IP-Country': 'US', 'X-Vercel-IP-Country-Region': 'CA', 'X-Vercel-IP-City': 'San%20Francisco',
      'CloudFront-Viewer-Country': 'JP', 'CloudFront-Viewer-Country-Region': '13', 'CloudFront-Viewer-City': 'Tokyo',
    };

    /**
     * Writes an upgrade request byte for byte (values Node's own client would refuse to send);
     * resolves with the status line, leaving the socket open until the test ends.
     */
    function rawUpgrade(headerLines: readonly Buffer[]): Promise<string> {
      return new Promise((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port: transport.port }, () => {
          socket.write(Buffer.concat([
            Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
              + 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n'),
            ...headerLines.flatMap((line) => [line, Buffer.from('\r\n')]),
            Buffer.from('\r\n'),
          ]));
        });
        let received = '';
        socket.on('data', (chunk: Buffer) => {
          received += chunk.toString('latin1');
          const end = received.indexOf('\r\n');
          if (end >= 0) resolve(received.slice(0, end));
        });
        rawSockets.push(socket);
        socket.on('error', reject);
        socket.on('close', () => resolve(received));
      });
    }

    it('hands Do-Not-Track, Global Privacy Control and the normalised Origin to the acceptor', async () => {
      await start();
      await requestResponse(await client({ 'user-agent': 'UA/1', origin: 'HTTPS://Shop.Example:443', DNT: '1', 'Sec-GPC': '1' }), 'x');
      await requestResponse(await client({ origin: 'null', DNT: '0' }), 'y');
      expect(probe.contexts).to.deep.equal([
        { transport: 'ws', remoteAddress: '127.0.0.1', userAgent: 'UA/1', origin: 'https://shop.example', dnt: true, gpc: true },
        { transport: 'ws', remoteAddress: '127.0.0.1' },
      ]);
    });

    it('takes CDN geo headers only from the CDN it is told to trust', async () => {
      await start();
      await requestResponse(await client(CDN_HEADERS), 'x');
      expect(probe.contexts[0]).to.deep.equal({ transport: 'ws', remoteAddress: '127.0.0.1' });
      transport.close();

      await start({ cdnGeoHeaders: 'vercel' });
      await requestResponse(await client(CDN_HEADERS), 'x');
      expect(probe.contexts[1]).to.deep.equal({ transport: 'ws', remoteAddress: '127.0.0.1', country: 'US', region: 'CA', city: 'San Francisco' });
    });

    it('survives garbage header bytes: bounded, well-formed context or a 400, and serves on', async () => {
      await start({ cdnGeoHeaders: 'cloudflare' });
      const status = await rawUpgrade([
        Buffer.concat([Buffer.from('Origin: https://'), Buffer.from([0xff, 0xfe, 0x80]), Buffer.from('.example')]),
        Buffer.concat([Buffer.from('User-Agent: '), Buffer.alloc(8000, 0xe9)]),
        Buffer.concat([Buffer.from('CF-IPCity: '), Buffer.from([0xc3, 0x28, 0xa0, 0xa1])]), // invalid UTF-8
        Buffer.from('CF-IPCountry: T1'),
        Buffer.from('CF-Region-Code: %E0%A4%A'),
        Buffer.from('DNT: 1'),
        Buffer.from('DNT: 0'),
      ]);
      expect(status).to.equal('HTTP/1.1 101 Switching Protocols');
      await waitFor(() => transport.connections.size === 1, 'the upgraded connection');
      const context = [...transport.connections][0]!.context;
      expect(context.userAgent).to.have.length(1024);
      expect(context).to.deep.include({ transport: 'ws', dnt: true });
      expect(context).to.not.have.any.keys('origin', 'country', 'region', 'city', 'gpc');

      // Control characters: Node's HTTP parser refuses the request before any of our code runs.
      expect(await rawUpgrade([Buffer.from('CF-IPCity: Ber\u0001lin')])).to.match(/^HTTP\/1\.1 400/);
      expect((await requestResponse(await client(), 'still serving')).data?.toString()).to.equal('still serving');
    });

    it('makes the events of a connection whose upgrade said DNT: 1 anonymous in the real ingest', async () => {
      const log = new MemoryEventLog({ partitions: 1 });
      const ingest = createIngestService({
        log, topic: 'events', registry: new Registry(), config: loadConfig({ ingest: { visitorSecret: 'test-secret' } }).ingest,
      });
      await start({ cdnGeoHeaders: 'cloudfront' }, ingestAcceptor(ingest));
      const geo = { 'CloudFront-Viewer-Country': 'GB', 'CloudFront-Viewer-Country-Region': 'ENG', 'CloudFront-Viewer-City': 'London' };
      const events = JSON.stringify({ events: [{ type: 'pageview', site: 'site-a', url: 'https://shop.example/', visitor: 'crm-1', consent: true }] });
      for (const headers of [{ ...BROWSER_HEADERS, ...geo, DNT: '1' }, { ...BROWSER_HEADERS, ...geo, 'Sec-GPC': '1' }, { ...BROWSER_HEADERS, ...geo }]) {
        const ack = JSON.parse((await requestResponse(await client(headers), events)).data!.toString()) as { accepted: number };
        expect(ack.accepted).to.equal(1);
      }
      const written = log.readAll('events').map((r) => {
        const decoded = decodeEventRecord(r.value);
        if (!decoded.ok) throw new Error(decoded.reason);
        return decoded.event;
      });
      expect(written.map((e) => [e.visitorId === '' ? '' : 'hashed', e.country, e.region, e.city])).to.deep.equal([
        ['', 'GB', null, null], ['', 'GB', null, null], ['hashed', 'GB', 'GB-ENG', 'London'],
      ]);
      await log.close();
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

    it('applies the frame rules rsocket-core leaves to the transport: METADATA_PUSH ignored, a second SETUP closes, RESUME refused', async () => {
      await start();
      const push = await raw();
      push.send(setupFrame());
      push.send({ type: FrameTypes.METADATA_PUSH, streamId: 0, flags: 0x100, metadata: Buffer.from('unused') });
      push.send({ type: FrameTypes.REQUEST_RESPONSE, streamId: 1, flags: 0, data: Buffer.from('still here'), metadata: undefined });
      const second = await raw();
      second.send(setupFrame());
      second.send(setupFrame());
      const resume = await raw();
      resume.send({ type: FrameTypes.RESUME, streamId: 0, flags: 0, majorVersion: 1, minorVersion: 0, resumeToken: Buffer.from('t'), clientPosition: 0, serverPosition: 0 });
      await waitFor(() => second.closed && resume.closed && push.frames.some((f) => f.type === FrameTypes.PAYLOAD && f.streamId === 1), 'two closes and an answer');
      expect(push.closed).to.equal(false);
      expect(connectionError(second.frames)?.body).to.deep.include({ code: 'FRAME_MALFORMED', message: 'SETUP was already received on this connection' });
      expect(connectionError(resume.frames)?.frame.code).to.equal(0x001);
      expect(connectionError(resume.frames)?.body?.code).to.equal('SETUP_INVALID');
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
