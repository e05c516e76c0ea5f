/**
 * Where versioned rollups live, without changing the store's schema: the rows of a reprocessed
 * (site, UTC day) are stored under a derived site key, `${site}@v${version}`, beside the live
 * rows (stored under the site itself, version LIVE_VERSION). '@' cannot occur in a site id
 * (protocol/schema.ts SiteId), so a derived key never names another site, and no tenant can
 * ask for one: every read of versioned rows goes through VersionedRollupStore, which maps the
 * rows back to their site.
 *
 * The switch chunk is the UTC day: every tier's buckets nest in it (a day row is the day), so
 * each row belongs to exactly one day and a range read assembled per day counts no bucket twice
 * and misses none.
 */
export const LIVE_VERSION = 0;
export const DAY_MS = 86_400_000;

const SITE_KEY = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** The store key of `site`'s rows of rollup `version`: the site itself for LIVE_VERSION. */
export function versionSiteKey(site: string, version: number): string {
  if (!SITE_KEY.test(site)) throw new RangeError(`not a site id: ${JSON.stringify(site)}`);
  if (!Number.isInteger(version) || version < 0) throw new RangeError(`rollup version must be a non-negative integer, got ${version}`);
  return version === LIVE_VERSION ? site : `${site}@v${version}`;
}

/** The UTC day index (days since the epoch) holding `ms`. */
export function dayOf(ms: number): number {
  return Math.floor(ms / DAY_MS);
}

/** Start of UTC day `day`, ms since the epoch. */
export function dayStartMs(day: number): number {
  return day * DAY_MS;
}

/** 'YYYY-MM-DD' of UTC day `day`. */
export function dayLabel(day: number): string {
  return new Date(dayStartMs(day)).toISOString().slice(0, 10);
}

/** The days [fromDay, toDay) of a range given in ms: both ends must be UTC day starts. */
export function daysOfRange(fromMs: number, toMs: number): number[] {
  if (!Number.isSafeInteger(fromMs) || !Number.isSafeInteger(toMs) || fromMs % DAY_MS !== 0 || toMs % DAY_MS !== 0) {
    throw new RangeError(`a range of days must start and end at UTC midnight: [${fromMs}, ${toMs})`);
  }
  if (toMs <= fromMs) throw new RangeError(`empty range of days: [${fromMs}, ${toMs})`);
  const out: number[] = [];
  for (let d = dayOf(fromMs); d < dayOf(toMs); d++) out.push(d);
  return out;
}
