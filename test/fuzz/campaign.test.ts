/**
 * A bounded, seeded fuzz campaign against the embedded app over real TCP and WebSocket
 * connections (issue 6, hostile input). It complements test/e2e/hostile-input.test.ts (a few
 * hand-picked cases) with generated ones, and judges each against an oracle written from the
 * protocol README: the documented catalog code at the documented level (a bad request fails
 * only itself, connection-level garbage closes only its connection).
 *
 * Throughout, a well-behaved connection keeps sending acknowledged batches; afterwards the
 * campaign checks that it was acked in every phase, that every acknowledged event is durable in
 * the event log and counted in the rollups, that nothing reached the dead-letter topic, that no
 * prototype was polluted, that the heap came back near its start after GC, that every hostile
 * connection was released, and that the process saw no unhandled rejection or exception.
 *
 * Same seed, same campaign: change SEED to explore, keep the failing seed to reproduce.
 */
import { expect } from 'chai';
import { Flags, FrameTypes, serializeFrame, type Frame } from 'rsocket-core';
import {
  WellKnownMimeType, encodeBearerAuthMetadata, encodeCompositeMetadata, encodeRoute, encodeSimpleAuthMetadata,
} from 'rsocket-composite-metadata';
import { rsocketCodeOf, type ErrorCode } from '../../protocol/errors.js';
import type { RouteName } from '../../protocol/routes.js';
import { LIMITS, type IngestAck } from '../../protocol/schema.js';
import { SluiceClient, SluiceClientError } from '../../src/client/sluice-client.js';
import { loadConfig } from '../../src/config.js';
import { setupFrame, trapProcessErrors } from '../../src/gateway/transport-test-kit.js';
import { ADMIN_KEY, startHarness, type Harness } from '../support/harness.js';
import { waitFor } from '../support/wait-for.js';
import {
  METADATA_FLAG, authMetadata, extFrame, frameTemplates, mutateFrame, prefixed, routeMetadata, setupBytes, withStreamId,
} from './fuzz-frames.js';
import { EventLogLedger, collectGarbage, pollutionSince, snapshotPrototypes, type PrototypeSnapshot } from './fuzz-guards.js';
import {
  PROTO_SITES, envelope, eventVerdictOf, hostileDocument, hostileEvent, requestVerdict, type EventSites, type LabeledEvent,
} from './fuzz-payloads.js';
import { FuzzRandom } from './fuzz-random.js';
import { pool, runRawCase, type RawCase, type RunnerOptions } from './fuzz-runner.js';

const SEED = 0x5_1ce;
/** Campaign size: big enough to reach every generator branch many times, small enough for CI. */
const SIZE = {
  preSetupTcp: 300, preSetupWs: 100, setupFuzz: 80, afterSetupTcp: 600, afterSetupWs: 200,
  routeRequests: 400, metadataRequests: 80, fnfFrames: 200, ackedBatches: 110,
} as const;
const CONCURRENCY = 12;
/** "Memory stays bounded": generous, since GC timing varies; a leak per hostile case would blow it. */
const HEAP_GROWTH_LIMIT_BYTES = 64 * 1024 * 1024;

const CONTROL_SITE = 'fuzz-control.example';
const VALID_SITE = 'fuzz-valid.example';
const TIME_SITE = 'fuzz-time.example';
const FRAMES_SITE = 'fuzz-frames.example';
const COUNTED_SITES = [VALID_SITE, ...PROTO_SITES];

const TOPICS = loadConfig({}).eventLog;
const MAX_FRAME_BYTES = loadConfig({}).gateway.maxFrameBytes;

/** Codes a request may earn that the campaign does not predict exactly (query engine rules). */
const QUERY_OUTCOMES: readonly ErrorCode[] = ['QUERY_INVALID'];

/** The well-behaved connection: acknowledged batches in a loop, every ack checked. */
class ControlTraffic {
  acked = 0;
  readonly ids: string[] = [];
  readonly errors: string[] = [];
  running = true;
  private loop: Promise<void> | undefined;
  private n = 0;

  constructor(private readonly client: SluiceClient) {}

  start(): void {
    this.loop = (async () => {
      while (this.running) {
        const events = Array.from({ length: 5 }, () => ({ id: `ctrl-${SEED}-${this.n++}`, type: 'pageview' as const, site: CONTROL_SITE, url: `https://${CONTROL_SITE}/c`, timestamp: Date.now() }));
        try {
          const ack = await this.client.sendBatch(events);
          if (ack.accepted !== events.length || ack.rejected.length > 0) this.errors.push(`control batch not fully accepted: ${JSON.stringify(ack).slice(0, 200)}`);
          else {
            this.ids.push(...events.map((e) => e.id));
            this.acked += events.length;
          }
        } catch (e) {
          this.errors.push(`control batch failed: ${(e as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 15));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

describe('fuzz campaign: hostile frames and payloads over TCP and WebSocket (seeded, bounded)', function () {
  this.timeout(180_000);
  const fz = new FuzzRandom(SEED);
  const ledger = new EventLogLedger();
  const coverage = new Map<string, Map<string, number>>();
  const knownBugsSeen = new Set<string>();
  /** (site, id) of every event the server acknowledged (batches) or must have accepted (fire-and-forget). */
  const accepted: Array<{ site: string; id: string }> = [];
  const expectedCounts = new Map<string, { pageviews: number; events: number }>(COUNTED_SITES.map((s) => [s, { pageviews: 0, events: 0 }]));
  let h: Harness;
  let trap: ReturnType<typeof trapProcessErrors>;
  let prototypesBefore: PrototypeSnapshot;
  let gc: () => void;
  let heapBefore = 0;
  let heapAfter = 0;
  let control: ControlTraffic;
  let controlAtPhaseStart = 0;
  let startedAt = 0;
  let runner: RunnerOptions;
  let caseCounter = 0;
  let openClients = 0;
  const clientsClosed: string[] = [];

  /**
   * An accepted event from a generated document (current time, no user agent) counts in its
   * site's rollups when that site is one the campaign checks.
   */
  const countDocumentEvent = (e: unknown) => {
    const { site, type, timestamp, userAgent } = e as { site: string; type: string; timestamp?: number; userAgent?: string };
    const c = expectedCounts.get(site);
    if (!c) return;
    if (userAgent !== undefined || timestamp === undefined || Math.abs(timestamp - Date.now()) > 60_000) throw new Error(`a generated document sent an uncountable event to ${site}`);
    if (type === 'pageview') c.pageviews++;
    else c.events++;
  };
  const tally = (category: string, kind: string) => {
    const m = coverage.get(category) ?? new Map<string, number>();
    m.set(kind, (m.get(kind) ?? 0) + 1);
    coverage.set(category, m);
  };
  /** Our well-behaved clients: none may be closed by the server, and they are all the server should hold at the end. */
  const watchClient = (c: SluiceClient, name: string) => {
    openClients++;
    c.onClose((e) => clientsClosed.push(`${name}: ${e?.message ?? 'closed'}`));
    return c;
  };

  /** Runs raw cases and fails with every mismatch (up to 12 shown) rather than the first. */
  const runRaw = async (cases: readonly RawCase[]) => {
    // Cases that must wait out the SETUP timeout are idle connections: run them all at once
    // beside the others instead of letting them hold the pool.
    const base = caseCounter;
    caseCounter += cases.length;
    const idle = cases.map((c, i) => [c, i] as const).filter(([c]) => c.noProbe === true);
    const busy = cases.map((c, i) => [c, i] as const).filter(([c]) => c.noProbe !== true);
    const results = new Array<Awaited<ReturnType<typeof runRawCase>>>(cases.length);
    await Promise.all([
      pool(idle, idle.length || 1, async ([c, i]) => { results[i] = await runRawCase(c, runner, base + i); }),
      pool(busy, CONCURRENCY, async ([c, i]) => { results[i] = await runRawCase(c, runner, base + i); }),
    ]);
    const failures: string[] = [];
    results.forEach((r, i) => {
      tally(cases[i]!.category, `${cases[i]!.kind} ${r.outcome}`);
      for (const b of r.knownBugs) knownBugsSeen.add(b);
      if (r.failure) failures.push(r.failure);
    });
    expect(failures.slice(0, 12), `${failures.length} of ${cases.length} cases failed`).to.deep.equal([]);
  };

  before(async () => {
    trap = trapProcessErrors();
    prototypesBefore = snapshotPrototypes();
    gc = collectGarbage();
    startedAt = Date.now();
    // A roomier SETUP timeout than the harness default: SETUPs padded to 1 MiB must arrive in
    // time on a loaded CI machine; truncated-SETUP cases wait for it concurrently.
    h = await startHarness({ gateway: { setupTimeoutMs: 3_000 } }, { wrapEventLog: (log) => ledger.wrap(log) });
    runner = { tcpPort: h.ports.tcp, wsPort: h.ports.ws, maxFrameBytes: MAX_FRAME_BYTES, probeSite: CONTROL_SITE, seed: SEED };
    control = new ControlTraffic(watchClient(await h.client('tcp'), 'control'));
    control.start();
    await waitFor(() => control.acked >= 20, { what: 'control traffic acknowledged' });
    gc();
    heapBefore = process.memoryUsage().heapUsed;
  });

  beforeEach(() => {
    controlAtPhaseStart = control.acked;
  });

  afterEach(async function () {
    // The well-behaved connection was acknowledged during this phase too.
    if (this.currentTest?.state === 'passed' && control.running) {
      await waitFor(() => control.acked > controlAtPhaseStart, { what: 'control acks during the phase' });
    }
  });

  after(async () => {
    await control?.stop();
    await h?.stop();
    trap?.dispose();
    const lines = [...coverage].map(([cat, kinds]) => {
      const total = [...kinds.values()].reduce((a, b) => a + b, 0);
      return `  ${cat}: ${total} cases, ${kinds.size} distinct kind/outcome pairs`;
    });
    const mib = (n: number) => (n / 2 ** 20).toFixed(1);
    console.log(`    fuzz campaign seed ${SEED}: ${((Date.now() - startedAt) / 1000).toFixed(1)} s, heap ${mib(heapBefore)} -> ${mib(heapAfter)} MiB after GC, ${control.acked} control events acknowledged\n${lines.join('\n')}\n  known bugs met (tolerated, see KNOWN_BUG_SIGNATURES): ${[...knownBugsSeen].sort().join(', ') || 'none'}`);
  });

  it('pre-SETUP garbage: random bytes, bad prefixes, broken SETUPs, every first frame type', async () => {
    const templates = frameTemplates(FRAMES_SITE, 1);
    const cases: RawCase[] = [];
    for (let i = 0; i < SIZE.preSetupTcp; i++) {
      const chunked = fz.chance(0.25);
      switch (fz.int(0, 6)) {
        case 0: cases.push({ category: 'pre-setup', kind: 'random-bytes', transport: 'tcp', tcpBytes: fz.bytes(fz.int(0, 64)), chunked }); break;
        case 1: cases.push({ category: 'pre-setup', kind: 'prefixed-random-body', transport: 'tcp', bodies: [fz.bytes(fz.int(0, 200))], chunked }); break;
        case 2: {
          const m = mutateFrame(fz, setupBytes(ADMIN_KEY));
          cases.push({ category: 'pre-setup', kind: `setup-${m.name}`, transport: 'tcp', bodies: [m.body], chunked });
          break;
        }
        case 3: {
          const body = setupBytes(ADMIN_KEY);
          const announced = fz.pick([0, 1, body.length - 1, body.length + 1, body.length + fz.int(2, 100), MAX_FRAME_BYTES, MAX_FRAME_BYTES + 1, 0xffffff]);
          cases.push({ category: 'pre-setup', kind: 'setup-wrong-length-prefix', transport: 'tcp', tcpBytes: prefixed(body, announced), chunked });
          break;
        }
        case 4: {
          const name = fz.pick(Object.keys(templates));
          cases.push({ category: 'pre-setup', kind: `first-frame-${name}`, transport: 'tcp', bodies: [templates[name]!], chunked });
          break;
        }
        case 5: {
          // An incomplete first frame and nothing more: the server must time the SETUP out.
          const body = setupBytes(ADMIN_KEY);
          const bytes = prefixed(body).subarray(0, fz.int(0, body.length + 2));
          cases.push({ category: 'pre-setup', kind: 'truncated-first-frame', transport: 'tcp', tcpBytes: bytes, noProbe: true, expect: { outcome: 'closes', codes: ['SETUP_TIMEOUT'] }, chunked });
          break;
        }
        default: cases.push({ category: 'pre-setup', kind: 'oversized-prefix', transport: 'tcp', tcpBytes: Buffer.concat([prefixed(Buffer.alloc(0), fz.int(MAX_FRAME_BYTES + 1, 0xffffff)), fz.bytes(fz.int(0, 32))]) });
      }
    }
    for (let i = 0; i < SIZE.preSetupWs; i++) {
      const name = fz.pick(Object.keys(templates));
      const body = fz.pick([() => fz.bytes(fz.int(0, 64)), () => mutateFrame(fz, setupBytes(ADMIN_KEY)).body, () => templates[name]!])();
      cases.push({ category: 'pre-setup', kind: 'ws-message', transport: 'ws', bodies: [body] });
    }
    cases.push({ category: 'pre-setup', kind: 'ws-oversized-message', transport: 'ws', bodies: [Buffer.alloc(MAX_FRAME_BYTES + 1)] });
    cases.push({
      category: 'pre-setup', kind: 'ext-ignore-then-setup', transport: 'tcp', bodies: [extFrame(0, Flags.IGNORE, 9, Buffer.from('x')), setupBytes(ADMIN_KEY)],
      expect: { outcome: 'serves' },
    });
    await runRaw(cases);
  });

  it('SETUP fuzz: MIME types, flags, keepalive bounds, credentials, huge and invalid metadata', async () => {
    const huge = (n: number) => Buffer.alloc(n, 0x61);
    const bearerEntry = (token: Buffer | string) => [WellKnownMimeType.MESSAGE_RSOCKET_AUTHENTICATION, encodeBearerAuthMetadata(token)] as [WellKnownMimeType, Buffer];
    const setup = (over: Parameters<typeof setupFrame>[0]) => serializeFrame(setupFrame({ metadata: authMetadata(ADMIN_KEY), flags: METADATA_FLAG, ...over }));
    const table: Array<{ kind: string; body: Buffer; expect: NonNullable<RawCase['expect']> }> = [
      { kind: 'metadata-mime-unknown', body: setup({ metadataMimeType: 'application/x-fuzz' }), expect: { outcome: 'closes', codes: ['SETUP_UNSUPPORTED_MIME'] } },
      { kind: 'data-mime-unknown', body: setup({ dataMimeType: fz.pick(['text/plain', 'application/cbor', 'application/json;charset=latin1', '']) }), expect: { outcome: 'closes', codes: ['SETUP_UNSUPPORTED_MIME'] } },
      { kind: 'mime-255-chars', body: setup({ dataMimeType: 'a'.repeat(255) }), expect: { outcome: 'closes', codes: ['SETUP_UNSUPPORTED_MIME'] } },
      { kind: 'keepalive-out-of-bounds', body: setup({ keepAlive: fz.pick([0, 1, 99, 600_001, 0x7fffffff]) }), expect: { outcome: 'closes', codes: ['SETUP_INVALID'] } },
      { kind: 'lifetime-out-of-bounds', body: setup({ lifetime: fz.pick([0, 999, 3_600_001, 0x7fffffff]) }), expect: { outcome: 'closes', codes: ['SETUP_INVALID'] } },
      { kind: 'lease-flag', body: setup({ flags: METADATA_FLAG | Flags.LEASE }), expect: { outcome: 'closes', codes: ['SETUP_INVALID'] } },
      { kind: 'resume-flag', body: setup({ flags: METADATA_FLAG | Flags.RESUME_ENABLE, resumeToken: Buffer.from('tok') }), expect: { outcome: 'closes', codes: ['SETUP_INVALID'] } },
      // rsocket-core's codec reads every SETUP as stream 0; the gateway reads the header.
      { kind: 'setup-on-stream-1', body: withStreamId(setup({}), 1), expect: { outcome: 'closes', codes: ['SETUP_INVALID'] } },
      { kind: 'no-metadata', body: serializeFrame(setupFrame({})), expect: { outcome: 'closes', codes: ['AUTH_REQUIRED'] } },
      { kind: 'random-metadata', body: setup({ metadata: fz.bytes(fz.int(1, 64)) }), expect: { outcome: 'closes', codes: ['AUTH_REQUIRED', 'AUTH_INVALID'] } },
      { kind: 'simple-auth', body: setup({ metadata: encodeCompositeMetadata([[WellKnownMimeType.MESSAGE_RSOCKET_AUTHENTICATION, encodeSimpleAuthMetadata('admin', ADMIN_KEY)]]) }), expect: { outcome: 'closes', codes: ['AUTH_REQUIRED'] } },
      { kind: 'routing-instead-of-auth', body: setup({ metadata: routeMetadata('query.totals') }), expect: { outcome: 'closes', codes: ['AUTH_REQUIRED'] } },
      { kind: 'composite-length-lie', body: setup({ metadata: Buffer.from([0xfc, 0xff, 0xff, 0xff, 0x81]) }), expect: { outcome: 'closes', codes: ['AUTH_REQUIRED'] } },
      { kind: 'bearer-invalid-utf8', body: setup({ metadata: encodeCompositeMetadata([bearerEntry(Buffer.from([0x74, 0xc3, 0x28, 0xff, 0xfe]))]) }), expect: { outcome: 'closes', codes: ['AUTH_INVALID'] } },
      { kind: 'bearer-900k', body: setup({ metadata: encodeCompositeMetadata([bearerEntry(huge(900_000))]) }), expect: { outcome: 'closes', codes: ['AUTH_INVALID'] } },
      { kind: 'bearer-near-miss', body: setup({ metadata: encodeCompositeMetadata([bearerEntry(fz.pick([`${ADMIN_KEY}\u0000`, ADMIN_KEY.slice(0, -1), ADMIN_KEY.toUpperCase(), ` ${ADMIN_KEY}`, '__proto__', 'constructor']))]) }), expect: { outcome: 'closes', codes: ['AUTH_INVALID'] } },
      { kind: 'key-plus-900k-padding-entry', body: setup({ metadata: encodeCompositeMetadata([['application/x-padding', huge(900_000)], bearerEntry(ADMIN_KEY)]) }), expect: { outcome: 'serves' } },
      { kind: 'key-string-mime-form', body: setup({ metadata: encodeCompositeMetadata([['message/x.rsocket.authentication.v0', encodeBearerAuthMetadata(ADMIN_KEY)]]) }), expect: { outcome: 'serves' } },
      { kind: 'setup-data-900k-garbage', body: setup({ data: huge(900_000) }), expect: { outcome: 'serves' } },
      { kind: 'version-major-not-1', body: setup({ majorVersion: fz.pick([0, 2, 65535]), minorVersion: fz.pick([0, 9, 65535]) }), expect: { outcome: 'closes', codes: ['SETUP_INVALID'] } },
      { kind: 'version-minor-odd', body: setup({ minorVersion: fz.pick([1, 9, 65535]) }), expect: { outcome: 'serves' } },
    ];
    const cases: RawCase[] = [];
    for (const t of table) for (const transport of ['tcp', 'ws'] as const) cases.push({ category: 'setup', kind: t.kind, transport, bodies: [t.body], expect: t.expect });
    // Over the frame limit: refused unread on TCP, WebSocket close 1009.
    const tooBig = setup({ metadata: encodeCompositeMetadata([bearerEntry(huge(MAX_FRAME_BYTES))]) });
    cases.push({ category: 'setup', kind: 'metadata-over-frame-limit', transport: 'tcp', bodies: [tooBig], expect: { outcome: 'closes', codes: ['FRAME_TOO_LARGE'] } });
    cases.push({ category: 'setup', kind: 'metadata-over-frame-limit', transport: 'ws', bodies: [tooBig], expect: { outcome: 'ws-too-large' } });
    for (let i = 0; i < SIZE.setupFuzz; i++) {
      const transport = fz.chance(0.5) ? 'tcp' : 'ws';
      cases.push({ category: 'setup', kind: 'mutated', transport, bodies: [mutateFrame(fz, setup({})).body] });
    }
    await runRaw(cases);
  });

  it('after SETUP: garbage, truncated, mutated and mis-length frames close only their connection', async () => {
    const cases: RawCase[] = [];
    const frames = () => {
      const templates = frameTemplates(FRAMES_SITE, 2 * fz.int(0, 499) + 1);
      const names: string[] = [];
      const bodies = Array.from({ length: fz.int(1, 3) }, () => {
        const name = fz.pick(Object.keys(templates));
        if (fz.chance(0.25)) { names.push(name); return templates[name]!; }
        const m = mutateFrame(fz, templates[name]!);
        names.push(`${name}:${m.name}`);
        return m.body;
      });
      return { names, bodies };
    };
    for (let i = 0; i < SIZE.afterSetupTcp; i++) {
      const { names, bodies } = frames();
      if (fz.chance(0.35)) {
        // Lie in one length prefix: the rest of the stream is then read out of step.
        const lie = fz.int(0, bodies.length - 1);
        const bytes = Buffer.concat(bodies.map((b, j) => (j === lie
          // Short, a little long, or past the frame limit; a rare long-but-legal lie costs up to 1 MiB of padding.
          ? prefixed(b, fz.pick([0, fz.int(0, Math.max(0, b.length - 1)), b.length + fz.int(1, 64), fz.int(MAX_FRAME_BYTES + 1, 0xffffff), fz.chance(0.2) ? fz.int(0, MAX_FRAME_BYTES) : b.length + 1]))
          : prefixed(b))));
        cases.push({ category: 'after-setup', kind: `wrong-length ${names.join('+')}`, transport: 'tcp', setupKey: ADMIN_KEY, tcpBytes: bytes, chunked: fz.chance(0.3) });
      } else {
        cases.push({ category: 'after-setup', kind: names.join('+'), transport: 'tcp', setupKey: ADMIN_KEY, bodies, chunked: fz.chance(0.3) });
      }
    }
    for (let i = 0; i < SIZE.afterSetupWs; i++) {
      const { names, bodies } = frames();
      cases.push({ category: 'after-setup', kind: names.join('+'), transport: 'ws', setupKey: ADMIN_KEY, bodies });
    }
    // Fragments (FOLLOWS) held beyond the frame limit, never completed.
    const fragment = (streamId: number, bytes: number) => serializeFrame({ type: FrameTypes.REQUEST_RESPONSE, streamId, flags: METADATA_FLAG | Flags.FOLLOWS, data: Buffer.alloc(bytes, 0x20), metadata: routeMetadata('query.totals') });
    for (const transport of ['tcp', 'ws'] as const) {
      cases.push({ category: 'after-setup', kind: 'fragments-over-limit', transport, setupKey: ADMIN_KEY, bodies: [fragment(3, 600_000), fragment(5, 600_000)] });
      cases.push({ category: 'after-setup', kind: 'fragment-abandoned', transport, setupKey: ADMIN_KEY, bodies: [fragment(7, 1_000)] });
      cases.push({ category: 'after-setup', kind: 'tiny-noise-frame', transport, setupKey: ADMIN_KEY, bodies: [fz.bytes(3)] });
    }
    cases.push({ category: 'after-setup', kind: 'websocket-text-message', transport: 'ws', setupKey: ADMIN_KEY, wsText: '{"hello":"world"}', expect: { outcome: 'closes', codes: ['FRAME_MALFORMED'] } });
    cases.push({ category: 'pre-setup', kind: 'websocket-text-message', transport: 'ws', wsText: 'SETUP please' });
    await runRaw(cases);
  });

  it('every frame type in every connection state gets a documented outcome', async () => {
    const s = (frame: Frame) => serializeFrame(frame);
    const live = (streamId: number, requestN = 1) => s({ type: FrameTypes.REQUEST_STREAM, streamId, flags: METADATA_FLAG, requestN, data: Buffer.from(JSON.stringify({ site: CONTROL_SITE, windowMinutes: 2 })), metadata: routeMetadata('live.metrics') });
    const t = frameTemplates(FRAMES_SITE, 11);
    const onStream = (streamId: number) => frameTemplates(FRAMES_SITE, streamId);
    const streamZero = frameTemplates(FRAMES_SITE, 0);
    const CONNECTION_LEVEL_TEMPLATES = ['keepalive', 'lease', 'metadataPush', 'setup', 'resume', 'resumeOk'];
    const keepaliveEcho = (frames: readonly Frame[]) => (frames.some((f) => f.type === FrameTypes.KEEPALIVE) ? undefined : 'no KEEPALIVE echo for a KEEPALIVE with RESPOND');
    const states: Array<{ kind: string; bodies: Buffer[]; check?: RawCase['check'] }> = [
      // Established, no stream open.
      ...Object.entries(t).map(([name, body]) => ({ kind: `established:${name}`, bodies: [body], ...(name === 'keepalive' ? { check: keepaliveEcho } : {}) })),
      ...Object.entries(streamZero).filter(([name]) => !CONNECTION_LEVEL_TEMPLATES.includes(name)).map(([name, body]) => ({ kind: `stream-0:${name}`, bodies: [body] })),
      // Connection-level frames (their templates are on stream 0) moved onto a stream.
      ...CONNECTION_LEVEL_TEMPLATES.map((name) => ({ kind: `stream-11:${name}`, bodies: [withStreamId(t[name]!, 11)] })),
      { kind: 'even-stream-request', bodies: [onStream(12).requestResponse!] },
      { kind: 'max-stream-request', bodies: [onStream(0x7fffffff).requestResponse!] },
      { kind: 'duplicate-stream-id-in-flight', bodies: [onStream(13).requestResponse!, onStream(13).requestResponse!] },
      // A live stream open: everything that can target it.
      ...['requestN', 'cancel', 'payload', 'error', 'requestStream', 'requestResponse', 'requestFnf', 'requestChannel'].map((name) => ({ kind: `live-stream-open:${name}`, bodies: [live(21), onStream(21)[name]!] })),
      { kind: 'live-stream:request-n-zero', bodies: [live(23), s({ type: FrameTypes.REQUEST_N, streamId: 23, flags: 0, requestN: 0 })] },
      { kind: 'live-stream:request-n-max', bodies: [live(25, 0x7fffffff), s({ type: FrameTypes.REQUEST_N, streamId: 25, flags: 0, requestN: 0x7fffffff })] },
      { kind: 'live-stream:cancel-twice-then-request-n', bodies: [live(27), onStream(27).cancel!, onStream(27).cancel!, onStream(27).requestN!] },
      { kind: 'live-stream:initial-request-n-zero', bodies: [live(29, 0)] },
      // A request/response in flight.
      ...['payload', 'cancel', 'requestN', 'error'].map((name) => ({ kind: `request-in-flight:${name}`, bodies: [onStream(31).requestResponse!, onStream(31)[name]!] })),
      // A fragmented request in progress, interrupted by each other frame type on its stream.
      ...['payload', 'cancel', 'requestN', 'requestFnf', 'requestResponse', 'error'].map((name) => ({
        kind: `fragmenting:${name}`,
        bodies: [s({ type: FrameTypes.REQUEST_RESPONSE, streamId: 33, flags: METADATA_FLAG | Flags.FOLLOWS, data: Buffer.from('{"si'), metadata: routeMetadata('query.totals') }), onStream(33)[name]!],
      })),
    ];
    const cases: RawCase[] = [];
    for (const transport of ['tcp', 'ws'] as const) {
      for (const st of states) cases.push({ category: 'frame-states', kind: st.kind, transport, setupKey: ADMIN_KEY, bodies: st.bodies, ...(st.check ? { check: st.check } : {}) });
      for (const [name, body] of Object.entries(t)) cases.push({ category: 'frame-states', kind: `before-setup:${name}`, transport, bodies: [body] });
    }
    await runRaw(cases);
  });

  it('hostile request data and metadata on every route fail only that request, with the documented code', async () => {
    const tcp = watchClient(await h.client('tcp'), 'routes-tcp');
    const ws = watchClient(await h.client('ws'), 'routes-ws');
    const routes: RouteName[] = ['ingest.batch', 'query.timeseries', 'query.totals', 'query.breakdown', 'query.current', 'live.metrics'];
    const failures: string[] = [];

    const call = (client: SluiceClient, route: RouteName, data: Buffer, metadata: Buffer): Promise<Buffer | SluiceClientError> => {
      if (route !== 'live.metrics') return client.requestRaw({ data, metadata }).then((d) => d ?? Buffer.alloc(0), (e: unknown) => e as SluiceClientError);
      return new Promise((resolve) => {
        const handle = client.streamRaw({ data, metadata }, 1, {
          next: (d) => { handle.cancel(); resolve(d); },
          error: (e) => resolve(e),
          complete: () => resolve(Buffer.alloc(0)),
        });
      });
    };

    await pool(Array.from({ length: SIZE.routeRequests }, (_, i) => i), 6, async (i) => {
      const route = fz.pick(routes);
      const doc = hostileDocument(fz, route, fz.chance(0.5) ? VALID_SITE : TIME_SITE);
      const client = i % 2 === 0 ? tcp : ws;
      const verdict = requestVerdict(route, doc.bytes);
      const result = await call(client, route, doc.bytes, routeMetadata(route));
      tally('routes', `${route} ${doc.kind} -> ${result instanceof SluiceClientError ? result.code : 'ok'}`);
      const where = `[routes/${route}/${doc.kind}] ${doc.bytes.subarray(0, 80).toString('utf8')}`;
      if (verdict !== undefined) {
        if (!(result instanceof SluiceClientError) || result.code !== verdict || result.rsocketCode !== rsocketCodeOf(verdict)) {
          failures.push(`${where}: expected ${verdict}, got ${result instanceof SluiceClientError ? `${result.code} (0x${result.rsocketCode?.toString(16)})` : 'a response'}`);
        }
        return;
      }
      if (result instanceof SluiceClientError) {
        if (route === 'ingest.batch' || !QUERY_OUTCOMES.includes(result.code as ErrorCode)) failures.push(`${where}: expected an answer, got ${result.code}: ${result.message}`);
        return;
      }
      if (route === 'ingest.batch') {
        // Only 'sane', 'site-proto' and deep-inside-field documents pass the envelope here.
        const events = (JSON.parse(doc.bytes.toString('utf8')) as { events: unknown[] }).events;
        const ack = JSON.parse(result.toString('utf8')) as IngestAck;
        const invalid = events.map((e, j) => [j, eventVerdictOf(e).valid] as const).filter(([, ok]) => !ok).map(([j]) => j);
        if (ack.rejected.map((r) => r.index).join() !== invalid.join() || ack.accepted + ack.duplicates !== events.length - invalid.length) {
          failures.push(`${where}: ack ${JSON.stringify(ack).slice(0, 200)} does not match the events' verdicts (invalid ${invalid.join()})`);
        }
        const valid = events.filter((_, j) => !invalid.includes(j));
        valid.forEach((e, j) => {
          countDocumentEvent(e);
          if (ack.ids[j] !== undefined) accepted.push({ site: (e as { site: string }).site, id: ack.ids[j]! });
        });
      } else if (!result.toString('utf8').includes('"site":')) {
        failures.push(`${where}: unexpected answer ${result.toString('utf8').slice(0, 120)}`);
      }
    });

    // Hostile metadata around a valid body.
    const composite = (entries: Array<[string | WellKnownMimeType, Buffer]>) => encodeCompositeMetadata(entries);
    const routing = WellKnownMimeType.MESSAGE_RSOCKET_ROUTING;
    const routeBytes = (b: Buffer) => Buffer.concat([Buffer.from([b.length]), b]);
    const metadataCases: Array<{ kind: string; metadata: Buffer; expect: readonly ErrorCode[] | 'ok' }> = [];
    for (let i = 0; i < SIZE.metadataRequests; i++) {
      metadataCases.push(fz.pick([
        () => ({ kind: 'random-bytes', metadata: fz.bytes(fz.int(1, 64)), expect: ['METADATA_MALFORMED', 'ROUTE_MISSING', 'ROUTE_UNKNOWN'] as const }),
        () => ({ kind: 'routing-length-lie', metadata: composite([[routing, Buffer.from([200, 0x71, 0x75])]]), expect: ['METADATA_MALFORMED'] as const }),
        () => ({ kind: 'entry-length-lie', metadata: Buffer.concat([Buffer.from([0xfe, 0x00, 0xff, 0xff]), routeBytes(Buffer.from('query.totals'))]), expect: ['METADATA_MALFORMED'] as const }),
        () => ({ kind: 'empty-routing-entry', metadata: composite([[routing, Buffer.alloc(0)]]), expect: ['ROUTE_MISSING'] as const }),
        () => ({ kind: 'auth-entry-only', metadata: authMetadata(ADMIN_KEY), expect: ['ROUTE_MISSING'] as const }),
        () => ({ kind: 'route-invalid-utf8', metadata: composite([[routing, routeBytes(Buffer.from([0x71, 0xc3, 0x28, 0xff]))]]), expect: ['ROUTE_UNKNOWN'] as const }),
        () => ({ kind: 'route-255-bytes', metadata: composite([[routing, routeBytes(Buffer.alloc(255, 0x61))]]), expect: ['ROUTE_UNKNOWN'] as const }),
        () => ({ kind: 'route-proto-names', metadata: routeMetadata(fz.pick(['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty'])), expect: ['ROUTE_UNKNOWN'] as const }),
        () => ({ kind: 'route-string-mime-form', metadata: composite([['message/x.rsocket.routing.v0', encodeRoute('query.totals')]]), expect: 'ok' as const }),
        () => ({ kind: 'huge-padding-then-route', metadata: composite([['application/x-padding', Buffer.alloc(fz.int(100_000, 900_000))], [routing, encodeRoute('query.totals')]]), expect: 'ok' as const }),
        () => ({ kind: 'huge-padding-no-route', metadata: composite([['application/x-padding', Buffer.alloc(fz.int(100_000, 900_000))]]), expect: ['ROUTE_MISSING'] as const }),
        () => ({ kind: 'thousands-of-entries', metadata: composite([...Array.from({ length: 5_000 }, (): [string, Buffer] => ['application/x-e', Buffer.from('x')]), [routing, encodeRoute('query.totals')]]), expect: 'ok' as const }),
        () => ({ kind: 'two-routing-entries', metadata: composite([[routing, encodeRoute('query.totals')], [routing, encodeRoute('no.such.route')]]), expect: 'ok' as const }),
      ])());
    }
    const now = Date.now();
    const body = Buffer.from(JSON.stringify({ site: VALID_SITE, from: now - 60_000, to: now }));
    await pool(metadataCases, 6, async (m, i) => {
      const result = await call(i % 2 === 0 ? tcp : ws, 'query.totals', body, m.metadata);
      tally('metadata', `${m.kind} -> ${result instanceof SluiceClientError ? result.code : 'ok'}`);
      const got = result instanceof SluiceClientError ? result.code : 'ok';
      const ok = m.expect === 'ok' ? got === 'ok' : got !== 'ok' && (m.expect as readonly string[]).includes(got as string) && result instanceof SluiceClientError && result.rsocketCode === rsocketCodeOf(got as ErrorCode);
      if (!ok) failures.push(`[metadata/${m.kind}] expected ${m.expect === 'ok' ? 'an answer' : m.expect.join('|')}, got ${got}`);
    });

    // Both connections survived all of it.
    for (const client of [tcp, ws]) expect((await client.request<{ site: string }>('query.totals', { site: VALID_SITE, from: now - 60_000, to: now })).site).to.equal(VALID_SITE);
    expect(failures.slice(0, 12), `${failures.length} failures`).to.deep.equal([]);
    expect(clientsClosed, 'a request-level error closed a connection').to.deep.equal([]);
  });

  it('hostile fire-and-forget ingest: every whole-request drop is counted by code, every invalid event as rejected', async () => {
    const dropCodes: ErrorCode[] = ['PAYLOAD_INVALID_JSON', 'PAYLOAD_SCHEMA', 'PAYLOAD_TOO_LARGE', 'ROUTE_WRONG_INTERACTION', 'INTERNAL'];
    const dropsBefore = new Map<string, number>();
    for (const code of dropCodes) dropsBefore.set(code, await h.metric('sluice_gateway_fnf_dropped_total', { code }));
    const rejectedBefore = await h.metric('sluice_ingest_events_total', { outcome: 'rejected' });
    const expectedDrops = new Map<string, number>();
    let expectedRejected = 0;
    const sites: EventSites = { counted: () => VALID_SITE, uncounted: TIME_SITE };
    const bodies: Buffer[] = [];
    const fnfAccepted: Array<{ site: string; id: string }> = [];
    for (let i = 0; i < SIZE.fnfFrames; i++) {
      let data: Buffer;
      let kind: string;
      if (fz.chance(0.5)) {
        const doc = hostileDocument(fz, 'ingest.events', TIME_SITE);
        data = doc.bytes;
        kind = doc.kind;
      } else {
        // Events only to uncounted sites: fire-and-forget acceptance is not acknowledged.
        const events = Array.from({ length: fz.int(1, 8) }, (_, j) => hostileEvent(fz, { ...sites, counted: () => TIME_SITE }, `fnf-${SEED}-${i}`, j));
        data = Buffer.from(events.length === 1 && fz.chance(0.5) ? events[0]!.json : envelope(events.map((e) => e.json)));
        kind = `events:${events.map((e) => e.kind).join('+')}`;
      }
      if (data.length > MAX_FRAME_BYTES - 64) continue;
      const verdict = requestVerdict('ingest.events', data);
      if (verdict !== undefined) expectedDrops.set(verdict, (expectedDrops.get(verdict) ?? 0) + 1);
      else {
        const parsed = JSON.parse(data.toString('utf8')) as { events?: unknown[] };
        const events = Array.isArray(parsed.events) ? parsed.events : [parsed];
        for (const e of events) {
          if (!eventVerdictOf(e).valid) expectedRejected++;
          else {
            const { site, id } = e as { site: string; id?: string };
            if (id !== undefined) fnfAccepted.push({ site, id });
            countDocumentEvent(e);
          }
        }
      }
      tally('fire-and-forget', `${kind.split(':')[0]} -> ${verdict ?? 'per-event'}`);
      bodies.push(serializeFrame({ type: FrameTypes.REQUEST_FNF, streamId: 2 * i + 1, flags: METADATA_FLAG, data, metadata: routeMetadata('ingest.events') }));
    }
    const result = await runRawCase({ category: 'fire-and-forget', kind: 'batch', transport: 'tcp', setupKey: ADMIN_KEY, bodies, expect: { outcome: 'serves' } }, runner);
    expect(result.failure).to.equal(undefined);
    await waitFor(async () => {
      for (const code of dropCodes) {
        if ((await h.metric('sluice_gateway_fnf_dropped_total', { code })) - dropsBefore.get(code)! !== (expectedDrops.get(code) ?? 0)) return false;
      }
      return (await h.metric('sluice_ingest_events_total', { outcome: 'rejected' })) - rejectedBefore === expectedRejected;
    }, { what: 'fire-and-forget drops and rejections counted' }).catch(async () => {
      const got: Record<string, number> = {};
      for (const code of dropCodes) got[code] = (await h.metric('sluice_gateway_fnf_dropped_total', { code })) - dropsBefore.get(code)!;
      got.rejectedEvents = (await h.metric('sluice_ingest_events_total', { outcome: 'rejected' })) - rejectedBefore;
      expect(got).to.deep.equal({ ...Object.fromEntries(dropCodes.map((c) => [c, expectedDrops.get(c) ?? 0])), rejectedEvents: expectedRejected });
    });
    // With a healthy log nothing valid may be dropped silently: the ones with ids must be durable.
    await waitFor(() => fnfAccepted.every((e) => ledger.has(TOPICS.eventsTopic, e.site, e.id)), { what: 'valid fire-and-forget events durable' })
      .catch(() => expect(fnfAccepted.filter((e) => !ledger.has(TOPICS.eventsTopic, e.site, e.id)).slice(0, 5)).to.deep.equal([]));
  });

  it('hostile events in acknowledged batches: each event gets its own verdict, accepted ones are durable', async () => {
    const client = watchClient(await h.client(fz.chance(0.5) ? 'tcp' : 'ws'), 'batches');
    const sites: EventSites = { counted: () => (fz.chance(0.6) ? VALID_SITE : fz.pick(PROTO_SITES)), uncounted: TIME_SITE };
    const failures: string[] = [];
    const send = async (events: readonly LabeledEvent[], label: string): Promise<IngestAck | undefined> => {
      let ack: IngestAck;
      try {
        ack = JSON.parse((await client.requestRaw({ data: Buffer.from(envelope(events.map((e) => e.json))), metadata: routeMetadata('ingest.batch') }))!.toString('utf8')) as IngestAck;
      } catch (e) {
        failures.push(`[${label}] batch failed: ${(e as Error).message}`);
        return undefined;
      }
      const invalid = events.map((e, i) => [i, e.valid] as const).filter(([, v]) => !v).map(([i]) => i);
      const rejected = ack.rejected.map((r) => r.index);
      if (rejected.join() !== invalid.join()) {
        const wrong = events.map((e, i) => ({ i, kind: e.kind, expected: e.valid, got: !rejected.includes(i) })).filter((x) => x.expected !== x.got);
        failures.push(`[${label}] verdicts differ: ${JSON.stringify(wrong.slice(0, 5))} ${JSON.stringify(ack.rejected.slice(0, 3))}`);
      }
      if (ack.rejected.some((r) => r.code !== 'PAYLOAD_SCHEMA')) failures.push(`[${label}] rejection codes ${ack.rejected.map((r) => r.code).join()}`);
      const valid = events.filter((e) => e.valid);
      if (ack.ids.length !== valid.length) failures.push(`[${label}] ${ack.ids.length} ids for ${valid.length} valid events`);
      valid.forEach((e, j) => {
        if (e.id !== undefined && ack.ids[j] !== e.id) failures.push(`[${label}] id ${j} is ${ack.ids[j]}, sent ${e.id}`);
        if (ack.ids[j] !== undefined) accepted.push({ site: e.site, id: ack.ids[j]! });
      });
      return ack;
    };
    const count = (events: readonly LabeledEvent[]) => {
      for (const e of events) {
        if (!e.countsNow) continue;
        const c = expectedCounts.get(e.site)!;
        if (e.type === 'pageview') c.pageviews++;
        else c.events++;
      }
    };

    for (let b = 0; b < SIZE.ackedBatches; b++) {
      const events: LabeledEvent[] = [];
      let bytes = 0;
      const want = fz.int(1, 30);
      while (events.length < want) {
        const e = hostileEvent(fz, sites, `acked-${SEED}-${b}`, events.length);
        const size = Buffer.byteLength(e.json) + 1;
        if (bytes + size > 900_000) break;
        bytes += size;
        events.push(e);
        tally('acked-events', `${e.kind} -> ${e.valid ? 'accepted' : 'rejected'}`);
      }
      if (events.length === 0) continue;
      const ack = await send(events, `batch ${b}`);
      if (ack?.duplicates === 0) count(events);
      else if (ack) failures.push(`[batch ${b}] ${ack.duplicates} unexpected duplicates`);
    }

    // Idempotency under hostile ids: a first sending, then a retry counted once.
    const special = (['__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString'] as const).map((id, i): LabeledEvent => ({
      json: JSON.stringify({ id, type: i % 2 === 0 ? 'pageview' : 'event', name: 'special', site: VALID_SITE, url: `https://${VALID_SITE}/${id}`, timestamp: Date.now() }),
      valid: true, kind: 'proto-id', id, site: VALID_SITE, type: i % 2 === 0 ? 'pageview' : 'event', countsNow: true,
    }));
    const first = await send(special, 'special ids');
    if (first) count(special);
    const retry = await client.requestRaw({ data: Buffer.from(envelope(special.map((e) => e.json))), metadata: routeMetadata('ingest.batch') });
    const retryAck = JSON.parse(retry!.toString('utf8')) as IngestAck;
    expect({ accepted: retryAck.accepted, duplicates: retryAck.duplicates }, 'a retry of hostile ids').to.deep.equal({ accepted: 0, duplicates: special.length });

    // The biggest legal batch: 500 events, close to the frame limit.
    const big = Array.from({ length: LIMITS.maxBatchEvents }, (_, i) => hostileEvent(fz, { counted: () => VALID_SITE, uncounted: TIME_SITE }, `big-${SEED}`, i, 'plain'));
    const padded = big.map((e): LabeledEvent => {
      const o = JSON.parse(e.json) as Record<string, unknown>;
      o.url = `https://${VALID_SITE}/${'x'.repeat(1_600)}`;
      return { ...e, json: JSON.stringify(o) };
    });
    expect(envelope(padded.map((e) => e.json)).length).to.be.within(MAX_FRAME_BYTES * 0.75, MAX_FRAME_BYTES - 1_024);
    const bigAck = await send(padded, 'max batch');
    if (bigAck) count(padded);
    tally('acked-events', 'max-batch-500');

    expect(failures.slice(0, 12), `${failures.length} failures`).to.deep.equal([]);
  });

  it('afterwards: no crash, no pollution, bounded heap, connections released, nothing accepted lost', async () => {
    await control.stop();
    expect(control.errors.slice(0, 5), 'the well-behaved connection failed').to.deep.equal([]);
    expect(clientsClosed, 'a well-behaved connection was closed').to.deep.equal([]);

    // Every acknowledged event is durable in the event log.
    const all = [...control.ids.map((id) => ({ site: CONTROL_SITE, id })), ...accepted];
    const missing = all.filter((e) => !ledger.has(TOPICS.eventsTopic, e.site, e.id));
    expect(missing.slice(0, 5), `${missing.length} of ${all.length} acknowledged events are not in the event log`).to.deep.equal([]);

    // ... and counted in the rollups, exactly.
    const range = { from: startedAt - 10 * 60_000, to: Date.now() + 10 * 60_000 };
    const reader = watchClient(await h.client('tcp'), 'reader');
    const totals = async (site: string) => (await reader.request<{ totals: { pageviews: number; events: number } }>('query.totals', { site, ...range })).totals;
    const expected: Record<string, { pageviews: number; events: number }> = { [CONTROL_SITE]: { pageviews: control.acked, events: 0 } };
    for (const [site, c] of expectedCounts) expected[site] = c;
    const actual = async () => {
      const out: Record<string, { pageviews: number; events: number }> = {};
      for (const site of Object.keys(expected)) {
        const t = await totals(site);
        out[site] = { pageviews: t.pageviews, events: t.events };
      }
      return out;
    };
    await waitFor(async () => JSON.stringify(await actual()) === JSON.stringify(expected), { what: 'rollups to match the acknowledged events', deadlineMs: 20_000 })
      .catch(async () => expect(await actual()).to.deep.equal(expected));
    expect(ledger.count(TOPICS.deadLetterTopic), 'accepted events dead-lettered by the aggregator').to.equal(0);

    // No hostile connection is left open on the server: only our clients remain.
    await waitFor(async () => (await h.metric('sluice_gateway_connections')) === openClients, { what: 'hostile connections released' })
      .catch(async () => expect(await h.metric('sluice_gateway_connections'), 'connections the server still holds').to.equal(openClients));

    expect(pollutionSince(prototypesBefore)).to.deep.equal([]);
    expect(trap.errors.map((e) => String(e)), 'unhandled rejections or uncaught exceptions').to.deep.equal([]);

    gc();
    heapAfter = process.memoryUsage().heapUsed;
    expect(heapAfter - heapBefore, `heap grew from ${(heapBefore / 2 ** 20).toFixed(0)} MiB to ${(heapAfter / 2 ** 20).toFixed(0)} MiB`).to.be.below(HEAP_GROWTH_LIMIT_BYTES);
  });
});
