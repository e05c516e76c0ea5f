/** The RawArchive contract, run against every implementation. Sites are unique per test. */
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import type { ArchivedEvent, LateMark, RawArchive } from '../../src/aggregate/raw-archive.js';
import type { EnrichedEvent } from '../../src/ingest/enriched-event.js';

export interface RawArchiveFixture {
  readonly archive: RawArchive;
  close(): Promise<void>;
}

export interface RawArchiveSetup {
  /** From event time; null keeps events forever. */
  readonly retentionMs: number | null;
}

const HOUR = 3_600_000;
const MINUTE = 60_000;

export function rawEvent(site: string, id: string, ts: number, extra: Partial<EnrichedEvent> = {}): EnrichedEvent {
  return {
    v: 1, id, site, type: 'pageview', name: 'pageview', ts, receivedAt: ts + 15,
    host: 'example.com', path: '/p', title: null, referrerHost: '', source: 'Direct / None', channel: 'direct',
    utm: { source: null, medium: null, campaign: null, term: null, content: null },
    browser: 'Firefox', browserVersion: '130.0', os: 'Linux', osVersion: '', device: 'desktop', bot: false,
    screen: null, language: null, props: {}, revenue: null,
    visitorId: '0123456789abcdef0123456789abcdef', country: null, region: null, city: null,
    ...extra,
  };
}

async function all(it: AsyncIterable<ArchivedEvent>): Promise<ArchivedEvent[]> {
  const out: ArchivedEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

/** [id, late] of each event read, in order. */
async function lateness(it: AsyncIterable<ArchivedEvent>): Promise<Array<[string, boolean]>> {
  return (await all(it)).map((e) => [e.id, e.late === true]);
}

const at = (partition: number, offset: number) => ({ partition, offset });
const mark = (e: EnrichedEvent, partition: number, offset: number): LateMark => ({ site: e.site, ts: e.ts, id: e.id, position: at(partition, offset) });

export function rawArchiveContract(name: string, setup: (options: RawArchiveSetup) => Promise<RawArchiveFixture>): void {
  describe(`RawArchive contract: ${name}`, function () {
    this.timeout(30_000);
    let fx: RawArchiveFixture | undefined;
    let site: string;
    // An hour start two hours back: inside a day's retention whatever the wall clock says.
    let t0: number;
    const open = async (options: RawArchiveSetup = { retentionMs: 86_400_000 }) => {
      fx = await setup(options);
      return fx.archive;
    };
    beforeEach(() => {
      site = `s-${randomUUID().slice(0, 8)}`;
      t0 = Math.floor(Date.now() / HOUR) * HOUR - 2 * HOUR;
    });
    afterEach(async () => {
      await fx?.close();
      fx = undefined;
    });

    it('reads back whole records, unchanged', async () => {
      const archive = await open();
      const rich = rawEvent(site, 'rich-1', t0 + 5, {
        type: 'event', name: 'signup', title: 'Ünïcødé “title” 🚀', referrerHost: 'news.ycombinator.com', source: 'Hacker News',
        channel: 'referral', utm: { source: 'hn', medium: 'social', campaign: 'launch', term: null, content: 'a b' },
        screen: { width: 1920, height: 1080 }, language: 'fr-CH', props: { plan: 'pro', seats: 3, trial: false },
        revenue: { amount: 49.9, currency: 'EUR' }, country: 'CH', device: 'mobile', bot: true,
      });
      await archive.archive([rich]);
      expect(await all(archive.read(site, t0, t0 + HOUR))).to.deep.equal([rich]);
    });

    it('reads one site in (ts, id) order within [from, to), across hours, ids by UTF-8 bytes', async () => {
      const archive = await open();
      // Written out of order, over three hours; same-ts ids that order differently as UTF-16.
      const evs = [
        rawEvent(site, 'c', t0 + 2 * HOUR + 1),
        rawEvent(site, 'x\u{1F600}', t0 + HOUR),
        rawEvent(site, 'b', t0 + HOUR - 1),
        rawEvent(site, 'x\uFF5E', t0 + HOUR),
        rawEvent(site, 'a', t0 + HOUR),
        rawEvent(site, 'z', t0),
        rawEvent(site, 'late', t0 + 3 * HOUR),
      ];
      await archive.archive(evs);
      const got = await all(archive.read(site, t0, t0 + 3 * HOUR));
      expect(got.map((e) => [e.ts - t0, e.id])).to.deep.equal([
        [0, 'z'], [HOUR - 1, 'b'], [HOUR, 'a'], [HOUR, 'x\uFF5E'], [HOUR, 'x\u{1F600}'], [2 * HOUR + 1, 'c'],
      ]);
      const middle = await all(archive.read(site, t0 + 1, t0 + HOUR + 1));
      expect(middle.map((e) => e.id)).to.deep.equal(['b', 'a', 'x\uFF5E', 'x\u{1F600}']);
      expect(await all(archive.read(site, t0 + 10, t0 + 10))).to.deep.equal([]);
    });

    it('is idempotent by (site, id): archiving the same events again keeps one copy', async () => {
      const archive = await open();
      const evs = [rawEvent(site, 'e1', t0 + MINUTE), rawEvent(site, 'e2', t0 + 2 * MINUTE)];
      await archive.archive(evs);
      await archive.archive([...evs, evs[0]!]);
      await Promise.all([archive.archive(evs), archive.archive(evs)]);
      expect((await all(archive.read(site, t0, t0 + HOUR))).map((e) => e.id)).to.deep.equal(['e1', 'e2']);
    });

    it('erases one visitor\'s events in a range and nothing else', async () => {
      const archive = await open();
      const other = `s-${randomUUID().slice(0, 8)}`;
      const alice = 'a'.repeat(32);
      const bob = 'b'.repeat(32);
      await archive.archive([
        rawEvent(site, 'a1', t0, { visitorId: alice }), rawEvent(site, 'a2', t0 + HOUR + MINUTE, { visitorId: alice }),
        rawEvent(site, 'b1', t0 + MINUTE, { visitorId: bob }), rawEvent(other, 'a1', t0, { visitorId: alice }),
      ]);
      expect(await archive.deleteVisitors(site, new Set([alice]), t0 - HOUR, t0 + 3 * HOUR)).to.equal(2);
      expect((await all(archive.read(site, t0 - HOUR, t0 + 3 * HOUR))).map((e) => e.id)).to.deep.equal(['b1']);
      expect((await all(archive.read(other, t0 - HOUR, t0 + 3 * HOUR))).map((e) => e.id)).to.deep.equal(['a1']);
      expect(await archive.deleteVisitors(site, new Set([alice]), t0 - HOUR, t0 + 3 * HOUR)).to.equal(0);
    });

    it('never returns another site\'s events', async () => {
      const archive = await open();
      const other = `${site}-other`;
      await archive.archive([rawEvent(site, 'mine', t0), rawEvent(other, 'theirs', t0)]);
      expect((await all(archive.read(site, t0, t0 + HOUR))).map((e) => [e.site, e.id])).to.deep.equal([[site, 'mine']]);
      expect(await all(archive.read(`${site}-none`, t0, t0 + HOUR))).to.deep.equal([]);
    });

    it('counts retention from event time: events already past it are not kept', async () => {
      const archive = await open({ retentionMs: HOUR });
      const now = Date.now();
      await archive.archive([rawEvent(site, 'old', now - 2 * HOUR), rawEvent(site, 'recent', now - 10 * MINUTE)]);
      expect((await all(archive.read(site, now - 3 * HOUR, now + HOUR))).map((e) => e.id)).to.deep.equal(['recent']);
    });

    it('streams long ranges and can be abandoned part-way', async () => {
      const archive = await open();
      const evs = Array.from({ length: 90 }, (_, i) => rawEvent(site, `e${String(i).padStart(3, '0')}`, t0 + i * 2 * MINUTE));
      await archive.archive(evs);
      const got = await all(archive.read(site, t0, t0 + 3 * HOUR));
      expect(got.map((e) => e.id)).to.deep.equal(evs.map((e) => e.id));
      const firstFew: string[] = [];
      for await (const e of archive.read(site, t0, t0 + 3 * HOUR)) {
        firstFew.push(e.id);
        if (firstFew.length === 3) break;
      }
      expect(firstFew).to.deep.equal(['e000', 'e001', 'e002']);
    });

    it('reads an event as late once its copy is marked, and only that event; others carry no late field', async () => {
      const archive = await open();
      const [a, b, c] = [rawEvent(site, 'a', t0 + 1), rawEvent(site, 'b', t0 + 2), rawEvent(site, 'c', t0 + HOUR + 3)];
      await archive.archive([a, b, c], [at(0, 10), at(0, 11), at(1, 4)]);
      await archive.markLate([mark(b, 0, 11)]);
      const got = await all(archive.read(site, t0, t0 + 2 * HOUR));
      expect(got).to.deep.equal([a, { ...b, late: true }, c]);
      expect(Object.prototype.hasOwnProperty.call(got[0], 'late')).to.equal(false);
      // Marking again, and archiving again, change nothing.
      await archive.markLate([mark(b, 0, 11), mark(b, 0, 11)]);
      await archive.archive([b], [at(0, 11)]);
      expect(await lateness(archive.read(site, t0, t0 + 2 * HOUR))).to.deep.equal([['a', false], ['b', true], ['c', false]]);
    });

    it('takes a mark that comes before its event; a mark alone reads as nothing', async () => {
      const archive = await open();
      const e = rawEvent(site, 'early-mark', t0 + MINUTE);
      await archive.markLate([mark(e, 2, 7)]);
      expect(await all(archive.read(site, t0, t0 + HOUR))).to.deep.equal([]);
      await archive.archive([e], [at(2, 7)]);
      expect(await all(archive.read(site, t0, t0 + HOUR))).to.deep.equal([{ ...e, late: true }]);
    });

    it('is late only when every copy archived was marked: a late retry of a counted event stays counted', async () => {
      const archive = await open();
      const counted = rawEvent(site, 'retried', t0 + MINUTE);
      const lost = rawEvent(site, 'offline', t0 + 2 * MINUTE);
      // `retried` reached the log twice (offsets 3 and 90): the first copy counted, the retry
      // came after its bucket closed. `offline` came twice, late both times.
      await archive.archive([counted, lost], [at(0, 3), at(0, 4)]);
      await archive.archive([counted, lost], [at(0, 90), at(0, 91)]);
      await archive.markLate([mark(counted, 0, 90), mark(lost, 0, 4), mark(lost, 0, 91)]);
      expect(await lateness(archive.read(site, t0, t0 + HOUR))).to.deep.equal([['retried', false], ['offline', true]]);
    });

    it('never reads an event archived without positions as late, and never stores the late field', async () => {
      const archive = await open();
      const e = rawEvent(site, 'no-position', t0);
      await archive.archive([e]);
      await archive.markLate([mark(e, 0, 0)]);
      expect(await lateness(archive.read(site, t0, t0 + HOUR))).to.deep.equal([['no-position', false]]);
      // An event read back as late, archived again elsewhere, is stored as its record alone.
      const f = rawEvent(site, 'copied', t0 + 1);
      await archive.archive([{ ...f, late: true } as ArchivedEvent]);
      const got = (await all(archive.read(site, t0, t0 + HOUR))).find((x) => x.id === 'copied');
      expect(got).to.deep.equal(f);
    });

    it('clears the marks of one site\'s archived events in a range, and no other', async () => {
      const archive = await open();
      const other = `${site}-other`;
      const evs = [rawEvent(site, 'in-1', t0 + 1), rawEvent(site, 'in-2', t0 + HOUR + 1), rawEvent(site, 'after', t0 + 2 * HOUR), rawEvent(other, 'in-1', t0 + 1)];
      await archive.archive(evs, evs.map((_, i) => at(0, i)));
      await archive.markLate(evs.map((e, i) => mark(e, 0, i)));
      // A mark whose event is not archived yet was not folded by a reprocess either: it stays.
      const pending = rawEvent(site, 'pending', t0 + 5);
      await archive.markLate([mark(pending, 0, 99)]);
      expect(await archive.clearLate(site, t0, t0 + 2 * HOUR)).to.equal(2);
      await archive.archive([pending], [at(0, 99)]);
      expect(await lateness(archive.read(site, t0, t0 + 3 * HOUR))).to.deep.equal([['in-1', false], ['pending', true], ['in-2', false], ['after', true]]);
      expect(await lateness(archive.read(other, t0, t0 + 3 * HOUR))).to.deep.equal([['in-1', true]]);
      expect(await archive.clearLate(site, t0, t0 + 2 * HOUR)).to.equal(1);
      // Marks that come after a clear count again.
      await archive.markLate([mark(evs[0]!, 0, 0)]);
      expect((await lateness(archive.read(site, t0, t0 + HOUR)))[0]).to.deep.equal(['in-1', true]);
    });

    it('erasure takes an event\'s marks with it', async () => {
      const archive = await open();
      const e = rawEvent(site, 'erased', t0, { visitorId: 'c'.repeat(32) });
      await archive.archive([e], [at(0, 1)]);
      await archive.markLate([mark(e, 0, 1)]);
      expect(await archive.deleteVisitors(site, new Set([e.visitorId]), t0, t0 + HOUR)).to.equal(1);
      // A replay archives it again from another position: it is not late.
      await archive.archive([e], [at(0, 2)]);
      expect(await lateness(archive.read(site, t0, t0 + HOUR))).to.deep.equal([['erased', false]]);
    });

    it('drops marks of events already past retention', async () => {
      const archive = await open({ retentionMs: HOUR });
      const now = Date.now();
      const old = rawEvent(site, 'old', now - 2 * HOUR);
      await archive.markLate([mark(old, 0, 1)]);
      await archive.archive([old], [at(0, 1)]);
      expect(await all(archive.read(site, now - 3 * HOUR, now + HOUR))).to.deep.equal([]);
    });
  });
}
