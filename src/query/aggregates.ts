/**
 * What the engine accumulates for one output (a total, a series point, a breakdown row) and
 * the metric definitions over it (rollup.ts): bounce rate = bounces / visits, visit duration =
 * durationMs / visits, views per visit = pageviews / visits; visitors the HyperLogLog union,
 * never a sum; conversions the goal's completions, unique conversions their visitors' union,
 * conversion rate unique conversions / visitors.
 *
 * An output has a `base` (the events the query counts) and, in goal mode, a `goal` part (the
 * goal completions among them): visitors, pageviews and events are then those of the
 * completions and the conversion rate divides by the base's visitors.
 */
import type { QueryMetricName, QueryMetrics } from '../../protocol/query-schema.js';
import { HyperLogLog } from '../aggregate/hyperloglog.js';
import { zeroCounts, type Counts } from '../aggregate/rollup.js';

/** Revenue sums in millionths of a unit, as rollup-merge.ts does: exact, order-independent. */
const REVENUE_SCALE = 1_000_000;

export class Agg {
  readonly counts: Counts = zeroCounts();
  /** The union so far, once two sketches were added (or one live one). */
  private sketch: HyperLogLog | null = null;
  /**
   * The one stored sketch added so far, kept as bytes: an output covered by a single row (a
   * series point served by one hour or day row) is counted from its blob — by the count the
   * store remembered for it — without parsing or copying the sketch.
   */
  private single: Uint8Array | null = null;
  /** Some part added counts without a sketch (a "(other)" cell): the union is unknown. */
  private unknown = false;
  private readonly revenueMicros = new Map<string, number>();
  private memoCount: number | null = null;

  addCounts(c: Counts): void {
    this.counts.pageviews += c.pageviews;
    this.counts.events += c.events;
    this.counts.visits += c.visits;
    this.counts.bounces += c.bounces;
    this.counts.durationMs += c.durationMs;
  }

  /** Union a stored sketch in; the first one fixes the precision. The bytes must not change afterwards. */
  addSketch(bytes: Uint8Array): void {
    this.memoCount = null;
    if (this.sketch === null && this.single === null) {
      this.single = bytes;
      return;
    }
    this.live().mergeBytes(bytes);
  }

  addLiveSketch(s: HyperLogLog): void {
    this.memoCount = null;
    if (this.sketch === null && this.single === null) this.sketch = s.clone();
    else this.live().merge(s);
  }

  addVisitor(visitorId: string, precision: number): void {
    this.memoCount = null;
    if (this.sketch === null && this.single === null) this.sketch = HyperLogLog.empty(precision);
    this.live().add(visitorId);
  }

  /** The union as a live sketch, parsing the single stored one first when that is all there is. */
  private live(): HyperLogLog {
    if (this.sketch === null) {
      this.sketch = HyperLogLog.fromBytes(this.single!);
      this.single = null;
    }
    return this.sketch;
  }

  markUnknown(): void {
    this.unknown = true;
  }

  addRevenue(currency: string, amount: number): void {
    this.revenueMicros.set(currency, (this.revenueMicros.get(currency) ?? 0) + Math.round(amount * REVENUE_SCALE));
  }

  addRevenueMap(byCurrency: Readonly<Record<string, number>>): void {
    for (const [currency, amount] of Object.entries(byCurrency)) this.addRevenue(currency, amount);
  }

  merge(other: Agg): void {
    this.addCounts(other.counts);
    if (other.single) this.addSketch(other.single);
    else if (other.sketch) this.addLiveSketch(other.sketch);
    if (other.unknown) this.unknown = true;
    for (const [c, micros] of other.revenueMicros) this.revenueMicros.set(c, (this.revenueMicros.get(c) ?? 0) + micros);
  }

  /** Distinct visitors; null when unknown. */
  visitors(): number | null {
    if (this.unknown) return null;
    if (this.memoCount === null) this.memoCount = this.single ? HyperLogLog.countOf(this.single) : this.sketch ? this.sketch.count() : 0;
    return this.memoCount;
  }

  revenue(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const c of [...this.revenueMicros.keys()].sort()) out[c] = this.revenueMicros.get(c)! / REVENUE_SCALE;
    return out;
  }

  isEmpty(): boolean {
    const c = this.counts;
    return c.pageviews === 0 && c.events === 0 && c.visits === 0 && c.bounces === 0 && c.durationMs === 0
      && (this.single === null || HyperLogLog.countOf(this.single) === 0) && (this.sketch === null || this.sketch.isEmpty())
      && !this.unknown && this.revenueMicros.size === 0;
  }
}

/** One output: what the query counts and, in goal mode, the goal completions among it. */
export interface Output {
  readonly base: Agg;
  readonly goal: Agg | null;
}

export const newOutput = (goalMode: boolean): Output => ({ base: new Agg(), goal: goalMode ? new Agg() : null });

export function mergeOutput(into: Output, from: Output): void {
  into.base.merge(from.base);
  if (into.goal && from.goal) into.goal.merge(from.goal);
}

const ratio = (n: number, d: number, scale = 1): number | null => (d === 0 ? null : (n / d) * scale);

/**
 * The requested metrics of an output. In goal mode `denominator` is the visitors the
 * conversion rate divides by (the output's own base unless the caller shares one, as a goal
 * breakdown does).
 */
export function metricsOf(out: Output, metrics: readonly QueryMetricName[], denominator?: Agg): QueryMetrics {
  const m: QueryMetrics = {};
  const main = out.goal ?? out.base;
  const c = main.counts;
  for (const name of metrics) {
    switch (name) {
      case 'visitors': m.visitors = main.visitors(); break;
      case 'visits': m.visits = c.visits; break;
      case 'pageviews': m.pageviews = c.pageviews; break;
      case 'events': m.events = c.events; break;
      case 'views_per_visit': m.views_per_visit = ratio(c.pageviews, c.visits); break;
      case 'bounce_rate': m.bounce_rate = ratio(c.bounces, c.visits, 100); break;
      case 'visit_duration': m.visit_duration = ratio(c.durationMs, c.visits, 1 / 1000); break;
      case 'conversions': m.conversions = c.pageviews + c.events; break;
      case 'unique_conversions': m.unique_conversions = main.visitors(); break;
      case 'conversion_rate': {
        const uniques = main.visitors();
        const all = (denominator ?? out.base).visitors();
        m.conversion_rate = uniques === null || all === null ? null : ratio(uniques, all, 100);
        break;
      }
      case 'revenue': m.revenue = main.revenue(); break;
    }
  }
  return m;
}

/** The value a row is ranked by: nulls (unknown) rank below every number. */
export function rankValue(m: QueryMetrics, metric: QueryMetricName): number | null {
  if (metric === 'revenue') {
    const r = m.revenue ?? {};
    return Object.values(r).reduce((a, b) => a + b, 0);
  }
  const v = m[metric];
  return typeof v === 'number' ? v : null;
}
