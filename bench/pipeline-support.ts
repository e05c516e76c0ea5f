/**
 * Helpers of the pipeline benchmark (bench/pipeline.ts): the machine line, CPU accounting per
 * scenario, bringing up the local stack, worker threads, and formatting.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Session } from 'node:inspector/promises';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function machineLine(): string {
  const cpu = cpus();
  return `machine: ${cpu.length} × ${cpu[0]?.model ?? 'unknown cpu'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB (${(freemem() / 2 ** 30).toFixed(1)} free), `
    + `load ${loadavg().map((l) => l.toFixed(2)).join(' ')}, node ${process.version}`;
}

/** The repository root: the nearest folder up from this file whose package.json is Sluice's. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'sluice') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the Sluice repository root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

interface StackModule {
  up(options: { log?: (line: string) => void }): Promise<{ started: string[]; reused: string[]; details: Record<string, string> }>;
}

/**
 * Brings the local stack up with `up()` from scripts/stack/stack.ts (it reuses engines that
 * already answer and starts the others). The TypeScript source is loaded through tsx: the
 * compiled copy under dist/ would look for its Maven poms and .stack/ under dist/.
 */
export async function stackUp(log: (line: string) => void): Promise<{ started: string[]; reused: string[]; details: Record<string, string> }> {
  const { tsImport } = await import('tsx/esm/api');
  const stack = (await tsImport(pathToFileURL(join(repoRoot(), 'scripts', 'stack', 'stack.ts')).href, import.meta.url)) as StackModule;
  return stack.up({ log });
}

// ---------------------------------------------------------------------------------------------
// CPU accounting: the whole machine (/proc/stat), this process (all its threads), the Kafka and
// Cassandra processes the stack started (their pid files), and event-loop utilisation.

const CLK_TCK = 100;

function machineTicks(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

function processTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(rest[11]) + Number(rest[12]);
  } catch {
    return undefined;
  }
}

function enginePid(engine: string): number | undefined {
  const dir = process.env.SLUICE_STACK_DIR ?? join(repoRoot(), '.stack');
  try {
    const pid = Number(readFileSync(join(dir, engine, `${engine}.pid`), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 && processTicks(pid) !== undefined ? pid : undefined;
  } catch {
    return undefined;
  }
}

export interface CpuMark {
  readonly at: number;
  readonly machine: { busy: number; total: number } | undefined;
  readonly proc: NodeJS.CpuUsage;
  readonly engines: ReadonlyMap<string, number>;
  readonly elu: EventLoopUtilization;
}

const ENGINE_PIDS = new Map<string, number>();

export function locateEngines(): string {
  for (const e of ['kafka', 'cassandra']) {
    const pid = enginePid(e);
    if (pid !== undefined) ENGINE_PIDS.set(e, pid);
  }
  return ENGINE_PIDS.size === 0 ? 'engine processes: not started by this stack (no per-engine CPU)'
    : `engine processes: ${[...ENGINE_PIDS].map(([e, p]) => `${e} pid ${p}`).join(', ')}`;
}

export function cpuMark(): CpuMark {
  const engines = new Map<string, number>();
  for (const [e, pid] of ENGINE_PIDS) {
    const t = processTicks(pid);
    if (t !== undefined) engines.set(e, t);
  }
  return { at: performance.now(), machine: machineTicks(), proc: process.cpuUsage(), engines, elu: performance.eventLoopUtilization() };
}

/** CPU seconds since a mark: this node process (all threads), and the engines (Kafka, Cassandra) together. */
export function cpuSeconds(a: CpuMark): { readonly processS: number; readonly enginesS: number } {
  const b = cpuMark();
  let enginesS = 0;
  for (const [e, t] of b.engines) {
    const t0 = a.engines.get(e);
    if (t0 !== undefined) enginesS += (t - t0) / CLK_TCK;
  }
  return { processS: (b.proc.user - a.proc.user + b.proc.system - a.proc.system) / 1e6, enginesS };
}

/** Cores busy between two marks: machine, this node process (all threads), kafka, cassandra, the rest; main-thread ELU. */
export function cpuSince(a: CpuMark, workers: ReadonlyArray<{ name: string; elu: number }> = []): string {
  const b = cpuMark();
  const wallS = (b.at - a.at) / 1000;
  const parts: string[] = [];
  if (a.machine && b.machine) {
    const busy = (b.machine.busy - a.machine.busy) / CLK_TCK;
    parts.push(`machine ${(busy / wallS).toFixed(2)}/${cpus().length} cores busy`);
  }
  const procS = (b.proc.user - a.proc.user + b.proc.system - a.proc.system) / 1e6;
  parts.push(`bench process ${(procS / wallS).toFixed(2)}`);
  let known = procS;
  for (const [e, t] of b.engines) {
    const t0 = a.engines.get(e);
    if (t0 === undefined) continue;
    known += (t - t0) / CLK_TCK;
    parts.push(`${e} ${((t - t0) / CLK_TCK / wallS).toFixed(2)}`);
  }
  // Redis, and anything else running on the machine (other benchmarks, test runs).
  if (a.machine && b.machine) parts.push(`everything else ${Math.max(0, ((b.machine.busy - a.machine.busy) / CLK_TCK - known) / wallS).toFixed(2)}`);
  const elu = performance.eventLoopUtilization(b.elu, a.elu).utilization;
  parts.push(`main-thread ELU ${elu.toFixed(2)}`);
  for (const w of workers) parts.push(`${w.name} ELU ${w.elu.toFixed(2)}`);
  const mem = process.memoryUsage();
  return `cpu: ${parts.join(', ')}; bench process rss ${Math.round(mem.rss / 2 ** 20)} MiB, V8 heap used ${Math.round(mem.heapUsed / 2 ** 20)} MiB`;
}

/** Counts a process of the run (a role process of scenario 5) beside the engines in cpuSince, under `name`. */
export function trackProcess(name: string, pid: number): void {
  ENGINE_PIDS.set(name, pid);
}

export function untrackProcess(name: string): void {
  ENGINE_PIDS.delete(name);
}

// ---------------------------------------------------------------------------------------------
// Role processes: the product as deployed, `node dist/src/main.js` configured by SLUICE_* env

export interface RoleProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** Ports from its "Sluice started" line (tcp and ws only with the gateway role). */
  readonly ports: { readonly tcp?: number; readonly ws?: number; readonly http: number };
  /** The last lines it printed, for error messages. */
  tail(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it exited. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts `node dist/src/main.js` (the compiled product, as `npm start` runs it) with `env` and
 * waits for its "Sluice started" line. With `cpuProfileDir`, the process writes a V8 CPU
 * profile there when it exits (node --cpu-prof), named `pipeline-<cpuProfileTag>-<name>`: the
 * tag keeps the profiles of different scenarios' processes apart.
 */
export async function startRoleProcess(name: string, env: NodeJS.ProcessEnv,
  options: { cpuProfileDir?: string; cpuProfileTag?: string; signal?: AbortSignal } = {}): Promise<RoleProcess> {
  const args = options.cpuProfileDir
    ? ['--cpu-prof', '--cpu-prof-dir', options.cpuProfileDir, '--cpu-prof-name', `pipeline-${options.cpuProfileTag ?? '5'}-${name}.cpuprofile`, '--cpu-prof-interval', '500']
    : [];
  if (options.cpuProfileDir) mkdirSync(options.cpuProfileDir, { recursive: true });
  const child = spawn(process.execPath, [...args, join(repoRoot(), 'dist', 'src', 'main.js')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let partial = '';
  let started: { tcp?: number; ws?: number; http?: number } | undefined;
  const onData = (chunk: Buffer) => {
    partial += chunk.toString();
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      if (lines.push(line) > 200) lines.shift();
      if (started === undefined && line.includes('Sluice started')) {
        try {
          started = JSON.parse(line) as typeof started;
        } catch {
          // not the JSON log line
        }
      }
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const tail = () => lines.slice(-15).join('\n');
  const stop = async (graceMs = 30_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };
  const deadline = performance.now() + 90_000;
  while (started === undefined) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before starting:\n${tail()}`);
    if (performance.now() > deadline || options.signal?.aborted) {
      await stop(1_000);
      throw new Error(`${name} did not start within 90 s:\n${tail()}`);
    }
    await sleep(50);
  }
  if (typeof started.http !== 'number') throw new Error(`${name}: no http port in its start line`);
  return { name, child, ports: { tcp: started.tcp, ws: started.ws, http: started.http }, tail, stop };
}

/** Sums the samples of a Prometheus counter on a role process's /metrics, optionally only those with outcome="…". */
export async function scrapeCounter(httpPort: number, metric: string, outcome?: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${httpPort}/metrics`);
  const text = await res.text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(metric)) continue;
    const rest = line.slice(metric.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue;
    if (outcome !== undefined && !rest.includes(`outcome="${outcome}"`)) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) total += value;
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// Workers

export interface RunningWorker<T> {
  readonly worker: Worker;
  readonly result: Promise<T>;
  /** Messages other than the final result (e.g. `{ready: true}`). */
  readonly ready: Promise<void>;
  stop(): void;
  elu(): number;
}

/** Starts a worker whose final message is `{ok: true, …}` or `{ok: false, error}`. */
export function startWorker<T>(file: string, data: unknown, workers: Set<Worker>): RunningWorker<T> {
  const worker = new Worker(new URL(file, import.meta.url), { workerData: data });
  workers.add(worker);
  const elu0 = worker.performance.eventLoopUtilization();
  let markReady: () => void = () => {};
  const ready = new Promise<void>((r) => { markReady = r; });
  const result = new Promise<T>((resolve, reject) => {
    worker.on('message', (m: { ok?: boolean; ready?: boolean; error?: string }) => {
      if (m.ready) {
        markReady();
        return;
      }
      if (m.ok) resolve(m as T);
      else reject(new Error(`worker ${file}: ${m.error}`));
    });
    worker.once('error', reject);
    worker.once('exit', (code) => {
      workers.delete(worker);
      reject(new Error(`worker ${file} exited (${code}) without a result`));
    });
  });
  result.catch(() => {});
  let lastElu = 0;
  return {
    worker, result, ready,
    stop: () => worker.postMessage('stop'),
    elu: () => {
      try {
        lastElu = worker.performance.eventLoopUtilization(elu0).utilization;
      } catch {
        // exited: keep the last reading
      }
      return lastElu;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Formatting

export function percentile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
export const ms = (n: number) => (Number.isFinite(n) ? `${Math.round(n)} ms` : n === Number.POSITIVE_INFINITY ? 'never' : 'n/a');
export const secs = (msValue: number) => `${(msValue / 1000).toFixed(2)} s`;

export function envNumber(name: string, def: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}=${raw}: expected a positive number`);
  return n;
}

// ---------------------------------------------------------------------------------------------
// BENCH_CPU_PROFILE_DIR=dir: a V8 CPU profile of the main thread per scenario (open in Chrome
// DevTools); off by default, since sampling costs a little.

export class ScenarioProfiler {
  private session: Session | undefined;
  private name = '';
  constructor(private readonly dir: string | undefined) {}

  async start(name: string): Promise<void> {
    if (!this.dir) return;
    this.session = new Session();
    this.session.connect();
    await this.session.post('Profiler.enable');
    await this.session.post('Profiler.setSamplingInterval', { interval: 500 });
    await this.session.post('Profiler.start');
    this.name = name;
  }

  async stop(): Promise<void> {
    const session = this.session;
    if (!session || !this.dir) return;
    this.session = undefined;
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    mkdirSync(this.dir, { recursive: true });
    writeFileSync(join(this.dir, `pipeline-${this.name}.cpuprofile`), JSON.stringify(profile));
  }
}

// ---------------------------------------------------------------------------------------------
// The local Cassandra runs with a small heap (768 MB before, 1536 MB now): under heavy writes it can run out
// of heap (it did once while this benchmark was written: "Terminating due to
// java.lang.OutOfMemoryError: Java heap space" after a full GC). A full GC is the warning: the
// guard watches the stack's Cassandra log for one and calls `onFullGc`, so the benchmark can stop
// writing before the node dies under everyone using it.

export class CassandraHeapGuard {
  private readonly file: string;
  private offset = 0;
  private timer: NodeJS.Timeout | undefined;
  private carry = '';
  readonly watching: boolean;

  constructor(private readonly onFullGc: (line: string) => void) {
    this.file = join(process.env.SLUICE_STACK_DIR ?? join(repoRoot(), '.stack'), 'cassandra', 'logs', 'cassandra.log');
    this.watching = existsSync(this.file);
    if (this.watching) this.offset = statSync(this.file).size;
  }

  start(): void {
    if (!this.watching) return;
    this.timer = setInterval(() => this.poll(), 500);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private poll(): void {
    let fd: number | undefined;
    try {
      const size = statSync(this.file).size;
      if (size < this.offset) this.offset = 0; // rotated or restarted
      if (size === this.offset) return;
      fd = openSync(this.file, 'r');
      const buf = Buffer.alloc(Math.min(size - this.offset, 4 * 1024 * 1024));
      const n = readSync(fd, buf, 0, buf.length, this.offset);
      this.offset += n;
      const text = this.carry + buf.subarray(0, n).toString('utf8');
      const lines = text.split('\n');
      this.carry = lines.pop() ?? '';
      const hit = lines.find((l) => /G1 Old Generation GC|OutOfMemoryError/.test(l));
      if (hit) {
        this.stop();
        this.onFullGc(hit.trim());
      }
    } catch {
      // the log is the stack's; unreadable for a moment is fine
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
}
