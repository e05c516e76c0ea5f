/**
 * For tests whose traffic must lie within one UTC day: visitor ids are keyed hashes salted with
 * the UTC day the event is received (visitor-id.ts), and a day row holds only its own day.
 */
const DAY_MS = 86_400_000;

/**
 * Waits, when needed, until [now − lookbackMs, now + aheadMs] falls within one UTC day (a run
 * that started too close to midnight waits for the new day, plus lookbackMs), and lengthens the
 * calling test's or hook's mocha timeout by the wait, so that the hour a run starts at decides
 * nothing. Resolves with the wait, in ms.
 */
export async function withinOneUtcDay(
  ctx: Pick<Mocha.Context, 'timeout'>,
  window: { readonly lookbackMs?: number; readonly aheadMs: number },
  clock: { now(): number; sleep(ms: number): Promise<void> } = { now: Date.now, sleep: (ms) => new Promise((r) => setTimeout(r, ms)) },
): Promise<number> {
  const lookbackMs = window.lookbackMs ?? 0;
  const now = clock.now();
  const dayStart = Math.floor(now / DAY_MS) * DAY_MS;
  let until: number | null = null;
  if (now - lookbackMs < dayStart) until = dayStart + lookbackMs + 1_000;
  else if (now + window.aheadMs >= dayStart + DAY_MS) until = dayStart + DAY_MS + lookbackMs + 1_000;
  if (until === null) return 0;
  const waitMs = until - now;
  const timeout = ctx.timeout();
  if (timeout > 0) ctx.timeout(timeout + waitMs);
  await clock.sleep(waitMs);
  return waitMs;
}
