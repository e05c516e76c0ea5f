/**
 * No raw IP and no raw client visitor id is stored anywhere (issue 6, privacy). A distributed
 * process on the real engines takes events that carry distinctive IPs (v4 and v6) and SDK
 * visitor ids; once they are aggregated and archived, every store the run used is read back
 * whole — every Kafka record (key, value, headers) of its topics, every row of every table of
 * its Cassandra keyspace, every Redis key and value under its prefix — and the process's own
 * log lines, and none may contain them.
 */
import { expect } from 'chai';
import cassandra from 'cassandra-driver';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import type { Event } from '../../protocol/schema.js';
import { SluiceClient } from '../../src/client/sluice-client.js';
import { stackEndpoints } from '../support/stack-fixture.js';
import { distributedEnv, startSluiceProcess, type SluiceProcess } from '../support/sluice-process.js';
import { waitFor } from '../support/wait-for.js';

const KEY = 'privacy-scan-key-0001';
const SECRETS = ['198.51.100.77', '2001:db8::beef:1234', '2001:0db8:0000:0000:0000:0000:beef:1234', 'secret-visitor-9f3a77'];

function leaks(haystack: string | Buffer, where: string, found: string[]): void {
  for (const s of SECRETS) {
    const hit = typeof haystack === 'string' ? haystack.includes(s) : haystack.includes(Buffer.from(s, 'utf8'));
    if (hit) found.push(`${s} in ${where}`);
  }
}

describe('privacy: no raw IP or client visitor id in any store', function () {
  this.timeout(240_000);
  const run = randomUUID().slice(0, 8);
  let proc: SluiceProcess | undefined;

  after(async () => {
    if (proc?.alive()) {
      const exit = once(proc.child, 'exit');
      proc.child.kill('SIGTERM');
      await exit;
    }
  });

  it('keeps IPs and SDK visitor ids out of Kafka, Cassandra, Redis and the logs', async () => {
    proc = await startSluiceProcess('all-roles', distributedEnv(run, 'gateway aggregate archive', { SLUICE_GATEWAY_API_KEYS: KEY }));
    const client = await SluiceClient.connect({ url: proc.tcpUrl, apiKey: KEY });
    const site = `privacy-${run}.example`;
    const now = Date.now();
    const events: Event[] = Array.from({ length: 60 }, (_, i) => ({
      id: `p-${run}-${i}`, type: 'pageview', site, url: `https://${site}/page/${i % 5}`, timestamp: now - i * 1000,
      ...(i % 3 === 0 ? { visitor: SECRETS[3]! } : { ip: i % 3 === 1 ? SECRETS[0]! : SECRETS[1]!, userAgent: 'Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0' }),
    }));
    const ack = await client.sendBatch(events);
    expect(ack.accepted).to.equal(events.length);
    client.close();

    const s = stackEndpoints();
    const ks = `sluice_t_${run}`;
    const cql = new cassandra.Client({ contactPoints: s.cassandraContactPoints, localDataCenter: s.cassandraDataCenter });
    await cql.connect();
    try {
      // Archived and aggregated: every event is in the raw archive, and some rollup exists.
      await waitFor(async () => {
        const rs = await cql.execute(`SELECT COUNT(*) AS n FROM ${ks}.raw_events`);
        return Number(rs.first().get('n')) === events.length;
      }, { what: 'every event archived', deadlineMs: 120_000 });

      const found: string[] = [];
      const tables = await cql.execute('SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?', [ks]);
      expect(tables.rows.length).to.be.greaterThan(2);
      for (const t of tables.rows) {
        const table = String(t.get('table_name'));
        const rows: cassandra.types.Row[] = [];
        await new Promise<void>((resolve, reject) => {
          cql.eachRow(`SELECT * FROM ${ks}.${table}`, [], { fetchSize: 500, autoPage: true }, (_n, row: cassandra.types.Row) => rows.push(row),
            (err?: Error) => (err ? reject(err) : resolve()));
        });
        for (const row of rows) {
          for (const col of row.keys()) {
            const v: unknown = row.get(col);
            if (v === null || v === undefined) continue;
            leaks(Buffer.isBuffer(v) ? v : JSON.stringify(v) ?? String(v), `cassandra ${table}.${col}`, found);
          }
        }
      }

      const kafka = new Kafka({ brokers: s.kafkaBrokers, clientId: `privacy-${run}`, logLevel: logLevel.NOTHING });
      const admin = kafka.admin();
      await admin.connect();
      const topics = (await admin.listTopics()).filter((t) => t.startsWith(`t-${run}.`));
      expect(topics).to.include(`t-${run}.events`);
      let records = 0;
      for (const topic of topics) {
        const ends = await admin.fetchTopicOffsets(topic);
        const total = ends.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
        if (total === 0) continue;
        const consumer = kafka.consumer({ groupId: `privacy-scan-${run}-${topic}` });
        await consumer.connect();
        await consumer.subscribe({ topic, fromBeginning: true });
        let seen = 0;
        await consumer.run({
          eachMessage: async ({ message }) => {
            seen++;
            if (message.key) leaks(message.key, `kafka ${topic} key`, found);
            if (message.value) leaks(message.value, `kafka ${topic} value`, found);
            for (const [h, v] of Object.entries(message.headers ?? {})) if (v) leaks(Buffer.isBuffer(v) ? v : String(v), `kafka ${topic} header ${h}`, found);
          },
        });
        await waitFor(() => seen >= total, { what: `every record of ${topic}`, deadlineMs: 60_000 });
        records += seen;
        await consumer.disconnect();
      }
      await admin.disconnect();
      expect(records).to.be.at.least(events.length);

      const redis = new Redis(s.redisUrl);
      try {
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `sluice-t-${run}:*`, 'COUNT', '500');
          cursor = next;
          for (const k of keys) {
            leaks(k, 'redis key', found);
            const type = await redis.type(k);
            const dump = type === 'string' ? await redis.getBuffer(k)
              : type === 'hash' ? JSON.stringify(await redis.hgetall(k))
                : type === 'zset' ? JSON.stringify(await redis.zrange(k, '0', '-1'))
                  : type === 'set' ? JSON.stringify(await redis.smembers(k))
                    : type === 'list' ? JSON.stringify(await redis.lrange(k, '0', '-1')) : '';
            if (dump) leaks(dump as string | Buffer, `redis ${type} ${k}`, found);
          }
        } while (cursor !== '0');
      } finally {
        redis.disconnect();
      }

      leaks(proc.lines.join('\n'), 'process log', found);
      expect(found, found.join('\n')).to.deep.equal([]);
    } finally {
      await cql.shutdown();
    }
  });
});
