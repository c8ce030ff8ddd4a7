// One replica of the rate-limit bench (bench/ratelimit/run.ts), in its own process, driven over
// IPC: it builds one limiter (meshwork's, in a given store mode, or the Kong-style scheme below)
// and offers it requests at a fixed rate (open loop), recording every decision's wall time, its
// latency and the store's state. The requests go to the limiter directly (no HTTP): accuracy is
// about the limiter, and two cores are shared by four replicas and Redis.
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { validateConfig } from '../../src/config/load.ts';
import type { Limiter } from '../../src/ratelimit/limiter.ts';
import { connectRedis, type RedisConnection } from '../../src/ratelimit/redis-client.ts';
import { RateLimitRuntime } from '../../src/ratelimit/runtime.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';

export type SystemName = 'exact' | 'exact-100ms' | 'lease' | 'local' | 'kong-100ms' | 'kong-1s';

export interface Setup {
  cmd: 'setup';
  system: SystemName;
  redis: string;
  domain: string;
  /** Requests per second the limit allows (shared by every replica). */
  limit: number;
  replicas: number;
  timeout?: string;
}

export interface Run {
  cmd: 'run';
  /** Wall-clock ms to start at (all replicas start together). */
  startAt: number;
  durationMs: number;
  /** Requests offered per second. */
  rate: number;
}

export interface RunReport {
  /** Per decision: wall ms, latency µs, 1 admitted / 0 refused, 1 when it waited for the store. */
  decisions: [number, number, number, number][];
  /** Event-loop delay of this process per 100 ms: wall ms, max delay µs (how late timers ran). */
  loopDelay: [number, number][];
  /** Store state samples: wall ms, state. */
  states: [number, string][];
  calls: number;
  fallbackDecisions: number;
}

/** Kong rate-limiting-advanced's scheme: count locally, sync to Redis every `syncMs` (fixed windows). */
class KongStyle {
  #window = 0;
  #global = 0;
  #pending = 0;
  #calls = 0;
  readonly #timer: NodeJS.Timeout;
  readonly redis: RedisConnection;
  readonly domain: string;
  readonly limit: number;
  constructor(redis: RedisConnection, domain: string, limit: number, syncMs: number) {
    this.redis = redis;
    this.domain = domain;
    this.limit = limit;
    this.#timer = setInterval(() => void this.#sync(), syncMs);
  }
  check(): boolean {
    const w = Math.floor(Date.now() / 1000);
    if (w !== this.#window) {
      this.#window = w;
      this.#global = 0;
      this.#pending = 0;
    }
    if (this.#global + this.#pending >= this.limit) return false;
    this.#pending++;
    return true;
  }
  async #sync(): Promise<void> {
    const w = this.#window;
    const delta = this.#pending;
    this.#calls++;
    const total = (await this.redis
      .evalScript(
        {
          source:
            "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) redis.call('PEXPIRE', KEYS[1], 5000) return v",
          sha: '0',
        },
        [`kong:{${this.domain}}:${w}`],
        [String(delta)],
        1_000,
      )
      .catch(() => undefined)) as number | undefined;
    if (total === undefined || w !== this.#window) return;
    this.#pending -= delta;
    this.#global = total;
  }
  get calls(): number {
    return this.#calls;
  }
  close(): void {
    clearInterval(this.#timer);
  }
}

let limiter: Limiter | undefined;
let runtime: RateLimitRuntime | undefined;
let kong: KongStyle | undefined;
const REQ = {
  method: 'GET',
  path: '/trips',
  headers: { 'x-app': 'acme' },
  ctx: undefined,
  principal: undefined,
};

function setup(s: Setup): void {
  if (s.system.startsWith('kong')) {
    const conn = connectRedis({ url: s.redis, cluster: false, logger: silentLogger });
    kong = new KongStyle(conn, s.domain, s.limit, s.system === 'kong-100ms' ? 100 : 1_000);
    return;
  }
  const config = validateConfig({
    rateLimits: {
      domain: s.domain,
      store:
        s.system === 'local'
          ? { mode: 'local', replicas: s.replicas }
          : {
              redis: s.redis,
              mode: s.system === 'lease' ? 'lease' : 'exact',
              timeout: s.system === 'exact-100ms' ? '100ms' : (s.timeout ?? '10ms'),
            },
      policies: [{ name: 'per-app', key: { header: 'x-app' }, limits: [{ requests: s.limit, per: '1s' }] }],
    },
  });
  runtime = new RateLimitRuntime(config, {
    clock: () => performance.now(),
    logger: silentLogger,
    endpointsOf: () => 1,
  });
  limiter = runtime.inbound;
}

async function run(r: Run): Promise<RunReport> {
  const decisions: [number, number, number, number][] = [];
  const loopDelay: [number, number][] = [];
  const eld = monitorEventLoopDelay({ resolution: 1 });
  eld.enable();
  const lag = setInterval(() => {
    loopDelay.push([Date.now(), Math.round(eld.max / 1000)]);
    eld.reset();
  }, 100);
  const states: [number, string][] = [];
  const interval = 1000 / r.rate;
  while (Date.now() < r.startAt)
    await new Promise((res) => setTimeout(res, Math.min(5, r.startAt - Date.now())));
  const t0 = performance.now();
  let sent = 0;
  let inflight = 0;
  let lastState = '';
  const sample = setInterval(() => {
    const st = runtime?.store.snapshot().state ?? 'kong';
    if (st !== lastState) {
      lastState = st;
      states.push([Date.now(), st]);
    }
  }, 5);
  const one = (): void => {
    const start = performance.now();
    const done = (ok: boolean, waited = 0) => {
      const end = performance.now();
      // Date.now(): the clock the limiter's windows use (and Redis's, on this machine).
      decisions.push([Date.now(), Math.round((end - start) * 1000), ok ? 1 : 0, waited]);
    };
    if (kong) {
      done(kong.check());
      return;
    }
    const v = (limiter as Limiter).check(REQ);
    if (v instanceof Promise) {
      inflight++;
      v.then((x) => {
        inflight--;
        done(x.refusal === undefined, 1);
      });
    } else done(v.refusal === undefined);
  };
  // Open loop: whatever the limiter does, requests keep arriving on schedule.
  while (performance.now() - t0 < r.durationMs) {
    const due = Math.floor((performance.now() - t0) / interval);
    while (sent < due) {
      sent++;
      one();
    }
    await new Promise((res) => setTimeout(res, 1));
  }
  const until = performance.now() + 2_000;
  while (inflight > 0 && performance.now() < until) await new Promise((res) => setTimeout(res, 5));
  clearInterval(sample);
  clearInterval(lag);
  eld.disable();
  const snap = runtime?.store.snapshot();
  return {
    decisions,
    loopDelay,
    states,
    calls: snap?.calls ?? kong?.calls ?? 0,
    fallbackDecisions: snap?.fallbackDecisions ?? 0,
  };
}

process.on('message', async (m: Setup | Run | { cmd: 'close' }) => {
  try {
    if (m.cmd === 'setup') {
      setup(m);
      // Wait for the store (Redis) to be connected before saying ready.
      const until = Date.now() + 5_000;
      while (runtime && runtime.store.snapshot().state === 'connecting' && Date.now() < until)
        await new Promise((r) => setTimeout(r, 10));
      process.send?.({ ok: true });
    } else if (m.cmd === 'run') process.send?.({ ok: true, report: await run(m) });
    else {
      kong?.close();
      await runtime?.close();
      process.send?.({ ok: true });
      process.exit(0);
    }
  } catch (err) {
    process.send?.({ ok: false, error: String((err as Error)?.stack ?? err) });
  }
});
process.on('disconnect', () => process.exit(0));
