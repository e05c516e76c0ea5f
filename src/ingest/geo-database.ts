/**
 * The operator's offline GeoIP database: a MaxMind DB file (.mmdb: GeoIP2/GeoLite2 City or
 * Country, DB-IP's City or Country Lite, or any database of the same record shape) read with
 * the `maxmind` package. Nothing is ever downloaded: the operator provides and updates the file
 * (`ingest.geoDatabasePath`); it is read once, at start-up, and kept in memory.
 *
 * - Start-up fails (ConfigError, naming the setting) when the file is missing, unreadable,
 *   compressed, not a MaxMind DB, or a database of a kind that holds no location (ASN, ISP,
 *   anonymous IP…): a wrong path must not silently turn geography off.
 * - A lookup never throws: an address the database does not know, or a string that is not an
 *   address, is `null`. The address is used for the lookup only and kept nowhere (no cache here
 *   is keyed by it).
 * - Values follow geo-location.ts: country ISO 3166-1 alpha-2, region 'US-CA' from the first
 *   (largest) subdivision's code, or its English name when it has no code, city the English name.
 *
 * Cost: the reader walks the search tree (32 steps for IPv4, up to 128 for IPv6) and decodes a
 * record; decoded records are cached by their offset in the file (records are shared by every
 * network of one city), and the location made of each record is kept beside the record, so a
 * repeated city costs the tree walk only.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { Reader, type Response } from 'maxmind';
import { ConfigError } from '../config.js';
import type { GeoLocation } from './geo-location.js';
import { LruCache } from './lru-cache.js';

export interface GeoDatabase<T = GeoLocation> {
  /**
   * The location of `ip` (any IPv4 or IPv6 spelling; `wrap`ped when the database was opened
   * with one), or null when the database does not tell. Never throws.
   */
  lookup(ip: string): T | null;
  /** What the file is, for the start-up log: its type, build date and IP version. */
  readonly description: string;
}

export interface GeoDatabaseOptions<T> {
  /** Decoded records kept (by offset); 10,000 as the maxmind package's default. */
  readonly cacheSize?: number;
  /** What the caller keeps of each location (with an encoded form, say), made once per decoded record. */
  readonly wrap: (location: GeoLocation) => T;
}

/** The setting (and its environment variable) start-up errors name. */
const SETTING = 'ingest.geoDatabasePath (SLUICE_INGEST_GEO_DATABASE_PATH)';
const isGzip = (b: Buffer) => b.length >= 3 && b[0] === 0x1f && b[1] === 0x8b && b[2] === 0x08;
/**
 * Database types whose records hold no location (MaxMind's and DB-IP's names), unless the type
 * also says it does ('DBIP-Location-ISP' does).
 */
const NO_LOCATION = /ASN|ISP|Domain|Connection-Type|Anonymous|IP-Risk|User-Count|Static-IP/i;
const LOCATION = /City|Country|Location|Enterprise/i;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

function englishName(v: unknown): string | null {
  if (!isObject(v) || !isObject(v.names)) return null;
  const en = v.names.en;
  return typeof en === 'string' && en !== '' ? en : null;
}

/** The location of one decoded record (GeoIP2 City/Country shape); null when it holds none. */
export function locationOfRecord(record: unknown): GeoLocation | null {
  if (!isObject(record)) return null;
  let country: string | null = null;
  if (isObject(record.country) && typeof record.country.iso_code === 'string' && /^[A-Z]{2}$/.test(record.country.iso_code)) {
    country = record.country.iso_code;
  }
  let region: string | null = null;
  const subdivisions = record.subdivisions;
  const first: unknown = Array.isArray(subdivisions) ? subdivisions[0] : undefined;
  if (isObject(first)) {
    const code = first.iso_code;
    region = typeof code === 'string' && code !== '' && country !== null ? `${country}-${code.toUpperCase()}` : englishName(first);
  }
  const city = englishName(record.city);
  if (country === null && region === null && city === null) return null;
  return { country, region, city };
}

/** Opens `path` (synchronously: this runs once, at start-up, before anything is served). */
export function openGeoDatabase(path: string, options?: { readonly cacheSize?: number }): GeoDatabase;
export function openGeoDatabase<T>(path: string, options: GeoDatabaseOptions<T>): GeoDatabase<T>;
export function openGeoDatabase<T>(path: string, options: Partial<GeoDatabaseOptions<T>> = {}): GeoDatabase<T | GeoLocation> {
  const wrap = options.wrap ?? ((location: GeoLocation) => location);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new ConfigError(`${SETTING} = ${path}: cannot read the GeoIP database: ${reason}`);
  }
  const notMmdb = (why: string) => new ConfigError(isGzip(bytes)
    ? `${SETTING} = ${path}: the file is gzip-compressed; give the extracted .mmdb file`
    : `${SETTING} = ${path}: not a MaxMind DB (.mmdb) file: ${why}`);
  const decoded = new LruCache<number, unknown>(options.cacheSize ?? 10_000);
  let reader: Reader<Response>;
  try {
    reader = new Reader<Response>(bytes, {
      // mmdb-lib's cache interface: keys are offsets in the file.
      cache: { get: (k) => decoded.get(k as number), set: (k, v) => decoded.set(k as number, v) },
    });
  } catch (err) {
    throw notMmdb((err as Error).message);
  }
  const meta = reader.metadata;
  if (typeof meta.databaseType !== 'string' || typeof meta.nodeCount !== 'number') throw notMmdb('no metadata');
  if (meta.binaryFormatMajorVersion !== 2 || (meta.ipVersion !== 4 && meta.ipVersion !== 6)) {
    throw new ConfigError(`${SETTING} = ${path}: unsupported MaxMind DB (format ${meta.binaryFormatMajorVersion}, IP version ${meta.ipVersion})`);
  }
  if (NO_LOCATION.test(meta.databaseType) && !LOCATION.test(meta.databaseType)) {
    throw new ConfigError(`${SETTING} = ${path}: a ${meta.databaseType} database holds no locations; give a City or Country database`);
  }
  const ipv6 = meta.ipVersion === 6;
  /** Each decoded record's location, kept as long as the record stays in the reader's cache. */
  const locations = new WeakMap<object, T | GeoLocation | null>();

  return {
    description: `${meta.databaseType}, built ${Number.isNaN(meta.buildEpoch.getTime()) ? 'at an unknown date' : meta.buildEpoch.toISOString().slice(0, 10)}, IPv${meta.ipVersion}`,
    lookup(ip) {
      const family = isIP(ip);
      if (family === 0 || (family === 6 && !ipv6)) return null;
      let record: unknown;
      try {
        record = reader.get(ip);
      } catch {
        return null; // a damaged region of the file: no location rather than a failed event
      }
      if (!isObject(record)) return null;
      let location = locations.get(record);
      if (location === undefined) {
        const found = locationOfRecord(record);
        location = found === null ? null : wrap(found);
        locations.set(record, location);
      }
      return location;
    },
  };
}
