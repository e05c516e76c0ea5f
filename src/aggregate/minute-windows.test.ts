import { expect } from 'chai';
import { Subject, map } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { HyperLogLog } from './hyperloglog.js';
import {
  MINUTE_MS, MinuteWindows, minuteWindows, type MinuteWindowsOperatorOptions, type WindowEvent, type WindowInput, type WindowOutput,
} from './minute-windows.js';
import { OTHER_KEY } from './rollup-store.js';

const base: MinuteWindowsOperatorOptions = {
  maxOutOfOrderMs: 5_000, allowedLatenessMs: 30_000, idleAdvanceMs: 1_000, maxBreakdownKeys: 10, flushIntervalMs: 10,
};

let nextOffset = 0;
function input(id: string, ts: number, extra: Partial<WindowEvent> & { offset?: number } = {}): WindowInput {
  const { offset, ...fields } = extra;
  return {
    offset: offset ?? nextOffset++,
    event: { id, site: 's', type: 'pageview', ts, path: '/', source: 'Direct / None', visitorId: `visitor-${id}`, bot: false, ...fields },
  };
}

/** Outputs as plain values a marble diagram can compare: bucket counts, watermark, commit point. */
function summarise(out: WindowOutput) {
  if (out.kind === 'late') return { late: out.input.event?.id };
  const f = out.flush;
  return {
    rows: f.rows.map((r) => ({
      site: r.site, minute: r.bucketMs / MINUTE_MS, pageviews: r.pageviews, events: r.events,
      visitors: HyperLogLog.fromBytes(r.visitors).count(),
    })),
    watermarkMs: f.watermarkMs,
    commitOffset: f.commitOffset,
  };
}

const row = (minute: number, pageviews: number, events: number, visitors: number, site = 's') => ({ site, minute, pageviews, events, visitors });

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
        a: input('a', 1_000), b: input('b', 2_000), c: input('c', 61_000, { type: 'event', visitorId: 'visitor-a' }),
      });
      expectObservable(src.pipe(minuteWindows({ ...base, scheduler }), map(summarise))).toBe('10ms f 12ms |', {
        f: { rows: [row(0, 2, 0, 2), row(1, 0, 1, 1)], watermarkMs: 56_000, commitOffset: 0 },
      });
    });
  });

  it('counts events out of order within maxOutOfOrderMs in their own bucket', () => {
    scheduler.run(({ cold, expectObservable }) => {
      const src = cold('abcde 20ms |', {
        a: input('a', 10_000), b: input('b', 58_000), c: input('c', 55_000), d: input('d', 62_000), e: input('e', 57_000),
      });
      expectObservable(src.pipe(minuteWindows({ ...base, scheduler }), map(summarise))).toBe('10ms f 14ms |', {
        f: { rows: [row(0, 4, 0, 4), row(1, 1, 0, 1)], watermarkMs: 57_000, commitOffset: 0 },
      });
    });
  });

  it('restates a bucket already written when an event for it arrives within the lateness', () => {
    scheduler.run(({ cold, expectObservable }) => {
      // c moves the watermark past minute 0's end (65 s > 60 s) but not past end + lateness (90 s).
      const src = cold('ac 13ms b 10ms |', { a: input('a', 1_000), c: input('c', 70_000), b: input('b', 2_000) });
      expectObservable(src.pipe(minuteWindows({ ...base, scheduler }), map(summarise))).toBe('10ms f 9ms g 5ms |', {
        f: { rows: [row(0, 1, 0, 1), row(1, 1, 0, 1)], watermarkMs: 65_000, commitOffset: 0 },
        g: { rows: [row(0, 2, 0, 2)], watermarkMs: 65_000, commitOffset: 0 },
      });
    });
  });

  it('routes an event for a bucket closed past the lateness to the late lane at once, and writes the closed bucket final', () => {
    scheduler.run(({ cold, expectObservable }) => {
      // c: watermark 95 s ≥ 60 s + 30 s closes minute 0; d then belongs to a closed bucket.
      const src = cold('acd 20ms |', { a: input('a', 1_000), c: input('c', 100_000), d: input('d', 2_000) });
      expectObservable(src.pipe(minuteWindows({ ...base, scheduler }), map(summarise))).toBe('--l 7ms f 12ms |', {
        l: { late: 'd' },
        // Minute 0 is closed, so only minute 1 (first offset 1) holds the commit back.
        f: { rows: [row(0, 1, 0, 1), row(1, 1, 0, 1)], watermarkMs: 95_000, commitOffset: 1 },
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
      expectObservable(outcomes).toBe('10ms f 13ms |', { f: { counted: 3, duplicate: 1, late: 0, replay_skipped: 0, bot: 0 } });
      expectObservable(src.pipe(minuteWindows({ ...base, scheduler }), map(summarise))).toBe('10ms f 13ms |', {
        f: { rows: [row(0, 2, 0, 2), row(1, 1, 0, 1)], watermarkMs: 56_000, commitOffset: 0 },
      });
    });
  });

  it('flushes on flush$ and once more when the source completes', () => {
    scheduler.run(({ cold, hot, expectObservable }) => {
      const flush$ = hot('--x', { x: undefined });
      const src = cold('a--b|', { a: input('a', 1_000), b: input('b', 2_000) });
      expectObservable(src.pipe(minuteWindows({ ...base, flushIntervalMs: 1_000, scheduler, flush$ }), map(summarise))).toBe('--f-(g|)', {
        f: { rows: [row(0, 1, 0, 1)], watermarkMs: -4_000, commitOffset: 0 },
        g: { rows: [row(0, 2, 0, 2)], watermarkMs: -3_000, commitOffset: 0 },
      });
    });
  });
});

describe('MinuteWindows', () => {
  const options = { ...base, maxBreakdownKeys: 2 };

  it('keeps bots out of every rollup', () => {
    const w = new MinuteWindows(options, 0);
    expect(w.offer(input('a', 1_000, { offset: 0 }), 0)).to.equal('counted');
    expect(w.offer(input('b', 1_500, { offset: 1, bot: true, path: '/bot' }), 0)).to.equal('bot');
    expect(w.offer(input('c', 1_600, { offset: 2, bot: true, type: 'event' }), 0)).to.equal('bot');
    const [r] = w.takeFlush()!.rows;
    expect(r).to.include({ pageviews: 1, events: 0 });
    expect(r!.pages).to.deep.equal({ '/': 1 });
    expect(HyperLogLog.fromBytes(r!.visitors).count()).to.equal(1);
  });

  it('caps breakdowns at maxBreakdownKeys by count, ties by key, the rest under (other)', () => {
    const w = new MinuteWindows(options, 0);
    let offset = 0;
    for (const path of ['/b', '/a', '/c', '/a', '/d', '/c', '/a', '/e']) w.offer(input(`p${offset}`, 1_000, { offset: offset++, path }), 0);
    // /b, /d and /e tie at 1 below the cut; /c (2) beats them.
    expect(w.takeFlush()!.rows[0]!.pages).to.deep.equal({ '/a': 3, '/c': 2, [OTHER_KEY]: 3 });
  });

  it('gives the same capped breakdown for the same sequence, beyond the tracked keys too', () => {
    const paths = Array.from({ length: 50 }, (_, i) => `/p${(i * 7) % 13}`);
    const run = () => {
      const w = new MinuteWindows(options, 0);
      paths.forEach((path, i) => w.offer(input(`e${i}`, 1_000, { offset: i, path, source: path }), 0));
      return w.takeFlush()!.rows[0]!;
    };
    const a = run();
    expect(a).to.deep.equal(run());
    expect(Object.keys(a.pages)).to.have.length(3);
    expect(Object.values(a.pages).reduce((x, y) => x + y)).to.equal(50);
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

  it('skips replayed inputs of closed buckets instead of sending them to the late lane again', () => {
    const w = new MinuteWindows({ ...options, initialWatermarkMs: 95_000, replayThroughOffset: 5 }, 0);
    expect(w.offer(input('a', 1_000, { offset: 3 }), 0)).to.equal('replay_skipped');
    expect(w.offer(input('b', 96_000, { offset: 4 }), 0)).to.equal('counted');
    expect(w.offer(input('c', 2_000, { offset: 6 }), 0)).to.equal('late');
  });

  it('holds idle advance back until the replay is done, so replayed inputs meet the restored watermark', () => {
    const options = { ...base, idleAdvanceMs: 100 };
    // Restored: watermark 95 s (minute 0 closed, minute 1 open), replay through offset 12.
    const w = new MinuteWindows({ ...options, initialWatermarkMs: 95_000, replayThroughOffset: 12 }, 0);
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
