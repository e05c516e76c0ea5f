/**
 * The ingest stage: raw events from the gateway → validated, normalised, enriched records in
 * the event log, keyed by site.
 *
 * Contract:
 * - Per event, not per batch: an invalid event (schema, semantics, URL) or one for a site the
 *   caller may not write is listed in `rejected` with its index; the others go on.
 * - Durability: `ingest` resolves only once `EventLog.append` has resolved for every accepted
 *   event of the call, including the earlier copy of an event reported as a duplicate.
 * - Idempotency: a client event id seen again for the same site within the dedup horizon is
 *   not appended again (counted in `duplicates`, listed in `ids`). The horizon is the last
 *   ⌊dedupCacheSize/2⌋ to dedupCacheSize ids (lru-cache.ts), per process and best effort: the
 *   aggregator must still tolerate the at-least-once log. If an append fails, its ids are
 *   forgotten again so that the client's retry is appended.
 * - Failure: a failed append rejects the call with OVERLOADED (retryable); clients retry with
 *   the same ids. Some records of a failed append may have been written: ids make that safe.
 * - Memory: bytes of record values between append start and resolve are counted; above
 *   `maxInFlightBytes` the service is `saturated`, 'ack' calls are refused up front with
 *   OVERLOADED and the gateway stops reading sockets until `onDrain`. Since admission is checked
 *   before a call and a call is enriched synchronously, the bound is exceeded by at most one
 *   batch (whose size the gateway bounds).
 * - Privacy: the IP and the client visitor hint only enter the visitor-id hash (and the IP the
 *   GeoIP lookup); neither is part of the record.
 * - Do-Not-Track and consent: an event is anonymous when its connection signalled Do-Not-Track
 *   or Global Privacy Control (`ctx.dnt`, `ctx.gpc`: `DNT: 1` / `Sec-GPC: 1` on the WebSocket
 *   upgrade), or it says `dnt: true`, or it says `consent: false` (schema.ts `Event`). An
 *   anonymous event is accepted and counts as a pageview or event like any other, but:
 *   its `visitorId` is '' (no id is derived, neither from its `visitor` hint nor from IP and user
 *   agent: the hash is not even computed), so it joins no visitor sketch; and its location keeps
 *   the country only (region and city dropped, whichever source told them: hint or GeoIP).
 *   Do-Not-Track always wins: `consent: true` lifts neither the event's `dnt` nor the
 *   connection's signal. Each anonymous event is counted once, when accepted, in
 *   `sluice_ingest_anonymised_total{reason}` by the first reason that applies, in the order
 *   connection_dnt, connection_gpc, event_dnt, event_no_consent.
 * - Geography: an event's own `geo` hint wins; else the connection's hint (`ctx`), when the
 *   event's IP is the connection's (an event forwarding another `ip` is a server SDK's: the
 *   connection's place is the server's, not the visitor's); else the GeoIP database of
 *   `ingest.geoDatabasePath`, when set, looked up with the event's IP (geo-location.ts,
 *   geo-database.ts). Opening the database is part of construction: a bad path throws.
 * - Records: values in the format of event-record.ts (version 2), keyed by site, with the event
 *   time and an `id` header. A call's values are views of one buffer holding only that call's
 *   records (and some slack): a holder that keeps a few of them long should copy them.
 *
 * Cost: this runs once per event at the full ingest rate, so the hot path avoids per-event
 * serialisation and allocation where it can: parse results are cached with their encoded part
 * of the record, records are written straight into bytes, and counters are summed locally.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { Event, type IngestAck } from '../../protocol/schema.js';
import { compileValidator } from '../../protocol/validate.js';
import type { Config } from '../config.js';
import { SluiceError } from '../errors.js';
import type { Logger } from '../log.js';
import type { EnrichedEvent } from './enriched-event.js';
import type { EventLog, LogRecord } from './event-log.js';
import { createEventIdGenerator } from './event-id.js';
import {
  agentPart, geoPart, originPart, pagePart, receivedAtPart, visitorPart, writeEventRecord, type RecordParts,
} from './event-record.js';
import { openGeoDatabase } from './geo-database.js';
import { geoFromHint, NO_GEO, type GeoLocation } from './geo-location.js';
import { JsonBytesWriter } from './json-bytes-writer.js';
import { LruCache } from './lru-cache.js';
import { propsLimitMessage } from './props-limits.js';
import { cleanUtm, createUrlNormaliser, type NormalisedUrl, type UtmParams } from './normalise-url.js';
import { createAttributor, type Attribution } from './referrer.js';
import { MAX_USER_AGENT_LENGTH, createUserAgentParser, type UserAgentInfo } from './user-agent.js';
import { createVisitorIdHasher } from './visitor-id.js';

/** What the transport knows about the connection an event batch arrived on. */
export interface ConnectionContext {
  readonly ip?: string;
  readonly userAgent?: string;
  /**
   * The connection's geo hint (e.g. CDN headers on the WebSocket upgrade), in the forms of
   * schema.ts `Event.geo`: country ISO 3166-1 alpha-2, region ISO 3166-2 or a name, city a name.
   * Best effort: a malformed field is ignored.
   */
  readonly country?: string;
  readonly region?: string;
  readonly city?: string;
  /**
   * The connection's client signalled Do-Not-Track (`DNT: 1`) or Global Privacy Control
   * (`Sec-GPC: 1`): every event of the connection is made anonymous (see "Do-Not-Track and
   * consent" above), whatever the event's own `consent` says.
   */
  readonly dnt?: boolean;
  readonly gpc?: boolean;
  /** Whether this connection's credential may write a site (per connection; see also deps.authorize). */
  readonly authorize?: (site: string) => boolean;
}

export type IngestMode = 'ack' | 'fnf';

export interface IngestService {
  /**
   * Validate, normalise and enrich each raw event; append accepted ones to the log keyed by
   * site; resolves with the ack only once they are durable. Mode 'ack' rejects the WHOLE call
   * with SluiceError('OVERLOADED') when the in-flight budget is exhausted (nothing accepted);
   * mode 'fnf' always proceeds (the gateway stops reading sockets while `saturated`).
   * Rejects with OVERLOADED when the log append fails.
   */
  ingest(raw: readonly unknown[], ctx: ConnectionContext, mode: IngestMode): Promise<IngestAck>;
  readonly saturated: boolean;
  /** Called when in-flight bytes fall back under the bound. Returns an unsubscribe function. */
  onDrain(listener: () => void): () => void;
  /** Bytes of record values handed to the log and not yet durable. */
  readonly inFlightBytes: number;
}

export interface IngestServiceDeps {
  readonly log: EventLog;
  readonly topic: string;
  readonly config: Config['ingest'];
  readonly registry: Registry;
  readonly logger?: Logger;
  /** Wall clock, ms since epoch; injectable for tests. */
  readonly now?: () => number;
  /** Service-wide site check, applied besides the connection's own `ctx.authorize`; all sites when both are absent. */
  readonly authorize?: (site: string) => boolean;
}

type Rejection = IngestAck['rejected'][number];

/** A normalised URL with the page's part of the record (event-record.ts) encoded once. */
interface CachedUrl {
  readonly url: NormalisedUrl;
  readonly part: Buffer;
  /**
   * Attributions of visits to this page without UTM fields of their own, by referrer ('' for
   * none), with their part of the record: for such a visit the page and the referrer decide the
   * attribution, and a page's referrers repeat. At most ORIGINS_PER_PAGE, the first seen.
   */
  origins?: Map<string, CachedOrigin>;
}

type OkUrl = Extract<NormalisedUrl, { ok: true }>;
type Mutable<T> = { -readonly [K in keyof T]: T[K] };

interface CachedAgent {
  readonly agent: UserAgentInfo;
  readonly part: Buffer;
}

interface CachedOrigin {
  readonly origin: Attribution;
  readonly part: Buffer;
}

/** A location with its part of the record; the part is absent for a hint's, written per event. */
interface PlacedGeo {
  readonly geo: GeoLocation;
  readonly part: Buffer | undefined;
}

const ORIGINS_PER_PAGE = 16;
/** Longer referrers are deep links that rarely repeat (as in referrer.ts). */
const MAX_CACHED_REFERRER_LENGTH = 256;

/** One call's append, shared by the dedup entries of its ids until it settles. */
interface PendingAppend {
  durable: boolean;
  promise: Promise<void> | undefined;
}

/**
 * A user agent as ingest uses it, for parsing, as a cache key and in the visitor hash: its
 * first MAX_USER_AGENT_LENGTH characters, in a string that owns its memory. The wire schema
 * caps an event's `userAgent` there and the WebSocket transport cuts its header there too, but
 * ingest does not rely on either (SDK events carry `userAgent` in the body; a context may come
 * from another transport). Owning matters as much as the length: V8 makes a cut (`slice`) of
 * 13 characters or more a view that keeps its whole parent alive, so a cache keyed by the
 * transport's 1 KiB cut of a 15 KiB header would pin the 15 KiB, for as long as the cache
 * keeps the key. The caches re-insert with the caller's key when they promote an entry, so the
 * copy is made here, before any lookup.
 *
 * `owned`: the string is known to own its memory (parsed from JSON); copied only when cut.
 */
function ingestUserAgent(userAgent: string, owned: boolean): string {
  if (userAgent.length > MAX_USER_AGENT_LENGTH) return copyOf(userAgent.slice(0, MAX_USER_AGENT_LENGTH));
  return owned ? userAgent : copyOf(userAgent);
}

/** A flat copy of `text` that shares no memory with it (exact for any UTF-16, lone surrogates included). */
function copyOf(text: string): string {
  return Buffer.from(text, 'utf16le').toString('utf16le');
}

/** Distinct user agents and referrers kept parsed. */
const PARSE_CACHE_SIZE = 10_000;
/**
 * Addresses kept located: a GeoIP lookup costs about 1 µs (tree walk and address parsing), a hit
 * here about 0.05 µs, and a visitor's address repeats with each of their events. The addresses
 * stay in this process's memory only, as the visitor-id cache's do.
 */
const GEO_CACHE_SIZE = 50_000;
/** Visitor ids kept per day (visitor-id.ts). */
const VISITOR_CACHE_SIZE = 50_000;
const NO_PROPS: Readonly<Record<string, string | number | boolean>> = Object.freeze({});
const NO_PART = Buffer.alloc(0);
const UNPLACED: PlacedGeo = { geo: NO_GEO, part: NO_PART };
/** The visitor id of an anonymous event, which no visitor sketch counts (minute-windows.ts). */
const ANONYMOUS_VISITOR = { id: '', part: visitorPart('') };
/** Why an event was made anonymous; `sluice_ingest_anonymised_total`'s `reason` label. */
type AnonymisedReason = 'connection_dnt' | 'connection_gpc' | 'event_dnt' | 'event_no_consent';
const ANONYMISED_REASONS: readonly AnonymisedReason[] = ['connection_dnt', 'connection_gpc', 'event_dnt', 'event_no_consent'];
/** Countries kept with their part of the record for anonymous events: at most 26² codes exist. */
const COUNTRY_CACHE_SIZE = 1024;

// Compiled once per process: compiling is milliseconds, checking is sub-microsecond.
const validateEvent = compileValidator(Event);

/** One spelling per address, so one client hashes to one visitor whatever socket family it used. */
function canonicalIp(ip: string): string {
  if (!ip.includes(':')) return ip;
  const lower = ip.toLowerCase();
  return lower.startsWith('::ffff:') && lower.includes('.') ? lower.slice(7) : lower;
}

/** Explicit event fields win over the page URL's parameters, field by field. */
function mergeUtm(e: Event, fromUrl: UtmParams): UtmParams {
  if (e.utm_source === undefined && e.utm_medium === undefined && e.utm_campaign === undefined
    && e.utm_term === undefined && e.utm_content === undefined) return fromUrl;
  return {
    source: cleanUtm(e.utm_source) ?? fromUrl.source,
    medium: cleanUtm(e.utm_medium) ?? fromUrl.medium,
    campaign: cleanUtm(e.utm_campaign) ?? fromUrl.campaign,
    term: cleanUtm(e.utm_term) ?? fromUrl.term,
    content: cleanUtm(e.utm_content) ?? fromUrl.content,
  };
}

export function createIngestService(deps: IngestServiceDeps): IngestService {
  const { log, topic, config, registry, logger, authorize } = deps;
  const now = deps.now ?? Date.now;
  const maxInFlightBytes = config.maxInFlightBytes;
  const parseUrl = createUrlNormaliser({ keepQueryParams: config.keepQueryParams });
  // Pages repeat heavily and URL parsing is one of the costlier steps: results are immutable, so
  // memoise them, with the page's part of the record already encoded.
  const urlCache = new LruCache<string, CachedUrl>(PARSE_CACHE_SIZE);
  const normaliseUrl = (url: string): CachedUrl => {
    let cached = urlCache.get(url);
    if (cached === undefined) {
      const result = parseUrl(url);
      cached = { url: result, part: result.ok ? pagePart(result.host, result.path) : NO_PART };
      urlCache.set(url, cached);
    }
    return cached;
  };
  const attribute = createAttributor({ cacheSize: PARSE_CACHE_SIZE });
  const attributeNow = (referrer: string | undefined, url: OkUrl, utm: UtmParams): CachedOrigin => {
    const origin = attribute({ referrer, pageHost: url.host, utm, paidClick: url.paidClick });
    return { origin, part: originPart({ ...origin, utm }) };
  };
  /** The attribution of a visit to `page` (whose URL is `url`) with the page URL's own UTM parameters. */
  const pageOrigin = (page: CachedUrl, url: OkUrl, referrer: string | undefined): CachedOrigin => {
    const key = referrer ?? '';
    let cached = page.origins?.get(key);
    if (cached === undefined) {
      cached = attributeNow(referrer, url, url.utm);
      page.origins ??= new Map();
      if (page.origins.size < ORIGINS_PER_PAGE && key.length <= MAX_CACHED_REFERRER_LENGTH) page.origins.set(key, cached);
    }
    return cached;
  };
  // User agents repeat: parse results are cached here, with their part of the record (the
  // parser's own cache is off, so each string is looked up once per event). Keys are at most
  // MAX_USER_AGENT_LENGTH characters of their own (see ingestUserAgent), so the cache holds at
  // most PARSE_CACHE_SIZE × 1 KiB of keys whatever the headers.
  const parseUserAgent = createUserAgentParser({ cacheSize: 0 });
  const agentCache = new LruCache<string, CachedAgent>(PARSE_CACHE_SIZE);
  const agentOf = (userAgent: string): CachedAgent => {
    let cached = agentCache.get(userAgent);
    if (cached === undefined) {
      const agent = parseUserAgent(userAgent);
      cached = { agent, part: agentPart(agent) };
      agentCache.set(userAgent, cached);
    }
    return cached;
  };
  // Memoised with its encoded part of the record.
  const visitorOf = createVisitorIdHasher(config.visitorSecret, VISITOR_CACHE_SIZE, (id) => ({ id, part: visitorPart(id) }));
  const dedup = new LruCache<string, PendingAppend>(config.dedupCacheSize);
  // Each location is kept with its part of the record, made once per decoded database record.
  const geoDatabase = config.geoDatabasePath === ''
    ? undefined
    : openGeoDatabase(config.geoDatabasePath, { wrap: (geo): PlacedGeo => ({ geo, part: geoPart(geo) }) });
  if (geoDatabase) logger?.info({ database: geoDatabase.description }, 'GeoIP database opened');
  const geoCache = new LruCache<string, PlacedGeo>(geoDatabase === undefined ? 0 : GEO_CACHE_SIZE);
  /** What an anonymous event keeps of a location: its country alone. */
  const countryCache = new LruCache<string, PlacedGeo>(COUNTRY_CACHE_SIZE);
  const countryOnly = (place: PlacedGeo): PlacedGeo => {
    const { country, region, city } = place.geo;
    if (region === null && city === null) return place;
    if (country === null) return UNPLACED;
    let placed = countryCache.get(country);
    if (placed === undefined) {
      const geo: GeoLocation = { country, region: null, city: null };
      placed = { geo, part: geoPart(geo) };
      countryCache.set(country, placed);
    }
    return placed;
  };
  const lookupGeo = (ip: string): PlacedGeo => {
    if (geoDatabase === undefined || ip === '') return UNPLACED;
    let placed = geoCache.get(ip);
    if (placed === undefined) {
      placed = geoDatabase.lookup(ip) ?? UNPLACED;
      geoCache.set(ip, placed);
    }
    return placed;
  };
  // Writes each call's records into a buffer of their own, handed to the log whole (see below).
  const writer = new JsonBytesWriter(64);
  /** Running mean of record bytes. */
  let recordBytesEstimate = 512;
  const newEventId = createEventIdGenerator();
  /** The encoded received time of the latest call: calls within the same millisecond share it. */
  let receivedAtBytes: { ms: number; bytes: Buffer } = { ms: Number.NaN, bytes: NO_PART };
  const drainListeners = new Set<() => void>();
  let inFlightBytes = 0;

  // Counted here and added to the counter when it is read (collect): a prom-client increment
  // hashes its labels on every call, which the single-event-per-frame path would pay per event.
  const counts = { accepted: 0, duplicate: 0, rejected: 0, clamped: 0, failed: 0, overloaded: 0 };
  const anonymisedCounts: Record<AnonymisedReason, number> = { connection_dnt: 0, connection_gpc: 0, event_dnt: 0, event_no_consent: 0 };
  new Counter({
    name: 'sluice_ingest_events_total',
    help: 'Events by ingest outcome: accepted (durable), duplicate, rejected (invalid or forbidden), '
      + 'clamped (future time reset; also accepted), failed (log append failed), overloaded (refused while saturated).',
    labelNames: ['outcome'] as const,
    registers: [registry],
    collect() {
      for (const outcome of Object.keys(counts) as Array<keyof typeof counts>) {
        // Every outcome is exported from the first scrape on (an increment by 0), so rates work before the first event.
        this.inc({ outcome }, counts[outcome]);
        counts[outcome] = 0;
      }
    },
  });
  new Counter({
    name: 'sluice_ingest_anonymised_total',
    help: 'Accepted events made anonymous (no visitor id, country only), by the first reason that applies: '
      + 'connection_dnt (DNT: 1 on the upgrade), connection_gpc (Sec-GPC: 1), event_dnt (dnt: true), event_no_consent (consent: false).',
    labelNames: ['reason'] as const,
    registers: [registry],
    collect() {
      for (const reason of ANONYMISED_REASONS) {
        this.inc({ reason }, anonymisedCounts[reason]);
        anonymisedCounts[reason] = 0;
      }
    },
  });
  new Gauge({
    name: 'sluice_ingest_in_flight_bytes',
    help: 'Bytes of event records handed to the event log and not yet durable.',
    registers: [registry],
    collect() {
      this.set(inFlightBytes);
    },
  });
  const appendSeconds = new Histogram({
    name: 'sluice_ingest_append_seconds',
    help: 'Time for the event log to make one ingest call\'s records durable.',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });

  function startAppend(records: readonly LogRecord[]): Promise<void> {
    try {
      return log.append(topic, records);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  function release(bytes: number): void {
    const wasSaturated = inFlightBytes > maxInFlightBytes;
    inFlightBytes -= bytes;
    if (!wasSaturated || inFlightBytes > maxInFlightBytes) return;
    // A snapshot: listeners unsubscribe (and may resubscribe) while being called.
    for (const listener of [...drainListeners]) {
      try {
        listener();
      } catch (err) {
        logger?.error({ err }, 'ingest drain listener threw');
      }
    }
  }

  async function ingest(raw: readonly unknown[], ctx: ConnectionContext, mode: IngestMode): Promise<IngestAck> {
    if (mode === 'ack' && inFlightBytes > maxInFlightBytes) {
      counts.overloaded += raw.length;
      throw new SluiceError('OVERLOADED', `ingest is saturated (${inFlightBytes} bytes awaiting the event log); retry later`);
    }
    const receivedAt = now();
    const latestTs = receivedAt + config.maxFutureSkewMs;
    const ctxIp = ctx.ip === undefined ? '' : canonicalIp(ctx.ip);
    // Once per call, not per event: the transport's header value is a cut of a longer string.
    const ctxUserAgent = ctx.userAgent === undefined ? '' : ingestUserAgent(ctx.userAgent, false);
    // The connection's signal applies to every event of the call, whatever the event says.
    const ctxAnonymised: AnonymisedReason | undefined = ctx.dnt === true ? 'connection_dnt' : ctx.gpc === true ? 'connection_gpc' : undefined;
    /** Where the connection's client is: its hint, else its IP's location, looked up once per call when first needed. */
    let ctxGeo: PlacedGeo | undefined;
    if (ctx.country !== undefined || ctx.region !== undefined || ctx.city !== undefined) {
      const hinted = geoFromHint(ctx, false);
      if (hinted.ok && hinted.geo !== null) ctxGeo = { geo: hinted.geo, part: undefined };
    }

    const batch: PendingAppend = { durable: false, promise: undefined };
    if (receivedAt !== receivedAtBytes.ms) receivedAtBytes = { ms: receivedAt, bytes: receivedAtPart(receivedAt) };
    // Filled in per event; one object for the call, as the writer only reads it while writing.
    const parts: Mutable<RecordParts> = {
      page: NO_PART, origin: NO_PART, agent: NO_PART, visitor: NO_PART, receivedAt: receivedAtBytes.bytes, geo: NO_PART,
    };
    const records: LogRecord[] = [];
    const ids: string[] = [];
    const rejected: Rejection[] = [];
    /** Dedup keys this call claimed: forgotten again if its append fails. */
    const claimed: string[] = [];
    let waitFor: Set<Promise<void>> | undefined;
    let duplicates = 0;
    let clamped = 0;
    let bytes = 0;
    /** Anonymous events appended by this call, by reason: counted once the append is durable. */
    let anonymised: Partial<Record<AnonymisedReason, number>> | undefined;

    const forgetClaims = () => {
      for (const key of claimed) if (dedup.peek(key) === batch) dedup.delete(key);
    };

    try {
      // One buffer for the call's records, each record's value a view of it: one allocation per
      // call rather than per event, and no copy. It holds only the call's records and some slack
      // (sized from the records written so far), which the log takes together.
      writer.start(Math.ceil(raw.length * recordBytesEstimate * 1.25));
      for (let index = 0; index < raw.length; index++) {
        const checked = validateEvent(raw[index]);
        if (!checked.ok) {
          const message = checked.path.startsWith('/props') ? propsLimitMessage((raw[index] as { props?: unknown }).props) : undefined;
          rejected.push({ index, code: 'PAYLOAD_SCHEMA', message: message ?? checked.message });
          continue;
        }
        const e = checked.value;
        const name = e.type === 'pageview' ? 'pageview' : e.name;
        if (name === undefined) {
          rejected.push({ index, code: 'PAYLOAD_SCHEMA', message: '/name: required when type is "event"' });
          continue;
        }
        if ((authorize && !authorize(e.site)) || (ctx.authorize && !ctx.authorize(e.site))) {
          rejected.push({ index, code: 'SITE_FORBIDDEN', message: `this credential may not write site ${e.site}` });
          continue;
        }
        const page = normaliseUrl(e.url);
        const url = page.url;
        if (!url.ok) {
          rejected.push({ index, code: 'PAYLOAD_SCHEMA', message: `/url: ${url.reason}` });
          continue;
        }
        let hintedGeo: GeoLocation | null = null;
        if (e.geo !== undefined) {
          const hinted = geoFromHint(e.geo, true);
          if (!hinted.ok) {
            rejected.push({ index, code: 'PAYLOAD_SCHEMA', message: hinted.message });
            continue;
          }
          hintedGeo = hinted.geo;
        }

        // Last check before enrichment, which cannot reject: a claimed id is always appended.
        let id = e.id;
        if (id === undefined) {
          id = newEventId();
        } else if (dedup.capacity > 0) {
          const key = `${e.site}\0${id}`;
          const seen = dedup.putIfAbsent(key, batch);
          if (seen !== undefined) {
            duplicates++;
            ids.push(id);
            // The earlier copy may still be on its way to the log: ack only once it is durable.
            if (seen !== batch && !seen.durable && seen.promise) (waitFor ??= new Set()).add(seen.promise);
            continue;
          }
          claimed.push(key);
        }

        let ts = e.timestamp ?? receivedAt;
        if (ts > latestTs) {
          ts = receivedAt;
          clamped++;
        }
        const userAgent = e.userAgent === undefined ? ctxUserAgent : ingestUserAgent(e.userAgent, true);
        const { agent, part: agentBytes } = agentOf(userAgent);
        const utm = mergeUtm(e, url.utm);
        const { origin, part: originBytes } = utm === url.utm ? pageOrigin(page, url, e.referrer) : attributeNow(e.referrer, url, utm);
        const ip = e.ip === undefined ? ctxIp : canonicalIp(e.ip);
        const anonymous: AnonymisedReason | undefined = ctxAnonymised
          ?? (e.dnt === true ? 'event_dnt' : e.consent === false ? 'event_no_consent' : undefined);
        let visitor = ANONYMOUS_VISITOR;
        if (anonymous === undefined) {
          visitor = visitorOf(e.site, e.visitor, ip, userAgent, receivedAt);
        } else {
          anonymised ??= {};
          anonymised[anonymous] = (anonymised[anonymous] ?? 0) + 1;
        }
        let place: PlacedGeo = hintedGeo !== null
          ? { geo: hintedGeo, part: undefined }
          : e.ip === undefined ? (ctxGeo ??= lookupGeo(ctxIp)) : lookupGeo(ip);
        if (anonymous !== undefined) place = countryOnly(place);
        const geo = place.geo;

        const enriched: EnrichedEvent = {
          v: 2,
          id,
          site: e.site,
          type: e.type,
          name,
          ts,
          receivedAt,
          host: url.host,
          path: url.path,
          title: e.title ?? null,
          referrerHost: origin.referrerHost,
          source: origin.source,
          channel: origin.channel,
          utm,
          browser: agent.browser,
          browserVersion: agent.browserVersion,
          os: agent.os,
          osVersion: agent.osVersion,
          device: agent.device,
          bot: agent.bot,
          screen: e.screen ?? null,
          language: e.language === undefined ? null : e.language.toLowerCase(),
          props: e.props ?? NO_PROPS,
          revenue: e.revenue ?? null,
          visitorId: visitor.id,
          country: geo.country,
          region: geo.region,
          city: geo.city,
        };
        parts.page = page.part;
        parts.origin = originBytes;
        parts.agent = agentBytes;
        parts.visitor = visitor.part;
        parts.geo = place.part;
        const start = writer.length;
        writeEventRecord(writer, enriched, parts);
        records.push({ key: e.site, value: writer.since(start), timestampMs: ts, headers: { id } });
        ids.push(id);
      }
      bytes = writer.length;
      if (records.length > 0) recordBytesEstimate = recordBytesEstimate * 0.9 + (bytes / records.length) * 0.1;
      writer.take();
    } catch (err) {
      forgetClaims(); // an unexpected fault: the claimed ids were never appended
      throw err;
    }

    counts.rejected += rejected.length;
    counts.clamped += clamped;

    if (records.length > 0) {
      inFlightBytes += bytes;
      const appendStart = performance.now();
      batch.promise = startAppend(records);
      try {
        await batch.promise;
        batch.durable = true;
        batch.promise = undefined; // dedup entries outlive the call: keep them small
      } catch (err) {
        forgetClaims();
        counts.failed += records.length;
        logger?.warn({ err, topic, records: records.length }, 'event log append failed');
        throw new SluiceError('OVERLOADED', 'the event log did not accept the events; retry with the same event ids', { cause: err });
      } finally {
        appendSeconds.observe((performance.now() - appendStart) / 1000);
        release(bytes);
      }
    }

    if (waitFor) {
      try {
        await Promise.all(waitFor);
      } catch (err) {
        // Their earlier copy failed and was forgotten: the client's retry will append it.
        throw new SluiceError('OVERLOADED', 'an earlier copy of a duplicate event failed to reach the event log; retry with the same event ids', { cause: err });
      }
    }

    counts.accepted += records.length;
    counts.duplicate += duplicates;
    if (anonymised) for (const reason of ANONYMISED_REASONS) anonymisedCounts[reason] += anonymised[reason] ?? 0;
    return { accepted: records.length, duplicates, rejected, ids };
  }

  return {
    ingest,
    get saturated() {
      return inFlightBytes > maxInFlightBytes;
    },
    get inFlightBytes() {
      return inFlightBytes;
    },
    onDrain(listener) {
      // Wrapped so the same function subscribed twice is two subscriptions.
      const entry = () => listener();
      drainListeners.add(entry);
      return () => {
        drainListeners.delete(entry);
      };
    },
  };
}
