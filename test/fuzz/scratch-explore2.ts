import { WellKnownMimeType, encodeCompositeMetadata, encodeRoute } from 'rsocket-composite-metadata';
import { trapProcessErrors, sleep } from '../../src/gateway/transport-test-kit.js';
import { startHarness } from '../support/harness.js';
import type { LogRecord } from '../../src/ingest/event-log.js';

const route = (r: string) => encodeCompositeMetadata([[WellKnownMimeType.MESSAGE_RSOCKET_ROUTING, encodeRoute(r)]]);
const trap = trapProcessErrors();
const appended: LogRecord[] = [];
const h = await startHarness({}, { wrapEventLog: (log) => ({
  get partitions() { return log.partitions; },
  async append(topic, records) { await log.append(topic, records); if (topic === 'sluice.events' || true) appended.push(...records.map((r) => ({ ...r, topic } as LogRecord))); },
  consume: (o) => log.consume(o), close: () => log.close(),
}) });
const c = await h.client('tcp');
const now = Date.now();
const ev = (o: Record<string, unknown>) => ({ type: 'pageview', site: 'fz.example', url: 'https://fz.example/', timestamp: now, ...o });
const tries: Array<[string, unknown]> = [
  ['protoProps', { events: [ev({ props: JSON.parse('{"__proto__":"polluted","constructor":"polluted","prototype":"x","toString":"y","hasOwnProperty":1}') })] }],
  ['siteConstructor', { events: [ev({ site: 'constructor' }), ev({ site: 'prototype' }), ev({ site: 'hasOwnProperty' }), ev({ site: 'toString' }), ev({ site: 'valueOf' })] }],
  ['nameProto', { events: [ev({ type: 'event', name: '__proto__' }), ev({ type: 'event', name: 'constructor' }), ev({ url: 'https://fz.example/__proto__?utm_source=__proto__&utm_medium=constructor', referrer: 'https://__proto__/', language: '__proto__', visitor: '__proto__', id: '__proto__', title: 'constructor' })] }],
  ['topProto', JSON.parse('{"events":[{"type":"pageview","site":"fz.example","url":"https://fz.example/","__proto__":{"polluted":1}}]}')],
  ['envProto', JSON.parse('{"events":[{"type":"pageview","site":"fz.example","url":"https://fz.example/"}],"__proto__":{"polluted":1}}')],
  ['farFuture', { events: [ev({ timestamp: 8_640_000_000_000_000 }), ev({ timestamp: 0 }), ev({ timestamp: 1 })] }],
];
for (const [name, body] of tries) {
  try { const r = await c.requestRaw({ data: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), metadata: route('ingest.batch') }); console.log(name, r?.toString().slice(0, 400)); }
  catch (e) { console.log(name, 'ERR', (e as Error & { code?: string }).code, (e as Error).message.slice(0, 200)); }
}
// deep nesting
for (const [name, text] of [
  ['deepArr', '{"events":[' + '['.repeat(100_000) + ']'.repeat(100_000) + ']}'],
  ['deepObj', '{"events":[{"type":"pageview","site":"fz.example","url":"https://fz.example/","props":' + '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000) + '}]}'],
  ['deepTop', '['.repeat(100_000) + ']'.repeat(100_000)],
] as const) {
  try { const r = await c.requestRaw({ data: Buffer.from(text), metadata: route('ingest.batch') }); console.log(name, r?.toString().slice(0, 300)); }
  catch (e) { console.log(name, 'ERR', (e as Error & { code?: string }).code, (e as Error).message.slice(0, 200)); }
}
await sleep(1500);
const tot = async (site: string) => { try { return JSON.stringify((await c.request<any>('query.totals', { site, from: now - 3600_000, to: now + 60_000 })).totals); } catch (e) { return 'ERR ' + (e as Error).message; } };
for (const s of ['fz.example', 'constructor', 'prototype', 'hasOwnProperty', 'toString', 'valueOf']) console.log('totals', s, await tot(s));
for (const d of ['page', 'source']) { try { console.log(d, JSON.stringify(await c.request('query.breakdown', { site: 'fz.example', from: now - 3600_000, to: now + 60_000, dimension: d }))); } catch (e) { console.log(d, 'ERR', (e as Error).message); } }
console.log('polluted', ({} as any).polluted, Object.getOwnPropertyNames(Object.prototype).length);
console.log('appended', appended.length, [...new Set(appended.map((r: any) => r.topic))]);
await h.stop();
console.log('trap', trap.errors);
