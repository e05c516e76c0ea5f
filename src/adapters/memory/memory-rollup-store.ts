/**
 * In-memory RollupStore for the embedded default and tests: rows keyed by site and bucket,
 * replaced whole on upsert (absolute values), read back in bucket order.
 */
import type { MinuteRollup, RollupStore } from '../../aggregate/rollup-store.js';

export class MemoryRollupStore implements RollupStore {
  private readonly sites = new Map<string, Map<number, MinuteRollup>>();
  private readonly watermarks = new Map<number, number>();

  async upsert(rows: readonly MinuteRollup[]): Promise<void> {
    for (const row of rows) {
      let site = this.sites.get(row.site);
      if (!site) {
        site = new Map();
        this.sites.set(row.site, site);
      }
      // Copy so that a caller mutating its row afterwards cannot change what is stored.
      site.set(row.bucketMs, {
        ...row,
        visitors: new Uint8Array(row.visitors),
        pages: { ...row.pages },
        sources: { ...row.sources },
      });
    }
  }

  async read(site: string, fromMs: number, toMs: number): Promise<MinuteRollup[]> {
    const rows = this.sites.get(site);
    if (!rows) return [];
    const out: MinuteRollup[] = [];
    for (const row of rows.values()) if (row.bucketMs >= fromMs && row.bucketMs < toMs) out.push(row);
    return out.sort((a, b) => a.bucketMs - b.bucketMs);
  }

  async setWatermark(partition: number, watermarkMs: number): Promise<void> {
    const prev = this.watermarks.get(partition);
    if (prev === undefined || watermarkMs > prev) this.watermarks.set(partition, watermarkMs);
  }

  async watermark(): Promise<number | null> {
    if (this.watermarks.size === 0) return null;
    return Math.min(...this.watermarks.values());
  }

  async close(): Promise<void> {}
}
