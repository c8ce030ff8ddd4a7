/**
 * Resilience bench (loopback only, bounded): node bench/resilience/run.ts
 *  1. success rate with one refusing and one 503 replica out of five, defaults only;
 *  2. attempts per request in a total outage, with and without the retry budget;
 *  3. p99 with one slow replica (100 ms on a quarter of its answers), hedging off and on;
 *  4. opossum's per-request overhead (the service-level breaker's acquire + settle).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { ServiceBreaker } from '../../src/breaker/breaker.ts';
import { createMesh } from '../../src/mesh.ts';

const HARD_LIMIT_MS = 120_000;
setTimeout(() => {
  console.error('bench exceeded its bound, exiting');
  process.exit(1);
}, HARD_LIMIT_MS).unref();

interface Upstream {
  address: string;
  hits: number;
  close(): Promise<void>;
}

async function upstream(handle: (res: import('node:http').ServerResponse) => void): Promise<Upstream> {
  const u = { hits: 0 } as Upstream;
  const server: Server = createServer((req, res) => {
    u.hits++;
    req.resume();
    req.on('end', () => handle(res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  u.address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  u.close = () =>
    new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return u;
}

async function refused(): Promise<string> {
  const u = await upstream((res) => res.end());
  await u.close();
  return u.address;
}

const ok = (res: import('node:http').ServerResponse) => res.end('ok');
const unavailable = (res: import('node:http').ServerResponse) => {
  res.statusCode = 503;
  res.end('down');
};

/** Runs `total` requests with `concurrency` workers; returns per-request latencies and statuses. */
async function load(
  fetch: (url: string) => Promise<Response>,
  total: number,
  concurrency: number,
): Promise<{ latencies: number[]; ok: number; failed: number }> {
  const latencies: number[] = [];
  let next = 0;
  let okCount = 0;
  let failed = 0;
  async function worker(): Promise<void> {
    while (next < total) {
      next++;
      const t0 = performance.now();
      try {
        const res = await fetch('http://svc/x');
        await res.arrayBuffer();
        if (res.status < 500) okCount++;
        else failed++;
      } catch {
        failed++;
      }
      latencies.push(performance.now() - t0);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { latencies, ok: okCount, failed };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function successRate(): Promise<void> {
  const dead = await refused();
  const bad = await upstream(unavailable);
  const good = await Promise.all([1, 2, 3].map(() => upstream(ok)));
  const mesh = createMesh({
    services: { svc: { discovery: { static: [dead, bad.address, ...good.map((g) => g.address)] } } },
  });
  const N = 10_000;
  const r = await load(mesh.fetch, N, 32);
  const snap = mesh.snapshot().services.svc;
  console.log(
    `1. one refusing + one 503 of five, defaults: success ${((100 * r.ok) / N).toFixed(3)}% (${r.ok}/${N}), ` +
      `upstream sends per request ${((bad.hits + good.reduce((a, g) => a + g.hits, 0)) / N).toFixed(3)}, ` +
      `503 replica hits ${bad.hits}, ejected: ${snap?.endpoints
        .filter((e) => e.ejected)
        .map((e) =>
          e.address === dead ? 'the refusing one' : e.address === bad.address ? 'the 503 one' : e.address,
        )
        .join(', ')}`,
  );
  await mesh.close();
  await Promise.all([bad, ...good].map((u) => u.close()));
}

async function outage(budget: boolean): Promise<number> {
  const ups = await Promise.all([1, 2, 3, 4, 5].map(() => upstream(unavailable)));
  const mesh = createMesh({
    services: {
      svc: {
        discovery: { static: ups.map((u) => u.address) },
        retryBudget: budget ? {} : { enabled: false },
        trafficPolicy: { outlierDetection: { enabled: false } },
      },
    },
  });
  const N = 5_000;
  await load(mesh.fetch, N, 32);
  const sends = ups.reduce((a, u) => a + u.hits, 0);
  const exhausted = mesh.snapshot().services.svc?.retryBudget?.exhaustedCount ?? 0;
  await mesh.close();
  await Promise.all(ups.map((u) => u.close()));
  console.log(
    `2. total outage, budget ${budget ? 'on ' : 'off'}: ${(sends / N).toFixed(3)} attempts per request (${sends}/${N}), budget refusals ${exhausted}`,
  );
  return sends / N;
}

async function slowReplica(hedge: boolean): Promise<void> {
  // Slow on a quarter of its answers: the tail P2C cannot predict, which is what hedging is for.
  const slow = await upstream((res) =>
    Math.random() < 0.25 ? setTimeout(() => res.end('slow'), 100) : res.end('ok'),
  );
  const fast = await Promise.all([1, 2, 3, 4].map(() => upstream(ok)));
  const mesh = createMesh({
    services: {
      svc: {
        discovery: { static: [slow.address, ...fast.map((f) => f.address)] },
        ...(hedge ? { retries: { hedge: { delay: '10ms', maxExtraLoad: 0.1 } } } : {}),
      },
    },
  });
  const N = 20_000;
  const r = await load(mesh.fetch, N, 4);
  const sorted = r.latencies.sort((a, b) => a - b);
  const sends = slow.hits + fast.reduce((a, f) => a + f.hits, 0);
  console.log(
    `3. one replica of five slow (100 ms on 25% of answers), hedging ${hedge ? 'on (10ms, 10%)' : 'off'}: p50 ${pct(sorted, 50).toFixed(2)} ms, ` +
      `p99 ${pct(sorted, 99).toFixed(2)} ms, p99.9 ${pct(sorted, 99.9).toFixed(2)} ms, sends/request ${(sends / N).toFixed(3)}, slow hits ${slow.hits}`,
  );
  await mesh.close();
  await Promise.all([slow, ...fast].map((u) => u.close()));
}

function breakerOverhead(): void {
  const b = new ServiceBreaker({ volumeThreshold: 1_000_000 });
  const N = 200_000;
  for (let i = 0; i < 10_000; i++) b.tryAcquire()?.(true);
  const t0 = performance.now();
  for (let i = 0; i < N; i++) b.tryAcquire()?.(true);
  const per = ((performance.now() - t0) * 1e6) / N;
  b.shutdown();
  console.log(
    `4. opossum acquire+settle: ${per.toFixed(0)} ns per request (synchronous part; its promise settles later)`,
  );
}

await successRate();
const on = await outage(true);
const off = await outage(false);
console.log(`   ratio budget on / off: ${(on / off).toFixed(3)}`);
await slowReplica(false);
await slowReplica(true);
breakerOverhead();
