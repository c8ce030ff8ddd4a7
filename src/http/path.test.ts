import { describe, expect, it } from 'vitest';
import {
  isPathRejection,
  normalizeTarget,
  type PathNormalizationConfig,
  pathOptions,
  REJECTIONS,
  removeDotSegments,
} from './path.ts';

const norm = (t: string, c?: PathNormalizationConfig) => normalizeTarget(t, pathOptions(c));

describe('normalizeTarget (defaults: MERGE_SLASHES, escaped slashes rejected)', () => {
  it('returns a canonical target as the very same string', () => {
    for (const t of ['/', '/a/b', '/a/b.json?x=1&y=/../z', '/a.b/.c/..d/c..', "/~u/a-b_c!$&'()*+,;=:@"]) {
      expect(norm(t)).toBe(t);
    }
  });

  it.each([
    ['/a/./b', '/a/b'],
    ['/a/../b', '/b'],
    ['/a/b/..', '/a/'],
    ['/a/b/.', '/a/b/'],
    ['/..', '/'],
    ['/../../a', '/a'],
    ['/a//b', '/a/b'],
    ['//a///b', '/a/b'],
    ['/a//../b', '/a/b'],
    ['/%2e/a', '/a'],
    ['/a/%2E%2e/b', '/b'],
    ['/a/.%2e/b', '/b'],
    ['/%61%62%7e%2d%5f%30', '/ab~-_0'],
    ['/a%3fb%c3%a9', '/a%3Fb%C3%A9'],
    ['/%252e%252e/x', '/%252e%252e/x'],
    ['/a\\..\\b', '/b'],
    // Node reads the target as Latin-1: each byte above 0x7F is one character, encoded as is.
    ['/caf\u00c3\u00a9', '/caf%C3%A9'],
    ['/a#frag', '/a'],
    ['/a?x=1#frag', '/a?x=1'],
    ['/a/../b?x=/../y', '/b?x=/../y'],
    ['/a?x=%zz', '/a?x=%zz'],
    ['http://svc/a/b?x', '/a/b?x'],
    ['HTTPS://svc:8443/a', '/a'],
    ['http://user@svc', '/'],
    ['http://svc?x=1', '/?x=1'],
    ['http://svc#f', '/'],
    ['http://svc/../a', '/a'],
  ])('%s → %s', (input, output) => {
    expect(norm(input)).toBe(output);
    expect(norm(output)).toBe(output); // idempotent
  });

  it.each([
    ['', REJECTIONS.empty],
    ['*', REJECTIONS.asterisk],
    ['svc:80', REJECTIONS.form],
    ['ftp://svc/a', REJECTIONS.form],
    ['a/b', REJECTIONS.form],
    ['http:///a', REJECTIONS.authority],
    ['http://s\\vc/a', REJECTIONS.authority],
    ['/a b', REJECTIONS.control],
    ['/a\tb', REJECTIONS.control],
    ['/a\u0000', REJECTIONS.control],
    ['/a?x=\n', REJECTIONS.control],
    ['/a\u0100', REJECTIONS.wide],
    ['/a%zz', REJECTIONS.percent],
    ['/a%', REJECTIONS.percent],
    ['/a%2', REJECTIONS.percent],
    ['/a%00', REJECTIONS.nul],
    ['/a%2fb', REJECTIONS.slash],
    ['/a%2Fb', REJECTIONS.slash],
    ['/a%5cb', REJECTIONS.slash],
  ])('rejects %j', (input, rejection) => {
    const r = norm(input);
    expect(isPathRejection(r)).toBe(true);
    expect(r).toBe(rejection);
  });
});

describe('levels and escaped-slash actions (Istio pathNormalization, Envoy path_with_escaped_slashes_action)', () => {
  it('NONE: only the form, fragment, control characters, %00 and escaped slashes', () => {
    const none = { normalization: 'NONE' } as const;
    expect(norm('/a/../b//c/%2e/%7e\\x', none)).toBe('/a/../b//c/%2e/%7e\\x');
    expect(norm('http://svc/a/../b#f', none)).toBe('/a/../b');
    expect(norm('/a%zz', none)).toBe('/a%zz');
    expect(norm('/a%00', none)).toBe(REJECTIONS.nul);
    expect(norm('/a%2fb', none)).toBe(REJECTIONS.slash);
    expect(norm('/a%2fb', { ...none, escapedSlashes: 'KEEP_UNCHANGED' })).toBe('/a%2fb');
  });

  it('BASE: dot segments and decoding, slashes not merged', () => {
    expect(norm('/a//b/../%63', { normalization: 'BASE' })).toBe('/a//c');
    expect(norm('//a', { normalization: 'BASE' })).toBe('//a');
  });

  it('KEEP_UNCHANGED: %2F and %5C stay one segment, hex uppercased', () => {
    const keep = { escapedSlashes: 'KEEP_UNCHANGED' } as const;
    expect(norm('/a%2fb/..%2f../c', keep)).toBe('/a%2Fb/..%2F../c');
    expect(norm('/a%5cb', keep)).toBe('/a%5Cb');
  });

  it('UNESCAPE_AND_FORWARD and DECODE_AND_MERGE_SLASHES: decoded to / before dot segments', () => {
    expect(norm('/a/..%2fb', { escapedSlashes: 'UNESCAPE_AND_FORWARD' })).toBe('/b');
    // Dot segments first, then slashes merged (Istio's order): `..` removes the empty segment.
    expect(norm('/a%2f%2f..%5cb', { normalization: 'DECODE_AND_MERGE_SLASHES' })).toBe('/a/b');
    expect(norm('/a/%2f..%5cb', { normalization: 'DECODE_AND_MERGE_SLASHES' })).toBe('/a/b');
    expect(norm('/a/b%2f..%2f..%2fc', { normalization: 'DECODE_AND_MERGE_SLASHES' })).toBe('/c');
    // DECODE_AND_MERGE_SLASHES is Istio's name for "merge slashes, unescape %2F and %5C".
    expect(pathOptions({ normalization: 'DECODE_AND_MERGE_SLASHES' }).escapedSlashes).toBe(
      'UNESCAPE_AND_FORWARD',
    );
  });
});

describe('removeDotSegments (RFC 3986 5.2.4 examples for absolute paths)', () => {
  it.each([
    ['/a/b/c/./../../g', '/a/g'],
    ['/mid/content=5/../6', '/mid/6'],
    ['/./a', '/a'],
    ['/a/./', '/a/'],
    ['/a/../', '/'],
    ['/a/..', '/'],
    ['/..a/.b/c..', '/..a/.b/c..'],
  ])('%s → %s', (input, output) => {
    expect(removeDotSegments(input)).toBe(output);
  });
});
