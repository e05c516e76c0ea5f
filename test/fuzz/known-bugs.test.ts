/**
 * Bugs the fuzz campaign found in code this suite does not own, one failing test each, named
 * [BUG: …]. The campaign tolerates exactly their signatures (KNOWN_BUG_SIGNATURES in
 * fuzz-frames.ts) so that it keeps guarding everything else; when a fix lands, its test here
 * passes and its signature entry must go.
 *
 * The invariant they break is the README's: "Every error frame's message is JSON
 * {code, message, retryable}" with a catalog code, and a bad request or a stray frame fails at
 * most its own stream or, if it is a connection-level error, closes the connection cleanly.
 */
import { expect } from 'chai';
import { Flags, FrameTypes, serializeFrame, type ErrorFrame, type Frame } from 'rsocket-core';
import { RSOCKET_ERROR, parseErrorBody } from '../../protocol/errors.js';
import { RawTcpClient, RawWsClient, trapProcessErrors } from '../../src/gateway/transport-test-kit.js';
import { ADMIN_KEY, startHarness, type Harness } from '../support/harness.js';
import { waitFor } from '../support/wait-for.js';
import { collectGarbage } from './fuzz-guards.js';
import {
  METADATA_FLAG, PROBE_STREAM_ID, checkErrorFrames, frameTemplates, prefixed, probeAnswered, probeFrame, routeMetadata, setupBytes,
} from './fuzz-frames.js';

const SITE = 'fuzz-bugs.example';

/**
 * Sends SETUP, then `frames`, then the probe; returns what came back once the probe is answered
 * or the connection closed. When a stream-0 ERROR came back on a connection still open, a second
 * probe settles whether the server still serves it (no waiting on a clock).
 */
async function exchange(h: Harness, frames: readonly Buffer[]): Promise<{ frames: Frame[]; closed: boolean; answered: boolean; servesAfterStreamZeroError: boolean }> {
  const raw = await RawTcpClient.connect(h.ports.tcp);
  raw.write(Buffer.concat([prefixed(setupBytes(ADMIN_KEY)), ...frames.map((f) => prefixed(f)), prefixed(probeFrame(SITE))]));
  await waitFor(() => raw.closed || probeAnswered(raw.frames, SITE), { what: 'an answer or a close' });
  let servesAfterStreamZeroError = false;
  if (!raw.closed && raw.frames.some((f) => f.type === FrameTypes.ERROR && f.streamId === 0)) {
    const second = PROBE_STREAM_ID - 2;
    raw.write(prefixed(probeFrame(SITE, second)));
    await waitFor(() => raw.closed || probeAnswered(raw.frames, SITE, second), { what: 'the second probe answered or a close' });
    servesAfterStreamZeroError = probeAnswered(raw.frames, SITE, second);
  }
  const result = { frames: [...raw.frames], closed: raw.closed, answered: probeAnswered(raw.frames, SITE), servesAfterStreamZeroError };
  raw.destroy();
  return result;
}

describe('fuzz findings in the gateway and rsocket-core (failing until fixed)', function () {
  this.timeout(60_000);
  let h: Harness;
  let trap: ReturnType<typeof trapProcessErrors>;

  before(async () => {
    trap = trapProcessErrors();
    h = await startHarness();
  });

  after(async () => {
    await h.stop();
    trap.dispose();
    expect(trap.errors).to.deep.equal([]);
  });

  it('after SETUP, SETUP / RESUME / RESUME_OK / a request on stream 0 get a catalog error that closes the connection, or are ignored [BUG B1: rsocket-core sends ERROR 0x101 "Received unknown frame type" without a catalog body and keeps the connection open]', async () => {
    const zero = frameTemplates(SITE, 0);
    const names = ['setup', 'resume', 'resumeOk', 'requestResponse', 'requestFnf', 'requestStream', 'requestN', 'cancel', 'payload'];
    const results = await Promise.all(names.map((name) => exchange(h, [zero[name]!])));
    const problems = results.flatMap((r, i) => [
      ...checkErrorFrames(r.frames, false).violations.map((v) => `${names[i]}: ${v}`),
      ...(r.servesAfterStreamZeroError ? [`${names[i]}: ERROR on stream 0 (which ends a connection by the RSocket spec) but the connection keeps serving`] : []),
    ]);
    expect(problems).to.deep.equal([]);
  });

  it('REQUEST_CHANNEL gets ROUTE_WRONG_INTERACTION (INVALID) with a catalog body [BUG B2: rsocket-core answers REJECTED "No available handler found"; the responder has no requestChannel]', async () => {
    const r = await exchange(h, [frameTemplates(SITE, 3).requestChannel!]);
    const error = r.frames.find((f): f is ErrorFrame => f.type === FrameTypes.ERROR && f.streamId === 3);
    expect(error?.message).to.match(/"code":"ROUTE_WRONG_INTERACTION"/);
    expect(checkErrorFrames(r.frames, false).violations).to.deep.equal([]);
    expect(r.answered).to.equal(true);
  });

  it('a frame the client may not send on an open stream (PAYLOAD on a request/response or live stream) gets a catalog body, or is ignored [BUG B3: rsocket-core answers CANCELED "Unexpected frame type [10]"]', async () => {
    const now = Date.now();
    const query = serializeFrame({ type: FrameTypes.REQUEST_RESPONSE, streamId: 5, flags: METADATA_FLAG, data: Buffer.from(JSON.stringify({ site: SITE, from: now - 60_000, to: now })), metadata: routeMetadata('query.totals') });
    const live = serializeFrame({ type: FrameTypes.REQUEST_STREAM, streamId: 7, flags: METADATA_FLAG, requestN: 1, data: Buffer.from(JSON.stringify({ site: SITE })), metadata: routeMetadata('live.metrics') });
    const r = await exchange(h, [query, frameTemplates(SITE, 5).payload!, live, frameTemplates(SITE, 7).payload!]);
    expect(checkErrorFrames(r.frames, false).violations).to.deep.equal([]);
    expect(r.answered).to.equal(true);
  });

  it('RESUME as the first frame gets SETUP_INVALID, as the README documents for resume [BUG B4: rsocket-core answers 0x004 "Resume is not enabled" without a catalog body]', async () => {
    const raw = await RawTcpClient.connect(h.ports.tcp);
    raw.write(prefixed(frameTemplates(SITE, 0).resume!));
    await waitFor(() => raw.closed, { what: 'close' });
    const error = raw.frames.find((f): f is ErrorFrame => f.type === FrameTypes.ERROR && f.streamId === 0);
    raw.destroy();
    expect(parseErrorBody(error?.message ?? '')?.code).to.equal('SETUP_INVALID');
    expect(error?.code).to.equal(RSOCKET_ERROR.INVALID_SETUP);
  });

  it('METADATA_PUSH, a valid frame no route uses, is ignored and the connection keeps serving [BUG B5: rsocket-core\'s decoder reads an undeclared `length` (dist/Codecs.js deserializeMetadataPushFrame), so the gateway closes with FRAME_MALFORMED "undecodable frame: length is not defined"]', async () => {
    const push = serializeFrame({ type: FrameTypes.METADATA_PUSH, streamId: 0, flags: Flags.METADATA, metadata: routeMetadata('query.totals') });
    const r = await exchange(h, [push]);
    expect(r.closed, 'connection closed').to.equal(false);
    expect(r.answered).to.equal(true);
  });

  it('a WebSocket User-Agent header costs no more memory than the 1 KiB an event may carry [BUG B6: ingest caches (user agents, visitor ids) are keyed by the whole header, up to 16 KiB, so 10k-50k entries can pin ~1 GB]', async () => {
    const gc = collectGarbage();
    // One acknowledged event per connection, each with its own User-Agent header.
    const connect = async (ua: string) => {
      const ws = await RawWsClient.connect(h.ports.ws, { 'user-agent': ua });
      ws.ws.send(setupBytes(ADMIN_KEY));
      ws.ws.send(serializeFrame({
        type: FrameTypes.REQUEST_RESPONSE, streamId: 1, flags: METADATA_FLAG, metadata: routeMetadata('ingest.batch'),
        data: Buffer.from(JSON.stringify({ events: [{ type: 'pageview', site: SITE, url: `https://${SITE}/`, timestamp: Date.now() }] })),
      }));
      await waitFor(() => ws.frames.some((f) => f.type === FrameTypes.PAYLOAD && f.streamId === 1), { what: 'the ack' });
      ws.destroy();
    };
    const N = 400;
    const retainedPerConnection = async (uaLength: number, tag: string) => {
      gc();
      const before = process.memoryUsage().heapUsed;
      for (let i = 0; i < N; i += 20) {
        await Promise.all(Array.from({ length: 20 }, (_, j) => connect(`Mozilla/5.0 (X11; Linux x86_64) ${tag}${i + j} `.padEnd(uaLength, 'x'))));
      }
      gc();
      return (process.memoryUsage().heapUsed - before) / N;
    };
    await retainedPerConnection(1_000, 'warm'); // JIT, pools and caches reach their steady size
    const small = await retainedPerConnection(1_000, 'small');
    const large = await retainedPerConnection(15_000, 'large');
    // Same number of connections and events: the only difference is the header's length.
    expect(large - small, `retained per connection: ${(small / 1024).toFixed(1)} KiB with 1 000-char headers, ${(large / 1024).toFixed(1)} KiB with 15 000-char headers`).to.be.below(4 * 1024);
  });
});
