/**
 * The errors of the ops routes, by kind. protocol/ops.md documents the code of each kind
 * (OPS_*). A kind goes out with its OPS_* code once the catalog (protocol/errors.ts) has it;
 * until then with the closest existing code (OPS_FALLBACK_CODES), its OPS_* code leading the
 * message, so clients can already tell the kinds apart.
 */
import { isErrorCode, type ErrorCode } from '../../protocol/errors.js';
import { SluiceError } from '../errors.js';

export const OPS_FALLBACK_CODES = {
  /** OPS_INVALID: a malformed range, an unknown option combination. */
  invalid: 'ADMIN_INVALID',
  /** OPS_NOT_FINAL: the range reaches into days not final yet (retry later). */
  notFinal: 'ADMIN_INVALID',
  /** OPS_ARCHIVE_BEHIND: the archive tap has not archived the log up to now (retry later). */
  archiveBehind: 'OVERLOADED',
  /** OPS_ARCHIVE_INCOMPLETE: the raw archive no longer holds the range (retention, embedded cap). */
  archiveIncomplete: 'ADMIN_INVALID',
  /** OPS_BUSY: another run of the site holds its lease (retry later). */
  busy: 'OVERLOADED',
  /** OPS_NOT_FOUND: no such run. */
  notFound: 'ADMIN_NOT_FOUND',
  /** OPS_UNSUPPORTED: the operation needs the distributed event log (replay in embedded mode). */
  unsupported: 'ADMIN_INVALID',
  /** OPS_INTERRUPTED: the run was cancelled or lost its lease; the same command resumes it. */
  interrupted: 'INTERNAL',
} as const satisfies Record<string, ErrorCode>;

export type OpsErrorKind = keyof typeof OPS_FALLBACK_CODES;

/** The intended catalog code of each kind (protocol/ops.md), carried in the message meanwhile. */
export const OPS_INTENDED_CODES: Readonly<Record<OpsErrorKind, string>> = {
  invalid: 'OPS_INVALID',
  notFinal: 'OPS_NOT_FINAL',
  archiveBehind: 'OPS_ARCHIVE_BEHIND',
  archiveIncomplete: 'OPS_ARCHIVE_INCOMPLETE',
  busy: 'OPS_BUSY',
  notFound: 'OPS_NOT_FOUND',
  unsupported: 'OPS_UNSUPPORTED',
  interrupted: 'OPS_INTERRUPTED',
};

/** The code a kind goes out with now: its own when the catalog has it. */
export function opsCodeOf(kind: OpsErrorKind): ErrorCode {
  const own = OPS_INTENDED_CODES[kind];
  return isErrorCode(own) ? own : OPS_FALLBACK_CODES[kind];
}

export class OpsError extends SluiceError {
  constructor(readonly kind: OpsErrorKind, message: string, options?: { cause?: unknown }) {
    const code = opsCodeOf(kind);
    super(code, code === OPS_INTENDED_CODES[kind] ? message : `${OPS_INTENDED_CODES[kind]}: ${message}`, options);
  }
}

export function opsError(kind: OpsErrorKind, message: string): OpsError {
  return new OpsError(kind, message);
}

export function isOpsError(e: unknown, kind?: OpsErrorKind): e is OpsError {
  return e instanceof OpsError && (kind === undefined || e.kind === kind);
}
