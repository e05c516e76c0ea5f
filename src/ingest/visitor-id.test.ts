import { expect } from 'chai';
import { MAX_USER_AGENT_LENGTH } from './user-agent.js';
import { createVisitorIdHasher, utcDate } from './visitor-id.js';

const IP = '203.0.113.42';
const UA = 'Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0';
const DAY1_NOON = Date.UTC(2024, 4, 1, 12, 0, 0);
const DAY1_LAST_MS = Date.UTC(2024, 4, 1, 23, 59, 59, 999);
const DAY2_FIRST_MS = Date.UTC(2024, 4, 2, 0, 0, 0, 0);

describe('visitor-id', () => {
  const hash = createVisitorIdHasher('test-secret');

  it('is 32 hex characters', () => {
    expect(hash('site-a', undefined, IP, UA, DAY1_NOON)).to.match(/^[0-9a-f]{32}$/);
  });

  it('is stable within a UTC day', () => {
    const morning = hash('site-a', undefined, IP, UA, Date.UTC(2024, 4, 1, 0, 0, 0));
    expect(hash('site-a', undefined, IP, UA, DAY1_NOON)).to.equal(morning);
    expect(hash('site-a', undefined, IP, UA, DAY1_LAST_MS)).to.equal(morning);
  });

  it('changes at UTC midnight', () => {
    expect(hash('site-a', undefined, IP, UA, DAY2_FIRST_MS)).to.not.equal(hash('site-a', undefined, IP, UA, DAY1_LAST_MS));
    // and is stable again within the new day, also after going back and forth
    const day2 = hash('site-a', undefined, IP, UA, DAY2_FIRST_MS);
    hash('site-a', undefined, IP, UA, DAY1_NOON);
    expect(hash('site-a', undefined, IP, UA, DAY2_FIRST_MS + 3_600_000)).to.equal(day2);
  });

  it('hashes only the first MAX_USER_AGENT_LENGTH characters of the user agent', () => {
    const long = `${UA} `.padEnd(MAX_USER_AGENT_LENGTH, 'x');
    const base = hash('site-a', undefined, IP, long, DAY1_NOON);
    expect(hash('site-a', undefined, IP, `${long}${'y'.repeat(15_000)}`, DAY1_NOON)).to.equal(base);
    expect(hash('site-a', undefined, IP, `${long.slice(0, -1)}y`, DAY1_NOON)).to.not.equal(base);
    // Uncached, the same: the cut is part of the hash input, not only of the cache key.
    const fresh = createVisitorIdHasher('test-secret', 0);
    expect(fresh('site-a', undefined, IP, `${long}${'z'.repeat(100)}`, DAY1_NOON)).to.equal(base);
  });

  it('differs across sites', () => {
    expect(hash('site-a', undefined, IP, UA, DAY1_NOON)).to.not.equal(hash('site-b', undefined, IP, UA, DAY1_NOON));
  });

  it('differs by IP and by user agent', () => {
    const base = hash('site-a', undefined, IP, UA, DAY1_NOON);
    expect(hash('site-a', undefined, '203.0.113.43', UA, DAY1_NOON)).to.not.equal(base);
    expect(hash('site-a', undefined, IP, `${UA} x`, DAY1_NOON)).to.not.equal(base);
  });

  it('uses the client hint instead of IP and user agent when given', () => {
    const a = hash('site-a', 'user-123', IP, UA, DAY1_NOON);
    expect(hash('site-a', 'user-123', '198.51.100.7', 'other', DAY1_NOON)).to.equal(a);
    expect(hash('site-a', 'user-124', IP, UA, DAY1_NOON)).to.not.equal(a);
  });

  it('never contains the IP or the hint', () => {
    const id = hash('site-a', undefined, IP, UA, DAY1_NOON);
    expect(id).to.not.include(IP);
    expect(id).to.not.include(Buffer.from(IP).toString('hex'));
    const hinted = hash('site-a', 'abc', IP, UA, DAY1_NOON);
    expect(hinted).to.not.include(Buffer.from('abc').toString('hex'));
  });

  it('depends on the secret; an empty secret is random per hasher', () => {
    const other = createVisitorIdHasher('another-secret');
    expect(other('site-a', undefined, IP, UA, DAY1_NOON)).to.not.equal(hash('site-a', undefined, IP, UA, DAY1_NOON));
    const r1 = createVisitorIdHasher('');
    const r2 = createVisitorIdHasher('');
    expect(r1('site-a', undefined, IP, UA, DAY1_NOON)).to.equal(r1('site-a', undefined, IP, UA, DAY1_NOON));
    expect(r1('site-a', undefined, IP, UA, DAY1_NOON)).to.not.equal(r2('site-a', undefined, IP, UA, DAY1_NOON));
  });

  it('names UTC days', () => {
    expect(utcDate(DAY1_LAST_MS)).to.equal('2024-05-01');
    expect(utcDate(DAY2_FIRST_MS)).to.equal('2024-05-02');
  });
});
