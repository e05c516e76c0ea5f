/** The RawArchive contract against the in-memory archive, and its memory bound. */
import { expect } from 'chai';
import { MemoryRawArchive } from '../../src/adapters/memory/memory-raw-archive.js';
import { rawArchiveContract, rawEvent } from './raw-archive.contract.js';

rawArchiveContract('memory', async ({ retentionMs }) => {
  const archive = new MemoryRawArchive({ retentionMs });
  return { archive, close: () => archive.close() };
});

describe('MemoryRawArchive', () => {
  const T0 = Date.UTC(2026, 0, 1);

  async function ids(archive: MemoryRawArchive): Promise<string[]> {
    const out: string[] = [];
    for await (const e of archive.read('s', T0 - 86_400_000, T0 + 86_400_000)) out.push(e.id);
    return out;
  }

  it('keeps at most maxEvents, evicting the earliest archived and counting them', async () => {
    const archive = new MemoryRawArchive({ maxEvents: 3, retentionMs: null });
    await archive.archive([rawEvent('s', 'a', T0 + 1), rawEvent('s', 'b', T0 + 2)]);
    await archive.archive([rawEvent('s', 'c', T0 + 3), rawEvent('s', 'd', T0 + 4), rawEvent('s', 'e', T0 + 5)]);
    expect(archive.size).to.equal(3);
    expect(archive.evictedTotal).to.equal(2);
    expect(await ids(archive)).to.deep.equal(['c', 'd', 'e']);
    // Re-archiving a kept event neither grows the archive nor evicts.
    await archive.archive([rawEvent('s', 'd', T0 + 4)]);
    expect([archive.size, archive.evictedTotal]).to.deep.equal([3, 2]);
  });

  it('counts events skipped as already past retention, and drops them from reads as they expire', async () => {
    let now = T0;
    const archive = new MemoryRawArchive({ retentionMs: 60_000, now: () => now });
    await archive.archive([rawEvent('s', 'old', T0 - 60_000), rawEvent('s', 'new', T0 - 1_000)]);
    expect(archive.expiredSkippedTotal).to.equal(1);
    expect(await ids(archive)).to.deep.equal(['new']);
    now = T0 + 59_000;
    expect(await ids(archive)).to.deep.equal([]);
  });

  it('stores a copy: the caller mutating its event afterwards changes nothing', async () => {
    const archive = new MemoryRawArchive({ retentionMs: null });
    const e = rawEvent('s', 'm', T0, { props: { a: 1 } });
    await archive.archive([e]);
    (e.props as Record<string, number>).a = 2;
    for await (const got of archive.read('s', T0, T0 + 1)) expect(got.props).to.deep.equal({ a: 1 });
  });
});
