// Rate limits: what a decision costs, how accurate a limit shared by four processes is under 4×
// overload (meshwork's lease and exact modes side by side with Kong's local-count-plus-periodic-
// sync scheme and plain per-process limits), and what happens when Redis is killed under load.
// A private redis-server (Debian's) on loopback, started and stopped here.
import { type ChildProcess, fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import hdr from 'hdr-histogram-js';
import { validateConfig } from '../../src/config/load.ts';
import type { LimitRequest } from '../../src/ratelimit/keys.ts';
import type { Limiter } from '../../src/ratelimit/limiter.ts';
import { RateLimitRuntime } from '../../src/ratelimit/runtime.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { type PrivateRedis, startPrivateRedis } from '../../test/support/redis-server.ts';
import {
  fmt,
  type ScenarioOptions,
  type ScenarioOutput,
  type Target,
  trackChild,
} from '../support/harness.ts';
import type { RunReport, Setup, SystemName } from './replica.ts';

const REQ: LimitRequest = {
  method: 'GET',
  path: '/trips/42',
  headers: { 'x-app': 'acme' },
  ctx: { headers: { 'x-gateway-app': 'acme', 'x-gateway-plan': 'partner' } },
  principal: undefined,
};

// ---------------------------------------------------------------------------------------------
// 1. What a decision costs

interface CostRow {
  system: string;
  concurrency: number;
  decisions: number;
  meanNs: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  storeCallsPerDecision: number;
}

function runtimeFor(rateLimits: object): RateLimitRuntime {
  const config = validateConfig({ context: { headers: ['x-gateway-app', 'x-gateway-plan'] }, rateLimits });
  return new RateLimitRuntime(config, {
    clock: () => performance.now(),
    logger: silentLogger,
    endpointsOf: () => 1,
  });
}

async function connected(rt: RateLimitRuntime): Promise<void> {
  const until = Date.now() + 5_000;
  while (rt.store.snapshot().state !== 'connected') {
    if (Date.now() > until) throw new Error('redis did not connect');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Mean cost of a synchronous check in a tight loop (no per-call clock in the way): the median of
 * seven rounds, each paying for its own garbage (the machine is shared: one round can be unlucky).
 */
function tightLoop(limiter: Limiter, n: number): number {
  const rounds: number[] = [];
  for (let r = 0; r < 7; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n / 7; i++) limiter.check(REQ);
    rounds.push(Number(process.hrtime.bigint() - t0) / (n / 7));
  }
  return rounds.sort((a, b) => a - b)[3] as number;
}

/**
 * Closed loops at `concurrency`: each loop times one check (awaiting it when it waits for the
 * store), then yields to the event loop (as a server does between requests: the store's answers
 * need it) before the next.
 */
async function timed(
  limiter: Limiter,
  concurrency: number,
  ms: number,
): Promise<{ hist: hdr.Histogram; n: number }> {
  const hist = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 10_000_000_000,
    numberOfSignificantValueDigits: 3,
  });
  let n = 0;
  const until = performance.now() + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        const t0 = process.hrtime.bigint();
        const v = limiter.check(REQ);
        if (v instanceof Promise) await v;
        hist.recordValue(Number(process.hrtime.bigint() - t0));
        n++;
        await new Promise(setImmediate);
      }
    }),
  );
  return { hist, n };
}

async function cost(redis: PrivateRedis, quick: boolean): Promise<{ rows: CostRow[]; targets: Target[] }> {
  const ms = quick ? 1_000 : 3_000;
  const huge = [{ requests: 100_000_000, per: '1s' }];
  const systems: { name: string; rl: object }[] = [
    { name: 'in-process', rl: { policies: [{ name: 'per-app', key: { header: 'x-app' }, limits: huge }] } },
    {
      name: 'in-process, plan via gateway context',
      rl: {
        plans: { partner: { limits: { hits: huge } } },
        credentials: [{ context: { app: 'x-gateway-app', plan: 'x-gateway-plan' } }],
      },
    },
    ...(
      [
        ['lease', 'lease', undefined],
        ['lease (k ≤ 25)', 'lease', 25],
        ['exact', 'exact', undefined],
      ] as const
    ).map(([name, mode, leaseMax]) => ({
      name,
      rl: {
        domain: `bench-${randomUUID()}`,
        store: { redis: redis.url, mode, timeout: '10ms', ...(leaseMax ? { leaseMax } : {}) },
        policies: [{ name: 'per-app', key: { header: 'x-app' }, limits: huge }],
      },
    })),
  ];
  const rows: CostRow[] = [];
  for (const s of systems) {
    const rt = runtimeFor(s.rl);
    if (rt.store.snapshot().kind === 'redis') await connected(rt);
    const limiter = rt.inbound as Limiter;
    const inProcess = rt.store.snapshot().kind === 'memory';
    // Warm up (JIT, leases), then measure.
    await timed(limiter, 1, 300);
    const meanNs = inProcess ? tightLoop(limiter, quick ? 300_000 : 2_000_000) : Number.NaN;
    for (const concurrency of [1, 16]) {
      const calls0 = rt.store.snapshot().calls ?? 0;
      const { hist, n } = await timed(limiter, concurrency, ms);
      const calls = (rt.store.snapshot().calls ?? 0) - calls0;
      rows.push({
        system: s.name,
        concurrency,
        decisions: n,
        meanNs: concurrency === 1 ? meanNs : Number.NaN,
        p50Us: hist.getValueAtPercentile(50) / 1000,
        p99Us: hist.getValueAtPercentile(99) / 1000,
        p999Us: hist.getValueAtPercentile(99.9) / 1000,
        maxUs: hist.maxValue / 1000,
        storeCallsPerDecision: calls / n,
      });
      hist.destroy();
    }
    await rt.close();
  }
  const targets: Target[] = [];
  for (const r of rows) {
    if (r.system === 'lease') {
      targets.push({
        where: `cost, lease, concurrency ${r.concurrency}`,
        check: 'p50 ≤ 25 µs',
        value: `${fmt(r.p50Us, 1)} µs`,
        pass: r.p50Us <= 25,
      });
      targets.push({
        where: `cost, lease, concurrency ${r.concurrency}`,
        check: 'p99 ≤ 1 ms',
        value: `${fmt(r.p99Us, 1)} µs`,
        pass: r.p99Us <= 1_000,
      });
    }
    if (r.system === 'exact' && r.concurrency === 1)
      targets.push({
        where: 'cost, exact, concurrency 1',
        check: 'p50 ≤ 150 µs (loopback)',
        value: `${fmt(r.p50Us, 1)} µs`,
        pass: r.p50Us <= 150,
      });
    if (r.system === 'in-process' && r.concurrency === 1)
      targets.push({
        where: 'cost, in-process',
        check: 'well under 1 µs (mean, tight loop, median of 7 rounds)',
        value: `${fmt(r.meanNs, 0)} ns`,
        pass: r.meanNs < 500,
      });
  }
  return { rows, targets };
}

// ---------------------------------------------------------------------------------------------
// Replica processes

interface Replica {
  child: ChildProcess;
  ask<T>(m: object): Promise<T>;
}

async function startReplica(): Promise<Replica> {
  const script = fileURLToPath(new URL('./replica.ts', import.meta.url));
  const child = fork(script, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  trackChild(child);
  let pending: ((m: { ok: boolean; error?: string; report?: unknown }) => void) | undefined;
  child.on('message', (m: { ok: boolean; error?: string; report?: unknown }) => pending?.(m));
  return {
    child,
    ask<T>(m: object): Promise<T> {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('replica did not answer in 60 s')), 60_000);
        pending = (r) => {
          clearTimeout(timer);
          if (r.ok) resolve(r.report as T);
          else reject(new Error(r.error));
        };
        child.send(m);
      });
    },
  };
}

async function replicas(n: number, setup: Omit<Setup, 'cmd'>): Promise<Replica[]> {
  const list = await Promise.all(Array.from({ length: n }, () => startReplica()));
  await Promise.all(list.map((r) => r.ask({ cmd: 'setup', ...setup })));
  return list;
}

async function stop(list: Replica[]): Promise<void> {
  await Promise.all(list.map((r) => r.ask({ cmd: 'close' }).catch(() => undefined)));
  for (const r of list) r.child.kill('SIGKILL');
}

/** Admitted decisions per whole wall-clock second within [from, to). */
function perWindow(reports: RunReport[], from: number, to: number): Map<number, number> {
  const windows = new Map<number, number>();
  for (let w = Math.ceil(from / 1000); (w + 1) * 1000 <= to; w++) windows.set(w, 0);
  for (const r of reports)
    for (const [at, , ok] of r.decisions) {
      const w = Math.floor(at / 1000);
      if (ok && windows.has(w)) windows.set(w, (windows.get(w) as number) + 1);
    }
  return windows;
}

// ---------------------------------------------------------------------------------------------
// 2. Accuracy: 4 processes share 500/s, offered 2,000/s

interface AccuracyRow {
  system: SystemName;
  windows: number;
  min: number;
  median: number;
  max: number;
  aboveLimit: number;
  admittedPct: number;
  storeCallsPerSecond: number;
  fallbackDecisions: number;
}

async function accuracy(
  redis: PrivateRedis,
  quick: boolean,
): Promise<{ rows: AccuracyRow[]; targets: Target[] }> {
  const limit = 500;
  const n = 4;
  const durationMs = quick ? 3_500 : 6_500;
  const rows: AccuracyRow[] = [];
  for (const system of ['lease', 'exact', 'exact-100ms', 'kong-100ms', 'kong-1s', 'local'] as SystemName[]) {
    const list = await replicas(n, {
      system,
      redis: redis.url,
      domain: `acc-${randomUUID()}`,
      limit,
      replicas: n,
    });
    // Heartbeats: after a second every process knows they are four (its share if Redis is slow).
    await new Promise((r) => setTimeout(r, 1_200));
    const startAt = Math.ceil((Date.now() + 500) / 1000) * 1000;
    const reports = await Promise.all(
      list.map((r) => r.ask<RunReport>({ cmd: 'run', startAt, durationMs, rate: limit })),
    );
    await stop(list);
    const windows = [...perWindow(reports, startAt, startAt + durationMs).values()];
    const sorted = [...windows].sort((a, b) => a - b);
    rows.push({
      system,
      windows: windows.length,
      min: sorted[0] ?? 0,
      median: sorted[Math.floor(sorted.length / 2)] ?? 0,
      max: sorted[sorted.length - 1] ?? 0,
      aboveLimit: windows.filter((w) => w > limit).length,
      admittedPct: (100 * windows.reduce((a, b) => a + b, 0)) / (limit * windows.length),
      storeCallsPerSecond: reports.reduce((a, r) => a + r.calls, 0) / (durationMs / 1000),
      fallbackDecisions: reports.reduce((a, r) => a + r.fallbackDecisions, 0),
    });
  }
  const targets: Target[] = [];
  for (const r of rows.filter((x) => x.system === 'lease')) {
    targets.push({
      where: `accuracy, ${r.system}, 4 processes, 4× overload`,
      check: 'admitted never above the limit in any 1 s window',
      value: `max ${r.max} of 500`,
      pass: r.aboveLimit === 0,
    });
    targets.push({
      where: `accuracy, ${r.system}, 4 processes, 4× overload`,
      check: '≥ 90% of the limit admitted',
      value: `${fmt(r.admittedPct, 1)}%`,
      pass: r.admittedPct >= 90,
    });
  }
  return { rows, targets };
}

// ---------------------------------------------------------------------------------------------
// 3. Redis killed under load

interface OutageResult {
  timeline: { second: number; admitted: number; phase: string }[];
  maxLatencyUs: number;
  maxLatencyOutageUs: number;
  /** Decisions that waited for the store, from the kill to a second after the restart. */
  waitsOutage: number;
  /** The most this process's timers ran late (event-loop delay) in the same span, µs. */
  maxLoopDelayOutageUs: number;
  fallbackAfterMs: number[];
  resumedAfterMs: number[];
  slowDecisions: number;
}

async function outage(
  redis: PrivateRedis,
  quick: boolean,
): Promise<{ result: OutageResult; targets: Target[] }> {
  const limit = 200;
  const timeoutMs = 10;
  const durationMs = quick ? 6_000 : 8_000;
  const killAt = 2_000;
  const restartAt = quick ? 4_000 : 5_000;
  const list = await replicas(2, {
    system: 'lease',
    redis: redis.url,
    domain: `out-${randomUUID()}`,
    limit,
    replicas: 2,
    timeout: `${timeoutMs}ms`,
  });
  // Let the heartbeats tell both replicas they are two (their local share is then limit / 2).
  await new Promise((r) => setTimeout(r, 1_200));
  const startAt = Math.ceil((Date.now() + 300) / 1000) * 1000;
  const runs = Promise.all(list.map((r) => r.ask<RunReport>({ cmd: 'run', startAt, durationMs, rate: 300 })));
  const killedAt = startAt + killAt;
  const restartedAt = startAt + restartAt;
  await new Promise((r) => setTimeout(r, killedAt - Date.now()));
  await redis.kill();
  await new Promise((r) => setTimeout(r, Math.max(0, restartedAt - Date.now())));
  await redis.restart();
  const reports = await runs;
  await stop(list);
  const windows = perWindow(reports, startAt, startAt + durationMs);
  const timeline = [...windows.entries()].map(([w, admitted]) => {
    const t = w * 1000;
    const phase =
      t + 1000 <= killedAt
        ? 'Redis up'
        : t >= killedAt && t + 1000 <= restartedAt
          ? 'Redis down'
          : t >= restartedAt
            ? 'after restart'
            : 'transition';
    return { second: (t - startAt) / 1000, admitted, phase };
  });
  let maxAll = 0;
  let maxOut = 0;
  let slow = 0;
  let waits = 0;
  let lagOut = 0;
  const inOutage = (at: number) => at >= killedAt && at < restartedAt + 1_000;
  for (const r of reports) {
    for (const [at, us, , waited] of r.decisions) {
      maxAll = Math.max(maxAll, us);
      if (inOutage(at)) {
        maxOut = Math.max(maxOut, us);
        if (waited) waits++;
      }
      if (us > timeoutMs * 1000) slow++;
    }
    for (const [at, us] of r.loopDelay) if (inOutage(at)) lagOut = Math.max(lagOut, us);
  }
  const firstAfter = (r: RunReport, after: number, state: string) =>
    (r.states.find(([at, st]) => at >= after && st === state)?.[0] ?? Number.NaN) - after;
  const result: OutageResult = {
    timeline,
    maxLatencyUs: maxAll,
    maxLatencyOutageUs: maxOut,
    waitsOutage: waits,
    maxLoopDelayOutageUs: lagOut,
    fallbackAfterMs: reports.map((r) => firstAfter(r, killedAt, 'fallback')),
    resumedAfterMs: reports.map((r) => firstAfter(r, restartedAt, 'connected')),
    slowDecisions: slow,
  };
  const down = timeline.filter((t) => t.phase === 'Redis down');
  const targets: Target[] = [
    {
      where: 'Redis killed under load (lease, 2 processes)',
      check: `no request waits longer than the command timeout (${timeoutMs} ms), beyond the machine's own delay`,
      value: `max wait ${fmt(maxOut / 1000, 2)} ms (${waits} decisions waited for Redis; the event loop ran up to ${fmt(lagOut / 1000, 1)} ms late meanwhile; ${slow} decisions over ${timeoutMs} ms in the whole run)`,
      pass: maxOut <= timeoutMs * 1000 + lagOut + 2_000,
    },
    {
      where: 'Redis killed under load (lease, 2 processes)',
      check: 'local fallback within one window',
      value: `fallback after ${result.fallbackAfterMs.map((x) => `${fmt(x, 0)} ms`).join(', ')}; down windows admitted ${down.map((d) => d.admitted).join(', ')} (limit ${limit})`,
      pass: result.fallbackAfterMs.every((x) => x <= 1_000) && down.every((d) => d.admitted <= limit * 1.05),
    },
    {
      where: 'Redis killed under load (lease, 2 processes)',
      check: 'sharing resumes by itself when Redis returns',
      value: `connected again after ${result.resumedAfterMs.map((x) => `${fmt(x, 0)} ms`).join(', ')}`,
      pass: result.resumedAfterMs.every((x) => Number.isFinite(x) && x <= 3_000),
    },
  ];
  return { result, targets };
}

// ---------------------------------------------------------------------------------------------

export async function ratelimit(opts: ScenarioOptions): Promise<ScenarioOutput> {
  const redis = await startPrivateRedis();
  try {
    const c = await cost(redis, opts.quick);
    const a = await accuracy(redis, opts.quick);
    const o = await outage(redis, opts.quick);
    const table = [
      '### What a decision costs (limiter.check, per request)',
      '',
      '| system | concurrency | decisions | mean (tight loop) | p50 | p99 | p99.9 | max | store calls / decision |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...c.rows.map(
        (r) =>
          `| ${r.system} | ${r.concurrency} | ${r.decisions} | ${Number.isNaN(r.meanNs) ? '-' : `${fmt(r.meanNs, 0)} ns`} | ${fmt(r.p50Us, 2)} µs | ${fmt(r.p99Us, 2)} µs | ${fmt(r.p999Us, 1)} µs | ${fmt(r.maxUs / 1000, 2)} ms | ${fmt(r.storeCallsPerDecision, 3)} |`,
      ),
      '',
      '### Accuracy: 4 processes share 500 requests/s, each offered 500/s (4× overload)',
      '',
      '| system | windows | admitted per 1 s window: min | median | max | windows above 500 | admitted / limit | store calls/s | decided without the store |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...a.rows.map(
        (r) =>
          `| ${r.system} | ${r.windows} | ${r.min} | ${r.median} | ${r.max} | ${r.aboveLimit} | ${fmt(r.admittedPct, 1)}% | ${fmt(r.storeCallsPerSecond, 0)} | ${r.fallbackDecisions} |`,
      ),
      '',
      '### Redis killed under load (lease, 2 processes, 200/s shared, each offered 300/s)',
      '',
      '| second | phase | admitted (both processes) |',
      '|---:|---|---:|',
      ...o.result.timeline.map((t) => `| ${t.second} | ${t.phase} | ${t.admitted} |`),
      '',
      `Max decision latency: ${fmt(o.result.maxLatencyUs / 1000, 2)} ms over the run, ${fmt(o.result.maxLatencyOutageUs / 1000, 2)} ms from the kill to a second after the restart (${o.result.waitsOutage} decisions waited for Redis then; the processes' event loops ran up to ${fmt(o.result.maxLoopDelayOutageUs / 1000, 1)} ms late); fallback ${o.result.fallbackAfterMs.map((x) => `${fmt(x, 0)} ms`).join(', ')} after the kill; connected again ${o.result.resumedAfterMs.map((x) => `${fmt(x, 0)} ms`).join(', ')} after the restart.`,
    ].join('\n');
    return {
      results: { cost: c.rows, accuracy: a.rows, outage: o.result },
      table,
      targets: [...c.targets, ...a.targets, ...o.targets],
      notes: [
        'Decisions are timed around limiter.check() in the bench process (no HTTP): the added latency a request sees. Redis is a private redis-server on loopback; client, replicas and Redis share the machine’s cores.',
        'Accuracy: per whole wall-clock second (the store’s windows are the same clock on one machine), first and last partial seconds left out. kong-100ms / kong-1s: each process counts locally and adds its count to a Redis counter every 100 ms / 1 s (Kong rate-limiting-advanced’s sync_rate); local: each process enforces 500 / 4 on its own.',
        'Outage: the redis-server is SIGKILLed under load and restarted on the same port; the replicas learned from the store’s heartbeat that they are two, so each enforces 200 / 2 while it is down.',
      ],
    };
  } finally {
    await redis.stop();
  }
}

// Run on its own: `node bench/ratelimit/run.ts [--quick]`.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = await ratelimit({ quick: process.argv.includes('--quick') });
  console.log(out.table);
  for (const t of out.targets ?? [])
    console.log(`${t.pass ? 'pass' : 'MISS'}  ${t.where}: ${t.check}: ${t.value}`);
  process.exit(0);
}
