/**
 * Shared by the tests that run against a real Kafka broker (test/contract/kafka.test.ts,
 * test/integration/kafka-*.test.ts). Such tests FAIL, never skip, when the broker is not there:
 * a green run must mean the Kafka adapter was exercised.
 */
import { connect } from 'node:net';
import type { Logger } from '../../log.js';
import type { KafkaEventLogOptions } from './kafka-event-log.js';

/** The local stack's broker (`npm run stack:up`). */
export const TEST_KAFKA_BROKER = '127.0.0.1:9092';

/** Resolves when something accepts TCP connections at the broker address; otherwise throws a message naming it. */
export async function requireKafka(broker: string = TEST_KAFKA_BROKER, timeoutMs = 3_000): Promise<void> {
  const [host, portText] = broker.split(':');
  const port = Number(portText);
  await new Promise<void>((resolve, reject) => {
    const socket = connect({ host: host!, port });
    const fail = (why: string) => {
      socket.destroy();
      reject(new Error(`Kafka is not reachable at ${broker} (${why}). These tests need a real broker: start the local stack with \`npm run stack:up\`.`));
    };
    const timer = setTimeout(() => fail(`no answer within ${timeoutMs} ms`), timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.end();
      resolve();
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      fail(e.message);
    });
  });
}

/** Options for a test client: the local broker, one replica, short group timings so rebalances take a second, not ten. */
export function testKafkaOptions(overrides: Partial<KafkaEventLogOptions> = {}, logger?: Logger): KafkaEventLogOptions {
  const { consumer, ...rest } = overrides;
  return {
    brokers: [TEST_KAFKA_BROKER],
    clientId: 'sluice-test',
    partitions: 4,
    replicationFactor: 1,
    connectionTimeoutMs: 3_000,
    ...(logger ? { logger } : {}),
    ...rest,
    consumer: {
      // The broker refuses sessions below group.min.session.timeout.ms (6 s by default).
      sessionTimeoutMs: 10_000,
      heartbeatIntervalMs: 300,
      rebalanceTimeoutMs: 20_000,
      maxWaitTimeMs: 100,
      retryDelayMs: 50,
      ...consumer,
    },
  };
}
