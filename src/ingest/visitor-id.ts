/**
 * Visitor ids without storing who the visitor is.
 *
 *   salt(day)  = HMAC-SHA256(secret, 'YYYY-MM-DD' of the UTC day)
 *   visitorId  = HMAC-SHA256(salt(day), site \0 (hint | ip \0 userAgent)), hex, first 32 chars
 *
 * where userAgent is its first MAX_USER_AGENT_LENGTH (1024) characters.
 *
 * - No raw IP is ever stored: the IP only enters the hash, and the salt is never persisted or
 *   logged, so an id cannot be reversed by enumerating the IPv4 space.
 * - A client-supplied visitor hint (an SDK's stable id) is hashed the same way: it is never
 *   stored raw either, and it stops being linkable across days like everything else.
 * - Ids rotate at UTC midnight (of the received time, not the event time: a client must not
 *   be able to pick the salt): the same visitor has unrelated ids on different days and on
 *   different sites. Unique counts are therefore per day at most, which is what rollups need.
 * - With no secret configured, a random one per process is used: ids then also change on
 *   restart, which overcounts uniques for that day; production configures `visitorSecret`.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { PairLruCache } from './lru-cache.js';
import { MAX_USER_AGENT_LENGTH } from './user-agent.js';

export type VisitorIdHasher<T = string> = (site: string, hint: string | undefined, ip: string, userAgent: string, receivedAtMs: number) => T;

const DAY_MS = 86_400_000;
const ID_HEX_CHARS = 32;

/** 'YYYY-MM-DD' of the UTC day containing `ms`. */
export function utcDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/**
 * `cacheSize`: ids kept per day, for each kind of input (hint; IP and user agent). A visitor
 * sends many events a day and the HMAC is the costliest step of ingest, so ids are memoised. The cache lives only in this process's memory
 * (never stored) and is emptied when the salt rotates, so it cannot link two days either.
 *
 * The strings passed in are kept as cache keys: pass ones that own their memory, not a short
 * cut (`slice`) of a long string, which V8 keeps whole (ingest-service.ts's ingestUserAgent).
 * A user agent over MAX_USER_AGENT_LENGTH is cut and copied here.
 */
export function createVisitorIdHasher(secret: string, cacheSize?: number): VisitorIdHasher;
/** Memoises `wrap(id)` instead of the id: for a caller that keeps more per visitor id (an encoded form). */
export function createVisitorIdHasher<T>(secret: string, cacheSize: number, wrap: (id: string) => T): VisitorIdHasher<T>;
export function createVisitorIdHasher<T>(secret: string, cacheSize = 50_000, wrap?: (id: string) => T): VisitorIdHasher<T | string> {
  // Memo keys are pairs (lru-cache.ts): (site, hint) and (user agent, site \0 ip), each
  // determining the hash input. Separate caches, so the two kinds of key cannot meet.
  const hinted = new PairLruCache<T | string>(cacheSize);
  const anonymous = new PairLruCache<T | string>(cacheSize);
  const key: string | Buffer = secret === '' ? randomBytes(32) : secret;
  // One salt per UTC day, computed on first use: events arrive in received-time order, so a
  // single slot is enough; a stray event from the previous day only costs one recomputation.
  let saltDay = Number.NaN;
  let salt = Buffer.alloc(0);
  // One update of a joined string: each update() is a native call that costs more than the join.
  const hmac = (input: string): T | string => {
    // Hex of the first bytes rather than a slice of the whole hex: the cached id owns its memory.
    const id = createHmac('sha256', salt).update(input).digest().toString('hex', 0, ID_HEX_CHARS / 2);
    return wrap ? wrap(id) : id;
  };

  return (site, hint, ip, fullUserAgent, receivedAtMs) => {
    // Only the first MAX_USER_AGENT_LENGTH characters identify a visitor (as they are all the
    // wire schema lets an event carry): a 16 KiB header costs no more to hash or to keep. The
    // cut is copied (ownedCopy) since the cache keeps it.
    const userAgent = fullUserAgent.length > MAX_USER_AGENT_LENGTH ? ownedCopy(fullUserAgent.slice(0, MAX_USER_AGENT_LENGTH)) : fullUserAgent;
    const day = Math.floor(receivedAtMs / DAY_MS);
    if (day !== saltDay) {
      salt = createHmac('sha256', key).update(utcDate(receivedAtMs)).digest();
      saltDay = day;
      hinted.clear();
      anonymous.clear();
    }
    if (hint !== undefined) {
      let id = hinted.get(site, hint);
      if (id === undefined) {
        id = hmac(`${site}\0${hint}`);
        hinted.set(site, hint, id);
      }
      return id;
    }
    const siteIp = `${site}\0${ip}`;
    let id = anonymous.get(userAgent, siteIp);
    if (id === undefined) {
      id = hmac(`${siteIp}\0${userAgent}`);
      anonymous.set(userAgent, siteIp, id);
    }
    return id;
  };
}

/**
 * A copy of `text` sharing no memory with the string it was cut from: V8 makes a cut of 13
 * characters or more a view that keeps its whole parent alive, so a key cut from a 16 KiB
 * header would pin the 16 KiB for as long as the cache keeps it.
 */
function ownedCopy(text: string): string {
  return Buffer.from(text, 'utf16le').toString('utf16le');
}
