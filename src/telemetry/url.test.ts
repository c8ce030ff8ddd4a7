import { describe, expect, it } from 'vitest';
import { fullUrl, isSecretQueryKey, redactPath } from './url.ts';

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

  it('never includes userinfo and defaults the path to /', () => {
    expect(fullUrl('http', 'user:pw@travels:8080', '/x?token=t')).toBe(
      'http://travels:8080/x?token=REDACTED',
    );
    expect(fullUrl('http', 'travels', undefined)).toBe('http://travels/');
  });
});
