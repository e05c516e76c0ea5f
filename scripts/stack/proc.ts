/**
 * Small process helpers for the local stack: pid files, liveness, and file locks that survive
 * their holder dying (a lock whose pid is gone is taken over).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

/**
 * Machine-wide state shared by every checkout on this machine (the engines' ports are
 * machine-wide too): locks, and the test runs currently using the stack.
 */
export const MACHINE_DIR = resolve(process.env.SLUICE_STACK_RUN_DIR ?? join(tmpdir(), 'sluice-stack'));

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function readPid(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // A zombie (exited, not yet reaped by its parent) is not running.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return true; // no /proc: kill(0) is all we have
  }
}

/**
 * Runs `fn` holding an exclusive lock file. A lock left by a process that is gone is taken
 * over; a live holder is waited for, up to `deadlineMs`.
 */
export async function withFileLock<T>(
  file: string,
  fn: () => Promise<T>,
  options: { deadlineMs?: number; log?: (line: string) => void; what?: string } = {},
): Promise<T> {
  mkdirSync(dirname(file), { recursive: true });
  const deadline = Date.now() + (options.deadlineMs ?? 20 * 60_000);
  let told = false;
  let emptySince: number | undefined;
  for (;;) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = readPid(file);
      if (holder === undefined) {
        // Just created and not yet written, or left empty by a crash: give it a moment.
        emptySince ??= Date.now();
        if (Date.now() - emptySince > 2_000) rmSync(file, { force: true });
      } else if (!processAlive(holder)) {
        rmSync(file, { force: true });
        continue;
      } else {
        emptySince = undefined;
      }
      if (Date.now() > deadline) throw new Error(`another ${options.what ?? 'stack command'} (pid ${holder ?? '?'}) still holds ${file}`);
      if (!told && holder !== undefined) options.log?.(`waiting for another ${options.what ?? 'stack command'} (pid ${holder}) to finish`);
      told ||= holder !== undefined;
      await sleep(200);
    }
  }
  try {
    return await fn();
  } finally {
    if (readPid(file) === process.pid) rmSync(file, { force: true });
  }
}
