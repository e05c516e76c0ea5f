/**
 * Realistic demo traffic: a few sites, a Zipf-like page popularity, a mix of search, social,
 * campaign and direct arrivals, returning visitors with multi-page visits, several devices.
 * Deterministic for a given seed, so tests and benchmarks can reuse it.
 */
import type { Event } from '../../protocol/schema.js';

/** Small fast PRNG (mulberry32): reproducible traffic without a dependency. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PAGES = ['/', '/pricing', '/docs', '/docs/getting-started', '/blog', '/blog/launch', '/about', '/contact', '/signup', '/login', '/features', '/careers'];
const ARRIVALS: Array<{ referrer?: string; query?: string }> = [
  {},
  {},
  { referrer: 'https://www.google.com/' },
  { referrer: 'https://www.google.com/' },
  { referrer: 'https://duckduckgo.com/' },
  { referrer: 'https://t.co/abc' },
  { referrer: 'https://news.ycombinator.com/item?id=1' },
  { referrer: 'https://www.reddit.com/r/analytics/' },
  { query: 'utm_source=newsletter&utm_medium=email&utm_campaign=autumn' },
  { query: 'utm_source=google&utm_medium=cpc&utm_campaign=brand' },
];
const USER_AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36',
  'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
  'Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
];
const SCREENS = [{ width: 1920, height: 1080 }, { width: 1440, height: 900 }, { width: 390, height: 844 }, { width: 412, height: 915 }, { width: 820, height: 1180 }];

export interface TrafficOptions {
  readonly sites: readonly string[];
  readonly seed?: number;
  /** Visitors per site in the pool; a visitor returns with probability of reuse. */
  readonly visitorsPerSite?: number;
}

export class DemoTraffic {
  private readonly random: () => number;
  private readonly visitorsPerSite: number;
  private counter = 0;

  constructor(private readonly options: TrafficOptions) {
    this.random = rng(options.seed ?? 1);
    this.visitorsPerSite = options.visitorsPerSite ?? 500;
  }

  private pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.random() * items.length)]!;
  }

  /** Zipf-ish: low indexes far more likely. */
  private zipf<T>(items: readonly T[]): T {
    const r = this.random();
    return items[Math.min(items.length - 1, Math.floor(items.length * r * r * r))]!;
  }

  next(nowMs: number): Event {
    const site = this.zipf(this.options.sites);
    const visitor = Math.floor(this.random() * this.visitorsPerSite);
    const arrival = this.pick(ARRIVALS);
    const path = this.zipf(PAGES);
    const isCustom = this.random() < 0.1;
    const url = `https://${site}${path}${arrival.query ? `?${arrival.query}` : ''}`;
    this.counter++;
    const base: Event = {
      id: `demo-${this.options.seed ?? 1}-${this.counter}`,
      type: isCustom ? 'event' : 'pageview',
      site,
      timestamp: nowMs,
      url,
      title: path === '/' ? 'Home' : path.slice(1),
      screen: this.pick(SCREENS),
      language: this.pick(['en-GB', 'en-US', 'de-DE', 'fr-FR', 'hi-IN', 'ne-NP']),
      userAgent: USER_AGENTS[visitor % USER_AGENTS.length]!,
      ip: `203.0.113.${visitor % 250}`,
      visitor: `v-${visitor}`,
    };
    if (arrival.referrer) base.referrer = arrival.referrer;
    if (isCustom) {
      base.name = this.pick(['signup', 'download', 'play_video']);
      if (base.name === 'signup' && this.random() < 0.3) base.revenue = { amount: 49, currency: 'EUR' };
    }
    return base;
  }

  batch(size: number, nowMs: number): Event[] {
    return Array.from({ length: size }, () => this.next(nowMs));
  }
}
