/**
 * Where a visitor is, as the record keeps it (country, region, city: EnrichedEvent's fields),
 * and how a geo hint becomes one.
 *
 * A hint comes from the edge: an edge collector or a server SDK forwarding its CDN's headers
 * sends `geo` on the event (schema.ts `Event.geo`), or the transport knows it for the whole
 * connection. The values are the dimension values of rollups, so one place is spelled one way
 * whatever told it, the hint or the GeoIP database (geo-database.ts):
 * - country: ISO 3166-1 alpha-2, upper case. 'XX' and 'ZZ' (what CDNs send for "unknown") are no
 *   country.
 * - region: an ISO 3166-2 code 'US-CA', upper case; a hint's bare subdivision code ('CA', as some
 *   CDNs send it) is prefixed with the country; anything else is taken as the region's name.
 *   A code names its country: a hint without a country gets it from the code, and a hint whose
 *   code names another country than its own contradicts itself.
 * - city: a name, as given (trimmed).
 */

export interface GeoLocation {
  readonly country: string | null;
  readonly region: string | null;
  readonly city: string | null;
}

export interface GeoHint {
  readonly country?: string;
  readonly region?: string;
  readonly city?: string;
}

export const NO_GEO: GeoLocation = Object.freeze({ country: null, region: null, city: null });

const COUNTRY = /^[A-Za-z]{2}$/;
const REGION_CODE = /^([A-Za-z]{2})-([A-Za-z0-9]{1,3})$/;
const SUBDIVISION_CODE = /^[A-Za-z0-9]{1,3}$/;
const CONTROL = /[\u0000-\u001f\u007f]/;
/** Longest region or city name kept (the wire schema's limit; longer connection hints are dropped). */
export const MAX_GEO_NAME_LENGTH = 100;
const UNKNOWN_COUNTRIES = new Set(['XX', 'ZZ']);

export type HintResult =
  | { readonly ok: true; readonly geo: GeoLocation | null }
  | { readonly ok: false; readonly path: string; readonly message: string };

function name(value: string | undefined): string | null {
  if (value === undefined) return null;
  const trimmed = value.trim();
  return trimmed === '' || trimmed.length > MAX_GEO_NAME_LENGTH || CONTROL.test(trimmed) ? null : trimmed;
}

/**
 * The location a hint tells: null when it tells nothing (no field, or only unknown markers), so
 * that the next source is asked. A value that is not well-formed is left out (the wire schema
 * has rejected those already; a connection's hint is best effort). The one contradiction, a
 * region code of another country, is an outcome: `strict` (an event's own hint) reports it, else
 * the region is left out.
 */
export function geoFromHint(hint: GeoHint, strict: boolean): HintResult {
  let country: string | null = null;
  if (hint.country !== undefined && COUNTRY.test(hint.country)) {
    country = hint.country.toUpperCase();
    if (UNKNOWN_COUNTRIES.has(country)) country = null;
  }
  let region: string | null = null;
  const regionText = name(hint.region);
  if (regionText !== null) {
    const code = REGION_CODE.exec(regionText);
    if (code) {
      const of = code[1]!.toUpperCase();
      if (country === null) {
        country = of;
        region = regionText.toUpperCase();
      } else if (of === country) {
        region = regionText.toUpperCase();
      } else if (strict) {
        return { ok: false, path: '/geo/region', message: `/geo/region: ${regionText} is a region of ${of}, not of country ${country}` };
      }
    } else if (country !== null && SUBDIVISION_CODE.test(regionText)) {
      region = `${country}-${regionText.toUpperCase()}`;
    } else {
      region = regionText;
    }
  }
  const city = name(hint.city);
  if (country === null && region === null && city === null) return { ok: true, geo: null };
  return { ok: true, geo: { country, region, city } };
}
