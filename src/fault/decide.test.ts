import { describe, expect, it } from 'vitest';
import { binomialTolerance, seededRandom } from '../../test/support/seeded-random.ts';
import { decideChaos, decideFault, hit, NO_FAULT } from './decide.ts';
import { chaosSchema, faultSchema } from './schema.ts';

const N = 100_000;

describe('decideFault (Istio fault, once per request)', () => {
  it('injects nothing without a fault, and shares one answer for "nothing"', () => {
    expect(decideFault(undefined)).toBe(NO_FAULT);
    const fault = faultSchema.parse({ abort: { httpStatus: 500, percentage: { value: 0 } } });
    expect(decideFault(fault, () => 0)).toBe(NO_FAULT);
  });

  it('0 never, 100 always, whatever the draw', () => {
    expect(hit(0, () => 0)).toBe(false);
    expect(hit(100, () => 0.999999)).toBe(true);
  });

  it('hits the configured percentages (seeded, 5-sigma tolerance)', () => {
    const fault = faultSchema.parse({
      delay: { fixedDelay: '7s', percentage: { value: 10 } },
      abort: { httpStatus: 503, percentage: { value: 0.5 } },
    });
    const random = seededRandom(42);
    let delays = 0;
    let aborts = 0;
    let both = 0;
    for (let i = 0; i < N; i++) {
      const d = decideFault(fault, random);
      if (d.delayMs !== undefined) {
        expect(d.delayMs).toBe(7000);
        delays++;
      }
      if (d.abortStatus !== undefined) {
        expect(d.abortStatus).toBe(503);
        aborts++;
      }
      if (d.delayMs !== undefined && d.abortStatus !== undefined) both++;
    }
    expect(Math.abs(delays / N - 0.1)).toBeLessThan(binomialTolerance(0.1, N));
    expect(Math.abs(aborts / N - 0.005)).toBeLessThan(binomialTolerance(0.005, N));
    // independent draws: both hit about 10% x 0.5% of the time
    expect(Math.abs(both / N - 0.0005)).toBeLessThan(binomialTolerance(0.0005, N));
  });

  it('schema: percentage is required, status 200-599, durations parsed', () => {
    expect(faultSchema.safeParse({ abort: { httpStatus: 500 } }).success).toBe(false);
    expect(faultSchema.safeParse({ abort: { httpStatus: 600, percentage: { value: 1 } } }).success).toBe(
      false,
    );
    expect(faultSchema.safeParse({ abort: { httpStatus: 199, percentage: { value: 1 } } }).success).toBe(
      false,
    );
    expect(faultSchema.safeParse({ abort: { httpStatus: 500, percentage: { value: 101 } } }).success).toBe(
      false,
    );
    expect(faultSchema.safeParse({}).success).toBe(false);
    expect(
      faultSchema.parse({ delay: { fixedDelay: '1.5s', percentage: { value: 1 } } }).delay?.fixedDelay,
    ).toBe(1500);
  });
});

describe('decideChaos (meshwork, once per attempt)', () => {
  it('draws latency, reset and abort independently; reset wins over abort', () => {
    const chaos = chaosSchema.parse({
      latency: { fixedDelay: '100ms', percentage: { value: 20 } },
      abort: { httpStatus: 503, percentage: { value: 30 } },
      reset: { percentage: { value: 10 } },
    });
    const random = seededRandom(7);
    let latency = 0;
    let resets = 0;
    let aborts = 0;
    for (let i = 0; i < N; i++) {
      const d = decideChaos(chaos, random);
      if (d.delayMs !== undefined) latency++;
      if (d.reset) resets++;
      if (d.abortStatus !== undefined) aborts++;
      if (d.reset === true && d.abortStatus !== undefined) throw new Error('reset and abort together');
    }
    expect(Math.abs(latency / N - 0.2)).toBeLessThan(binomialTolerance(0.2, N));
    expect(Math.abs(resets / N - 0.1)).toBeLessThan(binomialTolerance(0.1, N));
    // abort only where no reset: 30% x 90%
    expect(Math.abs(aborts / N - 0.27)).toBeLessThan(binomialTolerance(0.27, N));
  });

  it('returns the shared empty answer when nothing fires', () => {
    expect(decideChaos(undefined)).toBe(NO_FAULT);
    const chaos = chaosSchema.parse({ reset: { percentage: { value: 50 } } });
    expect(decideChaos(chaos, () => 0.9)).toBe(NO_FAULT);
    expect(decideChaos(chaos, () => 0.1)).toEqual({ reset: true });
  });
});
