/**
 * Conversions between the EventLog's records and kafkajs messages. Pure functions, no I/O.
 *
 * Offsets: Kafka offsets are signed 64-bit; kafkajs hands them over as decimal strings. The seam
 * uses JavaScript numbers, exact up to 2^53 - 1 (Number.MAX_SAFE_INTEGER). At a sustained
 * million records per second into ONE partition that bound is reached after about 285 years,
 * so it is a documented limit, not a practical one. An offset beyond it is refused loudly
 * (`parseOffset` throws) rather than rounded, since a rounded offset would commit the wrong
 * position.
 */
import type { IHeaders, KafkaMessage, Message } from 'kafkajs';
import type { ConsumedRecord, LogRecord } from '../../ingest/event-log.js';

/** A Kafka offset as a number; throws beyond 2^53 - 1 instead of losing precision. */
export function parseOffset(offset: string): number {
  const n = /^\d+$/.test(offset) ? Number(offset) : Number.NaN;
  if (!Number.isSafeInteger(n)) {
    throw new RangeError(`Kafka offset ${offset} is not a non-negative integer below 2^53; the EventLog seam cannot represent it`);
  }
  return n;
}

/** The kafkajs message for a record: key = record key (site), timestamp = event time, headers as UTF-8 strings. */
export function toMessage(record: LogRecord): Message {
  if (!Number.isFinite(record.timestampMs)) throw new RangeError(`record timestamp ${record.timestampMs} is not a number of ms`);
  const message: Message = {
    key: record.key,
    value: record.value,
    // CreateTime = event time, so the log can be searched and replayed by event time.
    timestamp: String(Math.trunc(record.timestampMs)),
  };
  // The record's own object, not a copy (this runs per record at the full ingest rate): kafkajs
  // only reads a message's headers, to encode them.
  if (record.headers) message.headers = record.headers as IHeaders;
  return message;
}

/**
 * Kafka allows a header key to repeat (kafkajs then gives an array); the seam has one string per
 * key, so the last value wins, as Java's `Headers.lastHeader`.
 */
export function fromHeaders(headers: IHeaders | undefined): Record<string, string> | undefined {
  if (!headers) return undefined;
  const out: Record<string, string> = {};
  let any = false;
  for (const [k, v] of Object.entries(headers)) {
    const last = Array.isArray(v) ? v[v.length - 1] : v;
    if (last === undefined) continue;
    out[k] = typeof last === 'string' ? last : last.toString('utf8');
    any = true;
  }
  return any ? out : undefined;
}

export function fromMessage(message: KafkaMessage, partition: number): ConsumedRecord {
  const headers = fromHeaders(message.headers);
  return {
    key: message.key ? message.key.toString('utf8') : '',
    value: message.value ?? Buffer.alloc(0),
    timestampMs: Number(message.timestamp),
    partition,
    offset: parseOffset(message.offset),
    ...(headers ? { headers } : {}),
  };
}
