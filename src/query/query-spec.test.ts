import { expect } from 'chai';
import { QUERY_DIMENSIONS, QueryRequest as QueryRequestSchema, type QueryRequest } from '../../protocol/query-schema.js';
import { compileValidator } from '../../protocol/validate.js';
import { DIMENSIONS } from '../aggregate/rollup.js';
import { buildSpec, type SpecContext } from './query-spec.js';

const NOW = Date.UTC(2026, 2, 10);
const ctx: SpecContext = { settings: { timeZone: 'Asia/Kolkata', goals: [{ name: 'Buy', event: 'purchase', props: { plan: 'pro' } }, { name: 'Buy any', event: 'purchase' }, { name: 'Buy monthly', event: 'purchase', props: { period: 'month' } }] }, defaultTimeZone: 'UTC', nowMs: NOW };
const q = (extra: Partial<QueryRequest>): QueryRequest => ({ site: 's', metrics: ['visitors'], date_range: '7d', ...extra });

describe('query spec', () => {
  it('lists the rollup model\'s dimensions (prop as prop:<key>) plus goal', () => {
    expect([...QUERY_DIMENSIONS].sort()).to.deep.equal([...DIMENSIONS.filter((d) => d !== 'prop'), 'goal'].sort());
  });

  it('validates requests strictly against the schema', () => {
    const v = compileValidator(QueryRequestSchema);
    expect(v(q({ dimensions: ['prop:plan'], filters: [{ dimension: 'page', op: 'matches', value: ['/a/**'] }] })).ok).to.equal(true);
    expect(v({ ...q({}), extra: 1 }).ok).to.equal(false);
    expect(v(q({ dimensions: ['source', 'page'] })).ok).to.equal(false);
    expect(v(q({ date_range: { from: '2026-13-45T99:99', to: 0 } })).ok).to.equal(true); // shape ok; the engine rejects the date
    expect(v(q({ limit: 0 })).ok).to.equal(false);
  });

  it('uses the site zone unless the request names one', () => {
    expect(buildSpec(q({}), ctx).zone).to.equal('Asia/Kolkata');
    expect(buildSpec(q({ time_zone: 'Asia/Kathmandu' }), ctx).zone).to.equal('Asia/Kathmandu');
    expect(buildSpec(q({}), { ...ctx, settings: undefined }).zone).to.equal('UTC');
  });

  it('goes to the raw archive only when the rollups cannot answer exactly', () => {
    expect(buildSpec(q({}), ctx).needsRaw).to.equal(false);
    expect(buildSpec(q({ filters: [{ dimension: 'country', op: 'is', value: 'DE' }] }), ctx).needsRaw).to.equal(true);
    expect(buildSpec(q({ metrics: ['conversions'], filters: [{ dimension: 'goal', op: 'is', value: 'Buy' }] }), ctx).needsRaw).to.equal(false);
    expect(buildSpec(q({ metrics: ['revenue'], filters: [{ dimension: 'goal', op: 'is', value: 'Buy' }] }), ctx).needsRaw).to.equal(true);
    expect(buildSpec(q({ metrics: ['conversions'], filters: [{ dimension: 'goal', op: 'is', value: ['Buy', 'Buy monthly'] }] }), ctx).needsRaw).to.equal(true);
    expect(buildSpec(q({ metrics: ['conversions'], filters: [{ dimension: 'goal', op: 'is', value: ['Buy', 'Buy any'] }] }), ctx).needsRaw).to.equal(false);
    expect(buildSpec(q({ metrics: ['conversions'], dimensions: ['source'], filters: [{ dimension: 'goal', op: 'is', value: 'Buy any' }] }), ctx).needsRaw).to.equal(true);
  });

  it('keys every field, and binds a cursor to its query', () => {
    const a = buildSpec(q({ dimensions: ['source'], limit: 5 }), ctx);
    expect(buildSpec(q({ dimensions: ['source'], limit: 5 }), ctx).key).to.equal(a.key);
    expect(buildSpec(q({ dimensions: ['source'], limit: 5, page: 2 }), ctx).key).to.not.equal(a.key);
    expect(buildSpec(q({ dimensions: ['source'], limit: 5, page: 2 }), ctx).offset).to.equal(5);
    expect(() => buildSpec(q({ dimensions: ['source'], limit: 5, cursor: 'bm9wZQ' }), ctx)).to.throw(/cursor/);
    expect(() => buildSpec(q({ page: 2 }), ctx)).to.throw(/give a dimension/);
  });

  it('makes "realtime" a per-minute series of the last 30 minutes', () => {
    const s = buildSpec(q({ date_range: 'realtime' }), ctx);
    expect(s.interval).to.equal('minute');
    expect(s.range.toMs - s.range.fromMs).to.equal(30 * 60_000);
    expect(buildSpec(q({ date_range: 'realtime', dimensions: ['page'] }), ctx).interval).to.equal(null);
  });
});
