import { expect } from 'chai';
import { rng } from '../demo/demo-traffic.js';
import type { EnrichedEvent } from '../ingest/enriched-event.js';
import { eventDimensions } from './event-dimensions.js';
import { compareArchived } from './raw-archive.js';
import { SESSION_DIMENSIONS } from './rollup.js';
import {
  SessionFold, VisitStateFormatError, compareEvents, compareIds, contributions, decodeVisitStates, encodeVisitStates, stepVisit,
  type FoldEvent, type VisitState, type VisitorState,
} from './sessions.js';

const TIMEOUT = 30 * 60_000;
const T0 = Date.UTC(2024, 0, 1, 12, 0, 0);

let seq = 0;
function ev(ts: number, fields: Partial<EnrichedEvent> = {}): FoldEvent {
  return {
    id: `e${String(seq++).padStart(4, '0')}`, site: 's', ts, type: 'pageview', name: 'pageview', path: '/', visitorId: 'v1', bot: false,
    host: 'a.example', referrerHost: '', source: 'Direct / None', channel: 'direct',
    utm: { source: null, medium: null, campaign: null, term: null, content: null },
    browser: 'Firefox', browserVersion: '125', os: 'Linux', osVersion: '', device: 'desktop', screen: null,
    country: null, region: null, city: null, ...fields,
  };
}
const custom = (ts: number, name: string, fields: Partial<EnrichedEvent> = {}) => ev(ts, { type: 'event', name, ...fields });

/** The counts and exit moves of a sequence of one visitor's events, in order. */
function fold(events: FoldEvent[]) {
  return [...contributions(events, { sessionTimeoutMs: TIMEOUT })].map(({ contribution: c }) => ({
    visits: c.visits, bounces: c.bounces, durationMs: c.durationMs, pageviews: c.pageviews, events: c.events,
    entry: c.entry.entry_page, exit: c.exitPage, exitFrom: c.exitFrom,
  }));
}

describe('stepVisit and contributions', () => {
  beforeEach(() => {
    seq = 0;
  });

  it('counts a bounce at the first pageview even after custom events, and takes it back at the second', () => {
    const steps = fold([custom(T0, 'scroll', { path: '/in' }), ev(T0 + 1_000, { path: '/in' }), custom(T0 + 2_000, 'click', { path: '/in' }), ev(T0 + 5_000, { path: '/next' })]);
    expect(steps.map((s) => s.bounces)).to.deep.equal([0, 1, 0, -1]);
    expect(steps.map((s) => s.visits)).to.deep.equal([1, 0, 0, 0]);
    expect(steps.map((s) => s.durationMs)).to.deep.equal([0, 1_000, 1_000, 3_000]);
    // The visit's entry is its first event, a custom event here.
    expect(steps.map((s) => s.entry)).to.deep.equal(['/in', '/in', '/in', '/in']);
  });

  it('a visit of custom events only adds no bounce', () => {
    const steps = fold([custom(T0, 'a'), custom(T0 + 10, 'b')]);
    expect(steps.reduce((n, s) => n + s.bounces, 0)).to.equal(0);
    expect(steps.reduce((n, s) => n + s.visits, 0)).to.equal(1);
  });

  it('starts a new visit at exactly sessionTimeoutMs after the previous event, not one ms before', () => {
    const continued = fold([ev(T0), ev(T0 + TIMEOUT - 1)]);
    expect(continued[1]).to.include({ visits: 0, durationMs: TIMEOUT - 1, bounces: -1 });
    const split = fold([ev(T0), ev(T0 + TIMEOUT, { path: '/later' })]);
    expect(split[1]).to.include({ visits: 1, durationMs: 0, bounces: 1, entry: '/later', exitFrom: null });
  });

  it('moves the exit page along the visit', () => {
    const steps = fold([ev(T0, { path: '/a' }), ev(T0 + 1, { path: '/b' }), custom(T0 + 2, 'x', { path: '/b' })]);
    expect(steps.map((s) => [s.exit, s.exitFrom])).to.deep.equal([['/a', null], ['/b', '/a'], ['/b', '/b']]);
  });

  it('attributes every event of a visit to the entry event dimension values, by identity', () => {
    const first = ev(T0, { country: 'FR', browser: 'Safari' });
    const out = [...contributions([first, ev(T0 + 1_000, { country: 'DE', browser: 'Chrome' })], { sessionTimeoutMs: TIMEOUT })];
    expect(out[1]!.contribution.entry).to.equal(out[0]!.values);
    expect(out[1]!.contribution.entry).to.include({ country: 'FR', browser: 'Safari' });
    // …while its own values are its own.
    expect(out[1]!.values).to.include({ country: 'DE', browser: 'Chrome' });
  });

  it('keeps visitors and sites apart, skips bots, and counts a repeated id once per minute', () => {
    const a = ev(T0, { visitorId: 'a' });
    const events = [
      a, ev(T0 + 1, { visitorId: 'b' }), ev(T0 + 2, { visitorId: 'a', site: 't' }), ev(T0 + 3, { visitorId: 'a', bot: true }),
      { ...a, ts: T0 + 4 }, { ...a, ts: T0 + 60_000 },
    ];
    const out = [...contributions(events, { sessionTimeoutMs: TIMEOUT })];
    expect(out.map((c) => [c.event.site, c.event.visitorId, c.contribution.visits])).to.deep.equal([
      ['s', 'a', 1], ['s', 'b', 1], ['t', 'a', 1], ['s', 'a', 0],
    ]);
  });

  it('makes each anonymous event (no visitor id) a visit of its own', () => {
    const steps = fold([ev(T0, { visitorId: '' }), ev(T0 + 1, { visitorId: '' }), custom(T0 + 2, 'x', { visitorId: '' })]);
    expect(steps.map((s) => [s.visits, s.bounces, s.durationMs, s.exitFrom])).to.deep.equal([[1, 1, 0, null], [1, 1, 0, null], [1, 0, 0, null]]);
  });

  it('refuses input out of order instead of giving wrong contributions', () => {
    const fold = new SessionFold({ sessionTimeoutMs: TIMEOUT });
    fold.push(ev(T0 + 120_000));
    expect(() => fold.push(ev(T0 + 1_000))).to.throw(RangeError);
    fold.push(ev(T0 + 130_000, { visitorId: 'w' }));
    expect(() => fold.push(ev(T0 + 125_000, { visitorId: 'w' }))).to.throw(RangeError);
  });

  it('equals a direct recomputation of the definition on long random streams (pruning included)', () => {
    const rand = rng(11);
    const events: FoldEvent[] = [];
    let ts = T0;
    for (let i = 0; i < 20_000; i++) {
      ts += Math.floor(rand() * 2_000);
      events.push(ev(ts, {
        visitorId: `v${Math.floor(rand() * 500)}`, type: rand() < 0.7 ? 'pageview' : 'event', path: `/p${Math.floor(rand() * 5)}`,
        name: 'x', bot: rand() < 0.02,
      }));
      if (rand() < 0.02) events.push(events[events.length - 1]!);
    }
    const got = { visits: 0, bounces: 0, durationMs: 0, pageviews: 0 };
    const exits = new Map<string, number>();
    for (const { contribution: c } of contributions(events, { sessionTimeoutMs: 10 * 60_000 })) {
      got.visits += c.visits;
      got.bounces += c.bounces;
      got.durationMs += c.durationMs;
      got.pageviews += c.pageviews;
      exits.set(c.exitPage, (exits.get(c.exitPage) ?? 0) + 1);
      if (c.exitFrom !== null) exits.set(c.exitFrom, (exits.get(c.exitFrom)! - 1));
    }
    // The definition, visit by visit.
    const seen = new Set<string>();
    const byVisitor = new Map<string, FoldEvent[]>();
    for (const e of events) {
      const key = `${e.id}@${Math.floor(e.ts / 60_000)}`;
      if (e.bot || seen.has(key)) continue;
      seen.add(key);
      byVisitor.set(e.visitorId, [...(byVisitor.get(e.visitorId) ?? []), e]);
    }
    const want = { visits: 0, bounces: 0, durationMs: 0, pageviews: 0 };
    const wantExits = new Map<string, number>();
    for (const list of byVisitor.values()) {
      const visits: FoldEvent[][] = [];
      for (const e of list) {
        const last = visits.at(-1)?.at(-1);
        if (last && e.ts - last.ts < 10 * 60_000) visits.at(-1)!.push(e);
        else visits.push([e]);
      }
      for (const v of visits) {
        const pageviews = v.filter((e) => e.type === 'pageview').length;
        want.visits++;
        want.pageviews += pageviews;
        if (pageviews === 1) want.bounces++;
        want.durationMs += v.at(-1)!.ts - v[0]!.ts;
        wantExits.set(v.at(-1)!.path, (wantExits.get(v.at(-1)!.path) ?? 0) + 1);
      }
    }
    expect(got).to.deep.equal(want);
    for (const [path, n] of wantExits) expect(exits.get(path), path).to.equal(n);
    expect([...exits.values()].reduce((a, b) => a + b)).to.equal(want.visits);
  });
});

describe('compareIds', () => {
  it('orders ids as their UTF-8 bytes, as the raw archive does', () => {
    const rand = rng(3);
    const alphabet = ['a', 'b', 'Z', '0', 'é', '\u00ff', '\u4e2d', '\ue000', '\uffee', '😀', '𝄞', '\u{10ffff}'];
    const word = () => Array.from({ length: 1 + Math.floor(rand() * 4) }, () => alphabet[Math.floor(rand() * alphabet.length)]).join('');
    for (let i = 0; i < 5_000; i++) {
      const a = word();
      const b = rand() < 0.1 ? a : word();
      const want = Math.sign(compareArchived({ ts: 0, id: a }, { ts: 0, id: b }));
      expect(compareIds(a, b), `${a} vs ${b}`).to.equal(want);
      expect(compareEvents({ ts: 1, id: a }, { ts: 2, id: b })).to.equal(-1);
    }
  });
});

describe('encodeVisitStates / decodeVisitStates', () => {
  const state = (lastTs: number, entryFields: Partial<EnrichedEvent> = {}, pageviews: 0 | 1 | 2 = 1): VisitState => ({
    lastTs, lastPath: '/last', pageviews, entry: eventDimensions(ev(lastTs - 10_000, entryFields)),
  });
  const visitors: VisitorState[] = [
    { site: 's', visitorId: '0123456789abcdef0123456789abcdef', state: state(T0, { country: 'FR', utm: { source: 'nl', medium: null, campaign: 'spring', term: null, content: null } }) },
    { site: 's', visitorId: 'ABC', state: state(T0 + 5, { path: '/ünïcødé/😀' }, 2) },
    { site: 't', visitorId: '', state: state(T0 - 7, {}, 0) },
  ];
  /** Only session dimensions are kept: the event dimensions of an entry never matter. */
  const sessionOnly = (v: VisitorState) => ({
    ...v, state: { ...v.state, entry: Object.fromEntries(SESSION_DIMENSIONS.map((d) => [d, v.state.entry[d]])) },
  });

  it('round-trips, sharing repeated strings', () => {
    const bytes = encodeVisitStates(visitors);
    expect(decodeVisitStates(bytes)).to.deep.equal(visitors.map(sessionOnly));
    expect(decodeVisitStates(encodeVisitStates([]))).to.deep.equal([]);
    // A thousand visitors with the same entry: the entry's strings are stored once, visitor ids packed.
    const many = Array.from({ length: 1_000 }, (_, i) => ({ ...visitors[0]!, visitorId: i.toString(16).padStart(32, '0') }));
    expect(encodeVisitStates(many).length).to.be.below(1_000 * 45);
  });

  it('rejects every truncation and corruption with a format error, never another exception', () => {
    const bytes = encodeVisitStates(visitors);
    for (let n = 0; n < bytes.length; n++) expect(() => decodeVisitStates(bytes.subarray(0, n)), `length ${n}`).to.throw(VisitStateFormatError);
    expect(() => decodeVisitStates(Uint8Array.from([...bytes, 0]))).to.throw(VisitStateFormatError, /after the last/);
    expect(() => decodeVisitStates(Uint8Array.from([0x53, 0x56, 9]))).to.throw(VisitStateFormatError, /version 9/);
    const rand = rng(5);
    for (let i = 0; i < 2_000; i++) {
      const copy = Uint8Array.from(bytes);
      copy[Math.floor(rand() * copy.length)] = Math.floor(rand() * 256);
      try {
        decodeVisitStates(copy);
      } catch (e) {
        expect(e).to.be.instanceOf(VisitStateFormatError);
      }
    }
  });
});
