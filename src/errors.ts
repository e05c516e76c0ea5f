/**
 * SluiceError: a failure with a stable code from the protocol's error catalog. Errors are data:
 * the gateway turns the code into the right RSocket error; `retryable` comes from the catalog.
 * Expected outcomes (an invalid event in a batch, a late event) are values, not SluiceErrors.
 */
import { ERROR_CATALOG, type ErrorCode } from '../protocol/errors.js';

export class SluiceError extends Error {
  override readonly name = 'SluiceError';
  readonly retryable: boolean;

  constructor(readonly code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.retryable = ERROR_CATALOG[code].retryable;
  }
}

export function isSluiceError(e: unknown): e is SluiceError {
  return e instanceof SluiceError;
}
