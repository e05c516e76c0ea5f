/**
 * Where the query engine gets a site's settings (time zone, goals), so the engine never knows
 * which: the account store for the sites it holds, the config tree's `sites` for the others
 * (deployments that configure sites statically). Settings are read per query: a goal added to a
 * site applies to its whole history at once, since goals are evaluated over the rollups.
 */
import type { Site } from '../../protocol/admin-schema.js';
import type { SiteSettings } from '../../protocol/schema.js';

export type { SiteSettings };

export interface SiteSettingsSource {
  /** The site's settings; undefined when it has none (defaults apply). */
  settings(site: string): Promise<SiteSettings | undefined>;
}

/** Settings from the config tree's `sites` record. */
export function configSiteSettings(sites: Readonly<Record<string, SiteSettings>>): SiteSettingsSource {
  return {
    async settings(site) {
      return Object.prototype.hasOwnProperty.call(sites, site) ? sites[site] : undefined;
    },
  };
}

export interface StoreSiteSettingsOptions {
  /** The account store's site lookup (AccountStore.getSite). */
  readonly getSite: (id: string) => Promise<Site | null>;
  /** Asked for sites the store does not hold. */
  readonly fallback: SiteSettingsSource;
  /**
   * How long a site's answer (including "not in the store") is reused: a change made through
   * the admin routes shows in queries within this long. 0: ask the store every query.
   */
  readonly cacheMs: number;
  /** Sites cached at most; past it the oldest entry goes. */
  readonly maxSites?: number;
  readonly now?: () => number;
}

/** Settings from the account store when it holds the site, else from `fallback`; cached briefly. */
export function storeSiteSettings(options: StoreSiteSettingsOptions): SiteSettingsSource {
  const now = options.now ?? Date.now;
  const maxSites = options.maxSites ?? 10_000;
  const cache = new Map<string, { readonly site: Site | null; readonly atMs: number }>();
  const inFlight = new Map<string, Promise<Site | null>>();

  const lookup = (id: string): Promise<Site | null> => {
    const cached = cache.get(id);
    if (cached && now() - cached.atMs < options.cacheMs) return Promise.resolve(cached.site);
    const running = inFlight.get(id);
    if (running) return running;
    const p = options.getSite(id).then((site) => {
      cache.delete(id);
      if (cache.size >= maxSites) cache.delete(cache.keys().next().value!);
      if (options.cacheMs > 0) cache.set(id, { site, atMs: now() });
      return site;
    }).finally(() => inFlight.delete(id));
    inFlight.set(id, p);
    return p;
  };

  return {
    async settings(id) {
      const site = await lookup(id);
      if (!site) return options.fallback.settings(id);
      return { timeZone: site.timeZone, goals: site.goals };
    },
  };
}
