/**
 * User agent → browser, OS, device type and a bot flag.
 *
 * Browser, OS and device come from ua-parser-js 1.x; the bot flag from `isbot`, a maintained,
 * community-updated crawler list (search engines, SEO and AI crawlers, link unfurlers, uptime
 * monitors, headless browsers, HTTP libraries such as curl or python-requests). A bot's
 * events are still stored, with `bot: true`: the aggregator counts them in the rollup's `bots`
 * and keeps them out of visitor metrics.
 *
 * Both parsers cost microseconds (ua-parser-js tens of them), but a site's traffic comes from
 * a few thousand distinct user agents, so results are kept in a bounded LRU cache keyed by the
 * whole string (≤ 1024 chars by the wire schema): the hot path is one Map lookup. Results are
 * frozen and shared between events.
 *
 * Stored values: names as ua-parser-js reports them ('Chrome', 'Mobile Safari', 'Mac OS'…),
 * 'Unknown' when it cannot tell; browser version is the major only ('124'); OS version is at
 * most major.minor ('17.4', '10.15') — patch levels only add cardinality to rollups; '' when
 * unknown. Bots get device 'other' so they never inflate the desktop/mobile split.
 *
 * A missing, empty or whitespace-only user agent is *not* a bot (browser and OS 'Unknown',
 * device 'other'). Server and mobile SDKs legitimately send events without one (`userAgent`
 * is optional on the wire and a TCP connection has no User-Agent header); calling them bots
 * would silently erase those visitors from every metric, while a browser always sends a user
 * agent, so treating the absence as human costs almost nothing in bot detection. Any non-blank
 * string goes to isbot unchanged: it flags, for instance, a single token without spaces
 * ('xyzzy', 'undici'), which no browser sends.
 *
 * Only the first MAX_USER_AGENT_LENGTH characters are read. An event's `userAgent` is capped
 * there by the wire schema, but a WebSocket's User-Agent header can be 16 KiB, on which
 * ua-parser-js spends tens of milliseconds (its patterns are superlinear); real user agents are
 * a few hundred characters. Cache keys are the same prefix, so the cache stays within
 * cacheSize × 1 KiB of strings whatever the headers.
 */
import { isBot } from 'isbot';
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
  /** Distinct user agents kept parsed; default 10 000 (each entry holds the UA string, ≤ 1 KiB); 0 disables the cache. */
  readonly cacheSize?: number;
}

const UNKNOWN = 'Unknown';

/** The wire schema's limit on an event's `userAgent`; longer strings (headers) are read up to it. */
export const MAX_USER_AGENT_LENGTH = 1024;

const EMPTY: UserAgentInfo = Object.freeze({
  browser: UNKNOWN, browserVersion: '', os: UNKNOWN, osVersion: '', device: 'other', bot: false,
});

/** True when a blank user agent carries no information (see the module comment). */
function isBlank(userAgent: string): boolean {
  return userAgent.trim() === '';
}

/** Whether `userAgent` is a known bot, crawler or automated client; false when missing or blank. */
export function isBotUserAgent(userAgent: string | undefined): boolean {
  if (userAgent === undefined) return false;
  // A copy, not a slice: a cached slice would keep the whole (up to 16 KiB) original alive.
  const ua = userAgent.length > MAX_USER_AGENT_LENGTH ? Buffer.from(userAgent.slice(0, MAX_USER_AGENT_LENGTH), 'utf16le').toString('utf16le') : userAgent;
  return !isBlank(ua) && isBot(ua);
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
    const ua = userAgent.length > MAX_USER_AGENT_LENGTH ? Buffer.from(userAgent.slice(0, MAX_USER_AGENT_LENGTH), 'utf16le').toString('utf16le') : userAgent;
    const cached = cache.get(ua);
    if (cached) return cached;
    // Blank strings are not cached: there are arbitrarily many of them and they all mean EMPTY.
    if (isBlank(ua)) return EMPTY;

    const r = parser.setUA(ua).getResult();
    const bot = isBot(ua);
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
    cache.set(ua, info);
    return info;
  };
}
