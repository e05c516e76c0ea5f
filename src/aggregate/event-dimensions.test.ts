import { expect } from 'chai';
import { eventDimensions, type DimensionSource } from './event-dimensions.js';
import { SESSION_DIMENSIONS, EVENT_DIMENSIONS } from './rollup.js';

const pageview: DimensionSource = {
  type: 'pageview', name: 'pageview', host: 'shop.example', path: '/pricing', referrerHost: 'news.ycombinator.com',
  source: 'Hacker News', channel: 'referral',
  utm: { source: 'hn', medium: null, campaign: 'launch', term: '', content: null },
  browser: 'Chrome', browserVersion: '124', os: 'iOS', osVersion: '17.4', device: 'mobile',
  screen: { width: 390, height: 844 }, country: 'DE', region: 'DE-BE', city: 'Berlin',
};

describe('eventDimensions', () => {
  it('gives every dimension but prop and exit_page its value from the event', () => {
    expect(eventDimensions(pageview)).to.deep.equal({
      entry_page: '/pricing', hostname: 'shop.example', source: 'Hacker News', referrer: 'news.ycombinator.com', channel: 'referral',
      utm_source: 'hn', utm_medium: null, utm_campaign: 'launch', utm_term: null, utm_content: null,
      country: 'DE', region: 'DE-BE', city: 'Berlin', browser: 'Chrome', browser_version: 'Chrome 124', os: 'iOS', os_version: 'iOS 17',
      device: 'mobile', screen: 'Mobile', page: '/pricing', event: null,
    });
    const names = Object.keys(eventDimensions(pageview)).sort();
    expect(names).to.deep.equal([...SESSION_DIMENSIONS, ...EVENT_DIMENSIONS].filter((d) => d !== 'prop').sort());
  });

  it('names the custom event and leaves absent values null', () => {
    const v = eventDimensions({
      ...pageview, type: 'event', name: 'signup', referrerHost: '', browser: 'Unknown', browserVersion: '', os: 'Mac OS', osVersion: '10.15',
      screen: null, country: null, region: null, city: null, utm: { source: null, medium: null, campaign: null, term: null, content: null },
    });
    expect(v).to.include({
      event: 'signup', referrer: null, browser: 'Unknown', browser_version: null, os_version: 'Mac OS 10', screen: null,
      country: null, region: null, city: null, utm_source: null, utm_campaign: null,
    });
  });

  it('classes screens by width', () => {
    const screen = (width: number) => eventDimensions({ ...pageview, screen: { width, height: 800 } }).screen;
    expect([screen(575), screen(576), screen(991), screen(992), screen(1439), screen(1440)])
      .to.deep.equal(['Mobile', 'Tablet', 'Tablet', 'Laptop', 'Laptop', 'Desktop']);
  });
});
