/**
 * Frames for the fuzz campaign: building valid ones, breaking them, and predicting what the
 * server must do with a byte stream — an oracle written from the RSocket framing and the
 * protocol README, not from the gateway's code. Decoding uses rsocket-core's codec, the same
 * library the server uses, because "does this decode" is the library's definition; what the
 * server must *do* with each outcome (which catalog code, close or not) is stated here.
 */
import {
  Flags, FrameTypes, deserializeFrame, serializeFrame, type ErrorFrame, type Frame,
} from 'rsocket-core';
import {
  WellKnownMimeType, encodeBearerAuthMetadata, encodeCompositeMetadata, encodeRoute,
} from 'rsocket-composite-metadata';
import {
  ERROR_CATALOG, RSOCKET_ERROR, parseErrorBody, rsocketCodeOf, type ErrorCode,
} from '../../protocol/errors.js';
import { setupFrame } from '../../src/gateway/transport-test-kit.js';
import type { FuzzRandom } from './fuzz-random.js';

export const PREFIX_BYTES = 3;
export const METADATA_FLAG = Flags.METADATA;

export const routeMetadata = (route: string): Buffer =>
  encodeCompositeMetadata([[WellKnownMimeType.MESSAGE_RSOCKET_ROUTING, encodeRoute(route)]]);
export const authMetadata = (key: string): Buffer =>
  encodeCompositeMetadata([[WellKnownMimeType.MESSAGE_RSOCKET_AUTHENTICATION, encodeBearerAuthMetadata(key)]]);

/** A SETUP frame with a bearer key, as bytes without a length prefix. */
export function setupBytes(key: string): Buffer {
  return serializeFrame(setupFrame({ metadata: authMetadata(key), flags: METADATA_FLAG }));
}

/** A frame body with a uint24 length prefix announcing `announced` bytes (its true length by default). */
export function prefixed(body: Buffer, announced = body.length): Buffer {
  const prefix = Buffer.alloc(PREFIX_BYTES);
  prefix.writeUIntBE(announced & 0xffffff, 0, PREFIX_BYTES);
  return Buffer.concat([prefix, body]);
}

/** EXT frames: rsocket-core cannot serialise them, so they are written by hand. */
export function extFrame(streamId: number, flags: number, extendedType: number, content: Buffer): Buffer {
  const b = Buffer.alloc(10);
  b.writeUInt32BE(streamId >>> 0, 0);
  b.writeUInt16BE((FrameTypes.EXT << 10) | (flags & 0x3ff), 4);
  b.writeUInt32BE(extendedType >>> 0, 6);
  return Buffer.concat([b, content]);
}

/** The probe: a query the server must answer on a connection that is still being served. */
export const PROBE_STREAM_ID = 0x7ffffffd;
export function probeFrame(site: string, streamId = PROBE_STREAM_ID): Buffer {
  const now = Date.now();
  return serializeFrame({
    type: FrameTypes.REQUEST_RESPONSE, streamId, flags: METADATA_FLAG,
    data: Buffer.from(JSON.stringify({ site, from: now - 60_000, to: now })), metadata: routeMetadata('query.totals'),
  });
}

/** Whether `frames` hold the probe's answer: a PAYLOAD on the probe stream naming the site. */
export function probeAnswered(frames: readonly Frame[], site: string, streamId = PROBE_STREAM_ID): boolean {
  return frames.some((f) => f.type === FrameTypes.PAYLOAD && f.streamId === streamId
    && f.data !== null && f.data !== undefined && f.data.toString('utf8').includes(`"site":"${site}"`));
}

/**
 * Valid frames of every type, the raw material the campaign breaks. Events inside them go to
 * `site`, which the campaign never counts, so a mutation that stays valid cannot skew a check.
 */
export function frameTemplates(site: string, streamId: number): Record<string, Buffer> {
  const now = Date.now();
  const event = { type: 'pageview', site, url: `https://${site}/frames`, timestamp: now };
  const s = (frame: Frame): Buffer => serializeFrame(frame);
  return {
    requestResponse: s({ type: FrameTypes.REQUEST_RESPONSE, streamId, flags: METADATA_FLAG, data: Buffer.from(JSON.stringify({ site, from: now - 60_000, to: now })), metadata: routeMetadata('query.totals') }),
    requestFnf: s({ type: FrameTypes.REQUEST_FNF, streamId, flags: METADATA_FLAG, data: Buffer.from(JSON.stringify({ events: [event] })), metadata: routeMetadata('ingest.events') }),
    requestStream: s({ type: FrameTypes.REQUEST_STREAM, streamId, flags: METADATA_FLAG, requestN: 2, data: Buffer.from(JSON.stringify({ site, windowMinutes: 2 })), metadata: routeMetadata('live.metrics') }),
    requestChannel: s({ type: FrameTypes.REQUEST_CHANNEL, streamId, flags: METADATA_FLAG, requestN: 1, data: Buffer.from('{}'), metadata: routeMetadata('ingest.events') }),
    requestN: s({ type: FrameTypes.REQUEST_N, streamId, flags: 0, requestN: 3 }),
    cancel: s({ type: FrameTypes.CANCEL, streamId, flags: 0 }),
    payload: s({ type: FrameTypes.PAYLOAD, streamId, flags: Flags.NEXT | Flags.COMPLETE, data: Buffer.from('{}'), metadata: undefined }),
    error: s({ type: FrameTypes.ERROR, streamId, flags: 0, code: RSOCKET_ERROR.APPLICATION_ERROR, message: 'client says no' }),
    keepalive: s({ type: FrameTypes.KEEPALIVE, streamId: 0, flags: Flags.RESPOND, lastReceivedPosition: 0, data: Buffer.from('ping') }),
    lease: s({ type: FrameTypes.LEASE, streamId: 0, flags: 0, ttl: 1_000, requestCount: 10, metadata: undefined }),
    metadataPush: s({ type: FrameTypes.METADATA_PUSH, streamId: 0, flags: METADATA_FLAG, metadata: routeMetadata('query.totals') }),
    setup: s(setupFrame({ metadata: authMetadata('not-a-key-0000'), flags: METADATA_FLAG })),
    resume: s({ type: FrameTypes.RESUME, streamId: 0, flags: 0, majorVersion: 1, minorVersion: 0, resumeToken: Buffer.from('token'), clientPosition: 0, serverPosition: 0 }),
    resumeOk: s({ type: FrameTypes.RESUME_OK, streamId: 0, flags: 0, clientPosition: 0 }),
    ext: extFrame(streamId, 0, 7, Buffer.from('ext')),
    extIgnore: extFrame(streamId, Flags.IGNORE, 7, Buffer.from('ext')),
  };
}

const FRAME_TYPE_CODES: readonly number[] = [...Array.from({ length: 16 }, (_, i) => i), FrameTypes.EXT];

/** One random way of breaking a frame body; the name goes into the coverage tally. */
export function mutateFrame(fz: FuzzRandom, body: Buffer): { name: string; body: Buffer } {
  const b = Buffer.from(body);
  switch (fz.int(0, 8)) {
    case 0: return { name: 'bit-flips', body: fz.flipBits(b, fz.int(1, 4)) };
    case 1: return { name: 'truncated', body: b.subarray(0, fz.int(0, Math.max(0, b.length - 1))) };
    case 2: return { name: 'trailing-bytes', body: Buffer.concat([b, fz.bytes(fz.int(1, 32))]) };
    case 3: {
      if (b.length >= 6) b.writeUInt16BE((fz.pick(FRAME_TYPE_CODES) << 10) | (b.readUInt16BE(4) & 0x3ff), 4);
      return { name: 'frame-type-swapped', body: b };
    }
    case 4: {
      if (b.length >= 4) b.writeUInt32BE(fz.pick([0, 2, 1, 0x7fffffff, 0x80000001, fz.int(0, 0xffffffff)]) >>> 0, 0);
      return { name: 'stream-id-swapped', body: b };
    }
    case 5: {
      if (b.length >= 6) b.writeUInt16BE((b.readUInt16BE(4) & 0xfc00) | fz.int(0, 0x3ff), 4);
      return { name: 'flags-swapped', body: b };
    }
    case 6: {
      // Frames with metadata carry a uint24 metadata length after the header (and after
      // requestN for streams): lie in it.
      const at = fz.pick([6, 10]);
      if (b.length >= at + 3) b.writeUIntBE(fz.pick([0, 1, b.length, b.length + 1, 0xffffff, fz.int(0, 0xffffff)]), at, 3);
      return { name: 'metadata-length-lie', body: b };
    }
    case 7: return { name: 'random-body', body: fz.bytes(fz.int(0, 48)) };
    default: {
      // A random header on random content: decodes deeper than pure noise.
      const header = Buffer.alloc(6);
      header.writeUInt32BE(fz.int(0, 64), 0);
      header.writeUInt16BE((fz.pick(FRAME_TYPE_CODES) << 10) | fz.int(0, 0x3ff), 4);
      return { name: 'random-header', body: Buffer.concat([header, fz.bytes(fz.int(0, 40))]) };
    }
  }
}

/** How a TCP byte stream splits into length-prefixed records, as far as it goes. */
export interface Walk {
  readonly records: Buffer[];
  /** Set when a prefix announced more than the maximum frame size. */
  readonly oversized: boolean;
  /** Bytes still needed to complete the last record (prefix included); 0 when aligned. */
  readonly missing: number;
}

export function walkRecords(bytes: Buffer, maxFrameBytes: number): Walk {
  const records: Buffer[] = [];
  let offset = 0;
  for (;;) {
    const left = bytes.length - offset;
    if (left === 0) return { records, oversized: false, missing: 0 };
    if (left < PREFIX_BYTES) return { records, oversized: false, missing: PREFIX_BYTES - left };
    const announced = bytes.readUIntBE(offset, PREFIX_BYTES);
    if (announced > maxFrameBytes) return { records, oversized: true, missing: 0 };
    if (left < PREFIX_BYTES + announced) return { records, oversized: false, missing: PREFIX_BYTES + announced - left };
    records.push(bytes.subarray(offset + PREFIX_BYTES, offset + PREFIX_BYTES + announced));
    offset += PREFIX_BYTES + announced;
  }
}

/**
 * Appends zero bytes until the stream ends on a record boundary (or hits an oversized prefix),
 * so that a probe sent after it is read as a frame of its own: a wrong length prefix then has a
 * definite outcome instead of leaving the server waiting for bytes that never come.
 */
export function padToBoundary(bytes: Buffer, maxFrameBytes: number): Buffer {
  let out = bytes;
  for (;;) {
    const w = walkRecords(out, maxFrameBytes);
    if (w.oversized || w.missing === 0) return out;
    out = Buffer.concat([out, Buffer.alloc(w.missing)]);
  }
}

/**
 * A frame's stream id and type as its header states them (RSocket framing: uint32 stream id,
 * then 6 bits of type), or undefined without a whole header. The oracle judges placement by
 * this, not by the decoded frame: rsocket-core's codec reports stream 0 for every
 * connection-level type whatever the header says.
 */
export function headerOf(body: Buffer): { readonly streamId: number; readonly type: number } | undefined {
  return body.length < 6 ? undefined : { streamId: body.readUInt32BE(0), type: body.readUInt16BE(4) >>> 10 };
}

/** A frame body with another stream id in its header (the codec writes 0 for connection-level types). */
export function withStreamId(body: Buffer, streamId: number): Buffer {
  const b = Buffer.from(body);
  b.writeUInt32BE(streamId >>> 0, 0);
  return b;
}

/** Frame types that exist only on stream 0 (RSocket spec, "Frame Types"). */
const CONNECTION_TYPES = new Set<number>([
  FrameTypes.SETUP, FrameTypes.LEASE, FrameTypes.KEEPALIVE, FrameTypes.METADATA_PUSH, FrameTypes.RESUME, FrameTypes.RESUME_OK,
]);

/** The RSocket major version the server speaks; minor versions are compatible. */
const MAJOR_VERSION = 1;

type Decoded = { ok: true; frame: Frame } | { ok: false; skipped: boolean };

/** Decode as the server must: a throw or an unknown type is malformed, unless it carries IGNORE. */
export function decodeRecord(body: Buffer): Decoded {
  let frame: Frame | undefined;
  try {
    frame = deserializeFrame(body) as Frame | undefined;
  } catch {
    return { ok: false, skipped: false };
  }
  if (frame === undefined) return { ok: false, skipped: body.length >= 6 && Flags.hasIgnore(body.readUInt16BE(4)) };
  if (frame.streamId < 0) return { ok: false, skipped: false };
  return { ok: true, frame };
}

export type Prediction =
  /** The server closes the connection with a stream-0 ERROR carrying this catalog code. */
  | { readonly outcome: 'closes'; readonly codes: readonly ErrorCode[] }
  /** The client itself sent a stream-0 ERROR (it ended the connection): the server just closes. */
  | { readonly outcome: 'client-closed' }
  /** Nothing fatal: the connection keeps serving and answers the probe. */
  | { readonly outcome: 'serves' };

const REQUEST_OR_PAYLOAD = new Set<number>([
  FrameTypes.REQUEST_RESPONSE, FrameTypes.REQUEST_FNF, FrameTypes.REQUEST_STREAM, FrameTypes.REQUEST_CHANNEL, FrameTypes.PAYLOAD,
]);

/**
 * What an established connection must do with these whole frame bodies, in order: a
 * METADATA_PUSH on stream 0 is ignored (README: metadata push is not used); the first
 * undecodable frame closes it with FRAME_MALFORMED, and so does a frame where the protocol does
 * not allow it (a connection-level type on another stream than 0; on stream 0 anything but
 * KEEPALIVE, LEASE and ERROR, so a second SETUP, RESUME, RESUME_OK or a request or stream frame);
 * fragmented messages (FOLLOWS) held beyond the maximum frame size close it with
 * FRAME_TOO_LARGE (README: the frame limit also bounds reassembly); a stream-0 ERROR from the
 * client ends it; anything else is served (a stream frame a stream does not take fails that
 * stream only, which checkErrorFrames judges).
 */
export function predictEstablished(records: readonly Buffer[], maxFrameBytes: number, oversized = false): Prediction {
  // The TCP splitter reads ahead of decoding (frames queue while SETUP is being accepted or
  // reading is paused), so a later oversized prefix may close the connection first.
  const closes = (code: ErrorCode): Prediction => ({ outcome: 'closes', codes: oversized ? [code, 'FRAME_TOO_LARGE'] : [code] });
  const held = new Map<number, number>();
  let heldBytes = 0;
  for (const body of records) {
    const header = headerOf(body);
    if (header?.type === FrameTypes.METADATA_PUSH) {
      if (header.streamId === 0) continue;
      return closes('FRAME_MALFORMED');
    }
    const d = decodeRecord(body);
    if (!d.ok) {
      if (d.skipped) continue;
      return closes('FRAME_MALFORMED');
    }
    const f = d.frame;
    const streamId = header!.streamId; // a decoded frame has a whole header
    if (CONNECTION_TYPES.has(f.type) && streamId !== 0) return closes('FRAME_MALFORMED');
    if (streamId === 0) {
      if (f.type === FrameTypes.ERROR) return { outcome: 'client-closed' };
      if (f.type !== FrameTypes.KEEPALIVE && f.type !== FrameTypes.LEASE) return closes('FRAME_MALFORMED');
      continue;
    }
    if (REQUEST_OR_PAYLOAD.has(f.type)) {
      if (Flags.hasFollows(f.flags)) {
        const size = ((f as { data?: Buffer | null }).data?.length ?? 0) + ((f as { metadata?: Buffer | null }).metadata?.length ?? 0);
        held.set(f.streamId, (held.get(f.streamId) ?? 0) + size);
        heldBytes += size;
        if (heldBytes > maxFrameBytes) return closes('FRAME_TOO_LARGE');
      } else {
        heldBytes -= held.get(f.streamId) ?? 0;
        held.delete(f.streamId);
      }
    } else if (f.type === FrameTypes.CANCEL || f.type === FrameTypes.ERROR) {
      heldBytes -= held.get(f.streamId) ?? 0;
      held.delete(f.streamId);
    }
  }
  return oversized ? { outcome: 'closes', codes: ['FRAME_TOO_LARGE'] } : { outcome: 'serves' };
}

/** Codes a SETUP frame itself can earn (README, SETUP): bad MIME, bad flags or keepalive, bad or no key. */
export const SETUP_CODES: readonly ErrorCode[] = ['SETUP_INVALID', 'SETUP_UNSUPPORTED_MIME', 'AUTH_REQUIRED', 'AUTH_INVALID'];

export type FirstPrediction =
  | Prediction
  /** Refused with one of `codes`, or accepted, after which the rest of the stream goes as `after` says. */
  | { readonly outcome: 'setup'; readonly codes: readonly ErrorCode[]; readonly after: Prediction };

/**
 * What a fresh connection must do with `bytes` (TCP framing): an incomplete first frame times
 * out (SETUP_TIMEOUT), an oversized one is refused unread (FRAME_TOO_LARGE), an undecodable one
 * is FRAME_MALFORMED, anything but SETUP on stream 0 is SETUP_INVALID (RESUME included: resume
 * is not offered), and so is a SETUP of another major version than 1; any other SETUP earns one
 * of the SETUP codes (or is accepted, which random bytes never achieve with a valid key).
 */
export function predictFirst(bytes: Buffer, maxFrameBytes: number): FirstPrediction {
  const w = walkRecords(bytes, maxFrameBytes);
  return predictFirstOf(w.records, w.oversized ? { outcome: 'closes', codes: ['FRAME_TOO_LARGE'] } : { outcome: 'closes', codes: ['SETUP_TIMEOUT'] }, maxFrameBytes, w.oversized);
}

/** The same for WebSocket messages (one frame each, no prefix). */
export function predictFirstMessages(bodies: readonly Buffer[], maxFrameBytes: number): FirstPrediction {
  return predictFirstOf(bodies, { outcome: 'closes', codes: ['SETUP_TIMEOUT'] }, maxFrameBytes, false);
}

function predictFirstOf(records: readonly Buffer[], whenNone: FirstPrediction, maxFrameBytes: number, oversized: boolean): FirstPrediction {
  const invalid: Prediction = { outcome: 'closes', codes: ['SETUP_INVALID'] };
  for (let i = 0; i < records.length; i++) {
    // A METADATA_PUSH is a well-formed frame that is not SETUP, whether or not a decoder copes.
    if (headerOf(records[i]!)?.type === FrameTypes.METADATA_PUSH) return invalid;
    const d = decodeRecord(records[i]!);
    if (!d.ok) {
      if (d.skipped) continue;
      return { outcome: 'closes', codes: ['FRAME_MALFORMED'] };
    }
    const f = d.frame;
    if (f.type !== FrameTypes.SETUP || headerOf(records[i]!)!.streamId !== 0 || f.majorVersion !== MAJOR_VERSION) return invalid;
    return { outcome: 'setup', codes: SETUP_CODES, after: predictEstablished(records.slice(i + 1), maxFrameBytes, oversized) };
  }
  return whenNone;
}

/**
 * Error frames without a catalog body that the gateway is known to let through, each tied to a
 * failing test named [BUG: …]. The campaign would tolerate exactly these signatures (and nothing
 * else) so that it keeps guarding everything around an open bug; an entry goes when its bug is
 * fixed. Empty: B1-B4 (rsocket-core's "Received unknown frame type", "No available handler
 * found", "Unexpected frame type [n]", "Resume is not enabled") are fixed, their tests are in
 * fuzz-regressions.test.ts.
 */
export const KNOWN_BUG_SIGNATURES: ReadonlyArray<{ readonly id: string; readonly streamZero: boolean; readonly code: number; readonly message: RegExp }> = [];

const CONNECTION_LEVEL = new Set<number>([
  RSOCKET_ERROR.INVALID_SETUP, RSOCKET_ERROR.UNSUPPORTED_SETUP, RSOCKET_ERROR.REJECTED_SETUP,
  RSOCKET_ERROR.CONNECTION_ERROR, RSOCKET_ERROR.CONNECTION_CLOSE,
]);

/**
 * Every ERROR frame the server sends must carry a catalog body `{code, message, retryable}`
 * whose RSocket code and retry flag are the catalog's, at the right level: stream 0 for setup
 * and connection errors, a request's stream for request errors. Returns the violations (empty
 * when all is well) and the known-bug ids seen.
 */
export function checkErrorFrames(frames: readonly Frame[], tolerateKnownBugs = true): { violations: string[]; knownBugs: Set<string> } {
  const violations: string[] = [];
  const knownBugs = new Set<string>();
  for (const f of frames) {
    if (f.type !== FrameTypes.ERROR) continue;
    const e = f as ErrorFrame;
    const known = tolerateKnownBugs && KNOWN_BUG_SIGNATURES.find((k) => k.streamZero === (e.streamId === 0) && k.code === e.code && k.message.test(e.message));
    if (known) {
      knownBugs.add(known.id);
      continue;
    }
    const body = parseErrorBody(e.message);
    if (body === undefined) {
      violations.push(`stream ${e.streamId}: error 0x${e.code.toString(16)} without a catalog body: ${JSON.stringify(e.message.slice(0, 120))}`);
      continue;
    }
    if (e.code !== rsocketCodeOf(body.code)) violations.push(`stream ${e.streamId}: ${body.code} sent as 0x${e.code.toString(16)}, catalog says 0x${rsocketCodeOf(body.code).toString(16)}`);
    if (body.retryable !== ERROR_CATALOG[body.code].retryable) violations.push(`stream ${e.streamId}: ${body.code} with retryable=${body.retryable}`);
    if ((e.streamId === 0) !== CONNECTION_LEVEL.has(rsocketCodeOf(body.code))) violations.push(`stream ${e.streamId}: ${body.code} at the wrong level`);
  }
  return { violations, knownBugs };
}
