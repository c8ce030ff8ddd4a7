import { describe, expect, it } from 'vitest';
import { binomialTolerance, seededRandom } from '../../test/support/seeded-random.ts';
import { DEFAULT_MAX_CONCURRENT_MIRRORS, MirrorGate, shadowAuthority, shouldMirror } from './mirror.ts';

describe('MirrorGate', () => {
  it('admits up to max copies, drops (and counts) the rest, never waits', () => {
    const gate = new MirrorGate(2);
    expect(gate.tryAcquire()).toBe(true);
    expect(gate.tryAcquire()).toBe(true);
    expect(gate.tryAcquire()).toBe(false);
    expect(gate.inFlight).toBe(2);
    expect(gate.dropped).toBe(1);
    gate.release();
    expect(gate.tryAcquire()).toBe(true);
    expect(gate.sent).toBe(3);
    gate.release();
    gate.release();
    gate.release(); // an extra release cannot go below zero
    expect(gate.inFlight).toBe(0);
  });

  it('defaults to 16; 0 disables mirroring; refuses nonsense', () => {
    expect(new MirrorGate().max).toBe(DEFAULT_MAX_CONCURRENT_MIRRORS);
    expect(DEFAULT_MAX_CONCURRENT_MIRRORS).toBe(16);
    expect(new MirrorGate(0).tryAcquire()).toBe(false);
    expect(() => new MirrorGate(-1)).toThrow(RangeError);
    expect(() => new MirrorGate(1.5)).toThrow(RangeError);
  });
});

describe('shouldMirror', () => {
  it('no percentage = every request (Istio); 0 = none', () => {
    expect(shouldMirror(undefined, () => 0.99)).toBe(true);
    expect(shouldMirror(100, () => 0.99)).toBe(true);
    expect(shouldMirror(0, () => 0)).toBe(false);
  });

  it('mirrors the configured share (seeded)', () => {
    const random = seededRandom(11);
    const n = 100_000;
    let k = 0;
    for (let i = 0; i < n; i++) if (shouldMirror(12.5, random)) k++;
    expect(Math.abs(k / n - 0.125)).toBeLessThan(binomialTolerance(0.125, n));
  });
});

describe('shadowAuthority', () => {
  it('appends -shadow to the host, keeping the port', () => {
    expect(shadowAuthority('reviews')).toBe('reviews-shadow');
    expect(shadowAuthority('reviews:9080')).toBe('reviews-shadow:9080');
    expect(shadowAuthority('[::1]:80')).toBe('[::1]-shadow:80');
  });
});
