import { expect } from 'chai';
import { MemoryRollupStore } from '../adapters/memory/memory-rollup-store.js';
import { MemoryVersionDirectory } from '../adapters/memory/memory-version-directory.js';
import { emptyRollup } from '../aggregate/rollup-merge.js';
import type { Rollup } from '../aggregate/rollup.js';
import { DAY_MS, LIVE_VERSION, versionSiteKey } from './version-key.js';
import { VersionedRollupStore, liveLogicOf, segmentsOf } from './versioned-rollup-store.js';

const SITE = 'shop.example';
const D0 = Date.UTC(2024, 0, 10);

function row(site: string, tier: Rollup['tier'], bucketMs: number, pageviews: number): Rollup {
  return { ...emptyRollup(site, tier, bucketMs), totals: { pageviews, events: 0, visits: 0, bounces: 0, durationMs: 0 } };
}

describe('VersionedRollupStore', () => {
  it('cuts a range at UTC midnights, joining neighbouring days of one version', () => {
    const v = (day: number) => (day === D0 / DAY_MS + 1 || day === D0 / DAY_MS + 2 ? 4 : 0);
    expect(segmentsOf(D0 + 3_600_000, D0 + 4 * DAY_MS, v)).to.deep.equal([
      { fromMs: D0 + 3_600_000, toMs: D0 + DAY_MS, version: 0 },
      { fromMs: D0 + DAY_MS, toMs: D0 + 3 * DAY_MS, version: 4 },
      { fromMs: D0 + 3 * DAY_MS, toMs: D0 + 4 * DAY_MS, version: 0 },
    ]);
  });

  it('reads each day from its active version, as the site, and passes rollup parts through', async () => {
    const base = new MemoryRollupStore();
    const directory = new MemoryVersionDirectory();
    const read = new VersionedRollupStore(base, directory, { directoryCacheMs: 60_000 });
    await base.upsert([row(SITE, 'hour', D0, 1), row(SITE, 'hour', D0 + DAY_MS, 2), row(SITE, 'hour', D0 + 2 * DAY_MS, 3)]);
    await base.upsert([row(versionSiteKey(SITE, 7), 'hour', D0 + DAY_MS, 20), row(versionSiteKey(SITE, 7), 'hour', D0 + 2 * DAY_MS, 30)]);
    const pageviews = async () => (await read.read(SITE, 'hour', D0, D0 + 3 * DAY_MS, { dims: [] })).map((r) => [r.site, r.totals.pageviews]);
    expect(await pageviews()).to.deep.equal([[SITE, 1], [SITE, 2], [SITE, 3]]);
    await directory.switchDay({ site: SITE, day: D0 / DAY_MS + 1, fromVersion: LIVE_VERSION, toVersion: 7, logicVersion: 2, runId: 'r', action: 'reprocess', actor: 'a', atMs: 1 });
    // Cached: the switch shows once this process's cache is told.
    expect(await pageviews()).to.deep.equal([[SITE, 1], [SITE, 2], [SITE, 3]]);
    read.invalidate(SITE);
    expect(await pageviews()).to.deep.equal([[SITE, 1], [SITE, 20], [SITE, 3]]);
    // Another site is untouched; the version key is never reached by a site's own name.
    expect(await read.read('other.example', 'hour', D0, D0 + 3 * DAY_MS)).to.deep.equal([]);
  });

  it('says which logic versions stand behind a range and whether it is final', async () => {
    const base = new MemoryRollupStore();
    const directory = new MemoryVersionDirectory();
    const read = new VersionedRollupStore(base, directory, { directoryCacheMs: 0, liveLogicScope: 'g', liveLogicVersion: 5 });
    await directory.recordLiveLogic('g', { sinceMs: D0 + DAY_MS + 3_600_000, logicVersion: 3, recordedAtMs: 0 });
    await directory.switchDay({ site: SITE, day: D0 / DAY_MS, fromVersion: 0, toVersion: 1, logicVersion: 4, runId: 'r', action: 'reprocess', actor: 'a', atMs: 1 });
    await base.setWatermark(0, D0 + 2 * DAY_MS);
    expect(await read.provenance(SITE, D0, D0 + 2 * DAY_MS)).to.deep.equal({ logicVersions: [3, 4], reprocessedDays: 1, status: 'final', watermarkMs: D0 + 2 * DAY_MS });
    expect((await read.provenance(SITE, D0 + DAY_MS, D0 + 3 * DAY_MS)).status).to.equal('provisional');
    expect(liveLogicOf([], 0, 1, 9)).to.deep.equal([9]);
    expect(liveLogicOf([{ sinceMs: 10, logicVersion: 1, recordedAtMs: 0 }, { sinceMs: 20, logicVersion: 2, recordedAtMs: 0 }], 15, 25, 9)).to.deep.equal([1, 2]);
  });
});
