import { expect } from 'chai';
import { geoFromHint, type GeoHint } from './geo-location.js';

const place = (hint: GeoHint, strict = true) => {
  const r = geoFromHint(hint, strict);
  if (!r.ok) throw new Error(r.message);
  return r.geo === null ? null : [r.geo.country, r.geo.region, r.geo.city];
};

describe('geo hint', () => {
  it('spells countries and region codes in upper case, and keeps names as given', () => {
    expect(place({ country: 'us', region: 'us-ca', city: 'San Francisco' })).to.deep.equal(['US', 'US-CA', 'San Francisco']);
    expect(place({ country: 'DE', region: 'Bayern', city: ' München ' })).to.deep.equal(['DE', 'Bayern', 'München']);
  });

  it('prefixes a bare subdivision code with the country, as the GeoIP database spells it', () => {
    expect(place({ country: 'US', region: 'ca' })).to.deep.equal(['US', 'US-CA', null]);
    expect(place({ country: 'JP', region: '13' })).to.deep.equal(['JP', 'JP-13', null]);
    // Without a country, a short region is only a name.
    expect(place({ region: 'CA' })).to.deep.equal([null, 'CA', null]);
  });

  it('takes the country from a region code when the hint has none', () => {
    expect(place({ region: 'GB-ENG', city: 'London' })).to.deep.equal(['GB', 'GB-ENG', 'London']);
  });

  it('refuses a region code of another country in an event hint, and drops it from a connection hint', () => {
    const r = geoFromHint({ country: 'DE', region: 'US-CA' }, true);
    expect(r).to.deep.include({ ok: false, path: '/geo/region' });
    expect(!r.ok && r.message).to.include('US-CA').and.include('DE');
    expect(place({ country: 'DE', region: 'US-CA', city: 'Berlin' }, false)).to.deep.equal(['DE', null, 'Berlin']);
  });

  it('tells nothing for unknown markers and empty values, so the next source is asked', () => {
    expect(place({})).to.equal(null);
    expect(place({ country: 'XX' })).to.equal(null);
    expect(place({ country: 'zz', region: '  ', city: '' })).to.equal(null);
    expect(place({ country: 'XX', city: 'Paris' })).to.deep.equal([null, null, 'Paris']);
  });

  it('ignores malformed fields of a connection hint', () => {
    expect(place({ country: 'T1', region: 'a\u0000b', city: 'x'.repeat(101) }, false)).to.equal(null);
    expect(place({ country: 'USA', city: 'Austin' }, false)).to.deep.equal([null, null, 'Austin']);
  });
});
