/**
 * The traffic tables' hand-written expectations against what ingest actually stores: every
 * generated event goes through the real ingest service (validation, URL normalisation, UTM,
 * referrer attribution, user agent, geo hint, visitor id) and its record's dimension values
 * (event-dimensions.ts) must equal the expected ones. A failure here names the table entry that
 * disagrees, which an end-to-end mismatch could not.
 */
import { expect } from 'chai';
import { Registry } from 'prom-client';
import { Event } from '../../protocol/schema.js';
import { eventDimensions } from '../../src/aggregate/event-dimensions.js';
import { loadConfig } from '../../src/config.js';
import type { EnrichedEvent } from '../../src/ingest/enriched-event.js';
import type { EventLog, LogRecord } from '../../src/ingest/event-log.js';
import { decodeEventRecord } from '../../src/ingest/event-record.js';
import { createIngestService } from '../../src/ingest/ingest-service.js';
import { generateTraffic, type SentEvent } from './traffic-generator.js';

/** Whether the wire schema has the geo hint yet (being added alongside this suite). */
export const SCHEMA_HAS_GEO = 'geo' in (Event as unknown as { properties: Record<string, unknown> }).properties;

/** An event log that keeps what is appended: ingest's output, nothing consumed. */
function capturingLog(): EventLog & { readonly records: LogRecord[] } {
  const records: LogRecord[] = [];
  return {
    partitions: 1,
    records,
    append(_topic, batch) {
      records.push(...batch.map((r) => ({ ...r, value: Buffer.from(r.value) })));
      return Promise.resolve();
    },
    consume() {
      return Promise.reject(new Error('not consumed in this test'));
    },
    close() {
      return Promise.resolve();
    },
  };
}

describe('accuracy suite: the traffic tables agree with ingest', function () {
  this.timeout(60_000);

  it('stores every generated event with the dimension values, bot flag, props, revenue and visitor the reference expects', async () => {
    const nowMs = Date.now();
    const traffic = generateTraffic({ seed: 11, nowMs, rules: { allowedLatenessMs: 300_000, maxOutOfOrderMs: 1_000 } });
    // One of each duplicate is enough, and the first 12 000 events cover every table entry many times over.
    const sample: SentEvent[] = traffic.sent.filter((s) => s.intent !== 'duplicate').slice(0, 12_000);
    const log = capturingLog();
    const config = loadConfig({ ingest: { visitorSecret: 'accuracy-tables-secret', dedupCacheSize: 0, maxFutureSkewMs: 5 * 60_000 } });
    const ingest = createIngestService({ log, topic: 'events', config: config.ingest, registry: new Registry(), now: () => nowMs });
    const wires = sample.map((s) => {
      if (SCHEMA_HAS_GEO || s.wire.geo === undefined) return s.wire;
      const { geo: _geo, ...rest } = s.wire;
      return rest;
    });
    for (let i = 0; i < wires.length; i += 500) {
      const ack = await ingest.ingest(wires.slice(i, i + 500), {}, 'ack');
      expect(ack.rejected, JSON.stringify(ack.rejected.slice(0, 3))).to.deep.equal([]);
    }
    expect(log.records).to.have.length(sample.length);

    const stored = new Map<string, EnrichedEvent>();
    for (const r of log.records) {
      const d = decodeEventRecord(r.value);
      if (!d.ok) throw new Error(`undecodable record: ${d.reason}`);
      stored.set(`${d.event.site}\u0000${d.event.id}`, d.event);
    }
    const mismatches: string[] = [];
    const visitorOf = new Map<string, string>();
    const identityOf = new Map<string, string>();
    for (const s of sample) {
      const e = s.expected;
      const got = stored.get(`${e.site}\u0000${e.id}`);
      if (!got) {
        mismatches.push(`${e.id}: not stored`);
        continue;
      }
      const where = `${s.wire.url} ua=${s.wire.userAgent ?? '-'} ref=${s.wire.referrer ?? '-'} geo=${JSON.stringify(s.wire.geo ?? null)}`;
      if (got.bot !== e.bot) mismatches.push(`bot: expected ${e.bot}, stored ${got.bot} for ${where}`);
      if (got.ts !== e.ts || got.type !== e.type || got.name !== e.name) mismatches.push(`ts/type/name differ for ${where}`);
      if (e.bot) continue;
      const dims = eventDimensions(got);
      for (const [k, v] of Object.entries(e.dims)) {
        if (!SCHEMA_HAS_GEO && (k === 'country' || k === 'region' || k === 'city')) continue;
        const actual = dims[k as keyof typeof dims];
        if (actual !== v) mismatches.push(`${k}: expected ${JSON.stringify(v)}, stored ${JSON.stringify(actual)} for ${where}`);
      }
      if (JSON.stringify(got.props) !== JSON.stringify(e.props)) mismatches.push(`props: expected ${JSON.stringify(e.props)}, stored ${JSON.stringify(got.props)}`);
      if (JSON.stringify(got.revenue) !== JSON.stringify(e.revenue)) mismatches.push(`revenue: expected ${JSON.stringify(e.revenue)}, stored ${JSON.stringify(got.revenue)}`);
      if (e.identity === '') {
        if (got.visitorId !== '') mismatches.push(`anonymous event (dnt ${String(s.wire.dnt)}, consent ${String(s.wire.consent)}) got a visitor id`);
        continue;
      }
      if (got.visitorId === '') mismatches.push(`event (dnt ${String(s.wire.dnt)}, consent ${String(s.wire.consent)}) made anonymous`);
      // Same identity ⇔ same visitor id (one salt day: everything was received at nowMs).
      const key = `${e.site}\u0000${e.identity}`;
      const known = visitorOf.get(key);
      if (known !== undefined && known !== got.visitorId) mismatches.push(`identity ${JSON.stringify(e.identity)} got two visitor ids`);
      visitorOf.set(key, got.visitorId);
      const other = identityOf.get(`${e.site}\u0000${got.visitorId}`);
      if (other !== undefined && other !== e.identity) mismatches.push(`identities ${JSON.stringify(other)} and ${JSON.stringify(e.identity)} share a visitor id`);
      identityOf.set(`${e.site}\u0000${got.visitorId}`, e.identity);
    }
    const distinct = [...new Set(mismatches)];
    expect(distinct.slice(0, 25), `${distinct.length} distinct mismatches`).to.deep.equal([]);
  });
});
