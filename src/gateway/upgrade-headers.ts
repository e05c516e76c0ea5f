/**
 * What a WebSocket upgrade request tells about the client, read from headers any client can
 * forge: every value is bounded in length and charset here, and a value that does not fit is
 * left out (never an error, never a throw). What is read:
 *
 * - `Origin`: normalised to lower-case `scheme://host[:port]` (http or https only, default port
 *   dropped), the form a site's allowed origins are compared in. Absent when missing, `null`
 *   (sandboxed frames, file: pages), repeated, not ASCII (browsers send IDN hosts in punycode),
 *   or anything but a bare origin.
 * - `DNT: 1` and `Sec-GPC: 1`: the client's Do-Not-Track and Global Privacy Control signals. Only
 *   the value 1 is a signal (`DNT: 0` says tracking is allowed); when a header is repeated, one
 *   `1` among its values is enough: privacy errs on the side of the signal.
 * - `User-Agent` and `X-Forwarded-For`: as sent, cut at a length bound.
 * - CDN geo headers, only from the CDN the operator says is in front (`CdnGeoHeaders`): a CDN
 *   overwrites its own headers but passes every other one through, so trusting all of them
 *   would let a client forge its place with another CDN's header names. The values are the geo
 *   hint forms of ingest (geo-location.ts), which normalises them further. A region is a
 *   subdivision code of the country, so it is kept only with a known country.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** Which CDN's geo headers the operator trusts: the one its WebSocket traffic comes through. */
export type CdnGeoHeaders = 'none' | 'cloudflare' | 'vercel' | 'cloudfront';
export const CDN_GEO_HEADERS: readonly CdnGeoHeaders[] = ['none', 'cloudflare', 'vercel', 'cloudfront'];

/** The fields of the connection context (frame-connection.ts) an upgrade request fills in. */
export interface UpgradeFields {
  readonly userAgent?: string;
  readonly origin?: string;
  readonly forwardedFor?: string;
  readonly dnt?: true;
  readonly gpc?: true;
  readonly country?: string;
  readonly region?: string;
  readonly city?: string;
}

/** Node's `IncomingMessage.headersDistinct`: every header's values, repeats kept apart. */
export type DistinctHeaders = Readonly<Record<string, readonly string[] | undefined>>;

/** The wire schema's `Event.userAgent` limit: a longer one is cut, as no parser needs more. */
export const MAX_USER_AGENT_LENGTH = 1024;
/** The client address comes first in X-Forwarded-For; a longer chain is cut (proxies append). */
export const MAX_FORWARDED_FOR_LENGTH = 1024;
/** The admin schema's limit for an allowed origin. */
const MAX_ORIGIN_LENGTH = 300;
/** Region and city names beyond the geo hint's limit (geo-location.ts) are dropped, not cut. */
const MAX_GEO_NAME_LENGTH = 100;
/** Raw bytes read for a geo name: percent-encoded UTF-8 takes up to 9 bytes per character. */
const MAX_GEO_RAW_LENGTH = 9 * MAX_GEO_NAME_LENGTH;

/** Scheme, host (no user info, path, query or fragment) and optional port, as browsers send it. */
const BARE_ORIGIN = /^https?:\/\/[\x21-\x7e]+$/i;
const NOT_IN_HOST = /[/?#@\\%]/;
const COUNTRY = /^[A-Za-z]{2}$/;
/** What CDNs send for "unknown" (geo-location.ts treats them as no country). */
const UNKNOWN_COUNTRIES = new Set(['XX', 'ZZ']);
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const PERCENT_ESCAPE = /%[0-9A-Fa-f]{2}/;
/** Characters Node's parser hands over as latin1: bytes 0x80..0xff of a UTF-8 value. */
const HIGH_BYTE = /[\u0080-\u00ff]/;

/** Header names per CDN: country, region (ISO 3166-2 subdivision code), city. */
const GEO_HEADER_NAMES: Readonly<Record<Exclude<CdnGeoHeaders, 'none'>, readonly [string, string, string]>> = {
  // CF-IPCountry always; region and city with the "Add visitor location headers" managed transform.
  cloudflare: ['cf-ipcountry', 'cf-region-code', 'cf-ipcity'],
  // Vercel percent-encodes the city.
  vercel: ['x-vercel-ip-country', 'x-vercel-ip-country-region', 'x-vercel-ip-city'],
  cloudfront: ['cloudfront-viewer-country', 'cloudfront-viewer-country-region', 'cloudfront-viewer-city'],
};

/** A header's one value; undefined when absent or repeated (a repeat of a single-valued header is not to be guessed at). */
function single(headers: DistinctHeaders, name: string): string | undefined {
  const values = headers[name];
  return values !== undefined && values.length === 1 ? values[0] : undefined;
}

/** A header sent once or more, its values joined as Node joins them; cut at `maxLength`. */
function joined(headers: DistinctHeaders, name: string, maxLength: number): string | undefined {
  const values = headers[name];
  if (values === undefined || values.length === 0) return undefined;
  const value = values.join(', ');
  // A slice of a long string can keep the whole original alive (V8 sliced strings); a copy of
  // the cut part bounds what an open connection retains to maxLength.
  return value.length > maxLength ? Buffer.from(value.slice(0, maxLength), 'utf16le').toString('utf16le') : value;
}

/** Whether a boolean privacy header says 1, in any of its values or list items. */
function signalled(headers: DistinctHeaders, name: string): boolean {
  const values = headers[name];
  if (values === undefined) return false;
  for (const value of values) {
    if (value.length > 64) continue; // a real signal is one character
    for (const item of value.split(',')) if (item.trim() === '1') return true;
  }
  return false;
}

/**
 * The origin in the form allowed origins are compared in; undefined for anything that is not
 * a bare http(s) origin.
 */
export function normaliseOrigin(value: string): string | undefined {
  const trimmed = value.trim();
  if (trimmed.length > MAX_ORIGIN_LENGTH || !BARE_ORIGIN.test(trimmed) || NOT_IN_HOST.test(trimmed.slice(trimmed.indexOf('//') + 2))) return undefined;
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    return undefined;
  }
  if (url.host === '' || url.username !== '' || url.password !== '') return undefined;
  return `${url.protocol}//${url.host}`; // WHATWG URL lower-cases scheme and host and drops a default port
}

/**
 * A geo name as sent: percent-decoded when it is percent-encoded (Vercel), UTF-8 recovered
 * from the latin1 Node reads header bytes as; undefined when it cannot be read cleanly.
 */
function geoName(raw: string | undefined): string | undefined {
  if (raw === undefined || raw.length > MAX_GEO_RAW_LENGTH) return undefined;
  let text = raw;
  if (HIGH_BYTE.test(text)) {
    const decoded = Buffer.from(text, 'latin1').toString('utf8');
    if (decoded.includes('\ufffd')) return undefined; // not UTF-8: garbage, not a place
    text = decoded;
  }
  if (PERCENT_ESCAPE.test(text)) {
    try {
      text = decodeURIComponent(text);
    } catch {
      return undefined; // a malformed escape or an encoding that is not UTF-8
    }
  }
  text = text.trim();
  if (text === '' || text.length > MAX_GEO_NAME_LENGTH || CONTROL.test(text)) return undefined;
  return text;
}

/** Everything the upgrade request tells; fields it does not tell (or tells badly) are absent. */
export function readUpgradeHeaders(headers: DistinctHeaders, cdnGeoHeaders: CdnGeoHeaders): UpgradeFields {
  const fields: { -readonly [K in keyof UpgradeFields]: UpgradeFields[K] } = {};
  const userAgent = joined(headers, 'user-agent', MAX_USER_AGENT_LENGTH);
  if (userAgent !== undefined) fields.userAgent = userAgent;
  const origin = single(headers, 'origin');
  const normalised = origin === undefined ? undefined : normaliseOrigin(origin);
  if (normalised !== undefined) fields.origin = normalised;
  const forwardedFor = joined(headers, 'x-forwarded-for', MAX_FORWARDED_FOR_LENGTH);
  if (forwardedFor !== undefined) fields.forwardedFor = forwardedFor;
  if (signalled(headers, 'dnt')) fields.dnt = true;
  if (signalled(headers, 'sec-gpc')) fields.gpc = true;
  if (cdnGeoHeaders !== 'none') {
    const [countryName, regionName, cityName] = GEO_HEADER_NAMES[cdnGeoHeaders];
    const country = single(headers, countryName)?.trim();
    if (country !== undefined && COUNTRY.test(country)) {
      fields.country = country;
      const region = UNKNOWN_COUNTRIES.has(country.toUpperCase()) ? undefined : geoName(single(headers, regionName));
      if (region !== undefined) fields.region = region;
    }
    const city = geoName(single(headers, cityName));
    if (city !== undefined) fields.city = city;
  }
  return fields;
}

/**
 * `request.headersDistinct` where Node has it; built from `headers` otherwise (and for plain
 * header objects in tests), where repeats are already joined.
 */
export function distinctHeaders(request: { readonly headers: IncomingHttpHeaders; readonly headersDistinct?: DistinctHeaders }): DistinctHeaders {
  if (request.headersDistinct !== undefined) return request.headersDistinct;
  const out: Record<string, readonly string[]> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value : [value];
  }
  return out;
}
