/**
 * CurrentVisitors: how many distinct visitors a site has had in the last five minutes, shared
 * by every process. Real implementation: Redis (adapters/redis); embedded: adapters/memory.
 *
 * Contract (test/contract/current-visitors.contract.ts):
 * - `record` remembers, per site and visitor, the latest time the visitor was seen. The time
 *   is the event time clamped to the recorder's clock, so a source with a fast clock cannot
 *   keep a visitor "current" into the future; an older event never moves a visitor back.
 * - `count(site, nowMs)` is the number of distinct visitors of `site` last seen after
 *   nowMs - CURRENT_WINDOW_MS. A visitor seen after nowMs counts too (clocks of recorder and
 *   reader differ a little; being seen "after now" is being seen recently).
 * - Events already older than the window when recorded are ignored; sites never mix.
 * - Storage per site is bounded by the visitors of the window: older ones are trimmed.
 * Failures throw; counts are a live indicator, and a caller may show "unknown" instead.
 */

export const CURRENT_WINDOW_MS = 5 * 60_000;

export interface VisitorSeen {
  readonly site: string;
  /** The pseudonymous visitor id (never a raw identifier). */
  readonly visitorId: string;
  /** Event time, ms since epoch. */
  readonly tsMs: number;
}

export interface CurrentVisitors {
  record(entries: readonly VisitorSeen[]): Promise<void>;
  count(site: string, nowMs: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * The latest clamped time per (site, visitor) of a batch, dropping entries already out of the
 * window: what both implementations write, once per visitor per call.
 */
export function latestSeen(entries: readonly VisitorSeen[], nowMs: number): Map<string, Map<string, number>> {
  const cutoff = nowMs - CURRENT_WINDOW_MS;
  const bySite = new Map<string, Map<string, number>>();
  for (const e of entries) {
    if (!Number.isFinite(e.tsMs)) continue;
    const ts = Math.min(e.tsMs, nowMs);
    if (ts <= cutoff) continue;
    let visitors = bySite.get(e.site);
    if (!visitors) {
      visitors = new Map();
      bySite.set(e.site, visitors);
    }
    const prev = visitors.get(e.visitorId);
    if (prev === undefined || ts > prev) visitors.set(e.visitorId, ts);
  }
  return bySite;
}
