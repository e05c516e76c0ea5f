/**
 * `sluice reprocess | rollback | runs | versions | replay | import | export`: the operations
 * command line. Like the admin CLI it is a client of a running gateway (RSocket, an admin key),
 * so it works the same against the embedded default and a cluster, and the server decides who
 * may do what. Results are JSON on stdout (export: the lines, to stdout or --out); progress goes
 * to stderr, one line per update, with an ETA; errors to stderr with the catalog code and a
 * non-zero status.
 */
import { readFile } from 'node:fs/promises';
import { createWriteStream, type WriteStream } from 'node:fs';
import { parseArgs } from 'node:util';
import type { ExportMessage, ReplayResponse, ReprocessMessage, ReprocessRequest, RunsResponse, VersionsResponse } from '../../protocol/ops-schema.js';
import type { Event, IngestAck } from '../../protocol/schema.js';
import { SluiceClient, SluiceClientError } from '../client/sluice-client.js';
import { runImport, type ImportProgress, type ImportTarget } from '../ops/importer.js';
import type { CliIo } from './admin-cli.js';

export const OPS_HELP = `Operations commands (--server tcp://host:port --key ADMIN_KEY, or SLUICE_SERVER / SLUICE_ADMIN_KEY):
  reprocess --site S --from DAY --to DAY [--rollback] [--resume RUN] [--skip-not-final]
      recompute the UTC days [from, to) from the raw archive with the current logic and switch
      them over (resumes an unfinished run of the same range); --rollback switches them back
  runs --site S [--run RUN]              a site's reprocess runs, or one run's days
  versions --site S --from T --to T      which version serves each day, the audit trail
  replay --at TIME [--group G] [--dry-run]
      move the aggregator group (stopped!) back to an event time, to re-aggregate the log
  import --site S FILE.ndjson|FILE.csv [--format ndjson|csv] [--batch N] [--no-reprocess]
      send historical events through ingest, then reprocess the touched final days
  export --site S --from T --to T --what raw|rollups --format ndjson|csv [--tier T] [--out FILE]
DAY is YYYY-MM-DD (UTC midnight); T and TIME also take an ISO time or ms since the epoch.
`;

const COMMANDS = new Set(['reprocess', 'rollback', 'runs', 'versions', 'replay', 'import', 'export']);

export function isOpsCommand(argv: readonly string[]): boolean {
  return argv.length >= 1 && COMMANDS.has(argv[0]!);
}

class UsageError extends Error {}

/** YYYY-MM-DD (UTC midnight), an ISO time, or ms since the epoch. */
export function parseTime(text: string, name: string): number {
  if (/^\d+$/.test(text)) return Number(text);
  const ms = /^\d{4}-\d{2}-\d{2}$/.test(text) ? Date.parse(`${text}T00:00:00Z`) : Date.parse(text);
  if (!Number.isFinite(ms)) throw new UsageError(`--${name} is not a time: "${text}"`);
  return ms;
}

type Values = Record<string, string | boolean | undefined>;
const need = (v: Values, name: string): string => {
  const x = v[name];
  if (typeof x !== 'string' || x === '') throw new UsageError(`--${name} is required`);
  return x;
};
const str = (v: Values, name: string): string | undefined => (typeof v[name] === 'string' ? v[name] : undefined);

function fmtMs(ms: number | null): string {
  if (ms === null) return '?';
  const s = Math.round(ms / 1000);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

type ReprocessDone = Extract<ReprocessMessage, { type: 'done' }>;
type ReprocessProgress = Extract<ReprocessMessage, { type: 'progress' }>;

export function describeProgress(p: ReprocessProgress): string {
  const where = p.day ? ` ${p.day}` : '';
  const wait = p.archiveBehind !== undefined ? `, archive ${p.archiveBehind} records behind` : '';
  return `${p.kind} ${p.runId}: ${p.phase}${where} — days ${p.daysDone}/${p.daysTotal}, events ${p.eventsRead}, rows ${p.rowsWritten}, elapsed ${fmtMs(p.elapsedMs)}, ETA ${fmtMs(p.etaMs)}${wait}`;
}

/** `ops.reprocess` over a client: resolves with the run's summary; progress as it comes. */
export function reprocessOverClient(client: SluiceClient, request: ReprocessRequest, onProgress: (p: ReprocessProgress) => void): Promise<ReprocessDone> {
  return new Promise((resolve, reject) => {
    let done: ReprocessDone | undefined;
    client.stream<ReprocessMessage>('ops.reprocess', request, 2 ** 31 - 1, {
      next: (m) => {
        if (m.type === 'done') done = m;
        else onProgress(m);
      },
      error: reject,
      complete: () => (done ? resolve(done) : reject(new SluiceClientError('the reprocess stream ended without a result', undefined, undefined, true))),
    });
  });
}

/** Import through a client: acknowledged batches and the reprocess route. */
export function clientImportTarget(client: SluiceClient): ImportTarget {
  return {
    sendBatch: (events: readonly Event[]): Promise<IngestAck> => client.sendBatch(events),
    reprocess: (request, onProgress) => reprocessOverClient(client, request, onProgress),
  };
}

/** `ops.export` over a client: lines to `write` (awaited: the stream asks for more only as they are written). */
export function exportOverClient(
  client: SluiceClient, request: Record<string, unknown>, write: (lines: readonly string[]) => Promise<void>, onProgress: (m: ExportMessage) => void,
): Promise<Extract<ExportMessage, { type: 'done' }>> {
  return new Promise((resolve, reject) => {
    let done: Extract<ExportMessage, { type: 'done' }> | undefined;
    let chain = Promise.resolve();
    const handle = client.stream<ExportMessage>('ops.export', request, 4, {
      next: (m) => {
        chain = chain.then(async () => {
          if (m.type === 'lines') await write(m.lines);
          else if (m.type === 'done') done = m;
          else onProgress(m);
          handle.request(1);
        }).catch(reject);
      },
      error: reject,
      complete: () => {
        void chain.then(() => (done ? resolve(done) : reject(new SluiceClientError('the export stream ended without its last message', undefined, undefined, true))));
      },
    });
  });
}

function writerOf(out: WriteStream | null, io: CliIo): (lines: readonly string[]) => Promise<void> {
  return async (lines) => {
    const text = lines.map((l) => `${l}\n`).join('');
    if (!out) {
      io.out(text);
      return;
    }
    if (!out.write(text)) await new Promise<void>((r) => out.once('drain', () => r()));
  };
}

/** Runs one ops command; resolves to the process exit status. */
export async function runOpsCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const command = argv[0]!;
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...argv.slice(1)],
      options: {
        server: { type: 'string' }, key: { type: 'string' }, site: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' },
        rollback: { type: 'boolean' }, resume: { type: 'string' }, 'skip-not-final': { type: 'boolean' }, run: { type: 'string' },
        at: { type: 'string' }, group: { type: 'string' }, 'dry-run': { type: 'boolean' }, format: { type: 'string' }, batch: { type: 'string' },
        'no-reprocess': { type: 'boolean' }, what: { type: 'string' }, tier: { type: 'string' }, out: { type: 'string' },
      },
      allowPositionals: true,
      strict: true,
    }));
  } catch (e) {
    io.err(`sluice: ${(e as Error).message}\n\n${OPS_HELP}`);
    return 2;
  }
  const server = str(values, 'server') ?? io.env.SLUICE_SERVER ?? 'tcp://127.0.0.1:7878';
  const key = str(values, 'key') ?? io.env.SLUICE_ADMIN_KEY ?? '';
  let action: (client: SluiceClient) => Promise<unknown>;
  try {
    if (key === '') throw new UsageError('an admin key is required: --key or SLUICE_ADMIN_KEY');
    action = actionOf(command, values, positionals, io);
  } catch (e) {
    io.err(`sluice: ${(e as Error).message}\n\n${OPS_HELP}`);
    return 2;
  }
  let client: SluiceClient | undefined;
  try {
    client = await SluiceClient.connect({ url: server, apiKey: key });
    const result = await action(client);
    if (result !== undefined) io.out(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  } catch (e) {
    if (e instanceof SluiceClientError) io.err(`sluice: ${e.code ?? 'ERROR'}: ${e.message}${e.retryable ? ' (retryable)' : ''}\n`);
    else io.err(`sluice: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  } finally {
    client?.close();
  }
}

function actionOf(command: string, v: Values, positionals: readonly string[], io: CliIo): (client: SluiceClient) => Promise<unknown> {
  const progressLine = (text: string) => io.err(`${text}\n`);
  switch (command) {
    case 'reprocess':
    case 'rollback': {
      const request: ReprocessRequest = {
        site: need(v, 'site'), from: parseTime(need(v, 'from'), 'from'), to: parseTime(need(v, 'to'), 'to'),
        ...(command === 'rollback' || v.rollback === true ? { rollback: true } : {}),
        ...(str(v, 'resume') !== undefined ? { resume: str(v, 'resume')! } : {}),
        ...(v['skip-not-final'] === true ? { skipNotFinal: true } : {}),
      };
      return (client) => reprocessOverClient(client, request, (p) => progressLine(describeProgress(p)));
    }
    case 'runs': {
      const body = { site: need(v, 'site'), ...(str(v, 'run') !== undefined ? { runId: str(v, 'run')! } : {}) };
      return (client) => client.request<RunsResponse>('ops.runs', body);
    }
    case 'versions': {
      const body = { site: need(v, 'site'), from: parseTime(need(v, 'from'), 'from'), to: parseTime(need(v, 'to'), 'to') };
      return (client) => client.request<VersionsResponse>('ops.versions', body);
    }
    case 'replay': {
      const body = {
        at: parseTime(need(v, 'at'), 'at'),
        ...(str(v, 'group') !== undefined ? { groupId: str(v, 'group')! } : {}),
        ...(v['dry-run'] === true ? { dryRun: true } : {}),
      };
      return (client) => client.request<ReplayResponse>('ops.replay', body);
    }
    case 'import': {
      const file = positionals[0];
      if (file === undefined) throw new UsageError('import needs a FILE (.ndjson or .csv)');
      const format = str(v, 'format') ?? (file.toLowerCase().endsWith('.csv') ? 'csv' : 'ndjson');
      if (format !== 'ndjson' && format !== 'csv') throw new UsageError(`--format must be ndjson or csv, not "${format}"`);
      const batch = str(v, 'batch') === undefined ? 500 : Number(str(v, 'batch'));
      if (!Number.isInteger(batch) || batch < 1 || batch > 500) throw new UsageError('--batch must be an integer in 1..500');
      const site = str(v, 'site');
      return async (client) => {
        const text = await readFile(file, 'utf8');
        let lastShown = 0;
        return runImport(clientImportTarget(client), text, {
          format, batchSize: batch, reprocess: v['no-reprocess'] !== true, ...(site !== undefined ? { site } : {}),
          onProgress: (p: ImportProgress) => {
            const now = Date.now();
            if (p.phase === 'sending' && now - lastShown < 500) return;
            lastShown = now;
            progressLine(p.phase === 'sending'
              ? `import: ${p.linesRead} lines read, ${p.accepted} accepted, ${p.duplicates} duplicates, ${p.rejected} rejected`
              : `import: ${describeProgress(p.reprocess!)}`);
          },
        });
      };
    }
    case 'export': {
      const what = need(v, 'what');
      const format = need(v, 'format');
      if (what !== 'raw' && what !== 'rollups') throw new UsageError('--what must be raw or rollups');
      if (format !== 'ndjson' && format !== 'csv') throw new UsageError('--format must be ndjson or csv');
      const request = {
        site: need(v, 'site'), from: parseTime(need(v, 'from'), 'from'), to: parseTime(need(v, 'to'), 'to'), what, format,
        ...(str(v, 'tier') !== undefined ? { tier: str(v, 'tier')! } : {}),
      };
      const path = str(v, 'out');
      return async (client) => {
        const out = path === undefined ? null : createWriteStream(path);
        try {
          const done = await exportOverClient(client, request, writerOf(out, io), (m) => {
            if (m.type === 'progress') progressLine(`export: ${m.lines} lines, ${Math.round(m.fraction * 100)}% (${new Date(m.at).toISOString()})`);
          });
          progressLine(`export: done, ${done.lines} lines${done.skippedBots > 0 ? `, ${done.skippedBots} bot events left out` : ''}`);
          return path === undefined ? undefined : done;
        } finally {
          if (out) await new Promise<void>((r) => out.end(() => r()));
        }
      };
    }
    default:
      throw new UsageError(`unknown command ${command}`);
  }
}
