/**
 * `ops.export`: a site's raw events or rollup rows of [from, to) as NDJSON or CSV lines, sent
 * in chunks over a request-stream at the reader's pace (StreamOutbox: the archive or the store
 * is read only as fast as the client takes the lines), with progress messages.
 *
 * - raw: the archived events as wire events (event-lines.ts: what `sluice import` reads back),
 *   in the archive's (ts, id) order; bots left out and counted.
 * - rollups: the rows of one tier, from the active version of each day (the versioned read
 *   side), read a day at a time. Unique visitors are the sketches' estimates (a sketch is not a
 *   number a file can carry usefully); every other number is exact.
 */
import type { ExportRequest } from '../../protocol/ops-schema.js';
import { HyperLogLog, PRECISION } from '../aggregate/hyperloglog.js';
import type { RawArchive } from '../aggregate/raw-archive.js';
import { DIMENSION_SKETCH_PRECISION, OTHER_KEY, type Rollup, type Tier } from '../aggregate/rollup.js';
import type { RollupStore } from '../aggregate/rollup-store.js';
import { CSV_COLUMNS, csvCell, csvRowOf, wireEventOf } from './event-lines.js';
import type { StreamOutbox } from './stream-outbox.js';
import { DAY_MS } from './version-key.js';

export interface ExportDeps {
  readonly archive: RawArchive;
  /** The versioned read side: rows as queries see them. */
  readonly store: RollupStore;
}

const ROLLUP_CSV_COLUMNS = ['site', 'tier', 'bucket', 'time', 'pageviews', 'events', 'visits', 'bounces', 'duration_ms', 'visitors', 'bots'] as const;

export async function runExport(deps: ExportDeps, req: ExportRequest, out: StreamOutbox): Promise<void> {
  const chunk = req.chunkLines ?? 500;
  let lines: string[] = [];
  let sent = 0;
  let skippedBots = 0;
  const span = Math.max(1, req.to - req.from);
  const flush = async (atMs: number) => {
    if (lines.length === 0) return;
    const batch = lines;
    lines = [];
    sent += batch.length;
    await out.send({ type: 'lines', lines: batch });
    out.progress({ type: 'progress', lines: sent, at: atMs, fraction: Math.min(1, Math.max(0, (atMs - req.from) / span)) });
  };
  if (req.what === 'raw') {
    if (req.format === 'csv') lines.push(CSV_COLUMNS.join(','));
    for await (const e of deps.archive.read(req.site, req.from, req.to)) {
      if (out.signal.aborted) return;
      const wire = wireEventOf(e);
      if (wire === null) {
        skippedBots++;
        continue;
      }
      lines.push(req.format === 'csv' ? csvRowOf(wire) : JSON.stringify(wire));
      if (lines.length >= chunk) await flush(e.ts);
    }
  } else {
    const tier: Tier = req.tier ?? 'hour';
    if (req.format === 'csv') lines.push(ROLLUP_CSV_COLUMNS.join(','));
    for (let from = req.from; from < req.to; from = Math.min(req.to, Math.floor(from / DAY_MS) * DAY_MS + DAY_MS)) {
      const to = Math.min(req.to, Math.floor(from / DAY_MS) * DAY_MS + DAY_MS);
      for (const row of await deps.store.read(req.site, tier, from, to)) {
        if (out.signal.aborted) return;
        lines.push(req.format === 'csv' ? rollupCsv(row) : JSON.stringify(rollupJson(row)));
        if (lines.length >= chunk) await flush(row.bucketMs);
      }
    }
  }
  await flush(req.to);
  out.finish({ type: 'done', lines: sent, skippedBots });
}

function visitorsOf(sketch: Uint8Array | undefined, precision: number): number | null {
  if (!sketch || sketch.length === 0) return null;
  return Math.round(HyperLogLog.countOf(sketch, precision));
}

/** A row as JSON: counts exact, unique visitors as estimates, dimension cells likewise. */
export function rollupJson(r: Rollup): Record<string, unknown> {
  const dims: Record<string, Record<string, unknown>> = {};
  for (const [name, cells] of Object.entries(r.dims)) {
    if (!cells) continue;
    dims[name] = Object.fromEntries(Object.entries(cells).map(([value, c]) => {
      const visitors = value === OTHER_KEY ? null : visitorsOf(c.visitors, DIMENSION_SKETCH_PRECISION);
      return [value, { pageviews: c.pageviews, events: c.events, visits: c.visits, bounces: c.bounces, durationMs: c.durationMs, ...(visitors === null ? {} : { visitors }) }];
    }));
  }
  return {
    site: r.site, tier: r.tier, bucket: r.bucketMs, time: new Date(r.bucketMs).toISOString(),
    ...r.totals, visitors: visitorsOf(r.visitors, PRECISION) ?? 0, bots: r.bots, revenue: r.revenue, dims,
  };
}

function rollupCsv(r: Rollup): string {
  const t = r.totals;
  return [r.site, r.tier, r.bucketMs, new Date(r.bucketMs).toISOString(), t.pageviews, t.events, t.visits, t.bounces, t.durationMs,
    visitorsOf(r.visitors, PRECISION) ?? 0, r.bots].map(csvCell).join(',');
}
