/**
 * User agent → browser, OS, device type and a bot flag, with ua-parser-js 1.x.
 *
 * Parsing costs tens of microseconds, but a site's traffic comes from a few thousand distinct
 * user agents, so results are kept in a bounded LRU cache keyed by the whole string: the hot
 * path is one Map lookup. Results are frozen and shared between events.
 *
 * Stored values: names as ua-parser-js reports them ('Chrome', 'Mobile Safari', 'Mac OS'…),
 * 'Unknown' when it cannot tell; browser version is the major only ('124'); OS version is at
 * most major.minor ('17.4', '10.15') — patch levels only add cardinality to rollups; '' when
 * unknown.
 */
import UAParser from 'ua-parser-js';
import { LruCache } from './lru-cache.js';

/** The stable set of device types in stored records. */
export type DeviceType = 'desktop' | 'mobile' | 'tablet' | 'other';

export interface UserAgentInfo {
  readonly browser: string;
  readonly browserVersion: string;
  readonly os: string;
  readonly osVersion: string;
  readonly device: DeviceType;
  readonly bot: boolean;
}

export type UserAgentParser = (userAgent: string | undefined) => UserAgentInfo;

export interface UserAgentParserOptions {
  /** Distinct user agents kept parsed; default 10 000 (each entry holds the UA string, ≤ 1 KiB). */
  readonly cacheSize?: number;
}

const UNKNOWN = 'Unknown';

/**
 * A conservative list of tokens that only automated clients send: false positives hide real
 * visitors, so ambiguous tokens stay out ('cubot' is a phone brand, hence the lookbehind).
 * Placeholder until issue 6 replaces it with a maintained crawler list (e.g. the isbot package).
 */
const BOT_PATTERN = new RegExp([
  '(?<!cu)bot', 'crawl', 'spider', 'slurp', 'headless', 'lighthouse', 'pagespeed',
  'facebookexternalhit', 'mediapartners-google', 'google-inspectiontool', 'embedly', 'ia_archiver',
  'pingdom', 'statuscake', 'phantomjs', 'selenium', 'puppeteer', 'scrapy',
  'python-requests', 'python-urllib', 'aiohttp', 'libwww-perl', 'apache-httpclient', 'go-http-client',
  'okhttp', 'node-fetch', 'undici', 'axios/', 'curl/', 'wget/', '^java/',
].join('|'), 'i');

const EMPTY: UserAgentInfo = Object.freeze({
  browser: UNKNOWN, browserVersion: '', os: UNKNOWN, osVersion: '', device: 'other', bot: false,
});

export function isBotUserAgent(userAgent: string): boolean {
  return BOT_PATTERN.test(userAgent);
}

function majorMinor(version: string | undefined): string {
  if (!version) return '';
  const first = version.indexOf('.');
  if (first < 0) return version;
  const second = version.indexOf('.', first + 1);
  return second < 0 ? version : version.slice(0, second);
}

function deviceType(type: string | undefined, knownSoftware: boolean): DeviceType {
  switch (type) {
    case 'mobile': return 'mobile';
    case 'tablet': return 'tablet';
    // ua-parser-js leaves the type undefined for desktops: it only names handheld and
    // special-purpose devices (console, smarttv, wearable, embedded, xr).
    case undefined: return knownSoftware ? 'desktop' : 'other';
    default: return 'other';
  }
}

export function createUserAgentParser(options: UserAgentParserOptions = {}): UserAgentParser {
  const cache = new LruCache<string, UserAgentInfo>(options.cacheSize ?? 10_000);
  const parser = new UAParser();

  return (userAgent: string | undefined): UserAgentInfo => {
    if (!userAgent) return EMPTY;
    const cached = cache.get(userAgent);
    if (cached) return cached;

    const r = parser.setUA(userAgent).getResult();
    const bot = BOT_PATTERN.test(userAgent);
    const browser = r.browser.name ?? UNKNOWN;
    const os = r.os.name ?? UNKNOWN;
    const info: UserAgentInfo = Object.freeze({
      browser,
      browserVersion: r.browser.major ?? '',
      os,
      osVersion: majorMinor(r.os.version),
      device: bot ? 'other' : deviceType(r.device.type, browser !== UNKNOWN || os !== UNKNOWN),
      bot,
    });
    cache.set(userAgent, info);
    return info;
  };
}
