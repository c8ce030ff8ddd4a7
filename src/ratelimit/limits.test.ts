import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  available,
  compileLimit,
  consume,
  newLimitState,
  refund,
  resetIn,
  waitFor,
  windowEnd,
  windowSeconds,
  windowStart,
} from './limits.ts';

const T0 = Date.UTC(2026, 4, 17, 10, 20, 30, 0); // a whole second

function take(l: ReturnType<typeof compileLimit>, s: ReturnType<typeof newLimitState>, now: number, n = 1) {
  if (available(l, s, now) < n) return false;
  consume(l, s, n, now);
  return true;
}

describe('calendar windows (UTC)', () => {
  it('second, minute, hour and day windows are aligned to the epoch', () => {
    const at = Date.UTC(2026, 4, 17, 10, 20, 30, 456);
    expect(windowStart(compileLimit({ requests: 1, per: '1s' }), at)).toBe(Date.UTC(2026, 4, 17, 10, 20, 30));
    expect(windowStart(compileLimit({ requests: 1, per: '1m' }), at)).toBe(Date.UTC(2026, 4, 17, 10, 20));
    expect(windowStart(compileLimit({ requests: 1, per: '1h' }), at)).toBe(Date.UTC(2026, 4, 17, 10));
    expect(windowStart(compileLimit({ requests: 1, per: '1d' }), at)).toBe(Date.UTC(2026, 4, 17));
  });

  it('a month runs from the 1st 00:00 UTC to the next 1st, across years and leap Februaries', () => {
    const m = compileLimit({ requests: 1, per: 'month' });
    const dec = Date.UTC(2026, 11, 31, 23, 59, 59, 999);
    expect(windowStart(m, dec)).toBe(Date.UTC(2026, 11, 1));
    expect(windowEnd(m, windowStart(m, dec))).toBe(Date.UTC(2027, 0, 1));
    const feb = Date.UTC(2028, 1, 29, 12);
    expect(windowSeconds(m, feb)).toBe(29 * 86_400);
    expect(windowSeconds(m, Date.UTC(2027, 1, 3))).toBe(28 * 86_400);
    expect(windowSeconds(m, Date.UTC(2027, 0, 3))).toBe(31 * 86_400);
  });
});

describe('GCRA with a window cap (1s, 1m)', () => {
  it('allows a burst of `burst`, then one per interval', () => {
    const l = compileLimit({ requests: 10, per: '1s' });
    const s = newLimitState();
    let n = 0;
    while (take(l, s, T0)) n++;
    expect(n).toBe(10);
    expect(take(l, s, T0 + 99)).toBe(false);
    // Still in the same second: the bucket has a token, but the window has none left.
    expect(available(l, s, T0 + 100)).toBe(0);
    expect(take(l, s, T0 + 1_000)).toBe(true);
  });

  it('a burst smaller than the rate paces the rest of the window', () => {
    const l = compileLimit({ requests: 10, per: '1s', burst: 2 });
    const s = newLimitState();
    expect(take(l, s, T0)).toBe(true);
    expect(take(l, s, T0)).toBe(true);
    expect(take(l, s, T0)).toBe(false);
    expect(waitFor(l, s, 1, T0)).toBeCloseTo(100, 6);
    expect(take(l, s, T0 + 100)).toBe(true);
  });

  it('never admits more than `requests` in a calendar window, and conforms to the bucket', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 50 }),
        fc.array(fc.integer({ min: 0, max: 400 }), { minLength: 1, maxLength: 400 }),
        (requests, burstRaw, gaps) => {
          const burst = Math.min(requests, burstRaw);
          const l = compileLimit({ requests, per: '1s', burst });
          const s = newLimitState();
          const admitted: number[] = [];
          let t = T0 + 7;
          for (const g of gaps) {
            t += g;
            if (take(l, s, t)) admitted.push(t);
          }
          const perWindow = new Map<number, number>();
          for (const a of admitted)
            perWindow.set(Math.floor(a / 1000), (perWindow.get(Math.floor(a / 1000)) ?? 0) + 1);
          for (const n of perWindow.values()) expect(n).toBeLessThanOrEqual(requests);
          // GCRA conformance: in any interval [a_i, a_j], at most burst + rate × length (+1 for the ends).
          for (let i = 0; i < admitted.length; i++)
            for (let j = i; j < admitted.length; j++) {
              const span = (admitted[j] as number) - (admitted[i] as number);
              expect(j - i + 1).toBeLessThanOrEqual(burst + Math.floor((span * requests) / 1000) + 1);
            }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('waitFor says when the tokens are there, and they are', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 0, max: 300 }), (requests, used) => {
        const l = compileLimit({ requests, per: '1m' });
        const s = newLimitState();
        let t = T0;
        for (let i = 0; i < used; i++) {
          t += 10;
          take(l, s, t);
        }
        const w = waitFor(l, s, 1, t);
        if (w > 1) expect(available(l, s, t + w - 1)).toBe(0);
        expect(available(l, s, t + w + 1e-6)).toBeGreaterThanOrEqual(1);
      }),
    );
  });

  it('a refund gives the tokens back in the same window', () => {
    const l = compileLimit({ requests: 3, per: '1s' });
    const s = newLimitState();
    for (let i = 0; i < 3; i++) take(l, s, T0);
    expect(available(l, s, T0)).toBe(0);
    refund(l, s, 2, T0 + 1);
    expect(available(l, s, T0 + 1)).toBe(2);
  });

  it('a wall clock stepped back stays in the current window (no second helping)', () => {
    const l = compileLimit({ requests: 2, per: '1s' });
    const s = newLimitState();
    take(l, s, T0 + 500);
    take(l, s, T0 + 500);
    expect(available(l, s, T0 - 2_000)).toBe(0);
  });

  it('more tokens than the limit can ever give: waitFor is Infinity', () => {
    const l = compileLimit({ requests: 3, per: '1s' });
    expect(waitFor(l, newLimitState(), 4, T0)).toBe(Number.POSITIVE_INFINITY);
  });
});

describe('calendar quotas (1h, 1d, month)', () => {
  it('count in the window and reset at its end', () => {
    const l = compileLimit({ requests: 2, per: '1d' });
    const s = newLimitState();
    expect(take(l, s, T0)).toBe(true);
    expect(take(l, s, T0)).toBe(true);
    expect(take(l, s, T0 + 1)).toBe(false);
    const end = Date.UTC(2026, 4, 18);
    expect(resetIn(l, s, T0)).toBe(end - T0);
    expect(waitFor(l, s, 1, T0)).toBe(end - T0);
    expect(take(l, s, end)).toBe(true);
  });
});

describe('a share of a limit (limit / N processes)', () => {
  it('rounds down and never below 1', () => {
    expect(compileLimit({ requests: 10, per: '1s' }, 4).requests).toBe(2);
    expect(compileLimit({ requests: 10, per: '1s', burst: 4 }, 4).burst).toBe(1);
    expect(compileLimit({ requests: 3, per: '1d' }, 4).requests).toBe(1);
  });
});
