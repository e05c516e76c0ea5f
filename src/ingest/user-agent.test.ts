import { expect } from 'chai';
import { createUserAgentParser, isBotUserAgent } from './user-agent.js';

const UA = {
  chromeMac: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.91 Safari/537.36',
  firefoxWindows: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0',
  iphone: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
  ipad: 'Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1',
  android: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36',
  cubot: 'Mozilla/5.0 (Linux; Android 9; CUBOT P30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/112.0.0.0 Mobile Safari/537.36',
  googlebot: 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
  bingbot: 'Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)',
  headless: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36',
  lighthouse: 'Mozilla/5.0 (Linux; Android 7.0; Moto G (4)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse',
  facebook: 'facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)',
  curl: 'curl/8.4.0',
  python: 'python-requests/2.31.0',
};

describe('user-agent', () => {
  const parse = createUserAgentParser();

  it('reads desktop browsers with major versions and OS major.minor', () => {
    expect(parse(UA.chromeMac)).to.deep.equal({
      browser: 'Chrome', browserVersion: '124', os: 'Mac OS', osVersion: '10.15', device: 'desktop', bot: false,
    });
    expect(parse(UA.firefoxWindows)).to.include({ browser: 'Firefox', browserVersion: '125', os: 'Windows', osVersion: '10', device: 'desktop' });
  });

  it('tells phones from tablets', () => {
    expect(parse(UA.iphone)).to.include({ browser: 'Mobile Safari', browserVersion: '17', os: 'iOS', osVersion: '17.4', device: 'mobile', bot: false });
    expect(parse(UA.ipad)).to.include({ os: 'iOS', device: 'tablet' });
    expect(parse(UA.android)).to.include({ browser: 'Chrome', os: 'Android', osVersion: '14', device: 'mobile' });
  });

  it('flags known crawlers and automation as bots', () => {
    for (const ua of [UA.googlebot, UA.bingbot, UA.headless, UA.lighthouse, UA.facebook, UA.curl, UA.python]) {
      const info = parse(ua);
      expect(info.bot, ua).to.equal(true);
      expect(info.device, ua).to.equal('other');
    }
  });

  it('does not flag real browsers, including phones whose brand contains "bot"', () => {
    for (const ua of [UA.chromeMac, UA.firefoxWindows, UA.iphone, UA.ipad, UA.android, UA.cubot]) {
      expect(isBotUserAgent(ua), ua).to.equal(false);
    }
  });

  it('reports unknown for a missing or unreadable user agent', () => {
    const unknown = { browser: 'Unknown', browserVersion: '', os: 'Unknown', osVersion: '', device: 'other', bot: false };
    expect(parse(undefined)).to.deep.equal(unknown);
    expect(parse('')).to.deep.equal(unknown);
    expect(parse('xyzzy')).to.deep.equal(unknown);
  });

  it('caches parses and stays correct when the cache evicts', () => {
    const small = createUserAgentParser({ cacheSize: 2 });
    const first = small(UA.chromeMac);
    expect(small(UA.chromeMac)).to.equal(first); // same frozen object: a cache hit
    small(UA.iphone);
    small(UA.android); // evicts chromeMac
    const again = small(UA.chromeMac);
    expect(again).to.not.equal(first);
    expect(again).to.deep.equal(first);
    expect(Object.isFrozen(again)).to.equal(true);
  });
});
