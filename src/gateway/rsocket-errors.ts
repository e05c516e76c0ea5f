/**
 * Catalog errors as rsocket-core sees them. Everything the gateway sends as an ERROR frame goes
 * through here, so the wire always carries the catalog's RSocket code and the JSON body
 * `{code, message, retryable}` from `errorBody`.
 */
import { ErrorCodes, FrameTypes, RSocketError, type ErrorFrame } from 'rsocket-core';
import { RSOCKET_ERROR, errorBody, rsocketCodeOf, type ErrorCode } from '../../protocol/errors.js';

/**
 * An `RSocketError` whose message is the catalog's JSON body. Throw or `onError` it from a
 * responder and the library sends the catalog's RSocket code (e.g. ROUTE_UNKNOWN -> 0x204
 * INVALID); a plain Error goes out as APPLICATION_ERROR (0x201).
 *
 * The prototype reset is load-bearing: rsocket-core 1.0.0-alpha.3 is compiled to ES5, where
 * `Error.call(this)` returns a fresh Error, so `new RSocketError(..)` is a plain Error with a
 * `code` field and the library's `error instanceof RSocketError` checks fail (the test pins it).
 */
export function rsocketError(code: ErrorCode, message: string): RSocketError {
  const error = new RSocketError(rsocketCodeOf(code), JSON.stringify(errorBody(code, message)));
  Object.setPrototypeOf(error, RSocketError.prototype);
  error.name = 'RSocketError';
  return error;
}

/** RSocket codes a peer may receive on stream 0 (setup and connection level, per the spec). */
const CONNECTION_LEVEL: ReadonlySet<number> = new Set([
  RSOCKET_ERROR.INVALID_SETUP,
  RSOCKET_ERROR.UNSUPPORTED_SETUP,
  RSOCKET_ERROR.REJECTED_SETUP,
  RSOCKET_ERROR.CONNECTION_ERROR,
  RSOCKET_ERROR.CONNECTION_CLOSE,
]);

/**
 * The stream-0 ERROR frame for a connection-level failure. Request-level catalog codes (INVALID,
 * REJECTED, APPLICATION_ERROR) are not legal on stream 0, so they go out as CONNECTION_ERROR;
 * the JSON body still names the catalog code.
 */
export function errorFrame(code: ErrorCode, message: string): ErrorFrame {
  const rsocketCode = rsocketCodeOf(code);
  return {
    type: FrameTypes.ERROR,
    streamId: 0,
    flags: 0,
    code: CONNECTION_LEVEL.has(rsocketCode) ? rsocketCode : ErrorCodes.CONNECTION_ERROR,
    message: JSON.stringify(errorBody(code, message)),
  };
}

