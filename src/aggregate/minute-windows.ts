/**
 * Event-time windows of one event-log partition: one-minute UTC buckets per site, a watermark,
 * allowed lateness, a late lane, and visits. `MinuteWindows` is the pure state machine (no
 * timers, the clock is passed in); `minuteWindows()` is the RxJS operator around it that drives
 * flushes, checkpoints and idle advance from an injectable scheduler.
 *
 * Semantics:
 * - watermark = max event time seen − maxOutOfOrderMs; it only moves forward;
 * - bucket [b, b + 60 s) is open while watermark < b + 60 s + allowedLatenessMs; an event for
 *   an open bucket is counted, restating the bucket if it was already written; an event for a
 *   closed bucket is `late`: an outcome routed to the late lane, not an error;
 * - a partition with no input for idleAdvanceMs (wall clock) moves its watermark to
 *   now − maxOutOfOrderMs − idleAdvanceMs, so the buckets of quiet partitions close; not while
 *   it replays (see replayThroughOffset): records it has yet to replay exist, so it is not
 *   idle, and closing buckets by the clock mid-replay would skip replayed events of buckets
 *   that need them, or make them late; nor while the caller says it was active (lastActiveMs);
 * - event ids are kept per open bucket: a repeated id in the same bucket counts once
 *   (client retries resend the same event time, so they land in the same bucket);
 * - bots are kept out of every number but the bucket's `bots` (distinct bot events of an open
 *   bucket; one for an already closed bucket is only an outcome); the aggregator also counts
 *   them in sluice_aggregate_bot_events_total.
 *
 * Rows are the 'minute' tier rows of rollup.ts, whose definition of what an event contributes
 * is sessions.ts's. A visitor's contributions depend on their events in event-time order, and
 * events arrive in offset order, out of event-time order within maxOutOfOrderMs and the
 * lateness. So the windows keep, per visitor (site, visitorId):
 * - `frozen`: the visit state (sessions.ts VisitState) after all their counted events in CLOSED
 *   buckets. Buckets close in time order and a closed bucket takes no more events, so every
 *   event still to come sorts after those, and this state is final;
 * - `open`: their counted events in open buckets, sorted by (ts, id), each with its current
 *   contribution and the state after it.
 * A new event is inserted in order; its contribution is stepped from the state before it, and
 * every later open event of the visitor is stepped again until one's state comes out unchanged;
 * each bucket whose contents changed is restated in place: counts move by the difference and the
 * visitor joins the new entry's cells; a session cell the visitor may have left gets its sketch
 * rebuilt from the bucket's events when the row is next built, since a visitor cannot be taken
 * out of a sketch (see restate). When buckets close, their events are folded into
 * `frozen` in order and dropped. A frozen state so old that no event still accepted could
 * continue its visit (lastTs ≤ first open bucket start − sessionTimeoutMs) is dropped: a later
 * event starts a new visit with or without it.
 *
 * Determinism (what crash-safety needs, aggregator.ts): a bucket's row is a function of the
 * contributions of its counted events, and of its bots — counts are integer sums (revenue in
 * millionths), sketches unions, and each dimension is capped only when the row is built
 * (rollup-merge.ts capDimension: top maxBreakdownKeys by count, ties by key, rest under
 * OTHER_KEY), from all its values, never from a running top-k. Contributions are a function of
 * the frozen states and of the counted events in (ts, id) order, not of their arrival order.
 * Which events count is decided by the inputs in offset order (lateness; of repeats of an id
 * in a bucket, the first to arrive). So the same inputs over the same frozen states give the
 * same rows, however events were inserted and whatever was restated on the way; a successor
 * replaying the log rebuilds them exactly.
 *
 * Offsets: each open bucket remembers the offset of its first event, so a flush can tell from
 * which offset a restart must re-read to rebuild every open bucket (see aggregator.ts); a
 * checkpoint flush also hands out the frozen states, which are exactly the fold of the events
 * of the buckets closed under its watermark.
 */
import { EMPTY, Observable, asyncScheduler, interval, map, merge, type OperatorFunction, type SchedulerLike } from 'rxjs';
import type { Config } from '../config.js';
import type { EnrichedEvent } from '../ingest/enriched-event.js';
import { eventDimensions, type DimensionSource } from './event-dimensions.js';
import { HyperLogLog, PRECISION } from './hyperloglog.js';
import { capDimension } from './rollup-merge.js';
import {
  DIMENSIONS, DIMENSION_KINDS, SESSION_DIMENSIONS, propKey,
  DIMENSION_SKETCH_PRECISION, type DimCell, type DimensionName, type DimensionValues, type Rollup, type SessionDimension,
} from './rollup.js';
import {
  compareEvents, isAnonymous, sameContribution, sameState, stepVisit,
  type Contribution, type EntryValues, type SessionEvent, type VisitState, type VisitorState,
} from './sessions.js';

export const MINUTE_MS = 60_000;

/** The fields of an EnrichedEvent that windows read. */
export type WindowEvent = Pick<EnrichedEvent, 'id' | 'site' | 'name' | 'ts' | 'visitorId' | 'bot' | 'props' | 'revenue'> & DimensionSource;

export interface WindowInput {
  /** Offset of the record in its partition; inputs arrive in offset order. */
  readonly offset: number;
  /** null for a record that carries no event (dead-lettered): it only moves the position on. */
  readonly event: WindowEvent | null;
}

export type WindowOutcome = 'counted' | 'duplicate' | 'late' | 'replay_skipped' | 'bot';

export type WindowOptions = Pick<Config['aggregate'],
  'maxOutOfOrderMs' | 'allowedLatenessMs' | 'idleAdvanceMs' | 'maxBreakdownKeys' | 'sessionTimeoutMs'> & {
  /** Watermark restored from the last commit. */
  readonly initialWatermarkMs?: number;
  /**
   * Inputs up to this offset were processed before the last commit: those for buckets closed
   * under the restored watermark are already reflected (in a final row or the late lane) and
   * are skipped instead of being routed to the late lane again. Set it only when such inputs
   * will be offered again: until the input at this offset has been offered the windows are
   * replaying, and idle advance waits, so the watermark stays the restored one.
   */
  readonly replayThroughOffset?: number;
  /**
   * Buckets ending at or before this are not emitted while they are open: they stay changed,
   * so their row is emitted once they close (aggregator.ts: a crashed predecessor made them
   * final in the store, and until they close here their rows may lack events it had counted).
   */
  readonly withholdOpenThroughMs?: number;
  /**
   * The last time the caller knew the partition was not idle though no input came (records
   * were waiting for it in the log: aggregator.ts reads the log's offsets): idle advance counts
   * from the later of it and the last input.
   */
  readonly lastActiveMs?: () => number;
  /**
   * Visit states restored from the checkpoint of the last commit: the fold of exactly the
   * counted events of the buckets closed under initialWatermarkMs. None: every visitor starts
   * afresh.
   */
  readonly initialSessions?: Iterable<VisitorState>;
  /**
   * The processing logic every event goes through before it is windowed (see ProcessingLogic);
   * default IDENTITY_LOGIC.
   */
  readonly logic?: ProcessingLogic;
};

/**
 * The logic-version hook (DESIGN invariant 6): one step applied to each decoded event before it
 * is windowed, by the live aggregator (aggregator.ts) and by reprocessing (src/ops), so that a
 * fix of the processing logic is a new `version` of this step, and history recomputed with the
 * new version equals what the live pipeline now computes. `step` returns the event to window
 * (possibly changed), or null to drop it; an input whose event is dropped is treated as an input
 * without an event (it moves the position on, nothing else). It must be a pure function of the
 * event: crash-safety (aggregator.ts) and reprocessing rely on the same inputs giving the same
 * rows. `version` is a positive integer, recorded with the rows the logic built.
 */
export interface ProcessingLogic {
  readonly version: number;
  step(event: WindowEvent): WindowEvent | null;
}

/** Logic version 1: every event as ingest enriched it. */
export const IDENTITY_LOGIC: ProcessingLogic = { version: 1, step: (event) => event };

export interface WindowFlush {
  /**
   * Absolute 'minute' rows of every bucket changed since the previous flush: open ones, and
   * closed ones whose final state was not yet written. Writing them is idempotent.
   */
  readonly rows: readonly Rollup[];
  /** -Infinity until the first event or idle advance. */
  readonly watermarkMs: number;
  /**
   * Where a restart must resume to rebuild every open bucket: the first offset of the oldest
   * open bucket, else the offset after the last input; null before any input.
   */
  readonly commitOffset: number | null;
  /** The last input's offset; null before any input. */
  readonly lastOffset: number | null;
  readonly openBuckets: number;
  /** Outcomes of the events since the previous flush. */
  readonly outcomes: Readonly<Record<WindowOutcome, number>>;
  /**
   * In a checkpoint flush, the frozen visit states: the fold of the counted events of exactly
   * the buckets closed under `watermarkMs` — what a successor resuming at `commitOffset` with
   * this watermark must start from. null in other flushes.
   */
  readonly checkpoint: readonly VisitorState[] | null;
}

/**
 * A counted event of a visitor in an open bucket: what restating the visit and rebuilding
 * sketches need of it, not the event. Every counted event stays until its bucket closes
 * (allowedLatenessMs after its minute), so its size is the windows' memory per event rate.
 *
 * Its own dimension values are not kept either: while it starts a visit they are its
 * contribution's entry; once it continues a visit it always will, since an event inserted
 * before it can only bring its predecessor closer in time (and a frozen state is dropped only
 * when no open event could continue it), so they are never read again.
 */
interface Counted extends SessionEvent {
  readonly bucket: Bucket;
  readonly owner: Visitor;
  /** HyperLogLog.entryOf the visitor id, hashed once for every sketch it joins. */
  readonly visitor: number;
  contribution: Contribution;
  /** The visitor's state after this event. */
  after: VisitState;
}

/**
 * A dimension cell being built: counts, a live sketch (none for exit_page), and the sketch's
 * encoding as a row holds it (DimCell), made when first read after a change. capDimension reads
 * `visitors` only of the cells it keeps, so a flush encodes only kept cells that changed.
 */
class WindowCell implements DimCell {
  pageviews = 0;
  events = 0;
  visits = 0;
  bounces = 0;
  durationMs = 0;
  private encoded: Uint8Array | undefined;
  private sketch: HyperLogLog | null;

  constructor(withVisitors: boolean) {
    this.sketch = withVisitors ? HyperLogLog.empty(DIMENSION_SKETCH_PRECISION) : null;
  }

  /** Adds a visitor by its HyperLogLog.entryOf (hashed once per event, not once per cell). */
  addVisitor(entry: number): void {
    this.sketch!.addEntry(entry);
    this.encoded = undefined;
  }

  /** Empties the sketch, to be filled again with exactly the visitors the cell still has. */
  clearVisitors(): void {
    this.sketch = HyperLogLog.empty(DIMENSION_SKETCH_PRECISION);
    this.encoded = undefined;
  }

  get visitors(): Uint8Array | undefined {
    if (this.sketch === null) return undefined;
    return (this.encoded ??= this.sketch.toBytes());
  }
}

type Cells = Map<string, WindowCell>;

/** A cell of `cells`, made when first needed. */
function cellIn(cells: Cells, key: string, withVisitors: boolean): WindowCell {
  let cell = cells.get(key);
  if (!cell) {
    cell = new WindowCell(withVisitors);
    cells.set(key, cell);
  }
  return cell;
}

/** Index of each session dimension in SESSION_DIMENSIONS. */
const SESSION_INDEX = new Map<DimensionName, number>(SESSION_DIMENSIONS.map((name, i) => [name, i]));

/** The session cells of one entry (one visit's) in one bucket, and how many of the bucket's counted events have that entry now. */
class EntryCells {
  events = 0;
  /** By SESSION_DIMENSIONS index; null where the entry has no value. */
  constructor(readonly cells: ReadonlyArray<WindowCell | null>) {}
}

/**
 * The part of a bucket that depends on visits: totals, session cells and exit cells, restated
 * in place when an earlier event arrives late. Counts move by differences. A sketch cannot lose
 * a visitor, so a session cell a visitor may have left is marked stale, and its sketch is
 * rebuilt from the bucket's events when the row is next built (rebuildStale).
 */
class SessionPart {
  visits = 0;
  bounces = 0;
  durationMs = 0;
  /** Session dimension cells, by SESSION_DIMENSIONS index: an array, not a map by name, since every event touches each. */
  private readonly cells: Cells[] = SESSION_DIMENSIONS.map(() => new Map());
  private readonly exits: Cells = new Map();
  /**
   * The cells of each entry that counted events of the bucket have. An entry is one object per
   * visit, so it is one visitor's: while an event with it is counted here, that visitor is in
   * every one of its cells (rebuildStale puts it back), and the visit's further events only add
   * counts, through the entry's cells, without a lookup per dimension. Anonymous events' entries
   * are their own, never shared: not kept.
   */
  private readonly entries = new Map<EntryValues, EntryCells>();
  /** Values of session cells, by SESSION_DIMENSIONS index, whose sketch may hold a visitor no longer in them. */
  private readonly stale: Array<Set<string> | undefined> = [];
  private staleCount = 0;

  /** Cells of a dimension of this part (session or exit_page). */
  cellsOf(name: DimensionName): Cells | undefined {
    if (name === 'exit_page') return this.exits;
    const i = SESSION_INDEX.get(name);
    return i === undefined ? undefined : this.cells[i];
  }

  /** Adds a counted event's contribution; its visitor (HyperLogLog.entryOf, null when anonymous) joins the entry's cells. */
  add(c: Contribution, visitor: number | null): void {
    let entry = visitor === null ? undefined : this.entries.get(c.entry);
    if (entry === undefined) {
      entry = new EntryCells(this.entryCells(c.entry));
      if (visitor !== null) {
        this.entries.set(c.entry, entry);
        for (const cell of entry.cells) cell?.addVisitor(visitor);
      }
    }
    entry.events++;
    this.count(entry.cells, c, 1);
  }

  /** Takes a (non-anonymous) event's contribution back; true when no counted event has its entry any more. */
  remove(c: Contribution): boolean {
    const entry = this.entries.get(c.entry)!;
    this.count(entry.cells, c, -1);
    if (--entry.events > 0) return false;
    this.entries.delete(c.entry);
    return true;
  }

  /** Replaces a contribution by one of the same entry: same cells, same sketches, only counts move. */
  move(from: Contribution, to: Contribution): void {
    const cells = this.entries.get(from.entry)!.cells;
    this.count(cells, from, -1);
    this.count(cells, to, 1);
  }

  markStale(index: number, value: string): void {
    let values = this.stale[index];
    if (!values) {
      values = new Set();
      this.stale[index] = values;
    }
    values.add(value);
    this.staleCount++;
  }

  /**
   * Rebuilds the sketches of the stale cells from `counted`, the bucket's counted events: each
   * gets exactly the visitors of the events whose entry has its value, as a fold from scratch
   * would add them (a sketch's bytes depend only on the set of visitors, hyperloglog.ts).
   */
  rebuildStale(counted: readonly Counted[]): void {
    if (this.staleCount === 0) return;
    const indexes: number[] = [];
    const names: SessionDimension[] = [];
    const rebuilt: Cells[] = [];
    this.stale.forEach((values, i) => {
      const these: Cells = new Map();
      for (const value of values!) {
        const cell = this.cells[i]!.get(value)!;
        cell.clearVisitors();
        these.set(value, cell);
      }
      indexes.push(i);
      names.push(SESSION_DIMENSIONS[i]!);
      rebuilt.push(these);
    });
    this.stale.length = 0;
    this.staleCount = 0;
    for (const c of counted) {
      const entry = c.contribution.entry;
      for (let k = 0; k < names.length; k++) {
        const value = entry[names[k]!];
        if (value === null) continue;
        rebuilt[k]!.get(value)?.addVisitor(c.visitor);
      }
    }
  }

  private entryCells(entry: EntryValues): Array<WindowCell | null> {
    const out = new Array<WindowCell | null>(SESSION_DIMENSIONS.length);
    for (let i = 0; i < SESSION_DIMENSIONS.length; i++) {
      const value = entry[SESSION_DIMENSIONS[i]!];
      out[i] = value === null ? null : cellIn(this.cells[i]!, value, true);
    }
    return out;
  }

  /** Adds (sign 1) or takes back (−1) a contribution's counts: totals, the entry's cells, exits. */
  private count(cells: ReadonlyArray<WindowCell | null>, c: Contribution, sign: 1 | -1): void {
    const pageviews = sign * c.pageviews;
    const events = sign * c.events;
    const visits = sign * c.visits;
    const bounces = sign * c.bounces;
    const durationMs = sign * c.durationMs;
    this.visits += visits;
    this.bounces += bounces;
    this.durationMs += durationMs;
    for (let i = 0; i < cells.length; i++) {
      const cell = cells[i];
      if (!cell) continue;
      cell.pageviews += pageviews;
      cell.events += events;
      cell.visits += visits;
      cell.bounces += bounces;
      cell.durationMs += durationMs;
    }
    cellIn(this.exits, c.exitPage, false).visits += sign;
    if (c.exitFrom !== null) cellIn(this.exits, c.exitFrom, false).visits -= sign;
  }
}

interface Bucket {
  readonly site: string;
  readonly bucketMs: number;
  readonly firstOffset: number;
  /** Ids of every event taken (counted, bots): repeats count once. */
  readonly ids: Set<string>;
  /** Counted events of visitors (not anonymous ones) in arrival order: what stale session sketches are rebuilt from. */
  readonly counted: Counted[];
  closed: boolean;
  // What depends only on each event itself, never restated.
  pageviews: number;
  events: number;
  bots: number;
  readonly visitors: HyperLogLog;
  /** page, event, prop. */
  readonly eventDims: Map<DimensionName, Cells>;
  /** event name → currency → millionths: integer sums do not depend on order (as rollup-merge.ts). */
  readonly revenueMicros: Map<string, Map<string, number>>;
  readonly session: SessionPart;
}

interface Visitor {
  readonly site: string;
  readonly id: string;
  frozen: VisitState | null;
  /** The frozenByMinute key it is filed under, while frozen. */
  frozenMinute: number | null;
  readonly open: Counted[];
}

const REVENUE_SCALE = 1_000_000;

const noOutcomes = (): Record<WindowOutcome, number> => ({ counted: 0, duplicate: 0, late: 0, replay_skipped: 0, bot: 0 });

/** The visitor to add to sketches (HyperLogLog.entryOf its id): none for an anonymous event. */
const sketchable = (visitorId: string): number | null => (isAnonymous(visitorId) ? null : HyperLogLog.entryOf(visitorId));

function creditEventCell(b: Bucket, name: DimensionName, key: string, pv: number, ev: number, visitor: number | null): void {
  let cells = b.eventDims.get(name);
  if (!cells) {
    cells = new Map();
    b.eventDims.set(name, cells);
  }
  const cell = cellIn(cells, key, true);
  cell.pageviews += pv;
  cell.events += ev;
  if (visitor !== null) cell.addVisitor(visitor);
}

/**
 * Moves a counted event of visitor `v` from its contribution to `next` (a restatement). Counts
 * move by the difference; the visitor joins the new entry's cells. When no other event of the
 * bucket has the old entry any more, the visitor may have left the old entry's cells: each one
 * whose value the new entry does not share, and no other event of the visitor in the bucket
 * still counts in, is marked stale. That check runs at every such move, so whichever event
 * leaves a cell last marks it: no cell a visitor left goes unmarked.
 */
function restate(v: Visitor, c: Counted, next: Contribution): void {
  const part = c.bucket.session;
  const old = c.contribution;
  c.contribution = next;
  if (old.entry === next.entry) {
    part.move(old, next);
    return;
  }
  const emptied = part.remove(old);
  part.add(next, c.visitor);
  if (!emptied) return;
  let left: number[] | null = null;
  for (let i = 0; i < SESSION_DIMENSIONS.length; i++) {
    const name = SESSION_DIMENSIONS[i]!;
    const was = old.entry[name];
    if (was !== null && was !== next.entry[name]) (left ??= []).push(i);
  }
  if (left === null) return;
  for (const other of v.open) {
    if (other.bucket !== c.bucket || other === c) continue;
    const entry = other.contribution.entry;
    for (let k = left.length - 1; k >= 0; k--) {
      const name = SESSION_DIMENSIONS[left[k]!]!;
      if (entry[name] === old.entry[name]) left.splice(k, 1);
    }
    if (left.length === 0) return;
  }
  for (const i of left) part.markStale(i, old.entry[SESSION_DIMENSIONS[i]!]!);
}

/**
 * Where `event` goes in a visitor's open events, sorted by (ts, id): after every event that
 * sorts at or before it. An append is checked first (the usual case on live traffic); else a
 * binary search, since batched or resent traffic makes a visitor's list long and arrivals
 * land anywhere in it.
 */
function insertionPoint(open: readonly Counted[], event: WindowEvent): number {
  let hi = open.length;
  if (hi === 0 || compareEvents(open[hi - 1]!, event) <= 0) return hi;
  let lo = 0;
  hi--;
  // open[hi] sorts after the event; find the first that does.
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareEvents(open[mid]!, event) > 0) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export class MinuteWindows {
  private watermark: number;
  private flushedWatermark: number;
  /** Open buckets by minute, then site: closing walks minutes, of which few are open. */
  private readonly open = new Map<number, Map<string, Bucket>>();
  /** The earliest minute in `open` (Infinity when none): while it stays open, a watermark move closes nothing. */
  private oldestOpenMs = Number.POSITIVE_INFINITY;
  private openCount = 0;
  private readonly dirty = new Set<Bucket>();
  private closedRows: Rollup[] = [];
  private lastOffset: number | null = null;
  private lastInputAtMs: number;
  private inputsSinceFlush = 0;
  /** Something changed since the last checkpoint flush, so a checkpoint is due when asked for. */
  private sinceCheckpoint = false;
  private outcomes = noOutcomes();
  private readonly replayThroughOffset: number;
  /** Visitors by site, then visitor id: their frozen state and their events in open buckets. */
  private readonly visitors = new Map<string, Map<string, Visitor>>();
  /** Visitors with a frozen state, by the minute of its lastTs: pruning walks old minutes only. */
  private readonly frozenByMinute = new Map<number, Set<Visitor>>();

  constructor(private readonly options: WindowOptions, nowMs: number) {
    this.watermark = options.initialWatermarkMs ?? Number.NEGATIVE_INFINITY;
    this.flushedWatermark = this.watermark;
    this.replayThroughOffset = options.replayThroughOffset ?? -1;
    this.lastInputAtMs = nowMs;
    for (const { site, visitorId, state } of options.initialSessions ?? []) {
      const v = this.visitor(site, visitorId);
      this.freeze(v, state);
    }
    this.prune();
  }

  get watermarkMs(): number {
    return this.watermark;
  }

  get openBuckets(): number {
    return this.openCount;
  }

  /** Visitors held (frozen state or open events): the size of the session state. */
  get visitorCount(): number {
    let n = 0;
    for (const site of this.visitors.values()) n += site.size;
    return n;
  }

  /** Take one input; returns the event's outcome, or null for an input without an event. */
  offer(input: WindowInput, nowMs: number): WindowOutcome | null {
    this.lastOffset = input.offset;
    this.lastInputAtMs = nowMs;
    this.inputsSinceFlush++;
    const event = input.event && this.options.logic ? this.options.logic.step(input.event) : input.event;
    if (!event) return null;
    const outcome = this.classify(event, input.offset);
    this.outcomes[outcome]++;
    this.advance(event.ts - this.options.maxOutOfOrderMs);
    return outcome;
  }

  /** True until the input at replayThroughOffset has been offered. */
  get replaying(): boolean {
    return (this.lastOffset ?? -1) < this.replayThroughOffset;
  }

  /** Idle advance: call on every timer tick with the wall clock. */
  tick(nowMs: number): void {
    const { idleAdvanceMs, maxOutOfOrderMs } = this.options;
    if (this.replaying) return;
    const activeMs = Math.max(this.lastInputAtMs, this.options.lastActiveMs?.() ?? Number.NEGATIVE_INFINITY);
    if (nowMs - activeMs >= idleAdvanceMs) this.advance(nowMs - maxOutOfOrderMs - idleAdvanceMs);
  }

  /**
   * What changed since the previous flush, or null when nothing did. With `checkpoint`, the
   * flush also carries the frozen visit states, unless nothing changed since the last flush
   * that did (then the commit of that one still stands).
   */
  takeFlush(checkpoint = false): WindowFlush | null {
    const rows = this.closedRows;
    const withheld: Bucket[] = [];
    const withholdThroughMs = this.options.withholdOpenThroughMs ?? Number.NEGATIVE_INFINITY;
    for (const b of this.dirty) {
      if (b.bucketMs + MINUTE_MS <= withholdThroughMs) withheld.push(b);
      else rows.push(this.row(b));
    }
    if (rows.length > 0 || this.inputsSinceFlush > 0 || this.watermark !== this.flushedWatermark) this.sinceCheckpoint = true;
    const withCheckpoint = checkpoint && this.sinceCheckpoint;
    if (rows.length === 0 && this.inputsSinceFlush === 0 && this.watermark === this.flushedWatermark && !withCheckpoint) return null;
    this.closedRows = [];
    this.dirty.clear();
    for (const b of withheld) this.dirty.add(b);
    this.inputsSinceFlush = 0;
    this.flushedWatermark = this.watermark;
    if (withCheckpoint) this.sinceCheckpoint = false;
    const outcomes = this.outcomes;
    this.outcomes = noOutcomes();

    let commitOffset = this.lastOffset === null ? null : this.lastOffset + 1;
    for (const minute of this.open.values()) {
      for (const b of minute.values()) if (commitOffset === null || b.firstOffset < commitOffset) commitOffset = b.firstOffset;
    }
    return {
      rows, watermarkMs: this.watermark, commitOffset, lastOffset: this.lastOffset, openBuckets: this.openCount, outcomes,
      checkpoint: withCheckpoint ? this.frozenStates() : null,
    };
  }

  private frozenStates(): VisitorState[] {
    const out: VisitorState[] = [];
    for (const site of this.visitors.values()) {
      for (const v of site.values()) if (v.frozen !== null) out.push({ site: v.site, visitorId: v.id, state: v.frozen });
    }
    return out;
  }

  private isClosed(bucketMs: number): boolean {
    return bucketMs + MINUTE_MS + this.options.allowedLatenessMs <= this.watermark;
  }

  private classify(event: WindowEvent, offset: number): WindowOutcome {
    const bucketMs = Math.floor(event.ts / MINUTE_MS) * MINUTE_MS;
    if (this.isClosed(bucketMs)) {
      if (offset <= this.replayThroughOffset) return 'replay_skipped';
      return event.bot ? 'bot' : 'late';
    }
    let minute = this.open.get(bucketMs);
    if (!minute) {
      minute = new Map();
      this.open.set(bucketMs, minute);
      if (bucketMs < this.oldestOpenMs) this.oldestOpenMs = bucketMs;
    }
    let bucket = minute.get(event.site);
    if (!bucket) {
      bucket = {
        site: event.site, bucketMs, firstOffset: offset, ids: new Set(), counted: [], closed: false,
        pageviews: 0, events: 0, bots: 0, visitors: HyperLogLog.empty(PRECISION), eventDims: new Map(), revenueMicros: new Map(),
        session: new SessionPart(),
      };
      minute.set(event.site, bucket);
      this.openCount++;
    }
    if (bucket.ids.has(event.id)) return 'duplicate';
    bucket.ids.add(event.id);
    this.dirty.add(bucket);
    if (event.bot) {
      bucket.bots++;
      return 'bot';
    }
    this.count(bucket, event);
    return 'counted';
  }

  private visitor(site: string, id: string): Visitor {
    let bySite = this.visitors.get(site);
    if (!bySite) {
      bySite = new Map();
      this.visitors.set(site, bySite);
    }
    let v = bySite.get(id);
    if (!v) {
      v = { site, id, frozen: null, frozenMinute: null, open: [] };
      bySite.set(id, v);
    }
    return v;
  }

  private count(bucket: Bucket, event: WindowEvent): void {
    const values = eventDimensions(event);
    const visitor = sketchable(event.visitorId);
    this.addEventPart(bucket, event, values, visitor);

    const timeoutMs = this.options.sessionTimeoutMs;
    if (visitor === null) {
      // Anonymous: a visit of its own, with no visitor to file it under (sessions.ts).
      // Never restated: nothing of it is kept.
      bucket.session.add(stepVisit(null, event, values, timeoutMs).contribution, null);
      return;
    }
    const v = this.visitor(event.site, event.visitorId);
    const open = v.open;
    const at = insertionPoint(open, event);
    const step = stepVisit(at > 0 ? open[at - 1]!.after : v.frozen, event, values, timeoutMs);
    const counted: Counted = {
      id: event.id, ts: event.ts, type: event.type, path: event.path, bucket, owner: v, visitor, contribution: step.contribution, after: step.state,
    };
    open.splice(at, 0, counted);
    bucket.counted.push(counted);
    bucket.session.add(counted.contribution, visitor);

    // Restate the visitor's later events until one's state comes out as it was.
    let state = step.state;
    for (let i = at + 1; i < open.length; i++) {
      const later = open[i]!;
      // Its own values are its entry while it starts a visit, and unread once it continues one (Counted).
      const next = stepVisit(state, later, later.contribution.entry, timeoutMs);
      if (next.contribution.visits > later.contribution.visits) {
        throw new Error(`event ${later.id} of visitor ${v.id} would start a visit again: restated events must only ever continue theirs`);
      }
      if (!sameContribution(next.contribution, later.contribution)) {
        restate(v, later, next.contribution);
        this.dirty.add(later.bucket);
      }
      const settled = sameState(next.state, later.after);
      later.after = next.state;
      if (settled) break;
      state = next.state;
    }
  }

  private addEventPart(b: Bucket, event: WindowEvent, values: DimensionValues, visitor: number | null): void {
    const pageview = event.type === 'pageview';
    const pv = pageview ? 1 : 0;
    const ev = pageview ? 0 : 1;
    b.pageviews += pv;
    b.events += ev;
    if (visitor !== null) b.visitors.addEntry(visitor);
    if (values.page !== null) creditEventCell(b, 'page', values.page, pv, ev, visitor);
    if (values.event !== null) creditEventCell(b, 'event', values.event, pv, ev, visitor);
    for (const key in event.props) {
      if (Object.prototype.hasOwnProperty.call(event.props, key)) creditEventCell(b, 'prop', propKey(event.name, key, event.props[key]!), pv, ev, visitor);
    }
    if (!pageview && event.revenue !== null) {
      let byCurrency = b.revenueMicros.get(event.name);
      if (!byCurrency) {
        byCurrency = new Map();
        b.revenueMicros.set(event.name, byCurrency);
      }
      const { currency, amount } = event.revenue;
      byCurrency.set(currency, (byCurrency.get(currency) ?? 0) + Math.round(amount * REVENUE_SCALE));
    }
  }

  private advance(watermarkMs: number): void {
    if (!(watermarkMs > this.watermark)) return;
    this.watermark = watermarkMs;
    // Buckets close oldest first: nothing closes while the oldest open one stays open (the
    // common case, on every event), and walking every open minute then would cost
    // O(open minutes) per event.
    if (!this.isClosed(this.oldestOpenMs)) return;
    const closing: Bucket[] = [];
    let oldest = Number.POSITIVE_INFINITY;
    for (const [bucketMs, minute] of this.open) {
      if (!this.isClosed(bucketMs)) {
        if (bucketMs < oldest) oldest = bucketMs;
        continue;
      }
      for (const b of minute.values()) {
        b.closed = true;
        closing.push(b);
        // Its final row is pending until the next flush writes it; unchanged buckets were already written whole.
        if (this.dirty.delete(b)) this.closedRows.push(this.row(b));
      }
      this.openCount -= minute.size;
      this.open.delete(bucketMs);
    }
    this.oldestOpenMs = oldest;
    if (closing.length === 0) return;
    // Fold the closed buckets' events into their visitors' frozen states, in order: a visitor's
    // events in closed buckets are a prefix of their open list (closing goes in time order).
    for (const b of closing) {
      for (const c of b.counted) {
        const v = c.owner;
        let last: Counted | undefined;
        while (v.open.length > 0 && v.open[0]!.bucket.closed) last = v.open.shift();
        if (last) this.freeze(v, last.after);
      }
    }
    this.prune();
  }

  private freeze(v: Visitor, state: VisitState): void {
    const minuteMs = Math.floor(state.lastTs / MINUTE_MS) * MINUTE_MS;
    if (v.frozenMinute !== minuteMs) {
      if (v.frozenMinute !== null) this.frozenByMinute.get(v.frozenMinute)?.delete(v);
      let filed = this.frozenByMinute.get(minuteMs);
      if (!filed) {
        filed = new Set();
        this.frozenByMinute.set(minuteMs, filed);
      }
      filed.add(v);
      v.frozenMinute = minuteMs;
    }
    v.frozen = state;
  }

  /**
   * Drops frozen states no accepted event can continue: every event still to be counted is in
   * a bucket at or after the first one not closed, so a state at least sessionTimeoutMs older
   * than that bucket's start would make its next event start a visit anyway.
   */
  private prune(): void {
    if (!Number.isFinite(this.watermark)) return;
    const firstOpenMs = Math.floor((this.watermark - this.options.allowedLatenessMs) / MINUTE_MS) * MINUTE_MS;
    const horizonMs = firstOpenMs - this.options.sessionTimeoutMs;
    for (const [minuteMs, filed] of this.frozenByMinute) {
      if (minuteMs > horizonMs) continue;
      for (const v of filed) {
        if (v.frozen!.lastTs > horizonMs) continue;
        filed.delete(v);
        v.frozen = null;
        v.frozenMinute = null;
        if (v.open.length === 0) this.visitors.get(v.site)!.delete(v.id);
      }
      if (filed.size === 0) this.frozenByMinute.delete(minuteMs);
    }
  }

  private row(b: Bucket): Rollup {
    const part = b.session;
    part.rebuildStale(b.counted);
    const limit = this.options.maxBreakdownKeys;
    const dims: Array<[DimensionName, Record<string, DimCell>]> = [];
    for (const name of DIMENSIONS) {
      const cells = DIMENSION_KINDS[name] === 'event' ? b.eventDims.get(name) : part.cellsOf(name);
      if (!cells) continue;
      // The cells themselves: capDimension copies out the counts and encodings it keeps.
      const capped = capDimension(cells, limit);
      if (Object.keys(capped).length > 0) dims.push([name, capped]);
    }
    const byKey = (a: string, z: string) => (a < z ? -1 : a > z ? 1 : 0);
    const revenue = [...b.revenueMicros.keys()].sort(byKey).map((name): [string, Record<string, number>] => {
      const byCurrency = b.revenueMicros.get(name)!;
      return [name, Object.fromEntries([...byCurrency.keys()].sort(byKey).map((c) => [c, byCurrency.get(c)! / REVENUE_SCALE]))];
    });
    return {
      site: b.site,
      tier: 'minute',
      bucketMs: b.bucketMs,
      totals: { pageviews: b.pageviews, events: b.events, visits: part.visits, bounces: part.bounces, durationMs: part.durationMs },
      visitors: b.visitors.toBytes(),
      dims: Object.fromEntries(dims),
      revenue: Object.fromEntries(revenue),
      bots: b.bots,
    };
  }
}

export type WindowOutput<T extends WindowInput = WindowInput> =
  | { readonly kind: 'late'; readonly input: T }
  | { readonly kind: 'flush'; readonly flush: WindowFlush };

/** An explicit flush; with `checkpoint` it carries the visit states, for a commit. */
export interface FlushRequest {
  /** 'due': a checkpoint if checkpointIntervalMs has passed since the last, as a timer flush. */
  readonly checkpoint: boolean | 'due';
}

export interface MinuteWindowsOperatorOptions extends WindowOptions {
  readonly flushIntervalMs: number;
  /** A timer flush carries a checkpoint once this long has passed (scheduler clock) since the last one. */
  readonly checkpointIntervalMs: number;
  /** Drives flush ticks; inject a TestScheduler in tests. */
  readonly scheduler?: SchedulerLike;
  /** Wall clock for idle advance; defaults to the scheduler's clock. */
  readonly now?: () => number;
  /** Each emission flushes at once (shutdown, tests). */
  readonly flush$?: Observable<FlushRequest>;
  /**
   * While it returns true, timer ticks still advance idle partitions but take no flush (the
   * caller is still writing the previous one): what changes meanwhile goes into the next flush,
   * so the flush rate adapts to how fast the store takes them. Explicit flushes (flush$) are
   * not held. Ticks also take no flush while the windows replay.
   */
  readonly holdFlush?: () => boolean;
}

/**
 * The windows of one partition as an operator: emits `late` as soon as a late input arrives
 * and a `flush` on each tick (every flushIntervalMs, or on flush$) at which something changed,
 * and a last flush, with a checkpoint, when the source completes. A timer flush carries a
 * checkpoint every checkpointIntervalMs. Rows of open buckets in a flush are their state at
 * that moment; a source error ends the stream without a flush, because state that failed
 * half-way must not be written or committed.
 */
export function minuteWindows<T extends WindowInput>(options: MinuteWindowsOperatorOptions): OperatorFunction<T, WindowOutput<T>> {
  return (source) => new Observable<WindowOutput<T>>((subscriber) => {
    const scheduler = options.scheduler ?? asyncScheduler;
    const now = options.now ?? (() => scheduler.now());
    const windows = new MinuteWindows(options, now());
    let checkpointedAtMs = scheduler.now();
    // A fault in the window logic ends the stream with an error, never a half-applied flush.
    const guarded = <R>(work: () => R): R | undefined => {
      try {
        return work();
      } catch (e) {
        subscriber.error(e);
        return undefined;
      }
    };
    const flush = (checkpoint: boolean) => {
      if (checkpoint) checkpointedAtMs = scheduler.now();
      const f = guarded(() => windows.takeFlush(checkpoint));
      if (f) subscriber.next({ kind: 'flush', flush: f });
    };
    // Only timer ticks advance idle partitions by the clock; flush$ flushes what is there.
    const ticks = merge(
      interval(options.flushIntervalMs, scheduler).pipe(map(() => null)),
      (options.flush$ ?? EMPTY),
    ).subscribe((request) => {
      const due = () => scheduler.now() - checkpointedAtMs >= options.checkpointIntervalMs;
      if (request === null) {
        guarded(() => windows.tick(now()));
        // While replaying, the buckets being rebuilt were written whole by the predecessor: a
        // flush now would overwrite their rows with partial ones (final ones among them, and
        // the coarse rows rolled from them), so the rows wait until the replay is through.
        if (windows.replaying || options.holdFlush?.()) return;
        flush(due());
      } else {
        flush(request.checkpoint === 'due' ? due() : request.checkpoint);
      }
    });
    const inputs = source.subscribe({
      next: (input) => {
        if (guarded(() => windows.offer(input, now())) === 'late') subscriber.next({ kind: 'late', input });
      },
      error: (e: unknown) => subscriber.error(e),
      complete: () => {
        flush(true);
        subscriber.complete();
      },
    });
    return () => {
      ticks.unsubscribe();
      inputs.unsubscribe();
    };
  });
}
