import { FrameTypes, serializeFrame, serializeFrameWithLength, type Frame } from 'rsocket-core';
import { WellKnownMimeType, encodeCompositeMetadata, encodeRoute, encodeBearerAuthMetadata } from 'rsocket-composite-metadata';
import { RawTcpClient, setupFrame, trapProcessErrors, sleep } from '../../src/gateway/transport-test-kit.js';
import { ADMIN_KEY, startHarness } from '../support/harness.js';

const route = (r: string) => encodeCompositeMetadata([[WellKnownMimeType.MESSAGE_RSOCKET_ROUTING, encodeRoute(r)]]);
const auth = (key: string) => encodeCompositeMetadata([[WellKnownMimeType.MESSAGE_RSOCKET_AUTHENTICATION, encodeBearerAuthMetadata(key)]]);
const M = 0x100;
const trap = trapProcessErrors();
const h = await startHarness();
const now = Date.now();
const probe = (id: number): Frame => ({ type: FrameTypes.REQUEST_RESPONSE, streamId: id, flags: M, data: Buffer.from(JSON.stringify({ site: 'x.example', from: now - 1000, to: now })), metadata: route('query.totals') } as never);
const cases: Record<string, Frame[]> = {
  setupAgain: [setupFrame({ metadata: auth(ADMIN_KEY), flags: M })],
  lease: [{ type: FrameTypes.LEASE, streamId: 0, flags: 0, ttl: 1000, requestCount: 5, metadata: undefined } as never],
  keepaliveRespond: [{ type: FrameTypes.KEEPALIVE, streamId: 0, flags: 0x80, lastReceivedPosition: 0, data: Buffer.from('hi') } as never],
  keepaliveOnStream: [{ type: FrameTypes.KEEPALIVE, streamId: 5, flags: 0x80, lastReceivedPosition: 0, data: undefined } as never],
  reqOnStream0: [{ type: FrameTypes.REQUEST_RESPONSE, streamId: 0, flags: M, data: Buffer.from('{}'), metadata: route('query.totals') } as never],
  reqEvenStream: [{ type: FrameTypes.REQUEST_RESPONSE, streamId: 2, flags: M, data: Buffer.from('{}'), metadata: route('query.totals') } as never],
  channel: [{ type: FrameTypes.REQUEST_CHANNEL, streamId: 3, flags: M, requestN: 5, data: Buffer.from('{}'), metadata: route('query.totals') } as never],
  requestNUnknown: [{ type: FrameTypes.REQUEST_N, streamId: 7, flags: 0, requestN: 3 } as never],
  requestNStream0: [{ type: FrameTypes.REQUEST_N, streamId: 0, flags: 0, requestN: 3 } as never],
  cancelUnknown: [{ type: FrameTypes.CANCEL, streamId: 9, flags: 0 } as never],
  payloadUnknown: [{ type: FrameTypes.PAYLOAD, streamId: 11, flags: 0x20 | 0x40, data: Buffer.from('{}'), metadata: undefined } as never],
  payloadStream0: [{ type: FrameTypes.PAYLOAD, streamId: 0, flags: 0x20, data: Buffer.from('{}'), metadata: undefined } as never],
  errorUnknown: [{ type: FrameTypes.ERROR, streamId: 13, flags: 0, code: 0x201, message: 'x' } as never],
  errorStream0: [{ type: FrameTypes.ERROR, streamId: 0, flags: 0, code: 0x101, message: 'bye' } as never],
  metadataPush: [{ type: FrameTypes.METADATA_PUSH, streamId: 0, flags: M, metadata: route('query.totals') } as never],
  resume: [{ type: FrameTypes.RESUME, streamId: 0, flags: 0, majorVersion: 1, minorVersion: 0, resumeToken: Buffer.from('t'), clientPosition: 0, serverPosition: 0 } as never],
  resumeOk: [{ type: FrameTypes.RESUME_OK, streamId: 0, flags: 0, clientPosition: 0 } as never],
  dupStream: [probe(15), probe(15)],
  fragmentAbandon: [{ type: FrameTypes.REQUEST_RESPONSE, streamId: 17, flags: M | 0x80, data: Buffer.from('{"si'), metadata: route('query.totals') } as never],
  fragmentThenOther: [{ type: FrameTypes.REQUEST_RESPONSE, streamId: 19, flags: M | 0x80, data: Buffer.from('{"si'), metadata: route('query.totals') } as never, { type: FrameTypes.REQUEST_FNF, streamId: 19, flags: 0, data: Buffer.from('x'), metadata: undefined } as never],
  payloadOnReqResp: [{ ...probe(21) }, { type: FrameTypes.PAYLOAD, streamId: 21, flags: 0x20, data: Buffer.from('x'), metadata: undefined } as never],
  requestNZeroLive: [{ type: FrameTypes.REQUEST_STREAM, streamId: 23, flags: M, requestN: 0, data: Buffer.from(JSON.stringify({ site: 'x.example' })), metadata: route('live.metrics') } as never],
  requestNegativeLive: [{ type: FrameTypes.REQUEST_STREAM, streamId: 25, flags: M, requestN: 1, data: Buffer.from(JSON.stringify({ site: 'x.example' })), metadata: route('live.metrics') } as never, { type: FrameTypes.REQUEST_N, streamId: 25, flags: 0, requestN: 0 } as never],
};
const ext = (flags: number) => { const b = Buffer.alloc(11); b.writeUInt32BE(0, 0); b.writeUInt16BE((63 << 10) | flags, 4); b.writeUInt32BE(5, 6); b[10] = 0x78; return b; };
const len = (b: Buffer) => { const l = Buffer.alloc(3); l.writeUIntBE(b.length, 0, 3); return Buffer.concat([l, b]); };
for (const flags of [0, 0x200]) {
  const raw = await RawTcpClient.connect(h.ports.tcp);
  raw.send(setupFrame({ metadata: auth(ADMIN_KEY), flags: M }));
  raw.write(len(ext(flags)));
  raw.send(probe(101));
  await sleep(300);
  console.log('ext', flags, 'closed', raw.closed, JSON.stringify(raw.frames.map((f) => ({ t: f.type, s: f.streamId, c: (f as { code?: number }).code, m: (f as { message?: string }).message?.slice(0, 120) }))));
}
for (const [name, frames] of Object.entries(cases)) {
  const raw = await RawTcpClient.connect(h.ports.tcp);
  raw.send(setupFrame({ metadata: auth(ADMIN_KEY), flags: M }));
  for (const f of frames) raw.send(f);
  raw.send(probe(101));
  await sleep(300);
  console.log(name.padEnd(20), 'closed', raw.closed, JSON.stringify(raw.frames.map((f) => ({ t: f.type, s: f.streamId, c: (f as { code?: number }).code, m: (f as { message?: string }).message?.slice(0, 120), d: (f as { data?: Buffer }).data?.toString().slice(0, 60) }))));
  raw.destroy();
}
// pre-setup every type
for (const [name, frames] of Object.entries(cases)) {
  const raw = await RawTcpClient.connect(h.ports.tcp);
  for (const f of frames) raw.send(f);
  await sleep(100);
  console.log('PRE', name.padEnd(20), 'closed', raw.closed, JSON.stringify(raw.frames.map((f) => ({ t: f.type, s: f.streamId, c: (f as { code?: number }).code, m: (f as { message?: string }).message?.slice(0, 100) }))));
  raw.destroy();
}
await h.stop();
console.log('trap', trap.errors);
