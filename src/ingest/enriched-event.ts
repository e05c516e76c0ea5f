/**
 * The event as it is stored in the event log: validated, normalised and enriched.
 * It never carries a raw IP or a raw client visitor id: `visitorId` is a keyed hash.
 * Serialised as JSON in log records; `v` is the record format version.
 */
export interface EnrichedEvent {
  readonly v: 1;
  /** Client id when given, else server-assigned; unique per site. */
  readonly id: string;
  readonly site: string;
  readonly type: 'pageview' | 'event';
  /** Custom event name; `pageview` for pageviews. */
  readonly name: string;
  /** Event time, ms since epoch (UTC). */
  readonly ts: number;
  /** When the gateway received it, ms since epoch. */
  readonly receivedAt: number;
  readonly host: string;
  /** URL path without query string or fragment. */
  readonly path: string;
  readonly title: string | null;
  /** Referrer host ('' when none or same-site). */
  readonly referrerHost: string;
  /** Human source name (Google, Facebook, Newsletter from utm_source…), or 'Direct / None'. */
  readonly source: string;
  /** Acquisition channel: direct, organic_search, paid_search, social, email, referral… */
  readonly channel: string;
  readonly utm: {
    readonly source: string | null;
    readonly medium: string | null;
    readonly campaign: string | null;
    readonly term: string | null;
    readonly content: string | null;
  };
  readonly browser: string;
  readonly browserVersion: string;
  readonly os: string;
  readonly osVersion: string;
  /** desktop | mobile | tablet | other */
  readonly device: string;
  readonly bot: boolean;
  readonly screen: { readonly width: number; readonly height: number } | null;
  readonly language: string | null;
  readonly props: Readonly<Record<string, string | number | boolean>>;
  readonly revenue: { readonly amount: number; readonly currency: string } | null;
  /** Keyed hash (hex) of the visitor: never reversible to an IP or a client id. */
  readonly visitorId: string;
  /** Country code from an edge geo hint, when one was given. */
  readonly country: string | null;
}
