import { expect } from 'chai';
import { createEventIdGenerator } from './event-id.js';

describe('event ids', () => {
  const next = createEventIdGenerator();

  it('are version 4 UUIDs, as crypto.randomUUID makes them', () => {
    for (let i = 0; i < 1000; i++) {
      expect(next()).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    }
  });

  it('do not repeat, across refills of the random bytes', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 10_000; i++) seen.add(next());
    expect(seen.size).to.equal(10_000);
  });

  it('use every hex digit in every free position', () => {
    const digits = Array.from({ length: 36 }, () => new Set<string>());
    for (let i = 0; i < 5_000; i++) [...next()].forEach((c, at) => digits[at]!.add(c));
    const free = [...Array(36).keys()].filter((at) => ![8, 13, 14, 18, 19, 23].includes(at));
    for (const at of free) expect(digits[at]!.size, `position ${at}`).to.equal(16);
    expect([...digits[19]!].sort()).to.deep.equal(['8', '9', 'a', 'b']);
  });
});
