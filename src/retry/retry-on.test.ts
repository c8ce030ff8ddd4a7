import { describe, expect, it } from 'vitest';
import { DEFAULT_RETRY_ON, parseRetryOn, type RetryOn, retriesFailure, retriesStatus } from './retry-on.ts';

const parse = (v: string | (string | number)[]) => parseRetryOn(v) as RetryOn;

describe('parseRetryOn', () => {
  it('parses a comma string and a list the same way', () => {
    const a = parse('5xx, reset,409');
    const b = parse(['5xx', 'reset', 409]);
    expect([...a.tokens].sort()).toEqual([...b.tokens].sort());
    expect([...a.codes]).toEqual([409]);
  });

  it('names a bad token', () => {
    expect(parseRetryOn('5xx,bogus')).toMatch(/"bogus" is not a retryOn token/);
    expect(parseRetryOn('999')).toMatch(/not an HTTP status code/);
    expect(parseRetryOn('')).toMatch(/empty/);
  });

  it('Istio default: retriable-status-codes alone means 503', () => {
    const d = parse(DEFAULT_RETRY_ON);
    expect(retriesStatus(d, 503, undefined)).toBe(true);
    expect(retriesStatus(d, 500, undefined)).toBe(false);
    expect(retriesStatus(d, 200, '14')).toBe(true); // unavailable
    expect(retriesStatus(d, 200, '1')).toBe(true); // cancelled
    expect(retriesStatus(d, 200, '0')).toBe(false);
    expect(retriesFailure(d, 'connect')).toBe(true);
    expect(retriesFailure(d, 'refused-stream')).toBe(true);
    expect(retriesFailure(d, 'reset')).toBe(false);
    expect(retriesFailure(d, 'timeout')).toBe(false);
  });

  it('5xx, gateway-error, retriable-4xx', () => {
    expect(retriesStatus(parse('5xx'), 500, undefined)).toBe(true);
    expect(retriesFailure(parse('5xx'), 'reset')).toBe(true);
    expect(retriesStatus(parse('gateway-error'), 500, undefined)).toBe(false);
    expect(retriesStatus(parse('gateway-error'), 504, undefined)).toBe(true);
    expect(retriesFailure(parse('gateway-error'), 'timeout')).toBe(true);
    expect(retriesStatus(parse('retriable-4xx'), 409, undefined)).toBe(true);
    expect(retriesStatus(parse('retriable-4xx'), 404, undefined)).toBe(false);
  });
});
