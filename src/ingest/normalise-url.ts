/**
 * Page URL → the host and path that rollups group by, plus the campaign parameters hidden in
 * the query string. Normalisation decides which URLs count as "the same page", so every rule
 * here is part of the stored record format:
 *
 * - host: lowercased, a leading `www.` and a trailing dot removed (www.example.com and
 *   example.com are one site in every dashboard, and same-site referrer detection must agree),
 *   internationalised names kept in their ASCII (punycode) form, port kept only when it is not
 *   the scheme's default.
 * - path: no query string, no fragment (hash routes are not pages), no trailing slash except
 *   the root `/`; percent-escapes decoded for readability (`/caf%C3%A9` → `/café`) only where
 *   that is lossless: reserved characters (`%2F`, `%3F`, `%23`…) stay encoded, and a path whose
 *   escapes are malformed or decode to control characters stays as the parser encoded it.
 * - query: `utm_*` parameters are extracted; the query parameters named in
 *   `ingest.keepQueryParams` are kept and appended to the path sorted by name
 *   (`/search?page=2&q=shoes`), so that parameter order never splits a page in two; every other
 *   parameter (session ids, click ids, personal data in links) is dropped.
 *
 * An unusable URL is an expected outcome, returned as a value with a reason, never thrown.
 */

/** Campaign parameters. Values are trimmed, at most 256 characters; absent or blank → null. */
export interface UtmParams {
  readonly source: string | null;
  readonly medium: string | null;
  readonly campaign: string | null;
  readonly term: string | null;
  readonly content: string | null;
}

export const NO_UTM: UtmParams = Object.freeze({ source: null, medium: null, campaign: null, term: null, content: null });

export type NormalisedUrl =
  | {
    readonly ok: true;
    readonly host: string;
    readonly path: string;
    readonly utm: UtmParams;
    /**
     * The ad network whose auto-tagging click id (gclid, msclkid…) is in the query: such visits
     * are paid even when they carry no `utm_medium`. The id itself is dropped.
     */
    readonly paidClick: string | null;
  }
  | { readonly ok: false; readonly reason: string };

export interface UrlNormaliserOptions {
  /** Query parameter names (exact, case-sensitive) that stay part of the page path. */
  readonly keepQueryParams: readonly string[];
}

export type UrlNormaliser = (url: string) => NormalisedUrl;

const MAX_UTM_LENGTH = 256;

const CLICK_IDS: Readonly<Record<string, string>> = { gclid: 'Google', gbraid: 'Google', wbraid: 'Google', msclkid: 'Bing' };

const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/** A trimmed campaign value, or null when absent or blank. */
export function cleanUtm(value: string | undefined | null): string | null {
  if (value == null) return null;
  const v = value.trim();
  if (v === '') return null;
  return v.length > MAX_UTM_LENGTH ? v.slice(0, MAX_UTM_LENGTH) : v;
}

/** The host rules above, applied to a WHATWG URL's hostname and port. */
export function normaliseHost(hostname: string, port = ''): string {
  let h = hostname.toLowerCase();
  if (h.endsWith('.')) h = h.slice(0, -1);
  if (h.startsWith('www.') && h.length > 4) h = h.slice(4);
  return port === '' ? h : `${h}:${port}`;
}

function decodePath(path: string): string {
  try {
    // decodeURI, not decodeURIComponent: it leaves escapes of reserved characters alone, so a
    // decoded path never gains a '/', '?' or '#' that was not a separator in the original.
    const decoded = decodeURI(path);
    return CONTROL_CHARS.test(decoded) ? path : decoded;
  } catch {
    return path; // malformed escape sequence
  }
}

/** application/x-www-form-urlencoded decoding, as URLSearchParams does it; malformed escapes stay as they are. */
function decodeFormComponent(s: string): string {
  if (s.includes('+')) s = s.replaceAll('+', ' ');
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function normalisePath(pathname: string): string {
  let end = pathname.length;
  while (end > 0 && pathname.charCodeAt(end - 1) === 0x2f /* '/' */) end--;
  if (end === 0) return '/';
  let path = end === pathname.length ? pathname : pathname.slice(0, end);
  if (path.charCodeAt(0) !== 0x2f) path = `/${path}`;
  return path.includes('%') ? decodePath(path) : path;
}

export function createUrlNormaliser(options: UrlNormaliserOptions): UrlNormaliser {
  const keep = new Set(options.keepQueryParams);

  return (raw: string): NormalisedUrl => {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      return { ok: false, reason: 'not an absolute URL' };
    }
    if (url.hostname === '') return { ok: false, reason: 'URL has no host' };

    const host = normaliseHost(url.hostname, url.port);
    let path = normalisePath(url.pathname);
    if (url.search.length <= 1) return { ok: true, host, path, utm: NO_UTM, paidClick: null };

    let source: string | null = null;
    let medium: string | null = null;
    let campaign: string | null = null;
    let term: string | null = null;
    let content: string | null = null;
    let paidClick: string | null = null;
    let kept: Array<[string, string]> | undefined;
    // A hand-rolled scan rather than url.searchParams: it decodes only the parameters that
    // are used, where URLSearchParams decodes and allocates a pair for every one.
    const search = url.search;
    for (let start = 1; start < search.length;) {
      let end = search.indexOf('&', start);
      if (end < 0) end = search.length;
      let eq = search.indexOf('=', start);
      if (eq < 0 || eq > end) eq = end;
      const name = decodeFormComponent(search.slice(start, eq));
      const raw = eq < end ? search.slice(eq + 1, end) : '';
      start = end + 1;
      // The first non-blank occurrence of a UTM parameter wins.
      switch (name) {
        case 'utm_source': source ??= cleanUtm(decodeFormComponent(raw)); break;
        case 'utm_medium': medium ??= cleanUtm(decodeFormComponent(raw)); break;
        case 'utm_campaign': campaign ??= cleanUtm(decodeFormComponent(raw)); break;
        case 'utm_term': term ??= cleanUtm(decodeFormComponent(raw)); break;
        case 'utm_content': content ??= cleanUtm(decodeFormComponent(raw)); break;
        case '': break;
        default:
          if (keep.has(name)) (kept ??= []).push([name, decodeFormComponent(raw)]);
          else if (paidClick === null && Object.prototype.hasOwnProperty.call(CLICK_IDS, name)) paidClick = CLICK_IDS[name] ?? null;
      }
    }
    if (kept) {
      // Stable sort: repeated parameters keep their relative order.
      kept.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      path = `${path}?${new URLSearchParams(kept).toString()}`;
    }
    const utm = source ?? medium ?? campaign ?? term ?? content
      ? { source, medium, campaign, term, content }
      : NO_UTM;
    return { ok: true, host, path, utm, paidClick };
  };
}
