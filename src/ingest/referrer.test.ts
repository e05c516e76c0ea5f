import { expect } from 'chai';
import { NO_UTM, type UtmParams } from './normalise-url.js';
import { CHANNELS, createAttributor, DIRECT_SOURCE, referrerHostOf, type Attribution } from './referrer.js';

const PAGE = 'shop.example';
const attribute = createAttributor({ cacheSize: 16 });

function attr(referrer: string | undefined, utm: Partial<UtmParams> = {}, paidClick: string | null = null): Attribution {
  return attribute({ referrer, pageHost: PAGE, utm: { ...NO_UTM, ...utm }, paidClick });
}

describe('referrer', () => {
  it('has a stable channel set', () => {
    expect(CHANNELS).to.deep.equal([
      'direct', 'organic_search', 'paid_search', 'organic_social', 'paid_social',
      'email', 'referral', 'display', 'affiliate', 'other',
    ]);
  });

  describe('referrer host', () => {
    it('normalises like page hosts and reads scheme-less referrers', () => {
      expect(referrerHostOf('https://WWW.Google.com/search?q=x')).to.equal('google.com');
      expect(referrerHostOf('news.ycombinator.com/item?id=1')).to.equal('news.ycombinator.com');
      expect(referrerHostOf('android-app://com.google.android.gm/')).to.equal('com.google.android.gm');
      expect(referrerHostOf('')).to.equal('');
      expect(referrerHostOf(undefined)).to.equal('');
      expect(referrerHostOf('http://exa mple.com')).to.equal('');
    });
  });

  it('no referrer and no UTM is direct', () => {
    expect(attr(undefined)).to.deep.equal({ referrerHost: '', source: DIRECT_SOURCE, channel: 'direct' });
    expect(attr('')).to.deep.equal({ referrerHost: '', source: DIRECT_SOURCE, channel: 'direct' });
    expect(attr('not a url at all')).to.deep.equal({ referrerHost: '', source: DIRECT_SOURCE, channel: 'direct' });
  });

  it('a same-site referrer counts as no referrer', () => {
    expect(attr('https://shop.example/cart')).to.deep.equal({ referrerHost: '', source: DIRECT_SOURCE, channel: 'direct' });
    expect(attr('https://www.shop.example/')).to.deep.equal({ referrerHost: '', source: DIRECT_SOURCE, channel: 'direct' });
    // another subdomain is another site
    expect(attr('https://blog.shop.example/post')).to.deep.equal({ referrerHost: 'blog.shop.example', source: 'blog.shop.example', channel: 'referral' });
  });

  const table: Array<[string, string, string, string]> = [
    // referrer, referrerHost, source, channel
    ['https://www.google.com/', 'google.com', 'Google', 'organic_search'],
    ['https://www.google.co.uk/', 'google.co.uk', 'Google', 'organic_search'],
    ['https://www.google.com.br/', 'google.com.br', 'Google', 'organic_search'],
    ['android-app://com.google.android.googlequicksearchbox/', 'com.google.android.googlequicksearchbox', 'Google', 'organic_search'],
    ['https://www.bing.com/search?q=x', 'bing.com', 'Bing', 'organic_search'],
    ['https://cn.bing.com/', 'cn.bing.com', 'Bing', 'organic_search'],
    ['https://duckduckgo.com/', 'duckduckgo.com', 'DuckDuckGo', 'organic_search'],
    ['https://uk.search.yahoo.com/', 'uk.search.yahoo.com', 'Yahoo', 'organic_search'],
    ['https://yandex.ru/', 'yandex.ru', 'Yandex', 'organic_search'],
    ['https://yandex.com.tr/', 'yandex.com.tr', 'Yandex', 'organic_search'],
    ['https://www.baidu.com/link?url=x', 'baidu.com', 'Baidu', 'organic_search'],
    ['https://www.ecosia.org/', 'ecosia.org', 'Ecosia', 'organic_search'],
    ['https://search.brave.com/', 'search.brave.com', 'Brave', 'organic_search'],
    ['https://l.facebook.com/l.php?u=x', 'l.facebook.com', 'Facebook', 'organic_social'],
    ['https://m.facebook.com/', 'm.facebook.com', 'Facebook', 'organic_social'],
    ['https://l.instagram.com/', 'l.instagram.com', 'Instagram', 'organic_social'],
    ['https://t.co/abc', 't.co', 'X', 'organic_social'],
    ['https://twitter.com/', 'twitter.com', 'X', 'organic_social'],
    ['https://x.com/', 'x.com', 'X', 'organic_social'],
    ['https://www.linkedin.com/feed/', 'linkedin.com', 'LinkedIn', 'organic_social'],
    ['https://lnkd.in/xyz', 'lnkd.in', 'LinkedIn', 'organic_social'],
    ['https://old.reddit.com/r/x', 'old.reddit.com', 'Reddit', 'organic_social'],
    ['https://www.youtube.com/', 'youtube.com', 'YouTube', 'organic_social'],
    ['https://www.tiktok.com/', 'tiktok.com', 'TikTok', 'organic_social'],
    ['https://www.pinterest.de/', 'pinterest.de', 'Pinterest', 'organic_social'],
    ['https://news.ycombinator.com/', 'news.ycombinator.com', 'Hacker News', 'organic_social'],
    ['https://mail.google.com/', 'mail.google.com', 'Gmail', 'email'],
    ['android-app://com.google.android.gm', 'com.google.android.gm', 'Gmail', 'email'],
    ['https://outlook.live.com/mail/0/', 'outlook.live.com', 'Outlook', 'email'],
    ['https://webmail.example-isp.net/', 'webmail.example-isp.net', 'Webmail', 'email'],
    // Google properties other than search are referrals
    ['https://docs.google.com/document/d/1', 'docs.google.com', 'docs.google.com', 'referral'],
    ['https://blog.partner.com/post', 'blog.partner.com', 'blog.partner.com', 'referral'],
    ['http://localhost:3000/', 'localhost:3000', 'localhost:3000', 'referral'],
  ];
  for (const [referrer, referrerHost, source, channel] of table) {
    it(`${referrer} → ${source} / ${channel}`, () => {
      expect(attr(referrer)).to.deep.equal({ referrerHost, source, channel });
    });
  }

  describe('UTM', () => {
    it('utm_source names the source, canonicalising known aliases', () => {
      expect(attr(undefined, { source: 'Spring Newsletter', medium: 'email' })).to.deep.equal({ referrerHost: '', source: 'Spring Newsletter', channel: 'email' });
      expect(attr(undefined, { source: 'fb' }).source).to.equal('Facebook');
      expect(attr(undefined, { source: 'google' }).source).to.equal('Google');
      expect(attr(undefined, { source: 'facebook.com' }).source).to.equal('Facebook');
    });

    const mediums: Array<[Partial<UtmParams>, string | undefined, string]> = [
      // utm, referrer, expected channel
      [{ source: 'google', medium: 'cpc' }, 'https://www.google.com/', 'paid_search'],
      [{ source: 'bing', medium: 'ppc' }, undefined, 'paid_search'],
      [{ source: 'adwords', medium: 'paidsearch' }, undefined, 'paid_search'],
      [{ source: 'facebook', medium: 'cpc' }, undefined, 'paid_social'],
      [{ source: 'spring', medium: 'paid' }, 'https://l.instagram.com/', 'paid_social'],
      [{ source: 'meta', medium: 'paid_social' }, undefined, 'paid_social'],
      [{ source: 'mailchimp', medium: 'email' }, undefined, 'email'],
      [{ source: 'weekly', medium: 'e-mail' }, undefined, 'email'],
      [{ source: 'partner', medium: 'social' }, undefined, 'organic_social'],
      [{ source: 'partner', medium: 'social-network' }, undefined, 'organic_social'],
      [{ source: 'network', medium: 'display' }, undefined, 'display'],
      [{ source: 'network', medium: 'cpm' }, undefined, 'display'],
      [{ source: 'partner', medium: 'affiliate' }, undefined, 'affiliate'],
      [{ source: 'partner', medium: 'referral' }, undefined, 'referral'],
      [{ source: 'google', medium: 'organic' }, undefined, 'organic_search'],
      // unrecognised medium: the source's kind decides, then the referrer
      [{ source: 'twitter', medium: 'launch' }, undefined, 'organic_social'],
      [{ source: 'newsletter' }, undefined, 'email'],
      [{ source: 'partner', medium: 'launch' }, 'https://partner.com/', 'referral'],
      [{ source: 'partner', medium: 'launch' }, undefined, 'other'],
      [{ source: 'spring_sale' }, 'https://l.facebook.com/', 'organic_social'],
      [{ medium: 'email' }, undefined, 'email'],
    ];
    for (const [utm, referrer, channel] of mediums) {
      it(`${JSON.stringify(utm)} from ${referrer ?? 'nowhere'} → ${channel}`, () => {
        expect(attr(referrer, utm).channel).to.equal(channel);
      });
    }

    it('medium matching is case-insensitive', () => {
      expect(attr(undefined, { source: 'acme', medium: 'CPC' }).channel).to.equal('paid_search');
    });

    it('a tagged visit that names no source is "(not set)", not direct', () => {
      expect(attr(undefined, { medium: 'email' }).source).to.equal('(not set)');
    });

    it('campaign alone does not change attribution', () => {
      expect(attr(undefined, { campaign: 'spring' })).to.deep.equal({ referrerHost: '', source: DIRECT_SOURCE, channel: 'direct' });
    });

    it('keeps the referrer host while UTM names the source', () => {
      expect(attr('https://l.facebook.com/', { source: 'spring_ad', medium: 'cpc' }))
        .to.deep.equal({ referrerHost: 'l.facebook.com', source: 'spring_ad', channel: 'paid_social' });
    });
  });

  describe('ad click ids', () => {
    it('make an untagged visit paid search from the network', () => {
      expect(attr('https://www.google.com/', {}, 'Google')).to.deep.equal({ referrerHost: 'google.com', source: 'Google', channel: 'paid_search' });
      expect(attr(undefined, {}, 'Bing')).to.deep.equal({ referrerHost: '', source: 'Bing', channel: 'paid_search' });
    });

    it('yield to a recognised utm_medium', () => {
      expect(attr(undefined, { source: 'google', medium: 'display' }, 'Google').channel).to.equal('display');
    });
  });
});
