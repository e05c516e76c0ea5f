import { expect } from 'chai';
import type { LiveQueryMessage, QueryRequest, QueryResponse } from '../../protocol/query-schema.js';
import { MemoryLiveBus } from '../adapters/memory/memory-live-bus.js';
import { MemoryRollupStore } from '../adapters/memory/memory-rollup-store.js';
import { HyperLogLog } from '../aggregate/hyperloglog.js';
import { mergeRollups } from '../aggregate/rollup-merge.js';
import { DIMENSION_SKETCH_PRECISION, type Rollup } from '../aggregate/rollup.js';
import { SluiceError } from '../errors.js';
import { diffResponses, openLiveQuery } from './live-query.js';
import { createQueryService } from './query-service.js';
import { rollTiers } from './query-test-kit.js';
import { waitFor } from '../../test/support/wait-for.js';

const T0 = Date.UTC(2026, 0, 10, 9, 0);
const MIN = 60_000;
const SITE = 'live.example';

/** A minute row with `pageviews` pageviews from distinct visitors, all from `source`. */
function row(minute: number, pageviews: number, source = 'Google'): Rollup {
  const all = HyperLogLog.empty();
  const cell = HyperLogLog.empty(DIMENSION_SKETCH_PRECISION);
  for (let i = 0; i < pageviews; i++) {
    all.add(`v-${source}-${minute}-${i}`);
    cell.add(`v-${source}-${minute}-${i}`);
  }
  const counts = { pageviews, events: 0, visits: pageviews, bounces: 0, durationMs: 0 };
  return {
    site: SITE, tier: 'minute', bucketMs: T0 + minute * MIN, totals: counts, visitors: all.toBytes(),
    dims: { source: { [source]: { ...counts, visitors: cell.toBytes() } } }, revenue: {}, bots: 0,
  };
}

function setup() {
  const store = new MemoryRollupStore();
  const bus = new MemoryLiveBus();
  const query = createQueryService({ store, now: () => T0 + 30 * MIN });
  const minutes = new Map<string, Rollup>();
  /** Write rows the way the aggregator does (minutes, then the tiers above), then announce them. */
  const write = async (...rows: Rollup[]) => {
    for (const r of rows) {
      const key = `${r.bucketMs}`;
      const prev = minutes.get(key);
      // Rows are absolute: a later write of a bucket holds everything it had.
      minutes.set(key, prev ? mergeRollups([prev, r], SITE, 'minute', r.bucketMs, 1_000) : r);
    }
    await store.upsert([...minutes.values(), ...rollTiers([...minutes.values()])]);
    await bus.publish({ site: SITE, buckets: rows.map((r) => r.bucketMs) });
  };
  return { store, bus, query, write };
}

function open(s: ReturnType<typeof setup>, request: QueryRequest, initial: number) {
  const messages: LiveQueryMessage[] = [];
  const errors: unknown[] = [];
  let closed = 0;
  const stream = openLiveQuery({
    request, query: s.query, bus: s.bus,
    sink: { next: (m) => messages.push(m), error: (e) => errors.push(e) },
    onClose: () => { closed++; },
  });
  stream.request(initial);
  return { stream, messages, errors, closed: () => closed };
}

const series: QueryRequest = { site: SITE, metrics: ['pageviews', 'visitors'], date_range: { from: T0, to: T0 + 10 * MIN }, interval: 'minute', time_zone: 'UTC' };

describe('live.query streams', () => {
  it('sends a snapshot, then only the points and totals that changed', async () => {
    const s = setup();
    await s.write(row(1, 2));
    const { stream, messages } = open(s, series, 10);
    await waitFor(() => messages.length === 1, { what: 'snapshot' });
    const snap = messages[0]!;
    expect(snap.type).to.equal('snapshot');
    const response = (snap as { response: QueryResponse }).response;
    expect(response.rows).to.have.length(10);
    expect(response.totals).to.deep.equal({ pageviews: 2, visitors: 2 });

    await s.write(row(3, 5));
    await waitFor(() => messages.length === 2, { what: 'update' });
    expect(messages[1]).to.deep.equal({
      type: 'update', rows: [{ t: T0 + 3 * MIN, label: '2026-01-10T09:03+00:00', metrics: { pageviews: 5, visitors: 5 } }],
      totals: { pageviews: 7, visitors: 7 }, watermark: null,
    });
    stream.cancel();
  });

  it('pushes a restatement of history the subscriber holds (a late event in an old bucket)', async () => {
    const s = setup();
    await s.write(row(1, 2), row(8, 1));
    const { stream, messages } = open(s, series, 10);
    await waitFor(() => messages.length === 1, { what: 'snapshot' });
    await s.write(row(1, 1, 'Newsletter'));
    await waitFor(() => messages.length === 2, { what: 'restatement' });
    const update = messages[1] as Extract<LiveQueryMessage, { type: 'update' }>;
    expect(update.rows.map((r) => ('t' in r ? r.t : null))).to.deep.equal([T0 + MIN]);
    expect(update.rows[0]!.metrics.pageviews).to.equal(3);
    stream.cancel();
  });

  it('ignores notices outside the range and changes that change nothing', async () => {
    const s = setup();
    const { stream, messages } = open(s, series, 10);
    await waitFor(() => messages.length === 1, { what: 'snapshot' });
    await s.write(row(20, 4));
    await s.bus.publish({ site: SITE, buckets: [T0 + 2 * MIN] });
    await s.write(row(5, 1));
    await waitFor(() => messages.length === 2, { what: 'the in-range change' });
    expect((messages[1] as Extract<LiveQueryMessage, { type: 'update' }>).totals).to.deep.equal({ pageviews: 1, visitors: 1 });
    stream.cancel();
  });

  it('honours request(n): changes meanwhile are conflated into one update with the latest values', async () => {
    const s = setup();
    const { stream, messages } = open(s, series, 1);
    await waitFor(() => messages.length === 1, { what: 'snapshot' });
    for (let i = 0; i < 5; i++) await s.write(row(i, 1));
    expect(messages).to.have.length(1);
    stream.request(1);
    await waitFor(() => messages.length === 2, { what: 'one update' });
    const update = messages[1] as Extract<LiveQueryMessage, { type: 'update' }>;
    expect(update.totals).to.deep.equal({ pageviews: 5, visitors: 5 });
    expect(update.rows).to.have.length(5);
    stream.request(1);
    await s.write(row(9, 1));
    await waitFor(() => messages.length === 3, { what: 'the next change' });
    stream.cancel();
  });

  it('breakdowns: changed rows and, when the ranking moves, the new order', async () => {
    const s = setup();
    await s.write(row(0, 3, 'Google'), row(0, 1, 'Newsletter'));
    const { stream, messages } = open(s, { site: SITE, metrics: ['visits'], dimensions: ['source'], date_range: { from: T0, to: T0 + 10 * MIN }, time_zone: 'UTC' }, 10);
    await waitFor(() => messages.length === 1, { what: 'snapshot' });
    await s.write(row(2, 5, 'Newsletter'));
    await waitFor(() => messages.length === 2, { what: 'update' });
    expect(messages[1]).to.deep.include({ rows: [{ value: 'Newsletter', metrics: { visits: 6 } }], order: ['Newsletter', 'Google'] });
    stream.cancel();
  });

  it('fails an invalid query at once, subscribing to nothing', async () => {
    const s = setup();
    const { messages, errors, closed } = open(s, { ...series, metrics: ['bounce_rate'], interval: undefined, dimensions: ['page'] }, 10);
    await waitFor(() => errors.length === 1, { what: 'error' });
    expect((errors[0] as SluiceError).code).to.equal('QUERY_INVALID');
    expect(messages).to.deep.equal([]);
    expect(closed()).to.equal(1);
  });

  it('diffResponses: a moved range is a new snapshot; no change is nothing', () => {
    const base = { site: SITE, kind: 'totals', range: { from: 0, to: MIN, from_local: '', to_local: '' }, time_zone: 'UTC', interval: null, dimension: null, rows: [], totals: { pageviews: 1 }, comparison: null, watermark: null,
      meta: { tiers: [], raw_archive_scanned: false, raw_events_scanned: 0, includes_other: false, total_rows: 0, page: 1, limit: 10, next_cursor: null, visitors_error: 0, logic_versions: [], status: 'provisional', reprocessed_days: 0 } } satisfies QueryResponse;
    expect(diffResponses(base, { ...base, watermark: 5 })).to.equal(null);
    expect(diffResponses(base, { ...base, range: { ...base.range, to: 2 * MIN } })).to.equal('snapshot');
    expect(diffResponses(base, { ...base, totals: { pageviews: 2 } })).to.deep.equal({ type: 'update', rows: [], totals: { pageviews: 2 }, watermark: null });
  });
});
