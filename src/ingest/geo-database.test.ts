import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../config.js';
import { writeMmdb } from '../../test/fixtures/geo/mmdb-writer.js';
import { CITY_EXPECTED, CITY_NETWORKS, writeTestDatabases, type TestDatabases } from '../../test/fixtures/geo/test-databases.js';
import { locationOfRecord, openGeoDatabase } from './geo-database.js';

describe('GeoIP database', () => {
  let dbs: TestDatabases;

  before(() => {
    dbs = writeTestDatabases();
  });

  after(() => {
    dbs.remove();
  });

  it('looks IPv4 and IPv6 addresses up in a City database with the maxmind reader', () => {
    const db = openGeoDatabase(dbs.city);
    for (const [ip, expected] of CITY_EXPECTED) {
      const found = db.lookup(ip);
      expect(found === null ? null : [found.country, found.region, found.city], ip).to.deep.equal(expected);
    }
    expect(db.description).to.equal('Sluice-Test-City, built 2024-05-01, IPv6');
  });

  it('answers the same for a repeated address and for two networks of one record', () => {
    const db = openGeoDatabase(dbs.city, { cacheSize: 4 });
    const first = db.lookup('203.0.113.7');
    expect(db.lookup('203.0.113.7')).to.deep.equal(first);
    expect(db.lookup('203.0.113.190')).to.deep.equal(first);
    // Past the cache's size, records are decoded again and still give the same location.
    for (const [ip] of CITY_EXPECTED) db.lookup(ip);
    expect(db.lookup('203.0.113.7')).to.deep.equal(first);
  });

  it('keeps what wrap makes of each location', () => {
    let made = 0;
    const db = openGeoDatabase(dbs.city, { wrap: (g) => ({ label: `${g.country}/${g.city}`, n: ++made }) });
    expect(db.lookup('81.2.69.160')).to.deep.equal({ label: 'GB/London', n: 1 });
    expect(db.lookup('81.2.69.1')).to.deep.equal({ label: 'GB/London', n: 1 });
    expect(db.lookup('10.1.1.1')).to.equal(null);
    expect(made).to.equal(1);
  });

  it('reads Country databases with an IPv4 tree, where IPv6 addresses have no location', () => {
    const db = openGeoDatabase(dbs.country);
    expect(db.lookup('81.2.69.160')).to.deep.equal({ country: 'GB', region: null, city: null });
    expect(db.lookup('198.51.100.1')).to.deep.equal({ country: 'DE', region: null, city: null });
    expect(db.lookup('2001:db8:1::1')).to.equal(null);
  });

  it('opens a database whose type says it holds locations besides ISP data', () => {
    const path = join(dbs.dir, 'location-isp.mmdb');
    writeFileSync(path, writeMmdb({ ipVersion: 6, databaseType: 'DBIP-Location-ISP', networks: CITY_NETWORKS }));
    expect(openGeoDatabase(path).lookup('81.2.69.160')).to.deep.equal({ country: 'GB', region: 'GB-ENG', city: 'London' });
  });

  it('gives null, never an exception, for strings that are not addresses', () => {
    const db = openGeoDatabase(dbs.city);
    for (const s of ['', 'localhost', '81.2.69', '81.2.69.300', '::g', '81.2.69.160 ', 'x'.repeat(45)]) {
      expect(db.lookup(s), s).to.equal(null);
    }
  });

  describe('fails start-up with a message naming the setting', () => {
    const fails = (path: string, pattern: RegExp) => {
      expect(() => openGeoDatabase(path)).to.throw(ConfigError, pattern);
      try {
        openGeoDatabase(path);
      } catch (err) {
        expect((err as Error).message).to.include('ingest.geoDatabasePath').and.include(path);
      }
    };

    it('for a missing file', () => fails(join(dbs.dir, 'nope.mmdb'), /no such file/));
    it('for a directory', () => fails(dbs.dir, /cannot read the GeoIP database/));
    it('for a gzip-compressed file', () => fails(dbs.gzipped, /gzip-compressed/));
    it('for a file that is not a MaxMind DB', () => fails(dbs.garbage, /not a MaxMind DB/));
    it('for a database that holds no locations', () => fails(dbs.asn, /GeoLite2-ASN database holds no locations/));

    // A read error other than a missing file, the same for every user (root reads a file whatever
    // its mode says, so a chmod 000 file would prove nothing under CI's root).
    it('for a path it cannot read (a file used as a folder)', () => fails(join(dbs.city, 'city.mmdb'), /cannot read the GeoIP database: ENOTDIR/));
  });

  describe('record mapping', () => {
    it('takes the country code, the first subdivision as COUNTRY-CODE and the English city name', () => {
      expect(locationOfRecord({
        country: { iso_code: 'US' }, subdivisions: [{ iso_code: 'tx', names: { en: 'Texas' } }, { iso_code: 'X' }], city: { names: { en: 'Austin', de: 'Austin' } },
      })).to.deep.equal({ country: 'US', region: 'US-TX', city: 'Austin' });
    });

    it('ignores what is malformed, and gives null for a record with no location', () => {
      expect(locationOfRecord({ country: { iso_code: 'usa' }, city: { names: { de: 'Wien' } } })).to.equal(null);
      expect(locationOfRecord({ subdivisions: [{ iso_code: 'BY', names: { en: 'Bavaria' } }] })).to.deep.equal({ country: null, region: 'Bavaria', city: null });
      for (const r of [null, 'US', 7, [], { country: 'US' }, { subdivisions: 'x' }]) expect(locationOfRecord(r), JSON.stringify(r)).to.equal(null);
    });
  });
});
