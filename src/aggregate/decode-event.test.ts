import { expect } from 'chai';
import type { EnrichedEvent } from '../ingest/enriched-event.js';
import { encodeEventRecord } from '../ingest/event-record.js';
import { decodeEvent } from './decode-event.js';

const valid = {
  v: 1, id: 'e1', site: 's', type: 'pageview', name: 'pageview', ts: 1_700_000_000_000, path: '/a', source: 'Google',
  visitorId: '0123456789abcdef0123456789abcdef', bot: false, props: { plan: 'pro' },
};
const encode = (v: unknown) => Buffer.from(JSON.stringify(v));

const enriched: EnrichedEvent = {
  v: 2, id: 'e2', site: 's', type: 'event', name: 'signup', ts: 1_700_000_000_000, receivedAt: 1_700_000_000_250,
  host: 'a.example', path: '/b', title: null, referrerHost: '', source: 'Direct / None', channel: 'direct',
  utm: { source: null, medium: null, campaign: null, term: null, content: null },
  browser: 'Chrome', browserVersion: '124', os: 'Linux', osVersion: '', device: 'desktop', bot: true,
  screen: null, language: null, props: {}, revenue: null, visitorId: 'fedcba9876543210fedcba9876543210', country: null,
};

describe('decodeEvent', () => {
  it('keeps only the fields windows read', () => {
    expect(decodeEvent(encode(valid))).to.deep.equal({
      ok: true,
      event: { id: 'e1', site: 's', type: 'pageview', ts: 1_700_000_000_000, path: '/a', source: 'Google', visitorId: valid.visitorId, bot: false },
    });
  });

  it('reads the compact version 2 records ingest writes now', () => {
    expect(decodeEvent(encodeEventRecord(enriched))).to.deep.equal({
      ok: true,
      event: { id: 'e2', site: 's', type: 'event', ts: 1_700_000_000_000, path: '/b', source: 'Direct / None', visitorId: enriched.visitorId, bot: true },
    });
    const pageview = decodeEvent(encodeEventRecord({ ...enriched, type: 'pageview', name: 'pageview', bot: false, ts: enriched.receivedAt }));
    expect(pageview).to.deep.include({ ok: true });
    expect(pageview.ok && pageview.event).to.deep.include({ type: 'pageview', ts: enriched.receivedAt, bot: false });
  });

  it('gives a reason instead of throwing', () => {
    expect(decodeEvent(Buffer.from('{"id":'))).to.deep.equal({ ok: false, reason: 'invalid_json' });
    expect(decodeEvent(encode([valid]))).to.deep.equal({ ok: false, reason: 'not_an_object' });
    expect(decodeEvent(encode(null))).to.deep.equal({ ok: false, reason: 'not_an_object' });
    expect(decodeEvent(encode({ ...valid, v: 9 }))).to.deep.equal({ ok: false, reason: 'unsupported_version' });
    const broken: Array<[string, unknown]> = [
      ['id', ''], ['site', 7], ['type', 'click'], ['ts', '2024-01-01'], ['path', null],
      ['source', undefined], ['visitorId', 1], ['bot', 'no'],
    ];
    for (const [field, value] of broken) {
      expect(decodeEvent(encode({ ...valid, [field]: value })), field).to.deep.equal({ ok: false, reason: `invalid_field:${field}` });
    }
  });

  it('names the event field when a version 2 record is bad', () => {
    const v2 = JSON.parse(encodeEventRecord(enriched).toString()) as Record<string, unknown>;
    const broken: Array<[string, unknown, string]> = [
      ['id', 3, 'id'], ['s', '', 'site'], ['n', 7, 'name'], ['r', '1700000000000', 'receivedAt'], ['dt', 0.5, 'ts'],
      ['dt', Number.MAX_SAFE_INTEGER, 'ts'], ['p', undefined, 'path'], ['so', null, 'source'], ['vi', undefined, 'visitorId'], ['bot', 1, 'bot'],
    ];
    for (const [key, value, field] of broken) {
      expect(decodeEvent(encode({ ...v2, [key]: value })), key).to.deep.equal({ ok: false, reason: `invalid_field:${field}` });
    }
  });
});
