import { expect } from 'chai';
import type { EnrichedEvent } from '../ingest/enriched-event.js';
import { encodeEventRecord } from '../ingest/event-record.js';
import { decodeEvent } from './decode-event.js';

const enriched: EnrichedEvent = {
  v: 2, id: 'e2', site: 's', type: 'event', name: 'signup', ts: 1_700_000_000_000, receivedAt: 1_700_000_000_250,
  host: 'a.example', path: '/b', title: 'Sign up', referrerHost: 'news.example', source: 'news.example', channel: 'referral',
  utm: { source: 'nl', medium: null, campaign: 'spring', term: null, content: null },
  browser: 'Chrome', browserVersion: '124', os: 'Linux', osVersion: '', device: 'desktop', bot: true,
  screen: { width: 1280, height: 800 }, language: 'en', props: { plan: 'pro', seats: 3 }, revenue: { amount: 19.99, currency: 'EUR' },
  visitorId: 'fedcba9876543210fedcba9876543210', country: 'DE', region: 'DE-BE', city: 'Berlin',
};

/** What the windows keep: everything but the format version, the received time, the title and the language. */
function windowFields(e: EnrichedEvent) {
  const { v: _v, receivedAt: _r, title: _t, language: _l, ...rest } = e;
  return rest;
}

const encode = (v: unknown) => Buffer.from(JSON.stringify(v));

describe('decodeEvent', () => {
  it('reads the compact version 2 records ingest writes, keeping the fields windows read', () => {
    expect(decodeEvent(encodeEventRecord(enriched))).to.deep.equal({ ok: true, event: windowFields(enriched) });
    const pageview = { ...enriched, type: 'pageview' as const, name: 'pageview', bot: false, ts: enriched.receivedAt, revenue: null, props: {} };
    expect(decodeEvent(encodeEventRecord(pageview))).to.deep.equal({ ok: true, event: windowFields(pageview) });
  });

  it('takes region and city when present, null when a record has none', () => {
    const v2 = JSON.parse(encodeEventRecord(enriched).toString()) as Record<string, unknown>;
    const { rg: _rg, ci: _ci, ...without } = v2;
    const decoded = decodeEvent(encode(without));
    expect(decoded.ok && decoded.event).to.include({ country: 'DE', region: null, city: null });
  });

  it('reads version 1 records (the whole event as JSON) that older ingests wrote', () => {
    const v1 = { ...enriched, v: 1 };
    expect(decodeEvent(encode(v1))).to.deep.equal({ ok: true, event: windowFields(enriched) });
  });

  it('gives a reason instead of throwing', () => {
    expect(decodeEvent(Buffer.from('{"id":'))).to.deep.equal({ ok: false, reason: 'invalid_json' });
    expect(decodeEvent(encode([1]))).to.deep.equal({ ok: false, reason: 'not_an_object' });
    expect(decodeEvent(encode(null))).to.deep.equal({ ok: false, reason: 'not_an_object' });
    expect(decodeEvent(encode({ ...enriched, v: 9 }))).to.deep.equal({ ok: false, reason: 'unsupported_version' });
    const v2 = JSON.parse(encodeEventRecord(enriched).toString()) as Record<string, unknown>;
    const broken: Array<[string, unknown, string]> = [
      ['id', 3, 'id'], ['s', '', 'site'], ['n', 7, 'name'], ['r', '1700000000000', 'receivedAt'], ['dt', 0.5, 'ts'],
      ['p', undefined, 'path'], ['so', null, 'source'], ['vi', undefined, 'visitorId'], ['bot', 1, 'bot'],
      ['sc', [1], 'screen'], ['rv', [1, 2], 'revenue'], ['pr', { a: {} }, 'props'],
    ];
    for (const [key, value, field] of broken) {
      expect(decodeEvent(encode({ ...v2, [key]: value })), key).to.deep.equal({ ok: false, reason: `invalid_field:${field}` });
    }
  });
});
