/**
 * In-process CurrentVisitors for the embedded default and tests.
 *
 * Per site, a Map from visitor to last-seen ms kept in the order visitors were last moved
 * forward, so the front is (nearly) the oldest: `record` trims expired visitors from the front
 * and `count` scans only what is left. Memory is bounded twice: by the window (expired
 * visitors are trimmed, quiet sites dropped) and by `maxVisitors` in total — past it, the
 * least recently active site loses its oldest visitors first, so a count under pressure is an
 * undercount, never an overcount.
 */
import { CURRENT_WINDOW_MS, latestSeen, type CurrentVisitors, type VisitorSeen } from '../../query/current-visitors.js';

export interface MemoryCurrentVisitorsOptions {
  /** Visitors remembered across all sites; default 1 000 000. */
  readonly maxVisitors?: number;
  /** The recorder's clock, which event times are clamped to. */
  readonly now?: () => number;
}

export class MemoryCurrentVisitors implements CurrentVisitors {
  /** Site map order: least recently recorded first. */
  private readonly sites = new Map<string, Map<string, number>>();
  private total = 0;
  private readonly maxVisitors: number;
  private readonly now: () => number;

  constructor(options: MemoryCurrentVisitorsOptions = {}) {
    this.maxVisitors = options.maxVisitors ?? 1_000_000;
    this.now = options.now ?? Date.now;
  }

  async record(entries: readonly VisitorSeen[]): Promise<void> {
    const nowMs = this.now();
    const cutoff = nowMs - CURRENT_WINDOW_MS;
    for (const [site, seen] of latestSeen(entries, nowMs)) {
      let visitors = this.sites.get(site);
      if (visitors) this.sites.delete(site);
      else visitors = new Map();
      this.sites.set(site, visitors);
      for (const [visitor, ts] of seen) {
        const prev = visitors.get(visitor);
        if (prev !== undefined && prev >= ts) continue;
        if (prev !== undefined) visitors.delete(visitor);
        else this.total++;
        visitors.set(visitor, ts);
      }
      this.trim(site, visitors, cutoff);
    }
    // A quiet site's visitors all expire; drop the least recently recorded sites when they have.
    for (const [site, visitors] of this.sites) {
      const dropped = this.trim(site, visitors, cutoff);
      if (!dropped && this.total <= this.maxVisitors) break;
    }
    this.evictOverCap();
  }

  async count(site: string, nowMs: number): Promise<number> {
    const visitors = this.sites.get(site);
    if (!visitors) return 0;
    const cutoff = nowMs - CURRENT_WINDOW_MS;
    let n = 0;
    for (const ts of visitors.values()) if (ts > cutoff) n++;
    return n;
  }

  /** Visitors remembered now, across sites (for tests of the bound). */
  size(): number {
    return this.total;
  }

  async close(): Promise<void> {
    this.sites.clear();
    this.total = 0;
  }

  /** Drop expired visitors from the front of a site; returns true if the site was dropped whole. */
  private trim(site: string, visitors: Map<string, number>, cutoff: number): boolean {
    for (const [visitor, ts] of visitors) {
      if (ts > cutoff) break;
      visitors.delete(visitor);
      this.total--;
    }
    if (visitors.size > 0) return false;
    this.sites.delete(site);
    return true;
  }

  private evictOverCap(): void {
    for (const [site, visitors] of this.sites) {
      if (this.total <= this.maxVisitors) return;
      for (const visitor of visitors.keys()) {
        if (this.total <= this.maxVisitors) break;
        visitors.delete(visitor);
        this.total--;
      }
      if (visitors.size === 0) this.sites.delete(site);
    }
  }
}
