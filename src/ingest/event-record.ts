/**
 * The event-log record format of an EnrichedEvent: how ingest writes it and how anyone reading
 * the whole event back decodes it (the aggregator reads only its window fields, in
 * aggregate/decode-event.ts, with the same key table).
 *
 * Version 2 (written now) is compact JSON: short keys, and a field whose value is its default
 * is left out (on demo traffic 336 bytes per event against 616 for version 1). Ingest writes it
 * straight into bytes (json-bytes-writer.ts), copying the pieces that repeat from encodings it
 * caches (`RecordParts`: page, origin, user agent, visitor id, received time). Key order is not
 * part of the format.
 *
 *   key   field            encoding                              default (left out)
 *   v     format version   2                                     — (always present)
 *   id    id               string                                —
 *   s     site             string                                —
 *   n     name             string, present exactly when      type 'pageview' and
 *         (and type)       type is 'event'                       name 'pageview'
 *   r     receivedAt       ms since epoch                        —
 *   dt    ts               ts − receivedAt, ms                   0
 *   h     host             string                                —
 *   p     path             string                                —
 *   ti    title            string                                null
 *   rh    referrerHost     string                                ''
 *   so    source           string                                —
 *   ch    channel          string                                —
 *   u     utm              {s, m, c, t, n}: source, medium,      all null
 *                          campaign, term, content; null ones left out
 *   b     browser          string                                'Unknown'
 *   bv    browserVersion   string                                ''
 *   o     os               string                                'Unknown'
 *   ov    osVersion        string                                ''
 *   d     device           string                                'other'
 *   bot   bot              true                                  false
 *   sc    screen           [width, height]                       null
 *   l     language         string                                null
 *   pr    props            object                                {}
 *   rv    revenue          [amount, currency]                    null
 *   vi    visitorId        string                                —
 *   c     country          string                                null
 *   rg    region           string                                null
 *   ci    city             string                                null
 *
 * Version 1 (written before) is `JSON.stringify(EnrichedEvent)` with every field present (but
 * `region` and `city`, added later: absent is null); it is still decoded, so a log written by an
 * older ingest replays unchanged.
 *
 * Keys added to version 2 later (`rg`, `ci`) are optional like every defaulted key: a record
 * written before them decodes with their default, and a reader from before them ignores them.
 *
 * Decoding is strict and never throws: a record that is not exactly one of these shapes is an
 * outcome with a reason (`invalid_json`, `not_an_object`, `unsupported_version`,
 * `invalid_field:<field>`, naming the EnrichedEvent field). Unknown keys are ignored, so that a
 * field added later does not make older readers dead-letter records.
 */
import { isAscii } from 'node:buffer';
import type { EnrichedEvent } from './enriched-event.js';
import { JsonBytesWriter } from './json-bytes-writer.js';
import { CHANNELS, type Channel } from './referrer.js';
import type { DeviceType, UserAgentInfo } from './user-agent.js';

/**
 * The version-2 key of each EnrichedEvent field (the table above), for a reader that needs some
 * fields on its own. `name` doubles as the type (present exactly for custom events); `tsOffset`
 * holds ts − receivedAt.
 */
export const RECORD_KEYS = {
  version: 'v', id: 'id', site: 's', name: 'n', receivedAt: 'r', tsOffset: 'dt', host: 'h', path: 'p', title: 'ti',
  referrerHost: 'rh', source: 'so', channel: 'ch', utm: 'u', browser: 'b', browserVersion: 'bv', os: 'o', osVersion: 'ov',
  device: 'd', bot: 'bot', screen: 'sc', language: 'l', props: 'pr', revenue: 'rv', visitorId: 'vi', country: 'c',
  region: 'rg', city: 'ci',
} as const;
/** The keys inside `u` (utm). */
export const UTM_KEYS = { source: 's', medium: 'm', campaign: 'c', term: 't', content: 'n' } as const;

const UNKNOWN = 'Unknown';
const DEVICES: readonly DeviceType[] = ['desktop', 'mobile', 'tablet', 'other'];

/** `,"h":…,"p":…`: the page, encoded once per distinct normalised URL. */
export function pagePart(host: string, path: string): Buffer {
  const w = new JsonBytesWriter(64 + 6 * (host.length + path.length));
  w.ascii(',"h":');
  w.string(host);
  w.ascii(',"p":');
  w.string(path);
  return w.copy();
}

/** The user-agent fields, encoded once per distinct parse result. */
export function agentPart(a: UserAgentInfo): Buffer {
  const w = new JsonBytesWriter(256);
  const field = (key: string, value: string) => {
    w.ascii(key);
    w.string(value);
  };
  if (a.browser !== UNKNOWN) field(',"b":', a.browser);
  if (a.browserVersion !== '') field(',"bv":', a.browserVersion);
  if (a.os !== UNKNOWN) field(',"o":', a.os);
  if (a.osVersion !== '') field(',"ov":', a.osVersion);
  if (a.device !== 'other') field(',"d":', a.device);
  if (a.bot) w.ascii(',"bot":true');
  return w.copy();
}

/** Referrer host, source, channel and UTM parameters, encoded once per distinct attribution. */
export function originPart(e: OriginFields): Buffer {
  const w = new JsonBytesWriter(256);
  writeOrigin(w, e);
  return w.copy();
}

type OriginFields = Pick<EnrichedEvent, 'referrerHost' | 'source' | 'channel' | 'utm'>;

function writeOrigin(w: JsonBytesWriter, e: OriginFields): void {
  if (e.referrerHost !== '') {
    w.ascii(',"rh":');
    w.string(e.referrerHost);
  }
  w.ascii(',"so":');
  w.string(e.source);
  w.ascii(',"ch":');
  w.string(e.channel);
  const u = e.utm;
  if (u.source !== null || u.medium !== null || u.campaign !== null || u.term !== null || u.content !== null) {
    let sep = '{';
    const field = (key: string, value: string | null) => {
      if (value === null) return;
      w.ascii(`${sep}"${key}":`);
      w.string(value);
      sep = ',';
    };
    w.ascii(',"u":');
    field('s', u.source);
    field('m', u.medium);
    field('c', u.campaign);
    field('t', u.term);
    field('n', u.content);
    w.ascii('}');
  }
}

/** `,"vi":…`: a visitor id, encoded once per visitor and day (it is memoised with the id). */
export function visitorPart(visitorId: string): Buffer {
  const w = new JsonBytesWriter(64 + 6 * visitorId.length);
  w.ascii(',"vi":');
  w.string(visitorId);
  return w.copy();
}

/** `,"c":…,"rg":…,"ci":…`: a location (null fields left out), encoded once per distinct GeoIP record. */
export function geoPart(g: GeoFields): Buffer {
  const w = new JsonBytesWriter(64);
  writeGeo(w, g);
  return w.copy();
}

type GeoFields = Pick<EnrichedEvent, 'country' | 'region' | 'city'>;

function writeGeo(w: JsonBytesWriter, g: GeoFields): void {
  if (g.country !== null) {
    w.ascii(',"c":');
    w.string(g.country);
  }
  if (g.region !== null) {
    w.ascii(',"rg":');
    w.string(g.region);
  }
  if (g.city !== null) {
    w.ascii(',"ci":');
    w.string(g.city);
  }
}

/** `,"r":…`: the received time, encoded once for all the events received with it. */
export function receivedAtPart(receivedAt: number): Buffer {
  const w = new JsonBytesWriter(64);
  w.ascii(',"r":');
  w.number(receivedAt);
  return w.copy();
}

/**
 * Pieces the caller already encoded (from its caches, or once for many events); each must equal
 * what the function named after it gives for `e`: `pagePart(e.host, e.path)`, `originPart(e)`,
 * `agentPart(e)`, `visitorPart(e.visitorId)`, `receivedAtPart(e.receivedAt)`, `geoPart(e)`.
 */
export interface RecordParts {
  readonly page?: Buffer;
  readonly origin?: Buffer;
  readonly agent?: Buffer;
  readonly visitor?: Buffer;
  readonly receivedAt?: Buffer;
  readonly geo?: Buffer;
}

function hasKeys(o: object): boolean {
  for (const key in o) if (Object.prototype.hasOwnProperty.call(o, key)) return true;
  return false;
}

/** Appends the version-2 record of `e` (its `v` is ignored) to `w`. */
export function writeEventRecord(w: JsonBytesWriter, e: EnrichedEvent, parts: RecordParts = {}): void {
  w.ascii('{"v":2,"id":');
  w.string(e.id);
  w.ascii(',"s":');
  w.string(e.site);
  if (e.type === 'event') {
    w.ascii(',"n":');
    w.string(e.name);
  }
  if (parts.receivedAt) {
    w.bytes(parts.receivedAt);
  } else {
    w.ascii(',"r":');
    w.number(e.receivedAt);
  }
  if (e.ts !== e.receivedAt) {
    w.ascii(',"dt":');
    w.number(e.ts - e.receivedAt);
  }
  w.bytes(parts.page ?? pagePart(e.host, e.path));
  if (parts.origin) w.bytes(parts.origin);
  else writeOrigin(w, e);
  if (e.title !== null) {
    w.ascii(',"ti":');
    w.string(e.title);
  }
  w.bytes(parts.agent ?? agentPart(e));
  if (e.screen !== null) {
    w.ascii(',"sc":[');
    w.number(e.screen.width);
    w.ascii(',');
    w.number(e.screen.height);
    w.ascii(']');
  }
  if (e.language !== null) {
    w.ascii(',"l":');
    w.string(e.language);
  }
  if (hasKeys(e.props)) {
    w.ascii(',"pr":');
    w.json(JSON.stringify(e.props));
  }
  if (e.revenue !== null) {
    w.ascii(',"rv":[');
    w.number(e.revenue.amount);
    w.ascii(',');
    w.string(e.revenue.currency);
    w.ascii(']');
  }
  if (parts.visitor) {
    w.bytes(parts.visitor);
  } else {
    w.ascii(',"vi":');
    w.string(e.visitorId);
  }
  if (parts.geo) w.bytes(parts.geo);
  else writeGeo(w, e);
  w.ascii('}');
}

/** The version-2 record of `e`, on its own. */
export function encodeEventRecord(e: EnrichedEvent): Buffer {
  const w = new JsonBytesWriter(1024);
  writeEventRecord(w, e);
  return w.copy();
}

export type DecodedRecord =
  | { readonly ok: true; readonly event: EnrichedEvent }
  | { readonly ok: false; readonly reason: string };

/** Parsed JSON of a record: an object, or the reason it is not one. */
export function parseRecordObject(value: Buffer): Record<string, unknown> | string {
  let parsed: unknown;
  try {
    // Records are nearly always ASCII, which decodes as Latin-1 (a plain copy) to the same string.
    parsed = JSON.parse(value.toString(isAscii(value) ? 'latin1' : 'utf8'));
  } catch {
    return 'invalid_json';
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return 'not_an_object';
  return parsed as Record<string, unknown>;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isNonEmpty = (v: unknown): v is string => typeof v === 'string' && v !== '';
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isChannel = (v: unknown): v is Channel => (CHANNELS as readonly unknown[]).includes(v);
const isDevice = (v: unknown): v is DeviceType => (DEVICES as readonly unknown[]).includes(v);
const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function isProps(v: unknown): v is EnrichedEvent['props'] {
  if (!isPlainObject(v)) return false;
  for (const key in v) {
    const p = v[key];
    if (typeof p !== 'string' && typeof p !== 'boolean' && !isFiniteNumber(p)) return false;
  }
  return true;
}

class Invalid {
  constructor(readonly field: string) {}
}

/** Reads optional fields of a version-2 record: absent → the default, wrong type → Invalid. */
function optional<T>(o: Record<string, unknown>, key: string, field: string, check: (v: unknown) => v is T, fallback: T): T {
  const v = o[key];
  if (v === undefined) return fallback;
  if (!check(v)) throw new Invalid(field);
  return v;
}

function required<T>(o: Record<string, unknown>, key: string, field: string, check: (v: unknown) => v is T): T {
  const v = o[key];
  if (!check(v)) throw new Invalid(field);
  return v;
}

const isScreen = (v: unknown): v is [number, number] =>
  Array.isArray(v) && v.length === 2 && Number.isSafeInteger(v[0]) && Number.isSafeInteger(v[1]);
const isRevenue = (v: unknown): v is [number, string] =>
  Array.isArray(v) && v.length === 2 && isFiniteNumber(v[0]) && isString(v[1]);
const isTrue = (v: unknown): v is true => v === true;
const isNullableString = (v: unknown): v is string | null => v === null || typeof v === 'string';

/** A field that is absent (JSON has no undefined) or a string; anything else is Invalid. */
function optionalString<T extends string | null>(v: unknown, field: string, fallback: T): string | T {
  if (v === undefined) return fallback;
  if (typeof v !== 'string') throw new Invalid(field);
  return v;
}

function requiredString(v: unknown, field: string): string {
  if (typeof v !== 'string') throw new Invalid(field);
  return v;
}

const CHANNEL_SET: ReadonlySet<unknown> = new Set(CHANNELS);
const DEVICE_SET: ReadonlySet<unknown> = new Set(DEVICES);

/**
 * Checks in a fixed order (the order of the table, as before): when several fields are wrong,
 * the reason names the first. Written out field by field rather than through one generic
 * reader taking a check function: that call site saw every check and was the decoder's main
 * cost after JSON.parse.
 */
function decodeV2(o: Record<string, unknown>): EnrichedEvent {
  const id = o.id;
  if (typeof id !== 'string' || id === '') throw new Invalid('id');
  const site = o.s;
  if (typeof site !== 'string' || site === '') throw new Invalid('site');
  const name = o.n;
  if (name !== undefined && (typeof name !== 'string' || name === '')) throw new Invalid('name');
  const receivedAt = o.r;
  if (!isTime(receivedAt)) throw new Invalid('receivedAt');
  const dt = o.dt;
  if (dt !== undefined && !isTime(dt)) throw new Invalid('ts');
  const ts = dt === undefined ? receivedAt : receivedAt + dt;
  if (!isTime(ts)) throw new Invalid('ts');
  let u = o.u;
  if (u === undefined) u = {};
  else if (!isPlainObject(u)) throw new Invalid('utm');
  const sc = o.sc;
  if (sc !== undefined && !isScreen(sc)) throw new Invalid('screen');
  const rv = o.rv;
  if (rv !== undefined && !isRevenue(rv)) throw new Invalid('revenue');
  const host = requiredString(o.h, 'host');
  const path = requiredString(o.p, 'path');
  const title = optionalString(o.ti, 'title', null);
  const referrerHost = optionalString(o.rh, 'referrerHost', '');
  const source = requiredString(o.so, 'source');
  const channel = o.ch;
  if (!CHANNEL_SET.has(channel)) throw new Invalid('channel');
  const utm = u as Record<string, unknown>;
  const utmSource = optionalString(utm.s, 'utm', null);
  const utmMedium = optionalString(utm.m, 'utm', null);
  const utmCampaign = optionalString(utm.c, 'utm', null);
  const utmTerm = optionalString(utm.t, 'utm', null);
  const utmContent = optionalString(utm.n, 'utm', null);
  const browser = optionalString(o.b, 'browser', UNKNOWN);
  const browserVersion = optionalString(o.bv, 'browserVersion', '');
  const os = optionalString(o.o, 'os', UNKNOWN);
  const osVersion = optionalString(o.ov, 'osVersion', '');
  let device = o.d;
  if (device === undefined) device = 'other';
  else if (!DEVICE_SET.has(device)) throw new Invalid('device');
  const bot = o.bot;
  if (bot !== undefined && bot !== true) throw new Invalid('bot');
  const language = optionalString(o.l, 'language', null);
  let props = o.pr;
  if (props === undefined) props = {};
  else if (!isProps(props)) throw new Invalid('props');
  const visitorId = requiredString(o.vi, 'visitorId');
  const country = optionalString(o.c, 'country', null);
  const region = optionalString(o.rg, 'region', null);
  const city = optionalString(o.ci, 'city', null);
  const screen = sc as [number, number] | undefined;
  const revenue = rv as [number, string] | undefined;
  return {
    v: 2,
    id,
    site,
    type: name === undefined ? 'pageview' : 'event',
    name: name === undefined ? 'pageview' : name as string,
    ts,
    receivedAt,
    host,
    path,
    title,
    referrerHost,
    source,
    channel: channel as Channel,
    utm: { source: utmSource, medium: utmMedium, campaign: utmCampaign, term: utmTerm, content: utmContent },
    browser,
    browserVersion,
    os,
    osVersion,
    device: device as DeviceType,
    bot: bot === true,
    screen: screen === undefined ? null : { width: screen[0], height: screen[1] },
    language,
    props: props as EnrichedEvent['props'],
    revenue: revenue === undefined ? null : { amount: revenue[0], currency: revenue[1] },
    visitorId,
    country,
    region,
    city,
  };
}

function decodeV1(o: Record<string, unknown>): EnrichedEvent {
  const type = required(o, 'type', 'type', (v): v is 'pageview' | 'event' => v === 'pageview' || v === 'event');
  const u = required(o, 'utm', 'utm', isPlainObject);
  const screen = required(o, 'screen', 'screen', (v): v is { width: number; height: number } | null =>
    v === null || (isPlainObject(v) && Number.isSafeInteger(v.width) && Number.isSafeInteger(v.height)));
  const revenue = required(o, 'revenue', 'revenue', (v): v is { amount: number; currency: string } | null =>
    v === null || (isPlainObject(v) && isFiniteNumber(v.amount) && isString(v.currency)));
  return {
    v: 1,
    id: required(o, 'id', 'id', isNonEmpty),
    site: required(o, 'site', 'site', isNonEmpty),
    type,
    name: required(o, 'name', 'name', isNonEmpty),
    ts: required(o, 'ts', 'ts', isTime),
    receivedAt: required(o, 'receivedAt', 'receivedAt', isTime),
    host: required(o, 'host', 'host', isString),
    path: required(o, 'path', 'path', isString),
    title: required(o, 'title', 'title', isNullableString),
    referrerHost: required(o, 'referrerHost', 'referrerHost', isString),
    source: required(o, 'source', 'source', isString),
    channel: required(o, 'channel', 'channel', isChannel),
    utm: {
      source: required(u, 'source', 'utm', isNullableString),
      medium: required(u, 'medium', 'utm', isNullableString),
      campaign: required(u, 'campaign', 'utm', isNullableString),
      term: required(u, 'term', 'utm', isNullableString),
      content: required(u, 'content', 'utm', isNullableString),
    },
    browser: required(o, 'browser', 'browser', isString),
    browserVersion: required(o, 'browserVersion', 'browserVersion', isString),
    os: required(o, 'os', 'os', isString),
    osVersion: required(o, 'osVersion', 'osVersion', isString),
    device: required(o, 'device', 'device', isDevice),
    bot: required(o, 'bot', 'bot', (v): v is boolean => typeof v === 'boolean'),
    screen: screen === null ? null : { width: screen.width, height: screen.height },
    language: required(o, 'language', 'language', isNullableString),
    props: required(o, 'props', 'props', isProps),
    revenue: revenue === null ? null : { amount: revenue.amount, currency: revenue.currency },
    visitorId: required(o, 'visitorId', 'visitorId', isString),
    country: required(o, 'country', 'country', isNullableString),
    region: optional<string | null>(o, 'region', 'region', isNullableString, null),
    city: optional<string | null>(o, 'city', 'city', isNullableString, null),
  };
}

/**
 * The whole event of a record of either version, or why it is not one. Never throws. This is the
 * decoder for any reader that needs every field (aggregation of dimensions, the raw archive):
 * one JSON.parse and one property read per field; the strings are the parsed ones, not copied.
 */
export function decodeEventRecord(value: Buffer): DecodedRecord {
  const o = parseRecordObject(value);
  if (typeof o === 'string') return { ok: false, reason: o };
  return decodeEventObject(o);
}

/** As decodeEventRecord, from a record already parsed (parseRecordObject), for a reader that looked at it first. */
export function decodeEventObject(o: Record<string, unknown>): DecodedRecord {
  try {
    if (o.v === 2) return { ok: true, event: decodeV2(o) };
    if (o.v === 1) return { ok: true, event: decodeV1(o) };
  } catch (e) {
    if (e instanceof Invalid) return { ok: false, reason: `invalid_field:${e.field}` };
    throw e;
  }
  return { ok: false, reason: 'unsupported_version' };
}
