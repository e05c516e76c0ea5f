import { expect } from 'chai';
import { MemoryReprocessJournal } from '../adapters/memory/memory-reprocess-journal.js';
import { MemoryRawArchive } from '../adapters/memory/memory-raw-archive.js';
import { MemoryRollupStore } from '../adapters/memory/memory-rollup-store.js';
import { MemoryVersionDirectory } from '../adapters/memory/memory-version-directory.js';
import { MemoryLiveBus } from '../adapters/memory/memory-live-bus.js';
import type { Rollup } from '../aggregate/rollup.js';
import type { RollupStore } from '../aggregate/rollup-store.js';
import type { BucketsChanged } from '../query/live-bus.js';
import { ARCHIVE_ALWAYS_COMPLETE } from './archive-completeness.js';
import { isOpsError } from './ops-errors.js';
import { FAULTY_LOGIC, FIXED_LOGIC, MINUTE_MS, liveAggregate, snapshot, traffic } from './ops-test-kit.js';
import { ReprocessRunner, type ReprocessRunnerDeps, type RunProgress } from './reprocess-runner.js';
import { DAY_MS, LIVE_VERSION, versionSiteKey } from './version-key.js';
import { VersionedRollupStore } from './versioned-rollup-store.js';

const SITE = 'shop.example';
const DAY0 = Date.UTC(2024, 4, 10);
const DAYS = 3;
const LIVE_RULES = { allowedLatenessMs: 5 * MINUTE_MS, maxOutOfOrderMs: 2_000 };

/** A store whose upserts fail while `failing()` says so: a crash mid-run. */
class FailingStore implements RollupStore {
  failing: () => boolean = () => false;
  constructor(private readonly inner: RollupStore) {}
  async upsert(rows: readonly Rollup[]): Promise<void> {
    if (this.failing()) throw new Error('store down');
    return this.inner.upsert(rows);
  }
  read: RollupStore['read'] = (...a) => this.inner.read(...a);
  setWatermark: RollupStore['setWatermark'] = (...a) => this.inner.setWatermark(...a);
  watermark: RollupStore['watermark'] = () => this.inner.watermark();
  partitionWatermark: RollupStore['partitionWatermark'] = (...a) => this.inner.partitionWatermark(...a);
  saveCheckpoint: RollupStore['saveCheckpoint'] = (...a) => this.inner.saveCheckpoint(...a);
  loadCheckpoint: RollupStore['loadCheckpoint'] = (...a) => this.inner.loadCheckpoint(...a);
  close: RollupStore['close'] = () => this.inner.close();
}

describe('ReprocessRunner (embedded seams)', function () {
  this.timeout(60_000);
  // Two days of traffic and the first hours of a third, some arriving hours late (late lane).
  const events = traffic({ seed: 7, site: SITE, fromMs: DAY0 + 20 * 3_600_000, toMs: DAY0 + 2 * DAY_MS + 6 * 3_600_000, count: 4_000, maxOutOfOrderMs: 2_000, lateShare: 0.02 });
  let base: MemoryRollupStore;
  let store: FailingStore;
  let archive: MemoryRawArchive;
  let directory: MemoryVersionDirectory;
  let journal: MemoryReprocessJournal;
  let bus: MemoryLiveBus;
  let read: VersionedRollupStore;
  let expected: MemoryRollupStore;
  let liveSnapshot: Map<string, string>;
  let notices: BucketsChanged[];

  const runner = (over: Partial<ReprocessRunnerDeps> = {}) => new ReprocessRunner({
    store, archive, directory, journal, bus, readStore: read, logic: FIXED_LOGIC, sessionTimeoutMs: 30 * MINUTE_MS, maxBreakdownKeys: 200,
    completeness: ARCHIVE_ALWAYS_COMPLETE, rawRetentionMs: null, noticeRepeatMs: 0, writeBatchRows: 50, ...over,
  });
  const range = { site: SITE, fromMs: DAY0, toMs: DAY0 + 2 * DAY_MS, actor: 'test' };

  beforeEach(async () => {
    base = new MemoryRollupStore();
    store = new FailingStore(base);
    archive = new MemoryRawArchive({ retentionMs: null });
    directory = new MemoryVersionDirectory();
    journal = new MemoryReprocessJournal();
    bus = new MemoryLiveBus();
    read = new VersionedRollupStore(base, directory, { directoryCacheMs: 0 });
    notices = [];
    await bus.subscribe(SITE, (n) => notices.push(n));
    await archive.archive(events);
    // The live pipeline ran the faulty logic: late events went to the late lane.
    const { late } = await liveAggregate(base, events, { logic: FAULTY_LOGIC, ...LIVE_RULES });
    expect(late, 'some events were late for the live pipeline').to.be.greaterThan(10);
    await base.setWatermark(0, DAY0 + 2 * DAY_MS + 3_600_000);
    liveSnapshot = await snapshot(read, SITE, DAY0, DAY0 + DAYS * DAY_MS);
    // The exact reference: the fixed logic over every event, none late.
    expected = new MemoryRollupStore();
    await liveAggregate(expected, events, { logic: FIXED_LOGIC, allowedLatenessMs: 10 * DAY_MS, maxOutOfOrderMs: 2_000 });
  });

  it('recomputes final days with the current logic (late lane folded in), switches them, and rolls back exactly', async () => {
    const progress: RunProgress[] = [];
    const summary = await runner().run(range, (p) => progress.push(p));
    expect(summary.kind).to.equal('reprocess');
    expect(summary.rollupVersion).to.equal(1);
    expect(summary.logicVersion).to.equal(3);
    expect(summary.days.map((d) => [d.state, d.fromVersion, d.toVersion])).to.deep.equal([['switched', 0, 1], ['switched', 0, 1]]);
    expect(summary.eventsRead).to.equal(new Set(events.filter((e) => e.ts < range.toMs).map((e) => `${e.ts}/${e.id}`)).size);
    // The reprocessed days equal the reference in every row of every tier; the third day is still live.
    expect(await snapshot(read, SITE, DAY0, DAY0 + 2 * DAY_MS)).to.deep.equal(await snapshot(expected, SITE, DAY0, DAY0 + 2 * DAY_MS));
    expect(await snapshot(read, SITE, DAY0 + 2 * DAY_MS, DAY0 + 3 * DAY_MS)).to.deep.equal(
      new Map([...liveSnapshot].filter(([k]) => Date.parse(k.split('@')[1]!) >= DAY0 + 2 * DAY_MS)));
    // The live rows are untouched beside the version.
    expect(await snapshot(base, SITE, DAY0, DAY0 + DAYS * DAY_MS)).to.deep.equal(liveSnapshot);
    expect((await base.read(versionSiteKey(SITE, 1), 'day', DAY0, DAY0 + 3 * DAY_MS)).map((r) => r.bucketMs)).to.deep.equal([DAY0, DAY0 + DAY_MS]);
    // Progress reached the end with an ETA along the way; subscribers were told of both days.
    expect(progress.at(-1)).to.include({ phase: 'done', daysDone: 2, daysTotal: 2, etaMs: 0 });
    expect(progress.some((p) => p.etaMs !== null && p.etaMs > 0)).to.equal(true);
    expect(notices.flatMap((n) => n.buckets)).to.deep.equal([DAY0, DAY0 + DAY_MS]);
    const audit = await directory.audit(SITE, 0, 1e6);
    expect(audit.map((e) => [e.action, e.fromVersion, e.toVersion, e.logicVersion, e.actor])).to.deep.equal([
      ['reprocess', 0, 1, 3, 'test'], ['reprocess', 0, 1, 3, 'test'],
    ]);
    const provenance = await read.provenance(SITE, DAY0, DAY0 + 3 * DAY_MS);
    expect(provenance).to.deep.include({ reprocessedDays: 2, status: 'provisional' });
    expect(provenance.logicVersions).to.include(3);

    const back = await runner().run({ ...range, rollback: true });
    expect(back.days.map((d) => [d.state, d.fromVersion, d.toVersion])).to.deep.equal([['switched', 1, 0], ['switched', 1, 0]]);
    expect(await snapshot(read, SITE, DAY0, DAY0 + DAYS * DAY_MS)).to.deep.equal(liveSnapshot);
    // Rolling back a live day does nothing.
    const again = await runner().run({ ...range, rollback: true });
    expect(again.days.map((d) => d.state)).to.deep.equal(['skipped', 'skipped']);
  });

  it('walks back through successive reprocesses', async () => {
    await runner({ logic: FAULTY_LOGIC }).run(range);
    const v1 = await snapshot(read, SITE, DAY0, DAY0 + 2 * DAY_MS);
    const second = await runner().run(range);
    expect(second.rollupVersion).to.equal(2);
    expect(second.days.map((d) => d.fromVersion)).to.deep.equal([1, 1]);
    expect(await snapshot(read, SITE, DAY0, DAY0 + 2 * DAY_MS)).to.deep.equal(await snapshot(expected, SITE, DAY0, DAY0 + 2 * DAY_MS));
    await runner().run({ ...range, rollback: true });
    expect(await snapshot(read, SITE, DAY0, DAY0 + 2 * DAY_MS)).to.deep.equal(v1);
    await runner().run({ ...range, rollback: true });
    expect(await snapshot(read, SITE, DAY0, DAY0 + DAYS * DAY_MS)).to.deep.equal(liveSnapshot);
    expect((await directory.active(SITE)).map((d) => d.version)).to.deep.equal([LIVE_VERSION, LIVE_VERSION]);
  });

  it('resumes a run that failed half-way through a day, and ends equal, each day switched once', async () => {
    // Down from the third write after the first day's switch: half-way through the second day's rows.
    let writesAfterSwitch = 0;
    store.failing = () => notices.length > 0 && ++writesAfterSwitch >= 3;
    let failure: unknown;
    try {
      await runner().run(range);
    } catch (e) {
      failure = e;
    }
    expect(String(failure)).to.contain('store down');
    const [interrupted] = await journal.runs(SITE);
    expect(interrupted!.state).to.equal('interrupted');
    const days = await journal.days(SITE, interrupted!.runId);
    expect(days.map((d) => d.state)).to.deep.equal(['switched']);
    expect(await base.read(versionSiteKey(SITE, 1), 'minute', DAY0 + DAY_MS, DAY0 + 2 * DAY_MS), 'part of day 2 written').to.not.deep.equal([]);
    store.failing = () => false;
    const resumed = await runner().run(range);
    expect(resumed.runId).to.equal(interrupted!.runId);
    expect(resumed.resumed).to.equal(true);
    expect(await snapshot(read, SITE, DAY0, DAY0 + 2 * DAY_MS)).to.deep.equal(await snapshot(expected, SITE, DAY0, DAY0 + 2 * DAY_MS));
    expect((await directory.audit(SITE, 0, 1e6)).map((e) => e.day)).to.have.length(2);
    expect((await journal.run(SITE, interrupted!.runId))!.state).to.equal('done');
  });

  it('empties the rows an interrupted attempt wrote that the resumed computation no longer has (events erased meanwhile)', async () => {
    let writesAfterSwitch = 0;
    store.failing = () => notices.length > 0 && ++writesAfterSwitch >= 2;
    await runner().run(range).catch(() => undefined);
    const day2 = DAY0 + DAY_MS;
    const written = await base.read(versionSiteKey(SITE, 1), 'minute', day2, day2 + 30 * MINUTE_MS);
    expect(written.length, 'the first half hour of day 2 written').to.be.greaterThan(10);
    // Erasure of every event of that half hour (GDPR), before the run resumes.
    const erased = events.filter((e) => e.ts >= day2 && e.ts < day2 + 30 * MINUTE_MS);
    await archive.deleteVisitors(SITE, new Set(erased.map((e) => e.visitorId)), day2, day2 + 30 * MINUTE_MS);
    store.failing = () => false;
    await runner().run(range);
    const remaining = events.filter((e) => !(e.ts >= day2 && e.ts < day2 + 30 * MINUTE_MS));
    const reference = new MemoryRollupStore();
    await liveAggregate(reference, remaining, { logic: FIXED_LOGIC, allowedLatenessMs: 10 * DAY_MS, maxOutOfOrderMs: 2_000 });
    expect(await snapshot(read, SITE, day2, day2 + DAY_MS)).to.deep.equal(await snapshot(reference, SITE, day2, day2 + DAY_MS));
    const emptied = await base.read(versionSiteKey(SITE, 1), 'minute', day2, day2 + 30 * MINUTE_MS);
    expect(emptied.every((r) => r.totals.pageviews === 0 && r.totals.events === 0 && r.bots === 0)).to.equal(true);
  });

  it('resumes after a crash between the switch and its journal entry without switching again', async () => {
    // Crash right after the first day's switch: the journal still says "written".
    const crashing = new MemoryReprocessJournal();
    let armed = true;
    const journalProxy = Object.create(crashing) as MemoryReprocessJournal;
    journalProxy.putDay = async (site, runId, day) => {
      if (armed && day.state === 'switched') {
        armed = false;
        throw new Error('process died');
      }
      return crashing.putDay(site, runId, day);
    };
    journal = journalProxy;
    await runner().run(range).catch(() => undefined);
    expect((await directory.active(SITE)).map((d) => d.version)).to.deep.equal([1]);
    const resumed = await runner().run(range);
    expect(resumed.days.map((d) => [d.state, d.fromVersion, d.toVersion])).to.deep.equal([['switched', 0, 1], ['switched', 0, 1]]);
    expect(await directory.audit(SITE, 0, 1e6)).to.have.length(2);
    expect(await snapshot(read, SITE, DAY0, DAY0 + 2 * DAY_MS)).to.deep.equal(await snapshot(expected, SITE, DAY0, DAY0 + 2 * DAY_MS));
  });

  it('stops at the next step when cancelled, leaving a run the same command resumes', async () => {
    const abort = new AbortController();
    let failure: unknown;
    try {
      await runner().run(range, (p) => {
        if (p.phase === 'writing' && p.day === '2024-05-11') abort.abort();
      }, abort.signal);
    } catch (e) {
      failure = e;
    }
    expect(isOpsError(failure, 'interrupted')).to.equal(true);
    expect((await directory.active(SITE)).map((d) => d.day)).to.have.length(1);
    const resumed = await runner().run(range);
    expect(resumed.resumed).to.equal(true);
    expect(await snapshot(read, SITE, DAY0, DAY0 + 2 * DAY_MS)).to.deep.equal(await snapshot(expected, SITE, DAY0, DAY0 + 2 * DAY_MS));
  });

  it('refuses days that are not final, ranges not on UTC midnights, and a second run of the site', async () => {
    const notFinal = await runner().run({ ...range, toMs: DAY0 + 3 * DAY_MS }).catch((e: unknown) => e);
    expect(isOpsError(notFinal, 'notFinal'), String(notFinal)).to.equal(true);
    expect(String(notFinal)).to.contain('2024-05-12');
    const skipping = await runner().run({ ...range, toMs: DAY0 + 3 * DAY_MS, skipNotFinal: true });
    expect(skipping.days.map((d) => d.state)).to.deep.equal(['switched', 'switched', 'skipped']);
    const odd = await runner().run({ ...range, fromMs: DAY0 + 1 }).catch((e: unknown) => e);
    expect(isOpsError(odd, 'invalid')).to.equal(true);
    await journal.acquireLease(`reprocess:${SITE}`, 'someone-else', 60_000);
    const busy = await runner().run(range).catch((e: unknown) => e);
    expect(isOpsError(busy, 'busy')).to.equal(true);
    const expired = await runner({ rawRetentionMs: 30 * DAY_MS }).run({ ...range, site: 'other.example' }).catch((e: unknown) => e);
    expect(isOpsError(expired, 'archiveIncomplete') || isOpsError(expired, 'notFinal'), String(expired)).to.equal(true);
  });
});
