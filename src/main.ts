#!/usr/bin/env node
/**
 * The `sluice` command: starts the product (embedded default), optionally with demo traffic.
 * Reads the environment and an optional JSON config file once, here, and nowhere else.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startApp } from './app.js';
import { ADMIN_HELP, isAdminCommand, runAdminCommand } from './cli/admin-cli.js';
import { OPS_HELP, isOpsCommand, runOpsCommand } from './cli/ops-cli.js';
import { ConfigError, configKeys, loadConfig } from './config.js';
import { startDemo } from './demo/run-demo.js';
import { createLogger } from './log.js';

const HELP = `Usage: sluice [--demo] [--config file.json] [--help]
       sluice <admin command> (see below)

Starts Sluice in one process on in-memory seams (the embedded default).
  --demo          drive realistic demo traffic and print a live stream of it
  --config FILE   JSON object of configuration overrides (environment wins over the file)

Configuration keys (environment variable, default):
`;

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const io = { env: process.env, out: (t: string) => process.stdout.write(t), err: (t: string) => process.stderr.write(t) };
  if (isAdminCommand(argv)) process.exit(await runAdminCommand(argv, io));
  if (isOpsCommand(argv)) process.exit(await runOpsCommand(argv, io));
  const { values } = parseArgs({
    options: { demo: { type: 'boolean' }, config: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help) {
    const lines = configKeys().map((k) => `  ${k.key.padEnd(34)} ${k.env.padEnd(44)} ${JSON.stringify(k.default)}`);
    process.stdout.write(HELP + lines.join('\n') + '\n\n' + ADMIN_HELP + '\n' + OPS_HELP);
    return;
  }
  let overrides: Record<string, unknown> = {};
  if (values.config) overrides = JSON.parse(readFileSync(values.config, 'utf8')) as Record<string, unknown>;
  if (values.demo) overrides = { ...overrides, demo: { ...(overrides.demo as object | undefined), enabled: true } };
  const config = loadConfig(overrides, process.env);
  const logger = createLogger(config.logLevel);

  const app = await startApp(config, logger);
  const { tcp, ws, http } = app.ports;
  const host = config.gateway.host;
  const where = config.mode === 'embedded'
    ? 'all seams in memory: data is lost on restart'
    : `Kafka ${config.kafka.brokers.join(',')}, Cassandra ${config.cassandra.contactPoints.join(',')}/${config.cassandra.keyspace}, Redis ${config.redis.url.replace(/\/\/[^@]*@/, '//***@')}`;
  const listening = [
    ...(tcp !== undefined ? [`RSocket TCP ${host}:${tcp}`, `RSocket WebSocket ws://${host}:${ws}`] : []),
    `HTTP http://${host}:${http}/metrics`,
  ];
  if (app.bootstrapAdminKey) {
    // The one time this secret is shown: the store keeps only its digest.
    logger.warn(`First start: created a deployment admin key (shown once, it cannot be read back; keep it as a secret): ${app.bootstrapAdminKey}` +
      " — use it with the admin commands: sluice org create --name NAME --key KEY (or set SLUICE_ADMIN_KEY); see sluice --help");
  }
  logger.info({ mode: config.mode, roles: config.roles, tcp, ws, http, host },
    `Sluice started in ${config.mode} mode, roles ${config.roles.join('+')} (${where}) — ${listening.join(', ')}`);

  let stopDemo: (() => Promise<void>) | undefined;
  if (config.demo.enabled && app.ports.tcp !== undefined && app.ports.ws !== undefined) {
    // The demo is a client like any other: the bootstrap key, a static admin key, or a short-lived key of its own.
    const staticAdmin = config.gateway.apiKeys.find((k) => !k.includes(':'));
    const apiKey = app.bootstrapAdminKey ?? staticAdmin ?? (await app.accounts!.createKey({
      scope: { kind: 'admin', orgId: null }, orgId: null, label: 'demo traffic', expiresAt: Date.now() + 86_400_000,
    })).secret;
    stopDemo = await startDemo({ config, ports: { tcp: app.ports.tcp, ws: app.ports.ws, http: app.ports.http }, apiKey, logger: logger.child({ stage: 'demo' }) });
  }

  let shuttingDown = false;
  const shutdown = (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    logger.info({ signal }, 'shutting down');
    const hardStop = setTimeout(() => {
      logger.error('shutdown took more than 15 s; exiting');
      process.exit(1);
    }, 15_000);
    hardStop.unref();
    (async () => {
      await stopDemo?.();
      await app.stop();
      logger.info('stopped');
      process.exit(0);
    })().catch((e: unknown) => {
      logger.error({ err: e }, 'shutdown failed');
      process.exit(1);
    });
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((e: unknown) => {
  if (e instanceof ConfigError) {
    process.stderr.write(`sluice: ${e.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`sluice: failed to start: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
