/**
 * Runs one raw-connection fuzz case against the live server (TCP or WebSocket) and judges it
 * against the prediction from fuzz-frames.ts. Test-only.
 */
import type { Frame } from 'rsocket-core';
import { FrameTypes, type ErrorFrame } from 'rsocket-core';
import { parseErrorBody } from '../../protocol/errors.js';
import { RawTcpClient, RawWsClient, sleep } from '../../src/gateway/transport-test-kit.js';
import { waitFor } from '../support/wait-for.js';
import {
  checkErrorFrames, padToBoundary, predictEstablished, predictFirst, predictFirstMessages, prefixed, probeAnswered,
  probeFrame, setupBytes, walkRecords, type FirstPrediction,
} from './fuzz-frames.js';
import { FuzzRandom } from './fuzz-random.js';

export interface RawCase {
  readonly category: string;
  readonly kind: string;
  readonly transport: 'tcp' | 'ws';
  /** Send a valid SETUP with this key first (the case then runs on an established connection). */
  readonly setupKey?: string;
  /** Frame bodies, each framed by the transport (TCP: a correct length prefix; WS: one message each). */
  readonly bodies?: readonly Buffer[];
  /** TCP only: raw bytes instead of `bodies` (wrong prefixes, noise); padded to a record boundary before the probe. */
  readonly tcpBytes?: Buffer;
  /** Leave an incomplete frame at the end and send no probe (the server must time the SETUP out). */
  readonly noProbe?: boolean;
  /** Split TCP writes into random small chunks (exercises reassembly across reads). */
  readonly chunked?: boolean;
  /** Overrides the computed prediction (cases whose right outcome the framing alone does not say). */
  readonly expect?: FirstPrediction | { readonly outcome: 'ws-too-large' };
  /** WebSocket only: a text message sent after the bodies (RSocket frames must be binary). */
  readonly wsText?: string;
  /** Further checks on what came back; returns a failure description or undefined. */
  readonly check?: (frames: readonly Frame[]) => string | undefined;
}

export interface CaseResult {
  readonly failure: string | undefined;
  readonly knownBugs: ReadonlySet<string>;
  readonly outcome: string;
}

export interface RunnerOptions {
  readonly tcpPort: number;
  readonly wsPort: number;
  readonly maxFrameBytes: number;
  /** Site of the probe query (any site the key may read). */
  readonly probeSite: string;
  /** Seeds the per-case randomness (TCP chunk sizes), so concurrent cases stay reproducible. */
  readonly seed: number;
}

const hex = (b: Buffer) => (b.length > 48 ? `${b.subarray(0, 48).toString('hex')}… (${b.length} bytes)` : b.toString('hex'));

export async function runRawCase(c: RawCase, o: RunnerOptions, index = 0): Promise<CaseResult> {
  const fz = new FuzzRandom((o.seed * 1_000_003 + index) >>> 0);
  const probe = probeFrame(o.probeSite);
  let prediction: NonNullable<RawCase['expect']>;
  let describe: string;
  let client: RawTcpClient | RawWsClient;

  if (c.transport === 'tcp') {
    const hostile = c.tcpBytes ?? Buffer.concat((c.bodies ?? []).map((b) => prefixed(b)));
    const aligned = c.noProbe ? hostile : padToBoundary(hostile, o.maxFrameBytes);
    if (c.setupKey !== undefined) {
      const w = walkRecords(aligned, o.maxFrameBytes);
      prediction = c.expect ?? predictEstablished(w.records, o.maxFrameBytes, w.oversized);
    } else {
      prediction = c.expect ?? predictFirst(c.noProbe ? aligned : Buffer.concat([aligned, prefixed(probe)]), o.maxFrameBytes);
    }
    const bytes = Buffer.concat([
      c.setupKey !== undefined ? prefixed(setupBytes(c.setupKey)) : Buffer.alloc(0),
      aligned,
      c.noProbe ? Buffer.alloc(0) : prefixed(probe),
    ]);
    describe = hex(hostile);
    const tcp = await RawTcpClient.connect(o.tcpPort);
    client = tcp;
    if (c.chunked) {
      // Small pieces over the first few KiB (prefixes split across reads), then the rest at once.
      let at = 0;
      while (at < Math.min(bytes.length, 4_096) && !tcp.closed) {
        const n = fz.int(1, 64);
        tcp.write(bytes.subarray(at, at + n));
        at += n;
        if (fz.chance(0.2)) await sleep(0);
      }
      if (at < bytes.length && !tcp.closed) tcp.write(bytes.subarray(at));
    } else {
      tcp.write(bytes);
    }
  } else {
    const bodies = c.bodies ?? [];
    const oversized = bodies.some((b) => b.length > o.maxFrameBytes);
    prediction = c.expect ?? (oversized ? { outcome: 'ws-too-large' }
      : c.setupKey !== undefined ? predictEstablished(bodies, o.maxFrameBytes)
        : c.wsText !== undefined && bodies.length === 0 ? { outcome: 'closes', codes: ['FRAME_MALFORMED'] }
          : predictFirstMessages(c.noProbe ? bodies : [...bodies, probe], o.maxFrameBytes));
    describe = bodies.map(hex).join(' | ');
    const ws = await RawWsClient.connect(o.wsPort);
    client = ws;
    if (c.setupKey !== undefined) ws.ws.send(setupBytes(c.setupKey));
    for (const b of bodies) ws.ws.send(b);
    if (c.wsText !== undefined) ws.ws.send(c.wsText);
    if (!c.noProbe) ws.ws.send(probe);
  }

  const answered = () => probeAnswered(client.frames, o.probeSite);
  // A WebSocket is closed for our purpose once the server's close frame arrived (CLOSING): the
  // handshake's end can take the server's linger when it had paused reading, which is not ours
  // to wait for. The final check of the campaign sees that the server did release it.
  const ws = client instanceof RawWsClient ? client : undefined;
  const closed = () => client.closed || (prediction.outcome !== 'ws-too-large' && ws !== undefined && ws.ws.readyState >= ws.ws.CLOSING);
  let failure: string | undefined;
  try {
    await waitFor(() => closed() || (!c.noProbe && answered()), { what: 'the connection to close or the probe to be answered' });
  } catch (e) {
    failure = (e as Error).message;
  }
  // The last stream-0 ERROR is the one that closed the connection (a known-bug one may precede it).
  const last = [...client.frames].reverse().find((f): f is ErrorFrame => f.type === FrameTypes.ERROR && f.streamId === 0);
  const err = last === undefined ? undefined : { frame: last, body: parseErrorBody(last.message) };
  const { violations, knownBugs } = checkErrorFrames(client.frames);
  const outcome = closed() ? `closed:${err?.body?.code ?? (err ? `0x${err.frame.code.toString(16)}` : 'silently')}` : answered() ? 'served' : 'pending';
  if (failure === undefined) {
    switch (prediction.outcome) {
      case 'serves':
        if (!answered()) failure = `expected the connection to keep serving, got ${outcome}`;
        break;
      case 'closes':
        if (!closed() || err?.body === undefined || !prediction.codes.includes(err.body.code)) failure = `expected a close with ${prediction.codes.join('|')}, got ${outcome}`;
        else if (answered()) failure = 'the probe after a fatal frame was answered';
        break;
      case 'client-closed':
        if (!closed()) failure = 'expected the connection to close after the client\'s stream-0 ERROR';
        break;
      case 'setup': {
        // Refused, or accepted and then the rest of the stream judged as on any connection.
        const refused = closed() && err?.body !== undefined && prediction.codes.includes(err.body.code);
        const after = prediction.after;
        const asAfter = after.outcome === 'serves' ? answered()
          : after.outcome === 'client-closed' ? closed()
            : closed() && err?.body !== undefined && after.codes.includes(err.body.code);
        if (!refused && !asAfter) failure = `expected a SETUP code (${prediction.codes.join('|')}) or acceptance then ${after.outcome}, got ${outcome}`;
        break;
      }
      case 'ws-too-large':
        if (!closed() || (client as RawWsClient).closeCode !== 1009) failure = `expected WebSocket close 1009, got ${outcome} (${(client as RawWsClient).closeCode})`;
        break;
    }
  }
  failure ??= violations.length > 0 ? `error frames off the catalog: ${violations.join('; ')}` : c.check?.(client.frames);
  client.destroy();
  return {
    failure: failure === undefined ? undefined : `[${c.category}/${c.kind}/${c.transport}] ${failure}; sent ${describe}`,
    knownBugs,
    outcome: `${prediction.outcome}->${outcome}`,
  };
}

/** Runs `tasks` with at most `concurrency` in flight; results in task order. */
export async function pool<T, R>(items: readonly T[], concurrency: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await task(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}
