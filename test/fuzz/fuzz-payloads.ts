/**
 * Hostile request data for the fuzz campaign, and the oracle for what each must get.
 *
 * The oracle is the protocol contract: UTF-8 JSON (else PAYLOAD_INVALID_JSON), the route's
 * schema from protocol/routes.ts (else PAYLOAD_SCHEMA), and for events the README's extra rules
 * (an `event` needs a `name`; `url` is an absolute URL with a host). Each generated event also
 * carries the generator's own label (valid or not, and why); the campaign checks that the
 * schema agrees with the label, so a hole in the schema (say, NaN accepted as a timestamp)
 * fails the campaign too rather than silently widening the oracle.
 *
 * JSON text is built by hand where JSON.stringify cannot say it: numbers that overflow to
 * ±Infinity (1e400), `__proto__` as an own key, raw invalid UTF-8, nesting 10^5 levels deep.
 */
import { isUtf8 } from 'node:buffer';
import type { TSchema } from '@sinclair/typebox';
import { ROUTES, type RouteName } from '../../protocol/routes.js';
import { Event, LIMITS } from '../../protocol/schema.js';
import { compileValidator } from '../../protocol/validate.js';
import type { ErrorCode } from '../../protocol/errors.js';
import type { FuzzRandom } from './fuzz-random.js';

/** 10^5 levels, as the issue asks: about 200 KB of brackets, well within the 1 MiB frame. */
export const DEEP_LEVELS = 100_000;
export const deepArray = (levels = DEEP_LEVELS): string => '['.repeat(levels) + ']'.repeat(levels);
export const deepObject = (levels = DEEP_LEVELS, leaf = '1'): string => '{"a":'.repeat(levels) + leaf + '}'.repeat(levels);

/** Keys that reach prototypes when code indexes plain objects with untrusted names. */
export const PROTO_KEYS = ['__proto__', 'constructor', 'prototype'] as const;
/** Site ids that are valid by the schema yet name Object.prototype members. */
export const PROTO_SITES = ['constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf', 'propertyIsEnumerable', 'toLocaleString'] as const;

/** A JSON value given as text, so that it can say what JSON.stringify cannot. */
export class Raw {
  constructor(readonly text: string) {}
}
type Json = string | number | boolean | null | Raw | Json[] | { [key: string]: Json };

/** JSON text for a value that may contain Raw pieces; object keys are written as given (`__proto__` included). */
export function toJson(value: Json | undefined): string {
  if (value === undefined) return 'null';
  if (value instanceof Raw) return value.text;
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(toJson).join(',')}]`;
  return `{${Object.keys(value).map((k) => `${JSON.stringify(k)}:${toJson(value[k])}`).join(',')}}`;
}

/** An object with exactly these own keys, `__proto__` included as an ordinary own property. */
export function own(entries: ReadonlyArray<readonly [string, Json]>): { [key: string]: Json } {
  const o: { [key: string]: Json } = {};
  for (const [k, v] of entries) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  return o;
}

export interface LabeledEvent {
  /** The event as JSON (the server parses exactly this text). */
  readonly json: string;
  readonly valid: boolean;
  /** Which mutation made it: the coverage tally and failure messages name it. */
  readonly kind: string;
  readonly id: string | undefined;
  readonly site: string;
  readonly type: 'pageview' | 'event';
  /**
   * Whether, when accepted, it must show in the rollups of its site now: true for events with
   * a current timestamp and no user agent (bots are not counted); false when a mutation moved
   * its time or its user agent.
   */
  readonly countsNow: boolean;
}

const validateEvent = compileValidator(Event);

/** The README's verdict on one event, from its JSON text. */
export function eventVerdict(json: string): { valid: boolean; why: string } {
  return eventVerdictOf(JSON.parse(json));
}

/** The same for a parsed value (never re-stringified: JSON.stringify overflows the stack at 10^5 levels). */
export function eventVerdictOf(value: unknown): { valid: boolean; why: string } {
  const checked = validateEvent(value);
  if (!checked.ok) return { valid: false, why: checked.message };
  const e = checked.value;
  if (e.type === 'event' && e.name === undefined) return { valid: false, why: '/name: required for type event' };
  let url: URL;
  try {
    url = new URL(e.url);
  } catch {
    return { valid: false, why: '/url: not an absolute URL' };
  }
  if (url.hostname === '') return { valid: false, why: '/url: no host' };
  return { valid: true, why: '' };
}

interface Mutation {
  readonly kind: string;
  readonly valid: boolean;
  /** False when the mutation changes the event's time or user agent (see LabeledEvent.countsNow). */
  readonly countsNow?: boolean;
  apply(e: { [key: string]: Json }, fz: FuzzRandom): void;
}

const set = (field: string, value: Json | (() => Json)) => (e: { [key: string]: Json }) => {
  e[field] = typeof value === 'function' ? value() : value;
};
const long = (n: number, c = 'x') => c.repeat(n);
const WRONG_TYPES: readonly Json[] = [null, true, 0, -1, 1.5, 'x', [], {}, [1, 'a'], { a: 1 }];

/** Each entry breaks (or stretches) one thing; `valid` is what the README says must happen. */
const MUTATIONS: readonly Mutation[] = [
  { kind: 'plain', valid: true, apply: () => {} },
  // __proto__ / constructor / prototype at every level of an event and of its props.
  ...PROTO_KEYS.map((k): Mutation => ({ kind: `event-key-${k}`, valid: false, apply: (e) => { Object.defineProperty(e, k, { value: { polluted: 'yes' }, enumerable: true, writable: true, configurable: true }); } })),
  { kind: 'props-proto-keys', valid: true, apply: (e) => { e.props = own([['__proto__', 'polluted'], ['constructor', 'polluted'], ['prototype', 'polluted'], ['toString', 1], ['hasOwnProperty', true]]); } },
  ...PROTO_KEYS.map((k): Mutation => ({ kind: `props-${k}-object`, valid: false, apply: (e) => { e.props = own([[k, { polluted: 'yes' }]]); } })),
  { kind: 'props-proto-value', valid: true, apply: (e) => { e.props = own([['x', '__proto__'], ['y', 'constructor']]); } },
  { kind: 'screen-proto-key', valid: false, apply: (e) => { e.screen = own([['width', 1], ['height', 1], ['__proto__', { polluted: 'yes' }]]); } },
  { kind: 'revenue-proto-key', valid: false, apply: (e) => { e.revenue = own([['amount', 1], ['currency', 'EUR'], ['constructor', { prototype: { polluted: 'yes' } }]]); } },
  { kind: 'geo-proto-key', valid: false, apply: (e) => { e.geo = own([['__proto__', { polluted: 'yes' }]]); } },
  { kind: 'name-proto', valid: true, apply: (e, fz) => { e.type = 'event'; e.name = fz.pick(PROTO_KEYS); } },
  { kind: 'strings-proto', valid: true, apply: (e, fz) => {
    const k = fz.pick(PROTO_KEYS);
    Object.assign(e, { title: k, language: k, visitor: k, referrer: `https://${k}.example/${k}`, utm_source: k, utm_campaign: k });
    e.url = `https://fz.example/${k}/constructor/prototype?__proto__[polluted]=1&constructor[prototype][polluted]=1&utm_source=${k}&utm_medium=__proto__`;
  } },
  // Wrong types, field by field.
  ...(['id', 'type', 'name', 'site', 'timestamp', 'url', 'referrer', 'title', 'screen', 'language', 'props', 'revenue', 'visitor', 'userAgent', 'ip', 'utm_source'] as const).map((field): Mutation => ({
    kind: `wrong-type-${field}`, valid: false,
    apply: (e, fz) => {
      const right: Record<string, (v: Json) => boolean> = {
        id: (v) => typeof v === 'string' && v.length > 0, type: () => false, name: (v) => typeof v === 'string' && v.length > 0,
        site: (v) => typeof v === 'string' && /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(v), timestamp: (v) => typeof v === 'number' && Number.isInteger(v) && v >= 0, url: () => false,
        referrer: (v) => typeof v === 'string', title: (v) => typeof v === 'string', language: (v) => typeof v === 'string',
        screen: () => false,
        props: (v) => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Raw)
          && Object.values(v).every((x) => ['string', 'number', 'boolean'].includes(typeof x)),
        revenue: () => false, visitor: (v) => typeof v === 'string' && v.length > 0, userAgent: (v) => typeof v === 'string',
        ip: (v) => typeof v === 'string', utm_source: (v) => typeof v === 'string',
      };
      let v: Json;
      do v = fz.pick(WRONG_TYPES); while (right[field]!(v));
      if (field === 'name') e.type = 'event';
      e[field] = v;
    },
  })),
  { kind: 'missing-name-for-event', valid: false, apply: (e) => { e.type = 'event'; delete e.name; } },
  { kind: 'missing-url', valid: false, apply: (e) => { delete e.url; } },
  { kind: 'missing-site', valid: false, apply: (e) => { delete e.site; } },
  // Limits: exactly at the limit is valid, one over is not.
  { kind: 'url-at-limit', valid: true, apply: (e) => { e.url = `https://fz.example/${long(LIMITS.maxUrlLength - 'https://fz.example/'.length)}`; } },
  { kind: 'url-over-limit', valid: false, apply: (e) => { e.url = `https://fz.example/${long(LIMITS.maxUrlLength - 'https://fz.example/'.length + 1)}`; } },
  { kind: 'title-at-limit', valid: true, apply: (e, fz) => { e.title = fz.hostileString(512).replace(/[\ud800-\udfff]/g, 'x').padEnd(512, 'y').slice(0, 512); } },
  { kind: 'title-over-limit', valid: false, apply: (e) => { e.title = long(513); } },
  { kind: 'title-300k', valid: false, apply: (e) => { e.title = long(300_000, 'é'); } },
  { kind: 'name-over-limit', valid: false, apply: (e) => { e.type = 'event'; e.name = long(121); } },
  { kind: 'id-over-limit', valid: false, apply: (e) => { e.id = long(65); } },
  { kind: 'visitor-over-limit', valid: false, apply: (e) => { e.visitor = long(129); } },
  { kind: 'user-agent-at-limit', valid: true, countsNow: false, apply: (e) => { e.userAgent = `Mozilla/5.0 (X11; Linux x86_64) ${long(1024 - 32, 'a(')}`.slice(0, 1024); } },
  { kind: 'user-agent-over-limit', valid: false, apply: (e) => { e.userAgent = long(1025); } },
  { kind: 'user-agent-hostile', valid: true, countsNow: false, apply: (e, fz) => { e.userAgent = fz.hostileString(fz.int(0, 200)); } },
  { kind: 'user-agent-bot', valid: true, countsNow: false, apply: (e) => { e.userAgent = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)'; } },
  { kind: 'ip-hostile', valid: true, countsNow: false, apply: (e, fz) => { e.ip = fz.pick(['not-an-ip', '', '::ffff:1.2.3.4', '999.999.999.999', '::', '0.0.0.0', 'fe80::1%eth0', long(45, ':')]); } },
  { kind: 'ip-over-limit', valid: false, apply: (e) => { e.ip = long(46, '1'); } },
  { kind: 'props-at-limit', valid: true, apply: (e) => { e.props = Object.fromEntries(Array.from({ length: LIMITS.maxProps }, (_, i) => [`k${i}`, i % 2 === 0 ? `v${i}` : i])); } },
  { kind: 'props-over-limit', valid: false, apply: (e) => { e.props = Object.fromEntries(Array.from({ length: LIMITS.maxProps + 1 }, (_, i) => [`k${i}`, i])); } },
  { kind: 'props-5000', valid: false, apply: (e) => { e.props = Object.fromEntries(Array.from({ length: 5_000 }, (_, i) => [`k${i}`, i])); } },
  { kind: 'event-5000-keys', valid: false, apply: (e) => { for (let i = 0; i < 5_000; i++) e[`extra${i}`] = i; } },
  { kind: 'prop-key-at-limit', valid: true, apply: (e) => { e.props = { [long(LIMITS.maxPropKeyLength, 'k')]: 'v' }; } },
  { kind: 'prop-key-over-limit', valid: false, apply: (e) => { e.props = { [long(LIMITS.maxPropKeyLength + 1, 'k')]: 'v' }; } },
  { kind: 'prop-key-control', valid: false, apply: (e, fz) => { e.props = { [`a${fz.pick(['\u0000', '\n', '\u001f', '\u007f'])}b`]: 'v' }; } },
  { kind: 'prop-value-at-limit', valid: true, apply: (e) => { e.props = { k: long(LIMITS.maxPropValueLength) }; } },
  { kind: 'prop-value-over-limit', valid: false, apply: (e) => { e.props = { k: long(LIMITS.maxPropValueLength + 1) }; } },
  { kind: 'prop-value-nul', valid: false, apply: (e) => { e.props = { k: 'a\u0000b' }; } },
  { kind: 'prop-value-nested', valid: false, apply: (e, fz) => { e.props = { k: fz.pick<Json>([null, [], {}, [1], { a: 'b' }]) }; } },
  { kind: 'prop-value-deep', valid: false, apply: (e) => { e.props = { k: new Raw(deepArray()) }; } },
  { kind: 'prop-values-extreme-numbers', valid: true, apply: (e) => { e.props = { a: 0, b: new Raw('-0'), c: 1e308, d: -1e308, e: 5e-324, f: Number.MAX_SAFE_INTEGER + 2, g: false }; } },
  { kind: 'hostile-strings', valid: true, apply: (e, fz) => {
    // Every free-text field gets quotes, escapes, controls, lone surrogates, separators.
    const str = (n: number) => fz.hostileString(fz.int(0, n));
    Object.assign(e, { title: str(60), language: str(35).slice(0, 35), visitor: `v${str(60)}`, referrer: str(80), utm_source: str(40), utm_term: str(40) });
    e.props = { note: str(80).replace(/\u0000/g, ''), [`key${fz.int(0, 9)}`]: str(20).replace(/\u0000/g, '') };
    e.url = `https://fz.example/${encodeURIComponent(str(30).replace(/[\ud800-\udfff]/g, ''))}?q=${encodeURIComponent(str(10).replace(/[\ud800-\udfff]/g, ''))}`;
  } },
  { kind: 'name-control', valid: false, apply: (e) => { e.type = 'event'; e.name = 'sign\nup'; } },
  { kind: 'url-not-absolute', valid: false, apply: (e, fz) => { e.url = fz.pick(['not a url', '/relative/path', 'https://', '']); } },
  { kind: 'url-no-host', valid: false, apply: (e, fz) => { e.url = fz.pick(['mailto:someone@example.com', 'file:///etc/passwd', 'javascript:alert(1)', 'data:text/html,<b>x</b>']); } },
  { kind: 'url-odd-but-valid', valid: true, apply: (e, fz) => { e.url = fz.pick(['https://[::1]:8443/x', 'https://fz.example/%00%ff%E0%A4%A', 'https://fz.example/..%2f..%2fetc', 'https://xn--fsq.example/', 'HTTPS://FZ.EXAMPLE:443/A//B///', 'https://fz.example/?utm_source=a&utm_source=b&utm_source']); } },
  { kind: 'site-invalid', valid: false, apply: (e, fz) => { e.site = fz.pick(['__proto__', '', 'a b', '-x', long(65, 'a'), 'é.example', 'x/y']); } },
  // Time: far past and far future are valid (late lane, clamped); out of range or not an integer is not.
  { kind: 'timestamp-epoch', valid: true, countsNow: false, apply: (e, fz) => { e.timestamp = fz.pick([0, 1, new Raw('-0')]); } },
  { kind: 'timestamp-far-past', valid: true, countsNow: false, apply: (e) => { e.timestamp = Date.now() - 20 * 365 * 86_400_000; } },
  { kind: 'timestamp-far-future', valid: true, countsNow: false, apply: (e, fz) => { e.timestamp = fz.pick([8_640_000_000_000_000, Date.now() + 86_400_000, 4_102_444_800_000]); } },
  { kind: 'timestamp-out-of-range', valid: false, apply: (e, fz) => { e.timestamp = fz.pick<Json>([-1, 8_640_000_000_000_001, new Raw('1e21'), new Raw('-9007199254740993')]); } },
  { kind: 'timestamp-not-integer', valid: false, apply: (e, fz) => { e.timestamp = fz.pick<Json>([1.5, new Raw('1e-7'), new Raw('1700000000000.5')]); } },
  { kind: 'timestamp-infinity', valid: false, apply: (e, fz) => { e.timestamp = new Raw(fz.pick(['1e400', '-1e400'])); } },
  { kind: 'timestamp-nan-like-string', valid: false, apply: (e, fz) => { e.timestamp = fz.pick(['NaN', 'Infinity', '-Infinity', '1700000000000', '2026-01-01T00:00:00Z']); } },
  { kind: 'screen-infinity', valid: false, apply: (e) => { e.screen = { width: new Raw('1e400'), height: 1 }; } },
  { kind: 'screen-extremes', valid: true, apply: (e, fz) => { e.screen = fz.pick<Json>([{ width: 0, height: 0 }, { width: 100_000, height: 100_000 }]); } },
  { kind: 'screen-out-of-range', valid: false, apply: (e, fz) => { e.screen = fz.pick<Json>([{ width: -1, height: 1 }, { width: 100_001, height: 1 }, { width: 1.5, height: 1 }]); } },
  { kind: 'revenue-extremes', valid: true, apply: (e, fz) => { e.revenue = { amount: fz.pick<Json>([1e12, -1e12, 0, new Raw('-0'), 5e-324]), currency: 'EUR' }; } },
  { kind: 'revenue-invalid', valid: false, apply: (e, fz) => { e.revenue = fz.pick<Json>([{ amount: new Raw('1e400'), currency: 'EUR' }, { amount: 1e12 + 1, currency: 'EUR' }, { amount: 'NaN', currency: 'EUR' }, { amount: 1, currency: 'eur' }, { amount: 1 }]); } },
  { kind: 'not-an-object', valid: false, apply: () => {} },
  { kind: 'deep-event', valid: false, apply: () => {} },
];

const MUTATION_WEIGHTS = new Map<string, number>([['plain', 6], ['props-proto-keys', 3], ['strings-proto', 3], ['hostile-strings', 4]]);
const WEIGHTED: readonly Mutation[] = MUTATIONS.flatMap((m) => Array.from({ length: MUTATION_WEIGHTS.get(m.kind) ?? 1 }, () => m));

export function mutationKinds(): string[] {
  return MUTATIONS.map((m) => m.kind);
}

/** Where events go: valid ones that count now to a site whose rollups the campaign checks. */
export interface EventSites {
  counted(): string;
  /** For events that move their time or user agent: accepted, durable, but not counted now. */
  readonly uncounted: string;
}

/**
 * One event, broken by one random mutation (or by `kind`). `idPrefix` + `n` makes
 * ids unique (dedup would otherwise merge them); some events carry no id and get the server's.
 */
export function hostileEvent(fz: FuzzRandom, sites: EventSites, idPrefix: string, n: number, kind?: string): LabeledEvent {
  const m = kind === undefined ? fz.pick(WEIGHTED) : MUTATIONS.find((x) => x.kind === kind);
  if (!m) throw new Error(`no mutation ${kind}`);
  const site = m.valid && m.countsNow !== false ? sites.counted() : sites.uncounted;
  const withId = fz.chance(0.8);
  const id = withId ? `${idPrefix}-${n}` : undefined;
  const e: { [key: string]: Json } = {
    ...(id !== undefined ? { id } : {}),
    type: fz.chance(0.7) ? 'pageview' : 'event',
    site,
    url: `https://fz.example/p/${fz.int(0, 9)}`,
    timestamp: Date.now(),
  };
  if (e.type === 'event') e.name = fz.pick(['signup', 'click', 'Purchase Completed']);
  if (fz.chance(0.3)) e.props = { plan: fz.pick(['free', 'pro']), seats: fz.int(1, 50) };
  if (fz.chance(0.2)) e.screen = { width: 1440, height: 900 };
  if (fz.chance(0.2)) e.referrer = 'https://www.google.com/';
  m.apply(e, fz);
  let json: string;
  if (m.kind === 'not-an-object') json = toJson(fz.pick<Json>([null, 1, 'pageview', [], true, [e]]));
  else if (m.kind === 'deep-event') json = fz.chance(0.5) ? deepArray() : deepObject();
  else json = toJson(e);
  const type = e.type === 'event' ? 'event' : 'pageview';
  const finalId = typeof e.id === 'string' ? e.id : undefined;
  return { json, valid: m.valid, kind: m.kind, id: finalId, site: typeof e.site === 'string' ? e.site : site, type, countsNow: m.valid && m.countsNow !== false };
}

/** A batch envelope around event texts, with an optional hostile twist of the envelope itself. */
export function envelope(events: readonly string[], extra = ''): string {
  return `{"events":[${events.join(',')}]${extra}}`;
}

/** Bytes of a JSON text with invalid UTF-8 spliced into its first string. */
export function withInvalidUtf8(fz: FuzzRandom, json: string): Buffer {
  const bad = fz.pick([[0xc3, 0x28], [0xa0, 0xa1], [0xe2, 0x28, 0xa1], [0xf0, 0x28, 0x8c, 0xbc], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xff], [0xfe]]);
  const text = Buffer.from(json, 'utf8');
  const quote = text.indexOf(0x22);
  const at = quote < 0 ? 0 : quote + 1;
  return Buffer.concat([text.subarray(0, at), Buffer.from(bad), text.subarray(at)]);
}

/** A whole-request document for a route: `bytes` as sent and what made it. */
export interface Document {
  readonly kind: string;
  readonly bytes: Buffer;
}

const validators = Object.fromEntries(Object.entries(ROUTES).map(([name, spec]) => [name, compileValidator(spec.request as TSchema)])) as unknown as Record<RouteName, (v: unknown) => { ok: boolean }>;

/**
 * The request-level verdict for `bytes` on `route`: the catalog code the whole request must
 * fail with, or undefined when it passes the envelope (the route then answers, or for
 * ingest.batch reports each event on its own).
 */
export function requestVerdict(route: RouteName, bytes: Buffer): ErrorCode | undefined {
  if (bytes.length === 0 || !isUtf8(bytes)) return 'PAYLOAD_INVALID_JSON';
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    return 'PAYLOAD_INVALID_JSON';
  }
  return validators[route](value).ok ? undefined : 'PAYLOAD_SCHEMA';
}

/** Hostile whole documents for any route, valid JSON or not; `site` is the one a valid query names. */
export function hostileDocument(fz: FuzzRandom, route: RouteName, site: string): Document {
  const now = Date.now();
  const query = (o: Record<string, Json>): { [key: string]: Json } => ({ site, from: now - 3_600_000, to: now, ...(route === 'query.timeseries' ? { interval: 'hour' } : {}), ...(route === 'query.breakdown' ? { dimension: 'page' } : {}), ...o });
  const sane: Json = route.startsWith('ingest.')
    ? { events: [{ type: 'pageview', site, url: `https://${site}/doc`, timestamp: now }] }
    : route === 'live.metrics' || route === 'query.current' ? { site } : query({});
  const sameWith = (key: string, value: Json): string => {
    const o = own(Object.entries(sane as { [key: string]: Json }));
    Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
    return toJson(o);
  };
  const text = (kind: string, t: string): Document => ({ kind, bytes: Buffer.from(t, 'utf8') });
  switch (fz.int(0, 24)) {
    case 0: return { kind: 'empty', bytes: Buffer.alloc(0) };
    case 1: return text('whitespace', fz.pick([' ', '\n\t ', '\u00a0']));
    case 2: return text('nan-infinity-literals', fz.pick(['NaN', 'Infinity', '-Infinity', '{"from": NaN}', `{"site":"${site}","from":Infinity,"to":1}`, 'undefined']));
    case 3: return text('truncated-json', toJson(sane).slice(0, fz.int(1, toJson(sane).length - 1)));
    case 4: return text('trailing-garbage', `${toJson(sane)}${fz.pick(['x', ']', '}}', '\u0000', ' {}'])}`);
    case 5: return text('bom-prefixed', `\ufeff${toJson(sane)}`);
    case 6: return { kind: 'utf16-json', bytes: Buffer.from(toJson(sane), 'utf16le') };
    case 7: return { kind: 'invalid-utf8', bytes: withInvalidUtf8(fz, toJson(sane)) };
    case 8: return { kind: 'random-bytes', bytes: fz.bytes(fz.int(1, 256)) };
    case 9: return text('deep-array-1e5', deepArray());
    case 10: return text('deep-object-1e5', deepObject());
    case 11: return text('deep-unbalanced-1e5', '['.repeat(DEEP_LEVELS));
    case 12: return text('deep-inside-field-1e5', sameWith(route.startsWith('ingest.') ? 'events' : 'site', new Raw(deepArray())));
    case 13: return text('proto-key-top', sameWith(fz.pick(PROTO_KEYS), { polluted: 'yes' }));
    case 14: return text('thousands-of-keys', toJson(own([...Object.entries(sane as { [key: string]: Json }), ...Array.from({ length: 5_000 }, (_, i): [string, Json] => [`k${i}`, i])])));
    case 15: return text('huge-json-string', sameWith('huge', long(fz.int(100_000, 900_000))));
    case 16: return text('huge-array', `[${Array.from({ length: 100_000 }, (_, i) => i % 10).join(',')}]`);
    case 17: return text('wrong-top-type', toJson(fz.pick<Json>([null, 1, 'x', [], true, [sane]])));
    case 18: return text('numbers-overflow', route.startsWith('query.') ? toJson(query({ from: new Raw('1e400'), to: new Raw('-1e400') })) : sameWith('events', new Raw('1e400')));
    case 19: return text('numbers-edge', route.startsWith('query.') ? toJson(query({ from: fz.pick<Json>([-1, new Raw('-0'), 1.5, 8_640_000_000_000_001]), to: now })) : envelope([]));
    case 20: return text('query-impossible-range', route.startsWith('query.') ? toJson(query({ from: now, to: fz.pick([now, now - 1, 0]) })) : envelope(Array.from({ length: LIMITS.maxBatchEvents + 1 }, () => '{}')));
    case 21: return text('site-proto', toJson(route.startsWith('ingest.') ? { events: [{ type: 'pageview', site: fz.pick(PROTO_SITES), url: 'https://x.example/', timestamp: now }] } : route === 'live.metrics' || route === 'query.current' ? { site: fz.pick(PROTO_SITES) } : query({ site: fz.pick(PROTO_SITES) })));
    case 22: return text('site-invalid', toJson(route.startsWith('ingest.') ? sane : route === 'live.metrics' || route === 'query.current' ? { site: '__proto__' } : query({ site: fz.pick(['__proto__', '', long(65, 'a')]) })));
    case 23: return text('wrong-field-types', route.startsWith('query.') ? toJson(query({ [fz.pick(['site', 'from', 'to', 'interval', 'dimension', 'limit'])]: fz.pick(WRONG_TYPES) })) : sameWith('events', fz.pick(WRONG_TYPES)));
    default: return text('sane', toJson(sane));
  }
}
