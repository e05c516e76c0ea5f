/**
 * Test helpers for the query engine: random minute rows of the rollup model (rollup.ts), their
 * coarser tiers rolled with rollup-merge.ts, and brute-force answers merged from the minute rows
 * alone — the reference the engine's tier plans must reproduce exactly (sketch unions are
 * idempotent and associative, so the same visitors give the same registers and counts).
 */
import { HyperLogLog } from '../aggregate/hyperloglog.js';
import { rng } from '../demo/demo-traffic.js';
import { RollupAccumulator, bucketOf, mergeRollups } from '../aggregate/rollup-merge.js';
import { DIMENSION_SKETCH_PRECISION, propKey, TIER_MS, type DimCell, type DimensionName, type Rollup, type Tier } from '../aggregate/rollup.js';
import type { RollupStore } from '../aggregate/rollup-store.js';

interface CellBuild {
  pageviews: number; events: number; visits: number; bounces: number; durationMs: number;
  sketch: HyperLogLog | null;
}

const SOURCES = ['Google', 'Direct / None', 'Newsletter', 'Twitter'];
const PAGES = ['/', '/pricing', '/blog/a', '/blog/b/c', '/signup'];
const EVENTS = ['signup', 'purchase', 'download'];
const PLANS = ['pro', 'free'];

/**
 * Random minute rows for `site` in [fromMs, toMs): each minute has a row with probability
 * `density`; a row's visitors come from a pool of `visitors` ids. Session cells (source,
 * country) take whole "visits", event cells (page, event, prop) pageviews and events.
 */
export function randomMinuteRows(site: string, fromMs: number, toMs: number, seed: number, density = 0.3, visitors = 400): Rollup[] {
  const rnd = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const rows: Rollup[] = [];
  for (let b = bucketOf('minute', fromMs); b < toMs; b += TIER_MS.minute) {
    if (b < fromMs || rnd() >= density) continue;
    const totals = { pageviews: 0, events: 0, visits: 0, bounces: 0, durationMs: 0 };
    const all = HyperLogLog.empty();
    const dims: Partial<Record<DimensionName, Map<string, CellBuild>>> = {};
    const cell = (dim: DimensionName, key: string, sketch: boolean): CellBuild => {
      const m = (dims[dim] ??= new Map());
      let c = m.get(key);
      if (!c) {
        c = { pageviews: 0, events: 0, visits: 0, bounces: 0, durationMs: 0, sketch: sketch ? HyperLogLog.empty(DIMENSION_SKETCH_PRECISION) : null };
        m.set(key, c);
      }
      return c;
    };
    const revenue: Record<string, Record<string, number>> = {};
    const n = 1 + Math.floor(rnd() * 6);
    for (let i = 0; i < n; i++) {
      const visitor = `v${Math.floor(rnd() * visitors)}`;
      const pageview = rnd() < 0.7;
      const starts = rnd() < 0.4;
      const c = {
        pageviews: pageview ? 1 : 0, events: pageview ? 0 : 1, visits: starts ? 1 : 0,
        bounces: pageview && starts ? 1 : pageview && rnd() < 0.2 ? -1 : 0, durationMs: starts ? 0 : Math.floor(rnd() * 90_000),
      };
      const add = (into: { pageviews: number; events: number; visits: number; bounces: number; durationMs: number }) => {
        into.pageviews += c.pageviews; into.events += c.events; into.visits += c.visits; into.bounces += c.bounces; into.durationMs += c.durationMs;
      };
      add(totals);
      all.add(visitor);
      for (const [dim, value] of [['source', pick(SOURCES)], ['country', rnd() < 0.1 ? null : pick(['DE', 'IN', 'NP', 'US'])]] as const) {
        if (value === null) continue;
        const s = cell(dim, value, true);
        add(s);
        s.sketch!.add(visitor);
      }
      const path = pick(PAGES);
      if (pageview) {
        const p = cell('page', path, true);
        p.pageviews++;
        p.sketch!.add(visitor);
        const pp = cell('prop', propKey('pageview', 'author', pick(['ann', 'bob'])), true);
        pp.pageviews++;
        pp.sketch!.add(visitor);
      } else {
        const name = pick(EVENTS);
        const e = cell('event', name, true);
        e.events++;
        e.sketch!.add(visitor);
        const pp = cell('prop', propKey(name, 'plan', pick(PLANS)), true);
        pp.events++;
        pp.sketch!.add(visitor);
        if (name === 'purchase') {
          const r = (revenue[name] ??= {});
          const cur = rnd() < 0.7 ? 'EUR' : 'USD';
          r[cur] = (r[cur] ?? 0) + Math.round(rnd() * 10_000) / 100;
        }
      }
      const exit = cell('exit_page', path, false);
      exit.visits += starts ? 1 : 0;
    }
    const outDims: Partial<Record<DimensionName, Record<string, DimCell>>> = {};
    for (const [dim, m] of Object.entries(dims) as Array<[DimensionName, Map<string, CellBuild>]>) {
      outDims[dim] = Object.fromEntries([...m].map(([k, c]) => {
        const d: DimCell = { pageviews: c.pageviews, events: c.events, visits: c.visits, bounces: c.bounces, durationMs: c.durationMs };
        if (c.sketch) d.visitors = c.sketch.toBytes();
        return [k, d];
      }));
    }
    rows.push({ site, tier: 'minute', bucketMs: b, totals, visitors: all.toBytes(), dims: outDims, revenue, bots: 0 });
  }
  return rows;
}

/** The rows of every coarser tier that `minuteRows` roll up to (uncapped: maxKeys large). */
export function rollTiers(minuteRows: readonly Rollup[], maxKeys = 10_000): Rollup[] {
  const out: Rollup[] = [];
  for (const tier of ['quarter', 'hour', 'day'] as const satisfies readonly Tier[]) {
    const groups = new Map<number, Rollup[]>();
    for (const r of minuteRows) {
      const b = bucketOf(tier, r.bucketMs);
      const g = groups.get(b);
      if (g) g.push(r);
      else groups.set(b, [r]);
    }
    for (const [b, rows] of groups) out.push(mergeRollups(rows, rows[0]!.site, tier, b, maxKeys));
  }
  return out;
}

export async function storeWithTiers(store: RollupStore, minuteRows: readonly Rollup[]): Promise<void> {
  await store.upsert(minuteRows);
  await store.upsert(rollTiers(minuteRows));
}

/** The brute-force merge of the minute rows starting in [fromMs, toMs). */
export function bruteMerge(minuteRows: readonly Rollup[], fromMs: number, toMs: number): RollupAccumulator {
  const acc = new RollupAccumulator('brute', 'minute', 0);
  for (const r of minuteRows) if (r.bucketMs >= fromMs && r.bucketMs < toMs) acc.add(r);
  return acc;
}
