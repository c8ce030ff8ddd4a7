// The Redis script against the in-process algorithm, on a real redis-server: the same windows
// (calendar months included, computed in Lua from Redis's clock) and the same grants for the same
// sequence of requests. The script's clock is pinned through its test override.
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  available,
  compileLimit,
  consume,
  newLimitState,
  windowEnd,
  windowStart,
} from '../src/ratelimit/limits.ts';
import { TAKE } from '../src/ratelimit/lua.ts';
import { connectRedis, type RedisConnection } from '../src/ratelimit/redis-client.ts';
import type { Period } from '../src/ratelimit/schema.ts';
import { silentLogger } from '../src/telemetry/logger.ts';
import { requireService, suiteName, testServices } from './support/services.ts';

const svc = testServices();
const NEEDS = 'redis (MESHWORK_TEST_REDIS)';
const run = requireService(NEEDS, !!svc.redis);

async function ready(c: RedisConnection): Promise<void> {
  for (let i = 0; i < 200 && !c.ready; i++) await new Promise((r) => setTimeout(r, 10));
  if (!c.ready) throw new Error('redis not ready');
}

describe.runIf(run)(suiteName('the rate-limit Lua script on a real Redis', run, NEEDS), () => {
  let redis: RedisConnection;
  beforeAll(async () => {
    redis = connectRedis({ url: svc.redis as string, cluster: false, logger: silentLogger });
    await ready(redis);
  });
  afterAll(() => redis.close());

  /** One TAKE call at `nowMs` for limits [(period, requests, burst)]. */
  async function take(
    key: string,
    nowMs: number,
    limits: { per: Period; requests: number; burst?: number }[],
    want = 1,
    min = want,
  ): Promise<number[]> {
    const args = [String(want), String(min), String(want), String(nowMs * 1000), String(limits.length)];
    for (const l of limits) {
      const c = compileLimit(l);
      args.push(String(c.code), String(c.requests), String(c.gcra ? c.burst : 0), '0', '0');
    }
    return (await redis.evalScript(TAKE, [key], args, 2_000)) as number[];
  }

  it('computes the same UTC calendar windows as the in-process code, months included', async () => {
    const dates = [
      Date.UTC(2026, 0, 1, 0, 0, 0, 0),
      Date.UTC(2026, 11, 31, 23, 59, 59, 999),
      Date.UTC(2028, 1, 29, 12, 0, 0, 0),
      Date.UTC(2100, 1, 28, 23, 59, 59, 999),
      Date.UTC(2000, 1, 29, 0, 0, 0, 1),
      Date.UTC(1999, 11, 31, 23, 59, 59, 999),
      Date.UTC(2026, 4, 17, 10, 20, 30, 456),
    ];
    for (const at of dates)
      for (const per of ['1s', '1m', '1h', '1d', 'month'] as const) {
        const reply = await take(`mwrl-test:{${randomUUID()}}`, at, [{ per, requests: 5 }]);
        const l = compileLimit({ per, requests: 5 });
        const start = windowStart(l, at);
        expect([reply[2], reply[4]], `${new Date(at).toISOString()} ${per}`).toEqual([
          start,
          windowEnd(l, start) - at,
        ]);
      }
  });

  it('grants exactly what the in-process algorithm grants, request after request', async () => {
    // Rates whose emission interval is a whole number of ms in both (µs in Lua, ms in JS).
    const rates = [1, 2, 4, 5, 8, 10, 20, 25, 40, 50, 100, 125, 200, 250, 500];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...rates),
        fc.integer({ min: 1, max: 1000 }),
        fc.constantFrom<Period>('1s', '1m', '1h'),
        fc.array(fc.record({ gap: fc.integer({ min: 0, max: 300 }), n: fc.integer({ min: 1, max: 3 }) }), {
          minLength: 1,
          maxLength: 60,
        }),
        async (rate, burstRaw, per, steps) => {
          const requests = per === '1s' ? rate : per === '1m' ? rate * 60 : rate;
          const burst = per === '1h' ? undefined : Math.min(requests, burstRaw);
          const limits = [{ per, requests, ...(burst ? { burst } : {}) }];
          const l = compileLimit(limits[0] as { per: Period; requests: number });
          const lb = compileLimit(limits[0] as { per: Period; requests: number; burst?: number });
          const s = newLimitState();
          const key = `mwrl-test:{${randomUUID()}}`;
          let t = Date.UTC(2026, 4, 17, 10, 20, 59, 900);
          for (const step of steps) {
            t += step.gap;
            const local = available(lb, s, t) >= step.n;
            if (local) consume(lb, s, step.n, t);
            const reply = await take(key, t, limits, step.n);
            expect(reply[0] === step.n, `at +${t} n=${step.n} ${JSON.stringify(limits)}`).toBe(local);
            void l;
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('grants partially down to `min`, and says how long until `waitFor` tokens', async () => {
    const key = `mwrl-test:{${randomUUID()}}`;
    const at = Date.UTC(2026, 4, 17, 10, 20, 30, 0);
    const limits = [{ per: '1s' as const, requests: 10 }];
    expect((await take(key, at, limits, 7, 1))[0]).toBe(7);
    const partial = await take(key, at, limits, 7, 1);
    expect(partial[0]).toBe(3);
    expect(partial[3]).toBe(0); // remaining
    const none = await take(key, at + 10, limits, 5, 1);
    expect(none[0]).toBe(0);
    // The window is spent: the wait runs to its end.
    expect(none[1]).toBe(990);
  });

  it('settles a give-back (expired lease) and a debit (requests admitted during an outage)', async () => {
    const key = `mwrl-test:{${randomUUID()}}`;
    const at = Date.UTC(2026, 4, 17, 10, 0, 0, 0);
    const day = compileLimit({ per: '1d', requests: 100 });
    const run = async (want: number, adjust: number, adjW: number, now = at) =>
      (await redis.evalScript(
        TAKE,
        [key],
        [
          String(want),
          '1',
          String(want),
          String(now * 1000),
          '1',
          String(day.code),
          '100',
          '0',
          String(adjust),
          String(adjW),
        ],
        2_000,
      )) as number[];
    const start = windowStart(day, at);
    expect((await run(40, 0, 0))[3]).toBe(60);
    expect((await run(0, -30, start))[3]).toBe(90); // 30 unused tokens back
    expect((await run(0, 25, start))[3]).toBe(65); // 25 admitted locally while Redis was away
    expect((await run(0, 1000, start - 86_400_000))[3]).toBe(65); // another day's: ignored
  });
});
