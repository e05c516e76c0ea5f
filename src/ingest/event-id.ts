/**
 * Server-assigned event ids: random (version 4) UUIDs, as `crypto.randomUUID` makes them, from
 * the same kind of buffered CSPRNG bytes.
 *
 * Why not `randomUUID` itself: Node builds each id from 20 concatenated pieces, about 600 bytes
 * of short-lived strings per id, and ingest assigns one per event. Here an id is formatted into
 * reusable bytes and read out as one string.
 */
import { randomFillSync } from 'node:crypto';

const IDS_PER_FILL = 256;
/** The two ASCII hex digits of each byte value. */
const HEX_PAIRS = new Uint8Array(512).map((_, i) => '0123456789abcdef'.charCodeAt(i % 2 === 0 ? (i >> 1) >> 4 : (i >> 1) & 0xf));
/** Where each of the 16 bytes goes in `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`. */
const AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34] as const;

export type EventIdGenerator = () => string;

export function createEventIdGenerator(): EventIdGenerator {
  const random = Buffer.allocUnsafeSlow(16 * IDS_PER_FILL);
  let next = random.length;
  const text = Buffer.alloc(36, 0x2d); // the dashes stay; the hex digits are written over the rest
  return () => {
    if (next === random.length) {
      randomFillSync(random);
      next = 0;
    }
    random[next + 6] = (random[next + 6]! & 0x0f) | 0x40; // version 4
    random[next + 8] = (random[next + 8]! & 0x3f) | 0x80; // variant 10
    for (let i = 0; i < 16; i++) {
      const b = random[next + i]!;
      const at = AT[i]!;
      text[at] = HEX_PAIRS[2 * b]!;
      text[at + 1] = HEX_PAIRS[2 * b + 1]!;
    }
    next += 16;
    return text.toString('latin1', 0, 36);
  };
}
