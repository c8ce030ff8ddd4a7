import { describe, expect, it } from 'vitest';
import { PeakEwma } from './peak-ewma.ts';

describe('PeakEwma', () => {
  it('starts at the default RTT and scales cost with in-flight requests', () => {
    const e = new PeakEwma(30, 10_000, 0);
    expect(e.estimate(0)).toBe(30);
    expect(e.cost(0, 0)).toBe(30);
    expect(e.cost(3, 0)).toBe(120);
  });

  it('takes a slower sample as the new peak at once', () => {
    const e = new PeakEwma(30, 10_000, 0);
    e.observe(500, 1);
    expect(e.estimate(1)).toBe(500);
  });

  it('decays toward faster samples with the configured half-life', () => {
    const e = new PeakEwma(100, 10_000, 0);
    e.observe(0, 10_000); // one half-life later, a 0 ms sample halves the gap
    expect(e.estimate(10_000)).toBeCloseTo(50, 5);
  });

  it('decays toward 0 while idle, so an old slow endpoint is probed again', () => {
    const e = new PeakEwma(30, 10_000, 0);
    e.observe(1000, 0);
    expect(e.estimate(20_000)).toBeCloseTo(250, 5);
  });
});
