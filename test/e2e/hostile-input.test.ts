/**
 * Hostile and bad input against the whole product: each case gets its documented error, only
 * that request (or that connection) fails, other connections keep being served, the process
 * never sees an unhandled rejection or exception, and accepted data is not lost.
 */
import { expect } from 'chai';
import { FrameTypes, serializeFrame } from 'rsocket-core';
import { WellKnownMimeType, encodeCompositeMetadata, encodeRoute, encodeBearerAuthMetadata } from 'rsocket-composite-metadata';
import { RSOCKET_ERROR } from '../../protocol/errors.js';
import type { TotalsResponse } from '../../protocol/schema.js';
import { SluiceClient, SluiceClientError } from '../../src/client/sluice-client.js';
import { RawTcpClient, RawWsClient, connectionError, setupFrame, trapProcessErrors } from '../../src/gateway/transport-test-kit.js';
import { ADMIN_KEY, SITE_A, SITE_A_KEY, SITE_B, startHarness, type Harness } from '../support/harness.js';
import { waitFor } from '../support/wait-for.js';

const METADATA_FLAG = 0x100;
const route = (r: string) => encodeCompositeMetadata([[WellKnownMimeType.MESSAGE_RSOCKET_ROUTING, encodeRoute(r)]]);
const auth = (key: string) => encodeCompositeMetadata([[WellKnownMimeType.MESSAGE_RSOCKET_AUTHENTICATION, encodeBearerAuthMetadata(key)]]);

async function rejects(p: Promise<unknown>): Promise<SluiceClientError> {
  try {
    await p;
  } catch (e) {
    expect(e).to.be.instanceOf(SluiceClientError);
    return e as SluiceClientError;
  }
  throw new Error('expected the request to fail');
}

describe('hostile input end to end', function () {
  this.timeout(30_000);
  let h: Harness;
  let trap: ReturnType<typeof trapProcessErrors>;
  let healthy: SluiceClient;
  // Taken when the suite starts, not when mocha loads the file (minutes earlier): events stamped
  // that long ago go to the late lane once their partition has been idle.
  let now = 0;
  let range = { site: SITE_A, from: 0, to: 0 };
  before(() => {
    now = Date.now();
    range = { site: SITE_A, from: now - 3_600_000, to: now + 60_000 };
  });

  beforeEach(async () => {
    trap = trapProcessErrors();
    h = await startHarness();
    healthy = await h.client('tcp');
    await healthy.sendBatch([{ id: 'kept-1', type: 'pageview', site: SITE_A, url: `https://${SITE_A}/`, timestamp: now }]);
  });

  afterEach(async () => {
    // The healthy connection still works and the accepted event was not lost.
    const t = await waitFor(async () => {
      const r = await healthy.request<TotalsResponse>('query.totals', range);
      return r.totals.pageviews >= 1 ? r.totals : undefined;
    }, { what: 'accepted event still counted' });
    expect(t.pageviews).to.equal(1);
    await h.stop();
    trap.dispose();
    expect(trap.errors, 'unhandled rejections or exceptions').to.deep.equal([]);
  });

  it('a partial first frame gets SETUP_TIMEOUT and is closed', async () => {
    const raw = await RawTcpClient.connect(h.ports.tcp);
    raw.write(Buffer.from([0x00, 0x00]));
    await waitFor(() => raw.closed, { what: 'server closes the connection' });
    expect(connectionError(raw.frames)?.body?.code).to.equal('SETUP_TIMEOUT');
  });

  it('garbage bytes get FRAME_MALFORMED', async () => {
    const raw = await RawTcpClient.connect(h.ports.tcp);
    raw.write(Buffer.from([0x00, 0x00, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x00]));
    await waitFor(() => raw.closed, { what: 'close' });
    expect(connectionError(raw.frames)?.body?.code).to.equal('FRAME_MALFORMED');
  });

  it('an oversized frame gets FRAME_TOO_LARGE before it is buffered', async () => {
    const raw = await RawTcpClient.connect(h.ports.tcp);
    raw.write(Buffer.from([0xff, 0xff, 0xff, 0x00, 0x00]));
    await waitFor(() => raw.closed, { what: 'close' });
    expect(connectionError(raw.frames)?.body?.code).to.equal('FRAME_TOO_LARGE');
  });

  it('garbage on WebSocket gets FRAME_MALFORMED', async () => {
    const raw = await RawWsClient.connect(h.ports.ws);
    raw.ws.send(Buffer.from([0xde, 0xad, 0xbe, 0xef]));
    await waitFor(() => raw.closed, { what: 'close' });
    expect(connectionError(raw.frames)?.body?.code).to.equal('FRAME_MALFORMED');
  });

  it('SETUP with another data MIME type gets UNSUPPORTED_SETUP', async () => {
    const raw = await RawTcpClient.connect(h.ports.tcp);
    raw.send(setupFrame({ dataMimeType: 'application/cbor', metadata: auth(ADMIN_KEY), flags: METADATA_FLAG }));
    await waitFor(() => raw.closed, { what: 'close' });
    const err = connectionError(raw.frames);
    expect(err?.frame.code).to.equal(RSOCKET_ERROR.UNSUPPORTED_SETUP);
    expect(err?.body?.code).to.equal('SETUP_UNSUPPORTED_MIME');
  });

  it('SETUP without a key gets AUTH_REQUIRED, with a wrong key AUTH_INVALID (REJECTED_SETUP)', async () => {
    for (const [metadata, code] of [[undefined, 'AUTH_REQUIRED'], [auth('not-a-key-000'), 'AUTH_INVALID']] as const) {
      const raw = await RawTcpClient.connect(h.ports.tcp);
      raw.send(setupFrame(metadata ? { metadata, flags: METADATA_FLAG } : {}));
      await waitFor(() => raw.closed, { what: 'close' });
      const err = connectionError(raw.frames);
      expect(err?.frame.code).to.equal(RSOCKET_ERROR.REJECTED_SETUP);
      expect(err?.body?.code).to.equal(code);
    }
    // RSocket has no SETUP ack: the rsocket-js client connects, then the rejection closes it.
    const client = await SluiceClient.connect({ url: h.url('ws'), apiKey: 'wrong-key-000' });
    const e = await rejects(client.request('query.totals', range));
    expect(e.code).to.equal('AUTH_INVALID');
  });

  it('an unknown route gets ROUTE_UNKNOWN (INVALID) and the connection keeps working', async () => {
    const client = await h.client('tcp');
    const e = await rejects(client.request('no.such.route', {}));
    expect(e.code).to.equal('ROUTE_UNKNOWN');
    expect(e.rsocketCode).to.equal(RSOCKET_ERROR.INVALID);
    const e2 = await rejects(client.request('live.metrics', { site: SITE_A }));
    expect(e2.code).to.equal('ROUTE_WRONG_INTERACTION');
    const e3 = await rejects(client.requestRaw({ data: Buffer.from('{}') }));
    expect(e3.code).to.equal('ROUTE_MISSING');
    expect((await client.request<TotalsResponse>('query.totals', range)).site).to.equal(SITE_A);
  });

  it('invalid JSON gets PAYLOAD_INVALID_JSON, a schema violation PAYLOAD_SCHEMA', async () => {
    const client = await h.client('ws');
    const e = await rejects(client.requestRaw({ data: Buffer.from('{"site": '), metadata: route('query.totals') }));
    expect(e.code).to.equal('PAYLOAD_INVALID_JSON');
    expect(e.rsocketCode).to.equal(RSOCKET_ERROR.INVALID);
    const e2 = await rejects(client.request('query.totals', { site: SITE_A, from: 'monday', to: 1 }));
    expect(e2.code).to.equal('PAYLOAD_SCHEMA');
    const e3 = await rejects(client.request('query.totals', { site: SITE_A, from: 10, to: 5 }));
    expect(e3.code).to.equal('QUERY_INVALID');
  });

  it('a schema-violating event fails only itself in a batch; the valid ones are acknowledged', async () => {
    const client = await h.client('tcp');
    const ack = await client.sendBatch([
      { id: 'ok-1', type: 'pageview', site: SITE_B, url: `https://${SITE_B}/a`, timestamp: now },
      { id: 'bad-1', type: 'pageview', site: SITE_B, url: 42 } as never,
      { id: 'bad-2', type: 'event', site: SITE_B, url: `https://${SITE_B}/`, timestamp: now },
    ]);
    expect(ack.accepted).to.equal(1);
    expect(ack.rejected.map((r) => [r.index, r.code])).to.deep.equal([[1, 'PAYLOAD_SCHEMA'], [2, 'PAYLOAD_SCHEMA']]);
    const e = await rejects(client.request('ingest.batch', { events: [] }));
    expect(e.code).to.equal('PAYLOAD_SCHEMA');
    // Fire-and-forget garbage cannot be answered: it is counted and the connection lives on.
    client.fireAndForget('ingest.events', { nonsense: true });
    await waitFor(async () => (await h.metric('sluice_gateway_fnf_dropped_total', { code: 'PAYLOAD_SCHEMA' })) === 1, { what: 'drop counted' });
    await waitFor(async () => (await client.request<TotalsResponse>('query.totals', { ...range, site: SITE_B })).totals.pageviews === 1, { what: 'valid event counted' });
  });

  it('a key limited to one site gets SITE_FORBIDDEN for another site, on every route', async () => {
    const client = await h.client('ws', SITE_A_KEY);
    const other = { site: SITE_B, from: range.from, to: range.to };
    for (const [r, body] of [['query.totals', other], ['query.timeseries', { ...other, interval: 'hour' }], ['query.breakdown', { ...other, dimension: 'page' }]] as const) {
      expect((await rejects(client.request(r, body))).code, r).to.equal('SITE_FORBIDDEN');
    }
    const streamError = await new Promise<SluiceClientError>((resolve) => {
      client.stream('live.metrics', { site: SITE_B }, 1, { next: () => undefined, error: resolve });
    });
    expect(streamError.code).to.equal('SITE_FORBIDDEN');
    const ack = await client.sendBatch([{ type: 'pageview', site: SITE_B, url: `https://${SITE_B}/` }]);
    expect(ack.accepted).to.equal(0);
    expect(ack.rejected[0]!.code).to.equal('SITE_FORBIDDEN');
    expect((await client.request<TotalsResponse>('query.totals', range)).site).to.equal(SITE_A);
  });

  it('a request on a connection before SETUP completes, and frames after a bad one, never crash the server', async () => {
    const raw = await RawTcpClient.connect(h.ports.tcp);
    raw.send({ type: FrameTypes.REQUEST_RESPONSE, streamId: 1, flags: METADATA_FLAG, data: Buffer.from('{}'), metadata: route('query.totals') } as never);
    await waitFor(() => raw.closed, { what: 'close' });
    expect(connectionError(raw.frames)?.body?.code).to.equal('SETUP_INVALID');
    const ws = await RawWsClient.connect(h.ports.ws);
    ws.ws.send(serializeFrame(setupFrame({ metadata: auth(ADMIN_KEY), flags: METADATA_FLAG })));
    ws.ws.send(Buffer.alloc(3));
    await waitFor(() => ws.closed, { what: 'close' });
    expect(connectionError(ws.frames)?.body?.code).to.equal('FRAME_MALFORMED');
  });
});
