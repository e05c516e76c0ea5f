import { expect } from 'chai';
import { createUrlNormaliser, NO_UTM, normaliseHost, type NormalisedUrl } from './normalise-url.js';

const normalise = createUrlNormaliser({ keepQueryParams: [] });

function ok(result: NormalisedUrl) {
  if (!result.ok) throw new Error(`expected ok, got ${result.reason}`);
  return result;
}

describe('normalise-url', () => {
  describe('host', () => {
    it('lowercases and drops www., a trailing dot and default ports', () => {
      expect(ok(normalise('https://WWW.Example.COM:443/')).host).to.equal('example.com');
      expect(ok(normalise('http://example.com.:80/a')).host).to.equal('example.com');
      expect(normaliseHost('WWW.Shop.Example.com')).to.equal('shop.example.com');
    });

    it('keeps a non-default port', () => {
      expect(ok(normalise('http://localhost:3000/x')).host).to.equal('localhost:3000');
      expect(ok(normalise('https://example.com:8443/')).host).to.equal('example.com:8443');
    });

    it('keeps internationalised names in punycode', () => {
      expect(ok(normalise('https://bücher.de/')).host).to.equal('xn--bcher-kva.de');
    });

    it('does not strip a host that is only "www"', () => {
      expect(ok(normalise('http://www/')).host).to.equal('www');
    });
  });

  describe('path', () => {
    it('drops query string and fragment', () => {
      expect(ok(normalise('https://example.com/pricing?plan=pro&ref=x#faq')).path).to.equal('/pricing');
    });

    it('removes trailing slashes except the root', () => {
      expect(ok(normalise('https://example.com/blog/')).path).to.equal('/blog');
      expect(ok(normalise('https://example.com/blog//')).path).to.equal('/blog');
      expect(ok(normalise('https://example.com')).path).to.equal('/');
      expect(ok(normalise('https://example.com/')).path).to.equal('/');
      expect(ok(normalise('https://example.com/?q=1')).path).to.equal('/');
    });

    it('resolves dot segments', () => {
      expect(ok(normalise('https://example.com/a/../b/./c')).path).to.equal('/b/c');
    });

    it('decodes percent-escapes only where that is lossless', () => {
      expect(ok(normalise('https://example.com/caf%C3%A9')).path).to.equal('/café');
      expect(ok(normalise('https://example.com/café')).path).to.equal('/café');
      expect(ok(normalise('https://example.com/a%20b')).path).to.equal('/a b');
      // a reserved character stays escaped: decoding it would change the path's structure
      expect(ok(normalise('https://example.com/a%2Fb')).path).to.equal('/a%2Fb');
      expect(ok(normalise('https://example.com/a%3Fb')).path).to.equal('/a%3Fb');
    });

    it('keeps malformed escapes and control characters encoded', () => {
      expect(ok(normalise('https://example.com/x%E0%A4%A/y')).path).to.equal('/x%E0%A4%A/y');
      expect(ok(normalise('https://example.com/a%0Ab')).path).to.equal('/a%0Ab');
      expect(ok(normalise('https://example.com/a%00b')).path).to.equal('/a%00b');
    });

    it('accepts app URLs with a host', () => {
      const r = ok(normalise('app://com.Example.App/Home/'));
      expect(r.host).to.equal('com.example.app');
      expect(r.path).to.equal('/Home');
    });
  });

  describe('UTM parameters', () => {
    it('extracts all five', () => {
      const r = ok(normalise('https://example.com/p?utm_source=Newsletter&utm_medium=email&utm_campaign=spring+sale&utm_term=shoes&utm_content=hero%20image'));
      expect(r.utm).to.deep.equal({ source: 'Newsletter', medium: 'email', campaign: 'spring sale', term: 'shoes', content: 'hero image' });
      expect(r.path).to.equal('/p');
    });

    it('trims values, treats blank as absent, keeps the first occurrence', () => {
      const r = ok(normalise('https://example.com/?utm_source=%20google%20&utm_medium=&utm_source=bing'));
      expect(r.utm.source).to.equal('google');
      expect(r.utm.medium).to.equal(null);
    });

    it('caps values at 256 characters', () => {
      const r = ok(normalise(`https://example.com/?utm_campaign=${'x'.repeat(300)}`));
      expect(r.utm.campaign).to.have.length(256);
    });

    it('shares one empty value when there are none', () => {
      expect(ok(normalise('https://example.com/?a=1')).utm).to.equal(NO_UTM);
    });
  });

  describe('other query parameters', () => {
    it('are dropped unless kept by config, then sorted by name', () => {
      const keep = createUrlNormaliser({ keepQueryParams: ['q', 'page'] });
      expect(ok(keep('https://example.com/search/?sessionid=abc&q=red%20shoes&page=2&utm_source=x')).path)
        .to.equal('/search?page=2&q=red+shoes');
      expect(ok(keep('https://example.com/search?page=2&q=a')).path).to.equal(ok(keep('https://example.com/search?q=a&page=2')).path);
      expect(ok(keep('https://example.com/search?other=1')).path).to.equal('/search');
    });

    it('recognise ad click ids as paid clicks without keeping them', () => {
      const google = ok(normalise('https://example.com/landing?gclid=abc123'));
      expect(google.paidClick).to.equal('Google');
      expect(google.path).to.equal('/landing');
      expect(ok(normalise('https://example.com/?msclkid=x')).paidClick).to.equal('Bing');
      expect(ok(normalise('https://example.com/?fbclid=x')).paidClick).to.equal(null);
    });
  });

  describe('invalid URLs', () => {
    it('are values with a reason, never throws', () => {
      for (const url of ['/relative/path', 'not a url', 'https://exa mple.com/', 'http://']) {
        const r = normalise(url);
        expect(r.ok, url).to.equal(false);
        if (!r.ok) expect(r.reason).to.be.a('string').and.not.empty;
      }
    });

    it('rejects URLs without a host', () => {
      for (const url of ['mailto:someone@example.com', 'about:blank', 'file:///etc/passwd', 'javascript:alert(1)']) {
        expect(normalise(url).ok, url).to.equal(false);
      }
    });
  });
});
