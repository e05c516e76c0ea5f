import { expect } from 'chai';
import type { KafkaMessage } from 'kafkajs';
import { fromHeaders, fromMessage, parseOffset, toMessage } from './kafka-records.js';

describe('kafka records', () => {
  it('parses offsets exactly and refuses those a number cannot hold', () => {
    expect(parseOffset('0')).to.equal(0);
    expect(parseOffset('9007199254740991')).to.equal(Number.MAX_SAFE_INTEGER);
    expect(() => parseOffset('9007199254740992')).to.throw(RangeError, '2^53');
    expect(() => parseOffset('-1')).to.throw(RangeError);
    expect(() => parseOffset('')).to.throw(RangeError);
  });

  it('sends the key, the event time as the record timestamp and the headers', () => {
    const m = toMessage({ key: 'site.example', value: Buffer.from('v'), timestampMs: 1_700_000_000_123, headers: { id: 'e1' } });
    expect(m).to.deep.equal({ key: 'site.example', value: Buffer.from('v'), timestamp: '1700000000123', headers: { id: 'e1' } });
    expect(toMessage({ key: 'k', value: Buffer.alloc(0), timestampMs: 1 })).to.not.have.property('headers');
    expect(() => toMessage({ key: 'k', value: Buffer.alloc(0), timestampMs: Number.NaN })).to.throw(RangeError);
  });

  it('reads headers as UTF-8 strings, the last of a repeated key winning', () => {
    expect(fromHeaders({ a: Buffer.from('é'), b: 'x', c: [Buffer.from('1'), Buffer.from('2')], d: undefined })).to.deep.equal({ a: 'é', b: 'x', c: '2' });
    expect(fromHeaders({})).to.equal(undefined);
    expect(fromHeaders(undefined)).to.equal(undefined);
  });

  it('turns a kafkajs message into a consumed record', () => {
    const m = { key: Buffer.from('k'), value: Buffer.from('v'), timestamp: '42', offset: '7', attributes: 0, headers: { id: Buffer.from('e') } } as unknown as KafkaMessage;
    expect(fromMessage(m, 3)).to.deep.equal({ key: 'k', value: Buffer.from('v'), timestampMs: 42, partition: 3, offset: 7, headers: { id: 'e' } });
    const tombstone = { key: null, value: null, timestamp: '1', offset: '0', attributes: 0 } as unknown as KafkaMessage;
    expect(fromMessage(tombstone, 0)).to.deep.equal({ key: '', value: Buffer.alloc(0), timestampMs: 1, partition: 0, offset: 0 });
  });
});
