/**
 * The one error the Kafka adapter throws for a failed operation (append, connect, commit, topic
 * creation). Errors are data: `retryable` says whether trying the same call again later can
 * succeed (broker unreachable, leader moving, request timed out, ISR too small) or cannot
 * (record too large, not authorised, a topic with the wrong partition count). The original
 * kafkajs error is the `cause`. The ingest stage turns any rejected append into OVERLOADED for
 * the client; the flag is for logs, metrics and callers that can tell the two apart.
 */
export class KafkaEventLogError extends Error {
  override readonly name = 'KafkaEventLogError';

  constructor(message: string, readonly retryable: boolean, options?: { cause?: unknown }) {
    super(message, options);
  }
}

interface KafkaJsErrorLike {
  readonly name?: unknown;
  readonly message?: unknown;
  readonly retriable?: unknown;
  readonly type?: unknown;
  readonly cause?: unknown;
}

function asErrorLike(e: unknown): KafkaJsErrorLike | null {
  return typeof e === 'object' && e !== null ? (e as KafkaJsErrorLike) : null;
}

/** The innermost cause: kafkajs wraps the last attempt's error in KafkaJSNumberOfRetriesExceeded. */
function rootCause(e: unknown): unknown {
  let current = e;
  for (let depth = 0; depth < 10; depth++) {
    const next = asErrorLike(current)?.cause;
    if (next === undefined || next === null) break;
    current = next;
  }
  return current;
}

/**
 * Whether a kafkajs failure may succeed when tried again later. kafkajs marks every error with
 * `retriable`, but after its own retries are exhausted it wraps the last error in a
 * non-retriable KafkaJSNumberOfRetriesExceeded: what counts for a later attempt is the cause.
 */
export function isRetryableKafkaError(e: unknown): boolean {
  const root = asErrorLike(rootCause(e));
  if (!root) return true;
  if (root.name === 'KafkaJSNumberOfRetriesExceeded') return true;
  if (root.retriable === false) return false;
  return true;
}

function describe(e: unknown): string {
  const root = rootCause(e);
  const outer = asErrorLike(e);
  const inner = asErrorLike(root);
  const parts = [outer?.message, inner !== outer ? inner?.message : undefined]
    .filter((m): m is string => typeof m === 'string' && m.length > 0);
  const type = typeof inner?.type === 'string' ? ` [${inner.type}]` : '';
  return `${[...new Set(parts)].join(': ') || String(e)}${type}`;
}

/** Wrap a kafkajs failure: `what` says what failed, and the brokers are named so the log line is actionable. */
export function toKafkaEventLogError(e: unknown, what: string, brokers: readonly string[]): KafkaEventLogError {
  if (e instanceof KafkaEventLogError) return new KafkaEventLogError(`${what} failed: ${e.message}`, e.retryable, { cause: e });
  const retryable = isRetryableKafkaError(e);
  return new KafkaEventLogError(
    `${what} failed (Kafka at ${brokers.join(', ')}; ${retryable ? 'retryable' : 'not retryable'}): ${describe(e)}`,
    retryable,
    { cause: e },
  );
}
