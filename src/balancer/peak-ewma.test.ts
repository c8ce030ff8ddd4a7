import { describe, expect, it } from 'vitest';
import { PeakEwma } from './peak-ewma.ts';

const HALF = 10_000;

describe('PeakEwma', () => {
  it('starts at the default RTT', () => {
    const e = new PeakEwma(30, HALF, 1000);
    expect(e.estimate(1000)).toBe(30);
    expect(e.cost(0, 1000)).toBe(30);
    expect(e.cost(3, 1000)).toBe(120);
  });

  it('a slower sample replaces the estimate at once (the peak)', () => {
    const e = new PeakEwma(30, HALF, 0);
    e.observe(500, 1);
    expect(e.estimate(1)).toBe(500);
  });

  it('the first real sample replaces the default RTT, faster or slower', () => {
    const fast = new PeakEwma(30, HALF, 0);
    fast.observe(1, 5);
    expect(fast.estimate(5)).toBe(1);
    const slow = new PeakEwma(30, HALF, 0);
    slow.observe(45, 5);
    expect(slow.estimate(5)).toBe(45);
  });

  it('faster samples pull the estimate down with a 10 s half-life', () => {
    const e = new PeakEwma(30, HALF, 0);
    e.observe(100, 0);
    e.observe(20, 10_000); // one half-life later: half old, half new
    expect(e.estimate(10_000)).toBeCloseTo(60, 6);
    // many samples spread over 10 s weigh like one sample covering 10 s
    const f = new PeakEwma(30, HALF, 0);
    f.observe(100, 0);
    for (let t = 100; t <= 10_000; t += 100) f.observe(20, t);
    expect(f.estimate(10_000)).toBeCloseTo(60, 6);
  });

  it('a faster sample at the same instant changes nothing', () => {
    const e = new PeakEwma(30, HALF, 0);
    e.observe(100, 0);
    e.observe(10, 0);
    expect(e.estimate(0)).toBe(100);
  });

  it('decays toward 0 when read after idle time (as tower and Finagle), so slow endpoints are probed again', () => {
    const e = new PeakEwma(30, HALF, 0);
    e.observe(2000, 0);
    expect(e.estimate(10_000)).toBeCloseTo(1000, 6);
    expect(e.estimate(20_000)).toBeCloseTo(500, 6);
    expect(e.estimate(60_000)).toBeCloseTo(2000 / 64, 6);
  });

  it('reading is pure: how often it is read does not change later estimates', () => {
    const a = new PeakEwma(30, HALF, 0);
    const b = new PeakEwma(30, HALF, 0);
    a.observe(200, 0);
    b.observe(200, 0);
    for (let t = 0; t < 5000; t += 7) a.estimate(t);
    a.observe(50, 5000);
    b.observe(50, 5000);
    expect(a.estimate(6000)).toBe(b.estimate(6000));
  });

  it('cost multiplies by in-flight + 1 even after a very long idle time', () => {
    const e = new PeakEwma(30, HALF, 0);
    const late = 100 * 3600_000; // exp() underflows to 0 here
    expect(e.cost(0, late)).toBeGreaterThan(0);
    expect(e.cost(5, late)).toBeCloseTo(6 * e.cost(0, late));
  });

  it('ignores out-of-order completions for the clock and bad samples', () => {
    const e = new PeakEwma(100, HALF, 0);
    e.observe(50, 10_000);
    const v = e.estimate(10_000);
    e.observe(40, 5000); // a faster sample reported late: weight 0, the clock does not go back
    expect(e.estimate(10_000)).toBe(v);
    e.observe(Number.NaN, 11_000);
    e.observe(-5, 11_000);
    expect(e.estimate(10_000)).toBe(v);
  });
});
