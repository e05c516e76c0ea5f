/**
 * A reprocess run in a process of its own, for the test that kills it (reprocess-kill.test.ts):
 * the same runner the ops route uses, on Cassandra and Kafka, configured by REPROCESS_CHILD (JSON).
 * Its writes of the second day's rows hang (the run is then, by construction, in the middle of a
 * day), and it prints HELD on stdout when they do, so the parent can kill it right there.
 */
import { CassandraRawArchive } from '../../src/adapters/cassandra/cassandra-raw-archive.js';
import { CassandraReprocessJournal } from '../../src/adapters/cassandra/cassandra-reprocess-journal.js';
import { CassandraRollupStore } from '../../src/adapters/cassandra/cassandra-rollup-store.js';
import type { CassandraConnectOptions } from '../../src/adapters/cassandra/cassandra-client.js';
import { CassandraVersionDirectory } from '../../src/adapters/cassandra/cassandra-version-directory.js';
import { KafkaEventLog } from '../../src/adapters/kafka/kafka-event-log.js';
import { MemoryLiveBus } from '../../src/adapters/memory/memory-live-bus.js';
import type { RollupStore } from '../../src/aggregate/rollup-store.js';
import { tapCompleteness } from '../../src/ops/archive-completeness.js';
import { FIXED_LOGIC } from '../../src/ops/ops-test-kit.js';
import { ReprocessRunner } from '../../src/ops/reprocess-runner.js';

interface ChildConfig {
  readonly cassandra: CassandraConnectOptions;
  readonly brokers: string[];
  readonly topic: string;
  readonly tapGroupId: string;
  readonly watermarkScope: string;
  readonly site: string;
  readonly fromMs: number;
  readonly toMs: number;
  /** Writes of versioned rows at or after this bucket hang. */
  readonly holdFromMs: number;
}

const config = JSON.parse(process.env.REPROCESS_CHILD ?? '{}') as ChildConfig;

const store = await CassandraRollupStore.connect({ ...config.cassandra, retentionMs: null, watermarkScope: config.watermarkScope });
const archive = await CassandraRawArchive.connect({ ...config.cassandra, retentionMs: 400 * 86_400_000 });
const directory = await CassandraVersionDirectory.connect(config.cassandra);
const journal = await CassandraReprocessJournal.connect(config.cassandra);
const log = await KafkaEventLog.connect({ brokers: config.brokers, clientId: 'reprocess-child', partitions: 4, replicationFactor: 1 });

const holding: RollupStore = {
  upsert: async (rows) => {
    if (rows.some((r) => r.site.includes('@v') && r.bucketMs >= config.holdFromMs)) {
      process.stdout.write('HELD\n');
      await new Promise(() => {});
    }
    return store.upsert(rows);
  },
  read: (...a) => store.read(...a),
  setWatermark: (...a) => store.setWatermark(...a),
  watermark: () => store.watermark(),
  partitionWatermark: (...a) => store.partitionWatermark(...a),
  saveCheckpoint: (...a) => store.saveCheckpoint(...a),
  loadCheckpoint: (...a) => store.loadCheckpoint(...a),
  close: () => store.close(),
};

const runner = new ReprocessRunner({
  store: holding, archive, directory, journal, bus: new MemoryLiveBus(), logic: FIXED_LOGIC, sessionTimeoutMs: 30 * 60_000,
  maxBreakdownKeys: 200, completeness: tapCompleteness({ positions: log, topic: config.topic, tapGroupId: config.tapGroupId }),
  rawRetentionMs: 400 * 86_400_000, leaseTtlMs: 3_000, writeBatchRows: 100,
});
await runner.run({ site: config.site, fromMs: config.fromMs, toMs: config.toMs, actor: 'child' });
process.stdout.write('DONE\n');
process.exit(0);
