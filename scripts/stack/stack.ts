/**
 * Sluice's local stack: real Redis, Kafka and Cassandra on 127.0.0.1 without Docker.
 *
 *   node --import tsx scripts/stack/stack.ts up|down|status|fetch|wipe
 *   (npm run stack:up, stack:down, stack:status, stack:fetch)
 *
 * - up: for each engine, reuse one that already answers on its port (never start a second);
 *   otherwise fetch its jars from Maven Central if missing (scripts/stack/<engine>/pom.xml into
 *   .stack/<engine>/lib, cached in ~/.m2), start it in the background and wait until it answers
 *   a real client (kafkajs listTopics, a cassandra-driver connect, a Redis PING), within a deadline.
 * - down: stops only the engines this stack started (pid files under .stack/<engine>/), with
 *   SIGTERM and then SIGKILL after a grace period; anything else listening is left alone.
 * - status: what answers on each port, and whether this stack started it.
 *
 * The test setup imports up/down from here (test/support/stack-fixture.ts).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import {
  DEFAULT_ENDPOINTS,
  ENGINE_NAMES,
  READY_DEADLINE_MS,
  STOP_GRACE_MS,
  cassandraLaunch,
  endpointLabel,
  enginePaths,
  enginePort,
  fetchedVersion,
  kafkaFormatCommand,
  kafkaFormatted,
  kafkaLaunch,
  pinnedVersion,
  portOpen,
  probeEngine,
  redisLaunch,
  type EngineName,
  type EnginePaths,
  type LaunchSpec,
  type StackEndpoints,
} from './engines.js';

import { clearOwed } from './leases.js';
import { MACHINE_DIR, processAlive, readPid, sleep, withFileLock } from './proc.js';

export { DEFAULT_ENDPOINTS, ENGINE_NAMES, probeEngine, type EngineName, type StackEndpoints } from './engines.js';

const SCRIPTS_DIR = dirname(fileURLToPath(import.meta.url));

/** The directory holding package.json: the same from scripts/stack and from its compiled copy in dist/. */
function findRepoRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) return resolve(from, '..', '..');
  }
}
export const REPO_ROOT = findRepoRoot(SCRIPTS_DIR);

export interface StackOptions {
  /** Where engines live; default `<repo>/.stack` or $SLUICE_STACK_DIR. */
  stackDir?: string;
  /** Progress lines; default: none. */
  log?: (line: string) => void;
  /** Which engines; default all. */
  engines?: readonly EngineName[];
}

export class StackError extends Error {
  override name = 'StackError';
  /** For a failed `up`: the engines it started that still run (stop them with `down`). */
  started: EngineName[] = [];
}

export function stackDirOf(options: StackOptions = {}): string {
  return resolve(options.stackDir ?? process.env.SLUICE_STACK_DIR ?? join(REPO_ROOT, '.stack'));
}

function pathsOf(options: StackOptions, engine: EngineName): EnginePaths {
  return enginePaths(stackDirOf(options), SCRIPTS_DIR, engine);
}

/** A path as a person would type it from the repository root. */
function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') ? rel : path;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

// ---------------------------------------------------------------------------------------------
// Processes: pid files, and recognising our own process (not a reused pid).

/**
 * Is `pid` the engine this stack started? Every engine is started in .stack/<engine> (Redis
 * then moves into its data folder under it), so a pid reused by an unrelated process does not
 * pass.
 */
function isOurProcess(pid: number, paths: EnginePaths): boolean {
  if (!processAlive(pid)) return false;
  if (!existsSync('/proc/self/cwd')) return true;
  try {
    const cwd = resolve(readlinkSync(`/proc/${pid}/cwd`).replace(/ \(deleted\)$/, ''));
    const dir = resolve(paths.dir);
    return cwd === dir || cwd.startsWith(`${dir}/`);
  } catch {
    return false;
  }
}

/** The pid of the engine this stack started and that still runs, else undefined (stale files go). */
function ourPid(paths: EnginePaths): number | undefined {
  const pid = readPid(paths.pidFile);
  if (pid === undefined) return undefined;
  if (isOurProcess(pid, paths)) return pid;
  rmSync(paths.pidFile, { force: true });
  return undefined;
}

/**
 * One `up`, `down` or `wipe` at a time on this machine (the ports are machine-wide; a test run,
 * a person and CI in another checkout may race).
 */
function withLock<T>(options: StackOptions, fn: () => Promise<T>): Promise<T> {
  return withFileLock(join(MACHINE_DIR, 'stack.lock'), fn, options.log ? { log: options.log } : {}).catch((e: unknown) => {
    throw e instanceof Error && !(e instanceof StackError) && /still holds/.test(e.message) ? new StackError(e.message) : e;
  });
}

// ---------------------------------------------------------------------------------------------
// Tools: java (17 preferred: Kafka 4 needs 17+, Cassandra 5.0 runs on 11 or 17), mvn, redis-server.

function javaMajor(java: string): number | undefined {
  const r = spawnSync(java, ['-version'], { encoding: 'utf8', timeout: 30_000 });
  if (r.error || r.status !== 0) return undefined;
  const m = /version "(\d+)(?:\.(\d+))?/.exec(`${r.stderr}${r.stdout}`);
  if (!m) return undefined;
  const major = Number(m[1]);
  return major === 1 ? Number(m[2]) : major;
}

let javaChoice: string | undefined;
export function findJava(): string {
  if (javaChoice) return javaChoice;
  const explicit = process.env.SLUICE_STACK_JAVA;
  if (explicit) return (javaChoice = explicit);
  const candidates = ['java'];
  if (process.env.JAVA_HOME) candidates.push(join(process.env.JAVA_HOME, 'bin', 'java'));
  try {
    for (const d of readdirSync('/usr/lib/jvm')) candidates.push(join('/usr/lib/jvm', d, 'bin', 'java'));
  } catch {
    // no /usr/lib/jvm
  }
  let anyJava: string | undefined;
  for (const c of candidates) {
    const major = javaMajor(c);
    if (major === undefined) continue;
    if (major === 17) return (javaChoice = c);
    anyJava ??= c;
  }
  if (anyJava) return (javaChoice = anyJava);
  throw new StackError('no java found: install a JDK 17 (apt-get install -y openjdk-17-jre-headless) or set SLUICE_STACK_JAVA');
}

function onPath(tool: string): boolean {
  const r = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
  return r.status === 0;
}

// ---------------------------------------------------------------------------------------------
// Fetch: Maven copies each engine's jars into .stack/<engine>/lib, keyed by the pom's content.

const FETCH_MARKER = '.sluice-fetched';

function pomHash(paths: EnginePaths): string {
  return createHash('sha256').update(readFileSync(paths.pom)).digest('hex');
}

function fetched(paths: EnginePaths): boolean {
  try {
    return readFileSync(join(paths.lib, FETCH_MARKER), 'utf8').trim() === pomHash(paths);
  } catch {
    return false;
  }
}

async function fetchEngine(engine: 'kafka' | 'cassandra', options: StackOptions): Promise<void> {
  const paths = pathsOf(options, engine);
  if (fetched(paths)) return;
  const mvn = process.env.SLUICE_STACK_MVN ?? 'mvn';
  if (!process.env.SLUICE_STACK_MVN && !onPath('mvn')) {
    throw new StackError(`${engine}: Maven (mvn) is needed to fetch its jars from Maven Central: apt-get install -y maven`);
  }
  mkdirSync(paths.logs, { recursive: true });
  const tmp = `${paths.lib}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const args = ['-q', '-B', '-Dstyle.color=never', '-f', paths.pom, 'dependency:copy-dependencies', `-Dstack.lib=${tmp}`];
  if (process.env.SLUICE_STACK_MAVEN_REPO) args.push(`-Dmaven.repo.local=${process.env.SLUICE_STACK_MAVEN_REPO}`);
  const cache = process.env.SLUICE_STACK_MAVEN_REPO ?? '~/.m2';
  options.log?.(`${engine}: fetching ${pinnedVersion(paths, engine) ?? ''} from Maven Central (cached in ${cache}); log ${shown(paths.fetchLog)}`);
  const started = Date.now();
  const out = openSync(paths.fetchLog, 'w');
  const code = await new Promise<number | string>((resolveCode) => {
    const child = spawn(mvn, args, { stdio: ['ignore', out, out], cwd: dirname(paths.pom) });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20 * 60_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      resolveCode(e.message);
    });
    child.once('exit', (c, signal) => {
      clearTimeout(timer);
      resolveCode(c ?? `signal ${signal}`);
    });
  });
  closeSync(out);
  if (code !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    throw new StackError(`${engine}: fetching its jars with Maven failed (${code}); see ${shown(paths.fetchLog)}:\n${tail(paths.fetchLog, 0, 20)}`);
  }
  writeFileSync(join(tmp, FETCH_MARKER), `${pomHash(paths)}\n`);
  rmSync(paths.lib, { recursive: true, force: true });
  renameSync(tmp, paths.lib);
  options.log?.(`${engine}: fetched ${fetchedVersion(paths, engine) ?? '?'} in ${seconds(Date.now() - started)}`);
}

/** Fetches the jars of Kafka and Cassandra if missing or out of date (one Maven at a time: they share ~/.m2). */
export async function fetchAll(options: StackOptions = {}): Promise<void> {
  const engines = options.engines ?? ENGINE_NAMES;
  for (const engine of engines) if (engine !== 'redis') await fetchEngine(engine, options);
}

// ---------------------------------------------------------------------------------------------
// Logs

const LOG_ROTATE_BYTES = 64 * 1024 * 1024;

/**
 * What a person needs from a log to see why an engine failed: from byte `from` on, the first
 * error with what follows it when there is one, else the last `lines` lines; indented.
 */
function tail(file: string, from: number, lines: number): string {
  try {
    const size = statSync(file).size;
    const start = Math.max(from, size - 64 * 1024);
    const fd = openSync(file, 'r');
    const buf = Buffer.alloc(size - start);
    readSync(fd, buf, 0, buf.length, start);
    closeSync(fd);
    const all = buf
      .toString('utf8')
      .split('\n')
      .filter((l) => l.trim() !== '');
    const firstError = all.findIndex((l) => /\b(ERROR|FATAL|Exception|Error:)|^Caused by|^Fatal/.test(l));
    const shownLines = firstError >= 0 ? all.slice(Math.max(0, firstError - 3), firstError + lines - 3) : all.slice(-lines);
    return shownLines.map((l) => `    | ${l.length > 400 ? `${l.slice(0, 400)}…` : l}`).join('\n');
  } catch {
    return '    | (no log)';
  }
}

/** Appends a start marker; returns the offset where this start's output begins. */
function openLogForStart(paths: EnginePaths, engine: EngineName): number {
  mkdirSync(paths.logs, { recursive: true });
  try {
    if (statSync(paths.log).size > LOG_ROTATE_BYTES) renameSync(paths.log, `${paths.log}.1`);
  } catch {
    // no log yet
  }
  const offset = existsSync(paths.log) ? statSync(paths.log).size : 0;
  writeFileSync(paths.log, `\n===== sluice stack: starting ${engine} at ${new Date().toISOString()} =====\n`, { flag: 'a' });
  return offset;
}

// ---------------------------------------------------------------------------------------------
// Start and stop one engine

interface Started {
  pid: number;
  exited: () => string | undefined;
  logOffset: number;
}

function launch(engine: EngineName, spec: LaunchSpec, paths: EnginePaths, logOffset: number): Started {
  const out = openSync(paths.log, 'a');
  let exit: string | undefined;
  const child = spawn(spec.command, spec.args, { cwd: paths.dir, detached: true, stdio: ['ignore', out, out], env: process.env });
  closeSync(out);
  child.once('error', (e) => {
    exit = `could not be run: ${e.message}`;
  });
  child.once('exit', (code, signal) => {
    exit = signal ? `was killed by ${signal}` : `exited with code ${code}`;
  });
  child.unref();
  if (child.pid === undefined || child.pid <= 0) {
    // spawn failed at once (e.g. ENOENT); 'error' fires on the next tick
    child.on('error', () => {});
    throw new StackError(`${engine}: could not run ${spec.command}; see ${shown(paths.log)}`);
  }
  writeFileSync(paths.pidFile, `${child.pid}\n`);
  return { pid: child.pid, exited: () => exit, logOffset };
}

async function runToCompletion(spec: LaunchSpec, paths: EnginePaths, timeoutMs: number): Promise<number | string> {
  const out = openSync(paths.log, 'a');
  try {
    return await new Promise((resolveCode) => {
      const child = spawn(spec.command, spec.args, { cwd: paths.dir, stdio: ['ignore', out, out] });
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.once('error', (e) => {
        clearTimeout(timer);
        resolveCode(e.message);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        resolveCode(code ?? `signal ${signal}`);
      });
    });
  } finally {
    closeSync(out);
  }
}

async function startEngine(engine: EngineName, options: StackOptions): Promise<Started> {
  const stackDir = stackDirOf(options);
  const paths = pathsOf(options, engine);
  mkdirSync(paths.dir, { recursive: true });
  const logOffset = openLogForStart(paths, engine);
  let spec: LaunchSpec;
  if (engine === 'redis') {
    if (!onPath('redis-server')) {
      throw new StackError(`redis: nothing answers on ${endpointLabel('redis')} and redis-server is not installed: apt-get install -y redis-server`);
    }
    spec = redisLaunch('redis-server', paths);
  } else {
    const java = findJava();
    if (engine === 'kafka') {
      if (!kafkaFormatted(paths)) {
        options.log?.('kafka: formatting its storage (once)');
        const code = await runToCompletion(kafkaFormatCommand(java, paths, stackDir), paths, 120_000);
        if (code !== 0 || !kafkaFormatted(paths)) {
          throw new StackError(`kafka: formatting storage failed (${code}); see ${shown(paths.log)}:\n${tail(paths.log, logOffset, 25)}`);
        }
      }
      spec = kafkaLaunch(java, paths, stackDir);
    } else {
      spec = cassandraLaunch(java, paths, stackDir);
    }
  }
  return launch(engine, spec, paths, logOffset);
}

async function waitReady(engine: EngineName, paths: EnginePaths, started: Started | undefined, pid: number, deadlineMs: number): Promise<string> {
  const t0 = Date.now();
  let lastError = 'no answer yet';
  for (;;) {
    const exit = started?.exited();
    if (exit !== undefined || !processAlive(pid)) {
      rmSync(paths.pidFile, { force: true });
      throw new StackError(
        `${engine} ${exit ?? 'stopped'} before it was ready; see ${shown(paths.log)}:\n${tail(paths.log, started?.logOffset ?? 0, 20)}`,
      );
    }
    if (await portOpen(enginePort(engine))) {
      try {
        return await probeEngine(engine, DEFAULT_ENDPOINTS, 5_000);
      } catch (e) {
        lastError = (e as Error).message;
      }
    }
    if (Date.now() - t0 > deadlineMs) {
      throw new StackError(
        `${engine} (pid ${pid}) was not ready within ${seconds(deadlineMs)} (last: ${lastError}); it is still running — ` +
          `stop it with \`npm run stack:down\`; see ${shown(paths.log)}:\n${tail(paths.log, started?.logOffset ?? 0, 20)}`,
      );
    }
    await sleep(engine === 'redis' ? 100 : 500);
  }
}

/** For an engine something else runs: it may be just starting, so ask for a while. */
async function probeUntil(engine: EngineName, deadlineMs: number): Promise<string> {
  const t0 = Date.now();
  for (;;) {
    try {
      return await probeEngine(engine, DEFAULT_ENDPOINTS, 5_000);
    } catch (e) {
      if (Date.now() - t0 > deadlineMs) throw e;
    }
    await sleep(500);
  }
}

async function stopPid(engine: EngineName, pid: number, paths: EnginePaths, log?: (l: string) => void): Promise<void> {
  const t0 = Date.now();
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(pid, s);
    } catch {
      // gone already
    }
  };
  signal('SIGTERM');
  while (processAlive(pid) && Date.now() - t0 < STOP_GRACE_MS[engine]) await sleep(100);
  if (processAlive(pid)) {
    log?.(`${engine}: still running ${seconds(STOP_GRACE_MS[engine])} after SIGTERM; sending SIGKILL`);
    signal('SIGKILL');
    const t1 = Date.now();
    while (processAlive(pid) && Date.now() - t1 < 10_000) await sleep(100);
    if (processAlive(pid)) throw new StackError(`${engine}: pid ${pid} survived SIGKILL`);
  }
  rmSync(paths.pidFile, { force: true });
  log?.(`${engine}: stopped (pid ${pid}) in ${seconds(Date.now() - t0)}`);
}

// ---------------------------------------------------------------------------------------------
// up / down / status

export interface UpResult {
  /** Engines this call started: stop exactly these to undo it. */
  started: EngineName[];
  /** Engines already running that this call reused (started earlier by this stack, or by anyone). */
  reused: EngineName[];
  details: Record<string, string>;
  endpoints: StackEndpoints;
}

/**
 * Brings up the engines that do not already answer, reusing those that do, and waits until all
 * answer a real client. Throws a StackError naming the log file when one cannot be started; the
 * engines it had started by then keep running (so their logs can be read) and `down` stops them.
 */
export async function up(options: StackOptions = {}): Promise<UpResult> {
  const engines = options.engines ?? ENGINE_NAMES;
  const log = options.log;
  return withLock(options, async () => {
    const result: UpResult = { started: [], reused: [], details: {}, endpoints: { ...DEFAULT_ENDPOINTS } };
    const toStart: EngineName[] = [];
    const waits: Promise<void>[] = [];
    const startFailures: string[] = [];
    const wait = (p: Promise<void>) => {
      p.catch(() => {}); // judged below with allSettled; never an unhandled rejection meanwhile
      waits.push(p);
    };
    const t0 = Date.now();

    for (const engine of engines) {
      const paths = pathsOf(options, engine);
      const pid = ourPid(paths);
      if (pid !== undefined) {
        // Ours and running (possibly still booting): wait for it.
        result.reused.push(engine);
        wait(
          waitReady(engine, paths, undefined, pid, READY_DEADLINE_MS[engine]).then((what) => {
            result.details[engine] = `${what}, already running (started by this stack, pid ${pid})`;
          }),
        );
      } else if (await portOpen(enginePort(engine))) {
        result.reused.push(engine);
        wait(
          probeUntil(engine, 30_000).then(
            (what) => {
              result.details[engine] = `${what}, already running (not started by this stack: reused, never stopped by it)`;
            },
            (e: Error) => {
              throw new StackError(
                `${engine}: something listens on ${endpointLabel(engine)} but does not answer as ${engine} (${e.message}); ` +
                  `stop it or free the port`,
              );
            },
          ),
        );
      } else {
        toStart.push(engine);
      }
    }

    // Fetch before starting anything (Maven runs one at a time; a warm lib costs nothing).
    try {
      await fetchAll({ ...options, engines: toStart });
    } catch (e) {
      startFailures.push((e as Error).message);
      toStart.length = 0;
    }

    // Cassandra boots slowest: launch it first, then format and start Kafka while it boots.
    toStart.sort((a, b) => Number(b === 'cassandra') - Number(a === 'cassandra'));
    for (const engine of toStart) {
      const paths = pathsOf(options, engine);
      const t = Date.now();
      let started: Started;
      try {
        started = await startEngine(engine, options);
      } catch (e) {
        startFailures.push((e as Error).message);
        continue;
      }
      result.started.push(engine);
      log?.(`${engine}: starting (pid ${started.pid}); log ${shown(paths.log)}`);
      wait(
        waitReady(engine, paths, started, started.pid, READY_DEADLINE_MS[engine]).then((what) => {
          result.details[engine] = `${what}, started (pid ${started.pid}) and ready in ${seconds(Date.now() - t)}`;
        }),
      );
    }

    const outcomes = await Promise.allSettled(waits);
    const failures = [
      ...startFailures,
      ...outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map((o) => (o.reason as Error).message),
    ];
    for (const engine of engines) if (result.details[engine]) log?.(`${engine}: ${result.details[engine]}`);
    if (failures.length > 0) {
      const running = result.started.filter((e) => ourPid(pathsOf(options, e)) !== undefined);
      const note = running.length > 0 ? `\n(started and still running: ${running.join(', ')}; \`npm run stack:down\` stops them)` : '';
      const error = new StackError(`the local stack did not come up:\n${failures.join('\n')}${note}`);
      error.started = running;
      throw error;
    }
    log?.(`stack ready in ${seconds(Date.now() - t0)}`);
    return result;
  });
}

export interface DownResult {
  stopped: EngineName[];
  leftAlone: EngineName[];
}

/** Stops the given engines (default all) that this stack started; never touches anything else. */
export async function down(options: StackOptions = {}): Promise<DownResult> {
  const engines = [...(options.engines ?? ENGINE_NAMES)].reverse();
  const log = options.log;
  return withLock(options, async () => {
    const result: DownResult = { stopped: [], leftAlone: [] };
    await Promise.all(
      engines.map(async (engine) => {
        const paths = pathsOf(options, engine);
        const pid = ourPid(paths);
        if (pid !== undefined) {
          await stopPid(engine, pid, paths, log);
          result.stopped.push(engine);
        } else if (await portOpen(enginePort(engine))) {
          result.leftAlone.push(engine);
          log?.(`${engine}: running on ${endpointLabel(engine)} but not started by this stack: left alone`);
        } else {
          log?.(`${engine}: not running`);
        }
      }),
    );
    return result;
  });
}

export interface EngineStatus {
  engine: EngineName;
  endpoint: string;
  state: 'running' | 'starting' | 'unhealthy' | 'stopped';
  /** 'stack' when this stack started it (pid file), 'external' when something else did. */
  owner: 'stack' | 'external' | 'none';
  pid?: number;
  answer?: string;
  version?: string;
  log: string;
}

export async function status(options: StackOptions = {}): Promise<EngineStatus[]> {
  const engines = options.engines ?? ENGINE_NAMES;
  return Promise.all(
    engines.map(async (engine): Promise<EngineStatus> => {
      const paths = pathsOf(options, engine);
      const pid = ourPid(paths);
      const open = await portOpen(enginePort(engine));
      const base = {
        engine,
        endpoint: endpointLabel(engine),
        owner: pid !== undefined ? ('stack' as const) : open ? ('external' as const) : ('none' as const),
        log: shown(paths.log),
        ...(pid !== undefined ? { pid } : {}),
      };
      const version = fetchedVersion(paths, engine) ?? pinnedVersion(paths, engine);
      const withVersion = version ? { version } : {};
      if (!open) return { ...base, ...withVersion, state: pid !== undefined ? 'starting' : 'stopped' };
      try {
        const answer = await probeEngine(engine, DEFAULT_ENDPOINTS, 5_000);
        return { ...base, ...withVersion, state: 'running', answer };
      } catch (e) {
        return { ...base, ...withVersion, state: pid !== undefined ? 'starting' : 'unhealthy', answer: (e as Error).message };
      }
    }),
  );
}

/** Deletes the engines' data (topics, keyspaces), keeping fetched jars. Refuses while ours run. */
export async function wipe(options: StackOptions = {}): Promise<void> {
  const engines = options.engines ?? ENGINE_NAMES;
  await withLock(options, async () => {
    for (const engine of engines) {
      const paths = pathsOf(options, engine);
      if (ourPid(paths) !== undefined) throw new StackError(`${engine} is running: \`npm run stack:down\` first`);
    }
    for (const engine of engines) {
      const paths = pathsOf(options, engine);
      rmSync(paths.data, { recursive: true, force: true });
      rmSync(join(paths.dir, 'cluster.id'), { force: true });
      options.log?.(`${engine}: data removed (${shown(paths.data)})`);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// CLI

function formatStatus(rows: EngineStatus[]): string {
  return rows
    .map((r) => {
      const who = r.owner === 'stack' ? `started by this stack, pid ${r.pid}` : r.owner === 'external' ? 'external (reused, never stopped by this stack)' : '';
      const what = r.answer ? ` — ${r.answer}` : '';
      const version = r.version && r.owner !== 'external' ? ` [${r.engine} ${r.version}]` : '';
      const logLine = r.owner === 'external' ? '' : `\n${' '.repeat(11)}log ${r.log}`;
      return `${r.engine.padEnd(10)} ${r.state.padEnd(9)} ${r.endpoint.padEnd(16)} ${who}${what}${version}${logLine}`;
    })
    .join('\n');
}

function parseEngines(args: string[]): EngineName[] | undefined {
  const names = args.filter((a) => !a.startsWith('-'));
  if (names.length === 0) return undefined;
  for (const n of names) {
    if (!(ENGINE_NAMES as readonly string[]).includes(n)) throw new StackError(`unknown engine '${n}' (one of ${ENGINE_NAMES.join(', ')})`);
  }
  return names as EngineName[];
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const log = (line: string) => console.log(`[stack] ${line}`);
  const engines = parseEngines(rest);
  const options: StackOptions = { log, ...(engines ? { engines } : {}) };
  switch (command) {
    case 'up': {
      const t0 = Date.now();
      const r = await up(options);
      // A person asked for these: no test run stops them (until `stack:down`).
      await clearOwed(stackDirOf(options), [...r.started, ...r.reused]);
      console.log(
        `[stack] up in ${seconds(Date.now() - t0)}: started ${r.started.join(', ') || 'nothing'}; reused ${r.reused.join(', ') || 'nothing'}\n` +
          `[stack] kafka ${r.endpoints.kafkaBrokers.join(',')}  cassandra ${r.endpoints.cassandraContactPoints.join(',')} (dc ${r.endpoints.cassandraDataCenter})  redis ${r.endpoints.redisUrl}`,
      );
      return 0;
    }
    case 'down': {
      const r = await down(options);
      await clearOwed(stackDirOf(options), r.stopped);
      console.log(`[stack] stopped ${r.stopped.join(', ') || 'nothing'}${r.leftAlone.length ? `; left alone (not ours): ${r.leftAlone.join(', ')}` : ''}`);
      return 0;
    }
    case 'status': {
      const rows = await status(options);
      console.log(formatStatus(rows));
      return rows.every((r) => r.state === 'running') ? 0 : 3;
    }
    case 'fetch': {
      const t0 = Date.now();
      await fetchAll(options);
      console.log(`[stack] jars in place in ${seconds(Date.now() - t0)}`);
      return 0;
    }
    case 'wipe':
      await wipe(options);
      return 0;
    default:
      console.error(
        'usage: node --import tsx scripts/stack/stack.ts <command> [engine...]\n' +
          '  up      start what is not running (fetching jars if missing), reuse what is, wait until ready\n' +
          '  down    stop what this stack started (pid files); leave anything else alone\n' +
          '  status  what answers on each port and who started it (exit 3 unless all run)\n' +
          '  fetch   fetch the Kafka and Cassandra jars from Maven Central (warms ~/.m2)\n' +
          '  wipe    delete the engines\' data (topics, keyspaces); refuses while they run\n' +
          `engines: ${ENGINE_NAMES.join(', ')} (default: all)`,
      );
      return 2;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(`[stack] ${e instanceof StackError ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      process.exit(1);
    },
  );
}
