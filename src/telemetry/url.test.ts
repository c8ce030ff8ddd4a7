import { describe, expect, it } from 'vitest';
import { fullUrl, hasUserinfo, isSecretQueryKey, redactPath, redactUrl, redactUrlsIn } from './url.ts';

describe('url.full redaction', () => {
  it('keeps a path without query as is and drops the fragment', () => {
    expect(redactPath('/a/b')).toBe('/a/b');
    expect(redactPath('/a?x=1#frag')).toBe('/a?x=1');
  });

  it('redacts the values of credential-like keys, case-insensitively, and keeps the rest', () => {
    expect(redactPath('/s?q=paris&token=abc&Signature=zz&page=2')).toBe(
      '/s?q=paris&token=REDACTED&Signature=REDACTED&page=2',
    );
    expect(redactPath('/s?api_key=1&apikey=2&access_token=3&sig=4&password=5&secret=6&key=7')).toBe(
      '/s?api_key=REDACTED&apikey=REDACTED&access_token=REDACTED&sig=REDACTED&password=REDACTED&secret=REDACTED&key=REDACTED',
    );
    expect(redactPath('/s?X-Amz-Signature=a&x-api-key=b&db_password=c&keyword=d')).toBe(
      '/s?X-Amz-Signature=REDACTED&x-api-key=REDACTED&db_password=REDACTED&keyword=d',
    );
  });

  it('decodes percent-encoded keys before matching', () => {
    expect(isSecretQueryKey('access%5Ftoken')).toBe(true);
    expect(isSecretQueryKey('%E0%A4%A')).toBe(false);
  });

  it('replaces userinfo by REDACTED:REDACTED@ (semantic conventions) and defaults the path to /', () => {
    expect(fullUrl('http', 'user:pw@travels:8080', '/x?token=t')).toBe(
      'http://REDACTED:REDACTED@travels:8080/x?token=REDACTED',
    );
    expect(fullUrl('http', 'travels', undefined)).toBe('http://travels/');
  });
});

describe('URLs in messages', () => {
  it('redactUrl: userinfo of a URL, or everything up to the last @ of a string that does not parse', () => {
    expect(redactUrl('http://user:pw@travels:8080/a?b=1')).toBe(
      'http://REDACTED:REDACTED@travels:8080/a?b=1',
    );
    expect(redactUrl('https://user@travels/')).toBe('https://REDACTED:REDACTED@travels/');
    expect(redactUrl('http://travels/a@b')).toBe('http://travels/a@b');
    expect(redactUrl('http://us@er:p@ss@bad host/')).toBe('http://REDACTED:REDACTED@bad host/');
    expect(redactUrl('http://u:p/q@bad host/')).toBe('http://REDACTED:REDACTED@bad host/');
    expect(redactUrl('user:pw@etcd:2379')).toBe('REDACTED:REDACTED@etcd:2379');
    expect(redactUrl('not a url')).toBe('not a url');
  });

  it('redactUrlsIn: every scheme://userinfo@ in a text', () => {
    expect(redactUrlsIn('a http://u:p@h1/x and "https://v:q w@h2"; mail x@y')).toBe(
      'a http://REDACTED:REDACTED@h1/x and "https://REDACTED:REDACTED@h2"; mail x@y',
    );
    expect(redactUrlsIn('no urls here')).toBe('no urls here');
  });

  it('hasUserinfo: an @ before the host, with or without a scheme', () => {
    expect(hasUserinfo('http://u:p@etcd:2379')).toBe(true);
    expect(hasUserinfo('u:p@etcd:2379')).toBe(true);
    expect(hasUserinfo('http://etcd:2379/a@b')).toBe(false);
    expect(hasUserinfo('etcd:2379')).toBe(false);
  });
});
