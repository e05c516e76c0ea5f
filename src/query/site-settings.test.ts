import { expect } from 'chai';
import { Accounts } from '../accounts/accounts.js';
import { MemoryAccountStore } from '../adapters/memory/memory-account-store.js';
import { configSiteSettings, storeSiteSettings } from './site-settings.js';

describe('site settings', () => {
  async function setup(cacheMs: number) {
    let t = 1_000_000;
    const store = new MemoryAccountStore();
    const accounts = new Accounts(store);
    await accounts.createOrganisation('A', 'org-a');
    await accounts.createSite({ orgId: 'org-a', id: 'stored', timeZone: 'Asia/Kathmandu', goals: [{ name: 'Signup', page: '/signup' }] });
    let reads = 0;
    const source = storeSiteSettings({
      getSite: (id) => { reads++; return store.getSite(id); },
      fallback: configSiteSettings({ configured: { timeZone: 'Europe/Berlin' }, stored: { timeZone: 'America/New_York' } }),
      cacheMs, now: () => t,
    });
    return { accounts, source, reads: () => reads, advance: (ms: number) => { t += ms; } };
  }

  it('takes a stored site\'s zone and goals from the store, over the config, and others from the config', async () => {
    const { source } = await setup(1_000);
    expect(await source.settings('stored')).to.deep.equal({ timeZone: 'Asia/Kathmandu', goals: [{ name: 'Signup', page: '/signup' }] });
    expect(await source.settings('configured')).to.deep.equal({ timeZone: 'Europe/Berlin' });
    expect(await source.settings('unknown')).to.equal(undefined);
  });

  it('reuses an answer for cacheMs, then sees a change made through the accounts', async () => {
    const { source, accounts, reads, advance } = await setup(1_000);
    await source.settings('stored');
    await source.settings('stored');
    expect(reads()).to.equal(1);
    await accounts.updateSite('stored', { timeZone: 'Asia/Kolkata' });
    expect((await source.settings('stored'))?.timeZone).to.equal('Asia/Kathmandu');
    advance(1_000);
    expect((await source.settings('stored'))?.timeZone).to.equal('Asia/Kolkata');
    expect(reads()).to.equal(2);
  });

  it('with cacheMs 0 reads the store on every query', async () => {
    const { source, reads } = await setup(0);
    await source.settings('stored');
    await source.settings('stored');
    expect(reads()).to.equal(2);
  });
});
