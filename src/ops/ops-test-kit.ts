/**
 * Test helpers for reprocessing: synthetic enriched events over several UTC days (with visits
 * crossing midnight, late events, bots, repeats and anonymous events), processing logics (a
 * faulty one and the fix), and a synchronous stand-in for the live aggregator — the minute
 * windows over events in arrival order, tiers rolled after — writing "live" rows to a store.
 */
import { randomUUID } from 'node:crypto';
import { rng } from '../demo/demo-traffic.js';
import { MinuteWindows, type ProcessingLogic, type WindowEvent } from '../aggregate/minute-windows.js';
import { encodeRollup } from '../aggregate/rollup-codec.js';
import { TIERS, type Rollup } from '../aggregate/rollup.js';
import type { RollupStore } from '../aggregate/rollup-store.js';
import { rollTiers } from '../aggregate/tier-roller.js';
import type { EnrichedEvent } from '../ingest/enriched-event.js';

export const MINUTE_MS = 60_000;

export function visitorHash(n: number): string {
  const rand = rng(n * 7919 + 17);
  let s = '';
  for (let i = 0; i < 4; i++) s += Math.floor(rand() * 2 ** 32).toString(16).padStart(8, '0');
  return s;
}

export function enriched(site: string, ts: number, fields: Partial<EnrichedEvent> = {}): EnrichedEvent {
  return {
    v: 2, id: randomUUID(), site, type: 'pageview', name: 'pageview', ts, receivedAt: ts, host: site, path: '/', title: null,
    referrerHost: '', source: 'Direct / None', channel: 'direct', utm: { source: null, medium: null, campaign: null, term: null, content: null },
    browser: 'Firefox', browserVersion: '125', os: 'Linux', osVersion: '', device: 'desktop', bot: false, screen: null, language: null,
    props: {}, revenue: null, visitorId: visitorHash(0), country: null, region: null, city: null, ...fields,
  };
}

export interface TrafficOptions {
  readonly seed: number;
  readonly site: string;
  readonly fromMs: number;
  readonly toMs: number;
  readonly count: number;
  /** Events arrive up to this much out of order (within the live lateness: counted live). */
  readonly maxOutOfOrderMs: number;
  /** Share of events that arrive hours after their time (beyond the live lateness: late lane). */
  readonly lateShare?: number;
}

/** Events of one site in arrival order (the order the live pipeline sees them). */
export function traffic(o: TrafficOptions): EnrichedEvent[] {
  const rand = rng(o.seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
  const stepMs = (o.toMs - o.fromMs) / o.count;
  const out: EnrichedEvent[] = [];
  const late: EnrichedEvent[] = [];
  for (let i = 0; i < o.count; i++) {
    const pageview = rand() < 0.8;
    const drift = Math.floor((i / o.count) * 300);
    const visitor = drift + Math.floor(rand() * 40);
    const ts = Math.max(o.fromMs, Math.round(o.fromMs + i * stepMs - rand() * 0.8 * o.maxOutOfOrderMs));
    const e = enriched(o.site, ts, {
      id: `e${o.seed}-${i}`,
      type: pageview ? 'pageview' : 'event',
      name: pageview ? 'pageview' : pick(['signup', 'download']),
      path: pick(['/', '/pricing', '/blog/a', '/blog/b', '/docs']),
      source: pick(['Direct / None', 'Google', 'Newsletter']),
      country: pick(['FR', 'DE', 'IN', null]),
      props: rand() < 0.2 ? { plan: pick(['free', 'pro']) } : {},
      revenue: !pageview && rand() < 0.3 ? { amount: Math.floor(rand() * 1000) / 4, currency: 'EUR' } : null,
      visitorId: rand() < 0.02 ? '' : visitorHash(visitor),
      bot: rand() < 0.03,
    });
    if (o.lateShare && rand() < o.lateShare) late.push(e);
    else out.push(e);
    // A client retry: the same event again.
    if (rand() < 0.03) out.push(e);
  }
  // Late events arrive at the end, hours after their time.
  return [...out, ...late];
}

/** Drops every event whose id ends in 3 or 7, and files /docs pageviews under /wrong: a bug to fix. */
export const FAULTY_LOGIC: ProcessingLogic = {
  version: 2,
  step: (e: WindowEvent) => (/[37]$/.test(e.id) ? null : e.path === '/docs' ? { ...e, path: '/wrong' } : e),
};

/** The fix: every event as it came. */
export const FIXED_LOGIC: ProcessingLogic = { version: 3, step: (e) => e };

export interface LiveAggregateOptions {
  readonly logic: ProcessingLogic;
  readonly allowedLatenessMs: number;
  readonly maxOutOfOrderMs: number;
  readonly sessionTimeoutMs?: number;
  readonly maxBreakdownKeys?: number;
}

/**
 * What the live aggregator would write for `events` in arrival order: every minute row the
 * windows emit (late events left out), with quarter, hour and day rows rolled after.
 */
export async function liveAggregate(store: RollupStore, events: readonly EnrichedEvent[], o: LiveAggregateOptions): Promise<{ late: number }> {
  const windows = new MinuteWindows({
    maxOutOfOrderMs: o.maxOutOfOrderMs, allowedLatenessMs: o.allowedLatenessMs, idleAdvanceMs: Number.MAX_SAFE_INTEGER,
    maxBreakdownKeys: o.maxBreakdownKeys ?? 200, sessionTimeoutMs: o.sessionTimeoutMs ?? 30 * MINUTE_MS, logic: o.logic,
  }, 0);
  let late = 0;
  events.forEach((event, offset) => {
    if (windows.offer({ offset, event }, 0) === 'late') late++;
  });
  const rows = windows.takeFlush()?.rows ?? [];
  await store.upsert(rows);
  await rollTiers(store, rows, o.maxBreakdownKeys ?? 200);
  return { late };
}

/**
 * Every row of a site in [fromMs, toMs), every tier, encoded: for exact comparisons. Empty rows
 * (nothing counted, no bots: what a reprocess writes over a row an interrupted attempt left)
 * add nothing to any answer and are left out.
 */
export async function snapshot(store: RollupStore, site: string, fromMs: number, toMs: number): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const tier of TIERS) {
    for (const r of await store.read(site, tier, fromMs, toMs)) {
      if (isEmpty(r)) continue;
      out.set(`${tier}@${new Date(r.bucketMs).toISOString()}`, describe(r));
    }
  }
  return out;
}

function isEmpty(r: Rollup): boolean {
  const t = r.totals;
  return t.pageviews === 0 && t.events === 0 && t.visits === 0 && t.bounces === 0 && t.durationMs === 0 && r.bots === 0
    && Object.keys(r.dims).length === 0 && Object.keys(r.revenue).length === 0;
}

function describe(r: Rollup): string {
  return Buffer.from(encodeRollup(r)).toString('base64');
}
