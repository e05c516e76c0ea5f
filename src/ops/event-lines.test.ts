import { expect } from 'chai';
import { CSV_COLUMNS, csvRowOf, importId, parseEventLines, wireEventOf } from './event-lines.js';
import { enriched } from './ops-test-kit.js';

describe('event lines (import and export)', () => {
  const archived = enriched('shop.example', 1_700_000_000_000, {
    id: 'e-1', type: 'event', name: 'purchase', path: '/cart?step=2', referrerHost: 'news.example.org', title: 'Cart, "final"',
    utm: { source: 'mail', medium: null, campaign: 'spring, sale', term: null, content: null }, screen: { width: 1280, height: 800 },
    language: 'de-DE', props: { plan: 'pro', seats: 3, trial: false }, revenue: { amount: 49.5, currency: 'EUR' },
    visitorId: 'a'.repeat(32), country: 'DE', region: 'DE-BE', city: 'Berlin',
  });

  it('exports an archived event as the wire event a source sends, bots left out, anonymous as dnt', () => {
    expect(wireEventOf(archived)).to.deep.equal({
      id: 'e-1', type: 'event', name: 'purchase', site: 'shop.example', timestamp: 1_700_000_000_000, url: 'https://shop.example/cart?step=2',
      referrer: 'https://news.example.org/', title: 'Cart, "final"', utm_source: 'mail', utm_campaign: 'spring, sale',
      screen: { width: 1280, height: 800 }, language: 'de-DE', props: { plan: 'pro', seats: 3, trial: false },
      revenue: { amount: 49.5, currency: 'EUR' }, visitor: 'a'.repeat(32), geo: { country: 'DE', region: 'DE-BE', city: 'Berlin' },
    });
    expect(wireEventOf({ ...archived, bot: true })).to.equal(null);
    const anonymous = wireEventOf({ ...archived, visitorId: '' })!;
    expect(anonymous).to.include({ dnt: true });
    expect(anonymous).to.not.have.property('visitor');
  });

  it('reads back what it writes, as NDJSON and as CSV (quotes, commas, newlines, props)', () => {
    const wire = wireEventOf(archived)!;
    const multiline = { ...wire, id: 'e-2', title: 'two\nlines' };
    const ndjson = `${JSON.stringify(wire)}\n\n${JSON.stringify(multiline)}\n`;
    expect([...parseEventLines(ndjson, 'ndjson')].map((l) => [l.line, l.event])).to.deep.equal([[1, wire], [3, multiline]]);
    const csv = [CSV_COLUMNS.join(','), csvRowOf(wire), csvRowOf(multiline)].join('\r\n');
    const parsed = [...parseEventLines(csv, 'csv')];
    expect(parsed.map((l) => l.line)).to.deep.equal([2, 3]);
    expect(parsed.map((l) => l.event)).to.deep.equal([wire, multiline]);
  });

  it('derives the same id from the same line, another from another, and requires a timestamp', () => {
    const line = JSON.stringify({ type: 'pageview', site: 'a.example', url: 'https://a.example/', timestamp: 5 });
    const [a] = [...parseEventLines(line, 'ndjson')];
    const [b] = [...parseEventLines(line, 'ndjson')];
    expect(a!.event!.id).to.equal(b!.event!.id).and.to.equal(importId('a.example', line));
    expect(a!.event!.id!.length).to.be.at.most(64);
    const [other] = [...parseEventLines(line, 'ndjson', 'b.example')];
    expect(other!.event!.site).to.equal('b.example');
    expect(other!.event!.id).to.not.equal(a!.event!.id);
    const [noTime] = [...parseEventLines(JSON.stringify({ type: 'pageview', site: 'a.example', url: 'https://a.example/' }), 'ndjson')];
    expect(noTime!.error).to.match(/timestamp/);
    expect([...parseEventLines('{nope\n[1]', 'ndjson')].map((l) => l.error)).to.deep.equal(['not valid JSON', 'not a JSON object']);
    expect([...parseEventLines('id,colour\n1,red', 'csv')][0]!.error).to.match(/unknown column/);
    expect([...parseEventLines('timestamp,url\nsoon,https://a.example/', 'csv')][0]!.error).to.match(/not a number/);
  });
});
