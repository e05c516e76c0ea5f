import { expect } from 'chai';
import { decodeEvent } from './decode-event.js';

const valid = {
  v: 1, id: 'e1', site: 's', type: 'pageview', name: 'pageview', ts: 1_700_000_000_000, path: '/a', source: 'Google',
  visitorId: '0123456789abcdef0123456789abcdef', bot: false, props: { plan: 'pro' },
};
const encode = (v: unknown) => Buffer.from(JSON.stringify(v));

describe('decodeEvent', () => {
  it('keeps only the fields windows read', () => {
    expect(decodeEvent(encode(valid))).to.deep.equal({
      ok: true,
      event: { id: 'e1', site: 's', type: 'pageview', ts: 1_700_000_000_000, path: '/a', source: 'Google', visitorId: valid.visitorId, bot: false },
    });
  });

  it('gives a reason instead of throwing', () => {
    expect(decodeEvent(Buffer.from('{"id":'))).to.deep.equal({ ok: false, reason: 'invalid_json' });
    expect(decodeEvent(encode([valid]))).to.deep.equal({ ok: false, reason: 'not_an_object' });
    expect(decodeEvent(encode(null))).to.deep.equal({ ok: false, reason: 'not_an_object' });
    const broken: Array<[string, unknown]> = [
      ['id', ''], ['site', 7], ['type', 'click'], ['ts', '2024-01-01'], ['path', null],
      ['source', undefined], ['visitorId', 1], ['bot', 'no'],
    ];
    for (const [field, value] of broken) {
      expect(decodeEvent(encode({ ...valid, [field]: value })), field).to.deep.equal({ ok: false, reason: `invalid_field:${field}` });
    }
  });
});
