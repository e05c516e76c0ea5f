import { expect } from 'chai';
import { KafkaJSConnectionError, KafkaJSNonRetriableError, KafkaJSNumberOfRetriesExceeded, KafkaJSProtocolError } from 'kafkajs';
import { KafkaEventLogError, isRetryableKafkaError, toKafkaEventLogError } from './kafka-event-log-error.js';

describe('KafkaEventLogError', () => {
  it('counts exhausted retries of a transient failure as retryable, judging by the cause', () => {
    const refused = new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:1');
    const exhausted = new KafkaJSNumberOfRetriesExceeded(refused, { retryCount: 1, retryTime: 50 });
    expect(exhausted.retriable).to.equal(false);
    expect(isRetryableKafkaError(exhausted)).to.equal(true);
    const e = toKafkaEventLogError(exhausted, 'appending 3 records to t', ['127.0.0.1:1']);
    expect(e).to.be.instanceOf(KafkaEventLogError);
    expect(e.retryable).to.equal(true);
    expect(e.message).to.contain('appending 3 records to t failed').and.contain('127.0.0.1:1').and.contain('ECONNREFUSED');
    expect(e.cause).to.equal(exhausted);
  });

  it('does not retry what cannot succeed (a record too large, a closed client)', () => {
    // As kafkajs builds it from the broker's error code (protocol/error.js).
    const tooLarge = new KafkaJSProtocolError({ type: 'MESSAGE_TOO_LARGE', code: 10, retriable: false, message: 'The request included a message larger than the max message size the server will accept' } as unknown as Error);
    expect(toKafkaEventLogError(tooLarge, 'append', ['b:9092']).retryable).to.equal(false);
    expect(toKafkaEventLogError(tooLarge, 'append', ['b:9092']).message).to.contain('MESSAGE_TOO_LARGE');
    expect(isRetryableKafkaError(new KafkaJSNonRetriableError('The producer is disconnecting'))).to.equal(false);
  });

  it('keeps the retry hint when adding context to its own error', () => {
    const inner = new KafkaEventLogError('connecting to Kafka failed', true);
    const outer = toKafkaEventLogError(inner, 'appending 1 records to t', ['b:9092']);
    expect(outer.retryable).to.equal(true);
    expect(outer.message).to.equal('appending 1 records to t failed: connecting to Kafka failed');
  });
});
