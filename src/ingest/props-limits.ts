/**
 * The per-event limits on custom properties (schema.ts `Event.props`, LIMITS), said in words.
 *
 * The wire schema enforces them; this only words the rejection, because the schema validator's
 * own messages for them do not name the limit ('Expected union value' for a long value,
 * 'Unexpected property' for a bad key). It runs only for an event already rejected at `/props`,
 * never on the accepted path. The code stays PAYLOAD_SCHEMA: the limits are part of the schema.
 */
import { LIMITS } from '../../protocol/schema.js';

const CONTROL = /[\u0000-\u001f\u007f]/;

const clip = (s: string) => JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);

/** Which props limit `props` breaks, as a rejection message naming its path; undefined when none of these. */
export function propsLimitMessage(props: unknown): string | undefined {
  if (typeof props !== 'object' || props === null || Array.isArray(props)) return undefined;
  const keys = Object.keys(props);
  if (keys.length > LIMITS.maxProps) {
    return `/props: ${keys.length} properties, at most ${LIMITS.maxProps} per event`;
  }
  for (const key of keys) {
    if (key.length === 0 || key.length > LIMITS.maxPropKeyLength || CONTROL.test(key)) {
      return `/props: property name ${clip(key)} must be 1 to ${LIMITS.maxPropKeyLength} characters without control characters`;
    }
    const value = (props as Record<string, unknown>)[key];
    if (typeof value === 'string') {
      if (value.length > LIMITS.maxPropValueLength) {
        return `/props/${key}: a string value is at most ${LIMITS.maxPropValueLength} characters (this one has ${value.length})`;
      }
      if (value.includes('\u0000')) return `/props/${key}: a string value must not contain NUL characters`;
    } else if (typeof value !== 'boolean' && (typeof value !== 'number' || !Number.isFinite(value))) {
      return `/props/${key}: a value is a string, a finite number or a boolean`;
    }
  }
  return undefined;
}
