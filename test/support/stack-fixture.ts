/**
 * Mocha global fixture (registered in .mocharc.json "require"): before any test, the local
 * stack (real Kafka, Cassandra and Redis on 127.0.0.1, scripts/stack/stack.ts) is brought up
 * where it is not already running; engines already running are reused. After the run, only
 * what this fixture started is stopped; a stack started by `npm run stack:up` stays up.
 * When several test runs share the stack (other checkouts, other people on this machine), the
 * engines a test run started are stopped by the last run to finish, never under a running one.
 *
 * If an engine cannot be started the whole run fails with a message naming its log file: the
 * integration tests are never skipped silently.
 *
 * Environment:
 * - SLUICE_TEST_KAFKA_BROKERS="host:port host:port"   use these brokers, start no Kafka
 * - SLUICE_TEST_CASSANDRA_CONTACT_POINTS="host:port"   use this Cassandra, start none
 * - SLUICE_TEST_CASSANDRA_DC=datacenter1               its local data centre
 * - SLUICE_TEST_REDIS_URL=redis://host:port            use this Redis, start none
 *   (an engine given by env is checked to answer, and the run fails loudly if it does not)
 * - SLUICE_TEST_STACK_KEEP=1   leave what the fixture started running after the tests
 *   (the next run then reuses it; `npm run stack:down` stops it)
 */
import { FIXTURE_LOCK, addOwed, dropLease, otherLeases, registerLease, takeOwed } from '../../scripts/stack/leases.js';
import { withFileLock } from '../../scripts/stack/proc.js';
import { DEFAULT_ENDPOINTS, ENGINE_NAMES, StackError, down, probeEngine, stackDirOf, up, type EngineName, type StackEndpoints } from '../../scripts/stack/stack.js';

export type { StackEndpoints } from '../../scripts/stack/stack.js';

function list(value: string | undefined): string[] | undefined {
  const items = value
    ?.split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
  return items && items.length > 0 ? items : undefined;
}

function overridden(): Partial<Record<EngineName, string>> {
  const env = process.env;
  const o: Partial<Record<EngineName, string>> = {};
  if (list(env.SLUICE_TEST_KAFKA_BROKERS)) o.kafka = 'SLUICE_TEST_KAFKA_BROKERS';
  if (list(env.SLUICE_TEST_CASSANDRA_CONTACT_POINTS)) o.cassandra = 'SLUICE_TEST_CASSANDRA_CONTACT_POINTS';
  if (env.SLUICE_TEST_REDIS_URL?.trim()) o.redis = 'SLUICE_TEST_REDIS_URL';
  return o;
}

/** Where the integration tests find Kafka, Cassandra and Redis (the local stack, or the env overrides). */
export function stackEndpoints(): StackEndpoints {
  const env = process.env;
  return {
    kafkaBrokers: list(env.SLUICE_TEST_KAFKA_BROKERS) ?? [...DEFAULT_ENDPOINTS.kafkaBrokers],
    cassandraContactPoints: list(env.SLUICE_TEST_CASSANDRA_CONTACT_POINTS) ?? [...DEFAULT_ENDPOINTS.cassandraContactPoints],
    cassandraDataCenter: env.SLUICE_TEST_CASSANDRA_DC?.trim() || DEFAULT_ENDPOINTS.cassandraDataCenter,
    redisUrl: env.SLUICE_TEST_REDIS_URL?.trim() || DEFAULT_ENDPOINTS.redisUrl,
  };
}

let startedByFixture: EngineName[] = [];

const say = (line: string) => console.log(`  [stack] ${line}`);

export async function mochaGlobalSetup(): Promise<void> {
  const t0 = Date.now();
  const external = overridden();
  const local = ENGINE_NAMES.filter((e) => external[e] === undefined);
  const endpoints = stackEndpoints();
  const keep = !!process.env.SLUICE_TEST_STACK_KEEP && process.env.SLUICE_TEST_STACK_KEEP !== '0';

  const checks = (Object.entries(external) as [EngineName, string][]).map(async ([engine, envName]) => {
    try {
      const what = await probeEngine(engine, endpoints, 15_000);
      say(`${engine}: ${what} at the endpoint given by ${envName}`);
    } catch (e) {
      throw new Error(`${engine} given by ${envName} does not answer: ${(e as Error).message}`);
    }
  });

  // Under the fixture lock: another run's teardown cannot stop the stack between our reuse of
  // it and our lease.
  await withFileLock(
    FIXTURE_LOCK,
    async () => {
      registerLease();
      const [upOutcome, ...checkOutcomes] = await Promise.allSettled([
        local.length > 0 ? up({ engines: local, log: say }) : Promise.resolve(undefined),
        ...checks,
      ]);
      if (upOutcome.status === 'fulfilled') startedByFixture = upOutcome.value?.started ?? [];
      const failures = [upOutcome, ...checkOutcomes].filter((o): o is PromiseRejectedResult => o.status === 'rejected').map((o) => o.reason as unknown);
      if (failures.length > 0) {
        // Undo what this attempt started, then fail the whole run, loudly: integration tests
        // must not pass by not running.
        const partial = [...startedByFixture, ...failures.flatMap((e) => (e instanceof StackError ? e.started : []))];
        if (partial.length > 0) await down({ engines: partial, log: say }).catch(() => {});
        startedByFixture = [];
        dropLease();
        const message = failures.map((e) => (e instanceof Error ? e.message : String(e))).join('\n');
        throw new Error(`\nThe test stack (Kafka, Cassandra, Redis) could not be brought up, so the tests cannot run.\n${message}\n`);
      }
      if (startedByFixture.length > 0 && !keep) await addOwed(stackDirOf(), startedByFixture);
    },
    { log: say, what: 'test run setting the stack up' },
  );
  say(`ready in ${((Date.now() - t0) / 1000).toFixed(1)} s${startedByFixture.length ? ` (started: ${startedByFixture.join(', ')})` : ' (all reused)'}`);
}

export async function mochaGlobalTeardown(): Promise<void> {
  await withFileLock(
    FIXTURE_LOCK,
    async () => {
      dropLease();
      if (startedByFixture.length > 0 && process.env.SLUICE_TEST_STACK_KEEP && process.env.SLUICE_TEST_STACK_KEEP !== '0') {
        say(`left running (SLUICE_TEST_STACK_KEEP): ${startedByFixture.join(', ')}; \`npm run stack:down\` stops them`);
        return;
      }
      const others = otherLeases();
      if (others.length > 0) {
        if (startedByFixture.length > 0) {
          say(`left running for ${others.length} other test run(s) still using the stack (pid ${others.join(', ')}); the last one stops it`);
        }
        return;
      }
      // The last test run out stops what test runs started (ours, or a run that finished while
      // we used it); never what a person started with \`npm run stack:up\`.
      const owed = await takeOwed();
      for (const stackDir of new Set(owed.map((o) => o.stackDir))) {
        const engines = owed.filter((o) => o.stackDir === stackDir).map((o) => o.engine);
        await down({ stackDir, engines, log: say });
      }
      const claimed = startedByFixture.filter((e) => !owed.some((o) => o.engine === e && o.stackDir === stackDirOf()));
      if (claimed.length > 0) say(`left running, claimed since by \`npm run stack:up\`: ${claimed.join(', ')}`);
      startedByFixture = [];
    },
    { log: say, what: 'test run' },
  );
}
