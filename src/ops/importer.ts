/**
 * `sluice import`: historical events from an NDJSON or CSV file (event-lines.ts), sent through
 * the server's own ingest (`ingest.batch`, acknowledged batches: the same validation and
 * enrichment as live traffic, and an event is durable in the log once acknowledged), then the
 * touched UTC days that are final reprocessed (`ops.reprocess` with skipNotFinal), because the
 * live aggregator counts historical events as late: they reach the rollups through the archive
 * and a reprocess (the late lane). Days not final yet are counted live, or by a later
 * reprocess once final; the summary lists them.
 *
 * Importing the same file twice counts once: every event has an id (the line's own, or one
 * derived from the line), its event time is the line's, so the archive (idempotent by site,
 * time and id) keeps one copy, and the recomputed days count it once.
 *
 * The file is read whole; lines are sent in batches of `batchSize` (≤ 500), one batch at a time,
 * retried with backoff while the server answers with a retryable error (OVERLOADED).
 */
import type { ReprocessMessage, ReprocessRequest } from '../../protocol/ops-schema.js';
import type { Event, IngestAck } from '../../protocol/schema.js';
import { parseEventLines, type LineFormat } from './event-lines.js';
import { DAY_MS } from './version-key.js';

type Done = Extract<ReprocessMessage, { type: 'done' }>;
type Progress = Extract<ReprocessMessage, { type: 'progress' }>;

export interface ImportTarget {
  sendBatch(events: readonly Event[]): Promise<IngestAck>;
  reprocess(request: ReprocessRequest, onProgress: (p: Progress) => void): Promise<Done>;
}

export interface ImportProgress {
  readonly phase: 'sending' | 'reprocessing';
  readonly linesRead: number;
  readonly accepted: number;
  readonly duplicates: number;
  readonly rejected: number;
  readonly reprocess?: Progress;
}

export interface ImportSummary {
  readonly lines: number;
  readonly accepted: number;
  readonly duplicates: number;
  /** Lines refused, by the file (unparseable, no timestamp) or by ingest (validation); the first 100. */
  readonly rejected: ReadonlyArray<{ line: number; code: string; message: string }>;
  readonly rejectedTotal: number;
  /** UTC days with accepted events, per site. */
  readonly days: Readonly<Record<string, string[]>>;
  readonly reprocessed: readonly Done[];
}

export interface ImportOptions {
  readonly format: LineFormat;
  /** Import every event into this site. */
  readonly site?: string;
  readonly batchSize?: number;
  /** Reprocess the touched final days at the end (default true). */
  readonly reprocess?: boolean;
  readonly onProgress?: (p: ImportProgress) => void;
  readonly maxRetries?: number;
}

const MAX_REJECTED_LISTED = 100;

export async function runImport(target: ImportTarget, text: string, options: ImportOptions): Promise<ImportSummary> {
  const batchSize = Math.min(500, Math.max(1, options.batchSize ?? 500));
  const rejected: Array<{ line: number; code: string; message: string }> = [];
  let rejectedTotal = 0;
  let lines = 0;
  let accepted = 0;
  let duplicates = 0;
  const days = new Map<string, Set<number>>();
  const reject = (line: number, code: string, message: string) => {
    rejectedTotal++;
    if (rejected.length < MAX_REJECTED_LISTED) rejected.push({ line, code, message });
  };
  const progress = (phase: ImportProgress['phase'], reprocess?: Progress) => options.onProgress?.({
    phase, linesRead: lines, accepted, duplicates, rejected: rejectedTotal, ...(reprocess ? { reprocess } : {}),
  });

  let batch: Array<{ line: number; event: Event }> = [];
  const send = async () => {
    if (batch.length === 0) return;
    const sending = batch;
    batch = [];
    const ack = await withRetries(() => target.sendBatch(sending.map((b) => b.event)), options.maxRetries ?? 8);
    const refused = new Set<number>();
    for (const r of ack.rejected) {
      refused.add(r.index);
      reject(sending[r.index]?.line ?? 0, r.code, r.message);
    }
    accepted += ack.accepted;
    duplicates += ack.duplicates;
    sending.forEach((b, i) => {
      if (refused.has(i)) return;
      const site = b.event.site;
      let set = days.get(site);
      if (!set) {
        set = new Set();
        days.set(site, set);
      }
      set.add(Math.floor(b.event.timestamp! / DAY_MS));
    });
    progress('sending');
  };
  for (const parsed of parseEventLines(text, options.format, options.site)) {
    lines++;
    if (parsed.error !== undefined || !parsed.event) {
      reject(parsed.line, 'LINE_INVALID', parsed.error ?? 'no event');
      continue;
    }
    batch.push({ line: parsed.line, event: parsed.event });
    if (batch.length >= batchSize) await send();
  }
  await send();

  const reprocessed: Done[] = [];
  if (options.reprocess !== false) {
    for (const [site, set] of days) {
      for (const [fromDay, toDay] of runsOf([...set].sort((a, b) => a - b))) {
        const done = await target.reprocess({ site, from: fromDay * DAY_MS, to: toDay * DAY_MS, skipNotFinal: true }, (p) => progress('reprocessing', p));
        reprocessed.push(done);
      }
    }
  }
  return {
    lines, accepted, duplicates, rejected, rejectedTotal,
    days: Object.fromEntries([...days].map(([site, set]) => [site, [...set].sort((a, b) => a - b).map((d) => new Date(d * DAY_MS).toISOString().slice(0, 10))])),
    reprocessed,
  };
}

/** Sorted days as [from, to) runs of consecutive days. */
function runsOf(days: readonly number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const d of days) {
    const last = out.at(-1);
    if (last && last[1] === d) last[1] = d + 1;
    else out.push([d, d + 1]);
  }
  return out;
}

async function withRetries<T>(call: () => Promise<T>, maxRetries: number): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (e) {
      if ((e as { retryable?: unknown }).retryable !== true || attempt >= maxRetries) throw e;
      await new Promise((r) => setTimeout(r, Math.min(5_000, 100 * 2 ** attempt)));
    }
  }
}
