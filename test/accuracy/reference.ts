/**
 * The exact reference: what every rollup-backed answer must be, recomputed from the events as
 * the server received them, following the definition in src/aggregate/rollup.ts and nothing
 * else (no code of the aggregator or the query engine is used; only rollup.ts types, propKey
 * and the dimension lists).
 *
 * 1. Fates (`classifyFates`), in send order: bots are not counted; an event whose bucket the
 *    watermark has closed is late; a repeat of (site, id, UTC minute) of a counted event is a
 *    duplicate; the rest are counted. The server's watermark is per event-log partition and we
 *    do not know which sites share one, so lateness is decided from bounds: the watermark is at
 *    least the event's own site's latest time so far minus maxOutOfOrderMs, at most the latest
 *    time of any site so far minus that. An event between the bounds is ambiguous: the
 *    generator never sends one (it drops such late events; any other is an error).
 * 2. Visits (`buildReference`): per visitor identity, counted events in (ts, id as UTF-8 bytes)
 *    order; a gap of sessionTimeoutMs or more starts a new visit. Each event then contributes
 *    exactly what rollup.ts lists, to the bucket of its own time.
 * 3. Questions (`Reference`): totals, local-time series, breakdowns of every dimension, goals and
 *    revenue over any [from, to), visitors as exact sets.
 */
import type { Goal } from '../../protocol/schema.js';
import {
  DIMENSION_KINDS, propKey, type DimensionName, type DimensionValues,
} from '../../src/aggregate/rollup.js';
import type { ExpectedEvent, SentEvent } from './traffic-generator.js';
import { localBucket } from './time-zones.js';

const MINUTE_MS = 60_000;
const QUARTER_MS = 900_000;

export interface LatenessRules {
  readonly allowedLatenessMs: number;
  readonly maxOutOfOrderMs: number;
}

export type Fate = 'counted' | 'bot' | 'duplicate' | 'late' | 'ambiguous';

/** The fate of each sent event (by seq), from the send order and the lateness rules. */
export function classifyFates(sent: readonly SentEvent[], rules: LatenessRules): Fate[] {
  const fates: Fate[] = [];
  const siteMax = new Map<string, number>();
  let globalMax = Number.NEGATIVE_INFINITY;
  const counted = new Set<string>();
  for (const s of sent) {
    const e = s.expected;
    const bucket = Math.floor(e.ts / MINUTE_MS) * MINUTE_MS;
    // Closed once the watermark reaches the bucket end plus the allowed lateness (minute-windows.ts).
    const closesAt = bucket + MINUTE_MS + rules.allowedLatenessMs;
    const low = (siteMax.get(e.site) ?? Number.NEGATIVE_INFINITY) - rules.maxOutOfOrderMs;
    const high = globalMax - rules.maxOutOfOrderMs;
    let fate: Fate;
    if (e.bot) fate = 'bot';
    else if (low >= closesAt) fate = 'late';
    else if (high >= closesAt) fate = 'ambiguous';
    else {
      const key = `${e.site}\u0000${e.id}\u0000${bucket}`;
      fate = counted.has(key) ? 'duplicate' : 'counted';
      counted.add(key);
    }
    fates.push(fate);
    siteMax.set(e.site, Math.max(siteMax.get(e.site) ?? Number.NEGATIVE_INFINITY, e.ts));
    globalMax = Math.max(globalMax, e.ts);
  }
  return fates;
}

/** rollup.ts Counts, as the reference sums them. */
export interface Sums {
  pageviews: number;
  events: number;
  visits: number;
  bounces: number;
  durationMs: number;
}

/** Sums plus the exact set of visitors. */
export interface Agg extends Sums {
  readonly visitors: Set<string>;
}

const newAgg = (): Agg => ({ pageviews: 0, events: 0, visits: 0, bounces: 0, durationMs: 0, visitors: new Set() });

/** One counted event's whole contribution (rollup.ts "What an event contributes"). */
export interface Contribution {
  readonly event: ExpectedEvent;
  readonly pageviews: number;
  readonly events: number;
  readonly visits: number;
  readonly bounces: number;
  readonly durationMs: number;
  /** Dimension values of the visit's first event: the cells of session dimensions. */
  readonly entry: DimensionValues;
  /** exit_page: +1 visit to this path's cell… */
  readonly exitTo: string;
  /** …and −1 to the previous event's path when the event continues a visit. */
  readonly exitFrom: string | null;
}

/** UTF-8 byte order of two strings (rollup.ts orders same-time events by id bytes). */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export interface ReferenceOptions extends LatenessRules {
  readonly sessionTimeoutMs: number;
  /**
   * A what-if for diagnosis, not the definition: count the late events too. A mismatch that
   * this reference explains is an answer that took late-lane events for counted ones.
   */
  readonly countLate?: boolean;
}

export interface GoalResult {
  readonly goal: Goal;
  /** Matching pageviews or custom events. */
  readonly conversions: number;
  /** Distinct visitors with at least one. */
  readonly visitors: Set<string>;
  /** Revenue of the matching events: currency → millionths. */
  readonly revenue: Map<string, number>;
}

/** Revenue: event name → currency → amount in millionths (integers: exact whatever the order). */
export type RevenueMicros = Map<string, Map<string, number>>;

export class Reference {
  /** Per site, contributions in event-time order. */
  private readonly bySite = new Map<string, Contribution[]>();
  private readonly bucketCache = new Map<string, number>();

  constructor(contributions: readonly Contribution[], readonly fates: readonly Fate[]) {
    for (const c of contributions) {
      let list = this.bySite.get(c.event.site);
      if (!list) this.bySite.set(c.event.site, (list = []));
      list.push(c);
    }
    for (const list of this.bySite.values()) list.sort((a, b) => a.event.ts - b.event.ts);
  }

  /** Counted contributions of a site with fromMs <= ts < toMs. */
  contributions(site: string, fromMs: number, toMs: number): Contribution[] {
    const list = this.bySite.get(site) ?? [];
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (list[mid]!.event.ts < fromMs) lo = mid + 1;
      else hi = mid;
    }
    const out: Contribution[] = [];
    for (let i = lo; i < list.length && list[i]!.event.ts < toMs; i++) out.push(list[i]!);
    return out;
  }

  totals(site: string, fromMs: number, toMs: number): Agg {
    const a = newAgg();
    for (const c of this.contributions(site, fromMs, toMs)) addWhole(a, c);
    return a;
  }

  /** Points keyed by local bucket start (UTC ms); buckets without counted events are absent. */
  series(site: string, fromMs: number, toMs: number, interval: 'hour' | 'day', zone: string): Map<number, Agg> {
    const out = new Map<number, Agg>();
    for (const c of this.contributions(site, fromMs, toMs)) {
      const t = this.bucketOf(zone, interval, c.event.ts);
      let a = out.get(t);
      if (!a) out.set(t, (a = newAgg()));
      addWhole(a, c);
    }
    return out;
  }

  /**
   * Cells of one dimension. Session dimensions carry every field; event dimensions (page, event,
   * prop) pageviews, events and visitors; exit_page visits only (and no visitors).
   */
  breakdown(site: string, fromMs: number, toMs: number, dimension: DimensionName): Map<string, Agg> {
    const out = new Map<string, Agg>();
    const cell = (value: string): Agg => {
      let a = out.get(value);
      if (!a) out.set(value, (a = newAgg()));
      return a;
    };
    const kind = DIMENSION_KINDS[dimension];
    for (const c of this.contributions(site, fromMs, toMs)) {
      const e = c.event;
      if (kind === 'session') {
        const value = c.entry[dimension as keyof DimensionValues];
        if (value !== null) addWhole(cell(value), c);
      } else if (kind === 'exit') {
        cell(c.exitTo).visits += 1;
        if (c.exitFrom !== null) cell(c.exitFrom).visits -= 1;
      } else if (dimension === 'prop') {
        for (const [key, value] of Object.entries(e.props)) addEventOnly(cell(propKey(e.name, key, value)), c);
      } else {
        const value = e.dims[dimension as 'page' | 'event'];
        if (value !== null) addEventOnly(cell(value), c);
      }
    }
    // exit_page cells whose +1 and −1 cancel carry nothing.
    if (kind === 'exit') for (const [k, a] of out) if (a.visits === 0) out.delete(k);
    return out;
  }

  /** `prop:<key>` cells: every event (any name) carrying `key`, by the property's value as a string. */
  propBreakdown(site: string, fromMs: number, toMs: number, key: string): Map<string, Agg> {
    const out = new Map<string, Agg>();
    for (const c of this.contributions(site, fromMs, toMs)) {
      if (!Object.prototype.hasOwnProperty.call(c.event.props, key)) continue;
      const value = String(c.event.props[key]);
      let a = out.get(value);
      if (!a) out.set(value, (a = newAgg()));
      addEventOnly(a, c);
    }
    return out;
  }

  /** Property keys seen on the site's counted events in the range. */
  propKeys(site: string, fromMs: number, toMs: number): string[] {
    const keys = new Set<string>();
    for (const c of this.contributions(site, fromMs, toMs)) for (const k of Object.keys(c.event.props)) keys.add(k);
    return [...keys].sort();
  }

  /** Totals of the contributions that pass `keep` (filtered questions). */
  totalsWhere(site: string, fromMs: number, toMs: number, keep: (c: Contribution) => boolean): Agg {
    const a = newAgg();
    for (const c of this.contributions(site, fromMs, toMs)) if (keep(c)) addWhole(a, c);
    return a;
  }

  /** A session-dimension breakdown of the contributions that pass `keep`. */
  breakdownWhere(site: string, fromMs: number, toMs: number, dimension: keyof DimensionValues, keep: (c: Contribution) => boolean): Map<string, Agg> {
    const out = new Map<string, Agg>();
    for (const c of this.contributions(site, fromMs, toMs)) {
      if (!keep(c)) continue;
      const value = c.entry[dimension];
      if (value === null) continue;
      let a = out.get(value);
      if (!a) out.set(value, (a = newAgg()));
      addWhole(a, c);
    }
    return out;
  }

  goals(site: string, goals: readonly Goal[], fromMs: number, toMs: number): GoalResult[] {
    const results = goals.map((goal) => ({ goal, conversions: 0, visitors: new Set<string>(), revenue: new Map<string, number>(), matches: goalMatcher(goal) }));
    for (const c of this.contributions(site, fromMs, toMs)) {
      for (const g of results) {
        if (g.matches(c.event)) {
          g.conversions++;
          addVisitor(g.visitors, c.event);
          const r = c.event.revenue;
          if (r && c.event.type === 'event') g.revenue.set(r.currency, (g.revenue.get(r.currency) ?? 0) + Math.round(r.amount * 1e6));
        }
      }
    }
    return results.map(({ goal, conversions, visitors, revenue }) => ({ goal, conversions, visitors, revenue }));
  }

  revenue(site: string, fromMs: number, toMs: number): RevenueMicros {
    const out: RevenueMicros = new Map();
    for (const c of this.contributions(site, fromMs, toMs)) {
      const r = c.event.revenue;
      if (!r || c.event.type !== 'event') continue;
      let byCurrency = out.get(c.event.name);
      if (!byCurrency) out.set(c.event.name, (byCurrency = new Map()));
      byCurrency.set(r.currency, (byCurrency.get(r.currency) ?? 0) + Math.round(r.amount * 1e6));
    }
    return out;
  }

  private bucketOf(zone: string, interval: 'hour' | 'day', ts: number): number {
    // Offsets are whole quarter hours and change on quarter boundaries: a UTC quarter hour lies
    // in one local hour and one local day, so its bucket is computed once.
    const quarter = Math.floor(ts / QUARTER_MS);
    const key = `${zone}|${interval}|${quarter}`;
    let t = this.bucketCache.get(key);
    if (t === undefined) {
      t = localBucket(zone, interval, quarter * QUARTER_MS);
      this.bucketCache.set(key, t);
    }
    return t;
  }
}

function addWhole(a: Agg, c: Contribution): void {
  a.pageviews += c.pageviews;
  a.events += c.events;
  a.visits += c.visits;
  a.bounces += c.bounces;
  a.durationMs += c.durationMs;
  addVisitor(a.visitors, c.event);
}

function addEventOnly(a: Agg, c: Contribution): void {
  a.pageviews += c.pageviews;
  a.events += c.events;
  addVisitor(a.visitors, c.event);
}

/** An anonymous event (identity '') adds to no visitors (rollup.ts). */
function addVisitor(visitors: Set<string>, e: ExpectedEvent): void {
  if (e.identity !== '') visitors.add(e.identity);
}

/**
 * A goal's test of one counted event (schema.ts Goal): a pageview whose path matches the glob
 * (`*` within a segment, `**` across segments), or a custom event of that name whose properties
 * include every goal property (compared as strings).
 */
export function goalMatcher(goal: Goal): (e: ExpectedEvent) => boolean {
  if (goal.page !== undefined) {
    const pattern = globToRegExp(goal.page);
    return (e) => e.type === 'pageview' && pattern.test(e.path);
  }
  const props = Object.entries(goal.props ?? {});
  return (e) => e.type === 'event' && e.name === goal.event
    && props.every(([k, v]) => Object.prototype.hasOwnProperty.call(e.props, k) && String(e.props[k]) === v);
}

export function globToRegExp(glob: string): RegExp {
  let re = '^';
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i]!;
    if (ch === '*') {
      if (glob[i + 1] === '*') {
        re += '.*';
        i++;
      } else {
        re += '[^/]*';
      }
    } else {
      re += ch.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
    }
  }
  return new RegExp(`${re}$`, 'u');
}

/** Visits and contributions of every counted event. */
export function buildReference(sent: readonly SentEvent[], options: ReferenceOptions): Reference {
  const fates = classifyFates(sent, options);
  const ambiguous = fates.filter((f) => f === 'ambiguous').length;
  if (ambiguous > 0) throw new Error(`${ambiguous} events are neither surely on time nor surely late: the traffic cannot be judged`);
  const byVisitor = new Map<string, ExpectedEvent[]>();
  const contributions: Contribution[] = [];
  sent.forEach((s, i) => {
    if (fates[i] !== 'counted' && !(options.countLate && fates[i] === 'late')) return;
    const e = s.expected;
    if (e.identity === '') {
      // Anonymous: a visit of its own that nothing continues (rollup.ts).
      const pageview = e.type === 'pageview';
      contributions.push({
        event: e, pageviews: pageview ? 1 : 0, events: pageview ? 0 : 1, visits: 1, bounces: pageview ? 1 : 0, durationMs: 0,
        entry: e.dims, exitTo: e.path, exitFrom: null,
      });
      return;
    }
    const key = `${s.expected.site}\u0000${s.expected.identity}`;
    let list = byVisitor.get(key);
    if (!list) byVisitor.set(key, (list = []));
    list.push(s.expected);
  });
  for (const events of byVisitor.values()) {
    events.sort((a, b) => a.ts - b.ts || compareUtf8(a.id, b.id));
    let prev: ExpectedEvent | null = null;
    let entry: DimensionValues | null = null;
    let visitPageviews = 0;
    for (const e of events) {
      const starts = prev === null || e.ts - prev.ts >= options.sessionTimeoutMs;
      if (starts) {
        entry = e.dims;
        visitPageviews = 0;
      }
      let bounces = 0;
      if (e.type === 'pageview') {
        visitPageviews++;
        if (visitPageviews === 1) bounces = 1;
        else if (visitPageviews === 2) bounces = -1;
      }
      contributions.push({
        event: e,
        pageviews: e.type === 'pageview' ? 1 : 0,
        events: e.type === 'event' ? 1 : 0,
        visits: starts ? 1 : 0,
        bounces,
        durationMs: starts ? 0 : e.ts - prev!.ts,
        entry: entry!,
        exitTo: e.path,
        exitFrom: starts ? null : prev!.path,
      });
      prev = e;
    }
  }
  return new Reference(contributions, fates);
}
