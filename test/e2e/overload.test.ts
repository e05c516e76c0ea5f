/**
 * Overload: when the event log is slow, memory does not grow without bound. Fire-and-forget
 * connections stop being read (TCP backpressure reaches the source), acknowledged batches get
 * a retryable OVERLOADED with nothing of them accepted, and once the log catches up every
 * event that was taken is appended — nothing accepted is lost.
 */
import { expect } from 'chai';
import type { Event, IngestAck } from '../../protocol/schema.js';
import { SluiceClientError } from '../../src/client/sluice-client.js';
import type { EventLog, LogRecord } from '../../src/ingest/event-log.js';
import { startHarness, type Harness } from '../support/harness.js';
import { waitFor } from '../support/wait-for.js';

/** An event log whose appends to the events topic wait until the gate opens. */
class GatedLog implements EventLog {
  private open = false;
  private readonly waiting: Array<() => void> = [];
  appended = 0;
  constructor(private readonly inner: EventLog, private readonly topic: string) {}
  get partitions() { return this.inner.partitions; }
  async append(topic: string, records: readonly LogRecord[]): Promise<void> {
    if (topic === this.topic && !this.open) await new Promise<void>((r) => this.waiting.push(r));
    await this.inner.append(topic, records);
    if (topic === this.topic) this.appended += records.length;
  }
  release(): void {
    this.open = true;
    for (const w of this.waiting.splice(0)) w();
  }
  consume(...args: Parameters<EventLog['consume']>) { return this.inner.consume(...args); }
  close() { return this.inner.close(); }
}

describe('overload end to end', function () {
  this.timeout(60_000);
  let h: Harness;
  let gated: GatedLog | undefined;
  afterEach(async () => {
    gated?.release();
    await h.stop();
  });

  it('pauses fire-and-forget readers, rejects acknowledged batches retryably, and loses nothing taken', async () => {
    h = await startHarness({ ingest: { maxInFlightBytes: 4096 } }, {
      wrapEventLog: (log) => (gated = new GatedLog(log, 'sluice.events')),
    });
    const source = await h.client('tcp');
    const other = await h.client('tcp');
    const site = 'overload.example';
    const event = (i: number): Event => ({ id: `o-${i}`, type: 'pageview', site, url: `https://${site}/p${i % 5}`, timestamp: Date.now() });

    // Fire-and-forget until the gateway stops reading this connection.
    let sent = 0;
    for (; sent < 200; sent++) source.sendEvents([event(sent)]);
    await waitFor(async () => (await h.metric('sluice_gateway_read_pauses_total')) >= 1, { what: 'a read pause' });
    const inFlight = await h.metric('sluice_ingest_in_flight_bytes');
    // Bounded: the budget plus at most what was already read from the socket, not all 200 events.
    expect(h.app.ingest!.saturated).to.equal(true);
    expect(inFlight).to.be.greaterThan(4096);

    // An acknowledged batch on another connection is refused, retryably, with nothing accepted.
    const refused = await other.sendBatch([event(10_000)]).then(() => undefined, (e: unknown) => e);
    expect(refused).to.be.instanceOf(SluiceClientError);
    expect((refused as SluiceClientError).code).to.equal('OVERLOADED');
    expect((refused as SluiceClientError).retryable).to.equal(true);

    // The log catches up: reading resumes and every fire-and-forget event is appended once.
    gated!.release();
    await waitFor(() => gated!.appended === sent, { what: `all ${sent} fire-and-forget events appended`, deadlineMs: 30_000 });
    const retry: IngestAck = await other.sendBatch([event(10_000)]);
    expect(retry.accepted).to.equal(1);
    await waitFor(() => gated!.appended === sent + 1, { what: 'the retried batch appended' });
  });
});
