/** The LiveBus contract, run against every implementation. Sites are unique per test. */
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import type { BucketsChanged, LiveBus } from '../../src/query/live-bus.js';
import { waitFor } from '../support/wait-for.js';

export interface LiveBusFixture {
  /** Two handles on the same bus (two processes, for a real implementation). */
  readonly a: LiveBus;
  readonly b: LiveBus;
  close(): Promise<void>;
}

export function liveBusContract(name: string, setup: () => Promise<LiveBusFixture>): void {
  describe(`LiveBus contract: ${name}`, function () {
    this.timeout(30_000);
    let fx: LiveBusFixture;
    let site: string;
    beforeEach(async () => {
      fx = await setup();
      site = `s-${randomUUID().slice(0, 8)}`;
    });
    afterEach(async () => fx.close());

    it('delivers a notice to every subscriber of the site, once each', async () => {
      const got1: BucketsChanged[] = [];
      const got2: BucketsChanged[] = [];
      await fx.b.subscribe(site, (n) => got1.push(n));
      await fx.b.subscribe(site, (n) => got2.push(n));
      await fx.a.publish({ site, buckets: [1, 2] });
      await waitFor(() => got1.length === 1 && got2.length === 1, { what: 'both subscribers' });
      expect(got1[0]).to.deep.equal({ site, buckets: [1, 2] });
      await fx.a.publish({ site, buckets: [3] });
      await waitFor(() => got1.length === 2, { what: 'second notice' });
      expect(got2.map((n) => n.buckets)).to.deep.equal([[1, 2], [3]]);
    });

    it('never delivers another site\'s notices and stops after unsubscribe', async () => {
      const got: BucketsChanged[] = [];
      const unsubscribe = await fx.b.subscribe(site, (n) => got.push(n));
      await fx.a.publish({ site: `${site}-other`, buckets: [9] });
      await fx.a.publish({ site, buckets: [1] });
      await waitFor(() => got.length === 1, { what: 'own notice' });
      unsubscribe();
      await fx.a.publish({ site, buckets: [2] });
      // A marker on a second subscription proves the bus delivered past the unsubscribed point.
      const marker: BucketsChanged[] = [];
      await fx.b.subscribe(site, (n) => marker.push(n));
      await fx.a.publish({ site, buckets: [3] });
      await waitFor(() => marker.length === 1, { what: 'marker' });
      expect(got.map((n) => n.buckets)).to.deep.equal([[1]]);
    });
  });
}
