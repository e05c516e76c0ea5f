/**
 * The event as it is stored in the event log: validated, normalised and enriched.
 * It never carries a raw IP or a raw client visitor id: `visitorId` is a keyed hash.
 * Log records hold it in the format of event-record.ts (compact JSON); `v` is the format
 * version of the record it was written as or read from.
 */
import type { Channel } from './referrer.js';
import type { DeviceType } from './user-agent.js';

export interface EnrichedEvent {
  readonly v: 1 | 2;
  /** Client id when given, else server-assigned; unique per site. */
  readonly id: string;
  readonly site: string;
  readonly type: 'pageview' | 'event';
  /** Custom event name; `pageview` for pageviews. */
  readonly name: string;
  /** Event time, ms since epoch (UTC); the received time when absent or too far in the future. */
  readonly ts: number;
  /** When the gateway received it, ms since epoch. */
  readonly receivedAt: number;
  /** Page host: lowercased, without `www.`, port only when not the default (normalise-url.ts). */
  readonly host: string;
  /**
   * URL path without fragment or trailing slash; its query string is dropped except the
   * parameters listed in `ingest.keepQueryParams`, kept sorted by name (normalise-url.ts).
   */
  readonly path: string;
  readonly title: string | null;
  /** Referrer host ('' when none or same-site). */
  readonly referrerHost: string;
  /** Human source name (Google, Facebook, Newsletter from utm_source…), or 'Direct / None'. */
  readonly source: string;
  /** Acquisition channel, one of the stable set `CHANNELS` (referrer.ts). */
  readonly channel: Channel;
  readonly utm: {
    readonly source: string | null;
    readonly medium: string | null;
    readonly campaign: string | null;
    readonly term: string | null;
    readonly content: string | null;
  };
  /** Browser and OS names as ua-parser-js reports them, 'Unknown' when it cannot tell; versions '' then. */
  readonly browser: string;
  readonly browserVersion: string;
  readonly os: string;
  readonly osVersion: string;
  readonly device: DeviceType;
  readonly bot: boolean;
  readonly screen: { readonly width: number; readonly height: number } | null;
  readonly language: string | null;
  readonly props: Readonly<Record<string, string | number | boolean>>;
  readonly revenue: { readonly amount: number; readonly currency: string } | null;
  /**
   * Keyed hash (32 hex chars) of the visitor, rotating daily: never reversible to an IP or a client
   * id (visitor-id.ts). '' for an anonymous event (Do-Not-Track or no consent, ingest-service.ts):
   * no visitor is known, and aggregation adds '' to no visitor sketch.
   */
  readonly visitorId: string;
  /**
   * ISO 3166-1 alpha-2 country code: from the edge's geo hint, else the operator's GeoIP database;
   * null when neither tells. An anonymous event keeps only this: its region and city are null.
   */
  readonly country: string | null;
  /** Region (ISO 3166-2 subdivision code such as 'US-CA', or its name when no code is known), same sources. */
  readonly region: string | null;
  /** City name, same sources. */
  readonly city: string | null;
}
