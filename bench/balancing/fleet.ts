/**
 * A fleet-sized service: 10,000 endpoints in one EndpointSet (as Kubernetes headless services and
 * Consul catalogs have), fed by discovery changes, with churn (1% replaced every second) while
 * PEAK_EWMA picks run. Reports heap per endpoint (pools are made on first use), the pick cost at
 * 10,000 endpoints against 10 in the same run, and the time to apply each discovery update.
 * Run: node bench/balancing/fleet.ts [--quick]   (Node 24; prints a table, writes nothing)
 * Targets: ≤ 4 KiB of heap per endpoint, PEAK_EWMA pick ≤ 150 ns at 10,000 endpoints.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { EndpointSet } from '../../src/balancer/endpoint-set.ts';
import { createBalancer } from '../../src/balancer/index.ts';
import { loadBalancerSchema } from '../../src/balancer/schema.ts';
import type { DiscoveryChange, EndpointSpec } from '../../src/discovery/types.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const quick = process.argv.includes('--quick');
const N = 10_000;
const CHURN_SECONDS = quick ? 3 : 10;

async function heap(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 30));
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

let serial = 0;
function spec(): EndpointSpec {
  const i = serial++;
  const host = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  return { address: `${host}:8080`, host, port: 8080, labels: { app: 'svc' }, weight: 1, zone: undefined };
}

function newSet(): EndpointSet {
  return new EndpointSet({
    service: 'svc',
    provider: 'bench',
    balancer: createBalancer(loadBalancerSchema.parse({ simple: 'PEAK_EWMA' })),
    clock: () => performance.now(),
    logger: silentLogger,
    drainTimeoutMs: 0,
  });
}

function nsPerPick(set: EndpointSet, ms: number): number {
  const group = set.all;
  for (const ep of group.endpoints) {
    ep.ewma.observe(5 + Math.random() * 50, performance.now());
    ep.inflight = Math.floor(Math.random() * 4);
  }
  let picks = 0;
  let sink = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    for (let i = 0; i < 10_000; i++) if (group.balancer.pick(group.endpoints, { now })) sink++;
    picks += 10_000;
    now = performance.now();
  }
  if (sink === 0) throw new Error('no pick');
  for (const ep of group.endpoints) ep.inflight = 0;
  return ((now - start) * 1e6) / picks;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.99)] as number;

// 1. Memory: 10,000 endpoints inserted by discovery, no request yet (no pool).
const h0 = await heap();
const set = newSet();
let t0 = performance.now();
const initial = Array.from({ length: N }, () => ({ type: 'insert', endpoint: spec() }) as DiscoveryChange);
set.apply(initial);
const initialMs = performance.now() - t0;
const h1 = await heap();
const perEndpoint = (h1 - h0) / N;

// 2. Pick cost at 10 and at 10,000 endpoints (same run, same machine state), medians of rounds.
const small = newSet();
small.apply(Array.from({ length: 10 }, () => ({ type: 'insert', endpoint: spec() }) as DiscoveryChange));
const rounds = quick ? 3 : 7;
const at10: number[] = [];
const at10k: number[] = [];
for (let r = 0; r < rounds; r++) {
  at10.push(nsPerPick(small, 300));
  at10k.push(nsPerPick(set, 300));
}

// 3. Churn: every second 1% of the endpoints replaced (remove + insert in one update) while picking.
const updateMs: number[] = [];
const churnPicks: number[] = [];
const live = [...set.endpoints()].map((e) => e.address);
for (let s = 0; s < CHURN_SECONDS; s++) {
  const changes: DiscoveryChange[] = [];
  for (let i = 0; i < N / 100; i++) {
    const idx = Math.floor(Math.random() * live.length);
    changes.push({ type: 'remove', address: live[idx] as string });
    const next = spec();
    live[idx] = next.address;
    changes.push({ type: 'insert', endpoint: next });
  }
  t0 = performance.now();
  set.apply(changes);
  updateMs.push(performance.now() - t0);
  churnPicks.push(nsPerPick(set, quick ? 300 : 900));
  await new Promise((r) => setTimeout(r, 100));
}
const h2 = await heap();

console.log(`fleet: ${N} endpoints, PEAK_EWMA (Node ${process.versions.node})`);
console.log(`  heap per endpoint, no pool yet:     ${perEndpoint.toFixed(0)} B (target <= 4096)`);
console.log(`  initial insert of ${N}:            ${initialMs.toFixed(1)} ms`);
console.log(`  pick at 10 endpoints (median):      ${median(at10).toFixed(0)} ns`);
console.log(
  `  pick at ${N} endpoints (median):  ${median(at10k).toFixed(0)} ns (target <= 150), ratio to 10: ${(median(at10k) / median(at10)).toFixed(2)}`,
);
console.log(
  `  churn 1%/s for ${CHURN_SECONDS} s: update p50 ${median(updateMs).toFixed(1)} ms, max ${Math.max(...updateMs).toFixed(1)} ms, p99 ${p99(updateMs).toFixed(1)} ms; pick during churn ${median(churnPicks).toFixed(0)} ns`,
);
console.log(`  heap per endpoint after churn:      ${((h2 - h0) / N).toFixed(0)} B (drained ones released)`);
await Promise.all([set.close(0), small.close(0)]);
process.exit(0);
