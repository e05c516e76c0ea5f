/**
 * The error catalog: every error the server sends carries one of these stable string codes
 * in a JSON body `{code, message, retryable}`. Across the wire the string code is the
 * contract; the RSocket code says at which level the error acts (setup, connection, request).
 * `protocol/README.md` documents each one; a test fails when the two drift.
 */
export const RSOCKET_ERROR = {
  INVALID_SETUP: 0x00000001,
  UNSUPPORTED_SETUP: 0x00000002,
  REJECTED_SETUP: 0x00000003,
  CONNECTION_ERROR: 0x00000101,
  CONNECTION_CLOSE: 0x00000102,
  APPLICATION_ERROR: 0x00000201,
  REJECTED: 0x00000202,
  CANCELED: 0x00000203,
  INVALID: 0x00000204,
} as const;

export type RSocketErrorName = keyof typeof RSOCKET_ERROR;

export interface CatalogEntry {
  readonly rsocket: RSocketErrorName;
  readonly retryable: boolean;
  readonly description: string;
}

export const ERROR_CATALOG = {
  SETUP_INVALID: {
    rsocket: 'INVALID_SETUP', retryable: false,
    description: 'The first frame was not a well-formed SETUP on stream 0 (a RESUME included), named an RSocket major version other than 1, or asked for resume or lease, which this server does not offer.',
  },
  SETUP_UNSUPPORTED_MIME: {
    rsocket: 'UNSUPPORTED_SETUP', retryable: false,
    description: 'SETUP named a metadata or data MIME type this server does not speak (composite metadata and JSON are supported).',
  },
  SETUP_TIMEOUT: {
    rsocket: 'CONNECTION_ERROR', retryable: true,
    description: 'No complete SETUP frame arrived within the setup timeout.',
  },
  AUTH_REQUIRED: {
    rsocket: 'REJECTED_SETUP', retryable: false,
    description: 'SETUP carried no bearer credential in the authentication extension.',
  },
  AUTH_INVALID: {
    rsocket: 'REJECTED_SETUP', retryable: false,
    description: 'SETUP carried a credential this server does not know.',
  },
  AUTH_EXPIRED: {
    rsocket: 'REJECTED_SETUP', retryable: false,
    description: 'SETUP carried a key past its expiry; an open connection of a key that expires is closed with this code.',
  },
  AUTH_REVOKED: {
    rsocket: 'REJECTED_SETUP', retryable: false,
    description: 'SETUP carried a revoked key; the open connections of a key are closed with this code within seconds of its revocation.',
  },
  CONNECTION_LIMIT: {
    rsocket: 'REJECTED_SETUP', retryable: true,
    description: 'This key already holds its maximum number of connections; close one, or retry later.',
  },
  FRAME_MALFORMED: {
    rsocket: 'CONNECTION_ERROR', retryable: false,
    description: 'Bytes that do not decode as RSocket frames, or a frame where the protocol does not allow it (see Frames in the README); the connection is closed.',
  },
  FRAME_TOO_LARGE: {
    rsocket: 'CONNECTION_ERROR', retryable: false,
    description: 'A frame is larger than the maximum frame size; the connection is closed before the frame is buffered.',
  },
  ROUTE_MISSING: {
    rsocket: 'INVALID', retryable: false,
    description: 'The request carried no routing entry in its composite metadata.',
  },
  ROUTE_UNKNOWN: {
    rsocket: 'INVALID', retryable: false,
    description: 'The route is not one this server offers.',
  },
  ROUTE_WRONG_INTERACTION: {
    rsocket: 'INVALID', retryable: false,
    description: 'The route exists for another interaction model (for example a query route sent as request-stream), the request is a request-channel, or a frame its stream does not take; that stream ends.',
  },
  METADATA_MALFORMED: {
    rsocket: 'INVALID', retryable: false,
    description: 'The request metadata is not valid composite metadata.',
  },
  PAYLOAD_INVALID_JSON: {
    rsocket: 'INVALID', retryable: false,
    description: 'The request data is not valid UTF-8 JSON.',
  },
  PAYLOAD_SCHEMA: {
    rsocket: 'INVALID', retryable: false,
    description: 'The request data is JSON but does not match the route\'s schema; the message names the first offending path.',
  },
  PAYLOAD_TOO_LARGE: {
    rsocket: 'REJECTED', retryable: false,
    description: 'The request data or batch is larger than the configured maximum.',
  },
  SITE_FORBIDDEN: {
    rsocket: 'REJECTED', retryable: false,
    description: 'The credential may not read or write the requested site.',
  },
  QUERY_INVALID: {
    rsocket: 'INVALID', retryable: false,
    description: 'The query is well-formed but asks for something impossible (for example `to` before `from`, or too many points).',
  },
  QUERY_TOO_LARGE: {
    rsocket: 'REJECTED', retryable: false,
    description: 'The query would read more than the server allows (a filtered query scans raw events, up to `query.maxRawScanEvents`); narrow the range or drop filters.',
  },
  TIME_ZONE_UNKNOWN: {
    rsocket: 'INVALID', retryable: false,
    description: 'The query names a time zone that is not a known IANA zone name.',
  },
  FORBIDDEN: {
    rsocket: 'REJECTED', retryable: false,
    description: 'The key\'s scope does not allow this route (an ingest key querying, a read key sending events, a non-admin key on an admin route).',
  },
  RATE_LIMITED: {
    rsocket: 'REJECTED', retryable: true,
    description: 'Over the per-key ingest rate or the per-site query rate; retry after the time the message names. Nothing in the rejected request was accepted.',
  },
  ADMIN_INVALID: {
    rsocket: 'INVALID', retryable: false,
    description: 'An admin request broke a rule of the account model (a key scoped to another organisation\'s site, an unknown time zone, an origin that is not scheme://host[:port]).',
  },
  ADMIN_NOT_FOUND: {
    rsocket: 'INVALID', retryable: false,
    description: 'The organisation, site, user or key named does not exist, or is not visible to this key (the two look the same).',
  },
  ADMIN_CONFLICT: {
    rsocket: 'INVALID', retryable: false,
    description: 'An organisation or site with that id exists already.',
  },
  OVERLOADED: {
    rsocket: 'REJECTED', retryable: true,
    description: 'The server cannot take this request now (event log full or slow); retry with backoff. Nothing in the rejected request was accepted.',
  },
  STREAM_LIMIT: {
    rsocket: 'REJECTED', retryable: true,
    description: 'Too many live streams are open on this connection.',
  },
  CONNECTION_CLOSING: {
    rsocket: 'CONNECTION_CLOSE', retryable: true,
    description: 'The server is shutting down and closes the connection after its in-flight requests; reconnect to another instance.',
  },
  SHUTTING_DOWN: {
    rsocket: 'REJECTED', retryable: true,
    description: 'The server is shutting down; reconnect to another instance.',
  },
  OPS_INVALID: {
    rsocket: 'INVALID', retryable: false,
    description: 'The request is well-formed but cannot be run: a range not on UTC midnights or too long, `to` before `from`, a `resume` of another range, kind or logic version.',
  },
  OPS_NOT_FINAL: {
    rsocket: 'REJECTED', retryable: true,
    description: 'The range reaches into days that are not final yet (the watermark has not passed their end); retry later, or pass `skipNotFinal`.',
  },
  OPS_ARCHIVE_BEHIND: {
    rsocket: 'REJECTED', retryable: true,
    description: 'The archive tap has not archived the event log up to now within the wait (is a process with the `archive` role running?); retry later.',
  },
  OPS_ARCHIVE_INCOMPLETE: {
    rsocket: 'REJECTED', retryable: false,
    description: 'The raw archive no longer holds every event of the range (older than its retention, or an embedded archive that evicted events): a recomputation would lose them.',
  },
  OPS_BUSY: {
    rsocket: 'REJECTED', retryable: true,
    description: 'Another run of the site holds its lease, or the consumer group to replay has running members.',
  },
  OPS_NOT_FOUND: {
    rsocket: 'INVALID', retryable: false,
    description: 'No such run of the site.',
  },
  OPS_UNSUPPORTED: {
    rsocket: 'REJECTED', retryable: false,
    description: 'The operation needs the distributed event log (replay in embedded mode).',
  },
  OPS_INTERRUPTED: {
    rsocket: 'APPLICATION_ERROR', retryable: true,
    description: 'The run stopped before its end (cancelled, its lease lost, the server shutting down, a day changed under it); the same command resumes it.',
  },
  INTERNAL: {
    rsocket: 'APPLICATION_ERROR', retryable: true,
    description: 'An unexpected server fault; the request may be retried. The server logs the cause.',
  },
} as const satisfies Record<string, CatalogEntry>;

export type ErrorCode = keyof typeof ERROR_CATALOG;

/** The JSON body of every error frame the server sends. */
export interface ErrorBody {
  readonly code: ErrorCode;
  readonly message: string;
  readonly retryable: boolean;
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CATALOG, value);
}

export function errorBody(code: ErrorCode, message: string): ErrorBody {
  return { code, message, retryable: ERROR_CATALOG[code].retryable };
}

export function rsocketCodeOf(code: ErrorCode): number {
  return RSOCKET_ERROR[ERROR_CATALOG[code].rsocket];
}

/** Parse an error frame's message as an ErrorBody; undefined when it is not one of ours. */
export function parseErrorBody(message: string): ErrorBody | undefined {
  try {
    const parsed: unknown = JSON.parse(message);
    if (typeof parsed === 'object' && parsed !== null) {
      const { code, message: text, retryable } = parsed as Record<string, unknown>;
      if (isErrorCode(code) && typeof text === 'string' && typeof retryable === 'boolean') {
        return { code, message: text, retryable };
      }
    }
  } catch {
    // not JSON: not ours
  }
  return undefined;
}
