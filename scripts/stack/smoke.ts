/**
 * A round trip through each engine of a running stack, with the clients the app uses:
 * Kafka (create a topic, produce, consume it in a consumer group, delete the topic),
 * Cassandra (keyspace, table, write, read, drop) and Redis (SET, GET, DEL).
 *
 *   node --import tsx scripts/stack/smoke.ts
 *
 * Honours the same SLUICE_TEST_* endpoint overrides as the test fixture.
 */
import { randomUUID } from 'node:crypto';

import cassandra from 'cassandra-driver';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';

import { stackEndpoints } from '../../test/support/stack-fixture.js';

const run = randomUUID().slice(0, 8);
const endpoints = stackEndpoints();

async function timed(name: string, fn: () => Promise<string>): Promise<void> {
  const t0 = Date.now();
  const what = await fn();
  console.log(`[smoke] ${name.padEnd(9)} ok in ${String(Date.now() - t0).padStart(5)} ms — ${what}`);
}

async function kafkaRoundTrip(): Promise<string> {
  const kafka = new Kafka({ clientId: 'sluice-smoke', brokers: endpoints.kafkaBrokers, logLevel: logLevel.WARN });
  const topic = `smoke-${run}`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 2, replicationFactor: 1 }], waitForLeaders: true });
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, acks: -1, messages: [{ key: 'site-a', value: 'one' }, { key: 'site-b', value: 'two' }] });
  await producer.disconnect();
  const consumer = kafka.consumer({ groupId: `smoke-${run}`, sessionTimeout: 6_000, heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`consumed ${seen.length}/2 within 30 s`)), 30_000);
    consumer
      .run({
        eachMessage: async ({ message }) => {
          seen.push(String(message.value));
          if (seen.length === 2) {
            clearTimeout(timer);
            resolve();
          }
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();
  await admin.deleteTopics({ topics: [topic] });
  await admin.disconnect();
  return `produced 2, consumed ${seen.sort().join('+')} in group smoke-${run}, topic deleted`;
}

async function cassandraRoundTrip(): Promise<string> {
  const client = new cassandra.Client({ contactPoints: endpoints.cassandraContactPoints, localDataCenter: endpoints.cassandraDataCenter });
  await client.connect();
  const ks = `smoke_${run}`;
  try {
    await client.execute(`CREATE KEYSPACE ${ks} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`);
    await client.execute(`CREATE TABLE ${ks}.t (site text, bucket timestamp, views bigint, PRIMARY KEY (site, bucket))`);
    await client.execute(`INSERT INTO ${ks}.t (site, bucket, views) VALUES (?, ?, ?)`, ['site-a', new Date(0), 42], { prepare: true });
    const rs = await client.execute(`SELECT views FROM ${ks}.t WHERE site = ?`, ['site-a'], { prepare: true });
    const views = String(rs.first()?.get('views'));
    if (views !== '42') throw new Error(`read back ${views}, wrote 42`);
    const local = (await client.execute('SELECT release_version FROM system.local')).first();
    return `cassandra ${String(local?.get('release_version'))}: keyspace, table, write, read back 42`;
  } finally {
    await client.execute(`DROP KEYSPACE IF EXISTS ${ks}`).catch(() => {});
    await client.shutdown();
  }
}

async function redisRoundTrip(): Promise<string> {
  const redis = new Redis(endpoints.redisUrl, { maxRetriesPerRequest: 1 });
  try {
    const key = `sluice-smoke:${run}`;
    await redis.set(key, 'ok', 'EX', 60);
    const v = await redis.get(key);
    await redis.del(key);
    if (v !== 'ok') throw new Error(`GET returned ${v}`);
    return 'SET, GET, DEL';
  } finally {
    redis.disconnect();
  }
}

try {
  await timed('redis', redisRoundTrip);
  await timed('kafka', kafkaRoundTrip);
  await timed('cassandra', cassandraRoundTrip);
  process.exit(0);
} catch (e) {
  console.error(`[smoke] FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
}
