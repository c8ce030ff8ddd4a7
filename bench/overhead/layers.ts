// bench/overhead/layers: what meshwork's own code costs per request, without the network. Every
// undici Pool in this process answers at once from memory (Pool.prototype.dispatch is replaced
// by a stub that answers 200 on the next turn of the event loop), so raw undici and the mesh
// run the same transport-free path and the difference is the mesh: the dispatcher, the request
// layers, the balancer and the endpoint layers. CPU µs per request, median of interleaved
// rounds, concurrency 16. Three meshes: the defaults (retries, retry budget, outlier detection,
// telemetry hooks), and a bare one (retries, budget and outlier detection off); then undici's
// fetch on the stubbed Pool and mesh.fetch on the default mesh (what fetch costs on top).
// `node bench/overhead/layers.ts [--quick]`. A script scenario of bench/run.ts.
import { Pool, request, fetch as undiciFetch } from 'undici';
import { createMesh } from '../../src/index.ts';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 5 : 9;
const N = quick ? 50_000 : 100_000;
const CONCURRENCY = 16;

const body = Buffer.from('{"ok":true}');
const controller = {
  abort() {},
  pause() {},
  resume() {},
  aborted: false,
  paused: false,
  reason: null,
  rawHeaders: [],
  rawTrailers: [],
};
type StubHandler = {
  onRequestStart?: (c: unknown, ctx: unknown) => void;
  onResponseStart: (c: unknown, status: number, headers: Record<string, string>, msg: string) => void;
  onResponseData: (c: unknown, chunk: Buffer) => void;
  onResponseEnd: (c: unknown, trailers: Record<string, string>) => void;
};
(Pool.prototype as unknown as { dispatch: unknown }).dispatch = (_opts: unknown, handler: StubHandler) => {
  handler.onRequestStart?.(controller, {});
  setImmediate(() => {
    handler.onResponseStart(
      controller,
      200,
      { 'content-type': 'application/json', 'content-length': '11' },
      'OK',
    );
    handler.onResponseData(controller, body);
    handler.onResponseEnd(controller, {});
  });
  return true;
};

const pool = new Pool('http://127.0.0.1:9');
const defaults = createMesh({ env: {}, services: { up: { discovery: { static: ['127.0.0.1:9'] } } } });
const bare = createMesh({
  env: {},
  services: {
    up: {
      discovery: { static: ['127.0.0.1:9'] },
      retries: { attempts: 0 },
      retryBudget: { enabled: false },
      trafficPolicy: { outlierDetection: { enabled: false } },
    },
  },
});

const systems: Record<string, () => Promise<void>> = {
  'undici Pool (stubbed)': async () => {
    const r = await request('http://127.0.0.1:9/', { dispatcher: pool });
    await r.body.dump();
  },
  'mesh.dispatcher, defaults': async () => {
    const r = await request('http://up/', { dispatcher: defaults.dispatcher });
    await r.body.dump();
  },
  'mesh.dispatcher, bare': async () => {
    const r = await request('http://up/', { dispatcher: bare.dispatcher });
    await r.body.dump();
  },
  'undici fetch (stubbed)': async () => {
    const r = await undiciFetch('http://127.0.0.1:8080/', { dispatcher: pool }); // port 9 is on fetch's bad-port list; the stub ignores the origin;
    await r.arrayBuffer();
  },
  'mesh.fetch, defaults': async () => {
    const r = await defaults.fetch('http://up/');
    await r.arrayBuffer();
  },
};

async function round(call: () => Promise<void>, n: number): Promise<number> {
  let left = n;
  const cpu0 = process.cpuUsage();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (left-- > 0) await call();
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / n;
}

const names = Object.keys(systems);
for (const name of names) await round(systems[name] as () => Promise<void>, N / 2); // warm up
const samples: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
for (let i = 0; i < ROUNDS; i++)
  for (const name of names) samples[name]?.push(await round(systems[name] as () => Promise<void>, N));
await defaults.close();
await bare.close();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const base = median(samples[names[0] as string] as number[]);
const rows = [
  `No network: every Pool answers from memory. CPU µs per request, median of ${ROUNDS} interleaved rounds of ${N} requests, concurrency ${CONCURRENCY}.`,
  '',
  '| system | µs CPU / request | mesh cost (µs) |',
  '|---|---:|---:|',
  ...names.map((n) => {
    const m = median(samples[n] as number[]);
    return `| ${n} | ${m.toFixed(2)} | ${n === names[0] ? '—' : (m - base).toFixed(2)} |`;
  }),
];
console.log(rows.join('\n'));
