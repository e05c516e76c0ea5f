/**
 * The worker thread of ProducerThread (producer-thread.ts explains why and what crosses): one
 * kafkajs client and producer, connected at start; per append, one produce call per partition,
 * and one answer once every call has settled.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Kafka, Partitioners, type Message } from 'kafkajs';
import { toErrorData, type FromWorker, type PartitionBatch, type ProducerWorkerSettings, type ToWorker, type WorkerLogEntry } from './producer-thread.js';

const port = parentPort;
if (!port) throw new Error('producer-worker.ts runs as a worker thread of ProducerThread');
const settings = workerData as ProducerWorkerSettings;
const post = (m: FromWorker) => port.postMessage(m);

const kafka = new Kafka({
  clientId: settings.clientId,
  brokers: [...settings.brokers],
  connectionTimeout: settings.connectionTimeout,
  requestTimeout: settings.requestTimeout,
  retry: settings.retry,
  logLevel: settings.logLevel,
  // kafkajs's lines go to the owning thread's logger (kafka-log-creator.ts).
  logCreator: () => ({ namespace, level, label, log }) => {
    const entry: WorkerLogEntry = { namespace, level, label, log };
    try {
      post({ type: 'log', entry });
    } catch {
      // A field that cannot be cloned: the message alone.
      post({ type: 'log', entry: { namespace, level, label, log: { timestamp: log.timestamp, message: log.message } } });
    }
  },
});
const producer = kafka.producer({
  // Messages arrive with their partition set (the owning thread partitions); named to keep kafkajs quiet.
  createPartitioner: Partitioners.DefaultPartitioner,
  allowAutoTopicCreation: false,
  idempotent: false,
  retry: settings.retry,
  ...(settings.maxInFlightRequests !== undefined ? { maxInFlightRequests: settings.maxInFlightRequests } : {}),
});

function messagesOf(bytes: ArrayBuffer, batch: PartitionBatch): Message[] {
  const messages = new Array<Message>(batch.ends.length);
  let start = batch.start;
  for (let i = 0; i < batch.ends.length; i++) {
    const end = batch.ends[i]!;
    const message: Message = { key: batch.keys[i]!, value: Buffer.from(bytes, start, end - start), timestamp: batch.timestamps[i]!, partition: batch.partition };
    const headers = batch.headers?.[i];
    if (headers) message.headers = headers;
    messages[i] = message;
    start = end;
  }
  return messages;
}

async function send(m: Extract<ToWorker, { type: 'send' }>): Promise<void> {
  let error: unknown;
  try {
    const perPartition = m.batches.map((batch) => messagesOf(m.bytes, batch));
    const outcomes = await Promise.allSettled(perPartition.map((messages) => producer.send({
      topic: m.topic, messages, acks: -1, timeout: settings.ackTimeoutMs, compression: settings.compression,
    })));
    error = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected')?.reason;
  } catch (e) {
    error = e;
  }
  post(error === undefined ? { type: 'sent', id: m.id } : { type: 'sent', id: m.id, error: toErrorData(error) });
}

port.on('message', (m: ToWorker) => {
  if (m.type === 'send') void send(m);
  else void producer.disconnect().catch(() => undefined).then(() => post({ type: 'closed' }));
});

producer.connect().then(
  () => post({ type: 'connected' }),
  (e: unknown) => post({ type: 'connect-failed', error: toErrorData(e) }),
);
