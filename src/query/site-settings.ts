/**
 * Where the query engine gets a site's settings (time zone, goals). Today they come from the
 * config tree (`sites` in config.ts); the account store (issue 6) will implement the same
 * interface, so the engine never knows which. Settings are read per query: a goal added to a
 * site applies to its whole history at once, since goals are evaluated over the rollups.
 */
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
