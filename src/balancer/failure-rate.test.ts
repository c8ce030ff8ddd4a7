import { describe, expect, it } from 'vitest';
import { FailureRate } from './failure-rate.ts';

describe('FailureRate', () => {
  it('starts at 0 with no penalty, and a run of failures shows within a few attempts', () => {
    const f = new FailureRate(10_000, 0);
    expect(f.rate(0)).toBe(0);
    expect(f.penalty(0)).toBe(1);
    for (let i = 0; i < 10; i++) f.observe(true, i);
    expect(f.rate(10)).toBeGreaterThan(0.45);
    expect(f.penalty(10)).toBeGreaterThan(3);
  });

  it('settles near the share of failed attempts', () => {
    const f = new FailureRate(10_000, 0);
    for (let i = 0; i < 2_000; i++) f.observe(i % 10 < 3, i);
    expect(f.rate(2_000)).toBeGreaterThan(0.2);
    expect(f.rate(2_000)).toBeLessThan(0.4);
  });

  it('decays toward 0 while the endpoint gets no traffic, so it is probed again', () => {
    const f = new FailureRate(10_000, 0);
    for (let i = 0; i < 100; i++) f.observe(true, i);
    const high = f.penalty(100);
    expect(high).toBeGreaterThanOrEqual(9_999);
    expect(f.rate(100 + 10_000)).toBeCloseTo(f.rate(100) / 2, 2);
    expect(f.penalty(100 + 60_000)).toBeLessThan(1.1);
  });

  it('successes bring it back down', () => {
    const f = new FailureRate(10_000, 0);
    for (let i = 0; i < 20; i++) f.observe(true, i);
    for (let i = 20; i < 120; i++) f.observe(false, i);
    expect(f.rate(120)).toBeLessThan(0.01);
  });
});
