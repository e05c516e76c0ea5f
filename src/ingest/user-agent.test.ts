import { expect } from 'chai';
import { MAX_USER_AGENT_LENGTH, createUserAgentParser, isBotUserAgent } from './user-agent.js';

/** Ordinary browsers, desktop and mobile: none may be flagged (a false positive hides a real visitor). */
const BROWSERS = {
  chromeMac: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.91 Safari/537.36',
  firefoxWindows: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0',
  edgeWindows: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67',
  safariMac: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15',
  firefoxLinux: 'Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0',
  chromeOs: 'Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  iphone: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
  chromeIphone: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1',
  facebookInApp: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/21E236 [FBAN/FBIOS;FBAV/459.0.0.39.106;FBBV/585123456;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.4.1;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]',
  ipad: 'Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1',
  android: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36',
  samsung: 'Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36',
  firefoxAndroid: 'Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0',
  // A phone brand that contains "bot": a naive /bot/ pattern flags it.
  cubot: 'Mozilla/5.0 (Linux; Android 9; CUBOT P30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/112.0.0.0 Mobile Safari/537.36',
};

/** Well-known crawlers, previewers, monitors, headless browsers and HTTP libraries. */
const BOTS = {
  googlebot: 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
  googlebotSmartphone: 'Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.91 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
  bingbot: 'Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)',
  ahrefs: 'Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)',
  semrush: 'Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)',
  yandex: 'Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)',
  baidu: 'Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)',
  duckduckbot: 'DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)',
  applebot: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)',
  gptbot: 'Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)',
  facebook: 'facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)',
  twitter: 'Twitterbot/1.0',
  slack: 'Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)',
  uptimeRobot: 'Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)',
  headlessChrome: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36',
  lighthouse: 'Mozilla/5.0 (Linux; Android 7.0; Moto G (4)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse',
  phantomjs: 'Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1',
  curl: 'curl/8.4.0',
  wget: 'Wget/1.21.4',
  pythonRequests: 'python-requests/2.31.0',
  pythonUrllib: 'Python-urllib/3.11',
  goHttp: 'Go-http-client/2.0',
  java: 'Java/17.0.2',
  apacheHttpClient: 'Apache-HttpClient/4.5.14 (Java/17.0.2)',
  okhttp: 'okhttp/4.12.0',
  axios: 'axios/1.6.8',
  postman: 'PostmanRuntime/7.37.3',
};

const UNKNOWN = { browser: 'Unknown', browserVersion: '', os: 'Unknown', osVersion: '', device: 'other', bot: false };

describe('user-agent', () => {
  const parse = createUserAgentParser();

  it('reads desktop browsers with major versions and OS major.minor', () => {
    expect(parse(BROWSERS.chromeMac)).to.deep.equal({
      browser: 'Chrome', browserVersion: '124', os: 'Mac OS', osVersion: '10.15', device: 'desktop', bot: false,
    });
    expect(parse(BROWSERS.firefoxWindows)).to.include({ browser: 'Firefox', browserVersion: '125', os: 'Windows', osVersion: '10', device: 'desktop' });
  });

  it('tells phones from tablets', () => {
    expect(parse(BROWSERS.iphone)).to.include({ browser: 'Mobile Safari', browserVersion: '17', os: 'iOS', osVersion: '17.4', device: 'mobile', bot: false });
    expect(parse(BROWSERS.ipad)).to.include({ os: 'iOS', device: 'tablet' });
    expect(parse(BROWSERS.android)).to.include({ browser: 'Chrome', os: 'Android', osVersion: '14', device: 'mobile' });
  });

  it('flags well-known crawlers, headless browsers and HTTP libraries as bots, with device "other"', () => {
    for (const [name, ua] of Object.entries(BOTS)) {
      const info = parse(ua);
      expect(info.bot, name).to.equal(true);
      expect(info.device, name).to.equal('other');
      expect(isBotUserAgent(ua), name).to.equal(true);
    }
  });

  it('keeps what ua-parser-js reads from a bot that imitates a browser (its device is still "other")', () => {
    expect(parse(BOTS.googlebotSmartphone)).to.include({ browser: 'Chrome', os: 'Android', device: 'other', bot: true });
  });

  it('does not flag ordinary desktop and mobile browsers, including phones whose brand contains "bot"', () => {
    for (const [name, ua] of Object.entries(BROWSERS)) {
      expect(isBotUserAgent(ua), name).to.equal(false);
      const info = parse(ua);
      expect(info.bot, name).to.equal(false);
      expect(info.device, name).to.be.oneOf(['desktop', 'mobile', 'tablet']);
    }
  });

  it('treats a missing, empty or blank user agent as an unknown human, not a bot (server and mobile SDKs send none)', () => {
    for (const ua of [undefined, '', ' ', '\t\n  ']) {
      expect(parse(ua), JSON.stringify(ua)).to.deep.equal(UNKNOWN);
      expect(isBotUserAgent(ua), JSON.stringify(ua)).to.equal(false);
    }
  });

  it('flags a single token that no browser would send, as isbot does', () => {
    expect(parse('xyzzy')).to.deep.equal({ ...UNKNOWN, bot: true });
  });

  it('handles long hostile strings (no catastrophic backtracking at the wire limit)', () => {
    // The wire schema caps user agents at 1024 chars; isbot's pattern must not backtrack badly.
    for (const ua of ['Mozilla/5.0 ' + 'a('.repeat(506), 'Mozilla/5.0 (' + ' '.repeat(1000) + ')', `${BROWSERS.chromeMac} ${'x'.repeat(800)}`]) {
      const info = parse(ua);
      expect(info).to.have.keys(Object.keys(UNKNOWN));
      expect(Object.isFrozen(info)).to.equal(true);
    }
  });

  it('reads a header-sized user agent only up to the wire limit, and caches it by that prefix', () => {
    // A WebSocket User-Agent header can be 16 KiB; the event field stops at 1024.
    const tail = (n: number) => ' '.repeat(MAX_USER_AGENT_LENGTH - BROWSERS.chromeMac.length) + 'x'.repeat(n);
    const long = parse(BROWSERS.chromeMac + tail(15_000));
    expect(long).to.deep.equal(parse(BROWSERS.chromeMac));
    expect(parse(BROWSERS.chromeMac + tail(9_000)), 'same prefix, same cache entry').to.equal(long);
    // A bot token past the limit is not seen; one within it is.
    expect(parse(`${BROWSERS.chromeMac}${' '.repeat(2_000)}Googlebot/2.1`).bot).to.equal(false);
    expect(isBotUserAgent(`${BROWSERS.chromeMac} Googlebot/2.1${' '.repeat(20_000)}`)).to.equal(true);
  });

  it('caches parses and stays correct when the cache evicts', () => {
    const small = createUserAgentParser({ cacheSize: 2 });
    const first = small(BROWSERS.chromeMac);
    expect(small(BROWSERS.chromeMac)).to.equal(first); // same frozen object: a cache hit
    small(BROWSERS.iphone);
    small(BROWSERS.android); // evicts chromeMac
    const again = small(BROWSERS.chromeMac);
    expect(again).to.not.equal(first);
    expect(again).to.deep.equal(first);
    expect(Object.isFrozen(again)).to.equal(true);
    const bot = small(BOTS.googlebot);
    expect(small(BOTS.googlebot)).to.equal(bot);
  });

  it('works with the cache disabled', () => {
    const uncached = createUserAgentParser({ cacheSize: 0 });
    expect(uncached(BOTS.ahrefs)).to.deep.equal(parse(BOTS.ahrefs));
    expect(uncached(BROWSERS.samsung)).to.deep.equal(parse(BROWSERS.samsung));
  });
});
