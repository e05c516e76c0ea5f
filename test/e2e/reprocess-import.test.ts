/**
 * Import and export end to end, embedded and on the real engines: a site's two past days are
 * reprocessed (so its rollups are the exact reference), exported raw as NDJSON and as CSV with
 * `sluice export`, and imported into other sites with `sluice import` — through ingest, the
 * archive and the reprocess of the touched final days. The imported sites' rollups equal the
 * source's, and importing the same file a second time changes nothing. A rollup export carries
 * the same numbers as the rows.
 */
import { expect } from 'chai';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ImportSummary } from '../../src/ops/importer.js';
import { FIXED_LOGIC } from '../../src/ops/ops-test-kit.js';
import {
  DAY_MS, HOUR_MS, MINUTE_MS, Pipeline, daysAgo, referenceMinutes, send, storedMinutes, sumTotals, wireTraffic, type Mode,
} from './reprocess-pipeline.js';
import { withinOneUtcDay } from '../support/utc-day.js';

for (const mode of ['embedded', 'distributed'] as Mode[]) {
  describe(`import and export (${mode})`, function () {
    this.timeout(mode === 'distributed' ? 300_000 : 120_000);
    let p: Pipeline;
    let dir: string;
    const dayA = daysAgo(4);
    const end = dayA + 2 * DAY_MS;
    after(async () => {
      await p?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('imports an export into another site with equal rollups, and a second import of the same file counts once', async function () {
      await withinOneUtcDay(this, { aheadMs: 10 * MINUTE_MS });
      dir = await mkdtemp(join(tmpdir(), 'sluice-import-'));
      p = await Pipeline.start({ mode, liveLogic: FIXED_LOGIC, opsLogic: FIXED_LOGIC });
      const sent = wireTraffic({ site: p.site, seed: 21, fromMs: dayA + 10 * HOUR_MS, toMs: dayA + 40 * HOUR_MS, count: 1_500, late: 15, idPrefix: `i${p.run}` });
      await send(await p.client(), sent);
      await p.awaitFinal(end, mode === 'distributed' ? 120_000 : 60_000);
      const first = await p.cli('reprocess', '--site', p.site, '--from', iso(dayA), '--to', iso(end));
      expect(first.status, first.err).to.equal(0);
      const reference = referenceMinutes(sent, p.site, dayA, end);
      expect(await storedMinutes(p.ops.readStore, p.site, dayA, end)).to.deep.equal(reference);

      const ndjson = join(dir, 'raw.ndjson');
      const csv = join(dir, 'raw.csv');
      for (const [file, format] of [[ndjson, 'ndjson'], [csv, 'csv']] as const) {
        const out = await p.cli('export', '--site', p.site, '--from', iso(dayA), '--to', iso(end), '--what', 'raw', '--format', format, '--out', file);
        expect(out.status, out.err).to.equal(0);
        expect(out.err).to.match(/export: done, \d+ lines, \d+ bot events left out/);
      }
      const lines = (await readFile(ndjson, 'utf8')).trim().split('\n');
      const distinctHumans = new Set(sent.filter((s) => !s.bot).map((s) => s.event.id)).size;
      expect(lines).to.have.length(distinctHumans);
      expect((await readFile(csv, 'utf8')).trim().split('\n')).to.have.length(distinctHumans + 1);

      for (const [file, target] of [[ndjson, `n-${p.site}`], [csv, `c-${p.site}`]] as const) {
        const once = await p.cli('import', '--site', target, file);
        expect(once.status, once.err).to.equal(0);
        const summary = JSON.parse(once.out) as ImportSummary;
        expect(summary.accepted).to.equal(distinctHumans);
        expect(summary.rejectedTotal).to.equal(0);
        expect(summary.reprocessed.flatMap((r) => r.days.map((d) => d.state))).to.deep.equal(['switched', 'switched']);
        expect(once.err).to.contain('import: ');
        // The same events as the source, counted once: every minute equal.
        expect(await storedMinutes(p.ops.readStore, target, dayA, end), `${target} after one import`).to.deep.equal(reference);

        const twice = await p.cli('import', '--site', target, file);
        expect(twice.status, twice.err).to.equal(0);
        expect(await storedMinutes(p.ops.readStore, target, dayA, end), `${target} after two imports`).to.deep.equal(reference);
      }

      // A file without ids: ids derived from each line, so a second import dedupes too.
      const bare = join(dir, 'bare.ndjson');
      await writeFile(bare, lines.map((l) => { const { id: _id, ...rest } = JSON.parse(l) as Record<string, unknown>; return JSON.stringify(rest); }).join('\n'));
      const target = `b-${p.site}`;
      for (let i = 0; i < 2; i++) {
        const r = await p.cli('import', '--site', target, bare);
        expect(r.status, r.err).to.equal(0);
        expect(sumTotals(await storedMinutes(p.ops.readStore, target, dayA, end))).to.deep.equal(sumTotals(reference));
      }

      // Rollups out: the hour rows' numbers, one line each.
      const rollups = join(dir, 'rollups.ndjson');
      const r = await p.cli('export', '--site', p.site, '--from', iso(dayA), '--to', iso(end), '--what', 'rollups', '--format', 'ndjson', '--tier', 'hour', '--out', rollups);
      expect(r.status, r.err).to.equal(0);
      const rows = (await readFile(rollups, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { pageviews: number; visits: number; bucket: number });
      const hours = await p.ops.readStore.read(p.site, 'hour', dayA, end);
      expect(rows.map((x) => x.bucket)).to.deep.equal(hours.map((h) => h.bucketMs));
      expect(rows.reduce((n, x) => n + x.pageviews, 0)).to.equal(sumTotals(reference).pageviews);
    });
  });
}

function iso(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}
