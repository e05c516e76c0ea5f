/**
 * Attribution: where a visit came from, as a referrer host, a human source name and a channel.
 *
 * Inputs, strongest first: UTM parameters (the site owner tagged the link), an ad network's
 * click id in the page URL (auto-tagged paid clicks), the referrer. The rules, close to Google
 * Analytics' default channel grouping so that numbers are comparable:
 *
 * - A referrer on the page's own host (after host normalisation) is no referrer: it is
 *   navigation inside the site. An unparseable referrer counts as none too.
 * - source: utm_source when present (known aliases canonicalised: `fb` → Facebook,
 *   `google` → Google; otherwise kept as given); else the click id's network; else the known
 *   name of the referrer host (Google, Facebook…); else the referrer host itself; else
 *   'Direct / None' for direct visits and '(not set)' for tagged visits that name no source.
 * - channel: a recognised utm_medium decides (display media, then paid media — paid_social when
 *   the source or referrer is a social network or the medium says social, paid_search
 *   otherwise —, email, social, organic, affiliate, referral); then a paid click id; then the
 *   kind of the source (utm_source when it names a known site or says email/newsletter, else
 *   the referrer host):
 *   search engine, social network or webmail; then any other external referrer is `referral`;
 *   a tagged visit that matches nothing is `other`; nothing at all is `direct`.
 */
import { LruCache } from './lru-cache.js';
import { normaliseHost, type UtmParams } from './normalise-url.js';

/**
 * The stable set of channels in stored records. Rollups, queries and dashboards key on these
 * strings; adding one is a record-format change, renaming one needs a reprocess.
 */
export const CHANNELS = [
  'direct', 'organic_search', 'paid_search', 'organic_social', 'paid_social',
  'email', 'referral', 'display', 'affiliate', 'other',
] as const;
export type Channel = (typeof CHANNELS)[number];

export const DIRECT_SOURCE = 'Direct / None';
export const UNNAMED_SOURCE = '(not set)';

export interface Attribution {
  /** Normalised referrer host; '' when there was none, it was unparseable or it was same-site. */
  readonly referrerHost: string;
  readonly source: string;
  readonly channel: Channel;
}

export interface AttributionInput {
  readonly referrer: string | undefined;
  /** The page's normalised host (normalise-url), for same-site detection. */
  readonly pageHost: string;
  readonly utm: UtmParams;
  readonly paidClick: string | null;
}

type Kind = 'search' | 'social' | 'email';

export interface KnownSource {
  readonly name: string;
  readonly kind: Kind;
}

const known = (kind: Kind, name: string, ...hosts: string[]) => hosts.map((h) => [h, { name, kind }] as const);

/**
 * Hosts matched exactly or as a parent domain (l.facebook.com → facebook.com). Search engines
 * are listed by their search hosts only, so that e.g. docs.google.com stays a referral.
 * Android app referrers (android-app://com.google.android.gm) arrive as package-name hosts.
 */
const HOSTS: ReadonlyMap<string, KnownSource> = new Map([
  ...known('search', 'Google', 'com.google.android.googlequicksearchbox'),
  ...known('search', 'Bing', 'bing.com'),
  ...known('search', 'DuckDuckGo', 'duckduckgo.com'),
  ...known('search', 'Yahoo', 'search.yahoo.com', 'search.yahoo.co.jp'),
  ...known('search', 'Yandex', 'ya.ru'),
  ...known('search', 'Baidu', 'baidu.com'),
  ...known('search', 'Ecosia', 'ecosia.org'),
  ...known('search', 'Brave', 'search.brave.com'),
  ...known('search', 'Startpage', 'startpage.com'),
  ...known('search', 'Qwant', 'qwant.com'),
  ...known('search', 'Naver', 'search.naver.com'),
  ...known('search', 'Seznam', 'search.seznam.cz'),
  ...known('search', 'Sogou', 'sogou.com'),
  ...known('search', 'AOL', 'search.aol.com'),
  ...known('social', 'Facebook', 'facebook.com', 'fb.com', 'fb.me', 'com.facebook.katana'),
  ...known('social', 'Instagram', 'instagram.com', 'com.instagram.android'),
  ...known('social', 'Threads', 'threads.net'),
  ...known('social', 'X', 'x.com', 'twitter.com', 't.co', 'com.twitter.android'),
  ...known('social', 'LinkedIn', 'linkedin.com', 'lnkd.in', 'com.linkedin.android'),
  ...known('social', 'Reddit', 'reddit.com', 'redd.it', 'com.reddit.frontpage'),
  ...known('social', 'YouTube', 'youtube.com', 'youtu.be', 'com.google.android.youtube'),
  ...known('social', 'TikTok', 'tiktok.com'),
  ...known('social', 'Pinterest', 'pin.it'),
  ...known('social', 'Bluesky', 'bsky.app'),
  ...known('social', 'Mastodon', 'mastodon.social'),
  ...known('social', 'Hacker News', 'news.ycombinator.com'),
  ...known('social', 'VK', 'vk.com'),
  ...known('social', 'Weibo', 'weibo.com'),
  ...known('social', 'Quora', 'quora.com'),
  ...known('social', 'Tumblr', 'tumblr.com'),
  ...known('social', 'Discord', 'discord.com'),
  ...known('social', 'Telegram', 't.me', 'web.telegram.org'),
  ...known('social', 'WhatsApp', 'wa.me', 'web.whatsapp.com'),
  ...known('email', 'Gmail', 'mail.google.com', 'com.google.android.gm'),
  ...known('email', 'Outlook', 'outlook.live.com', 'outlook.office.com', 'outlook.office365.com'),
  ...known('email', 'Yahoo Mail', 'mail.yahoo.com'),
  ...known('email', 'Yandex Mail', 'mail.yandex.ru', 'mail.yandex.com'),
  ...known('email', 'Proton Mail', 'mail.proton.me'),
  ...known('email', 'AOL Mail', 'mail.aol.com'),
  ...known('email', 'Zoho Mail', 'mail.zoho.com'),
]);

/** Brands whose main site exists under many country domains (google.de, google.co.uk, yandex.com.tr). */
const BRAND_DOMAINS = /^(google|yandex|pinterest)\.(?:com?\.)?[a-z]{2,3}$/;
const BRANDS: Readonly<Record<string, KnownSource>> = {
  google: { name: 'Google', kind: 'search' },
  yandex: { name: 'Yandex', kind: 'search' },
  pinterest: { name: 'Pinterest', kind: 'social' },
};
const WEBMAIL: KnownSource = { name: 'Webmail', kind: 'email' };

/** utm_source spellings (lowercased) → known sources: every known name and host, plus common short forms. */
const SOURCE_ALIASES: ReadonlyMap<string, KnownSource> = (() => {
  const m = new Map<string, KnownSource>();
  for (const [host, s] of HOSTS) {
    m.set(host, s);
    m.set(s.name.toLowerCase(), s);
  }
  for (const s of Object.values(BRANDS)) m.set(s.name.toLowerCase(), s);
  const alias = (name: string, ...aliases: string[]) => {
    const s = m.get(name.toLowerCase());
    if (s) for (const a of aliases) m.set(a, s);
  };
  alias('Facebook', 'fb');
  alias('Instagram', 'ig');
  alias('X', 'twitter', 'tw');
  alias('YouTube', 'yt');
  alias('LinkedIn', 'li');
  return m;
})();

const EMAIL_SOURCE = /(?:^|[^a-z])(?:e-?mail|newsletter)(?:$|[^a-z])/i;

const DISPLAY_MEDIUM = /^(?:display|banner|expandable|interstitial|cpm)$/;
const PAID_MEDIUM = /^(?:.*cp.*|ppc|retargeting|paid.*)$/;
const EMAIL_MEDIUM = /^(?:e[-_ ]?mail|newsletter)$/;
const SOCIAL_MEDIUM = /^(?:social|social[-_ ]?(?:network|media)|sm)$/;
const AFFILIATE_MEDIUM = /^affiliates?$/;
const REFERRAL_MEDIUM = /^(?:referral|referrer|link)$/;

/** The known source behind a normalised host, walking up parent domains. */
export function knownHost(host: string): KnownSource | undefined {
  const colon = host.lastIndexOf(':');
  const bare = colon >= 0 && !host.endsWith(']') ? host.slice(0, colon) : host;
  for (let h = bare; ;) {
    const hit = HOSTS.get(h);
    if (hit) return hit;
    const dot = h.indexOf('.');
    if (dot < 0) break;
    h = h.slice(dot + 1);
  }
  const brand = BRAND_DOMAINS.exec(bare);
  if (brand) return BRANDS[brand[1]!];
  return bare.startsWith('webmail.') ? WEBMAIL : undefined;
}

function knownSource(utmSource: string): KnownSource | undefined {
  const s = utmSource.toLowerCase();
  return SOURCE_ALIASES.get(s) ?? (s.includes('.') ? knownHost(normaliseHost(s)) : undefined);
}

/** The normalised host of a referrer, '' when absent or unusable. Scheme-less referrers are read as https. */
export function referrerHostOf(referrer: string | undefined): string {
  if (!referrer) return '';
  let url: URL;
  try {
    url = new URL(referrer);
  } catch {
    if (referrer.includes('://')) return '';
    try {
      url = new URL(`https://${referrer}`);
    } catch {
      return '';
    }
  }
  return url.hostname === '' ? '' : normaliseHost(url.hostname, url.port);
}

function mediumChannel(medium: string, social: boolean): Channel | undefined {
  const m = medium.toLowerCase();
  // Display before paid: 'cpm' also matches the paid pattern's '.*cp.*'.
  if (DISPLAY_MEDIUM.test(m)) return 'display';
  if (PAID_MEDIUM.test(m)) return social || m.includes('social') ? 'paid_social' : 'paid_search';
  if (EMAIL_MEDIUM.test(m)) return 'email';
  if (SOCIAL_MEDIUM.test(m)) return 'organic_social';
  if (m === 'organic') return 'organic_search';
  if (AFFILIATE_MEDIUM.test(m)) return 'affiliate';
  if (REFERRAL_MEDIUM.test(m)) return 'referral';
  return undefined;
}

function kindChannel(kind: Kind | undefined): Channel | undefined {
  switch (kind) {
    case 'search': return 'organic_search';
    case 'social': return 'organic_social';
    case 'email': return 'email';
    default: return undefined;
  }
}

const MAX_CACHED_REFERRER_LENGTH = 256;

export type Attributor = (input: AttributionInput) => Attribution;

interface ReferrerInfo {
  readonly host: string;
  readonly known: KnownSource | undefined;
}

/**
 * An attribution function with a bounded cache of parsed referrers: a few referrer strings
 * (https://www.google.com/, https://t.co/…) make up most traffic, and parsing one costs more
 * than everything else here.
 */
export function createAttributor(options: { readonly cacheSize?: number } = {}): Attributor {
  const referrers = new LruCache<string, ReferrerInfo>(options.cacheSize ?? 10_000);
  const NONE: ReferrerInfo = { host: '', known: undefined };

  const parse = (referrer: string): ReferrerInfo => {
    const host = referrerHostOf(referrer);
    return host ? { host, known: knownHost(host) } : NONE;
  };
  const parseReferrer = (referrer: string | undefined): ReferrerInfo => {
    if (!referrer) return NONE;
    // Long referrers are deep links that rarely repeat: not worth their memory in the cache.
    if (referrer.length > MAX_CACHED_REFERRER_LENGTH) return parse(referrer);
    let info = referrers.get(referrer);
    if (!info) {
      info = parse(referrer);
      referrers.set(referrer, info);
    }
    return info;
  };

  return (input) => {
    const { utm, paidClick } = input;
    const parsed = parseReferrer(input.referrer);
    const sameSite = parsed.host === input.pageHost;
    const referrerHost = sameSite ? '' : parsed.host;
    const fromReferrer = sameSite ? undefined : parsed.known;
    const fromUtm = utm.source ? knownSource(utm.source) : undefined;
    const kind: Kind | undefined = fromUtm?.kind
      ?? (utm.source && EMAIL_SOURCE.test(utm.source) ? 'email' : undefined)
      ?? fromReferrer?.kind;
    const tagged = utm.source !== null || utm.medium !== null || paidClick !== null;

    const channel: Channel = (utm.medium ? mediumChannel(utm.medium, kind === 'social') : undefined)
      ?? (paidClick ? 'paid_search' : undefined)
      ?? kindChannel(kind)
      ?? (referrerHost ? 'referral' : tagged ? 'other' : 'direct');

    const source = utm.source ? fromUtm?.name ?? utm.source
      : paidClick ?? fromReferrer?.name ?? (referrerHost || (channel === 'direct' ? DIRECT_SOURCE : UNNAMED_SOURCE));

    return { referrerHost, source, channel };
  };
}
