/** The RollupStore contract, run against every implementation. Sites are unique per test. */
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import type { MinuteRollup, RollupStore } from '../../src/aggregate/rollup-store.js';

export interface RollupStoreFixture {
  readonly store: RollupStore;
  close(): Promise<void>;
}

const T0 = Date.UTC(2026, 0, 1, 0, 0);

function row(site: string, minute: number, pageviews: number, extra: Partial<MinuteRollup> = {}): MinuteRollup {
  return {
    site, bucketMs: T0 + minute * 60_000, pageviews, events: pageviews % 3,
    visitors: Uint8Array.from([1, 2, 3, minute & 0xff]),
    pages: { '/': pageviews }, sources: { 'Direct / None': pageviews },
    ...extra,
  };
}

export function rollupStoreContract(name: string, setup: () => Promise<RollupStoreFixture>): void {
  describe(`RollupStore contract: ${name}`, function () {
    this.timeout(30_000);
    let fx: RollupStoreFixture;
    let site: string;
    beforeEach(async () => {
      fx = await setup();
      site = `s-${randomUUID().slice(0, 8)}`;
    });
    afterEach(async () => fx.close());

    it('reads back what was written, in bucket order, within [from, to)', async () => {
      await fx.store.upsert([row(site, 3, 30), row(site, 1, 10), row(site, 2, 20)]);
      const all = await fx.store.read(site, T0, T0 + 10 * 60_000);
      expect(all.map((r) => r.pageviews)).to.deep.equal([10, 20, 30]);
      const some = await fx.store.read(site, T0 + 60_000, T0 + 3 * 60_000);
      expect(some.map((r) => r.bucketMs)).to.deep.equal([T0 + 60_000, T0 + 2 * 60_000]);
      expect(Array.from(all[0]!.visitors)).to.deep.equal([1, 2, 3, 1]);
      expect(all[0]!.pages).to.deep.equal({ '/': 10 });
      expect(all[0]!.sources).to.deep.equal({ 'Direct / None': 10 });
    });

    it('upserts are absolute and idempotent: the same row twice equals once, the later row wins', async () => {
      await fx.store.upsert([row(site, 0, 5)]);
      await fx.store.upsert([row(site, 0, 5)]);
      expect((await fx.store.read(site, T0, T0 + 60_000)).map((r) => r.pageviews)).to.deep.equal([5]);
      await fx.store.upsert([row(site, 0, 7, { pages: { '/a': 7 } })]);
      const [r] = await fx.store.read(site, T0, T0 + 60_000);
      expect(r!.pageviews).to.equal(7);
      expect(r!.pages).to.deep.equal({ '/a': 7 });
    });

    it('never returns another site\'s rows', async () => {
      const other = `${site}-other`;
      await fx.store.upsert([row(site, 0, 1), row(other, 0, 99)]);
      const rows = await fx.store.read(site, T0, T0 + 60_000);
      expect(rows.map((r) => [r.site, r.pageviews])).to.deep.equal([[site, 1]]);
      expect(await fx.store.read(`${site}-none`, T0, T0 + 60_000)).to.deep.equal([]);
    });

    it('moves watermarks only forward and reports the lowest partition', async () => {
      await fx.store.setWatermark(0, T0 + 120_000);
      await fx.store.setWatermark(1, T0 + 60_000);
      await fx.store.setWatermark(0, T0);
      expect(await fx.store.watermark()).to.equal(T0 + 60_000);
    });
  });
}
