import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import { CompressionTypes, KafkaJSConnectionError, KafkaJSNumberOfRetriesExceeded, KafkaJSProtocolError } from 'kafkajs';
import type { LogRecord } from '../../ingest/event-log.js';
import { stackEndpoints } from '../../../test/support/stack-fixture.js';
import { KafkaEventLog } from './kafka-event-log.js';
import { KafkaEventLogError, toKafkaEventLogError } from './kafka-event-log-error.js';
import { requireKafka, testKafkaOptions } from './kafka-test-kit.js';
import { fromErrorData, packRecords, ProducerThread, toErrorData, type ProducerWorkerSettings } from './producer-thread.js';

const T0 = Date.UTC(2024, 0, 1);

function valueOf(bytes: ArrayBuffer, ends: readonly number[], start: number, i: number): string {
  const from = i === 0 ? start : ends[i - 1]!;
  return Buffer.from(bytes, from, ends[i]! - from).toString();
}

describe('ProducerThread: packing and errors', () => {
  it('packs each partition\'s values contiguously into one fresh buffer, views into larger buffers included', () => {
    // Small Buffer.from values come from the shared pool (byteOffset != 0); a view of a bigger buffer, as ingest makes.
    const pooled = Buffer.from('pooled');
    expect(pooled.byteOffset + pooled.length).to.be.lessThan(pooled.buffer.byteLength);
    const big = Buffer.from('....view....');
    const view = big.subarray(4, 8);
    const byPartition = new Map<number, LogRecord[]>([
      [3, [
        { key: 'a', value: pooled, timestampMs: T0 + 0.7 },
        { key: 'a', value: Buffer.alloc(0), timestampMs: T0 + 1, headers: { id: 'x' } },
      ]],
      [0, [{ key: 'b', value: view, timestampMs: T0 + 2 }]],
    ]);
    const { bytes, batches } = packRecords(byPartition);
    expect(bytes.byteLength).to.equal(pooled.length + view.length);
    expect(batches.map((b) => b.partition)).to.deep.equal([3, 0]);
    const [p3, p0] = batches;
    expect(p3!.keys).to.deep.equal(['a', 'a']);
    expect(p3!.timestamps).to.deep.equal([String(T0), String(T0 + 1)]);
    expect(p3!.headers).to.deep.equal([undefined, { id: 'x' }]);
    expect([0, 1].map((i) => valueOf(bytes, p3!.ends, p3!.start, i))).to.deep.equal(['pooled', '']);
    expect(p0!.headers).to.equal(null);
    expect(valueOf(bytes, p0!.ends, p0!.start, 0)).to.equal('view');
  });

  it('refuses a timestamp that is not a number', () => {
    expect(() => packRecords(new Map([[0, [{ key: 'a', value: Buffer.from('x'), timestampMs: Number.NaN }]]]))).to.throw(RangeError);
  });

  it('keeps what toKafkaEventLogError reads across the thread boundary (retriable, type, cause chain)', () => {
    const clone = <T>(x: T): T => structuredClone(x);
    const exhausted = new KafkaJSNumberOfRetriesExceeded(new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:1'), { retryCount: 1, retryTime: 50 });
    const there = toKafkaEventLogError(exhausted, 'append', ['b:1']);
    const back = toKafkaEventLogError(fromErrorData(clone(toErrorData(exhausted))), 'append', ['b:1']);
    expect(back.retryable).to.equal(true).and.equal(there.retryable);
    expect(back.message).to.equal(there.message);

    const tooLarge = new KafkaJSProtocolError({ type: 'MESSAGE_TOO_LARGE', code: 10, retriable: false, message: 'too large' } as unknown as Error);
    const data = clone(toErrorData(tooLarge));
    expect(data).to.include({ name: 'KafkaJSProtocolError', type: 'MESSAGE_TOO_LARGE', code: 10, retriable: false });
    const rebuilt = toKafkaEventLogError(fromErrorData(data), 'append', ['b:1']);
    expect(rebuilt.retryable).to.equal(false);
    expect(rebuilt.message).to.equal(toKafkaEventLogError(tooLarge, 'append', ['b:1']).message);
  });
});

describe('ProducerThread against a real broker', function () {
  this.timeout(120_000);
  let admin: KafkaEventLog;
  let topic: string;
  let brokers: string[];

  before(async () => {
    brokers = stackEndpoints().kafkaBrokers;
    await requireKafka(brokers[0]);
    admin = await KafkaEventLog.connect(testKafkaOptions({ brokers }));
    topic = `pt-${randomUUID()}`;
    await admin.ensureTopics([topic], { partitions: 2 });
  });

  after(async () => {
    await admin?.deleteTopics([topic]).catch(() => undefined);
    await admin?.close();
  });

  function settings(): ProducerWorkerSettings {
    return {
      clientId: 'sluice-test', brokers, connectionTimeout: 3_000, requestTimeout: 30_000,
      retry: { retries: 5, initialRetryTime: 300, maxRetryTime: 5_000 }, logLevel: 0,
      ackTimeoutMs: 10_000, compression: CompressionTypes.GZIP,
    };
  }

  const append = (n: number) => packRecords(new Map([[1, Array.from({ length: n }, (_, i): LogRecord => ({
    key: 'k', value: Buffer.from(`v${i}`), timestampMs: T0 + i, headers: { id: String(i) },
  }))]]));

  it('fails the appends of a worker that dies with a retryable error, and starts a new one for the next', async () => {
    const thread = new ProducerThread(settings(), () => undefined);
    try {
      await thread.start();
      const before = (await admin.endOffsets(topic))[1]!;
      // An unknown topic keeps the append in the worker (kafkajs retries its metadata) while the worker dies.
      const held = thread.send(`pt-missing-${randomUUID()}`, append(1));
      const worker = await (thread as unknown as { starting: Promise<Worker> }).starting;
      await worker.terminate();
      const err = await held.then(() => undefined, (e: unknown) => e);
      expect(err).to.be.instanceOf(KafkaEventLogError);
      expect((err as KafkaEventLogError).retryable).to.equal(true);
      expect((err as KafkaEventLogError).message).to.contain('producer thread stopped');

      await thread.send(topic, append(3));
      expect((await admin.endOffsets(topic))[1]).to.equal(before + 3);
      expect(await (thread as unknown as { starting: Promise<Worker> }).starting).to.not.equal(worker);
    } finally {
      await thread.close();
    }
  });

  it('close waits for the appends under way, then refuses new ones', async () => {
    const thread = new ProducerThread(settings(), () => undefined);
    await thread.start();
    const before = (await admin.endOffsets(topic))[1]!;
    const sent = thread.send(topic, append(5));
    await thread.close();
    await sent;
    expect((await admin.endOffsets(topic))[1]).to.equal(before + 5);
    const err = await thread.send(topic, append(1)).then(() => undefined, (e: unknown) => e);
    expect((err as KafkaEventLogError).retryable).to.equal(false);
  });
});
