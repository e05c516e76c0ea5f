import { expect } from 'chai';
import { StreamOutbox } from './stream-outbox.js';

function sink() {
  const got: unknown[] = [];
  const ends: string[] = [];
  return { got, ends, sink: { next: (m: unknown) => got.push(m), error: (e: unknown) => ends.push(`error:${String(e)}`), complete: () => ends.push('complete') } };
}

describe('StreamOutbox', () => {
  it('sends one message per credit, conflating progress to the newest', () => {
    const s = sink();
    const out = new StreamOutbox(s.sink);
    out.progress(1);
    out.progress(2);
    expect(s.got).to.deep.equal([]);
    out.request(1);
    expect(s.got).to.deep.equal([2]);
    out.progress(3);
    out.progress(4);
    out.request(5);
    expect(s.got).to.deep.equal([2, 4]);
  });

  it('queues data in order before progress, and holds the producer back while the queue is long', async () => {
    const s = sink();
    const out = new StreamOutbox(s.sink);
    let resolved = 0;
    for (let i = 0; i < 6; i++) void out.send(`d${i}`).then(() => resolved++);
    out.progress('p');
    await Promise.resolve();
    expect(resolved).to.equal(3);
    out.request(4);
    await Promise.resolve();
    expect(s.got).to.deep.equal(['d0', 'd1', 'd2', 'd3']);
    expect(resolved).to.equal(6);
    out.request(10);
    expect(s.got).to.deep.equal(['d0', 'd1', 'd2', 'd3', 'd4', 'd5', 'p']);
  });

  it('finishes with its last message when credit allows, dropping a pending progress', () => {
    const s = sink();
    const out = new StreamOutbox(s.sink);
    out.progress('p');
    out.finish('done');
    expect(s.ends).to.deep.equal([]);
    out.request(1);
    expect(s.got).to.deep.equal(['done']);
    expect(s.ends).to.deep.equal(['complete']);
    out.progress('late');
    out.request(1);
    expect(s.got).to.deep.equal(['done']);
  });

  it('fails at once without credit, aborts its producer, and a cancel stops everything', () => {
    const s = sink();
    const out = new StreamOutbox(s.sink);
    out.fail('boom');
    expect(s.ends).to.deep.equal(['error:boom']);
    expect(out.signal.aborted).to.equal(true);
    const t = sink();
    const other = new StreamOutbox(t.sink);
    other.progress(1);
    other.cancel();
    other.request(5);
    expect(t.got).to.deep.equal([]);
    expect(other.signal.aborted).to.equal(true);
  });
});
