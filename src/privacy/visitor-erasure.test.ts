import { expect } from 'chai';
import { rawEvent } from '../../test/contract/raw-archive.contract.js';
import { MemoryRawArchive } from '../adapters/memory/memory-raw-archive.js';
import { createVisitorIdHasher } from '../ingest/visitor-id.js';
import { createVisitorErasure } from './visitor-erasure.js';

describe('visitor erasure', () => {
  const DAY = 86_400_000;
  const secret = 'test-secret-of-enough-length';
  const hash = createVisitorIdHasher(secret);
  const t0 = Math.floor(Date.now() / DAY) * DAY - 3 * DAY;

  it('erases a visitor named by SDK id or by IP and user agent, on every day of the range, and no one else', async () => {
    const archive = new MemoryRawArchive({ retentionMs: null });
    const events = [];
    for (let d = 0; d < 3; d++) {
      const at = t0 + d * DAY + 3_600_000;
      events.push(rawEvent('s1', `sdk-${d}`, at, { receivedAt: at, visitorId: hash('s1', 'user-42', '', '', at) }));
      events.push(rawEvent('s1', `ip-${d}`, at + 1, { receivedAt: at + 1, visitorId: hash('s1', undefined, '203.0.113.9', 'UA/1', at + 1) }));
      events.push(rawEvent('s1', `other-${d}`, at + 2, { receivedAt: at + 2, visitorId: hash('s1', 'user-43', '', '', at + 2) }));
      events.push(rawEvent('s2', `s2-${d}`, at + 3, { receivedAt: at + 3, visitorId: hash('s2', 'user-42', '', '', at + 3) }));
    }
    await archive.archive(events);
    const erase = createVisitorErasure(archive, secret);
    expect(await erase({ site: 's1', identity: { visitor: 'user-42' }, fromMs: t0, toMs: t0 + 3 * DAY })).to.deep.include({ erased: 3 });
    // Spelled as an IPv4-mapped IPv6 address: ingest hashed the canonical IPv4 form.
    expect(await erase({ site: 's1', identity: { ip: '::FFFF:203.0.113.9', userAgent: 'UA/1' }, fromMs: t0, toMs: t0 + 3 * DAY })).to.deep.include({ erased: 3 });
    const left: string[] = [];
    for await (const e of archive.read('s1', t0, t0 + 3 * DAY)) left.push(e.id);
    expect(left).to.deep.equal(['other-0', 'other-1', 'other-2']);
    let s2 = 0;
    for await (const _ of archive.read('s2', t0, t0 + 3 * DAY)) s2++;
    expect(s2).to.equal(3);
  });

  it('refuses without a configured secret rather than erasing nothing silently', async () => {
    const erase = createVisitorErasure(new MemoryRawArchive(), '');
    const err = await erase({ site: 's', identity: { visitor: 'v' }, fromMs: 0, toMs: 1 }).catch((e: unknown) => e);
    expect(err).to.have.property('code', 'ADMIN_INVALID');
  });
});
