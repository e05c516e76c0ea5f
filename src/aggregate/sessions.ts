/**
 * Visits (sessions): what each counted event contributes to visits, bounces, durations, entry
 * (session) dimensions and exit pages, exactly as rollup.ts defines it. One implementation for
 * every path that needs it: the minute windows (which fold events in event-time order, with
 * out-of-order arrivals recomputed), and the query engine's raw-archive path (which answers
 * filtered questions from archived events). Everything here is pure.
 *
 * The fold: a visitor's counted events in (ts, id) order — ids compared as UTF-8 bytes, the raw
 * archive's order (compareArchived, raw-archive.ts) — each stepped from the state the previous
 * ones left (`stepVisit`). The state holds only what a later event's contribution depends on:
 * the previous event's time and path, the visit's entry values, and whether the visit has had
 * no, one, or more pageviews. So a visitor's contributions from some event on depend only on
 * the state before it, which is what lets the windows freeze the state of closed buckets and
 * checkpoint it (`encodeVisitStates`).
 *
 * A state whose lastTs is sessionTimeoutMs or more before every event still to come is as good
 * as no state (the next event starts a visit either way), so holders may drop it then.
 *
 * An anonymous event (visitorId '': Do-Not-Track or no consent, enriched-event.ts) has no
 * visitor whose visit it could continue, and folding all of a site's anonymous events into one
 * "visitor" would make one endless visit of them: each is a visit of its own (`isAnonymous`),
 * stepped from no state, leaving none.
 */
import type { EnrichedEvent } from '../ingest/enriched-event.js';
import { eventDimensions, type DimensionSource } from './event-dimensions.js';
import { SESSION_DIMENSIONS, type Counts, type DimensionValues, type SessionDimension } from './rollup.js';

/** The visitor id of anonymous events. */
export const ANONYMOUS_VISITOR = '';

/** True for an event without a visitor: it starts a visit of its own and leaves no state. */
export const isAnonymous = (visitorId: string): boolean => visitorId === ANONYMOUS_VISITOR;

/** The fields of an event its visit contribution depends on. */
export type SessionEvent = Pick<EnrichedEvent, 'id' | 'ts' | 'type' | 'path'>;

/** The session dimension values a visit takes from its entry event. DimensionValues are EntryValues. */
export type EntryValues = Readonly<Record<SessionDimension, string | null>>;

/** A visitor's fold state after their events so far, in (ts, id) order. */
export interface VisitState {
  /** Time of the previous event, ms since epoch. */
  readonly lastTs: number;
  /** Path of the previous event: the visit's exit page so far. */
  readonly lastPath: string;
  /** The visit's entry values: the session dimension cells its events count in. */
  readonly entry: EntryValues;
  /** Pageviews of the visit so far, capped at 2: bounces only need none, one, or more. */
  readonly pageviews: 0 | 1 | 2;
}

/**
 * What one event adds to the bucket of its own event time. The counts (signed: bounces may be
 * −1) go to the totals and, whole, to the cell of `entry`'s value in every session dimension;
 * `exit_page` gets +1 visits at `exitPage` and, when the event continues a visit, −1 visits at
 * `exitFrom`. Event dimensions and visitors are the event's own (not part of this).
 */
export interface Contribution extends Readonly<Counts> {
  readonly entry: EntryValues;
  readonly exitPage: string;
  /** The previous event's path when this event continues its visit, else null. */
  readonly exitFrom: string | null;
}

export interface VisitStep {
  readonly contribution: Contribution;
  readonly state: VisitState;
}

/**
 * The contribution of `event`, given the state its visitor's earlier events left (null: none,
 * or none that matters any more), and the state after it. `values` are the event's own
 * dimension values (eventDimensions), used when it starts a visit. Precondition: the event
 * comes at or after state.lastTs — the caller folds in (ts, id) order.
 */
export function stepVisit(state: VisitState | null, event: SessionEvent, values: EntryValues, sessionTimeoutMs: number): VisitStep {
  const pageview = event.type === 'pageview';
  const continues = state !== null && event.ts - state.lastTs < sessionTimeoutMs;
  const before = continues ? state.pageviews : 0;
  const entry = continues ? state.entry : values;
  const contribution: Contribution = {
    pageviews: pageview ? 1 : 0,
    events: pageview ? 0 : 1,
    visits: continues ? 0 : 1,
    // +1 at the visit's first pageview, −1 at its second: a one-pageview visit is one bounce.
    bounces: !pageview ? 0 : before === 0 ? 1 : before === 1 ? -1 : 0,
    durationMs: continues ? event.ts - state.lastTs : 0,
    entry,
    exitPage: event.path,
    exitFrom: continues ? state.lastPath : null,
  };
  const after: VisitState = {
    lastTs: event.ts,
    lastPath: event.path,
    entry,
    pageviews: pageview ? (before === 0 ? 1 : 2) : before,
  };
  return { contribution, state: after };
}

/** Equal contributions: the windows stop recomputing a visitor's later events at the first unchanged one. */
export function sameContribution(a: Contribution, b: Contribution): boolean {
  return a.pageviews === b.pageviews && a.events === b.events && a.visits === b.visits && a.bounces === b.bounces
    && a.durationMs === b.durationMs && a.entry === b.entry && a.exitPage === b.exitPage && a.exitFrom === b.exitFrom;
}

/** Equal states (entries by identity: a visit's entry is one object, shared by its steps). */
export function sameState(a: VisitState | null, b: VisitState | null): boolean {
  if (a === null || b === null) return a === b;
  return a.lastTs === b.lastTs && a.lastPath === b.lastPath && a.entry === b.entry && a.pageviews === b.pageviews;
}

/**
 * Compares ids as their UTF-8 bytes, without encoding them: UTF-8 byte order is code point
 * order, which differs from JavaScript's UTF-16 code unit order only where a surrogate (half of
 * a code point above U+FFFF) meets a code unit in U+E000..U+FFFF.
 */
export function compareIds(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const sx = x >= 0xd800 && x <= 0xdfff;
    const sy = y >= 0xd800 && y <= 0xdfff;
    if (sx !== sy) return sx ? 1 : -1;
    return x < y ? -1 : 1;
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

/** The fold's order: event time, then id as UTF-8 bytes (compareArchived's order). */
export function compareEvents(a: Pick<SessionEvent, 'ts' | 'id'>, b: Pick<SessionEvent, 'ts' | 'id'>): number {
  if (a.ts !== b.ts) return a.ts < b.ts ? -1 : 1;
  return compareIds(a.id, b.id);
}

const MINUTE_MS = 60_000;

/** What SessionFold reads of an event. */
export type FoldEvent = SessionEvent & DimensionSource & Pick<EnrichedEvent, 'site' | 'visitorId' | 'bot'>;

export interface EventContribution<E> {
  readonly event: E;
  /** The event's own dimension values: its event dimensions (page, event) come from here. */
  readonly values: DimensionValues;
  readonly contribution: Contribution;
}

export interface SessionFoldOptions {
  readonly sessionTimeoutMs: number;
}

interface SiteFold {
  readonly visitors: Map<string, VisitState>;
  /** The minute of the latest event, and the ids counted in it: repeats count once. */
  minuteMs: number;
  readonly ids: Set<string>;
  latestTs: number;
  prunedAtTs: number;
}

/**
 * The rollup.ts definition applied to a stream of events, for batch use (the raw-archive path):
 * push each site's events in (ts, id) order (sites may interleave); each counted event gives its
 * contribution, others null: bots, and a repeat of an id already counted in the same site and
 * UTC minute (the first in (ts, id) order counts; the windows count the first to arrive, which
 * is the same event whenever a client's retries keep its event time). Lateness is not judged
 * here: pass only the events that count. Memory: one state per visitor seen within the last
 * sessionTimeoutMs of each site's stream, plus one minute's ids.
 * Throws RangeError when a site's events go back in time by a minute or more, or a visitor's
 * events go back at all: the contributions would be wrong.
 */
export class SessionFold<E extends FoldEvent = FoldEvent> {
  private readonly sites = new Map<string, SiteFold>();

  constructor(private readonly options: SessionFoldOptions) {}

  push(event: E): EventContribution<E> | null {
    if (event.bot) return null;
    let site = this.sites.get(event.site);
    if (!site) {
      site = { visitors: new Map(), minuteMs: Number.NEGATIVE_INFINITY, ids: new Set(), latestTs: Number.NEGATIVE_INFINITY, prunedAtTs: Number.NEGATIVE_INFINITY };
      this.sites.set(event.site, site);
    }
    const minuteMs = Math.floor(event.ts / MINUTE_MS) * MINUTE_MS;
    if (minuteMs < site.minuteMs) throw new RangeError(`events of site ${event.site} out of order: ${event.ts} after the minute ${site.minuteMs}`);
    if (minuteMs > site.minuteMs) {
      site.minuteMs = minuteMs;
      site.ids.clear();
    }
    if (site.ids.has(event.id)) return null;
    site.ids.add(event.id);
    const anonymous = isAnonymous(event.visitorId);
    const previous = anonymous ? null : site.visitors.get(event.visitorId) ?? null;
    if (previous !== null && event.ts < previous.lastTs) {
      throw new RangeError(`events of a visitor of site ${event.site} out of order: ${event.ts} after ${previous.lastTs}`);
    }
    const values = eventDimensions(event);
    const { contribution, state } = stepVisit(previous, event, values, this.options.sessionTimeoutMs);
    if (!anonymous) site.visitors.set(event.visitorId, state);
    if (event.ts > site.latestTs) site.latestTs = event.ts;
    this.prune(site);
    return { event, values, contribution };
  }

  /** Drops states no later event can continue: amortised, a sweep per sessionTimeoutMs of stream time. */
  private prune(site: SiteFold): void {
    const timeoutMs = this.options.sessionTimeoutMs;
    if (site.latestTs - site.prunedAtTs < timeoutMs) return;
    site.prunedAtTs = site.latestTs;
    // Events to come are in the current minute or later (push throws otherwise).
    const horizon = site.minuteMs - timeoutMs;
    for (const [visitor, state] of site.visitors) if (state.lastTs <= horizon) site.visitors.delete(visitor);
  }
}

/** Every counted event's contribution, for events in (ts, id) order per site (see SessionFold). */
export function* contributions<E extends FoldEvent>(events: Iterable<E>, options: SessionFoldOptions): Generator<EventContribution<E>> {
  const fold = new SessionFold<E>(options);
  for (const e of events) {
    const c = fold.push(e);
    if (c) yield c;
  }
}

/** One visitor's state, as the windows checkpoint it. */
export interface VisitorState {
  readonly site: string;
  readonly visitorId: string;
  readonly state: VisitState;
}

/** A checkpoint that is not one this code wrote: truncated, corrupt, or of an unknown version. */
export class VisitStateFormatError extends Error {
  override readonly name = 'VisitStateFormatError';
}

/**
 * Checkpoint format, version 1 (readers must keep reading every version they ever wrote):
 *
 *   'S' 'V' 1                     magic and version
 *   varint n, then n strings      the string table: varint (byteLength << 1 | hex), then the
 *                                 bytes — UTF-8, or for hex = 1 a lowercase hex string packed
 *                                 two digits a byte (visitor ids are 32 hex digits)
 *   varint d, then d varints      session dimension names (string indexes), the order of the
 *                                 entry values below; a reader ignores names it does not know
 *                                 and leaves those it misses null
 *   float64 LE baseTs             the smallest lastTs
 *   varint v, then v visitors     site, visitor id (string indexes), lastTs − baseTs,
 *                                 lastPath (string index), pageviews (0, 1, 2), then d entry
 *                                 values as (string index + 1), 0 for null
 *
 * Strings are interned: a value shared by many visitors (a browser, a country) is stored once.
 * Nothing may follow the last visitor.
 */
const MAGIC_0 = 0x53;
const MAGIC_1 = 0x56;
const FORMAT_VERSION = 1;
const HEX = /^(?:[0-9a-f]{2})+$/;

class ByteWriter {
  private buf = new Uint8Array(1024);
  private pos = 0;

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  byte(b: number): void {
    this.room(1);
    this.buf[this.pos++] = b;
  }

  /** Unsigned integers up to 2^53, seven bits a byte. */
  varint(n: number): void {
    this.room(8);
    while (n >= 0x80) {
      this.buf[this.pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.pos++] = n;
  }

  float64(x: number): void {
    this.room(8);
    new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).setFloat64(0, x, true);
    this.pos += 8;
  }

  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

const utf8 = new TextEncoder();

/** The checkpoint bytes of `visitors`' states (the windows' frozen state). */
export function encodeVisitStates(visitors: Iterable<VisitorState>): Uint8Array {
  const index = new Map<string, number>();
  const table: string[] = [];
  const intern = (s: string): number => {
    let i = index.get(s);
    if (i === undefined) {
      i = table.length;
      index.set(s, i);
      table.push(s);
    }
    return i;
  };
  const list: VisitorState[] = [];
  let baseTs = Number.POSITIVE_INFINITY;
  for (const name of SESSION_DIMENSIONS) intern(name);
  for (const v of visitors) {
    list.push(v);
    intern(v.site);
    intern(v.visitorId);
    intern(v.state.lastPath);
    for (const name of SESSION_DIMENSIONS) {
      const value = v.state.entry[name];
      if (value !== null) intern(value);
    }
    if (v.state.lastTs < baseTs) baseTs = v.state.lastTs;
  }
  if (list.length === 0) baseTs = 0;

  const w = new ByteWriter();
  w.byte(MAGIC_0);
  w.byte(MAGIC_1);
  w.byte(FORMAT_VERSION);
  w.varint(table.length);
  for (const s of table) {
    if (HEX.test(s)) {
      w.varint((s.length / 2) * 2 + 1);
      w.bytes(Buffer.from(s, 'hex'));
    } else {
      const bytes = utf8.encode(s);
      w.varint(bytes.length * 2);
      w.bytes(bytes);
    }
  }
  w.varint(SESSION_DIMENSIONS.length);
  for (const name of SESSION_DIMENSIONS) w.varint(index.get(name)!);
  w.float64(baseTs);
  w.varint(list.length);
  for (const { site, visitorId, state } of list) {
    w.varint(index.get(site)!);
    w.varint(index.get(visitorId)!);
    w.varint(state.lastTs - baseTs);
    w.varint(index.get(state.lastPath)!);
    w.byte(state.pageviews);
    for (const name of SESSION_DIMENSIONS) {
      const value = state.entry[name];
      w.varint(value === null ? 0 : index.get(value)! + 1);
    }
  }
  return w.finish();
}

class ByteReader {
  private pos = 0;

  constructor(private readonly buf: Uint8Array) {}

  get done(): boolean {
    return this.pos === this.buf.length;
  }

  byte(): number {
    if (this.pos >= this.buf.length) throw new VisitStateFormatError('checkpoint truncated');
    return this.buf[this.pos++]!;
  }

  varint(): number {
    let n = 0;
    for (let scale = 1; scale <= 2 ** 49; scale *= 0x80) {
      const b = this.byte();
      n += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        if (!Number.isSafeInteger(n)) throw new VisitStateFormatError('varint beyond 2^53');
        return n;
      }
    }
    throw new VisitStateFormatError('varint longer than 8 bytes');
  }

  float64(): number {
    if (this.pos + 8 > this.buf.length) throw new VisitStateFormatError('checkpoint truncated');
    const x = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).getFloat64(0, true);
    this.pos += 8;
    return x;
  }

  bytes(n: number): Uint8Array {
    if (n > this.buf.length - this.pos) throw new VisitStateFormatError('checkpoint truncated');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The visitors' states of a checkpoint written by encodeVisitStates (any version this code
 * knows). Never trusts the bytes: throws VisitStateFormatError on anything that is not exactly
 * such a checkpoint, so a caller can fall back instead of folding garbage.
 */
export function decodeVisitStates(bytes: Uint8Array): VisitorState[] {
  const r = new ByteReader(bytes);
  if (r.byte() !== MAGIC_0 || r.byte() !== MAGIC_1) throw new VisitStateFormatError('not a session checkpoint');
  const version = r.byte();
  if (version !== FORMAT_VERSION) throw new VisitStateFormatError(`unknown checkpoint version ${version}`);
  const count = r.varint();
  // Each string takes at least one byte: a larger count is corrupt, and must not allocate.
  if (count > bytes.length) throw new VisitStateFormatError(`string table of ${count} entries in ${bytes.length} bytes`);
  const table: string[] = new Array<string>(count);
  for (let i = 0; i < count; i++) {
    const header = r.varint();
    const raw = r.bytes(Math.floor(header / 2));
    try {
      table[i] = header % 2 === 1 ? Buffer.from(raw).toString('hex') : strictUtf8.decode(raw);
    } catch {
      throw new VisitStateFormatError(`string ${i} is not UTF-8`);
    }
  }
  const string = (): string => {
    const i = r.varint();
    if (i >= count) throw new VisitStateFormatError(`string index ${i} beyond the table of ${count}`);
    return table[i]!;
  };
  const dimensions = r.varint();
  if (dimensions > bytes.length) throw new VisitStateFormatError(`${dimensions} dimensions in ${bytes.length} bytes`);
  const known = new Set<string>(SESSION_DIMENSIONS);
  const names: Array<SessionDimension | null> = [];
  for (let i = 0; i < dimensions; i++) {
    const name = string();
    names.push(known.has(name) ? (name as SessionDimension) : null);
  }
  const baseTs = r.float64();
  if (!Number.isSafeInteger(baseTs)) throw new VisitStateFormatError(`base time ${baseTs} is not a safe integer`);
  const visitors = r.varint();
  if (visitors > bytes.length) throw new VisitStateFormatError(`${visitors} visitors in ${bytes.length} bytes`);
  const out: VisitorState[] = [];
  for (let i = 0; i < visitors; i++) {
    const site = string();
    const visitorId = string();
    const lastTs = baseTs + r.varint();
    if (!Number.isSafeInteger(lastTs)) throw new VisitStateFormatError(`visitor ${i}: time ${lastTs} is not a safe integer`);
    const lastPath = string();
    const pageviews = r.byte();
    if (pageviews !== 0 && pageviews !== 1 && pageviews !== 2) throw new VisitStateFormatError(`visitor ${i}: pageviews ${pageviews}`);
    const entry = Object.fromEntries(SESSION_DIMENSIONS.map((d) => [d, null])) as Record<SessionDimension, string | null>;
    for (const name of names) {
      const v = r.varint();
      if (v > count) throw new VisitStateFormatError(`visitor ${i}: string index ${v - 1} beyond the table of ${count}`);
      if (name !== null) entry[name] = v === 0 ? null : table[v - 1]!;
    }
    out.push({ site, visitorId, state: { lastTs, lastPath, entry, pageviews } });
  }
  if (!r.done) throw new VisitStateFormatError('bytes after the last visitor');
  return out;
}
