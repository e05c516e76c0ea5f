import { expect } from 'chai';
import type { EnrichedEvent } from './enriched-event.js';
import {
  agentPart, decodeEventObject, decodeEventRecord, encodeEventRecord, geoPart, originPart, pagePart, parseRecordObject,
  receivedAtPart, RECORD_KEYS, UTM_KEYS, visitorPart, writeEventRecord,
} from './event-record.js';
import { JsonBytesWriter } from './json-bytes-writer.js';

const T = Date.UTC(2024, 4, 1, 12, 0, 0);

/** Every field set to something other than its default. */
const full: EnrichedEvent = {
  v: 2, id: 'e-1', site: 'shop.example', type: 'event', name: 'purchase "big"', ts: T - 1_500, receivedAt: T,
  host: 'shop.example', path: '/checkout?step=2', title: 'Caisse — étape 2', referrerHost: 'google.com', source: 'Google',
  channel: 'paid_search', utm: { source: 'google', medium: 'cpc', campaign: 'brand', term: 'shoes', content: 'ad-1' },
  browser: 'Chrome', browserVersion: '124', os: 'Mac OS', osVersion: '10.15', device: 'desktop', bot: true,
  screen: { width: 1440, height: 900 }, language: 'fr-fr', props: { plan: 'pro', seats: 3, trial: false, emoji: '🎉' },
  revenue: { amount: 49.5, currency: 'EUR' }, visitorId: '0123456789abcdef0123456789abcdef', country: 'FR',
  region: 'FR-IDF', city: 'Saint-Denis',
};

/** Every field that has one at its default. */
const minimal: EnrichedEvent = {
  v: 2, id: 'e-2', site: 's', type: 'pageview', name: 'pageview', ts: T, receivedAt: T, host: 'a.example', path: '/',
  title: null, referrerHost: '', source: 'Direct / None', channel: 'direct',
  utm: { source: null, medium: null, campaign: null, term: null, content: null },
  browser: 'Unknown', browserVersion: '', os: 'Unknown', osVersion: '', device: 'other', bot: false,
  screen: null, language: null, props: {}, revenue: null, visitorId: 'ffffffffffffffffffffffffffffffff', country: null,
  region: null, city: null,
};

const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const reasonOf = (value: Buffer) => {
  const d = decodeEventRecord(value);
  return d.ok ? 'ok' : d.reason;
};

describe('event record', () => {
  it('decodes what it encodes, for every field set and for every field at its default', () => {
    const geoAlone: EnrichedEvent[] = [
      { ...minimal, country: 'US' }, { ...minimal, region: 'Bavaria' }, { ...minimal, city: 'Zürich' }, { ...minimal, country: 'US', city: 'Austin' },
    ];
    for (const e of [full, minimal, { ...full, utm: { ...minimal.utm, medium: 'email' }, ts: T + 86_400_000 * 40 }, ...geoAlone]) {
      expect(decodeEventRecord(encodeEventRecord(e))).to.deep.equal({ ok: true, event: e });
    }
  });

  it('writes the location as c, rg and ci, each left out when null', () => {
    expect(JSON.parse(encodeEventRecord(full).toString())).to.include({ c: 'FR', rg: 'FR-IDF', ci: 'Saint-Denis' });
    const cityOnly = JSON.parse(encodeEventRecord({ ...minimal, city: 'Austin' }).toString()) as Record<string, unknown>;
    expect(cityOnly.ci).to.equal('Austin');
    expect(cityOnly).to.not.have.any.keys('c', 'rg');
  });

  it('uses exactly the keys of RECORD_KEYS, so a reader of single fields can rely on the table', () => {
    const keys = new Set<string>(Object.values(RECORD_KEYS));
    const written = JSON.parse(encodeEventRecord(full).toString()) as Record<string, unknown>;
    expect(Object.keys(written).filter((k) => !keys.has(k))).to.deep.equal([]);
    // Every key but 'n' (absent for pageviews, present in full) is written for `full`.
    expect([...keys].filter((k) => !(k in written))).to.deep.equal([]);
    expect(Object.keys(written[RECORD_KEYS.utm] as object).sort()).to.deep.equal(Object.values(UTM_KEYS).sort());
  });

  it('decodes a record written before region and city existed, and one already parsed', () => {
    const before = JSON.parse(encodeEventRecord(full).toString()) as Record<string, unknown>;
    delete before.rg;
    delete before.ci;
    expect(decodeEventRecord(json(before))).to.deep.equal({ ok: true, event: { ...full, region: null, city: null } });
    const parsed = parseRecordObject(encodeEventRecord(full));
    expect(typeof parsed).to.equal('object');
    expect(decodeEventObject(parsed as Record<string, unknown>)).to.deep.equal({ ok: true, event: full });
  });

  it('leaves out fields at their default, and is far smaller than version 1', () => {
    const text = encodeEventRecord(minimal).toString();
    expect(JSON.parse(text)).to.deep.equal({
      v: 2, id: 'e-2', s: 's', r: T, h: 'a.example', p: '/', so: 'Direct / None', ch: 'direct', vi: minimal.visitorId,
    });
    const v1 = json({ ...full, v: 1 }).length;
    expect(encodeEventRecord(full).length).to.be.below(v1 * 0.8);
    expect(encodeEventRecord(minimal).length).to.be.below(json({ ...minimal, v: 1 }).length * 0.5);
  });

  it('writes the same bytes from pre-encoded parts as from the event alone', () => {
    for (const e of [full, minimal]) {
      const w = new JsonBytesWriter(16);
      writeEventRecord(w, e, {
        page: pagePart(e.host, e.path), origin: originPart(e), agent: agentPart(e), visitor: visitorPart(e.visitorId), receivedAt: receivedAtPart(e.receivedAt),
        geo: geoPart(e),
      });
      expect(w.copy()).to.deep.equal(encodeEventRecord(e));
    }
  });

  it('writes valid JSON whatever the strings hold', () => {
    const nasty = '"\\\u0000\n\ud800 </script> \u2028';
    const e: EnrichedEvent = {
      ...full, id: nasty, site: nasty, name: nasty, title: nasty, path: nasty, source: nasty, language: nasty, props: { [nasty]: nasty },
      region: nasty, city: nasty,
    };
    expect(decodeEventRecord(encodeEventRecord(e))).to.deep.equal({ ok: true, event: e });
  });

  it('still decodes version 1 records (JSON of the whole event)', () => {
    const v1: EnrichedEvent = { ...full, v: 1 };
    expect(decodeEventRecord(json(v1))).to.deep.equal({ ok: true, event: v1 });
    const v1Minimal: EnrichedEvent = { ...minimal, v: 1 };
    expect(decodeEventRecord(json(v1Minimal))).to.deep.equal({ ok: true, event: v1Minimal });
    // As older ingests wrote them: no region or city at all.
    const { region: _r, city: _c, ...older } = v1;
    expect(decodeEventRecord(json(older))).to.deep.equal({ ok: true, event: { ...v1, region: null, city: null } });
  });

  it('decodes ASCII and non-ASCII records alike, and invalid UTF-8 as the replacement character', () => {
    const ascii = { ...minimal, title: 'plain' };
    expect(decodeEventRecord(encodeEventRecord(ascii))).to.deep.equal({ ok: true, event: ascii });
    expect(decodeEventRecord(encodeEventRecord(full))).to.deep.equal({ ok: true, event: full });
    const text = encodeEventRecord({ ...minimal, title: 'ab' }).toString();
    const at = text.indexOf('ab');
    const invalid = Buffer.concat([Buffer.from(text.slice(0, at)), Buffer.from([0x61, 0xff]), Buffer.from(text.slice(at + 2))]);
    expect(decodeEventRecord(invalid)).to.deep.equal({ ok: true, event: { ...minimal, title: 'a\ufffd' } });
  });

  it('ignores keys it does not know, so later fields do not dead-letter records', () => {
    const withExtra = { ...JSON.parse(encodeEventRecord(minimal).toString()), zz: [1, 2] };
    expect(decodeEventRecord(json(withExtra))).to.deep.equal({ ok: true, event: minimal });
  });

  it('gives a reason for anything else, instead of throwing', () => {
    expect(reasonOf(Buffer.from('{"v":2,'))).to.equal('invalid_json');
    expect(reasonOf(json([1]))).to.equal('not_an_object');
    expect(reasonOf(json('text'))).to.equal('not_an_object');
    expect(reasonOf(json({ v: 3 }))).to.equal('unsupported_version');
    expect(reasonOf(json({ ...full, v: undefined }))).to.equal('unsupported_version');
    const v2 = JSON.parse(encodeEventRecord(full).toString()) as Record<string, unknown>;
    const broken: Array<[string, unknown, string]> = [
      ['id', '', 'id'], ['s', 7, 'site'], ['n', '', 'name'], ['r', 1.5, 'receivedAt'], ['r', undefined, 'receivedAt'],
      ['dt', 'soon', 'ts'], ['dt', Number.MAX_SAFE_INTEGER, 'ts'], ['h', null, 'host'], ['p', 1, 'path'], ['ti', null, 'title'],
      ['rh', false, 'referrerHost'], ['so', undefined, 'source'], ['ch', 'carrier_pigeon', 'channel'], ['u', 'x', 'utm'],
      ['u', { s: 1 }, 'utm'], ['b', 1, 'browser'], ['d', 'fridge', 'device'], ['bot', false, 'bot'], ['sc', [1], 'screen'],
      ['sc', { width: 1, height: 1 }, 'screen'], ['l', 5, 'language'], ['pr', { a: {} }, 'props'], ['pr', [], 'props'],
      ['rv', [1], 'revenue'], ['rv', ['1', 'EUR'], 'revenue'], ['vi', 5, 'visitorId'], ['c', true, 'country'],
      ['rg', 7, 'region'], ['rg', null, 'region'], ['ci', ['x'], 'city'], ['ci', null, 'city'],
    ];
    for (const [key, value, field] of broken) {
      expect(reasonOf(json({ ...v2, [key]: value })), `${key}=${JSON.stringify(value)}`).to.equal(`invalid_field:${field}`);
    }
    // Several wrong: the first in the table's order is named, whatever the keys' order in the record.
    const keys = ['id', 's', 'r', 'dt', 'u', 'sc', 'rv', 'h', 'p', 'ti', 'rh', 'so', 'ch', 'b', 'bv', 'o', 'ov', 'd', 'bot', 'l', 'pr', 'vi', 'c', 'rg', 'ci'];
    for (let i = 0; i < keys.length - 1; i++) {
      const wrong = Object.fromEntries([...keys.slice(i)].reverse().map((k) => [k, k === 'bot' ? false : k === 'd' ? 'fridge' : k === 'ch' ? 'x' : 1.5]));
      const only = reasonOf(json({ ...v2, [keys[i]!]: wrong[keys[i]!] }));
      expect(reasonOf(json({ ...v2, ...wrong })), keys[i]).to.equal(only);
    }
    const v1 = { ...full, v: 1 } as Record<string, unknown>;
    for (const [key, value] of [['type', 'click'], ['ts', '2024'], ['title', undefined], ['utm', null], ['bot', 'no'], ['screen', { width: 'x' }], ['region', 1], ['city', false]] as const) {
      expect(reasonOf(json({ ...v1, [key]: value })), key).to.equal(`invalid_field:${key}`);
    }
  });
});
