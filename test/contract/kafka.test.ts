/**
 * The EventLog contract against a real Kafka broker: 127.0.0.1:9092, the local stack the mocha
 * fixture brings up (or SLUICE_TEST_KAFKA_BROKERS).
 * Each test gets a fresh topic (created with ensureTopics) and fresh group ids. Without a
 * broker these tests fail with a message naming the address; they never skip.
 */
import { KafkaEventLog } from '../../src/adapters/kafka/kafka-event-log.js';
import { requireKafka, testKafkaOptions } from '../../src/adapters/kafka/kafka-test-kit.js';
import { stackEndpoints } from '../support/stack-fixture.js';
import { eventLogContract } from './event-log.contract.js';

eventLogContract('kafka', async () => {
  const brokers = stackEndpoints().kafkaBrokers;
  await requireKafka(brokers[0]);
  const log = await KafkaEventLog.connect(testKafkaOptions({ brokers }));
  const created: string[] = [];
  return {
    log,
    createTopic: (name: string) => {
      created.push(name);
      return log.ensureTopics([name]);
    },
    close: async () => {
      await log.deleteTopics(created);
      await log.close();
    },
  };
});
