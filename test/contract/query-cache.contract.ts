/** The QueryCache contract, run against every implementation. Sites are unique per test. */
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { CACHE_DAY_MS, type CacheScope, type QueryCache } from '../../src/query/query-cache.js';
import { waitFor } from '../support/wait-for.js';

export interface QueryCacheFixture {
  /** Two handles on the same cache (two processes, for a real implementation). */
  readonly a: QueryCache;
  readonly b: QueryCache;
  close(): Promise<void>;
}

const DAY0 = Date.UTC(2026, 0, 10);
const MIN = 60_000;
const TTL = 60_000;

export function queryCacheContract(name: string, setup: () => Promise<QueryCacheFixture>): void {
  describe(`QueryCache contract: ${name}`, function () {
    this.timeout(30_000);
    let fx: QueryCacheFixture;
    let site: string;
    /** Days 0..2 of the test: [DAY0, DAY0 + 3 days). */
    let scope: CacheScope;
    beforeEach(async () => {
      fx = await setup();
      site = `s-${randomUUID().slice(0, 8)}`;
      scope = { site, fromMs: DAY0, toMs: DAY0 + 3 * CACHE_DAY_MS };
    });
    afterEach(async () => fx.close());

    /** Fill an entry the way a query does: get (miss), then set with its ticket. */
    async function fill(cache: QueryCache, s: CacheScope, key: string, value: string, ttlMs = TTL): Promise<void> {
      const { value: before, ticket } = await cache.get(s, key);
      expect(before).to.equal(undefined);
      await cache.set(ticket, value, ttlMs);
    }

    it('returns what was set, to every handle, and misses other keys and sites', async () => {
      await fill(fx.a, scope, 'totals:1', '{"n":1}');
      expect((await fx.a.get(scope, 'totals:1')).value).to.equal('{"n":1}');
      expect((await fx.b.get(scope, 'totals:1')).value).to.equal('{"n":1}');
      expect((await fx.b.get(scope, 'totals:2')).value).to.equal(undefined);
      expect((await fx.b.get({ ...scope, site: `${site}-other` }, 'totals:1')).value).to.equal(undefined);
    });

    it('keeps values exactly, newlines and non-ASCII included', async () => {
      const value = JSON.stringify({ rows: [{ value: '/päge\nnext', n: 1 }] }) + '\n';
      await fill(fx.a, scope, 'k', value);
      expect((await fx.b.get(scope, 'k')).value).to.equal(value);
    });

    it('misses once a bucket of a covered day changes, on any handle', async () => {
      await fill(fx.a, scope, 'k', 'v1');
      await fx.b.invalidate(site, [DAY0 + CACHE_DAY_MS + 5 * MIN]);
      expect((await fx.a.get(scope, 'k')).value).to.equal(undefined);
      // Refilled after the change, it hits again.
      await fill(fx.a, scope, 'k', 'v2');
      expect((await fx.b.get(scope, 'k')).value).to.equal('v2');
    });

    it('covers exactly the days [from, to) touches, at both edges', async () => {
      const inner: CacheScope = { site, fromMs: DAY0 + CACHE_DAY_MS - MIN, toMs: DAY0 + 2 * CACHE_DAY_MS };
      await fill(fx.a, inner, 'edge', 'v');
      // The day before `from`'s day and the day of `to` (exclusive, a day boundary) are not covered.
      await fx.b.invalidate(site, [DAY0 - MIN, DAY0 + 2 * CACHE_DAY_MS]);
      expect((await fx.a.get(inner, 'edge')).value).to.equal('v');
      // The last minute of from's day is.
      await fx.b.invalidate(site, [DAY0 + CACHE_DAY_MS - MIN]);
      expect((await fx.a.get(inner, 'edge')).value).to.equal(undefined);
    });

    it('keeps entries when other days or other sites change', async () => {
      await fill(fx.a, scope, 'k', 'v');
      await fx.b.invalidate(site, [DAY0 + 3 * CACHE_DAY_MS, DAY0 - CACHE_DAY_MS, DAY0 + 400 * CACHE_DAY_MS]);
      await fx.b.invalidate(`${site}-other`, [DAY0 + 5 * MIN]);
      await fx.b.invalidate(site, []);
      expect((await fx.a.get(scope, 'k')).value).to.equal('v');
    });

    it('never stores a value read before a change (a stale ticket stores nothing)', async () => {
      // A query takes its ticket, reads the store; the writer writes and invalidates; the query fills.
      const { ticket } = await fx.a.get(scope, 'race');
      await fx.b.invalidate(site, [DAY0 + 2 * MIN]);
      await fx.a.set(ticket, 'stale', TTL);
      expect((await fx.a.get(scope, 'race')).value).to.equal(undefined);
      expect((await fx.b.get(scope, 'race')).value).to.equal(undefined);
    });

    it('a slow filler does not overwrite a fresher entry', async () => {
      const slow = await fx.a.get(scope, 'k');
      await fx.b.invalidate(site, [DAY0]);
      await fill(fx.b, scope, 'k', 'fresh');
      await fx.a.set(slow.ticket, 'old', TTL);
      expect((await fx.a.get(scope, 'k')).value).to.equal('fresh');
    });

    it('ranges of any length, a decade or a single minute, are cached and invalidated', async () => {
      const decade: CacheScope = { site, fromMs: DAY0 - 3650 * CACHE_DAY_MS, toMs: DAY0 + 3650 * CACHE_DAY_MS };
      const minute: CacheScope = { site, fromMs: DAY0 + 7 * MIN, toMs: DAY0 + 8 * MIN };
      const everything: CacheScope = { site, fromMs: 0, toMs: 8_640_000_000_000_000 };
      await fill(fx.a, decade, 'decade', 'd');
      await fill(fx.a, minute, 'minute', 'm');
      await fill(fx.a, everything, 'all', 'e');
      await fx.b.invalidate(site, [DAY0 + 1000 * CACHE_DAY_MS]);
      expect((await fx.a.get(decade, 'decade')).value).to.equal(undefined);
      expect((await fx.a.get(everything, 'all')).value).to.equal(undefined);
      expect((await fx.a.get(minute, 'minute')).value).to.equal('m');
      await fx.b.invalidate(site, [DAY0 + 30 * MIN]);
      expect((await fx.a.get(minute, 'minute')).value).to.equal(undefined);
    });

    it('the same key under a different scope is a different entry', async () => {
      await fill(fx.a, scope, 'k', 'v');
      expect((await fx.a.get({ ...scope, toMs: scope.toMs + 5 * CACHE_DAY_MS }, 'k')).value).to.equal(undefined);
    });

    it('expires entries after their TTL', async () => {
      await fill(fx.a, scope, 'short', 'v', 50);
      await fill(fx.a, scope, 'long', 'v', TTL);
      await waitFor(async () => (await fx.b.get(scope, 'short')).value === undefined, { what: 'entry to expire' });
      expect((await fx.b.get(scope, 'long')).value).to.equal('v');
    });
  });
}
