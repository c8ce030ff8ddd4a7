// The Redis store's bookkeeping against a scripted connection (the real script runs against a
// real Redis in test/ratelimit-lua.test.ts and test/ratelimit-redis.test.ts): leases, late
// answers, the breaker, and what is settled with Redis after an outage.
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../telemetry/logger.ts';
import { compileLimit } from './limits.ts';
import type { Script } from './lua.ts';
import type { RedisConnection } from './redis-client.ts';
import { RedisStore } from './redis-store.ts';
import { ALLOWED, OVER_LIMIT } from './store.ts';

interface Call {
  args: readonly string[];
  resolve(reply: unknown): void;
  reject(err: Error): void;
}

class ScriptedRedis implements RedisConnection {
  ready = true;
  onReadyChange: ((ready: boolean) => void) | undefined;
  calls: Call[] = [];
  evalScript(_script: Script, _keys: readonly string[], args: readonly string[]): Promise<unknown> {
    return new Promise((resolve, reject) => this.calls.push({ args, resolve, reject }));
  }
  async load(): Promise<void> {}
  async close(): Promise<void> {}
  /** Answers the oldest call: `granted` tokens of a 1-minute window starting at `start`. */
  grant(granted: number, remaining = 100, start = WINDOW): void {
    (this.calls.shift() as Call).resolve([granted, granted > 0 ? 0 : 500, start, remaining, 30_000]);
  }
  fail(): void {
    (this.calls.shift() as Call).reject(new Error('ECONNRESET'));
  }
}

const WALL = Date.UTC(2026, 4, 17, 10, 20, 30);
const WINDOW = Date.UTC(2026, 4, 17, 10, 20);
const tick = () => new Promise((r) => setTimeout(r, 0));

function setup(mode: 'lease' | 'exact' = 'lease', timeoutMs = 20) {
  const redis = new ScriptedRedis();
  const clock = { now: 1_000 };
  const store = new RedisStore({
    connection: redis,
    url: 'redis://127.0.0.1:6379',
    domain: 'test',
    mode,
    onFailure: 'local',
    timeoutMs,
    replicas: () => 2,
    leaseMax: undefined,
    clock: () => clock.now,
    wall: () => WALL,
    logger: silentLogger,
  });
  const limits = [compileLimit({ requests: 100, per: '1m' })];
  const c = store.counter(store.namespace('inbound|p|per-app|'), 'acme', limits);
  return { redis, clock, store, c };
}

describe('RedisStore, lease mode', () => {
  it('one call brings a batch; the batch is spent locally; the next one is fetched before it runs out', async () => {
    const { redis, store, c } = setup();
    const first = store.take(c, 1, WALL);
    expect(first).toBeInstanceOf(Promise);
    expect(redis.calls).toHaveLength(1);
    expect(redis.calls[0]?.args.slice(0, 2)).toEqual(['4', '1']); // 4 tokens asked, 1 is enough
    redis.grant(4);
    expect(await first).toBe(ALLOWED);
    expect(store.take(c, 1, WALL)).toBe(ALLOWED); // synchronous: 2 left
    expect(redis.calls).toHaveLength(1); // half spent: the next batch is on its way
    redis.grant(4);
    await tick();
    for (let i = 0; i < 6; i++) expect(store.take(c, 1, WALL)).toBe(ALLOWED);
  });

  it('a batch that arrives after the request gave up is kept (its tokens were taken from Redis)', async () => {
    const { redis, store, c } = setup('lease', 5);
    const waiting = store.take(c, 1, WALL);
    // No answer within the timeout: decided locally (share of 100 / 2 processes).
    expect(await waiting).toBe(ALLOWED);
    expect(store.snapshot().fallbackDecisions).toBe(1);
    redis.grant(4);
    await tick();
    // The late batch serves the next requests at once, with no call.
    const calls = redis.calls.length;
    expect(store.take(c, 1, WALL)).toBe(ALLOWED);
    expect(redis.calls.length).toBe(calls);
  });

  it('nothing left: refused with the wait Redis gave, without asking again before it', async () => {
    const { redis, clock, store, c } = setup();
    const t = store.take(c, 1, WALL);
    redis.grant(0, 0);
    expect(await t).toBe(OVER_LIMIT);
    expect(c.retryAfterMs).toBe(500);
    clock.now += 100;
    expect(store.take(c, 1, WALL)).toBe(OVER_LIMIT);
    expect(redis.calls).toHaveLength(0);
  });
});

describe('RedisStore, when Redis fails', () => {
  it('three failures open the breaker: decisions are local and make no call; a probe closes it', async () => {
    const { redis, clock, store, c } = setup('exact');
    for (let i = 0; i < 3; i++) {
      const t = store.take(c, 1, WALL);
      redis.fail();
      expect(await t).toBe(ALLOWED); // local share
    }
    expect(store.snapshot().breaker).toBe('open');
    expect(store.take(c, 1, WALL)).toBe(ALLOWED);
    expect(redis.calls).toHaveLength(0);
    clock.now += 500;
    expect(store.snapshot().breaker).toBe('half_open');
    const probe = store.take(c, 1, WALL);
    expect(redis.calls).toHaveLength(1);
    // While the probe is out, others do not call.
    expect(store.take(c, 1, WALL)).toBe(ALLOWED);
    expect(redis.calls).toHaveLength(1);
    // The probe carries what was admitted locally meanwhile: 4, in this window.
    // (code 1 = 1m, 100 requests, burst 100, then +4 admitted locally in this window)
    expect(redis.calls[0]?.args.slice(5)).toEqual(['1', '100', '100', '4', String(WINDOW)]);
    redis.grant(1);
    expect(await probe).toBe(ALLOWED);
    expect(store.snapshot().breaker).toBe('closed');
    expect(store.snapshot().state).toBe('connected');
  });

  it('exact: an answer that comes after the timeout undoes the local count of the same request', async () => {
    const { redis, store, c } = setup('exact', 5);
    const t = store.take(c, 1, WALL);
    expect(await t).toBe(ALLOWED); // decided locally: +1 to charge to Redis later
    redis.grant(1); // Redis counted it too
    await tick();
    const next = store.take(c, 1, WALL);
    // Charged once only: the debit and its undo cancel out.
    expect(redis.calls[0]?.args.slice(8, 10)).toEqual(['0', String(WINDOW)]);
    redis.grant(1);
    expect(await next).toBe(ALLOWED);
  });

  it('a late answer after Redis said the window is spent: refused, not admitted on a local share', async () => {
    const { redis, store, c } = setup('exact', 5);
    const first = store.take(c, 1, WALL);
    redis.grant(1, 0); // admitted, and nothing left in this window
    expect(await first).toBe(ALLOWED);
    const late = store.take(c, 1, WALL); // Redis does not answer in time
    expect(await late).toBe(OVER_LIMIT);
    expect(store.snapshot().fallbackDecisions).toBe(1);
  });

  it('a disconnected Redis is not called at all', async () => {
    const { redis, store, c } = setup();
    redis.ready = false;
    expect(store.take(c, 1, WALL)).toBe(ALLOWED);
    expect(redis.calls).toHaveLength(0);
    expect(store.snapshot().state).toBe('connecting');
  });
});
