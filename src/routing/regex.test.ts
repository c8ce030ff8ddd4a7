import { describe, expect, it } from 'vitest';
import { compileRegex, regexProblem } from './regex.ts';

describe('route regexes (RE2 syntax, full match)', () => {
  it('anchors the pattern: a full match, as in Envoy', () => {
    const re = compileRegex('/api/v[0-9]+');
    expect(re.test('/api/v2')).toBe(true);
    expect(re.test('/api/v2/x')).toBe(false);
    expect(re.test('x/api/v2')).toBe(false);
    // alternation stays inside the anchors
    expect(compileRegex('a|b').test('ab')).toBe(false);
  });

  it('translates RE2 spellings', () => {
    expect(compileRegex('(?i)jason').test('JaSoN')).toBe(true);
    expect(compileRegex('(?P<v>v[0-9])').exec('v1')?.groups?.v).toBe('v1');
    expect(compileRegex('\\Aabc\\z').test('abc')).toBe(true);
    expect(compileRegex('a(?i:b)c').test('aBc')).toBe(true);
    expect(compileRegex('[]a]+').test(']a]')).toBe(true);
  });

  it('refuses what RE2 lacks and what JavaScript would read differently', () => {
    expect(regexProblem('(?<=a)b')).toMatch(/lookbehind/);
    expect(regexProblem('(?<!a)b')).toMatch(/lookbehind/);
    expect(regexProblem('a(?=b)')).toMatch(/lookahead/);
    expect(regexProblem('a(?!b)')).toMatch(/lookahead/);
    expect(regexProblem('(a)\\1')).toMatch(/backreference/);
    expect(regexProblem('(?<n>a)\\k<n>')).toMatch(/escape \\k/);
    expect(regexProblem('\\pL')).toMatch(/escape \\p/);
    expect(regexProblem('\\Qa.b\\E')).toMatch(/escape \\Q/);
    expect(regexProblem('\\x{41}')).toMatch(/\\x\{/);
    expect(regexProblem('a(?s)b')).toMatch(/inline flags/);
    expect(regexProblem('(unclosed')).toBeDefined();
    expect(regexProblem('a\\')).toMatch(/backslash/);
  });

  it('accepts ordinary patterns', () => {
    for (const p of ['.*', '^/v1/.*$', '[a-z]+\\.(json|xml)', '\\d{2,4}', '[\\[\\]]', 'a\\.b', '(?:x)+']) {
      expect(regexProblem(p), p).toBeUndefined();
    }
  });
});
