import { expect } from 'chai';
import { LruCache, PairLruCache } from './lru-cache.js';

describe('LruCache', () => {
  it('never holds more than its capacity and keeps at least the capacity/2 most recent', () => {
    const c = new LruCache<number, number>(10);
    for (let i = 0; i < 1000; i++) {
      c.set(i, i);
      expect(c.size).to.be.at.most(10);
      for (let k = Math.max(0, i - 4); k <= i; k++) expect(c.peek(k), `${k} after ${i}`).to.equal(k);
    }
  });

  it('keeps entries that are read', () => {
    const c = new LruCache<string, number>(4);
    c.set('hot', 1);
    for (let i = 0; i < 100; i++) {
      c.set(`cold-${i}`, i);
      expect(c.get('hot')).to.equal(1);
    }
  });

  it('peek does not refresh recency', () => {
    const c = new LruCache<string, number>(4);
    c.set('a', 1);
    for (let i = 0; i < 4; i++) {
      c.peek('a');
      c.set(`x-${i}`, i);
    }
    expect(c.peek('a')).to.equal(undefined);
  });

  it('updates a value in place', () => {
    const c = new LruCache<string, number>(4);
    c.set('a', 1);
    c.set('b', 2); // 'a' and 'b' move to the previous generation
    c.set('a', 3);
    expect(c.get('a')).to.equal(3);
    expect(c.size).to.equal(2);
  });

  it('putIfAbsent stores only new keys and returns what is present', () => {
    const c = new LruCache<string, number>(4);
    expect(c.putIfAbsent('a', 1)).to.equal(undefined);
    expect(c.putIfAbsent('a', 2)).to.equal(1);
    expect(c.peek('a')).to.equal(1);
    const off = new LruCache<string, number>(0);
    expect(off.putIfAbsent('a', 1)).to.equal(undefined);
    expect(off.size).to.equal(0);
  });

  it('keeps nothing at capacity 0', () => {
    const c = new LruCache<string, number>(0);
    c.set('a', 1);
    expect(c.size).to.equal(0);
    expect(c.get('a')).to.equal(undefined);
  });

  it('deletes from either generation', () => {
    const c = new LruCache<string, number>(4);
    c.set('a', 1);
    c.set('b', 2);
    c.set('c', 3);
    expect(c.delete('a')).to.equal(true);
    expect(c.delete('c')).to.equal(true);
    expect(c.delete('zz')).to.equal(false);
    expect(c.peek('a')).to.equal(undefined);
    expect(c.peek('c')).to.equal(undefined);
    expect(c.peek('b')).to.equal(2);
  });
});

describe('PairLruCache', () => {
  it('never holds more than its capacity and keeps at least the capacity/2 most recent pairs', () => {
    const c = new PairLruCache<number>(10);
    for (let i = 0; i < 1000; i++) {
      c.set(`a${i % 7}`, `b${i}`, i);
      expect(c.size).to.be.at.most(10);
      for (let k = Math.max(0, i - 4); k <= i; k++) expect(c.get(`a${k % 7}`, `b${k}`), `${k} after ${i}`).to.equal(k);
    }
  });

  it('tells pairs apart by both keys, however they would join', () => {
    const c = new PairLruCache<string>(100);
    c.set('a', 'b\0c', 'first');
    c.set('a\0b', 'c', 'second');
    c.set('a', 'c', 'third');
    expect([c.get('a', 'b\0c'), c.get('a\0b', 'c'), c.get('a', 'c'), c.get('b', 'a')]).to.deep.equal(['first', 'second', 'third', undefined]);
  });

  it('keeps pairs that are read, updates in place, and keeps nothing at capacity 0', () => {
    const c = new PairLruCache<number>(4);
    c.set('x', 'hot', 1);
    for (let i = 0; i < 100; i++) {
      c.set('x', `cold-${i}`, i);
      expect(c.get('x', 'hot')).to.equal(1);
    }
    c.set('x', 'hot', 2);
    expect(c.get('x', 'hot')).to.equal(2);
    expect(c.size).to.be.at.most(4);
    c.clear();
    expect(c.size).to.equal(0);
    const off = new PairLruCache<number>(0);
    off.set('a', 'b', 1);
    expect(off.get('a', 'b')).to.equal(undefined);
  });
});
