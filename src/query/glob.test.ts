import { expect } from 'chai';
import { compileGlob } from './glob.js';

describe('compileGlob', () => {
  const cases: Array<[string, string, boolean]> = [
    ['/pricing', '/pricing', true],
    ['/pricing', '/pricing/x', false],
    ['/blog/*', '/blog/post', true],
    ['/blog/*', '/blog/a/b', false],
    ['/blog/*', '/blog/', true],
    ['/blog/**', '/blog/a/b', true],
    ['/blog/**', '/blog', false],
    ['/**/checkout', '/shop/eu/checkout', true],
    ['/**/checkout', '/checkout', false],
    ['**', '', true],
    ['/a*b*c', '/aXbYc', true],
    ['/a*b*c', '/aXbY/c', false],
    ['/a.b', '/aXb', false],
    ['/(x)?', '/(x)?', true],
  ];
  for (const [pattern, value, expected] of cases) {
    it(`${pattern} ${expected ? 'matches' : 'does not match'} ${value || '""'}`, () => {
      expect(compileGlob(pattern)(value)).to.equal(expected);
    });
  }

  it('returns on a pattern that makes backtracking matchers explode', () => {
    // A regex `(.*a){30}b` would not return within the test timeout on this input.
    expect(compileGlob(`${'*a'.repeat(30)}b`)('a'.repeat(2000))).to.equal(false);
  });

  it('agrees with a regular-expression reference on random short patterns and values', () => {
    const alphabet = ['a', 'b', '/', '*'];
    let seed = 7;
    const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
    const word = (len: number, chars: string[]) => Array.from({ length: len }, () => chars[rnd(chars.length)]).join('');
    for (let i = 0; i < 2000; i++) {
      const pattern = word(rnd(7), alphabet);
      const value = word(rnd(8), ['a', 'b', '/']);
      const re = new RegExp(`^${pattern.replace(/\*\*+/g, '\u0001').replace(/\*/g, '[^/]*').replace(/\u0001/g, '.*')}$`);
      expect(compileGlob(pattern)(value), `${pattern} ~ ${value}`).to.equal(re.test(value));
    }
  });
});
