/**
 * The wire schema: one TypeBox definition per message. The TypeScript types and the runtime
 * validator (`validate.ts`) are both derived from these definitions, so there is no second
 * hand-written copy of any shape. Limits (lengths, counts) are part of the contract.
 */
import { Type, type Static } from '@sinclair/typebox';

const Str = (maxLength: number, minLength = 0) => Type.String({ minLength, maxLength });

export const LIMITS = {
  maxBatchEvents: 500,
  maxProps: 30,
  maxPropKeyLength: 64,
  maxPropValueLength: 512,
  maxUrlLength: 2048,
  maxSeriesPoints: 5000,
  maxBreakdownLimit: 1000,
  maxLiveWindowMinutes: 360,
} as const;

export const SiteId = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' });

/** Milliseconds since the Unix epoch, UTC. */
export const EpochMs = Type.Integer({ minimum: 0, maximum: 8_640_000_000_000_000 });

/**
 * A goal: a pageview whose path matches `page` (a glob: `*` matches within a path segment,
 * `**` across segments), or a custom event named `event`, optionally with `props` all equal.
 * Goals are evaluated at query time over the rollups, so a new goal applies to history too.
 */
export const Goal = Type.Object({
  name: Str(120, 1),
  page: Type.Optional(Str(LIMITS.maxUrlLength, 1)),
  event: Type.Optional(Str(120, 1)),
  props: Type.Optional(Type.Record(Type.String({ minLength: 1, maxLength: LIMITS.maxPropKeyLength }), Type.String({ maxLength: LIMITS.maxPropValueLength }), { maxProperties: 5 })),
}, { additionalProperties: false });
export type Goal = Static<typeof Goal>;

export const SiteSettings = Type.Object({
  /** IANA time zone name; the query default for the site. */
  timeZone: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  goals: Type.Optional(Type.Array(Goal, { maxItems: 100 })),
}, { additionalProperties: false });
export type SiteSettings = Static<typeof SiteSettings>;

/** A custom property's value. NUL is refused: rollup cells join name, key and value with it (rollup.ts propKey). */
export const PropValue = Type.Union([Type.String({ maxLength: LIMITS.maxPropValueLength, pattern: '^[^\\u0000]*$' }), Type.Number(), Type.Boolean()]);

/** Text that becomes a dimension value or part of a cell key: no control characters. */
const NO_CONTROL = '^[^\\u0000-\\u001F\\u007F]*$';
const GeoName = Type.String({ minLength: 1, maxLength: 100, pattern: NO_CONTROL });

/** One analytics event as a source sends it. */
export const Event = Type.Object({
  /** Client event id: retries with the same id count once. Assigned by the server when absent. */
  id: Type.Optional(Str(64, 1)),
  type: Type.Union([Type.Literal('pageview'), Type.Literal('event')]),
  /** Custom event name; required when type is `event`. */
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 120, pattern: NO_CONTROL })),
  site: SiteId,
  /** Event time in ms since epoch; the server's received time when absent. */
  timestamp: Type.Optional(EpochMs),
  url: Str(LIMITS.maxUrlLength, 1),
  referrer: Type.Optional(Str(LIMITS.maxUrlLength)),
  title: Type.Optional(Str(512)),
  utm_source: Type.Optional(Str(256)),
  utm_medium: Type.Optional(Str(256)),
  utm_campaign: Type.Optional(Str(256)),
  utm_term: Type.Optional(Str(256)),
  utm_content: Type.Optional(Str(256)),
  screen: Type.Optional(Type.Object({
    width: Type.Integer({ minimum: 0, maximum: 100_000 }),
    height: Type.Integer({ minimum: 0, maximum: 100_000 }),
  }, { additionalProperties: false })),
  language: Type.Optional(Str(35)),
  /**
   * Custom properties: at most maxProps, names of 1 to maxPropKeyLength characters without
   * control characters (a pattern, as a Record's key length is not checked otherwise).
   */
  props: Type.Optional(Type.Record(
    Type.String({ pattern: `^[^\\u0000-\\u001F\\u007F]{1,${LIMITS.maxPropKeyLength}}$` }),
    PropValue,
    { maxProperties: LIMITS.maxProps, additionalProperties: false },
  )),
  revenue: Type.Optional(Type.Object({
    amount: Type.Number({ minimum: -1e12, maximum: 1e12 }),
    currency: Type.String({ pattern: '^[A-Z]{3}$' }),
  }, { additionalProperties: false })),
  /** A stable visitor identifier the source already has (hashed before use, never stored raw). */
  visitor: Type.Optional(Str(128, 1)),
  /** Server SDKs forward their visitor's user agent and IP; a browser's come from the connection. */
  userAgent: Type.Optional(Str(1024)),
  ip: Type.Optional(Str(45)),
  /**
   * Where the visitor is, as the edge knows it (an edge collector, or a server SDK forwarding
   * its CDN's headers); it wins over the server's GeoIP lookup of the IP. `country` is ISO
   * 3166-1 alpha-2 ('XX' and 'ZZ' mean unknown); `region` an ISO 3166-2 code ('US-CA'), the
   * subdivision part alone when `country` is given ('CA'), or a name; `city` a name. A region
   * code of another country than `country` is refused.
   */
  geo: Type.Optional(Type.Object({
    country: Type.Optional(Type.String({ pattern: '^[A-Za-z]{2}$' })),
    region: Type.Optional(GeoName),
    city: Type.Optional(GeoName),
  }, { additionalProperties: false })),
  /**
   * Privacy flags. `dnt: true` says the visitor asked not to be tracked (the browser's
   * Do-Not-Track or Global Privacy Control, or the site's own opt-out); `consent: false` says the
   * visitor has not consented to analytics. Either makes the event anonymous: it is accepted and
   * still counts as a pageview or event, but gets no visitor id (neither from `visitor` nor from
   * IP and user agent, so it adds to no visitor count) and no location finer than the country.
   * A WebSocket connection whose upgrade carried `DNT: 1` or `Sec-GPC: 1` makes all its events
   * anonymous the same way. Do-Not-Track always wins: `consent: true` does not lift the event's
   * own `dnt` nor the connection's signal. Absent flags mean nothing was said (not anonymous).
   */
  dnt: Type.Optional(Type.Boolean()),
  consent: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });
export type Event = Static<typeof Event>;

export const EventBatch = Type.Object({
  events: Type.Array(Event, { minItems: 1, maxItems: LIMITS.maxBatchEvents }),
}, { additionalProperties: false });
export type EventBatch = Static<typeof EventBatch>;

/**
 * The request of `ingest.batch`: the envelope is checked here, each event on its own against
 * `Event`, so one invalid event is reported in the ack and fails only itself.
 */
export const IngestBatchRequest = Type.Object({
  events: Type.Array(Type.Unknown(), { minItems: 1, maxItems: LIMITS.maxBatchEvents }),
}, { additionalProperties: false });

/**
 * `ingest.events` takes one event or a batch. The envelope is checked first and each event is
 * checked on its own, so one bad event in a fire-and-forget batch drops only itself (counted).
 */
export const IngestEnvelope = Type.Union([
  Type.Object({ events: Type.Array(Type.Unknown(), { minItems: 1, maxItems: LIMITS.maxBatchEvents }) }, { additionalProperties: false }),
  Type.Object({ type: Type.Unknown() }),
]);

export const RejectedEvent = Type.Object({
  index: Type.Integer({ minimum: 0 }),
  code: Type.String(),
  message: Type.String(),
});

/** Sent once every accepted event of the batch is durable in the event log. */
export const IngestAck = Type.Object({
  accepted: Type.Integer({ minimum: 0 }),
  duplicates: Type.Integer({ minimum: 0 }),
  rejected: Type.Array(RejectedEvent),
  /** Server ids of the accepted events, in batch order (duplicates included). */
  ids: Type.Array(Type.String()),
});
export type IngestAck = Static<typeof IngestAck>;

export const Interval = Type.Union([Type.Literal('minute'), Type.Literal('hour'), Type.Literal('day')]);
export type Interval = Static<typeof Interval>;

export const TimeRange = {
  site: SiteId,
  /** Inclusive start, ms since epoch. */
  from: EpochMs,
  /** Exclusive end, ms since epoch. */
  to: EpochMs,
};

export const Metrics = Type.Object({
  pageviews: Type.Integer({ minimum: 0 }),
  events: Type.Integer({ minimum: 0 }),
  /** Unique visitors: a HyperLogLog estimate merged across buckets, never a sum. */
  visitors: Type.Integer({ minimum: 0 }),
});
export type Metrics = Static<typeof Metrics>;

export const TimeseriesRequest = Type.Object({ ...TimeRange, interval: Interval }, { additionalProperties: false });
export type TimeseriesRequest = Static<typeof TimeseriesRequest>;

export const TimeseriesPoint = Type.Object({ t: EpochMs, pageviews: Type.Integer(), events: Type.Integer(), visitors: Type.Integer() });
export type TimeseriesPoint = Static<typeof TimeseriesPoint>;

/** The event time up to which buckets are final: later events can still restate buckets after it. */
const Watermark = Type.Union([EpochMs, Type.Null()]);

export const TimeseriesResponse = Type.Object({
  site: SiteId, from: EpochMs, to: EpochMs, interval: Interval,
  points: Type.Array(TimeseriesPoint),
  watermark: Watermark,
});
export type TimeseriesResponse = Static<typeof TimeseriesResponse>;

export const TotalsRequest = Type.Object({ ...TimeRange }, { additionalProperties: false });
export type TotalsRequest = Static<typeof TotalsRequest>;

export const TotalsResponse = Type.Object({ site: SiteId, from: EpochMs, to: EpochMs, totals: Metrics, watermark: Watermark });
export type TotalsResponse = Static<typeof TotalsResponse>;

export const Dimension = Type.Union([Type.Literal('page'), Type.Literal('source')]);
export type Dimension = Static<typeof Dimension>;

export const BreakdownRequest = Type.Object({
  ...TimeRange,
  dimension: Dimension,
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: LIMITS.maxBreakdownLimit })),
}, { additionalProperties: false });
export type BreakdownRequest = Static<typeof BreakdownRequest>;

/** `page` rows count pageviews; `source` rows count pageviews by referrer source. "(other)" holds the rest. */
export const BreakdownRow = Type.Object({ value: Type.String(), pageviews: Type.Integer({ minimum: 0 }) });
export type BreakdownRow = Static<typeof BreakdownRow>;

export const BreakdownResponse = Type.Object({
  site: SiteId, from: EpochMs, to: EpochMs, dimension: Dimension,
  rows: Type.Array(BreakdownRow),
  watermark: Watermark,
});
export type BreakdownResponse = Static<typeof BreakdownResponse>;

export const CurrentVisitorsRequest = Type.Object({ site: SiteId }, { additionalProperties: false });
export type CurrentVisitorsRequest = Static<typeof CurrentVisitorsRequest>;

/** Distinct visitors seen in the last five minutes (by event time), bots excluded. */
export const CurrentVisitorsResponse = Type.Object({
  site: SiteId,
  visitors: Type.Integer({ minimum: 0 }),
  windowMinutes: Type.Integer(),
  /** Server time of the count, ms since epoch. */
  at: EpochMs,
});
export type CurrentVisitorsResponse = Static<typeof CurrentVisitorsResponse>;

export const LiveRequest = Type.Object({
  site: SiteId,
  /** How many trailing one-minute buckets the stream covers. */
  windowMinutes: Type.Optional(Type.Integer({ minimum: 1, maximum: LIMITS.maxLiveWindowMinutes })),
}, { additionalProperties: false });
export type LiveRequest = Static<typeof LiveRequest>;

/**
 * Live stream messages. The first is always a `snapshot`; each `update` carries the latest
 * value of every minute bucket that changed since the previous message (conflated) and the
 * window totals as of now.
 */
export const LiveSnapshot = Type.Object({
  type: Type.Literal('snapshot'), site: SiteId, windowMinutes: Type.Integer(),
  points: Type.Array(TimeseriesPoint), totals: Metrics, watermark: Watermark,
});
export const LiveUpdate = Type.Object({
  type: Type.Literal('update'), site: SiteId,
  points: Type.Array(TimeseriesPoint), totals: Metrics, watermark: Watermark,
});
export const LiveMessage = Type.Union([LiveSnapshot, LiveUpdate]);
export type LiveMessage = Static<typeof LiveMessage>;

export const ErrorBodySchema = Type.Object({ code: Type.String(), message: Type.String(), retryable: Type.Boolean() });
