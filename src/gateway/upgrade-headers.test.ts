import { expect } from 'chai';
import {
  MAX_FORWARDED_FOR_LENGTH,
  MAX_USER_AGENT_LENGTH,
  distinctHeaders,
  normaliseOrigin,
  readUpgradeHeaders,
  type DistinctHeaders,
} from './upgrade-headers.js';

/** Headers as Node hands them over: lower-case names, each value sent once unless an array. */
function headers(h: Record<string, string | string[]>): DistinctHeaders {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k, Array.isArray(v) ? v : [v]]));
}

/** A UTF-8 string as Node's parser reads its bytes: one latin1 character per byte. */
const asHeaderBytes = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');

describe('upgrade headers', () => {
  describe('Origin', () => {
    it('normalises a bare http(s) origin to lower-case scheme://host[:port] without a default port', () => {
      expect(normaliseOrigin('https://shop.example')).to.equal('https://shop.example');
      expect(normaliseOrigin('HTTPS://Shop.Example')).to.equal('https://shop.example');
      expect(normaliseOrigin('https://shop.example:443')).to.equal('https://shop.example');
      expect(normaliseOrigin('http://shop.example:80')).to.equal('http://shop.example');
      expect(normaliseOrigin('http://localhost:8080')).to.equal('http://localhost:8080');
      expect(normaliseOrigin('https://[2001:DB8::1]:8443')).to.equal('https://[2001:db8::1]:8443');
      expect(normaliseOrigin('https://xn--bcher-kva.example')).to.equal('https://xn--bcher-kva.example');
      expect(normaliseOrigin(' https://shop.example ')).to.equal('https://shop.example');
    });

    it('refuses anything but a bare http(s) origin', () => {
      for (const value of [
        'null', '', 'shop.example', 'ftp://shop.example', 'file://', 'chrome-extension://abcdef',
        'https://shop.example/', 'https://shop.example/path', 'https://shop.example?x=1', 'https://shop.example#x',
        'https://user:pw@shop.example', 'https://user@shop.example', 'https://', 'https://shop.example:99999',
        'https://shop example', 'https://shop.example\\evil', 'https://%73hop.example', `https://${'a'.repeat(300)}.example`,
        asHeaderBytes('https://bücher.example'), 'https://shop.example, https://evil.example',
      ]) {
        expect(normaliseOrigin(value), JSON.stringify(value)).to.equal(undefined);
      }
    });

    it('takes only an Origin sent once', () => {
      expect(readUpgradeHeaders(headers({ origin: 'https://a.example' }), 'none').origin).to.equal('https://a.example');
      expect(readUpgradeHeaders(headers({ origin: ['https://a.example', 'https://b.example'] }), 'none').origin).to.equal(undefined);
      expect(readUpgradeHeaders(headers({}), 'none')).to.not.have.property('origin');
    });
  });

  describe('Do-Not-Track and Global Privacy Control', () => {
    it('reads DNT: 1 and Sec-GPC: 1 as signals, and nothing else', () => {
      expect(readUpgradeHeaders(headers({ dnt: '1' }), 'none')).to.deep.equal({ dnt: true });
      expect(readUpgradeHeaders(headers({ 'sec-gpc': '1' }), 'none')).to.deep.equal({ gpc: true });
      expect(readUpgradeHeaders(headers({ dnt: ' 1 ', 'sec-gpc': '1' }), 'none')).to.deep.equal({ dnt: true, gpc: true });
      for (const value of ['0', '', 'yes', 'true', '11', '1'.padEnd(100, ' ') + 'x', 'null']) {
        expect(readUpgradeHeaders(headers({ dnt: value, 'sec-gpc': value }), 'none'), JSON.stringify(value)).to.deep.equal({});
      }
    });

    it('honours a signal among repeated values', () => {
      expect(readUpgradeHeaders(headers({ dnt: ['0', '1'] }), 'none').dnt).to.equal(true);
      expect(readUpgradeHeaders(headers({ dnt: '0, 1' }), 'none').dnt).to.equal(true);
      expect(readUpgradeHeaders(headers({ dnt: ['0', '0'] }), 'none').dnt).to.equal(undefined);
    });
  });

  describe('user agent and forwarded-for', () => {
    it('keeps them as sent, cut at their bounds', () => {
      const fields = readUpgradeHeaders(headers({ 'user-agent': 'Mozilla/5.0', 'x-forwarded-for': '203.0.113.9, 10.0.0.1' }), 'none');
      expect(fields).to.deep.equal({ userAgent: 'Mozilla/5.0', forwardedFor: '203.0.113.9, 10.0.0.1' });
      const long = readUpgradeHeaders(headers({ 'user-agent': 'U'.repeat(10_000), 'x-forwarded-for': `203.0.113.9${', 10.0.0.1'.repeat(1000)}` }), 'none');
      expect(long.userAgent).to.have.length(MAX_USER_AGENT_LENGTH);
      expect(long.forwardedFor).to.have.length(MAX_FORWARDED_FOR_LENGTH);
      expect(long.forwardedFor!.startsWith('203.0.113.9, ')).to.equal(true);
    });
  });

  describe('CDN geo headers', () => {
    const all = headers({
      'cf-ipcountry': 'DE', 'cf-region-code': 'BE', 'cf-ipcity': 'Berlin',
      'x-vercel-ip-country': 'US', 'x-vercel-ip-country-region': 'CA', 'x-vercel-ip-city': 'San%20Francisco',
      'cloudfront-viewer-country': 'JP', 'cloudfront-viewer-country-region': '13', 'cloudfront-viewer-city': 'Tokyo',
    });

    it('reads only the trusted CDN\'s headers, and none by default', () => {
      expect(readUpgradeHeaders(all, 'none')).to.deep.equal({});
      expect(readUpgradeHeaders(all, 'cloudflare')).to.deep.equal({ country: 'DE', region: 'BE', city: 'Berlin' });
      expect(readUpgradeHeaders(all, 'vercel')).to.deep.equal({ country: 'US', region: 'CA', city: 'San Francisco' });
      expect(readUpgradeHeaders(all, 'cloudfront')).to.deep.equal({ country: 'JP', region: '13', city: 'Tokyo' });
    });

    it('decodes percent-encoded and raw UTF-8 city names', () => {
      expect(readUpgradeHeaders(headers({ 'x-vercel-ip-country': 'BR', 'x-vercel-ip-city': 'S%C3%A3o%20Paulo' }), 'vercel').city).to.equal('São Paulo');
      expect(readUpgradeHeaders(headers({ 'cloudfront-viewer-country': 'CH', 'cloudfront-viewer-city': asHeaderBytes('Zürich') }), 'cloudfront').city).to.equal('Zürich');
    });

    it('drops malformed values, field by field, without throwing', () => {
      const cases: Array<[Record<string, string | string[]>, Record<string, string>]> = [
        [{ 'cf-ipcountry': 'T1', 'cf-ipcity': 'Somewhere' }, { city: 'Somewhere' }], // Tor: no country
        [{ 'cf-ipcountry': 'DEU' }, {}],
        [{ 'cf-ipcountry': ['DE', 'FR'] }, {}],
        [{ 'cf-ipcountry': 'XX', 'cf-region-code': 'CA' }, { country: 'XX' }], // a region of no known country
        [{ 'cf-region-code': 'CA', 'cf-ipcity': 'Toronto' }, { city: 'Toronto' }],
        [{ 'cf-ipcountry': 'DE', 'cf-ipcity': '%E0%A4%A' }, { country: 'DE' }], // malformed escape
        [{ 'cf-ipcountry': 'DE', 'cf-ipcity': '%FF%FE' }, { country: 'DE' }], // escapes that are not UTF-8
        [{ 'cf-ipcountry': 'DE', 'cf-ipcity': '\u00ff\u00fe' }, { country: 'DE' }], // raw bytes that are not UTF-8
        [{ 'cf-ipcountry': 'DE', 'cf-ipcity': 'Ber%0Alin' }, { country: 'DE' }], // a control character once decoded
        [{ 'cf-ipcountry': 'DE', 'cf-ipcity': 'Ber\u0085lin' }, { country: 'DE' }],
        [{ 'cf-ipcountry': 'DE', 'cf-ipcity': '   ' }, { country: 'DE' }],
        [{ 'cf-ipcountry': 'DE', 'cf-ipcity': 'x'.repeat(101) }, { country: 'DE' }],
        [{ 'cf-ipcountry': 'DE', 'cf-ipcity': '%41'.repeat(10_000) }, { country: 'DE' }],
        [{ 'cf-ipcountry': 'DE', 'cf-region-code': 'y'.repeat(101), 'cf-ipcity': 'Berlin' }, { country: 'DE', city: 'Berlin' }],
        [{ 'cf-ipcountry': 'de', 'cf-region-code': 'be' }, { country: 'de', region: 'be' }], // ingest normalises case
      ];
      for (const [h, expected] of cases) expect(readUpgradeHeaders(headers(h), 'cloudflare'), JSON.stringify(h)).to.deep.equal(expected);
    });

    it('survives random header values', () => {
      // A fixed-seed generator: any failure reproduces.
      let seed = 0x5eed;
      const next = () => (seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff);
      const randomValue = () => Array.from({ length: next() % 200 }, () => String.fromCharCode(next() % 256)).join('');
      const names = ['origin', 'dnt', 'sec-gpc', 'user-agent', 'x-forwarded-for', 'cf-ipcountry', 'cf-region-code', 'cf-ipcity',
        'x-vercel-ip-country', 'x-vercel-ip-country-region', 'x-vercel-ip-city', 'cloudfront-viewer-country', 'cloudfront-viewer-city'];
      for (let i = 0; i < 500; i++) {
        const h = Object.fromEntries(names.map((n) => [n, Array.from({ length: 1 + (next() % 2) }, randomValue)]));
        for (const cdn of ['none', 'cloudflare', 'vercel', 'cloudfront'] as const) {
          const fields = readUpgradeHeaders(h, cdn);
          if (fields.origin !== undefined) expect(fields.origin).to.match(/^https?:\/\/[\x21-\x7e]+$/);
          if (fields.country !== undefined) expect(fields.country).to.match(/^[A-Za-z]{2}$/);
          for (const name of [fields.region, fields.city]) {
            if (name !== undefined) expect(name.length).to.be.within(1, 100);
            if (name !== undefined) expect(name).to.not.match(/[\u0000-\u001f\u007f-\u009f\ufffd]/);
          }
        }
      }
    });
  });

  it('reads repeated headers apart where Node keeps them apart, and from plain headers too', () => {
    expect(distinctHeaders({ headers: { dnt: '1' }, headersDistinct: { dnt: ['1'] } })).to.deep.equal({ dnt: ['1'] });
    expect(distinctHeaders({ headers: { dnt: '1', 'set-cookie': ['a', 'b'], absent: undefined } })).to.deep.equal({ dnt: ['1'], 'set-cookie': ['a', 'b'] });
  });
});
