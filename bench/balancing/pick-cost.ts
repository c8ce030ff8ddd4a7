/**
 * Cost of one pick and memory per endpoint, at 10, 1k and 10k endpoints, for each algorithm.
 * Run: node bench/balancing/pick-cost.ts   (Node 24; prints a table, writes nothing)
 *
 * - ns/pick: mean over many picks through createBalancer (panic guard + algorithm; no zone),
 *   with random loads on the endpoints and, for the hash algorithms, a fresh key per pick.
 * - balancer B/ep: memory held by one balancer's own state (rings, tables, arrays, including typed
 *   arrays outside the JS heap) / endpoints, averaged over enough instances to beat GC noise.
 * - endpoint B/ep: heap of one Endpoint object (its undici Pool, peak-EWMA, fields), measured once.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Endpoint } from '../../src/balancer/endpoint.ts';
import { createBalancer } from '../../src/balancer/index.ts';
import { loadBalancerSchema } from '../../src/balancer/schema.ts';
import type { Balancer } from '../../src/balancer/types.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function heap(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    // V8 frees array buffer backing stores on a background thread: give it time.
    await new Promise((resolve) => setTimeout(resolve, 30));
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers; // typed arrays (rings, tables) live outside the JS heap
}

function endpoints(n: number): Endpoint[] {
  const out: Endpoint[] = [];
  for (let i = 0; i < n; i++) {
    const host = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    const ep = new Endpoint({ address: `${host}:8080`, host, port: 8080, labels: {}, weight: 1 }, { now: 0 });
    ep.ewma.observe(5 + Math.random() * 50, 1);
    ep.inflight = Math.floor(Math.random() * 4);
    out.push(ep);
  }
  return out;
}

const ALGOS: [string, unknown][] = [
  ['PEAK_EWMA', { simple: 'PEAK_EWMA' }],
  ['LEAST_REQUEST', { simple: 'LEAST_REQUEST' }],
  ['ROUND_ROBIN', { simple: 'ROUND_ROBIN' }],
  ['RANDOM', { simple: 'RANDOM' }],
  ['ROUND_ROBIN weighted', { simple: 'ROUND_ROBIN' }],
  ['RANDOM weighted', { simple: 'RANDOM' }],
  ['RING_HASH', { consistentHash: { httpHeaderName: 'x-user' } }],
  ['MAGLEV', { consistentHash: { httpHeaderName: 'x-user', maglev: {} } }],
];
const SIZES = [10, 1_000, 10_000];
const KEYS = Array.from({ length: 4096 }, (_, i) => `user-${i * 7919}`);

function timePicks(b: Balancer, eps: Endpoint[], hashed: boolean, budgetMs: number): number {
  let picks = 0;
  let sink = 0;
  const start = performance.now();
  let elapsed = 0;
  // batches of 1000 picks until the time budget is spent
  while (elapsed < budgetMs) {
    for (let i = 0; i < 1000; i++) {
      const ep = b.pick(eps, { now: 2, hashKey: hashed ? KEYS[(picks + i) & 4095] : undefined });
      if (ep) sink++;
    }
    picks += 1000;
    elapsed = performance.now() - start;
  }
  if (sink === 0) throw new Error('no pick');
  return (elapsed * 1e6) / picks;
}

/** One row, in its own frame so that nothing it built outlives it (stack slots keep values alive). */
async function measure(name: string, input: unknown, n: number, eps: Endpoint[]): Promise<string[]> {
  const config = loadBalancerSchema.parse(input);
  // "weighted" rows give the endpoints weights 1, 2 and 3 in turn (the others use equal weights).
  const weighted = name.endsWith('weighted');
  for (let i = 0; i < eps.length; i++) (eps[i] as Endpoint).weight = weighted ? 1 + (i % 3) : 1;
  const hashed = config.consistentHash !== undefined;
  // Several instances (10k endpoints' worth) so that the state stands out of the heap's noise.
  const copies = Math.max(1, Math.floor(20_000 / n));
  const keep: Balancer[] = [];
  const h0 = await heap();
  for (let c = 0; c < copies; c++) {
    const bc = createBalancer(config, {});
    bc.update?.(eps);
    bc.pick(eps, { now: 2, hashKey: hashed ? 'warm' : undefined });
    keep.push(bc);
  }
  const h1 = await heap();
  const b = keep[0] as Balancer;
  keep.length = 1;
  timePicks(b, eps, hashed, 100); // warm-up (JIT)
  const ns = timePicks(b, eps, hashed, 400);
  keep.length = 0;
  return [name, String(n), ns.toFixed(0), ((h1 - h0) / n / copies).toFixed(1)];
}

const rows: string[][] = [];
let endpointBytes = 0;
for (const n of SIZES) {
  const before = await heap();
  const eps = endpoints(n);
  const afterEps = await heap();
  if (n === 10_000) endpointBytes = (afterEps - before) / n;
  for (const [name, input] of ALGOS) rows.push(await measure(name, input, n, eps));
  await Promise.all(eps.map((ep) => ep.closePool(1_000)));
}

const header = ['algorithm', 'endpoints', 'ns/pick', 'balancer B/ep'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
const line = (r: string[]) =>
  r.map((c, i) => (i < 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
console.log(`node ${process.version}, ${process.arch}`);
console.log(line(header));
for (const r of rows) console.log(line(r));
console.log(
  `\nendpoint object (undici Pool, peak-EWMA, fields): ~${endpointBytes.toFixed(0)} B per endpoint (at 10k)`,
);
