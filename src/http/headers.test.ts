import { describe, expect, it } from 'vitest';
import { headerValue, normalizeHeaders } from './headers.ts';

describe('normalizeHeaders', () => {
  it('reads every shape undici accepts into a lowercase record', () => {
    expect(normalizeHeaders(['X-A', '1', 'x-a', '2', 'B', '3'])).toEqual({ 'x-a': ['1', '2'], b: '3' });
    expect(normalizeHeaders([['X-A', '1']])).toEqual({ 'x-a': '1' });
    expect(normalizeHeaders({ 'X-A': '1', B: ['2', '3'], C: undefined, D: 4 })).toEqual({
      'x-a': '1',
      b: ['2', '3'],
      d: '4',
    });
    expect(normalizeHeaders(new Headers({ 'X-A': '1' }))).toEqual({ 'x-a': '1' });
    expect(normalizeHeaders(undefined)).toEqual({});
  });

  it('headerValue returns the first value', () => {
    expect(headerValue({ a: ['1', '2'] }, 'a')).toBe('1');
    expect(headerValue({ a: '1' }, 'b')).toBeUndefined();
  });
});
