/**
 * Events as lines of a file, both ways: export writes the site's archived events as the events
 * a source would send (the wire `Event` of protocol/schema.ts), and import reads such lines back
 * and sends them through ingest, the same validation and enrichment as live traffic. So an
 * export imports again as the same events (same ids and times, so re-importing dedupes).
 *
 * What does not survive the trip: the user agent is not archived (only what ingest derived
 * from it), so browser, OS and device come back as unknown; and bot events are left out of an
 * export, because the wire event has no bot flag and they would come back counted as people.
 * The archived visitor id goes out as the `visitor` hint, which ingest hashes again: the same
 * visitors stay the same visitors. An anonymous event (no visitor id) goes out with `dnt: true`.
 *
 * Formats: NDJSON (one JSON event per line) and CSV (RFC 4180: a header row naming the columns
 * below, in any order; quoted fields may hold commas, quotes and newlines; `props` is a JSON
 * object in its cell).
 *
 * Import ids: a line without an `id` gets one derived from the site and the line's content,
 * so importing the same file twice sends the same ids (and the archive, the ingest dedup and
 * the aggregator keep one copy). Lines must carry a `timestamp`: without one an event would take
 * its received time, a new one at each import, and could not dedupe.
 */
import { createHash } from 'node:crypto';
import type { Event } from '../../protocol/schema.js';
import type { EnrichedEvent } from '../ingest/enriched-event.js';

export type LineFormat = 'ndjson' | 'csv';

export const CSV_COLUMNS = [
  'id', 'type', 'name', 'site', 'timestamp', 'url', 'referrer', 'title',
  'utm_source', 'utm_medium', 'utm_campaign', 'utm_term', 'utm_content',
  'screen_width', 'screen_height', 'language', 'visitor', 'dnt', 'country', 'region', 'city',
  'revenue_amount', 'revenue_currency', 'props',
] as const;

type Column = typeof CSV_COLUMNS[number];

/** The event a source would have sent for an archived one; null for a bot event (see above). */
export function wireEventOf(e: EnrichedEvent): Event | null {
  if (e.bot) return null;
  const out: Record<string, unknown> = {
    id: e.id, type: e.type, site: e.site, timestamp: e.ts, url: `https://${e.host}${e.path}`,
  };
  if (e.type === 'event') out.name = e.name;
  if (e.referrerHost !== '') out.referrer = `https://${e.referrerHost}/`;
  if (e.title !== null) out.title = e.title;
  for (const k of ['source', 'medium', 'campaign', 'term', 'content'] as const) if (e.utm[k] !== null) out[`utm_${k}`] = e.utm[k];
  if (e.screen) out.screen = { width: e.screen.width, height: e.screen.height };
  if (e.language !== null) out.language = e.language;
  if (Object.keys(e.props).length > 0) out.props = { ...e.props };
  if (e.revenue) out.revenue = { amount: e.revenue.amount, currency: e.revenue.currency };
  if (e.visitorId === '') out.dnt = true;
  else out.visitor = e.visitorId;
  const geo: Record<string, string> = {};
  if (e.country !== null) geo.country = e.country;
  if (e.region !== null) geo.region = e.region;
  if (e.city !== null) geo.city = e.city;
  if (Object.keys(geo).length > 0) out.geo = geo;
  return out as Event;
}

/** One event as a CSV row of CSV_COLUMNS. */
export function csvRowOf(event: Event): string {
  const e = event as Event & { geo?: { country?: string; region?: string; city?: string } };
  const cells: Record<Column, unknown> = {
    id: e.id, type: e.type, name: e.name, site: e.site, timestamp: e.timestamp, url: e.url, referrer: e.referrer, title: e.title,
    utm_source: e.utm_source, utm_medium: e.utm_medium, utm_campaign: e.utm_campaign, utm_term: e.utm_term, utm_content: e.utm_content,
    screen_width: e.screen?.width, screen_height: e.screen?.height, language: e.language, visitor: e.visitor, dnt: e.dnt,
    country: e.geo?.country, region: e.geo?.region, city: e.geo?.city,
    revenue_amount: e.revenue?.amount, revenue_currency: e.revenue?.currency,
    props: e.props && Object.keys(e.props).length > 0 ? JSON.stringify(e.props) : undefined,
  };
  return CSV_COLUMNS.map((c) => csvCell(cells[c])).join(',');
}

export function csvCell(v: unknown): string {
  if (v === undefined || v === null) return '';
  const s = String(v);
  return /[",\r\n]/.test(s) || s !== s.trim() ? `"${s.replaceAll('"', '""')}"` : s;
}

export interface ParsedLine {
  /** 1-based line number of the record's first line in the file. */
  readonly line: number;
  readonly event?: Event;
  readonly error?: string;
}

/**
 * The events of a file's text, line by line. `site`, when given, is the site every event is
 * imported into (a line's own `site` is replaced). Validation of each event is ingest's.
 */
export function* parseEventLines(text: string, format: LineFormat, site?: string): Generator<ParsedLine> {
  if (format === 'ndjson') {
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const raw = lines[i]!.replace(/\r$/, '');
      if (raw.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(raw);
      } catch {
        yield { line: i + 1, error: 'not valid JSON' };
        continue;
      }
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        yield { line: i + 1, error: 'not a JSON object' };
        continue;
      }
      yield finish(i + 1, { ...(value as Record<string, unknown>) }, raw, site);
    }
    return;
  }
  let header: string[] | null = null;
  for (const { line, cells, raw } of csvRecords(text)) {
    if (header === null) {
      header = cells.map((c) => c.trim());
      const unknown = header.filter((h) => !(CSV_COLUMNS as readonly string[]).includes(h));
      if (unknown.length > 0) {
        yield { line, error: `unknown column(s) ${unknown.join(', ')}; known: ${CSV_COLUMNS.join(', ')}` };
        return;
      }
      continue;
    }
    if (cells.length === 1 && cells[0] === '') continue;
    const row: Partial<Record<Column, string>> = {};
    header.forEach((h, i) => {
      const v = cells[i];
      if (v !== undefined && v !== '') row[h as Column] = v;
    });
    const parsed = eventOfRow(row);
    if (typeof parsed === 'string') yield { line, error: parsed };
    else yield finish(line, parsed, raw, site);
  }
}

function finish(line: number, e: Record<string, unknown>, raw: string, site: string | undefined): ParsedLine {
  if (site !== undefined) e.site = site;
  if (e.timestamp === undefined) return { line, error: 'no timestamp: imported events need their event time (ms since epoch)' };
  if (e.id === undefined) e.id = importId(String(e.site), raw);
  return { line, event: e as Event };
}

/** The id of an imported line without one: the same site and line content give the same id. */
export function importId(site: string, line: string): string {
  return `imp-${createHash('sha256').update(`${site}\n${line}`).digest('base64url').slice(0, 40)}`;
}

function eventOfRow(row: Partial<Record<Column, string>>): Record<string, unknown> | string {
  const e: Record<string, unknown> = {};
  const num = (c: Column): number | undefined | string => {
    const v = row[c];
    if (v === undefined) return undefined;
    const n = Number(v);
    return Number.isFinite(n) ? n : `column ${c}: not a number: ${JSON.stringify(v)}`;
  };
  for (const c of ['id', 'type', 'name', 'site', 'url', 'referrer', 'title', 'utm_source', 'utm_medium', 'utm_campaign', 'utm_term', 'utm_content', 'language', 'visitor'] as const) {
    if (row[c] !== undefined) e[c] = row[c];
  }
  const ts = num('timestamp');
  if (typeof ts === 'string') return ts;
  if (ts !== undefined) e.timestamp = ts;
  const w = num('screen_width');
  const h = num('screen_height');
  if (typeof w === 'string') return w;
  if (typeof h === 'string') return h;
  if (w !== undefined || h !== undefined) e.screen = { width: w ?? 0, height: h ?? 0 };
  if (row.dnt !== undefined) e.dnt = row.dnt === 'true' || row.dnt === '1';
  const geo: Record<string, string> = {};
  if (row.country !== undefined) geo.country = row.country;
  if (row.region !== undefined) geo.region = row.region;
  if (row.city !== undefined) geo.city = row.city;
  if (Object.keys(geo).length > 0) e.geo = geo;
  const amount = num('revenue_amount');
  if (typeof amount === 'string') return amount;
  if (amount !== undefined || row.revenue_currency !== undefined) e.revenue = { amount, currency: row.revenue_currency };
  if (row.props !== undefined) {
    try {
      e.props = JSON.parse(row.props) as unknown;
    } catch {
      return 'column props: not a JSON object';
    }
  }
  return e;
}

/** RFC 4180 records: fields split on commas, quoted fields may span lines. */
function* csvRecords(text: string): Generator<{ line: number; cells: string[]; raw: string }> {
  let i = 0;
  let line = 1;
  while (i < text.length) {
    const startLine = line;
    const start = i;
    const cells: string[] = [];
    let cell = '';
    let quoted = false;
    for (;;) {
      if (i >= text.length) {
        cells.push(cell);
        break;
      }
      const ch = text[i]!;
      if (quoted) {
        if (ch === '"') {
          if (text[i + 1] === '"') {
            cell += '"';
            i += 2;
          } else {
            quoted = false;
            i++;
          }
        } else {
          if (ch === '\n') line++;
          cell += ch;
          i++;
        }
        continue;
      }
      if (ch === '"' && cell === '') {
        quoted = true;
        i++;
      } else if (ch === ',') {
        cells.push(cell);
        cell = '';
        i++;
      } else if (ch === '\n' || ch === '\r') {
        cells.push(cell);
        if (ch === '\r' && text[i + 1] === '\n') i++;
        i++;
        line++;
        break;
      } else {
        cell += ch;
        i++;
      }
    }
    yield { line: startLine, cells, raw: text.slice(start, i).replace(/\r?\n$/, '') };
  }
}
