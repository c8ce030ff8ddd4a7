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

describe('header records', () => {
  it('treat every name as an ordinary key (no Object.prototype in the chain)', () => {
    const h = normalizeHeaders({ constructor: 'c', __proto__: 'p', 'X-Ok': '1' } as Record<string, string>);
    expect(h.constructor).toBe('c');
    expect(Object.keys(h)).toContain('constructor');
    expect(h.toString).toBeUndefined();
    expect(h.hasownproperty).toBeUndefined();
    expect(h['x-ok']).toBe('1');
    const pairs = normalizeHeaders([
      ['__proto__', 'p'],
      ['valueOf', 'v'],
    ]);
    expect(Object.keys(pairs).sort()).toEqual(['__proto__', 'valueof']);
    expect(Object.getOwnPropertyDescriptor(pairs, '__proto__')?.value).toBe('p');
    expect(Object.getPrototypeOf(Object.getPrototypeOf(pairs))).toBeNull();
  });
});
