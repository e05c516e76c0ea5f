/**
 * The dimension values of one event (rollup.ts `DimensionValues`), before session attribution:
 * the windows credit event dimensions with them directly and session dimensions with those of
 * the visit's entry event (sessions.ts); the query engine's raw-archive path does the same, so
 * both derive values here and nowhere else.
 *
 * Values, from the enriched event (ingest/enriched-event.ts):
 * - entry_page: the path of any event (a visit can begin with a custom event); page: the path of a
 *   pageview, null for a custom event, so a page's cell and a page goal count views only;
 *   hostname: the host;
 * - source: the human source name ('Direct / None' included: it is a value, not an absence);
 *   referrer: the referrer host, null when there is none ('');
 * - channel; utm_*: the UTM parameters, null when absent or empty;
 * - country, region, city: null when unknown;
 * - browser, os: the names as stored ('Unknown' included, so a browser breakdown still sums to
 *   the total); browser_version 'Chrome 124' and os_version 'iOS 17': the name and the major
 *   version, null when the version is unknown (''), since a version without a number says
 *   nothing the name does not;
 * - device; screen: screenClass(width), null without a screen size;
 * - event: the custom event's name, null for a pageview.
 * Pure: the same event always gives equal values.
 */
import type { EnrichedEvent } from '../ingest/enriched-event.js';
import { screenClass, type DimensionValues } from './rollup.js';

/** The fields of an event its dimension values come from. */
export type DimensionSource = Pick<EnrichedEvent,
  | 'type' | 'name' | 'host' | 'path' | 'referrerHost' | 'source' | 'channel' | 'utm'
  | 'browser' | 'browserVersion' | 'os' | 'osVersion' | 'device' | 'screen' | 'country' | 'region' | 'city'>;

const orNull = (v: string | null): string | null => (v === null || v === '' ? null : v);

/** `name major`, or null when the version is unknown. Versions are stored as '124', '17.4', '10.15'. */
function nameAndMajor(name: string, version: string): string | null {
  if (version === '') return null;
  const dot = version.indexOf('.');
  return `${name} ${dot < 0 ? version : version.slice(0, dot)}`;
}

export function eventDimensions(e: DimensionSource): DimensionValues {
  return {
    entry_page: e.path,
    hostname: e.host,
    source: e.source,
    referrer: orNull(e.referrerHost),
    channel: e.channel,
    utm_source: orNull(e.utm.source),
    utm_medium: orNull(e.utm.medium),
    utm_campaign: orNull(e.utm.campaign),
    utm_term: orNull(e.utm.term),
    utm_content: orNull(e.utm.content),
    country: orNull(e.country),
    region: orNull(e.region),
    city: orNull(e.city),
    browser: e.browser,
    browser_version: nameAndMajor(e.browser, e.browserVersion),
    os: e.os,
    os_version: nameAndMajor(e.os, e.osVersion),
    device: e.device,
    screen: e.screen === null ? null : screenClass(e.screen.width),
    page: e.type === 'pageview' ? e.path : null,
    event: e.type === 'event' ? e.name : null,
  };
}
