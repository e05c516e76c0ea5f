import { expect } from 'chai';
import { Registry } from 'prom-client';
import { MemoryEventLog } from '../adapters/memory/memory-event-log.js';
import { loadConfig, type Config } from '../config.js';
import { isSluiceError } from '../errors.js';
import type { EnrichedEvent } from './enriched-event.js';
import type { EventLog, GroupConsumer, LogRecord } from './event-log.js';
import { decodeEventRecord } from './event-record.js';
import { createIngestService, type IngestService, type IngestServiceDeps } from './ingest-service.js';
import { ConfigError } from '../config.js';
import { LIMITS } from '../../protocol/schema.js';
import { MAX_USER_AGENT_LENGTH } from './user-agent.js';
import { writeTestDatabases, type TestDatabases } from '../../test/fixtures/geo/test-databases.js';

const TOPIC = 'events';
const NOW = Date.UTC(2024, 4, 1, 12, 0, 0);
const IP = '198.51.100.23';
const HINT = 'crm-user-8c1f2e';
const CHROME = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';

/** An EventLog whose appends resolve or fail only when the test says so. */
class ControlledLog implements EventLog {
  readonly partitions = 1;
  readonly calls: Array<{ records: readonly LogRecord[]; resolve: () => void; reject: (e: Error) => void }> = [];

  append(_topic: string, records: readonly LogRecord[]): Promise<void> {
    return new Promise((resolve, reject) => this.calls.push({ records, resolve, reject }));
  }

  consume(): Promise<GroupConsumer> {
    throw new Error('not used');
  }

  async close(): Promise<void> {}
}

function ingestConfig(overrides: Partial<Config['ingest']> = {}): Config['ingest'] {
  return { ...loadConfig({ ingest: { visitorSecret: 'test-secret' } }).ingest, ...overrides };
}

function service(log: EventLog, extra: Partial<IngestServiceDeps> = {}): { svc: IngestService; registry: Registry } {
  const registry = new Registry();
  const svc = createIngestService({ log, topic: TOPIC, config: ingestConfig(), registry, now: () => NOW, ...extra });
  return { svc, registry };
}

const pageview = (extra: Record<string, unknown> = {}) => ({ type: 'pageview', site: 'site-a', url: 'https://www.shop.example/products/?utm_source=newsletter&utm_medium=email', ...extra });

function decode(value: Buffer): EnrichedEvent {
  const decoded = decodeEventRecord(value);
  if (!decoded.ok) throw new Error(`undecodable record (${decoded.reason}): ${value.toString('utf8')}`);
  return decoded.event;
}

function records(log: MemoryEventLog): EnrichedEvent[] {
  return log.readAll(TOPIC).map((r) => decode(r.value));
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

async function metric(registry: Registry, outcome: string): Promise<number> {
  const json = await registry.getSingleMetric('sluice_ingest_events_total')!.get();
  return json.values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
}

describe('ingest service', () => {
  let log: MemoryEventLog;

  beforeEach(() => {
    log = new MemoryEventLog({ partitions: 4 });
  });

  afterEach(async () => {
    await log.close();
  });

  it('appends an enriched record keyed by site, with the event time and id header', async () => {
    const { svc } = service(log);
    const ack = await svc.ingest([pageview({ id: 'e1', timestamp: NOW - 1000, title: 'Products', language: 'en-US', referrer: 'https://www.google.com/' })],
      { ip: IP, userAgent: CHROME, country: 'de' }, 'ack');
    expect(ack).to.deep.equal({ accepted: 1, duplicates: 0, rejected: [], ids: ['e1'] });

    const [raw] = log.readAll(TOPIC);
    expect(raw!.key).to.equal('site-a');
    expect(raw!.timestampMs).to.equal(NOW - 1000);
    expect(raw!.headers).to.deep.equal({ id: 'e1' });
    const e = decode(raw!.value);
    expect(e).to.deep.include({
      v: 2, id: 'e1', site: 'site-a', type: 'pageview', name: 'pageview', ts: NOW - 1000, receivedAt: NOW,
      host: 'shop.example', path: '/products', title: 'Products', referrerHost: 'google.com',
      source: 'newsletter', channel: 'email',
      browser: 'Chrome', browserVersion: '124', os: 'Mac OS', osVersion: '10.15', device: 'desktop', bot: false,
      screen: null, language: 'en-us', revenue: null, country: 'DE', region: null, city: null,
    });
    expect(e.utm).to.deep.equal({ source: 'newsletter', medium: 'email', campaign: null, term: null, content: null });
    expect(e.props).to.deep.equal({});
    expect(e.visitorId).to.match(/^[0-9a-f]{32}$/);
  });

  it('assigns an id and the received time when the client gave none', async () => {
    const { svc } = service(log);
    const ack = await svc.ingest([pageview()], {}, 'ack');
    expect(ack.ids[0]).to.match(/^[0-9a-f-]{36}$/);
    const [e] = records(log);
    expect(e!.id).to.equal(ack.ids[0]);
    expect(e!.ts).to.equal(NOW);
    expect(e!.country).to.equal(null);
  });

  it('keeps custom events with their name, props and revenue', async () => {
    const { svc } = service(log);
    await svc.ingest([{ type: 'event', name: 'purchase', site: 'site-a', url: 'https://shop.example/checkout', props: { plan: 'pro', seats: 3 }, revenue: { amount: 49.5, currency: 'EUR' } }], {}, 'ack');
    expect(records(log)[0]).to.deep.include({ type: 'event', name: 'purchase', props: { plan: 'pro', seats: 3 }, revenue: { amount: 49.5, currency: 'EUR' } });
  });

  it('rejects only the invalid events of a batch, with their index and code', async () => {
    const { svc, registry } = service(log);
    const ack = await svc.ingest([
      pageview({ id: 'ok-1' }),
      { type: 'pageview', site: 'site-a' }, // no url
      { type: 'event', site: 'site-a', url: 'https://shop.example/' }, // event without a name
      pageview({ url: '/relative' }),
      'not an object',
      pageview({ id: 'ok-2', extra: true }), // unknown property
      pageview({ id: 'ok-3' }),
    ], {}, 'ack');
    expect(ack.accepted).to.equal(2);
    expect(ack.ids).to.deep.equal(['ok-1', 'ok-3']);
    expect(ack.rejected.map((r) => [r.index, r.code])).to.deep.equal([
      [1, 'PAYLOAD_SCHEMA'], [2, 'PAYLOAD_SCHEMA'], [3, 'PAYLOAD_SCHEMA'], [4, 'PAYLOAD_SCHEMA'], [5, 'PAYLOAD_SCHEMA'],
    ]);
    expect(ack.rejected[1]!.message).to.include('/name');
    expect(ack.rejected[2]!.message).to.include('/url');
    expect(records(log).map((e) => e.id)).to.deep.equal(['ok-1', 'ok-3']);
    expect(await metric(registry, 'rejected')).to.equal(5);
    expect(await metric(registry, 'accepted')).to.equal(2);
  });

  it('rejects events for sites the caller may not write with SITE_FORBIDDEN', async () => {
    const { svc } = service(log, { authorize: (site) => site !== 'site-x' });
    const ack = await svc.ingest([pageview(), pageview({ site: 'site-x' }), pageview({ site: 'site-y' })],
      { authorize: (site) => site !== 'site-y' }, 'ack');
    expect(ack.accepted).to.equal(1);
    expect(ack.rejected.map((r) => [r.index, r.code])).to.deep.equal([[1, 'SITE_FORBIDDEN'], [2, 'SITE_FORBIDDEN']]);
  });

  it('lets explicit UTM fields win over the URL, field by field', async () => {
    const { svc } = service(log);
    await svc.ingest([pageview({
      url: 'https://shop.example/?utm_source=url-source&utm_medium=email&utm_campaign=url-campaign',
      utm_source: 'event-source', utm_campaign: 'event-campaign', utm_term: '  ',
    })], {}, 'ack');
    expect(records(log)[0]!.utm).to.deep.equal({ source: 'event-source', medium: 'email', campaign: 'event-campaign', term: null, content: null });
    expect(records(log)[0]!.source).to.equal('event-source');
  });

  it('treats a same-site referrer as direct', async () => {
    const { svc } = service(log);
    await svc.ingest([pageview({ url: 'https://shop.example/b', referrer: 'https://www.shop.example/a' })], {}, 'ack');
    expect(records(log)[0]).to.deep.include({ referrerHost: '', source: 'Direct / None', channel: 'direct' });
  });

  it('attributes each visit of one page by its own referrer and UTM fields, however often the page repeats', async () => {
    const { svc } = service(log);
    const url = 'https://shop.example/pricing';
    const visits = [
      pageview({ url, referrer: 'https://www.google.com/' }), pageview({ url }), pageview({ url, referrer: 'https://t.co/x' }),
      pageview({ url, referrer: 'https://www.google.com/', utm_medium: 'cpc' }), pageview({ url, referrer: 'https://www.google.com/' }),
      pageview({ url: `${url}?gclid=abc` }), pageview({ url }),
    ];
    await svc.ingest(visits, {}, 'ack');
    await svc.ingest(visits, {}, 'ack');
    const expected = [
      ['google.com', 'Google', 'organic_search'], ['', 'Direct / None', 'direct'], ['t.co', 'X', 'organic_social'],
      ['google.com', 'Google', 'paid_search'], ['google.com', 'Google', 'organic_search'], ['', 'Google', 'paid_search'], ['', 'Direct / None', 'direct'],
    ];
    expect(records(log).map((e) => [e.referrerHost, e.source, e.channel])).to.deep.equal([...expected, ...expected]);
  });

  it('flags bots from the user agent', async () => {
    const { svc } = service(log);
    await svc.ingest([pageview()], { userAgent: 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)' }, 'ack');
    expect(records(log)[0]!.bot).to.equal(true);
  });

  describe('visitor id', () => {
    it('takes IP and user agent from the event (server SDKs) before the connection', async () => {
      const { svc } = service(log);
      await svc.ingest([pageview()], { ip: IP, userAgent: CHROME }, 'ack');
      await svc.ingest([pageview({ ip: IP, userAgent: CHROME })], { ip: '192.0.2.1', userAgent: 'proxy/1.0' }, 'ack');
      await svc.ingest([pageview()], { ip: '192.0.2.1', userAgent: CHROME }, 'ack');
      const [a, b, c] = records(log);
      expect(b!.visitorId).to.equal(a!.visitorId);
      expect(c!.visitorId).to.not.equal(a!.visitorId);
      expect(b!.browser).to.equal('Chrome');
    });

    it('treats IPv4-mapped IPv6 addresses as the IPv4 address', async () => {
      const { svc } = service(log);
      await svc.ingest([pageview()], { ip: `::ffff:${IP}`, userAgent: CHROME }, 'ack');
      await svc.ingest([pageview()], { ip: IP, userAgent: CHROME }, 'ack');
      const [a, b] = records(log);
      expect(a!.visitorId).to.equal(b!.visitorId);
    });

    it('uses the visitor hint when given', async () => {
      const { svc } = service(log);
      await svc.ingest([pageview({ visitor: HINT })], { ip: IP, userAgent: CHROME }, 'ack');
      await svc.ingest([pageview({ visitor: HINT })], { ip: '192.0.2.1' }, 'ack');
      const [a, b] = records(log);
      expect(a!.visitorId).to.equal(b!.visitorId);
    });

    it('reads only the first MAX_USER_AGENT_LENGTH characters of a connection\'s user agent', async () => {
      // A WebSocket User-Agent header may be 16 KiB; past the first 1024 characters nothing counts.
      const { svc } = service(log);
      const long = `${CHROME} `.padEnd(MAX_USER_AGENT_LENGTH, 'x');
      await svc.ingest([pageview()], { ip: IP, userAgent: `${long}${'a'.repeat(15_000)}` }, 'ack');
      await svc.ingest([pageview()], { ip: IP, userAgent: `${long}${'b'.repeat(15_000)}` }, 'ack');
      await svc.ingest([pageview()], { ip: IP, userAgent: long }, 'ack');
      await svc.ingest([pageview()], { ip: IP, userAgent: long.slice(0, -1) }, 'ack');
      const [a, b, c, d] = records(log);
      expect(b!.visitorId).to.equal(a!.visitorId);
      expect(c!.visitorId).to.equal(a!.visitorId);
      expect(d!.visitorId, 'a character inside the bound still counts').to.not.equal(a!.visitorId);
      expect(a!.browser).to.equal('Chrome');
    });

    it('rotates with the received day', async () => {
      let now = NOW;
      const { svc } = service(log, { now: () => now });
      await svc.ingest([pageview()], { ip: IP, userAgent: CHROME }, 'ack');
      now += 86_400_000;
      await svc.ingest([pageview()], { ip: IP, userAgent: CHROME }, 'ack');
      const [a, b] = records(log);
      expect(a!.visitorId).to.not.equal(b!.visitorId);
    });
  });

  it('never writes the raw IP or the raw visitor hint to the log', async () => {
    const { svc } = service(log);
    const ipv6 = '2001:db8:85a3::8a2e:370:7334';
    await svc.ingest([pageview({ visitor: HINT }), pageview({ ip: IP }), pageview({ ip: ipv6, visitor: HINT })], { ip: IP, userAgent: CHROME }, 'ack');
    await svc.ingest([pageview()], { ip: ipv6 }, 'ack');
    const all = log.readAll(TOPIC);
    expect(all).to.have.length(4);
    for (const r of all) {
      const bytes = Buffer.concat([Buffer.from(r.key), r.value, Buffer.from(JSON.stringify(r.headers ?? {}))]);
      for (const secret of [IP, ipv6, HINT]) {
        expect(bytes.includes(secret), `record contains ${secret}`).to.equal(false);
        expect(bytes.includes(secret.toUpperCase()), `record contains ${secret}`).to.equal(false);
      }
    }
  });

  describe('deduplication', () => {
    it('appends a repeated client id once and still lists it', async () => {
      const { svc, registry } = service(log);
      const first = await svc.ingest([pageview({ id: 'a' }), pageview({ id: 'b' }), pageview({ id: 'a' })], {}, 'ack');
      expect(first).to.deep.include({ accepted: 2, duplicates: 1, ids: ['a', 'b', 'a'] });
      const retry = await svc.ingest([pageview({ id: 'a' }), pageview({ id: 'b' }), pageview({ id: 'c' })], {}, 'ack');
      expect(retry).to.deep.include({ accepted: 1, duplicates: 2, ids: ['a', 'b', 'c'] });
      expect(records(log).map((e) => e.id)).to.deep.equal(['a', 'b', 'c']);
      expect(await metric(registry, 'duplicate')).to.equal(3);
    });

    it('keys ids by site', async () => {
      const { svc } = service(log);
      await svc.ingest([pageview({ id: 'a' })], {}, 'ack');
      const ack = await svc.ingest([pageview({ id: 'a', site: 'site-b' })], {}, 'ack');
      expect(ack.accepted).to.equal(1);
    });

    it('forgets ids beyond its horizon', async () => {
      const { svc } = service(log, { config: ingestConfig({ dedupCacheSize: 2 }) });
      await svc.ingest([pageview({ id: 'a' }), pageview({ id: 'b' }), pageview({ id: 'c' })], {}, 'ack');
      expect((await svc.ingest([pageview({ id: 'c' })], {}, 'ack')).duplicates).to.equal(1);
      expect((await svc.ingest([pageview({ id: 'a' })], {}, 'ack')).accepted).to.equal(1);
    });

    it('is off at dedupCacheSize 0', async () => {
      const { svc } = service(log, { config: ingestConfig({ dedupCacheSize: 0 }) });
      const ack = await svc.ingest([pageview({ id: 'a' }), pageview({ id: 'a' })], {}, 'ack');
      expect(ack).to.deep.include({ accepted: 2, duplicates: 0 });
    });

    it('acks a duplicate only once its earlier copy is durable', async () => {
      const controlled = new ControlledLog();
      const { svc } = service(controlled);
      const first = svc.ingest([pageview({ id: 'a' })], {}, 'ack');
      let secondDone = false;
      const second = svc.ingest([pageview({ id: 'a' })], {}, 'ack').then((ack) => {
        secondDone = true;
        return ack;
      });
      await tick();
      expect(controlled.calls).to.have.length(1); // the duplicate was not appended
      expect(secondDone).to.equal(false);
      controlled.calls[0]!.resolve();
      expect(await second).to.deep.include({ accepted: 0, duplicates: 1, ids: ['a'] });
      await first;
    });

    it('lets a retry through after the append failed', async () => {
      const controlled = new ControlledLog();
      const { svc } = service(controlled);
      const first = svc.ingest([pageview({ id: 'a' })], {}, 'ack');
      const concurrentDuplicate = svc.ingest([pageview({ id: 'a' })], {}, 'ack');
      await tick();
      controlled.calls[0]!.reject(new Error('broker down'));
      for (const p of [first, concurrentDuplicate]) {
        const err: unknown = await p.then(() => undefined, (e: unknown) => e);
        expect(isSluiceError(err) && err.code).to.equal('OVERLOADED');
      }
      const retry = svc.ingest([pageview({ id: 'a' })], {}, 'ack');
      await tick();
      expect(controlled.calls).to.have.length(2);
      controlled.calls[1]!.resolve();
      expect(await retry).to.deep.include({ accepted: 1, duplicates: 0 });
    });
  });

  describe('geography', () => {
    let dbs: TestDatabases;
    const geoOf = (e: EnrichedEvent | undefined) => [e!.country, e!.region, e!.city];
    const withGeoIp = () => service(log, { config: ingestConfig({ geoDatabasePath: dbs.city }) });
    // In the test database: 81.2.69.0/24 is London, 203.0.113.0/25 San Francisco, 2001:db8:1::/48 Tokyo.
    const LONDON = '81.2.69.160';
    const TOKYO = '2001:db8:1::77';

    before(() => {
      dbs = writeTestDatabases();
    });

    after(() => {
      dbs.remove();
    });

    it('has no location without a hint or a GeoIP database', async () => {
      const { svc } = service(log);
      await svc.ingest([pageview()], { ip: LONDON }, 'ack');
      expect(geoOf(records(log)[0])).to.deep.equal([null, null, null]);
    });

    it('takes the event\'s own geo hint, normalised', async () => {
      const { svc } = service(log);
      await svc.ingest([
        pageview({ id: 'a', geo: { country: 'us', region: 'CA', city: 'San Francisco' } }),
        pageview({ id: 'b', geo: { region: 'GB-SCT' } }),
        pageview({ id: 'c', geo: { city: 'Zürich' } }),
      ], {}, 'ack');
      expect(records(log).map(geoOf)).to.deep.equal([['US', 'US-CA', 'San Francisco'], ['GB', 'GB-SCT', null], [null, null, 'Zürich']]);
    });

    it('rejects malformed hints and a region of another country, with PAYLOAD_SCHEMA naming the field', async () => {
      const { svc } = service(log);
      const ack = await svc.ingest([
        pageview({ geo: { country: 'USA' } }),
        pageview({ geo: { country: 'T1' } }),
        pageview({ geo: { city: '' } }),
        pageview({ geo: { region: 'x'.repeat(101) } }),
        pageview({ geo: { city: 'Ber\nlin' } }),
        pageview({ geo: { country: 'DE', region: 'US-CA' } }),
        pageview({ geo: { country: 'DE', lat: 52.5 } }),
        pageview({ id: 'ok', geo: { country: 'DE' } }),
      ], {}, 'ack');
      expect(ack.ids).to.deep.equal(['ok']);
      expect(ack.rejected.map((r) => [r.index, r.code, r.message.split(':')[0]])).to.deep.equal([
        [0, 'PAYLOAD_SCHEMA', '/geo/country'], [1, 'PAYLOAD_SCHEMA', '/geo/country'], [2, 'PAYLOAD_SCHEMA', '/geo/city'],
        [3, 'PAYLOAD_SCHEMA', '/geo/region'], [4, 'PAYLOAD_SCHEMA', '/geo/city'], [5, 'PAYLOAD_SCHEMA', '/geo/region'],
        [6, 'PAYLOAD_SCHEMA', '/geo/lat'],
      ]);
    });

    it('does not claim the id of an event it rejects for its hint', async () => {
      const { svc } = service(log);
      await svc.ingest([pageview({ id: 'x', geo: { country: 'DE', region: 'US-CA' } })], {}, 'ack');
      const ack = await svc.ingest([pageview({ id: 'x', geo: { country: 'DE', region: 'DE-BE' } })], {}, 'ack');
      expect(ack).to.deep.include({ accepted: 1, duplicates: 0 });
    });

    it('looks the connection\'s IP up in the GeoIP database when there is no hint', async () => {
      const { svc } = withGeoIp();
      await svc.ingest([pageview(), pageview()], { ip: LONDON }, 'ack');
      await svc.ingest([pageview()], { ip: `::ffff:${LONDON}` }, 'ack');
      await svc.ingest([pageview()], { ip: TOKYO }, 'ack');
      await svc.ingest([pageview()], { ip: '10.0.0.1' }, 'ack');
      await svc.ingest([pageview()], {}, 'ack');
      expect(records(log).map(geoOf)).to.deep.equal([
        ['GB', 'GB-ENG', 'London'], ['GB', 'GB-ENG', 'London'], ['GB', 'GB-ENG', 'London'], ['JP', 'JP-13', 'Tokyo'],
        [null, null, null], [null, null, null],
      ]);
    });

    it('looks up the IP a server SDK forwards, not the connection\'s, and ignores one that is not an address', async () => {
      const { svc } = withGeoIp();
      await svc.ingest([pageview({ ip: '203.0.113.9' }), pageview({ ip: 'not-an-ip' }), pageview()], { ip: LONDON, country: 'FR' }, 'ack');
      expect(records(log).map(geoOf)).to.deep.equal([['US', 'US-CA', 'San Francisco'], [null, null, null], ['FR', null, null]]);
    });

    it('lets the event\'s hint win over the connection\'s, and the connection\'s over the database', async () => {
      const { svc } = withGeoIp();
      await svc.ingest([
        pageview({ geo: { country: 'NL', city: 'Amsterdam' } }),
        pageview(),
        pageview({ geo: { country: 'XX' } }), // tells nothing: the next source is asked
      ], { ip: LONDON, country: 'fr', region: 'IDF', city: 'Paris' }, 'ack');
      await svc.ingest([pageview()], { ip: LONDON, country: 'ZZ' }, 'ack');
      expect(records(log).map(geoOf)).to.deep.equal([
        ['NL', null, 'Amsterdam'], ['FR', 'FR-IDF', 'Paris'], ['FR', 'FR-IDF', 'Paris'], ['GB', 'GB-ENG', 'London'],
      ]);
    });

    it('writes the location into the record as c, rg and ci, and never the address', async () => {
      const { svc } = withGeoIp();
      await svc.ingest([pageview({ ip: TOKYO })], { ip: LONDON }, 'ack');
      const [raw] = log.readAll(TOPIC);
      expect(JSON.parse(raw!.value.toString())).to.include({ c: 'JP', rg: 'JP-13', ci: 'Tokyo' });
      for (const ip of [LONDON, TOKYO, '2001:db8:1:', '81.2.69']) expect(raw!.value.includes(ip), ip).to.equal(false);
    });

    it('fails construction with a ConfigError when the database cannot be opened', () => {
      for (const path of [`${dbs.dir}/missing.mmdb`, dbs.garbage, dbs.asn]) {
        expect(() => service(log, { config: ingestConfig({ geoDatabasePath: path }) }), path).to.throw(ConfigError, /ingest\.geoDatabasePath/);
      }
    });
  });

  describe('Do-Not-Track and consent', () => {
    let dbs: TestDatabases;
    const LONDON = '81.2.69.160'; // GB-ENG, London in the test database
    const placeOf = (e: EnrichedEvent | undefined) => [e!.country, e!.region, e!.city];

    before(() => {
      dbs = writeTestDatabases();
    });

    after(() => {
      dbs.remove();
    });

    async function anonymised(registry: Registry, reason: string): Promise<number> {
      const json = await registry.getSingleMetric('sluice_ingest_anonymised_total')!.get();
      return json.values.find((v) => v.labels.reason === reason)?.value ?? 0;
    }

    it('accepts an event with dnt: true or consent: false as a pageview or event without a visitor id', async () => {
      const { svc, registry } = service(log);
      const ack = await svc.ingest([
        pageview({ id: 'dnt', dnt: true, visitor: HINT }),
        pageview({ id: 'no-consent', consent: false, visitor: HINT }),
        { type: 'event', name: 'signup', site: 'site-a', url: 'https://shop.example/join', dnt: true, props: { plan: 'pro' } },
        pageview({ id: 'consent', consent: true, visitor: HINT }),
        pageview({ id: 'dnt-false', dnt: false, visitor: HINT }),
      ], { ip: IP, userAgent: CHROME }, 'ack');
      expect(ack).to.deep.include({ accepted: 5, duplicates: 0, rejected: [] });
      const [a, b, c, d, e] = records(log);
      expect([a, b, c].map((r) => r!.visitorId)).to.deep.equal(['', '', '']);
      expect(a).to.deep.include({ type: 'pageview', name: 'pageview', host: 'shop.example', path: '/products', browser: 'Chrome', source: 'newsletter' });
      expect(c).to.deep.include({ type: 'event', name: 'signup', props: { plan: 'pro' } });
      // Neither consent: true nor dnt: false is a signal: the visitor is known as usual.
      expect(d!.visitorId).to.match(/^[0-9a-f]{32}$/);
      expect(e!.visitorId).to.equal(d!.visitorId);
      expect(await anonymised(registry, 'event_dnt')).to.equal(2);
      expect(await anonymised(registry, 'event_no_consent')).to.equal(1);
      expect(await metric(registry, 'accepted')).to.equal(5);
    });

    it('makes every event of a connection with DNT or GPC anonymous, consent: true notwithstanding', async () => {
      const { svc, registry } = service(log);
      await svc.ingest([pageview({ consent: true }), pageview({ visitor: HINT, consent: true })], { ip: IP, userAgent: CHROME, dnt: true }, 'ack');
      await svc.ingest([pageview({ visitor: HINT })], { ip: IP, userAgent: CHROME, gpc: true }, 'ack');
      // One reason per event, the connection's first.
      await svc.ingest([pageview({ dnt: true, consent: false })], { ip: IP, dnt: true, gpc: true }, 'ack');
      await svc.ingest([pageview()], { ip: IP, userAgent: CHROME, dnt: false, gpc: false }, 'ack');
      const all = records(log);
      expect(all.map((r) => r.visitorId === '')).to.deep.equal([true, true, true, true, false]);
      expect(await anonymised(registry, 'connection_dnt')).to.equal(3);
      expect(await anonymised(registry, 'connection_gpc')).to.equal(1);
      expect(await anonymised(registry, 'event_dnt')).to.equal(0);
      expect(await anonymised(registry, 'event_no_consent')).to.equal(0);
    });

    it('keeps only the country of an anonymous event, from any source', async () => {
      const { svc } = service(log, { config: ingestConfig({ geoDatabasePath: dbs.city }) });
      await svc.ingest([
        pageview({ dnt: true }), // GeoIP of the connection's address
        pageview({ dnt: true, ip: LONDON }), // GeoIP of a forwarded address
        pageview({ dnt: true, geo: { country: 'US', region: 'CA', city: 'San Francisco' } }), // the event's hint
        pageview({ dnt: true, geo: { city: 'Zürich' } }), // a hint without a country tells nothing kept
        pageview(), // not anonymous: the full location
      ], { ip: LONDON }, 'ack');
      await svc.ingest([pageview()], { ip: LONDON, country: 'fr', region: 'IDF', city: 'Paris', gpc: true }, 'ack');
      expect(records(log).map(placeOf)).to.deep.equal([
        ['GB', null, null], ['GB', null, null], ['US', null, null], [null, null, null], ['GB', 'GB-ENG', 'London'], ['FR', null, null],
      ]);
      const raw = log.readAll(TOPIC)[0]!;
      const written = JSON.parse(raw.value.toString()) as Record<string, unknown>;
      expect(written).to.include({ vi: '', c: 'GB' });
      expect(written).to.not.have.any.keys('rg', 'ci');
    });

    it('writes neither the visitor hint nor anything derived from the address for an anonymous event', async () => {
      const { svc } = service(log);
      await svc.ingest([pageview({ visitor: HINT, consent: false })], { ip: IP, userAgent: CHROME }, 'ack');
      await svc.ingest([pageview({ visitor: HINT })], { ip: IP, userAgent: CHROME }, 'ack');
      await svc.ingest([pageview()], { ip: IP, userAgent: CHROME }, 'ack');
      const [anonymous, hinted, addressed] = log.readAll(TOPIC);
      const bytes = anonymous!.value;
      for (const secret of [IP, HINT, decode(hinted!.value).visitorId, decode(addressed!.value).visitorId]) {
        expect(bytes.includes(secret), `record contains ${secret}`).to.equal(false);
      }
    });

    it('counts anonymised events only once accepted: not when rejected, duplicated or failed', async () => {
      const failing = new ControlledLog();
      const { svc, registry } = service(failing);
      queueMicrotask(() => failing.calls[0]!.reject(new Error('timeout')));
      await svc.ingest([pageview({ id: 'x', dnt: true })], {}, 'ack').catch(() => undefined);
      expect(await anonymised(registry, 'event_dnt')).to.equal(0);

      const retry = svc.ingest([pageview({ id: 'x', dnt: true }), pageview({ id: 'x', dnt: true }), pageview({ dnt: 'yes' })], {}, 'ack');
      await tick();
      failing.calls[1]!.resolve();
      const ack = await retry;
      expect(ack).to.deep.include({ accepted: 1, duplicates: 1 });
      expect(ack.rejected.map((r) => [r.index, r.code, r.message.split(':')[0]])).to.deep.equal([[2, 'PAYLOAD_SCHEMA', '/dnt']]);
      expect(await anonymised(registry, 'event_dnt')).to.equal(1);
    });

    it('exports every reason from the first scrape on', async () => {
      const { registry } = service(log);
      const text = await registry.metrics();
      for (const reason of ['connection_dnt', 'connection_gpc', 'event_dnt', 'event_no_consent']) {
        expect(text).to.include(`sluice_ingest_anonymised_total{reason="${reason}"} 0`);
      }
    });
  });

  describe('custom property limits', () => {
    const event = (props: unknown) => ({ type: 'event', name: 'signup', site: 'site-a', url: 'https://shop.example/', props });
    const within: Record<string, string | number | boolean> = {};
    for (let i = 0; i < LIMITS.maxProps; i++) within[`k${i}`.padEnd(LIMITS.maxPropKeyLength, 'x')] = i % 2 ? 'v'.repeat(LIMITS.maxPropValueLength) : i;

    it('accepts an event at every limit', async () => {
      const { svc } = service(log);
      const ack = await svc.ingest([event(within), event({ 'naïve key': 'ünïcode ✓', flag: true, n: -1.5 })], {}, 'ack');
      expect(ack.rejected).to.deep.equal([]);
      expect(records(log)[0]!.props).to.deep.equal(within);
    });

    it('rejects each limit broken with PAYLOAD_SCHEMA and a message naming the limit', async () => {
      const { svc, registry } = service(log);
      const tooMany = { ...within, extra: 1 };
      const cases: Array<[unknown, RegExp]> = [
        [tooMany, new RegExp(`^/props: ${LIMITS.maxProps + 1} properties, at most ${LIMITS.maxProps} per event$`)],
        [{ ['k'.repeat(LIMITS.maxPropKeyLength + 1)]: 1 }, new RegExp(`^/props: property name "k+…" must be 1 to ${LIMITS.maxPropKeyLength} characters`)],
        [{ '': 1 }, /^\/props: property name "" must be 1 to/],
        [{ 'a\u0001b': 1 }, /^\/props: property name "a\\u0001b" must be .* without control characters$/],
        [{ plan: 'v'.repeat(LIMITS.maxPropValueLength + 1) }, new RegExp(`^/props/plan: a string value is at most ${LIMITS.maxPropValueLength} characters \\(this one has ${LIMITS.maxPropValueLength + 1}\\)$`)],
        [{ plan: 'a\u0000b' }, /^\/props\/plan: a string value must not contain NUL/],
        [{ plan: null }, /^\/props\/plan: a value is a string, a finite number or a boolean$/],
        [{ plan: { nested: 1 } }, /^\/props\/plan: a value is a string, a finite number or a boolean$/],
        [['a'], /^\/props/],
      ];
      const ack = await svc.ingest(cases.map(([props]) => event(props)), {}, 'ack');
      expect(ack.accepted).to.equal(0);
      expect(ack.rejected.map((r) => r.code)).to.deep.equal(cases.map(() => 'PAYLOAD_SCHEMA'));
      ack.rejected.forEach((r, i) => expect(r.message, String(i)).to.match(cases[i]![1]));
      expect(await metric(registry, 'rejected')).to.equal(cases.length);
    });

    it('rejects event names with control characters, which would break rollup cell keys', async () => {
      const { svc } = service(log);
      const ack = await svc.ingest([{ type: 'event', name: 'sign\u0000up', site: 'site-a', url: 'https://shop.example/' }], {}, 'ack');
      expect(ack.rejected.map((r) => [r.code, r.message.split(':')[0]])).to.deep.equal([['PAYLOAD_SCHEMA', '/name']]);
    });
  });

  describe('timestamps', () => {
    it('clamps times too far in the future to the received time and counts them', async () => {
      const { svc, registry } = service(log, { config: ingestConfig({ maxFutureSkewMs: 60_000 }) });
      await svc.ingest([
        pageview({ id: 'future', timestamp: NOW + 60_001 }),
        pageview({ id: 'skewed', timestamp: NOW + 60_000 }),
        pageview({ id: 'old', timestamp: NOW - 30 * 86_400_000 }),
      ], {}, 'ack');
      const byId = Object.fromEntries(records(log).map((e) => [e.id, e.ts]));
      expect(byId).to.deep.equal({ future: NOW, skewed: NOW + 60_000, old: NOW - 30 * 86_400_000 });
      expect(log.readAll(TOPIC).find((r) => r.headers?.id === 'future')!.timestampMs).to.equal(NOW);
      expect(await metric(registry, 'clamped')).to.equal(1);
      expect(await metric(registry, 'accepted')).to.equal(3);
    });
  });

  describe('durability and overload', () => {
    it('acks only after the append resolved', async () => {
      const controlled = new ControlledLog();
      const { svc } = service(controlled);
      let done = false;
      const p = svc.ingest([pageview({ id: 'a' }), pageview({ id: 'b' })], {}, 'ack').then((ack) => {
        done = true;
        return ack;
      });
      await tick();
      expect(controlled.calls).to.have.length(1);
      expect(controlled.calls[0]!.records).to.have.length(2);
      expect(svc.inFlightBytes).to.be.greaterThan(0);
      expect(done).to.equal(false);
      controlled.calls[0]!.resolve();
      expect((await p).accepted).to.equal(2);
      expect(svc.inFlightBytes).to.equal(0);
    });

    it('rejects with a retryable OVERLOADED when the append fails', async () => {
      const failing = new ControlledLog();
      const { svc, registry } = service(failing);
      queueMicrotask(() => failing.calls[0]!.reject(new Error('timeout')));
      const err: unknown = await svc.ingest([pageview(), pageview()], {}, 'ack').then(() => undefined, (e: unknown) => e);
      expect(isSluiceError(err)).to.equal(true);
      if (!isSluiceError(err)) return;
      expect(err.code).to.equal('OVERLOADED');
      expect(err.retryable).to.equal(true);
      expect((err.cause as Error).message).to.equal('timeout');
      expect(svc.inFlightBytes).to.equal(0);
      expect(await metric(registry, 'failed')).to.equal(2);
      expect(await metric(registry, 'accepted')).to.equal(0);
    });

    it('refuses ack calls while saturated, lets fire-and-forget through, and signals drain', async () => {
      const controlled = new ControlledLog();
      const { svc, registry } = service(controlled, { config: ingestConfig({ maxInFlightBytes: 1024 }) });
      const big = Array.from({ length: 10 }, (_, i) => pageview({ id: `big-${i}` }));
      const first = svc.ingest(big, {}, 'ack');
      expect(svc.saturated).to.equal(true); // accounted synchronously, before the append resolves
      expect(svc.inFlightBytes).to.be.greaterThan(1024);

      let drains = 0;
      const unsubscribe = svc.onDrain(() => drains++);

      const refused: unknown = await svc.ingest([pageview({ id: 'x' })], {}, 'ack').then(() => undefined, (e: unknown) => e);
      expect(isSluiceError(refused) && refused.code).to.equal('OVERLOADED');
      expect(isSluiceError(refused) && refused.retryable).to.equal(true);
      expect(controlled.calls).to.have.length(1); // nothing of the refused call was appended
      expect(await metric(registry, 'overloaded')).to.equal(1);

      const fnf = svc.ingest([pageview({ id: 'y' })], {}, 'fnf');
      expect(controlled.calls).to.have.length(2);

      controlled.calls[0]!.resolve();
      await first;
      expect(svc.saturated).to.equal(false);
      expect(drains).to.equal(1);

      controlled.calls[1]!.resolve();
      await fnf;
      expect(drains).to.equal(1); // only on the way down through the bound

      // the refused event can now be sent again (it was never remembered as seen)
      const retry = svc.ingest([pageview({ id: 'x' })], {}, 'ack');
      controlled.calls[2]!.resolve();
      expect((await retry).accepted).to.equal(1);

      unsubscribe();
      const again = svc.ingest(big.map((e, i) => ({ ...e, id: `big2-${i}` })), {}, 'fnf');
      controlled.calls[3]!.resolve();
      await again;
      expect(drains).to.equal(1);
    });

    it('exports its metrics on the injected registry', async () => {
      const { svc, registry } = service(log);
      await svc.ingest([pageview()], {}, 'ack');
      const text = await registry.metrics();
      expect(text).to.include('sluice_ingest_events_total{outcome="accepted"} 1');
      expect(text).to.include('sluice_ingest_in_flight_bytes 0');
      expect(text).to.include('sluice_ingest_append_seconds_count 1');
    });
  });
});
