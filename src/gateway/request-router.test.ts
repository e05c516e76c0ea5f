import { expect } from 'chai';
import { WellKnownMimeType, encodeCompositeMetadata, encodeRoute } from 'rsocket-composite-metadata';
import { MIME } from '../../protocol/mime.js';
import { SluiceError } from '../errors.js';
import { routeOf, routeRequest } from './request-router.js';

const numeric = (route: string) => encodeCompositeMetadata([[WellKnownMimeType.MESSAGE_RSOCKET_ROUTING, encodeRoute(route)]]);
const stringForm = (route: string) => encodeCompositeMetadata([[MIME.routing, encodeRoute(route)]]);
const json = (v: unknown) => Buffer.from(JSON.stringify(v));

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).to.be.instanceOf(SluiceError);
    return (e as SluiceError).code;
  }
  throw new Error('expected a SluiceError');
}

describe('request router', () => {
  const query = { site: 'example.com', from: 0, to: 60_000 };

  it('reads the route from numeric and string MIME forms, after other entries', () => {
    expect(routeOf(numeric('query.totals'))).to.equal('query.totals');
    expect(routeOf(stringForm('query.totals'))).to.equal('query.totals');
    const mixed = encodeCompositeMetadata([['application/x-custom', Buffer.from('x')], [WellKnownMimeType.MESSAGE_RSOCKET_ROUTING, encodeRoute('live.metrics')]]);
    expect(routeOf(mixed)).to.equal('live.metrics');
  });

  it('reads each request\'s own route when the metadata repeats or alternates', () => {
    const sequence = ['ingest.events', 'ingest.events', 'query.totals', 'ingest.events', 'live.metrics', 'live.metrics'];
    expect(sequence.map((r, i) => routeOf(i % 2 ? stringForm(r) : numeric(r)))).to.deep.equal(sequence);
    const reused = Buffer.from(numeric('query.totals'));
    expect(routeOf(reused)).to.equal('query.totals');
    reused[reused.length - 1] = 0x78; // the same buffer with other bytes: 'query.totalx'
    expect(routeOf(reused)).to.equal('query.totalx');
    expect(codeOf(() => routeOf(Buffer.from([0x80])))).to.equal('METADATA_MALFORMED');
    expect(routeOf(numeric('query.totals'))).to.equal('query.totals');
  });

  it('routes a valid request to a typed body', () => {
    const r = routeRequest('requestResponse', { metadata: numeric('query.totals'), data: json(query) }, 1e6);
    expect(r.route).to.equal('query.totals');
    expect(r.body).to.deep.equal(query);
  });

  it('gives each kind of bad request its catalog code', () => {
    expect(codeOf(() => routeRequest('requestResponse', { metadata: undefined, data: json(query) }, 1e6))).to.equal('ROUTE_MISSING');
    expect(codeOf(() => routeRequest('requestResponse', { metadata: numeric('no.such'), data: json(query) }, 1e6))).to.equal('ROUTE_UNKNOWN');
    expect(codeOf(() => routeRequest('requestStream', { metadata: numeric('query.totals'), data: json(query) }, 1e6))).to.equal('ROUTE_WRONG_INTERACTION');
    expect(codeOf(() => routeRequest('requestResponse', { metadata: Buffer.from([0x80]), data: json(query) }, 1e6))).to.equal('METADATA_MALFORMED');
    expect(codeOf(() => routeRequest('requestResponse', { metadata: numeric('query.totals'), data: Buffer.from('{nope') }, 1e6))).to.equal('PAYLOAD_INVALID_JSON');
    expect(codeOf(() => routeRequest('requestResponse', { metadata: numeric('query.totals'), data: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) }, 1e6))).to.equal('PAYLOAD_INVALID_JSON');
    expect(codeOf(() => routeRequest('requestResponse', { metadata: numeric('query.totals'), data: json({ ...query, from: 'yesterday' }) }, 1e6))).to.equal('PAYLOAD_SCHEMA');
    expect(codeOf(() => routeRequest('requestResponse', { metadata: numeric('query.totals'), data: json({ ...query, extra: 1 }) }, 1e6))).to.equal('PAYLOAD_SCHEMA');
    expect(codeOf(() => routeRequest('requestResponse', { metadata: numeric('query.totals'), data: json(query) }, 10))).to.equal('PAYLOAD_TOO_LARGE');
  });

  it('reads UTF-8 beyond ASCII as UTF-8', () => {
    const event = { type: 'pageview', site: 'example.com', url: 'https://example.com/café', title: 'Ελληνικά 🎉' };
    expect(routeRequest('fireAndForget', { metadata: numeric('ingest.events'), data: json(event) }, 1e6).body).to.deep.equal(event);
  });

  it('accepts one event or a batch on ingest.events, and rejects anything else', () => {
    const event = { type: 'pageview', site: 'example.com', url: 'https://example.com/' };
    expect(routeRequest('fireAndForget', { metadata: numeric('ingest.events'), data: json(event) }, 1e6).route).to.equal('ingest.events');
    expect(routeRequest('fireAndForget', { metadata: numeric('ingest.events'), data: json({ events: [event] }) }, 1e6).route).to.equal('ingest.events');
    expect(codeOf(() => routeRequest('fireAndForget', { metadata: numeric('ingest.events'), data: json([event]) }, 1e6))).to.equal('PAYLOAD_SCHEMA');
    expect(codeOf(() => routeRequest('fireAndForget', { metadata: numeric('ingest.events'), data: json({ events: [] }) }, 1e6))).to.equal('PAYLOAD_SCHEMA');
  });
});
