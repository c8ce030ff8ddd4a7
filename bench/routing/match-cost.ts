// The cost of routing one request: matching against no routes, one catch-all route and 100
// routes (the request falls through to the last one, the worst case), plus the destination
// pick and header/URI changes. Pure CPU, no I/O; time-bounded loops, median of interleaved rounds.
//   node bench/routing/match-cost.ts [--quick]
import os from 'node:os';
import { applyRequestRoute, compileRouter, type Router } from '../../src/routing/router.ts';
import { httpRoutesSchema } from '../../src/routing/schema.ts';

interface Case {
  name: string;
  router: Router;
  path: string;
  /** Also apply header/URI changes, as the routing layer will. */
  apply: boolean;
}

const headers = {
  host: 'reviews',
  'user-agent': 'undici',
  accept: 'application/json',
  'x-request-id': '0a1b2c3d-4e5f',
  traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  'x-tenant': 'globex',
  'x-gateway-route': 'public',
};

function routes(n: number, kind: 'prefix+header' | 'regex' | 'query'): Router {
  const list: unknown[] = [];
  for (let i = 0; i < n - 1; i++) {
    const match =
      kind === 'prefix+header'
        ? { uri: { prefix: `/svc${i}/` }, headers: { 'x-tenant': { exact: `t${i}` } } }
        : kind === 'regex'
          ? { uri: { regex: `/item/${i}/[0-9]+` }, headers: { 'x-tenant': { regex: `t${i}|u${i}` } } }
          : { uri: { prefix: '/reviews' }, queryParams: { v: { exact: `${i}` } } };
    list.push({ match: [match], route: [{ destination: { subset: `s${i}` } }] });
  }
  list.push({
    headers: { request: { set: { 'x-routed': 'yes' } } },
    route: [
      { destination: { subset: 'v1' }, weight: 90 },
      { destination: { subset: 'v2' }, weight: 10 },
    ],
  });
  return compileRouter(httpRoutesSchema.parse(list));
}

const cases: Case[] = [
  { name: 'no routes', router: compileRouter(undefined), path: '/reviews/1?x=1', apply: false },
  {
    name: '1 catch-all route (+apply)',
    router: routes(1, 'prefix+header'),
    path: '/reviews/1?x=1',
    apply: true,
  },
  {
    name: '100 routes, prefix+header',
    router: routes(100, 'prefix+header'),
    path: '/reviews/1?x=1',
    apply: false,
  },
  {
    name: '100 routes, prefix+header (+apply)',
    router: routes(100, 'prefix+header'),
    path: '/reviews/1?x=1',
    apply: true,
  },
  { name: '100 routes, regex uri+header', router: routes(100, 'regex'), path: '/item/7/x', apply: false },
  {
    name: '100 routes, query params',
    router: routes(100, 'query'),
    path: '/reviews/1?v=none&w=2',
    apply: false,
  },
];

let sink = 0;

function runFor(c: Case, ms: number): number {
  const req = { method: 'GET', path: c.path, headers };
  let ops = 0;
  const end = performance.now() + ms;
  while (performance.now() < end) {
    for (let i = 0; i < 1000; i++) {
      const d = c.router.route(req);
      if (d !== undefined) {
        sink += d.hit.index;
        if (c.apply) sink += applyRequestRoute(d, c.path, { ...headers }).length;
      }
    }
    ops += 1000;
  }
  return (ops / ms) * 1000;
}

export async function matchCost(opts: { quick: boolean }): Promise<{ results: unknown; table: string }> {
  const rounds = opts.quick ? 3 : 7;
  const ms = opts.quick ? 200 : 500;
  for (const c of cases) runFor(c, 100); // warm-up (JIT)
  const samples = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  for (let r = 0; r < rounds; r++) for (const c of cases) samples.get(c.name)!.push(runFor(c, ms));
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const base = median(samples.get('no routes')!);
  const results = cases.map((c) => {
    const opsPerSec = median(samples.get(c.name)!);
    return {
      case: c.name,
      opsPerSec: Math.round(opsPerSec),
      nsPerOp: Math.round(1e9 / opsPerSec),
      vsNoRoutes: base / opsPerSec,
    };
  });
  let table = '| case | ops/s | ns/op | cost vs no routes |\n|---|---:|---:|---:|\n';
  for (const r of results) {
    table += `| ${r.case} | ${r.opsPerSec.toLocaleString('en-US')} | ${r.nsPerOp} | ${r.vsNoRoutes.toFixed(1)}x |\n`;
  }
  return { results, table };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = process.argv.includes('--quick');
  console.log(`routing match cost, Node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown CPU'}`);
  const { table } = await matchCost({ quick });
  console.log(table);
  if (sink === 42) console.log('');
}
