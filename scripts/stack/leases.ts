/**
 * Test runs that share one stack. Several test runs may use the stack at once (people on one
 * machine, CI in another checkout): the engines a test run started must not be stopped under
 * another run that reused them. So each run holds a lease while it runs, the engines started
 * by test runs are recorded as "owed", and the last run to finish stops what is owed.
 *
 * A person's `stack:up` claims the engines it reuses or starts (they stay up until
 * `stack:down`), so a test run never stops a stack a person asked for.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

import type { EngineName } from './engines.js';
import { MACHINE_DIR, processAlive, withFileLock } from './proc.js';

const LEASES = join(MACHINE_DIR, 'leases');
const OWED = join(MACHINE_DIR, 'owed.json');
const OWED_LOCK = join(MACHINE_DIR, 'owed.lock');
/** Held by a test run while it brings the stack up, and while it decides whether to stop it. */
export const FIXTURE_LOCK = join(MACHINE_DIR, 'fixture.lock');

export interface Owed {
  stackDir: string;
  engine: EngineName;
}

export function registerLease(): void {
  mkdirSync(LEASES, { recursive: true });
  writeFileSync(join(LEASES, String(process.pid)), JSON.stringify({ pid: process.pid, cwd: process.cwd(), at: new Date().toISOString() }));
}

export function dropLease(): void {
  rmSync(join(LEASES, String(process.pid)), { force: true });
}

/** Pids of other test runs that hold a live lease (leases of dead runs are removed). */
export function otherLeases(): number[] {
  if (!existsSync(LEASES)) return [];
  const live: number[] = [];
  for (const name of readdirSync(LEASES)) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    if (processAlive(pid)) live.push(pid);
    else rmSync(join(LEASES, name), { force: true });
  }
  return live;
}

function readOwed(): Owed[] {
  try {
    const list = JSON.parse(readFileSync(OWED, 'utf8')) as unknown;
    return Array.isArray(list) ? (list as Owed[]).filter((o) => typeof o?.stackDir === 'string' && typeof o?.engine === 'string') : [];
  } catch {
    return [];
  }
}

function writeOwed(list: Owed[]): void {
  mkdirSync(MACHINE_DIR, { recursive: true });
  const tmp = `${OWED}.${process.pid}`;
  writeFileSync(tmp, JSON.stringify(list, null, 2));
  renameSync(tmp, OWED);
}

const same = (a: Owed, b: Owed) => resolve(a.stackDir) === resolve(b.stackDir) && a.engine === b.engine;

/** Records engines a test run started: the last test run to finish stops them. */
export function addOwed(stackDir: string, engines: readonly EngineName[]): Promise<void> {
  return withFileLock(OWED_LOCK, async () => {
    const list = readOwed();
    for (const engine of engines) if (!list.some((o) => same(o, { stackDir, engine }))) list.push({ stackDir, engine });
    writeOwed(list);
  }, { deadlineMs: 30_000, what: 'stack bookkeeping' });
}

/** Forgets engines: a person claimed them (`stack:up`), or they were stopped. */
export function clearOwed(stackDir: string, engines: readonly EngineName[]): Promise<void> {
  return withFileLock(OWED_LOCK, async () => {
    const list = readOwed();
    const kept = list.filter((o) => !engines.some((engine) => same(o, { stackDir, engine })));
    if (kept.length !== list.length) writeOwed(kept);
  }, { deadlineMs: 30_000, what: 'stack bookkeeping' });
}

/** Takes every owed engine off the list, for the caller to stop. */
export function takeOwed(): Promise<Owed[]> {
  return withFileLock(OWED_LOCK, async () => {
    const list = readOwed();
    if (list.length > 0) writeOwed([]);
    return list;
  }, { deadlineMs: 30_000, what: 'stack bookkeeping' });
}
