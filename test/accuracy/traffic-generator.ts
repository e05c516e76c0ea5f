/**
 * Realistic, seeded traffic for the accuracy suite: many sites in several time zones (+05:30,
 * +05:45, a DST change), returning visitors with several visits, pageviews and custom events
 * with properties and revenue, campaigns, every channel, browsers, devices, screens, geo hints,
 * bots, resent duplicates, events out of order within the allowed lateness and events hours
 * late. Deterministic for a (seed, nowMs) pair.
 *
 * Each event carries, besides the wire event, what ingest is expected to make of it
 * (traffic-tables.ts): the reference (reference.ts) works from those expectations and from the
 * send order alone.
 *
 * Time: two windows, the last ~30 hours and ~52 hours around the most recent DST change of
 * America/New_York or Europe/Berlin (whichever is later), each ending well before `nowMs`.
 * The DST window can be up to five months old; `minuteRetentionDays` says how long minute rows
 * must be kept for it (the runs configure at least that).
 *
 * Send order is event time, except for the deliberately out-of-order, duplicate and late events;
 * `sendKey` is the instant at which an event "arrives" on that timeline. Out-of-order and
 * duplicate events arrive at most OUT_OF_ORDER_MAX_MS after their time, late ones hours after.
 */
import type { Event, Goal, SiteSettings } from '../../protocol/schema.js';
import { rng } from '../../src/demo/demo-traffic.js';
import { screenClass, type DimensionValues } from '../../src/aggregate/rollup.js';
import {
  ARRIVALS, BOT_AGENTS, CURRENCIES, DIRECT_ARRIVAL, GEOS, HUMAN_AGENTS, LANGUAGES, PATHS, PRICES, SERVER_AGENT, spellPath,
  type AgentSpec, type ArrivalSpec, type GeoSpec,
} from './traffic-tables.js';
import { classifyFates, type LatenessRules } from './reference.js';
import { lastOffsetChange } from './time-zones.js';

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

/** Out-of-order and duplicate events arrive at most this long after their event time. */
export const OUT_OF_ORDER_MAX_MS = 150_000;
/** Late events arrive at least this long after their event time. */
export const LATE_MIN_MS = 2 * HOUR_MS;

/** The wire event plus the geo hint of the schema (Event.geo, being added alongside). */
export type WireEvent = Event & { geo?: { country?: string; region?: string; city?: string } };

/** What ingest is expected to store for an event, by the documented rules. */
export interface ExpectedEvent {
  readonly site: string;
  readonly id: string;
  readonly type: 'pageview' | 'event';
  /** Custom event name; 'pageview' for pageviews. */
  readonly name: string;
  readonly ts: number;
  /** The page URL's normalised path (every event has one; only a pageview's is a `page` value). */
  readonly path: string;
  /**
   * Who the server will take this visitor to be: same identity ⇔ same visitorId (on one salt
   * day). '' for an anonymous event (Do-Not-Track, no consent): no visitor id at all.
   */
  readonly identity: string;
  readonly bot: boolean;
  readonly dims: DimensionValues;
  readonly props: Readonly<Record<string, string | number | boolean>>;
  readonly revenue: { readonly amount: number; readonly currency: string } | null;
}

export type Intent = 'normal' | 'out-of-order' | 'duplicate' | 'late' | 'bot';

export interface SentEvent {
  /** Position in the send order. */
  readonly seq: number;
  readonly wire: WireEvent;
  readonly expected: ExpectedEvent;
  /** What the generator meant it to test; the reference decides its fate from the definition, not from this. */
  readonly intent: Intent;
  /** When it arrives on the event-time line (see the file header). */
  readonly sendKey: number;
}

export interface SiteSpec {
  readonly id: string;
  /** The zone queries use by default: the configured one, else the server default (UTC). */
  readonly timeZone: string;
  /** Absent: the site has no setting and takes query.defaultTimeZone ('UTC'). */
  readonly configuredTimeZone: string | undefined;
  readonly goals: readonly Goal[];
  readonly hosts: readonly string[];
  readonly currency: string;
}

export interface TimeWindow {
  readonly fromMs: number;
  readonly toMs: number;
}

export interface Traffic {
  readonly seed: number;
  readonly nowMs: number;
  readonly sites: readonly SiteSpec[];
  readonly windows: readonly TimeWindow[];
  /** The DST change covered, or null when none was found (documented on the run). */
  readonly dst: { readonly zone: string; readonly atMs: number } | null;
  /** Every event in send order (seq = index). */
  readonly sent: readonly SentEvent[];
  /** `sites` config entries: time zone (where configured) and goals. */
  readonly siteSettings: Readonly<Record<string, SiteSettings>>;
  /** Minute rows must be kept at least this long for the oldest window to be queryable per minute. */
  readonly minuteRetentionDays: number;
}

export interface TrafficOptions {
  readonly seed: number;
  readonly nowMs: number;
  /** Approximate number of human events (bots, duplicates and late events come on top). */
  readonly events?: number;
  readonly sites?: number;
  /** The run's aggregate.allowedLatenessMs and maxOutOfOrderMs: late events are kept only where they are surely late. */
  readonly rules: LatenessRules;
}

/** The site with thousands of visitors (see the visitor pool). */
export const BIG_SITE_INDEX = 5;

const ZONE_GROUPS: ReadonlyArray<{ readonly tag: string; readonly zone: string | undefined; readonly hostTld: string }> = [
  { tag: 'utc', zone: undefined, hostTld: 'example' },
  { tag: 'kolkata', zone: 'Asia/Kolkata', hostTld: 'example.in' },
  { tag: 'kathmandu', zone: 'Asia/Kathmandu', hostTld: 'example.np' },
  { tag: 'newyork', zone: 'America/New_York', hostTld: 'example.com' },
  { tag: 'berlin', zone: 'Europe/Berlin', hostTld: 'example.de' },
];

const GOAL_SETS: ReadonlyArray<readonly Goal[]> = [
  [{ name: 'Signup', event: 'signup' }, { name: 'Visited pricing', page: '/pricing' }, { name: 'Purchase', event: 'purchase' }],
  [{ name: 'Pro signup', event: 'signup', props: { plan: 'pro' } }, { name: 'Docs', page: '/docs/*' }, { name: 'Blog', page: '/blog/**' }],
  [{ name: 'Signup', event: 'signup' }, { name: 'Checkout', page: '/shop/*' }, { name: 'Autoplay video', event: 'play_video', props: { autoplay: 'true' } }],
  [{ name: 'Download SDK', event: 'download', props: { file: 'sdk.tgz' } }, { name: 'API docs', page: '/docs/api/**' }, { name: 'Home', page: '/' }],
];

/** A custom event kind: its name, properties and whether it carries revenue. */
interface CustomKind {
  readonly name: string;
  readonly weight: number;
  props(r: () => number): Record<string, string | number | boolean>;
  readonly revenue: boolean;
}

const pickOf = <T>(r: () => number, items: readonly T[]): T => items[Math.floor(r() * items.length)]!;

const CUSTOM_KINDS: readonly CustomKind[] = [
  { name: 'signup', weight: 5, revenue: false, props: (r) => ({ plan: pickOf(r, ['free', 'pro', 'team']), method: pickOf(r, ['google', 'email']) }) },
  { name: 'purchase', weight: 2, revenue: true, props: (r) => ({ plan: pickOf(r, ['pro', 'team']), items: pickOf(r, [1, 2, 3]) }) },
  { name: 'download', weight: 3, revenue: false, props: (r) => ({ file: pickOf(r, ['whitepaper.pdf', 'sdk.tgz']) }) },
  { name: 'play_video', weight: 3, revenue: false, props: (r) => ({ video: pickOf(r, ['intro', 'demo']), autoplay: r() < 0.4 }) },
  { name: 'outbound_click', weight: 2, revenue: false, props: (r) => ({ url: pickOf(r, ['https://github.com/sluice', 'https://docs.example.org/']) }) },
  { name: 'search', weight: 2, revenue: false, props: () => ({}) },
];

function weighted<T extends { readonly weight: number }>(r: () => number, items: readonly T[]): T {
  let total = 0;
  for (const i of items) total += i.weight;
  let x = r() * total;
  for (const i of items) {
    x -= i.weight;
    if (x < 0) return i;
  }
  return items[items.length - 1]!;
}

interface Visitor {
  readonly n: number;
  readonly hint: string | undefined;
  readonly ip: string;
  readonly agent: AgentSpec;
  readonly screen: { width: number; height: number } | undefined;
  readonly geo: GeoSpec;
  readonly language: string;
  readonly privacy: { readonly dnt?: boolean; readonly consent?: boolean };
  readonly identity: string;
}

/** Finds the window around the latest DST change of the zones we serve, and the recent window. */
function planWindows(nowMs: number): { windows: TimeWindow[]; dst: Traffic['dst'] } {
  const recent: TimeWindow = { fromMs: nowMs - 30 * HOUR_MS, toMs: nowMs - 20 * MINUTE_MS };
  let dst: Traffic['dst'] = null;
  for (const zone of ['America/New_York', 'Europe/Berlin']) {
    const at = lastOffsetChange(zone, nowMs - 2 * HOUR_MS, 400);
    if (at !== null && (dst === null || at > dst.atMs)) dst = { zone, atMs: at };
  }
  if (dst === null) return { windows: [recent], dst };
  const around: TimeWindow = { fromMs: Math.floor((dst.atMs - 26 * HOUR_MS) / MINUTE_MS) * MINUTE_MS, toMs: Math.floor((dst.atMs + 26 * HOUR_MS) / MINUTE_MS) * MINUTE_MS };
  // A change in the last few days: one window covers both.
  if (around.toMs + HOUR_MS >= recent.fromMs) return { windows: [{ fromMs: Math.min(around.fromMs, recent.fromMs), toMs: recent.toMs }], dst };
  return { windows: [around, recent], dst };
}

/** Traffic weight by local hour: quiet nights, busy afternoons. */
function diurnal(hour: number): number {
  return 0.25 + Math.max(0, Math.sin(((hour - 6) / 24) * 2 * Math.PI)) * 1.2;
}

function localHourOf(offsetHours: number, ms: number): number {
  return Math.floor((((ms / HOUR_MS + offsetHours) % 24) + 24) % 24);
}

/** Rough offsets for the diurnal shape only (exactness is not needed there). */
const ROUGH_OFFSET_HOURS: Readonly<Record<string, number>> = {
  UTC: 0, 'Asia/Kolkata': 5.5, 'Asia/Kathmandu': 5.75, 'America/New_York': -5, 'Europe/Berlin': 1,
};

export function generateTraffic(options: TrafficOptions): Traffic {
  const r = rng(options.seed);
  const siteCount = options.sites ?? 20;
  const targetEvents = options.events ?? 30_000;
  const { windows, dst } = planWindows(options.nowMs);
  const totalWindowMs = windows.reduce((s, w) => s + (w.toMs - w.fromMs), 0);

  // Sites: round-robin over the zone groups; a few in the UTC group configure no zone at all.
  const sites: SiteSpec[] = [];
  const siteSettings: Record<string, SiteSettings> = {};
  const weights: number[] = [];
  for (let i = 0; i < siteCount; i++) {
    const group = ZONE_GROUPS[i % ZONE_GROUPS.length]!;
    const id = `s${String(i + 1).padStart(2, '0')}-${group.tag}.accuracy.test`;
    const apex = `s${i + 1}.${group.hostTld}`;
    const configuredTimeZone = group.zone ?? (i % 2 === 0 ? undefined : 'UTC');
    const goals = GOAL_SETS[i % GOAL_SETS.length]!;
    const site: SiteSpec = {
      id, timeZone: configuredTimeZone ?? 'UTC', configuredTimeZone, goals,
      hosts: [`www.${apex}`, apex, `shop.${apex}`], currency: CURRENCIES[i % CURRENCIES.length]!,
    };
    sites.push(site);
    siteSettings[id] = configuredTimeZone === undefined ? { goals: [...goals] } : { timeZone: configuredTimeZone, goals: [...goals] };
    // Busy and quiet sites: 0.3 to 2.5.
    weights.push(0.3 + 2.2 * (((i * 7) % siteCount) / siteCount));
  }
  const weightSum = weights.reduce((a, b) => a + b, 0);

  interface Draft { wire: WireEvent; expected: ExpectedEvent; intent: Intent; sendKey: number }
  const drafts: Draft[] = [];

  for (let s = 0; s < sites.length; s++) {
    const site = sites[s]!;
    const share = weights[s]! / weightSum;
    const offsetHours = ROUGH_OFFSET_HOURS[site.timeZone] ?? 0;
    let counter = 0;
    const nextId = (): string => `${s + 1}-${(counter++).toString(36)}`;

    // The visitor pool: a few hundred per site, some identified only by IP and user agent. One
    // big site has thousands of mostly one-off visitors, so that visitor sketches leave their
    // exact sparse range (p=14 past 4096 visitors, dimension cells at p=11 past 512) and the
    // documented HyperLogLog error is what is checked.
    const big = s === BIG_SITE_INDEX;
    const poolSize = big ? 12_000 : Math.max(40, Math.round(700 * share * siteCount / 4));
    const pool: Visitor[] = [];
    for (let n = 0; n < poolSize; n++) {
      const server = r() < 0.04;
      const agent = server ? SERVER_AGENT : HUMAN_AGENTS[Math.floor(r() * HUMAN_AGENTS.length)]!;
      const hinted = server || r() < 0.85;
      const ip = r() < 0.8 ? `198.51.${s}.${n % 250}` : `2001:db8:${s.toString(16)}::${n.toString(16)}`;
      const hint = hinted ? `u-${s + 1}-${n}` : undefined;
      const screen = agent.screens.length > 0 && r() < 0.9 ? pickOf(r, agent.screens) : undefined;
      // Privacy flags (schema.ts Event): Do-Not-Track or no consent makes every event anonymous;
      // DNT wins over consent: true; consent: true alone changes nothing.
      const p = r();
      const privacy: Visitor['privacy'] = p < 0.02 ? { dnt: true } : p < 0.035 ? { consent: false } : p < 0.045 ? { dnt: true, consent: true } : p < 0.1 ? { consent: true } : {};
      const anonymous = privacy.dnt === true || privacy.consent === false;
      const geo = GEOS[Math.floor(r() * GEOS.length)]!;
      pool.push({
        n, hint, ip, agent, screen, privacy,
        // An anonymous event keeps the country only.
        geo: anonymous ? { ...geo, region: null, city: null } : geo,
        language: pickOf(r, LANGUAGES),
        // ingest hashes (site, hint) when there is a hint, else (site, IP, user agent); nothing when anonymous.
        identity: anonymous ? '' : hint !== undefined ? `hint\u0000${hint}` : `ipua\u0000${ip}\u0000${agent.ua ?? ''}`,
      });
    }

    const makeEvent = (
      v: Visitor, ts: number, host: string, path: string, pathVariant: number, arrival: ArrivalSpec | null, referrer: string | undefined,
      custom: CustomKind | null, id: string,
    ): { wire: WireEvent; expected: ExpectedEvent } => {
      const spelled = spellPath(path, arrival ? pathVariant % 2 : pathVariant);
      let url = `https://${host}${spelled}`;
      if (arrival?.query) url += `${spelled.includes('?') ? '&' : '?'}${arrival.query}`;
      const wire: WireEvent = { id, type: custom ? 'event' : 'pageview', site: site.id, timestamp: ts, url, language: v.language, ip: v.ip };
      if (custom) wire.name = custom.name;
      if (v.hint !== undefined) wire.visitor = v.hint;
      if (v.agent.ua !== undefined) wire.userAgent = v.agent.ua;
      if (v.screen) wire.screen = v.screen;
      if (v.geo.hint) wire.geo = { ...v.geo.hint };
      if (v.privacy.dnt !== undefined) wire.dnt = v.privacy.dnt;
      if (v.privacy.consent !== undefined) wire.consent = v.privacy.consent;
      if (referrer !== undefined) wire.referrer = referrer;
      if (arrival?.fields) Object.assign(wire, arrival.fields);
      let props: Record<string, string | number | boolean> = {};
      let revenue: ExpectedEvent['revenue'] = null;
      if (custom) {
        props = custom.props(r);
        if (custom.revenue) revenue = { amount: pickOf(r, PRICES), currency: site.currency };
      } else if (path.startsWith('/blog/') && r() < 0.7) {
        props = { author: pickOf(r, ['ana', 'ben', 'chloé']) };
      }
      if (Object.keys(props).length > 0) wire.props = props;
      if (revenue) wire.revenue = revenue;
      const a = arrival ?? DIRECT_ARRIVAL;
      const bare = host.startsWith('www.') ? host.slice(4) : host;
      const dims: DimensionValues = {
        entry_page: path, hostname: bare, source: a.source, referrer: a.referrerHost, channel: a.channel,
        utm_source: a.utm.source, utm_medium: a.utm.medium, utm_campaign: a.utm.campaign, utm_term: a.utm.term, utm_content: a.utm.content,
        country: v.geo.country, region: v.geo.region, city: v.geo.city,
        browser: v.agent.browser, browser_version: v.agent.browserVersion, os: v.agent.os, os_version: v.agent.osVersion,
        device: v.agent.device, screen: v.screen ? screenClass(v.screen.width) : null,
        // rollup.ts: `page` has a value for pageviews only.
        page: custom ? null : path, event: custom ? custom.name : null,
      };
      const expected: ExpectedEvent = {
        site: site.id, id, type: wire.type, name: custom ? custom.name : 'pageview', ts, path,
        identity: v.identity, bot: false, dims, props, revenue,
      };
      return { wire, expected };
    };

    for (const w of windows) {
      const windowShare = (w.toMs - w.fromMs) / totalWindowMs;
      const visits = big ? Math.round(7_000 * windowShare) : Math.max(20, Math.round((targetEvents * share * windowShare) / 3.6));
      for (let k = 0; k < visits; k++) {
        // Returning visitors: low pool indexes come back far more often (on the big site, any of them).
        const v = pool[big ? Math.floor(pool.length * r()) : Math.min(pool.length - 1, Math.floor(pool.length * r() * r()))]!;
        let start: number;
        do start = w.fromMs + Math.floor(r() * (w.toMs - w.fromMs));
        while (r() * 1.45 > diurnal(localHourOf(offsetHours, start)));
        const host = r() < 0.85 ? site.hosts[r() < 0.6 ? 0 : 1]! : site.hosts[2]!;
        const arrival = r() < 0.5 ? DIRECT_ARRIVAL : weighted(r, ARRIVALS);
        // Visit length: a third bounce; the rest read a few pages.
        const length = r() < (big ? 0.6 : 0.33) ? 1 : 2 + Math.floor(-Math.log(1 - r()) * (big ? 1 : 3));
        let ts = start;
        let prevUrl: string | undefined;
        let path = weighted(r, PATHS).path;
        for (let j = 0; j < length && ts < w.toMs; j++) {
          const custom = j > 0 && r() < 0.2 ? weighted(r, CUSTOM_KINDS) : null;
          if (!custom && j > 0) path = weighted(r, PATHS).path;
          let id = nextId();
          // Same-millisecond events are ordered by id bytes (rollup.ts). A tie gets the previous
          // event's time, and the two ids differ only in U+1F600 against U+FFFD: UTF-16 code
          // units put the emoji first, UTF-8 bytes the other, so a code-unit sort shows.
          if (j > 0 && r() < 0.02) {
            const prev = drafts[drafts.length - 1]!;
            ts = prev.expected.ts;
            const emojiFirst = r() < 0.5;
            const prevId = `${id}-${emojiFirst ? '\u{1F600}' : '\uFFFD'}`;
            id = `${id}-${emojiFirst ? '\uFFFD' : '\u{1F600}'}`;
            prev.wire.id = prevId;
            prev.expected = { ...prev.expected, id: prevId };
          }
          const made = makeEvent(v, ts, host, path, Math.floor(r() * 5), j === 0 ? arrival : null, j === 0 ? arrival.referrer : prevUrl, custom, id);
          drafts.push({ ...made, intent: 'normal', sendKey: ts });
          prevUrl = made.wire.url.split('?')[0]!.split('#')[0];
          // The gap to the next event: mostly a minute or two; sometimes long; now and then on the 30-minute edge.
          const g = r();
          const gap = g < 0.015 ? 30 * MINUTE_MS
            : g < 0.03 ? 30 * MINUTE_MS - 1
              : g < 0.08 ? 20 * MINUTE_MS + Math.floor(r() * 9 * MINUTE_MS)
                : g < 0.1 ? 31 * MINUTE_MS + Math.floor(r() * 40 * MINUTE_MS)
                  : 2_000 + Math.floor(-Math.log(1 - r()) * 70_000);
          ts += gap;
        }
      }

      // Bots crawl: bursts of pageviews a few seconds apart.
      const crawls = Math.max(2, Math.min(30, Math.round(visits / 25)));
      for (let k = 0; k < crawls; k++) {
        const ua = pickOf(r, BOT_AGENTS);
        let ts = w.fromMs + Math.floor(r() * (w.toMs - w.fromMs - 10 * MINUTE_MS));
        const pages = 3 + Math.floor(r() * 8);
        for (let j = 0; j < pages; j++) {
          const id = nextId();
          const path = weighted(r, PATHS).path;
          const wire: WireEvent = { id, type: 'pageview', site: site.id, timestamp: ts, url: `https://${site.hosts[0]}${encodeURI(path)}`, userAgent: ua, ip: `192.0.2.${k % 250}` };
          const expected: ExpectedEvent = {
            site: site.id, id, type: 'pageview', name: 'pageview', ts, path, identity: `ipua\u0000192.0.2.${k % 250}\u0000${ua}`, bot: true,
            dims: { ...emptyDims(), page: path, entry_page: path }, props: {}, revenue: null,
          };
          drafts.push({ wire, expected, intent: 'bot', sendKey: ts });
          ts += 1_000 + Math.floor(r() * 6_000);
        }
      }
    }
  }

  // Perturb the arrival order: out of order within the lateness, resent duplicates, and late events.
  const humans = drafts.filter((d) => d.intent === 'normal');
  const extra: Draft[] = [];
  const windowEnd = windows[windows.length - 1]!.toMs;
  for (const d of humans) {
    const x = r();
    if (x < 0.03) {
      d.intent = 'out-of-order';
      d.sendKey = d.expected.ts + 20_000 + Math.floor(r() * (OUT_OF_ORDER_MAX_MS - 20_000));
    } else if (x < 0.045) {
      // The same event again (a client retry): same id, same time.
      extra.push({ wire: structuredClone(d.wire), expected: d.expected, intent: 'duplicate', sendKey: d.sendKey + Math.floor(r() * 45_000) });
    } else if (x < 0.052 && d.expected.ts + LATE_MIN_MS + 30 * MINUTE_MS < windowEnd) {
      // An offline client flushing hours later: a new event that must go to the late lane.
      const id = `${d.expected.id}-late`;
      const wire: WireEvent = { ...structuredClone(d.wire), id };
      const expected: ExpectedEvent = { ...d.expected, id };
      extra.push({ wire, expected, intent: 'late', sendKey: Math.min(windowEnd, d.expected.ts + LATE_MIN_MS + Math.floor(r() * 5 * HOUR_MS)) });
    }
  }
  drafts.push(...extra);
  // A stable order: by arrival, then by generation order.
  const order = drafts.map((d, i) => ({ d, i })).sort((a, b) => a.d.sendKey - b.d.sendKey || a.i - b.i);
  let sent: SentEvent[] = order.map(({ d }, seq) => ({ seq, wire: d.wire, expected: d.expected, intent: d.intent, sendKey: d.sendKey }));
  // A late event whose site has been quiet may or may not be late, depending on which sites
  // share its partition; one that arrives while nothing newer was sent (between the windows) is
  // not late at all: leave both out. Removing them moves no bound (they are not the newest).
  const fates = classifyFates(sent, options.rules);
  const unjudgeable = sent.filter((e, i) => fates[i] === 'ambiguous' && e.intent !== 'late');
  if (unjudgeable.length > 0) throw new Error(`generator bug: ${unjudgeable.length} on-time events are not surely on time (first: ${JSON.stringify(unjudgeable[0]!.wire)})`);
  sent = sent.filter((e, i) => fates[i] !== 'ambiguous' && !(e.intent === 'late' && fates[i] !== 'late')).map((e, seq) => ({ ...e, seq }));

  const oldest = windows[0]!.fromMs;
  const minuteRetentionDays = Math.max(35, Math.ceil((options.nowMs - oldest) / DAY_MS) + 2);
  return { seed: options.seed, nowMs: options.nowMs, sites, windows, dst, sent, siteSettings, minuteRetentionDays };
}

export function emptyDims(): DimensionValues {
  return {
    entry_page: null, hostname: null, source: null, referrer: null, channel: null,
    utm_source: null, utm_medium: null, utm_campaign: null, utm_term: null, utm_content: null,
    country: null, region: null, city: null, browser: null, browser_version: null, os: null, os_version: null,
    device: null, screen: null, page: null, event: null,
  };
}

/** Send-order batches of at most `size` events (the wire limit is 500). */
export function batches<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
