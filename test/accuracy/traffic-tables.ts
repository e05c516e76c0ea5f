/**
 * The vocabulary of the accuracy traffic, each entry with the dimension values ingest is
 * expected to give it, written out by hand from the documented rules (normalise-url.ts,
 * referrer.ts, user-agent.ts, geo-location.ts, event-dimensions.ts). The reference trusts these
 * tables, never the project's parsers; traffic-tables.test.ts checks them against the parsers so
 * that a disagreement is reported where it arises rather than as a wrong breakdown row.
 */

/** A user agent and what it stands for. `null` versions: the dimension has no value. */
export interface AgentSpec {
  readonly ua: string | undefined;
  readonly browser: string;
  /** 'Chrome 131': name and major (event-dimensions.ts), null when the version is unknown. */
  readonly browserVersion: string | null;
  readonly os: string;
  readonly osVersion: string | null;
  readonly device: 'desktop' | 'mobile' | 'tablet' | 'other';
  readonly bot: boolean;
  /** Screens such a device reports (CSS pixels); empty: the source sends none. */
  readonly screens: ReadonlyArray<{ readonly width: number; readonly height: number }>;
}

const DESKTOP_SCREENS = [{ width: 1920, height: 1080 }, { width: 1440, height: 900 }, { width: 1366, height: 768 }, { width: 2560, height: 1440 }];
const PHONE_SCREENS = [{ width: 390, height: 844 }, { width: 412, height: 915 }, { width: 360, height: 800 }];
const TABLET_SCREENS = [{ width: 820, height: 1180 }, { width: 1024, height: 1366 }, { width: 800, height: 1280 }];

export const HUMAN_AGENTS: readonly AgentSpec[] = [
  {
    ua: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
    browser: 'Chrome', browserVersion: 'Chrome 131', os: 'Windows', osVersion: 'Windows 10', device: 'desktop', bot: false, screens: DESKTOP_SCREENS,
  },
  {
    ua: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36',
    browser: 'Chrome', browserVersion: 'Chrome 130', os: 'Windows', osVersion: 'Windows 10', device: 'desktop', bot: false, screens: DESKTOP_SCREENS,
  },
  {
    ua: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86',
    browser: 'Edge', browserVersion: 'Edge 131', os: 'Windows', osVersion: 'Windows 10', device: 'desktop', bot: false, screens: DESKTOP_SCREENS,
  },
  {
    ua: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/115.0.0.0',
    browser: 'Opera', browserVersion: 'Opera 115', os: 'Windows', osVersion: 'Windows 10', device: 'desktop', bot: false, screens: DESKTOP_SCREENS,
  },
  {
    ua: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
    browser: 'Safari', browserVersion: 'Safari 17', os: 'Mac OS', osVersion: 'Mac OS 10', device: 'desktop', bot: false, screens: DESKTOP_SCREENS,
  },
  {
    ua: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36',
    browser: 'Chrome', browserVersion: 'Chrome 130', os: 'Mac OS', osVersion: 'Mac OS 10', device: 'desktop', bot: false, screens: DESKTOP_SCREENS,
  },
  {
    ua: 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
    browser: 'Firefox', browserVersion: 'Firefox 133', os: 'Linux', osVersion: null, device: 'desktop', bot: false, screens: DESKTOP_SCREENS,
  },
  {
    ua: 'Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
    browser: 'Firefox', browserVersion: 'Firefox 133', os: 'Ubuntu', osVersion: null, device: 'desktop', bot: false, screens: DESKTOP_SCREENS,
  },
  {
    ua: 'Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
    browser: 'Chrome', browserVersion: 'Chrome 131', os: 'Chromium OS', osVersion: 'Chromium OS 14541', device: 'desktop', bot: false, screens: DESKTOP_SCREENS,
  },
  {
    ua: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
    browser: 'Mobile Safari', browserVersion: 'Mobile Safari 17', os: 'iOS', osVersion: 'iOS 17', device: 'mobile', bot: false, screens: PHONE_SCREENS,
  },
  {
    ua: 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1',
    browser: 'Mobile Safari', browserVersion: 'Mobile Safari 18', os: 'iOS', osVersion: 'iOS 18', device: 'mobile', bot: false, screens: PHONE_SCREENS,
  },
  {
    ua: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36',
    browser: 'Chrome', browserVersion: 'Chrome 131', os: 'Android', osVersion: 'Android 14', device: 'mobile', bot: false, screens: PHONE_SCREENS,
  },
  {
    ua: 'Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36',
    browser: 'Samsung Internet', browserVersion: 'Samsung Internet 23', os: 'Android', osVersion: 'Android 13', device: 'mobile', bot: false, screens: PHONE_SCREENS,
  },
  {
    ua: 'Mozilla/5.0 (Android 14; Mobile; rv:132.0) Gecko/132.0 Firefox/132.0',
    browser: 'Firefox', browserVersion: 'Firefox 132', os: 'Android', osVersion: 'Android 14', device: 'mobile', bot: false, screens: PHONE_SCREENS,
  },
  {
    ua: 'Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
    browser: 'Mobile Safari', browserVersion: 'Mobile Safari 17', os: 'iOS', osVersion: 'iOS 17', device: 'tablet', bot: false, screens: TABLET_SCREENS,
  },
  {
    ua: 'Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
    browser: 'Chrome', browserVersion: 'Chrome 131', os: 'Android', osVersion: 'Android 14', device: 'tablet', bot: false, screens: TABLET_SCREENS,
  },
];

/** A server SDK forwarding events without a user agent: a human of unknown browser (user-agent.ts). */
export const SERVER_AGENT: AgentSpec = {
  ua: undefined, browser: 'Unknown', browserVersion: null, os: 'Unknown', osVersion: null, device: 'other', bot: false, screens: [],
};

export const BOT_AGENTS: readonly string[] = [
  'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
  'Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
  'Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36',
  'Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)',
  'curl/8.4.0',
  'python-requests/2.31.0',
];

/** How a visit arrived: a referrer and/or campaign parameters, and the attribution they imply. */
export interface ArrivalSpec {
  readonly referrer?: string;
  /** Appended to the landing URL's query. */
  readonly query?: string;
  /** Campaign fields sent as event fields rather than in the URL. */
  readonly fields?: Readonly<Partial<Record<'utm_source' | 'utm_medium' | 'utm_campaign' | 'utm_term' | 'utm_content', string>>>;
  readonly source: string;
  /** Referrer host, null: none. */
  readonly referrerHost: string | null;
  readonly channel: string;
  readonly utm: Readonly<Record<'source' | 'medium' | 'campaign' | 'term' | 'content', string | null>>;
  /** Relative frequency. */
  readonly weight: number;
}

const NO_UTM = { source: null, medium: null, campaign: null, term: null, content: null } as const;

export const DIRECT_ARRIVAL: ArrivalSpec = { source: 'Direct / None', referrerHost: null, channel: 'direct', utm: NO_UTM, weight: 30 };

export const ARRIVALS: readonly ArrivalSpec[] = [
  DIRECT_ARRIVAL,
  { referrer: 'https://www.google.com/', source: 'Google', referrerHost: 'google.com', channel: 'organic_search', utm: NO_UTM, weight: 25 },
  { referrer: 'https://www.google.co.in/search?q=sluice', source: 'Google', referrerHost: 'google.co.in', channel: 'organic_search', utm: NO_UTM, weight: 6 },
  { referrer: 'https://duckduckgo.com/', source: 'DuckDuckGo', referrerHost: 'duckduckgo.com', channel: 'organic_search', utm: NO_UTM, weight: 4 },
  { referrer: 'https://www.bing.com/search?q=analytics', source: 'Bing', referrerHost: 'bing.com', channel: 'organic_search', utm: NO_UTM, weight: 4 },
  { referrer: 'https://t.co/x8Kd2', source: 'X', referrerHost: 't.co', channel: 'organic_social', utm: NO_UTM, weight: 4 },
  { referrer: 'https://l.facebook.com/l.php?u=x', source: 'Facebook', referrerHost: 'l.facebook.com', channel: 'organic_social', utm: NO_UTM, weight: 3 },
  { referrer: 'https://news.ycombinator.com/item?id=4242', source: 'Hacker News', referrerHost: 'news.ycombinator.com', channel: 'organic_social', utm: NO_UTM, weight: 3 },
  { referrer: 'https://www.reddit.com/r/analytics/', source: 'Reddit', referrerHost: 'reddit.com', channel: 'organic_social', utm: NO_UTM, weight: 3 },
  { referrer: 'https://mail.google.com/', source: 'Gmail', referrerHost: 'mail.google.com', channel: 'email', utm: NO_UTM, weight: 2 },
  { referrer: 'https://blog.example.org/posts/42', source: 'blog.example.org', referrerHost: 'blog.example.org', channel: 'referral', utm: NO_UTM, weight: 3 },
  { referrer: 'https://dev.to/someone/sluice', source: 'dev.to', referrerHost: 'dev.to', channel: 'referral', utm: NO_UTM, weight: 2 },
  {
    query: 'utm_source=newsletter&utm_medium=email&utm_campaign=autumn-digest',
    source: 'newsletter', referrerHost: null, channel: 'email',
    utm: { source: 'newsletter', medium: 'email', campaign: 'autumn-digest', term: null, content: null }, weight: 4,
  },
  {
    referrer: 'https://www.google.com/',
    query: 'utm_source=google&utm_medium=cpc&utm_campaign=brand&utm_term=web+analytics',
    source: 'Google', referrerHost: 'google.com', channel: 'paid_search',
    utm: { source: 'google', medium: 'cpc', campaign: 'brand', term: 'web analytics', content: null }, weight: 4,
  },
  {
    query: 'utm_source=facebook&utm_medium=paid_social&utm_campaign=retarget-q4&utm_content=video-a',
    source: 'Facebook', referrerHost: null, channel: 'paid_social',
    utm: { source: 'facebook', medium: 'paid_social', campaign: 'retarget-q4', term: null, content: 'video-a' }, weight: 3,
  },
  {
    query: 'utm_source=partner-site&utm_medium=affiliate&utm_campaign=q4-partners',
    source: 'partner-site', referrerHost: null, channel: 'affiliate',
    utm: { source: 'partner-site', medium: 'affiliate', campaign: 'q4-partners', term: null, content: null }, weight: 2,
  },
  {
    query: 'utm_source=adnet&utm_medium=display&utm_campaign=banner-q4&utm_content=300x250',
    source: 'adnet', referrerHost: null, channel: 'display',
    utm: { source: 'adnet', medium: 'display', campaign: 'banner-q4', term: null, content: '300x250' }, weight: 2,
  },
  { query: 'gclid=Cj0KCQiA', source: 'Google', referrerHost: null, channel: 'paid_search', utm: NO_UTM, weight: 2 },
  {
    query: 'utm_source=podcast&utm_campaign=episode-42',
    source: 'podcast', referrerHost: null, channel: 'other',
    utm: { source: 'podcast', medium: null, campaign: 'episode-42', term: null, content: null }, weight: 2,
  },
  {
    referrer: 'https://www.linkedin.com/feed/',
    query: 'utm_source=linkedin&utm_medium=social&utm_campaign=launch',
    source: 'LinkedIn', referrerHost: 'linkedin.com', channel: 'organic_social',
    utm: { source: 'linkedin', medium: 'social', campaign: 'launch', term: null, content: null }, weight: 2,
  },
  {
    fields: { utm_source: 'Newsletter', utm_medium: 'email', utm_campaign: 'winter-sale' },
    source: 'Newsletter', referrerHost: null, channel: 'email',
    utm: { source: 'Newsletter', medium: 'email', campaign: 'winter-sale', term: null, content: null }, weight: 2,
  },
];

/** Paths of a site; weights make a Zipf-like popularity. Each is the canonical (normalised) path. */
export const PATHS: ReadonlyArray<{ readonly path: string; readonly weight: number }> = [
  { path: '/', weight: 30 },
  { path: '/pricing', weight: 12 },
  { path: '/features', weight: 8 },
  { path: '/docs', weight: 8 },
  { path: '/docs/getting-started', weight: 7 },
  { path: '/docs/api/events', weight: 4 },
  { path: '/docs/api/queries', weight: 3 },
  { path: '/blog', weight: 6 },
  { path: '/blog/launch-week', weight: 5 },
  { path: '/blog/2026/sessions-explained', weight: 3 },
  { path: '/about', weight: 3 },
  { path: '/contact', weight: 2 },
  { path: '/signup', weight: 6 },
  { path: '/login', weight: 4 },
  { path: '/careers', weight: 1 },
  { path: '/café', weight: 1 },
  { path: '/shop/cart', weight: 2 },
  { path: '/shop/checkout', weight: 2 },
];

/**
 * Ways a browser spells a canonical path in a page URL; each must normalise back to it:
 * trailing slash, fragment, dropped query parameters, percent-encoding.
 */
export function spellPath(path: string, variant: number): string {
  const encoded = encodeURI(path);
  switch (variant % 5) {
    case 0: return encoded;
    case 1: return path === '/' ? '/' : `${encoded}/`;
    case 2: return `${encoded}#section-2`;
    case 3: return `${encoded}?ref=footer&sessionid=8f2a`;
    default: return encoded;
  }
}

/** A geo hint as an edge sends it, and the location the record is expected to keep. */
export interface GeoSpec {
  readonly hint: { readonly country?: string; readonly region?: string; readonly city?: string } | undefined;
  readonly country: string | null;
  readonly region: string | null;
  readonly city: string | null;
}

export const GEOS: readonly GeoSpec[] = [
  { hint: { country: 'IN', region: 'IN-MH', city: 'Mumbai' }, country: 'IN', region: 'IN-MH', city: 'Mumbai' },
  { hint: { country: 'IN', region: 'IN-KA', city: 'Bengaluru' }, country: 'IN', region: 'IN-KA', city: 'Bengaluru' },
  { hint: { country: 'IN', region: 'IN-DL', city: 'New Delhi' }, country: 'IN', region: 'IN-DL', city: 'New Delhi' },
  { hint: { country: 'NP', region: 'NP-P3', city: 'Kathmandu' }, country: 'NP', region: 'NP-P3', city: 'Kathmandu' },
  { hint: { country: 'US', region: 'US-NY', city: 'New York' }, country: 'US', region: 'US-NY', city: 'New York' },
  { hint: { country: 'US', region: 'US-CA', city: 'San Francisco' }, country: 'US', region: 'US-CA', city: 'San Francisco' },
  // A CDN that sends lower case and a bare subdivision code (geo-location.ts prefixes the country).
  { hint: { country: 'us', region: 'tx', city: ' Austin ' }, country: 'US', region: 'US-TX', city: 'Austin' },
  { hint: { country: 'DE', region: 'DE-BE', city: 'Berlin' }, country: 'DE', region: 'DE-BE', city: 'Berlin' },
  { hint: { country: 'DE', region: 'DE-BY', city: 'München' }, country: 'DE', region: 'DE-BY', city: 'München' },
  { hint: { country: 'GB', region: 'GB-ENG', city: 'London' }, country: 'GB', region: 'GB-ENG', city: 'London' },
  { hint: { country: 'FR', region: 'FR-IDF', city: 'Paris' }, country: 'FR', region: 'FR-IDF', city: 'Paris' },
  { hint: { country: 'BR', region: 'BR-SP', city: 'São Paulo' }, country: 'BR', region: 'BR-SP', city: 'São Paulo' },
  { hint: { country: 'JP', region: 'JP-13', city: 'Tokyo' }, country: 'JP', region: 'JP-13', city: 'Tokyo' },
  // Country only, as many edges send it.
  { hint: { country: 'CA' }, country: 'CA', region: null, city: null },
  { hint: { country: 'AU' }, country: 'AU', region: null, city: null },
  // "Unknown" markers and no hint at all: no location.
  { hint: { country: 'XX' }, country: null, region: null, city: null },
  { hint: undefined, country: null, region: null, city: null },
];

export const LANGUAGES = ['en-US', 'en-GB', 'de-DE', 'hi-IN', 'ne-NP', 'fr-FR', 'pt-BR', 'ja-JP'];

export const CURRENCIES = ['EUR', 'USD', 'INR'] as const;
/** Prices with cents: revenue sums must be exact anyway (rollup-merge.ts sums millionths). */
export const PRICES = [19.99, 49, 99.5, 249.95, 1499, 0.99];
