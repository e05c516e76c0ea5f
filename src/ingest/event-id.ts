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
const HEX = '0123456789abcdef';
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
    for (let i = 0; i < 16; i++) {
      let b = random[next + i]!;
      if (i === 6) b = (b & 0x0f) | 0x40; // version 4
      else if (i === 8) b = (b & 0x3f) | 0x80; // variant 10
      const at = AT[i]!;
      text[at] = HEX.charCodeAt(b >> 4);
      text[at + 1] = HEX.charCodeAt(b & 0xf);
    }
    next += 16;
    return text.toString('latin1');
  };
}
