/**
 * Start `src/main.ts` as a child process in distributed mode on the local stack, with names
 * (keyspace, topics, Redis prefix, consumer group) unique to one test run, and wait for its
 * "Sluice started" line. For end-to-end tests that need real processes and real engines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { stackEndpoints } from './stack-fixture.js';
import { waitFor } from './wait-for.js';

export interface SluiceProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** Every line the process printed (stdout and stderr). */
  readonly lines: string[];
  /** The parsed "Sluice started" log line: ports under tcp, ws, http. */
  readonly started: Record<string, unknown>;
  readonly tcpUrl: string;
  alive(): boolean;
}

/** The environment of a distributed process whose resources are named after `run`. */
export function distributedEnv(run: string, roles: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const s = stackEndpoints();
  return {
    ...process.env,
    SLUICE_MODE: 'distributed',
    SLUICE_ROLES: roles,
    SLUICE_LOG_LEVEL: 'info',
    SLUICE_GATEWAY_TCP_PORT: '0',
    SLUICE_GATEWAY_WS_PORT: '0',
    SLUICE_GATEWAY_HTTP_PORT: '0',
    SLUICE_KAFKA_BROKERS: s.kafkaBrokers.join(' '),
    SLUICE_KAFKA_SESSION_TIMEOUT_MS: '6000',
    SLUICE_CASSANDRA_CONTACT_POINTS: s.cassandraContactPoints.join(' '),
    SLUICE_CASSANDRA_LOCAL_DATA_CENTER: s.cassandraDataCenter,
    SLUICE_CASSANDRA_KEYSPACE: `sluice_t_${run}`,
    SLUICE_REDIS_URL: s.redisUrl,
    SLUICE_REDIS_KEY_PREFIX: `sluice-t-${run}:`,
    SLUICE_EVENT_LOG_PARTITIONS: '2',
    SLUICE_EVENT_LOG_EVENTS_TOPIC: `t-${run}.events`,
    SLUICE_EVENT_LOG_LATE_TOPIC: `t-${run}.late`,
    SLUICE_EVENT_LOG_DEAD_LETTER_TOPIC: `t-${run}.dead-letter`,
    SLUICE_AGGREGATE_GROUP_ID: `t-${run}-aggregate`,
    SLUICE_AGGREGATE_FLUSH_INTERVAL_MS: '200',
    SLUICE_AGGREGATE_MAX_OUT_OF_ORDER_MS: '2000',
    ...extra,
  };
}

export async function startSluiceProcess(name: string, env: NodeJS.ProcessEnv): Promise<SluiceProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let buffered = '';
  const collect = (chunk: Buffer) => {
    buffered += chunk.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    lines.push(...parts);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const alive = () => child.exitCode === null && child.signalCode === null;
  try {
    const started = await waitFor(() => {
      if (!alive()) throw new Error(`${name} exited with ${child.exitCode ?? child.signalCode}:\n${lines.slice(-20).join('\n')}`);
      return lines.map((l) => { try { return JSON.parse(l) as Record<string, unknown>; } catch { return undefined; } })
        .find((l) => typeof l?.msg === 'string' && l.msg.startsWith('Sluice started'));
    }, { what: `${name} to start`, deadlineMs: 90_000 });
    return { name, child, lines, started, tcpUrl: `tcp://127.0.0.1:${started.tcp as number}`, alive };
  } catch (e) {
    if (alive()) child.kill('SIGKILL');
    throw e;
  }
}
