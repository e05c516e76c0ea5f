import { expect } from 'chai';
import { Subject, map } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { rng } from '../demo/demo-traffic.js';
import { HyperLogLog } from './hyperloglog.js';
import {
  MINUTE_MS, MinuteWindows, minuteWindows,
  type MinuteWindowsOperatorOptions, type WindowEvent, type WindowFlush, type WindowInput, type WindowOptions, type WindowOutput,
} from './minute-windows.js';
import { capDimension, type MutableDimCell } from './rollup-merge.js';
import { DIMENSIONS, DIMENSION_KINDS, OTHER_KEY, SESSION_DIMENSIONS, propKey, zeroCounts, type Counts, type DimensionName, type Rollup } from './rollup.js';
import { compareEvents, contributions, decodeVisitStates, encodeVisitStates } from './sessions.js';

const base: MinuteWindowsOperatorOptions = {
  maxOutOfOrderMs: 5_000, allowedLatenessMs: 30_000, idleAdvanceMs: 1_000, maxBreakdownKeys: 10, flushIntervalMs: 10,
  sessionTimeoutMs: 30 * 60_000, checkpointIntervalMs: 1_000_000,
};

function windowEvent(id: string, ts: number, fields: Partial<WindowEvent> = {}): WindowEvent {
  return {
    id, site: 's', type: 'pageview', name: 'pageview', ts, host: 'a.example', path: '/', referrerHost: '', source: 'Direct / None',
    channel: 'direct', utm: { source: null, medium: null, campaign: null, term: null, content: null },
    browser: 'Firefox', browserVersion: '125', os: 'Linux', osVersion: '', device: 'desktop', screen: null,
    country: null, region: null, city: null, visitorId: `visitor-${id}`, bot: false, props: {}, revenue: null, ...fields,
  };
}

let nextOffset = 0;
function input(id: string, ts: number, extra: Partial<WindowEvent> & { offset?: number } = {}): WindowInput {
  const { offset, ...fields } = extra;
  return { offset: offset ?? nextOffset++, event: windowEvent(id, ts, fields) };
}

/** Outputs as plain values a marble diagram can compare: bucket counts, watermark, commit point. */
function summarise(out: WindowOutput) {
  if (out.kind === 'late') return { late: out.input.event?.id };
  const f = out.flush;
  return {
    rows: f.rows.map((r) => ({
      site: r.site, minute: r.bucketMs / MINUTE_MS, pageviews: r.totals.pageviews, events: r.totals.events,
      visitors: HyperLogLog.fromBytes(r.visitors).count(),
    })),
    watermarkMs: f.watermarkMs,
    commitOffset: f.commitOffset,
  };
}

const row = (minute: number, pageviews: number, events: number, visitors: number, site = 's') => ({ site, minute, pageviews, events, visitors });

/** A dimension's cells without their sketches. */
function counts(r: Rollup, dim: DimensionName): Record<string, Counts> {
  return Object.fromEntries(Object.entries(r.dims[dim] ?? {}).map(([k, c]) => [k, {
    pageviews: c.pageviews, events: c.events, visits: c.visits, bounces: c.bounces, durationMs: c.durationMs,
  }]));
}
const cnt = (c: Partial<Counts>): Counts => ({ ...zeroCounts(), ...c });

describe('minuteWindows operator', () => {
  let scheduler: TestScheduler;
  beforeEach(() => {
    nextOffset = 0;
    scheduler = new TestScheduler((actual, expected) => {
      expect(actual).to.deep.equal(expected);
    });
  });

  it('counts on-time events into UTC minute buckets and flushes them on the tick', () => {
    scheduler.run(({ cold, expectObservable }) => {
      const src = cold('abc 20ms |', {
        a: input('a', 1_000), b: input('b', 2_000), c: input('c', 61_000, { type: 'event', name: 'signup', visitorId: 'visitor-a' }),
      });
      expectObservable(src.pipe(minuteWindows({ ...base, scheduler }), map(summarise))).toBe('10ms f 12ms (c|)', {
        f: { rows: [row(0, 2, 0, 2), row(1, 0, 1, 1)], watermarkMs: 56_000, commitOffset: 0 },
        // Completion (a revoke) checkpoints, so the last state can be committed.
        c: { rows: [], watermarkMs: 56_000, commitOffset: 0 },
      });
    });
  });

  it('counts events out of order within maxOutOfOrderMs in their own bucket', () => {
    scheduler.run(({ cold, expectObservable }) => {
      const src = cold('abcde 20ms |', {
        a: input('a', 10_000), b: input('b', 58_000), c: input('c', 55_000), d: input('d', 62_000), e: input('e', 57_000),
      });
      expectObservable(src.pipe(minuteWindows({ ...base, scheduler }), map(summarise))).toBe('10ms f 14ms (c|)', {
        f: { rows: [row(0, 4, 0, 4), row(1, 1, 0, 1)], watermarkMs: 57_000, commitOffset: 0 },
        c: { rows: [], watermarkMs: 57_000, commitOffset: 0 },
      });
    });
  });

  it('restates a bucket already written when an event for it arrives within the lateness', () => {
    scheduler.run(({ cold, expectObservable }) => {
      // c moves the watermark past minute 0's end (65 s > 60 s) but not past end + lateness (90 s).
      const src = cold('ac 13ms b 10ms |', { a: input('a', 1_000), c: input('c', 70_000), b: input('b', 2_000) });
      expectObservable(src.pipe(minuteWindows({ ...base, scheduler }), map(summarise))).toBe('10ms f 9ms g 5ms (c|)', {
        f: { rows: [row(0, 1, 0, 1), row(1, 1, 0, 1)], watermarkMs: 65_000, commitOffset: 0 },
        g: { rows: [row(0, 2, 0, 2)], watermarkMs: 65_000, commitOffset: 0 },
        c: { rows: [], watermarkMs: 65_000, commitOffset: 0 },
      });
    });
  });

  it('routes an event for a bucket closed past the lateness to the late lane at once, and writes the closed bucket final', () => {
    scheduler.run(({ cold, expectObservable }) => {
      // c: watermark 95 s ≥ 60 s + 30 s closes minute 0; d then belongs to a closed bucket.
      const src = cold('acd 20ms |', { a: input('a', 1_000), c: input('c', 100_000), d: input('d', 2_000) });
      expectObservable(src.pipe(minuteWindows({ ...base, scheduler }), map(summarise))).toBe('--l 7ms f 12ms (c|)', {
        l: { late: 'd' },
        // Minute 0 is closed, so only minute 1 (first offset 1) holds the commit back.
        f: { rows: [row(0, 1, 0, 1), row(1, 1, 0, 1)], watermarkMs: 95_000, commitOffset: 1 },
        c: { rows: [], watermarkMs: 95_000, commitOffset: 1 },
      });
    });
  });

  it('advances the watermark of an idle partition by the scheduler clock, closing its buckets', () => {
    scheduler.run(({ cold, expectObservable }) => {
      const options = { ...base, allowedLatenessMs: 0, idleAdvanceMs: 100, scheduler, now: () => 245_000 + scheduler.now() };
      // Minute 3 = [180 s, 240 s). After 100 ms without input the watermark jumps to
      // now − 5 s − 100 ms = 240 s, which closes it, so d (for minute 3) is late.
      const src = cold('a 101ms d 10ms |', { a: input('a', 230_000), d: input('d', 231_000) });
      expectObservable(src.pipe(minuteWindows(options), map(summarise)), '^ 104ms !').toBe('10ms f 89ms g 1ms l', {
        f: { rows: [row(3, 1, 0, 1)], watermarkMs: 225_000, commitOffset: 0 },
        g: { rows: [], watermarkMs: 240_000, commitOffset: 1 },
        l: { late: 'd' },
      });
    });
  });

  it('counts a repeated event id once per bucket', () => {
    scheduler.run(({ cold, expectObservable }) => {
      const src = cold('abcd 20ms |', {
        a: input('x', 1_000), b: input('x', 1_000), c: input('y', 2_000), d: input('x', 61_000),
      });
      const outcomes = src.pipe(minuteWindows({ ...base, scheduler }), map((o) => (o.kind === 'flush' ? o.flush.outcomes : o)));
      expectObservable(outcomes).toBe('10ms f 13ms (z|)', {
        f: { counted: 3, duplicate: 1, late: 0, replay_skipped: 0, bot: 0 },
        z: { counted: 0, duplicate: 0, late: 0, replay_skipped: 0, bot: 0 },
      });
      expectObservable(src.pipe(minuteWindows({ ...base, scheduler }), map(summarise))).toBe('10ms f 13ms (c|)', {
        f: { rows: [row(0, 2, 0, 2), row(1, 1, 0, 1)], watermarkMs: 56_000, commitOffset: 0 },
        c: { rows: [], watermarkMs: 56_000, commitOffset: 0 },
      });
    });
  });

  it('flushes on flush$ and once more when the source completes', () => {
    scheduler.run(({ cold, hot, expectObservable }) => {
      const flush$ = hot('--x', { x: { checkpoint: false } });
      const src = cold('a--b|', { a: input('a', 1_000), b: input('b', 2_000) });
      expectObservable(src.pipe(minuteWindows({ ...base, flushIntervalMs: 1_000, scheduler, flush$ }), map(summarise))).toBe('--f-(g|)', {
        f: { rows: [row(0, 1, 0, 1)], watermarkMs: -4_000, commitOffset: 0 },
        g: { rows: [row(0, 2, 0, 2)], watermarkMs: -3_000, commitOffset: 0 },
      });
    });
  });

  it('holds timer flushes while holdFlush says so, and the next tick after takes everything since', () => {
    scheduler.run(({ cold, hot, expectObservable }) => {
      let holding = false;
      hot('15ms h 19ms r', { h: true, r: false }).subscribe((v) => { holding = v; });
      const flush$ = hot('25ms x', { x: { checkpoint: false } });
      const src = cold('a 11ms b 14ms c 19ms |', { a: input('a', 1_000), b: input('b', 2_000), c: input('c', 3_000) });
      // a at 0, b at 12, c at 27. Ticks at 10 (a), 20 and 30 held (flush$ at 25 is not held and
      // takes b), 40 takes c (the hold ended at 35); completion at 47 checkpoints nothing new.
      expectObservable(src.pipe(minuteWindows({ ...base, scheduler, flush$, holdFlush: () => holding }), map(summarise))).toBe('10ms f 14ms g 14ms h 6ms (c|)', {
        f: { rows: [row(0, 1, 0, 1)], watermarkMs: -4_000, commitOffset: 0 },
        g: { rows: [row(0, 2, 0, 2)], watermarkMs: -3_000, commitOffset: 0 },
        h: { rows: [row(0, 3, 0, 3)], watermarkMs: -2_000, commitOffset: 0 },
        c: { rows: [], watermarkMs: -2_000, commitOffset: 0 },
      });
    });
  });

  it('checkpoints every checkpointIntervalMs when something changed, on request, and when the source completes', () => {
    scheduler.run(({ cold, hot, expectObservable }) => {
      const flush$ = hot('44ms x', { x: { checkpoint: true } });
      const src = cold('a 14ms b 49ms |', { a: input('a', 1_000), b: input('b', 2_000) });
      const checkpoints = src.pipe(
        minuteWindows({ ...base, flushIntervalMs: 10, checkpointIntervalMs: 25, scheduler, flush$ }),
        map((o) => (o.kind === 'flush' ? o.flush.checkpoint !== null : 'late')),
      );
      // Ticks at 10 (a), 20 (b), 30 (checkpoint due: b's change), 44 (asked for, but nothing new
      // since 30: no flush), then completion at 65 with a checkpoint of nothing new: no flush either.
      expectObservable(checkpoints).toBe('10ms f 9ms f 9ms t 34ms |', { f: false, t: true });
    });
  });
});

describe('MinuteWindows', () => {
  const options: WindowOptions = { ...base, maxBreakdownKeys: 2 };

  beforeEach(() => {
    nextOffset = 0;
  });

  it('keeps bots out of every number but the bucket bot count', () => {
    const w = new MinuteWindows(options, 0);
    expect(w.offer(input('a', 1_000, { offset: 0 }), 0)).to.equal('counted');
    expect(w.offer(input('b', 1_500, { offset: 1, bot: true, path: '/bot' }), 0)).to.equal('bot');
    expect(w.offer(input('c', 1_600, { offset: 2, bot: true, type: 'event', name: 'x', revenue: { amount: 5, currency: 'EUR' } }), 0)).to.equal('bot');
    expect(w.offer(input('c', 1_600, { offset: 3, bot: true, type: 'event', name: 'x' }), 0)).to.equal('duplicate');
    const [r] = w.takeFlush()!.rows;
    expect(r!.totals).to.deep.equal(cnt({ pageviews: 1, visits: 1, bounces: 1 }));
    expect(r!.bots).to.equal(2);
    expect(counts(r!, 'page')).to.deep.equal({ '/': cnt({ pageviews: 1 }) });
    expect(r!.dims.event).to.equal(undefined);
    expect(r!.revenue).to.deep.equal({});
    expect(HyperLogLog.fromBytes(r!.visitors).count()).to.equal(1);
  });

  it('fills every dimension: session ones from the entry, event ones from the event, exits, props and revenue', () => {
    const w = new MinuteWindows({ ...base, maxBreakdownKeys: 50 }, 0);
    const entry = { visitorId: 'v', country: 'FR', browser: 'Safari', browserVersion: '17', utm: { source: 'nl', medium: null, campaign: null, term: null, content: null } };
    w.offer(input('a', 1_000, { ...entry, path: '/in' }), 0);
    // The second event of the visit has its own country, but the visit's is the entry's.
    w.offer(input('b', 2_000, { visitorId: 'v', country: 'DE', path: '/buy', type: 'event', name: 'purchase', props: { plan: 'pro' }, revenue: { amount: 19.5, currency: 'EUR' } }), 0);
    w.offer(input('c', 3_000, { visitorId: 'v', path: '/thanks', revenue: { amount: 100, currency: 'EUR' } }), 0);
    const [r] = w.takeFlush()!.rows;
    const visit = cnt({ pageviews: 2, events: 1, visits: 1, bounces: 0, durationMs: 2_000 });
    expect(r!.totals).to.deep.equal(visit);
    expect(counts(r!, 'country')).to.deep.equal({ FR: visit });
    expect(counts(r!, 'entry_page')).to.deep.equal({ '/in': visit });
    expect(counts(r!, 'browser_version')).to.deep.equal({ 'Safari 17': visit });
    expect(counts(r!, 'utm_source')).to.deep.equal({ nl: visit });
    expect(r!.dims.utm_medium).to.equal(undefined);
    // A custom event is not a view of its page: the page dimension counts pageviews only.
    expect(counts(r!, 'page')).to.deep.equal({ '/in': cnt({ pageviews: 1 }), '/thanks': cnt({ pageviews: 1 }) });
    expect(counts(r!, 'event')).to.deep.equal({ purchase: cnt({ events: 1 }) });
    expect(counts(r!, 'prop')).to.deep.equal({ [propKey('purchase', 'plan', 'pro')]: cnt({ events: 1 }) });
    // +1 /in, then (+1 /buy −1 /in), then (+1 /thanks −1 /buy): /in and /buy net to nothing and are left out.
    expect(counts(r!, 'exit_page')).to.deep.equal({ '/thanks': cnt({ visits: 1 }) });
    expect(r!.dims.exit_page!['/thanks']!.visitors).to.equal(undefined);
    expect(HyperLogLog.fromBytes(r!.dims.country!.FR!.visitors!, 11).count()).to.equal(1);
    // Revenue of custom events only.
    expect(r!.revenue).to.deep.equal({ purchase: { EUR: 19.5 } });
    expect(Object.keys(r!.dims)).to.deep.equal(DIMENSIONS.filter((d) => r!.dims[d] !== undefined));
  });

  it('caps dimensions at maxBreakdownKeys by count, ties by key, the rest under (other)', () => {
    const w = new MinuteWindows(options, 0);
    let offset = 0;
    for (const path of ['/b', '/a', '/c', '/a', '/d', '/c', '/a', '/e']) w.offer(input(`p${offset}`, 1_000, { offset: offset++, path }), 0);
    // /b, /d and /e tie at 1 below the cut; /c (2) beats them.
    const r = w.takeFlush()!.rows[0]!;
    expect(counts(r, 'page')).to.deep.equal({ '/a': cnt({ pageviews: 3 }), '/c': cnt({ pageviews: 2 }), [OTHER_KEY]: cnt({ pageviews: 3 }) });
    expect(r.dims.page![OTHER_KEY]!.visitors).to.equal(undefined);
  });

  it('gives the same row for the same events in any arrival order within the lateness', () => {
    const rand = rng(21);
    const events = Array.from({ length: 300 }, (_, i) => windowEvent(`e${i}`, 1_000 + Math.floor(rand() * 170_000), {
      visitorId: `v${Math.floor(rand() * 15)}`, path: `/p${Math.floor(rand() * 20)}`, source: `s${Math.floor(rand() * 9)}`,
      type: rand() < 0.7 ? 'pageview' : 'event', name: rand() < 0.7 ? 'pageview' : 'play',
    })).map((e) => (e.type === 'event' ? e : { ...e, name: 'pageview' }));
    const run = (order: WindowEvent[]) => {
      // Lateness covers the whole range: nothing is late whatever the order.
      const w = new MinuteWindows({ ...options, maxOutOfOrderMs: 0, allowedLatenessMs: 600_000 }, 0);
      const rows = new Map<number, Rollup>();
      order.forEach((event, offset) => {
        w.offer({ offset, event }, 0);
        if (offset % 7 === 0) for (const r of w.takeFlush()?.rows ?? []) rows.set(r.bucketMs, r);
      });
      for (const r of w.takeFlush()?.rows ?? []) rows.set(r.bucketMs, r);
      return [...rows.values()].sort((a, b) => a.bucketMs - b.bucketMs);
    };
    const sorted = run([...events].sort(compareEvents));
    const shuffled = [...events];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
    }
    expect(run(shuffled)).to.deep.equal(sorted);
    expect(run([...events].reverse())).to.deep.equal(sorted);
    expect(sorted).to.have.length(3);
  });

  it('carries a visit across bucket boundaries, after the earlier bucket closed', () => {
    const w = new MinuteWindows({ ...options, maxBreakdownKeys: 10 }, 0);
    w.offer(input('a', 50_000, { visitorId: 'v', path: '/a' }), 0);
    // Closes minute 0 (watermark 95 s): the visit's state is frozen.
    w.offer(input('x', 100_000, { visitorId: 'other' }), 0);
    w.offer(input('b', 110_000, { visitorId: 'v', path: '/b' }), 0);
    const rows = w.takeFlush()!.rows;
    expect(rows.map((r) => [r.bucketMs, r.totals])).to.deep.equal([
      [0, cnt({ pageviews: 1, visits: 1, bounces: 1 })],
      [60_000, cnt({ pageviews: 2, visits: 1, bounces: 0, durationMs: 60_000 })],
    ]);
    // Minute 1: the other visitor's bounce, and v's second pageview taking its bounce back.
    expect(counts(rows[1]!, 'entry_page')).to.deep.equal({
      '/a': cnt({ pageviews: 1, bounces: -1, durationMs: 60_000 }), '/': cnt({ pageviews: 1, visits: 1, bounces: 1 }),
    });
    expect(counts(rows[1]!, 'exit_page')).to.deep.equal({ '/a': cnt({ visits: -1 }), '/b': cnt({ visits: 1 }), '/': cnt({ visits: 1 }) });
  });

  it('restates a later bucket when an earlier event of the same visitor arrives within the lateness', () => {
    const w = new MinuteWindows(options, 0);
    w.offer(input('b', 70_000, { visitorId: 'v', path: '/b', country: 'DE' }), 0);
    let rows = w.takeFlush()!.rows;
    expect(rows.map((r) => [r.bucketMs, r.totals])).to.deep.equal([[60_000, cnt({ pageviews: 1, visits: 1, bounces: 1 })]]);
    expect(counts(rows[0]!, 'country')).to.deep.equal({ DE: cnt({ pageviews: 1, visits: 1, bounces: 1 }) });
    // The visit really started in minute 0: minute 1 loses its visit and bounce, gains a duration, and the entry moves.
    w.offer(input('a', 50_000, { visitorId: 'v', path: '/a', country: 'FR' }), 0);
    rows = w.takeFlush()!.rows;
    expect(rows.map((r) => [r.bucketMs, r.totals]).sort()).to.deep.equal([
      [0, cnt({ pageviews: 1, visits: 1, bounces: 1 })],
      [60_000, cnt({ pageviews: 1, visits: 0, bounces: -1, durationMs: 20_000 })],
    ]);
    const minute1 = rows.find((r) => r.bucketMs === 60_000)!;
    expect(counts(minute1, 'country')).to.deep.equal({ FR: cnt({ pageviews: 1, bounces: -1, durationMs: 20_000 }) });
    expect(counts(minute1, 'exit_page')).to.deep.equal({ '/a': cnt({ visits: -1 }), '/b': cnt({ visits: 1 }) });
    // The visitor's sketch in DE is gone: the cell was rebuilt, not decremented.
    expect(minute1.dims.country!.DE).to.equal(undefined);

    // Same entry, counts only: an event between a and b shortens b's step and takes the bounce back earlier.
    w.offer(input('m', 65_000, { visitorId: 'v', path: '/m' }), 0);
    rows = w.takeFlush()!.rows;
    expect(rows.map((r) => [r.bucketMs, r.totals])).to.deep.equal([
      [60_000, cnt({ pageviews: 2, visits: 0, bounces: -1, durationMs: 20_000 })],
    ]);
    expect(counts(rows[0]!, 'country')).to.deep.equal({ FR: cnt({ pageviews: 2, bounces: -1, durationMs: 20_000 }) });
    expect(counts(rows[0]!, 'exit_page')).to.deep.equal({ '/a': cnt({ visits: -1 }), '/b': cnt({ visits: 1 }) });
  });

  it('starts a new visit after sessionTimeoutMs, and forgets visitors no accepted event can continue', () => {
    const w = new MinuteWindows({ ...options, sessionTimeoutMs: 120_000, allowedLatenessMs: 0, maxOutOfOrderMs: 0 }, 0);
    w.offer(input('a', 10_000, { visitorId: 'v' }), 0);
    w.offer(input('b', 130_000, { visitorId: 'v' }), 0);
    expect(w.takeFlush()!.rows.map((r) => r.totals.visits)).to.deep.equal([1, 1]);
    expect(w.visitorCount).to.equal(1);
    // Minute 5 opens at 300 s: v's last event (130 s) is at least 120 s before any event still accepted.
    w.offer(input('c', 300_000, { visitorId: 'w' }), 0);
    w.offer(input('d', 421_000, { visitorId: 'w' }), 0);
    expect(w.visitorCount).to.equal(1);
    w.offer(input('e', 425_000, { visitorId: 'v' }), 0);
    expect(w.takeFlush()!.rows.find((r) => r.bucketMs === 420_000)!.totals).to.deep.include({ visits: 2, durationMs: 0 });
  });

  it('makes each anonymous event a visit of its own, in no visitor sketch', () => {
    const w = new MinuteWindows({ ...options, maxBreakdownKeys: 10 }, 0);
    w.offer(input('a', 1_000, { visitorId: '', path: '/a' }), 0);
    w.offer(input('b', 2_000, { visitorId: '', path: '/b' }), 0);
    w.offer(input('c', 3_000, { visitorId: '', type: 'event', name: 'x' }), 0);
    const r = w.takeFlush(true)!;
    expect(r.rows[0]!.totals).to.deep.equal(cnt({ pageviews: 2, events: 1, visits: 3, bounces: 2 }));
    expect(counts(r.rows[0]!, 'exit_page')).to.deep.equal({ '/a': cnt({ visits: 1 }), '/b': cnt({ visits: 1 }), '/': cnt({ visits: 1 }) });
    expect(HyperLogLog.fromBytes(r.rows[0]!.visitors).count()).to.equal(0);
    expect(w.visitorCount).to.equal(0);
  });

  it('commits from the first offset of the oldest open bucket, or after the last input', () => {
    const w = new MinuteWindows(options, 0);
    w.offer(input('a', 1_000, { offset: 10 }), 0);
    w.offer(input('b', 61_000, { offset: 11 }), 0);
    w.offer({ offset: 12, event: null }, 0);
    expect(w.takeFlush()).to.include({ commitOffset: 10, lastOffset: 12, openBuckets: 2 });
    // Closes minute 0 (95 s ≥ 90 s) but not minute 1.
    w.offer(input('c', 100_000, { offset: 13 }), 0);
    expect(w.takeFlush()).to.include({ commitOffset: 11, lastOffset: 13, openBuckets: 1 });
    w.offer(input('d', 1_000_000, { offset: 14 }), 0);
    expect(w.takeFlush()).to.include({ commitOffset: 14, openBuckets: 1 });
    expect(w.takeFlush()).to.equal(null);
  });

  it('checkpoints exactly the visits of closed buckets, once per change', () => {
    const w = new MinuteWindows(options, 0);
    w.offer(input('a', 50_000, { visitorId: 'v', path: '/a' }), 0);
    expect(w.takeFlush(true)!.checkpoint).to.deep.equal([]);
    w.offer(input('b', 100_000, { visitorId: 'w', path: '/b' }), 0);
    const f = w.takeFlush(true)!;
    expect(f.watermarkMs).to.equal(95_000);
    expect(f.checkpoint!.map((v) => [v.site, v.visitorId, v.state.lastTs, v.state.lastPath, v.state.pageviews, v.state.entry.entry_page]))
      .to.deep.equal([['s', 'v', 50_000, '/a', 1, '/a']]);
    expect(w.takeFlush(true)).to.equal(null);
    expect(w.takeFlush(false)).to.equal(null);
  });

  it('skips replayed inputs of closed buckets instead of sending them to the late lane again', () => {
    const w = new MinuteWindows({ ...options, initialWatermarkMs: 95_000, replayThroughOffset: 5 }, 0);
    expect(w.offer(input('a', 1_000, { offset: 3 }), 0)).to.equal('replay_skipped');
    expect(w.offer(input('b', 96_000, { offset: 4 }), 0)).to.equal('counted');
    expect(w.offer(input('c', 2_000, { offset: 6 }), 0)).to.equal('late');
  });

  it('holds idle advance back until the replay is done, so replayed inputs meet the restored watermark', () => {
    const idle = { ...base, idleAdvanceMs: 100 };
    // Restored: watermark 95 s (minute 0 closed, minute 1 open), replay through offset 12.
    const w = new MinuteWindows({ ...idle, initialWatermarkMs: 95_000, replayThroughOffset: 12 }, 0);
    expect(w.offer(input('a', 70_000, { offset: 10 }), 0)).to.equal('counted');
    // Stalled mid-replay far longer than idleAdvanceMs: the clock would close minute 1.
    w.tick(10_000_000);
    expect(w.watermarkMs).to.equal(95_000);
    expect(w.offer(input('b', 80_000, { offset: 11 }), 10_000_000)).to.equal('counted');
    expect(w.offer(input('c', 5_000, { offset: 12 }), 10_000_000)).to.equal('replay_skipped');
    expect(w.takeFlush()).to.include({ commitOffset: 10, lastOffset: 12, openBuckets: 1 });
    // Replay done: a quiet partition advances again.
    w.tick(10_000_000 + 100);
    expect(w.watermarkMs).to.equal(10_000_000 + 100 - 5_000 - 100);
    expect(w.openBuckets).to.equal(0);
  });

  it('advances an idle partition with nothing to replay', () => {
    const w = new MinuteWindows({ ...base, idleAdvanceMs: 100, initialWatermarkMs: 95_000 }, 0);
    w.tick(1_000_000);
    expect(w.watermarkMs).to.equal(1_000_000 - 5_000 - 100);
  });

  it('never moves the watermark back', () => {
    const w = new MinuteWindows(options, 0);
    w.offer(input('a', 100_000, { offset: 0 }), 0);
    w.offer(input('b', 50_000, { offset: 1 }), 0);
    expect(w.watermarkMs).to.equal(95_000);
    w.tick(10_000);
    expect(w.watermarkMs).to.equal(95_000);
  });

  it('feeds a Subject-driven pipeline synchronously, as the aggregator uses it', () => {
    const s = new Subject<WindowInput>();
    const out: WindowOutput[] = [];
    s.pipe(minuteWindows({ ...base, flushIntervalMs: 60_000 })).subscribe((o) => out.push(o));
    s.next(input('a', 1_000));
    s.next(input('b', 1_000_000));
    s.next(input('c', 2_000));
    expect(out.map((o) => o.kind)).to.deep.equal(['late']);
    s.complete();
    expect(out.map((o) => o.kind)).to.deep.equal(['late', 'flush']);
  });
});

// ---------------------------------------------------------------------------------------------
// Exact check: random traffic through the windows against a direct recomputation (sessions.ts).

const SITES = ['s1', 's2', 's3'];
const exact: WindowOptions = { maxOutOfOrderMs: 5_000, allowedLatenessMs: 30_000, idleAdvanceMs: 1_000, maxBreakdownKeys: 4, sessionTimeoutMs: 3 * 60_000 };

/**
 * Random traffic in arrival order: times advance over `minutes`, most a few seconds out of
 * order, some up to a minute behind (restating, or late); client retries (same id and time),
 * bots, custom events with props and revenue, visitors who stay, leave, and come back.
 */
function traffic(seed: number, count: number, minutes: number): WindowEvent[] {
  const rand = rng(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
  const out: WindowEvent[] = [];
  const stepMs = (minutes * MINUTE_MS) / count;
  for (let i = 0; i < count; i++) {
    const back = rand() < 0.06 ? rand() * 70_000 : rand() * 4_000;
    const pageview = rand() < 0.75;
    const drift = Math.floor((i / count) * 60);
    const visitor = rand() < 0.8 ? drift + Math.floor(rand() * 15) : Math.floor(rand() * 80);
    const bot = rand() < 0.03;
    const anonymous = !bot && rand() < 0.03;
    out.push(windowEvent(`e${i}-${'αβγ'[i % 3]}`, Math.round(i * stepMs - back), {
      site: pick(SITES), type: pageview ? 'pageview' : 'event', name: pageview ? 'pageview' : pick(['signup', 'play']),
      path: `/p${Math.floor(rand() * 9)}`, source: pick(['Google', 'Direct / None', 'Bing']), country: pick(['FR', 'DE', null]),
      browser: pick(['Chrome', 'Firefox']), browserVersion: pick(['124', '125', '']), screen: rand() < 0.5 ? null : { width: Math.floor(rand() * 2000), height: 900 },
      visitorId: bot ? `bot${visitor}` : anonymous ? '' : `v${visitor}`, bot,
      props: rand() < 0.3 ? { plan: pick(['a', 'b']) } : {},
      revenue: !pageview && rand() < 0.5 ? { amount: Math.floor(rand() * 400) / 4, currency: pick(['EUR', 'USD']) } : null,
    }));
    if (rand() < 0.04) out.push(out[out.length - 1 - Math.floor(rand() * Math.min(out.length, 5))]!);
  }
  return out;
}

/** Every flush's rows applied in order, as the store would keep them: the last row of each bucket wins. */
function latestRows(flushes: readonly WindowFlush[]): Map<string, Rollup> {
  const rows = new Map<string, Rollup>();
  for (const f of flushes) for (const r of f.rows) rows.set(`${r.site}@${r.bucketMs}`, r);
  return rows;
}

/** The windows over `events` in arrival order, with a flush every few inputs. */
function runWindows(events: readonly WindowEvent[], options: WindowOptions) {
  const w = new MinuteWindows(options, 0);
  const flushes: WindowFlush[] = [];
  events.forEach((event, offset) => {
    w.offer({ offset, event }, 0);
    if (offset % 37 === 0) flushes.push(...[w.takeFlush(offset % 3 === 0)].filter((f): f is WindowFlush => f !== null));
  });
  const last = w.takeFlush(true);
  if (last) flushes.push(last);
  return { flushes, rows: latestRows(flushes) };
}

interface RefCell extends Counts {
  readonly visitors: Set<string>;
}

interface RefBucket {
  readonly totals: Counts;
  readonly visitors: Set<string>;
  bots: number;
  readonly dims: Map<DimensionName, Map<string, RefCell>>;
  readonly revenue: Map<string, Map<string, number>>;
}

/** The rows rollup.ts defines, recomputed from the events that are not late, sorted, through sessions.ts. */
function reference(events: readonly WindowEvent[], options: WindowOptions): Map<string, RefBucket> {
  // Lateness, judged independently: the watermark before each event, from the events before it.
  let watermark = Number.NEGATIVE_INFINITY;
  const onTime: WindowEvent[] = [];
  for (const e of events) {
    const bucketMs = Math.floor(e.ts / MINUTE_MS) * MINUTE_MS;
    if (bucketMs + MINUTE_MS + options.allowedLatenessMs > watermark) onTime.push(e);
    watermark = Math.max(watermark, e.ts - options.maxOutOfOrderMs);
  }
  const buckets = new Map<string, RefBucket>();
  const bucket = (site: string, ts: number): RefBucket => {
    const key = `${site}@${Math.floor(ts / MINUTE_MS) * MINUTE_MS}`;
    let b = buckets.get(key);
    if (!b) buckets.set(key, (b = { totals: zeroCounts(), visitors: new Set(), bots: 0, dims: new Map(), revenue: new Map() }));
    return b;
  };
  const botIds = new Set<string>();
  for (const e of onTime) {
    if (!e.bot) continue;
    const key = `${e.site}@${e.id}@${Math.floor(e.ts / MINUTE_MS)}`;
    if (botIds.has(key)) continue;
    botIds.add(key);
    bucket(e.site, e.ts).bots++;
  }
  const cell = (b: RefBucket, dim: DimensionName, key: string) => {
    let cells = b.dims.get(dim);
    if (!cells) b.dims.set(dim, (cells = new Map()));
    let c = cells.get(key);
    if (!c) cells.set(key, (c = { ...zeroCounts(), visitors: new Set() }));
    return c;
  };
  const add = (into: Counts, c: Counts) => {
    into.pageviews += c.pageviews;
    into.events += c.events;
    into.visits += c.visits;
    into.bounces += c.bounces;
    into.durationMs += c.durationMs;
  };
  for (const { event: e, values, contribution: c } of contributions([...onTime].sort(compareEvents), options)) {
    const b = bucket(e.site, e.ts);
    add(b.totals, c);
    // Anonymous events count, but join no visitor set.
    const visitor = (set: Set<string>) => e.visitorId !== '' && set.add(e.visitorId);
    visitor(b.visitors);
    for (const dim of SESSION_DIMENSIONS) {
      const v = c.entry[dim];
      if (v === null) continue;
      const into = cell(b, dim, v);
      add(into, c);
      visitor(into.visitors);
    }
    const own = { ...zeroCounts(), pageviews: c.pageviews, events: c.events };
    const keys: Array<[DimensionName, string | null]> = [['page', values.page], ['event', values.event]];
    for (const [k, v] of Object.entries(e.props)) keys.push(['prop', propKey(e.name, k, v)]);
    for (const [dim, v] of keys) {
      if (v === null) continue;
      const into = cell(b, dim, v);
      add(into, own);
      visitor(into.visitors);
    }
    cell(b, 'exit_page', c.exitPage).visits++;
    if (c.exitFrom !== null) cell(b, 'exit_page', c.exitFrom).visits--;
    if (e.type === 'event' && e.revenue) {
      let byCurrency = b.revenue.get(e.name);
      if (!byCurrency) b.revenue.set(e.name, (byCurrency = new Map()));
      byCurrency.set(e.revenue.currency, (byCurrency.get(e.revenue.currency) ?? 0) + e.revenue.amount);
    }
  }
  return buckets;
}

function expectExact(rows: Map<string, Rollup>, events: readonly WindowEvent[], options: WindowOptions): void {
  const ref = reference(events, options);
  expect([...rows.keys()].sort()).to.deep.equal([...ref.keys()].sort());
  for (const [key, want] of ref) {
    const r = rows.get(key)!;
    expect(r.totals, key).to.deep.equal(want.totals);
    expect(r.bots, key).to.equal(want.bots);
    expect(Math.abs(HyperLogLog.fromBytes(r.visitors).count() - want.visitors.size), key).to.be.at.most(1);
    expect(r.revenue, key).to.deep.equal(Object.fromEntries([...want.revenue].map(([n, m]) => [n, Object.fromEntries(m)])));
    for (const dim of DIMENSIONS) {
      const cells = want.dims.get(dim) ?? new Map<string, RefCell>();
      // The same cap, from the exact cells: which values survive must agree too.
      const capped = capDimension(new Map([...cells].map(([k, c]): [string, MutableDimCell] => [k, { ...c, visitors: null }])), options.maxBreakdownKeys);
      expect(counts(r, dim), `${key} ${dim}`).to.deep.equal(capped);
      for (const [value, c] of Object.entries(r.dims[dim] ?? {})) {
        if (DIMENSION_KINDS[dim] === 'exit' || value === OTHER_KEY) {
          expect(c.visitors, `${key} ${dim} ${value}`).to.equal(undefined);
        } else {
          const n = HyperLogLog.fromBytes(c.visitors!, 11).count();
          expect(Math.abs(n - cells.get(value)!.visitors.size), `${key} ${dim} ${value}`).to.be.at.most(1);
        }
      }
    }
  }
}

describe('MinuteWindows against a direct recomputation', () => {
  it('gives every minute row exactly the numbers rollup.ts defines, on random traffic', () => {
    for (const seed of [1, 2, 3]) {
      const events = traffic(seed, 3_000, 25);
      const { rows, flushes } = runWindows(events, exact);
      const outcomes = flushes.reduce((n, f) => n + f.outcomes.late, 0);
      expect(outcomes, 'some late events').to.be.greaterThan(0);
      expectExact(rows, events, exact);
    }
  });

  it('gives byte-identical rows when visits are restated incrementally under heavy out-of-order arrival as when folded in (ts, id) order', () => {
    // Many visitors, each with several events whose entry values differ in many dimensions, sent
    // out of event-time order by up to 100 s and flushed often: restated visits move events
    // between session cells many times between rows, and busy cells' sketches turn dense.
    const rand = rng(31);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
    const startMs = 10 * MINUTE_MS;
    const events: WindowEvent[] = [];
    for (let i = 0; i < 12_000; i++) {
      const pageview = rand() < 0.8;
      const bot = rand() < 0.01;
      const anonymous = !bot && rand() < 0.02;
      events.push(windowEvent(`e${i}`, startMs + Math.floor(rand() * 3 * MINUTE_MS), {
        site: pick(['s1', 's2']), visitorId: bot ? `bot${i % 7}` : anonymous ? '' : `v${Math.floor(rand() * 1_500)}`, bot,
        type: pageview ? 'pageview' : 'event', name: pageview ? 'pageview' : pick(['signup', 'play']),
        path: `/p${Math.floor(rand() * 12)}`, source: pick(['Google', 'Direct / None', 'Bing', 'Newsletter']),
        referrerHost: pick(['', 'www.google.com', 'news.ycombinator.com']), channel: pick(['direct', 'organic_search', 'email']),
        utm: { source: pick([null, 'news']), medium: pick([null, 'email']), campaign: pick([null, 'autumn', 'brand']), term: null, content: null },
        country: pick(['FR', 'DE', null]), city: pick(['Paris', 'Berlin', null]), browser: pick(['Chrome', 'Firefox']),
        browserVersion: pick(['124', '125', '']), os: pick(['Linux', 'iOS']), device: pick(['desktop', 'mobile']),
        screen: rand() < 0.3 ? null : { width: Math.floor(rand() * 2000), height: 900 },
        props: rand() < 0.2 ? { plan: pick(['a', 'b']) } : {},
        revenue: !pageview && rand() < 0.3 ? { amount: Math.floor(rand() * 400) / 4, currency: pick(['EUR', 'USD']) } : null,
      }));
      // Client retries: the same event again.
      if (rand() < 0.02) events.push(events[events.length - 1]!);
    }
    const options: WindowOptions = { ...exact, allowedLatenessMs: 2 * MINUTE_MS, sessionTimeoutMs: 90_000, maxBreakdownKeys: 50 };
    const jitter = new Map(events.map((e) => [e, rand() * 100_000]));
    const arrival = [...events].sort((a, b) => a.ts + jitter.get(a)! - (b.ts + jitter.get(b)!));
    const sorted = [...events].sort(compareEvents);

    const incremental = new MinuteWindows(options, 0);
    const flushes: WindowFlush[] = [];
    arrival.forEach((event, offset) => {
      incremental.offer({ offset, event }, 0);
      if (offset % 53 === 0) flushes.push(...[incremental.takeFlush()].filter((f): f is WindowFlush => f !== null));
    });
    flushes.push(incremental.takeFlush(true)!);
    expect(flushes.reduce((n, f) => n + f.outcomes.late, 0), 'nothing late').to.equal(0);

    const fromScratch = new MinuteWindows(options, 0);
    sorted.forEach((event, offset) => fromScratch.offer({ offset, event }, 0));
    const want = latestRows([fromScratch.takeFlush(true)!]);
    const got = latestRows(flushes);
    const inOrder = (m: Map<string, Rollup>) => [...m].sort(([a], [b]) => (a < b ? -1 : 1));
    expect(inOrder(got)).to.deep.equal(inOrder(want));
    expect(got.size).to.equal(6);
    const dense = [...got.values()].some((r) => Object.values(r.dims.browser ?? {}).some((c) => c.visitors![1] === 2));
    expect(dense, 'some session cell sketch is dense').to.equal(true);
  });

  it('gives the same rows, sketches included, when restarted from any checkpoint (the crash-safety contract)', () => {
    const events = traffic(7, 2_000, 20);
    const whole = runWindows(events, exact).rows;
    const rand = rng(8);
    for (let trial = 0; trial < 8; trial++) {
      // The predecessor: runs to a checkpoint, goes on for a while writing rows, then dies.
      const checkpointAt = Math.floor(rand() * events.length);
      const diesAt = Math.min(events.length, checkpointAt + Math.floor(rand() * 300));
      const first = new MinuteWindows(exact, 0);
      const written: WindowFlush[] = [];
      let commit: WindowFlush | null = null;
      const take = (w: MinuteWindows, checkpoint = false) => {
        const f = w.takeFlush(checkpoint);
        if (f) written.push(f);
        return f;
      };
      for (let offset = 0; offset < diesAt; offset++) {
        first.offer({ offset, event: events[offset]! }, 0);
        if (offset === checkpointAt) commit = take(first, true);
        else if (offset % 50 === 0) take(first);
      }
      if (commit === null) continue;
      // The successor: the committed watermark and offsets, the checkpoint through its bytes.
      const restored = decodeVisitStates(encodeVisitStates(commit.checkpoint!));
      const second = new MinuteWindows({
        ...exact, initialWatermarkMs: commit.watermarkMs, replayThroughOffset: commit.lastOffset!, initialSessions: restored,
      }, 0);
      for (let offset = commit.commitOffset!; offset < events.length; offset++) {
        second.offer({ offset, event: events[offset]! }, 0);
        if (offset % 41 === 0) take(second);
      }
      take(second, true);
      const sorted = (m: Map<string, Rollup>) => [...m].sort(([a], [b]) => (a < b ? -1 : 1));
      expect(sorted(latestRows(written)), `trial ${trial}`).to.deep.equal(sorted(whole));
    }
  });
});
