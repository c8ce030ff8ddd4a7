import { describe, expect, it } from 'vitest';
import { backoffMs, parseRetryAfter } from './backoff.ts';

describe('backoff', () => {
  it('grows exponentially from 25 ms and is capped at 250 ms', () => {
    const top = () => 0.999999;
    expect(backoffMs(0, 25, 250, top)).toBe(24);
    expect(backoffMs(1, 25, 250, top)).toBe(49);
    expect(backoffMs(3, 25, 250, top)).toBe(199);
    expect(backoffMs(4, 25, 250, top)).toBe(249);
    expect(backoffMs(40, 25, 250, top)).toBe(249);
    expect(backoffMs(5, 25, 250, () => 0)).toBe(0);
  });

  it('is jittered over [0, ceiling)', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) seen.add(backoffMs(2, 25, 250));
    expect(seen.size).toBeGreaterThan(20);
    for (const v of seen) expect(v).toBeLessThan(100);
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfter('3', 0)).toBe(3000);
    expect(parseRetryAfter(undefined, 0)).toBeUndefined();
    expect(parseRetryAfter('soon', 0)).toBeUndefined();
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:02 GMT', now)).toBe(2000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 00:00:00 GMT', now)).toBe(0);
  });
});

describe('Retry-After: the edges', () => {
  it('delta-seconds only as plain digits (spaces trimmed); anything else is read as a date or ignored', () => {
    expect(parseRetryAfter(' 2 ', 0)).toBe(2000);
    expect(parseRetryAfter('0', 0)).toBe(0);
    expect(parseRetryAfter('2s', 0)).toBeUndefined();
    expect(parseRetryAfter('', 0)).toBeUndefined();
  });

  it('only the three HTTP-date forms are dates; other text Date.parse would accept is ignored', () => {
    const now = Date.parse('1994-11-06T08:49:30Z');
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:49:37 GMT', now)).toBe(7000);
    expect(parseRetryAfter('Sunday, 06-Nov-94 08:49:37 GMT', now)).toBe(7000);
    expect(parseRetryAfter('Sun Nov  6 08:49:37 1994', now)).toBe(7000);
    expect(parseRetryAfter('Thu Nov 10 08:49:37 1994', now)).toBe(4 * 86_400_000 + 7000);
    expect(parseRetryAfter('12', now)).toBe(12_000);
    const around = [
      'x Sun, 06 Nov 1994 08:49:37 GMT',
      'Sun, 06 Nov 1994 08:49:37 GMT+1',
      'x Sunday, 06-Nov-94 08:49:37 GMT',
      'Sunday, 06-Nov-94 08:49:37 GMT+2',
      'x Sun Nov  6 08:49:37 1994',
      'Sun Nov  6 08:49:37 19945',
    ];
    for (const junk of around) expect(parseRetryAfter(junk, now), junk).toBeUndefined();
    for (const junk of [
      '1.5',
      '-1',
      '2x',
      '1e3',
      '2026-01-01',
      'Nov 6 1994',
      'Sun, 06 Nov 1994 08:49:37 PST',
    ])
      expect(parseRetryAfter(junk, now), junk).toBeUndefined();
  });

  it('a date is measured from the given time, not the clock', () => {
    const now = Date.parse('2030-06-01T00:00:00Z');
    expect(parseRetryAfter('Sat, 01 Jun 2030 00:00:05 GMT', now)).toBe(5000);
  });

  it('the ceiling is base × 2^retry below the cap', () => {
    const half = () => 0.5;
    expect(backoffMs(2, 10, 1_000, half)).toBe(20);
    expect(backoffMs(6, 10, 1_000, half)).toBe(320);
    expect(backoffMs(7, 10, 1_000, half)).toBe(500);
  });
});
