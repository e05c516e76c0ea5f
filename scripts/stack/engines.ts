/**
 * What each engine of the local stack is: where it lives under .stack/, which port says it is
 * running, how its configuration is generated, its command line, and how to ask it whether it
 * is ready. The orchestration (fetch, start, reuse, stop) is in stack.ts.
 *
 * Versions are pinned in scripts/stack/<engine>/pom.xml; settings are pinned here.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import cassandra from 'cassandra-driver';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';

export type EngineName = 'redis' | 'kafka' | 'cassandra';
/** Start order; stop runs in reverse. */
export const ENGINE_NAMES: readonly EngineName[] = ['redis', 'kafka', 'cassandra'];

export const HOST = '127.0.0.1';
function portFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${name}=${raw} is not a port number`);
  return port;
}

/**
 * The engines' ports. The defaults are the engines' own; SLUICE_STACK_*_PORT move a whole
 * second stack aside (with SLUICE_STACK_DIR and SLUICE_STACK_RUN_DIR), e.g. to try changes to
 * the stack without disturbing the one in use.
 */
export const PORTS = Object.freeze({
  redis: portFromEnv('SLUICE_STACK_REDIS_PORT', 6379),
  kafka: portFromEnv('SLUICE_STACK_KAFKA_PORT', 9092),
  kafkaController: portFromEnv('SLUICE_STACK_KAFKA_CONTROLLER_PORT', 9093),
  cassandra: portFromEnv('SLUICE_STACK_CASSANDRA_PORT', 9042),
  cassandraStorage: portFromEnv('SLUICE_STACK_CASSANDRA_STORAGE_PORT', 7000),
});

export interface StackEndpoints {
  kafkaBrokers: string[];
  cassandraContactPoints: string[];
  cassandraDataCenter: string;
  redisUrl: string;
}

export const DEFAULT_ENDPOINTS: Readonly<StackEndpoints> = Object.freeze({
  kafkaBrokers: [`${HOST}:${PORTS.kafka}`],
  cassandraContactPoints: [`${HOST}:${PORTS.cassandra}`],
  cassandraDataCenter: 'datacenter1',
  redisUrl: `redis://${HOST}:${PORTS.redis}`,
});

/** Readiness bounds for an engine this stack starts (first boot included). */
export const READY_DEADLINE_MS: Record<EngineName, number> = { redis: 15_000, kafka: 90_000, cassandra: 120_000 };
/** Grace between SIGTERM and SIGKILL. Cassandra drains on SIGTERM; Kafka shuts down cleanly. */
export const STOP_GRACE_MS: Record<EngineName, number> = { redis: 10_000, kafka: 30_000, cassandra: 45_000 };

export interface EnginePaths {
  /** .stack/<engine>: the process's working directory (how its pid is recognised as ours). */
  dir: string;
  lib: string;
  data: string;
  conf: string;
  logs: string;
  log: string;
  fetchLog: string;
  pidFile: string;
  pom: string;
}

export function enginePaths(stackDir: string, scriptsDir: string, engine: EngineName): EnginePaths {
  const dir = join(stackDir, engine);
  const logs = join(dir, 'logs');
  return {
    dir,
    lib: join(dir, 'lib'),
    data: join(dir, 'data'),
    conf: join(dir, 'conf'),
    logs,
    log: join(logs, `${engine}.log`),
    fetchLog: join(logs, 'fetch.log'),
    pidFile: join(dir, `${engine}.pid`),
    pom: join(scriptsDir, engine, 'pom.xml'),
  };
}

export interface LaunchSpec {
  command: string;
  args: string[];
}

// ---------------------------------------------------------------------------------------------
// Probes: each resolves to a short description of what answered, or throws.

/** A TCP connect: cheap, and tells "nothing listens" apart from "something listens". */
export function portOpen(port: number, host = HOST, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ port, host });
    const done = (open: boolean) => {
      socket.removeAllListeners();
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export async function probeRedis(url: string, timeoutMs = 3_000): Promise<string> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  client.on('error', () => {});
  try {
    await withTimeout(client.connect(), timeoutMs, 'Redis');
    const pong = await withTimeout(client.ping(), timeoutMs, 'Redis PING');
    if (pong !== 'PONG') throw new Error(`Redis answered PING with ${pong}`);
    const info = await withTimeout(client.info('server'), timeoutMs, 'Redis INFO');
    const version = /redis_version:(\S+)/.exec(info)?.[1];
    return version ? `redis ${version}` : 'redis';
  } finally {
    client.disconnect();
  }
}

export async function probeKafka(brokers: string[], timeoutMs = 5_000): Promise<string> {
  const kafka = new Kafka({
    clientId: 'sluice-stack-probe',
    brokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: Math.min(timeoutMs, 3_000),
    requestTimeout: timeoutMs,
    retry: { retries: 0 },
  });
  const admin = kafka.admin({ retry: { retries: 0 } });
  try {
    await withTimeout(admin.connect(), timeoutMs, 'Kafka');
    const topics = await withTimeout(admin.listTopics(), timeoutMs, 'Kafka listTopics');
    return `kafka (${topics.length} topic${topics.length === 1 ? '' : 's'})`;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

export async function probeCassandra(contactPoints: string[], localDataCenter: string, timeoutMs = 5_000): Promise<string> {
  const client = new cassandra.Client({
    contactPoints,
    localDataCenter,
    socketOptions: { connectTimeout: timeoutMs, readTimeout: timeoutMs },
    policies: { reconnection: new cassandra.policies.reconnection.ConstantReconnectionPolicy(60_000) },
  });
  try {
    await withTimeout(client.connect(), timeoutMs + 1_000, 'Cassandra');
    const rs = await withTimeout(client.execute('SELECT release_version, data_center FROM system.local'), timeoutMs, 'Cassandra query');
    const row = rs.first();
    return `cassandra ${String(row?.get('release_version') ?? '?')} (dc ${String(row?.get('data_center') ?? '?')})`;
  } finally {
    await client.shutdown().catch(() => {});
  }
}

export function probeEngine(engine: EngineName, endpoints: StackEndpoints, timeoutMs?: number): Promise<string> {
  switch (engine) {
    case 'redis':
      return probeRedis(endpoints.redisUrl, timeoutMs);
    case 'kafka':
      return probeKafka(endpoints.kafkaBrokers, timeoutMs);
    case 'cassandra':
      return probeCassandra(endpoints.cassandraContactPoints, endpoints.cassandraDataCenter, timeoutMs);
  }
}

export function enginePort(engine: EngineName): number {
  return engine === 'redis' ? PORTS.redis : engine === 'kafka' ? PORTS.kafka : PORTS.cassandra;
}

export function endpointLabel(engine: EngineName): string {
  return `${HOST}:${enginePort(engine)}`;
}

// ---------------------------------------------------------------------------------------------
// Versions, read from the fetched jars (what actually runs), else from the pom (what would).

export function fetchedVersion(paths: EnginePaths, engine: EngineName): string | undefined {
  if (engine === 'redis' || !existsSync(paths.lib)) return undefined;
  const pattern = engine === 'kafka' ? /^kafka_2\.13-(.+)\.jar$/ : /^cassandra-all-(.+)\.jar$/;
  for (const name of readdirSync(paths.lib)) {
    const m = pattern.exec(name);
    if (m) return m[1];
  }
  return undefined;
}

export function pinnedVersion(paths: EnginePaths, engine: EngineName): string | undefined {
  if (engine === 'redis' || !existsSync(paths.pom)) return undefined;
  const m = new RegExp(`<${engine}\\.version>([^<]+)</`).exec(readFileSync(paths.pom, 'utf8'));
  return m?.[1];
}

// ---------------------------------------------------------------------------------------------
// Kafka: KRaft, one combined broker + controller.

/** A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (what Uuid.toString gives). */
function newKafkaClusterId(): string {
  return Buffer.from(randomUUID().replace(/-/g, ''), 'hex').toString('base64url');
}

export function kafkaClusterId(paths: EnginePaths): string {
  const file = join(paths.dir, 'cluster.id');
  if (existsSync(file)) {
    const id = readFileSync(file, 'utf8').trim();
    if (id) return id;
  }
  const id = newKafkaClusterId();
  writeFileSync(file, `${id}\n`);
  return id;
}

/** True once `StorageTool format` has written meta.properties into the log dir. */
export function kafkaFormatted(paths: EnginePaths): boolean {
  return existsSync(join(paths.data, 'meta.properties'));
}

export function writeKafkaConfig(paths: EnginePaths): { serverProperties: string; log4j: string } {
  mkdirSync(paths.conf, { recursive: true });
  mkdirSync(paths.data, { recursive: true });
  const serverProperties = join(paths.conf, 'server.properties');
  const log4j = join(paths.conf, 'log4j2.properties');
  // In a .properties file a comment must stand on its own line.
  writeFileSync(
    serverProperties,
    [
      '# Generated by scripts/stack/engines.ts at every start: edit that file, not this one.',
      '# One node in KRaft combined mode: broker and controller in one process.',
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.voters=1@${HOST}:${PORTS.kafkaController}`,
      `listeners=PLAINTEXT://${HOST}:${PORTS.kafka},CONTROLLER://${HOST}:${PORTS.kafkaController}`,
      `advertised.listeners=PLAINTEXT://${HOST}:${PORTS.kafka}`,
      'inter.broker.listener.name=PLAINTEXT',
      'controller.listener.names=CONTROLLER',
      'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
      `log.dirs=${paths.data}`,
      '# The application creates its topics with the partition count it needs (keys by site).',
      '# A topic nobody created is a bug to surface, not a 1-partition topic to invent.',
      'auto.create.topics.enable=false',
      'delete.topic.enable=true',
      'num.partitions=1',
      'default.replication.factor=1',
      'min.insync.replicas=1',
      '# Internal topics on one broker: replication factor 1 (with the default 3, consumer',
      '# groups hang with "group coordinator not available").',
      'offsets.topic.replication.factor=1',
      'offsets.topic.num.partitions=8',
      'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1',
      'transaction.state.log.num.partitions=4',
      'share.coordinator.state.topic.replication.factor=1',
      'share.coordinator.state.topic.min.isr=1',
      '# Tests join groups often: no 3 s wait before the first rebalance.',
      'group.initial.rebalance.delay.ms=0',
      '# Sized for a 2-core machine and a 512 MB heap.',
      'num.network.threads=2',
      'num.io.threads=4',
      'num.recovery.threads.per.data.dir=1',
      'log.cleaner.threads=1',
      'log.cleaner.dedupe.buffer.size=16777216',
      '',
    ].join('\n'),
  );
  writeFileSync(
    log4j,
    [
      '# Generated by scripts/stack/engines.ts. Everything goes to stdout, which is the log file.',
      'status = warn',
      'name = sluice-stack-kafka',
      'appender.stdout.type = Console',
      'appender.stdout.name = STDOUT',
      'appender.stdout.layout.type = PatternLayout',
      'appender.stdout.layout.pattern = [%d] %p %m (%c)%n',
      'rootLogger.level = INFO',
      'rootLogger.appenderRef.stdout.ref = STDOUT',
      'logger.statechange.name = state.change.logger',
      'logger.statechange.level = WARN',
      'logger.request.name = kafka.request.logger',
      'logger.request.level = WARN',
      '# Lines per partition on every topic created or deleted (tests make many): warnings only.',
      ...[
        ['partition', 'kafka.cluster.Partition'],
        ['storage', 'org.apache.kafka.storage.internals.log'],
        ['replication', 'org.apache.kafka.controller.ReplicationControlManager'],
        ['partitionchange', 'org.apache.kafka.controller.PartitionChangeBuilder'],
        ['fetcher', 'kafka.server.ReplicaFetcherManager'],
      ].flatMap(([id, name]) => [`logger.${id}.name = ${name}`, `logger.${id}.level = WARN`]),
      '',
    ].join('\n'),
  );
  return { serverProperties, log4j };
}

function kafkaJvmArgs(paths: EnginePaths, stackDir: string, log4j: string): string[] {
  return [
    '-Xms256m',
    '-Xmx512m',
    '-XX:+UseG1GC',
    '-XX:MaxGCPauseMillis=20',
    '-XX:InitiatingHeapOccupancyPercent=35',
    '-XX:+ExplicitGCInvokesConcurrent',
    '-XX:+ExitOnOutOfMemoryError',
    '-Djava.awt.headless=true',
    `-Dlog4j2.configurationFile=${pathToFileURL(log4j).href}`,
    `-Dkafka.logs.dir=${paths.logs}`,
    '-Dsluice.stack.engine=kafka',
    `-Dsluice.stack.home=${stackDir}`,
    '-cp',
    join(paths.lib, '*'),
  ];
}

export function kafkaFormatCommand(java: string, paths: EnginePaths, stackDir: string): LaunchSpec {
  const { serverProperties, log4j } = writeKafkaConfig(paths);
  return {
    command: java,
    args: [...kafkaJvmArgs(paths, stackDir, log4j), 'kafka.tools.StorageTool', 'format', '-t', kafkaClusterId(paths), '-c', serverProperties, '-g'],
  };
}

export function kafkaLaunch(java: string, paths: EnginePaths, stackDir: string): LaunchSpec {
  const { serverProperties, log4j } = writeKafkaConfig(paths);
  return { command: java, args: [...kafkaJvmArgs(paths, stackDir, log4j), 'kafka.Kafka', serverProperties] };
}

// ---------------------------------------------------------------------------------------------
// Cassandra: one node, test-friendly boot.

/** JDK 17 module flags, as in Cassandra 5.0's conf/jvm17-server.options. */
const CASSANDRA_JDK17_FLAGS = [
  ...[
    'java.base/jdk.internal.misc',
    'java.management.rmi/com.sun.jmx.remote.internal.rmi',
    'java.rmi/sun.rmi.registry',
    'java.rmi/sun.rmi.server',
    'java.sql/java.sql',
    'java.base/java.lang.ref',
    'jdk.unsupported/sun.misc',
    'jdk.compiler/com.sun.tools.javac.file',
    'jdk.attach/sun.tools.attach',
  ].map((m) => `--add-exports=${m}=ALL-UNNAMED`),
  ...[
    'java.base/java.lang.module',
    'java.base/jdk.internal.loader',
    'java.base/jdk.internal.ref',
    'java.base/jdk.internal.reflect',
    'java.base/jdk.internal.math',
    'java.base/jdk.internal.module',
    'java.base/jdk.internal.util.jar',
    'jdk.management/com.sun.management.internal',
    'java.base/sun.nio.ch',
    'java.base/java.io',
    'java.base/java.lang.reflect',
    'jdk.compiler/com.sun.tools.javac',
    'java.base/java.lang',
    'java.base/java.util',
    'java.base/java.nio',
  ].map((m) => `--add-opens=${m}=ALL-UNNAMED`),
];

export function writeCassandraConfig(paths: EnginePaths): { yaml: string; logback: string } {
  mkdirSync(paths.conf, { recursive: true });
  const dirs = {
    data: join(paths.data, 'data'),
    commitlog: join(paths.data, 'commitlog'),
    savedCaches: join(paths.data, 'saved_caches'),
    hints: join(paths.data, 'hints'),
    cdcRaw: join(paths.data, 'cdc_raw'),
  };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  mkdirSync(join(paths.conf, 'triggers'), { recursive: true });
  const yaml = join(paths.conf, 'cassandra.yaml');
  const logback = join(paths.conf, 'logback.xml');
  const q = (s: string) => JSON.stringify(s); // a JSON string is a valid YAML scalar
  writeFileSync(
    yaml,
    [
      '# Generated by scripts/stack/engines.ts at every start: edit that file, not this one.',
      '# One local node for development and tests. SimpleSnitch puts it in datacenter1.',
      'cluster_name: "Sluice local"',
      'num_tokens: 1',
      'initial_token: 0',
      'partitioner: org.apache.cassandra.dht.Murmur3Partitioner',
      'endpoint_snitch: SimpleSnitch',
      'seed_provider:',
      '  - class_name: org.apache.cassandra.locator.SimpleSeedProvider',
      '    parameters:',
      `      - seeds: "${HOST}:${PORTS.cassandraStorage}"`,
      `listen_address: ${HOST}`,
      `rpc_address: ${HOST}`,
      `storage_port: ${PORTS.cassandraStorage}`,
      'start_native_transport: true',
      `native_transport_port: ${PORTS.cassandra}`,
      `data_file_directories: [${q(dirs.data)}]`,
      `commitlog_directory: ${q(dirs.commitlog)}`,
      `saved_caches_directory: ${q(dirs.savedCaches)}`,
      `hints_directory: ${q(dirs.hints)}`,
      `cdc_raw_directory: ${q(dirs.cdcRaw)}`,
      'commitlog_sync: periodic',
      'commitlog_sync_period: 10000ms',
      '# A fresh single node: no older nodes to stay compatible with.',
      'storage_compatibility_mode: NONE',
      '# Tests TRUNCATE and DROP often: no snapshot each time.',
      'auto_snapshot: false',
      'snapshot_before_compaction: false',
      'incremental_backups: false',
      'hinted_handoff_enabled: false',
      'disk_failure_policy: stop',
      'commit_failure_policy: stop',
      'concurrent_reads: 8',
      'concurrent_writes: 16',
      'concurrent_counter_writes: 8',
      '',
    ].join('\n'),
  );
  writeFileSync(
    logback,
    [
      '<!-- Generated by scripts/stack/engines.ts. Everything goes to stdout, which is the log file. -->',
      '<configuration scan="false">',
      '  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">',
      '    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>',
      '  </appender>',
      '  <root level="INFO"><appender-ref ref="STDOUT"/></root>',
      '  <!-- Lines per table flush, compaction and sstable (tests make many tables): warnings only. -->',
      ...[
        'org.apache.cassandra.db.memtable.Flushing',
        'org.apache.cassandra.db.ColumnFamilyStore',
        'org.apache.cassandra.db.compaction',
        'org.apache.cassandra.io.sstable',
        'org.apache.cassandra.service.paxos.uncommitted',
      ].map((name) => `  <logger name="${name}" level="WARN"/>`),
      '</configuration>',
      '',
    ].join('\n'),
  );
  return { yaml, logback };
}

/** The Cassandra heap in MB: SLUICE_STACK_CASSANDRA_HEAP_MB, default 1536. */
export function cassandraHeapMb(): number {
  const raw = process.env.SLUICE_STACK_CASSANDRA_HEAP_MB;
  if (raw === undefined || raw === '') return 1536;
  const mb = Number(raw);
  if (!Number.isInteger(mb) || mb < 256) throw new Error(`SLUICE_STACK_CASSANDRA_HEAP_MB must be an integer of at least 256, got "${raw}"`);
  return mb;
}

export function cassandraLaunch(java: string, paths: EnginePaths, stackDir: string): LaunchSpec {
  const { yaml, logback } = writeCassandraConfig(paths);
  const jamm = existsSync(paths.lib) ? readdirSync(paths.lib).find((n) => /^jamm-.*\.jar$/.test(n)) : undefined;
  if (!jamm) throw new Error(`no jamm jar in ${paths.lib}: the Cassandra fetch is incomplete (delete the folder and run up again)`);
  return {
    command: java,
    args: [
      `-javaagent:${join(paths.lib, jamm)}`,
      // 768 MB (ENGINES.md's test size) ran out under bench:pipeline's sustained archive and
      // rollup writes (full GCs, once an OutOfMemoryError); this machine has memory to spare.
      `-Xms${cassandraHeapMb()}m`,
      `-Xmx${cassandraHeapMb()}m`,
      '-XX:+UseG1GC',
      '-XX:+ParallelRefProcEnabled',
      '-XX:+PerfDisableSharedMem',
      '-XX:+ExitOnOutOfMemoryError',
      '-Djdk.attach.allowAttachSelf=true',
      ...CASSANDRA_JDK17_FLAGS,
      '-Dio.netty.tryReflectionSetAccessible=true',
      '-Djava.net.preferIPv4Stack=true',
      '-Djava.awt.headless=true',
      `-Dcassandra.config=${pathToFileURL(yaml).href}`,
      `-Dcassandra.storagedir=${paths.data}`,
      '-Dcassandra-foreground=yes',
      `-Dcassandra.logdir=${paths.logs}`,
      `-Dcassandra.triggers_dir=${join(paths.conf, 'triggers')}`,
      `-Dlogback.configurationFile=${pathToFileURL(logback).href}`,
      // Fast boots for a one-node development and test stack.
      '-Dcassandra.skip_wait_for_gossip_to_settle=0',
      '-Dcassandra.ring_delay_ms=5000',
      '-Dcassandra.superuser_setup_delay_ms=1000',
      // No fsync of the system keyspaces: a test stack, never production.
      '-Dcassandra.unsafesystem=true',
      '-Dsluice.stack.engine=cassandra',
      `-Dsluice.stack.home=${stackDir}`,
      '-cp',
      join(paths.lib, '*'),
      'org.apache.cassandra.service.CassandraDaemon',
    ],
  };
}

// ---------------------------------------------------------------------------------------------
// Redis: only started when none listens (these machines run one as a service).

export function redisLaunch(redisServer: string, paths: EnginePaths): LaunchSpec {
  mkdirSync(paths.data, { recursive: true });
  return {
    command: redisServer,
    args: ['--bind', HOST, '-::1', '--port', String(PORTS.redis), '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', paths.data],
  };
}
