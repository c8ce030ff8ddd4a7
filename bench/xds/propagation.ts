/**
 * xDS bench (script): meshwork as an xDS client of the test ADS control plane (test/support).
 *
 *   1. push → traffic moved: a route's weighted_clusters flips between two HTTP upstreams, 20
 *      times; each round times from the control plane's push to the first response from the new
 *      upstream to a request sent after the push (requests run back to back, concurrency 4).
 *      The same 20 flips with @grpc/grpc-js-xds (a gRPC client on the same control plane, gRPC
 *      upstreams): the peer.
 *   2. 1,000 clusters: 100 listeners × 10 weighted clusters × 2 endpoints each, all listed up
 *      front: time to the first complete configuration, heap and CPU for it (the control plane
 *      runs in this process: first-sync CPU includes its encoding); then the cost of one push (a
 *      route weight change, an endpoint change) on that mesh, the client's CPU apart from the
 *      control plane's (which encodes the whole state of the world of the type each time).
 *
 *   node bench/xds/propagation.ts [--rounds 20] [--quick]
 *
 * Prints tables (markdown) and a JSON summary on the last line. Loopback only.
 */
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { createMesh, type Mesh } from '../../src/mesh.ts';
import { named, startServer, type TestServer } from '../../test/support/servers.ts';
import {
  apiListener,
  edsCluster,
  loadAssignment,
  routeConfig,
  weightedRoute,
  XdsControlPlane,
} from '../../test/support/xds-control-plane.ts';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '20' }, quick: { type: 'boolean', default: false } },
});
const ROUNDS = values.quick ? 10 : Number(values.rounds);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const require = createRequire(import.meta.url);

function pct(samples: number[], q: number): number {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] as number;
}
const r1 = (x: number) => Math.round(x * 10) / 10;

function bootstrap(cp: XdsControlPlane) {
  return {
    xds_servers: [
      { server_uri: cp.address, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] },
    ],
    node: { id: 'bench', locality: { zone: 'a' } },
  };
}

/** Runs `send` back to back on `concurrency` loops until stopped; `seen(backend, sentAt)` per answer. */
function load(
  concurrency: number,
  send: () => Promise<string>,
  seen: (backend: string, sentAt: number) => void,
): () => Promise<void> {
  let stop = false;
  const loops = Array.from({ length: concurrency }, async () => {
    while (!stop) {
      const at = performance.now();
      try {
        seen(await send(), at);
      } catch {
        await sleep(1);
      }
    }
  });
  return async () => {
    stop = true;
    await Promise.all(loops);
  };
}

/** Flips weights `ROUNDS` times; returns push → first response from the new backend (ms). */
async function flips(cp: XdsControlPlane, routeName: string, send: () => Promise<string>): Promise<number[]> {
  let target = 'blue';
  let pushedAt = 0;
  let waiting: ((ms: number) => void) | undefined;
  const stop = load(4, send, (backend, sentAt) => {
    if (waiting && backend === target && sentAt >= pushedAt) {
      const done = waiting;
      waiting = undefined;
      done(performance.now() - pushedAt);
    }
  });
  const samples: number[] = [];
  await sleep(300);
  for (let i = 0; i < ROUNDS; i++) {
    target = target === 'blue' ? 'green' : 'blue';
    const moved = new Promise<number>((resolve) => {
      waiting = resolve;
    });
    pushedAt = performance.now();
    cp.set('route', [
      routeConfig(routeName, [
        weightedRoute(target === 'blue' ? { blue: 100, green: 0 } : { blue: 0, green: 100 }, ''),
      ]),
    ]);
    samples.push(await Promise.race([moved, sleep(10_000).then(() => Number.NaN)]));
    await sleep(100);
  }
  await stop();
  return samples;
}

async function pushToTraffic(): Promise<Record<string, unknown>> {
  const cp = await XdsControlPlane.start();
  const [blue, green] = await Promise.all([startServer(named('blue')), startServer(named('green'))]);
  cp.set('listener', [apiListener('echo', 'echo-routes')]);
  cp.set('route', [routeConfig('echo-routes', [weightedRoute({ blue: 100, green: 0 }, '')])]);
  cp.set('cluster', [edsCluster('blue'), edsCluster('green')]);
  cp.set('endpoint', [
    loadAssignment('blue', [{ endpoints: [{ address: '127.0.0.1', port: blue.port }] }]),
    loadAssignment('green', [{ endpoints: [{ address: '127.0.0.1', port: green.port }] }]),
  ]);
  const mesh = createMesh({ env: {}, xds: { bootstrap: bootstrap(cp) } });
  await (await mesh.fetch('http://echo/')).text();
  const meshSamples = await flips(cp, 'echo-routes', async () => (await mesh.fetch('http://echo/')).text());
  await mesh.close();

  // The peer: @grpc/grpc-js-xds on the same control plane, gRPC upstreams.
  const gBlue = await grpcServer('blue');
  const gGreen = await grpcServer('green');
  cp.set('listener', [apiListener('grpc-echo', 'grpc-routes')]);
  cp.set('route', [routeConfig('grpc-routes', [weightedRoute({ 'g-blue': 100, 'g-green': 0 }, '')])]);
  cp.set('cluster', [edsCluster('blue'), edsCluster('green'), edsCluster('g-blue'), edsCluster('g-green')]);
  cp.set('endpoint', [
    loadAssignment('blue', [{ endpoints: [{ address: '127.0.0.1', port: blue.port }] }]),
    loadAssignment('green', [{ endpoints: [{ address: '127.0.0.1', port: green.port }] }]),
    loadAssignment('g-blue', [{ endpoints: [{ address: '127.0.0.1', port: gBlue.port }] }]),
    loadAssignment('g-green', [{ endpoints: [{ address: '127.0.0.1', port: gGreen.port }] }]),
  ]);
  require('@grpc/grpc-js-xds').register();
  const client = new grpc.Client('xds:///grpc-echo', grpc.credentials.createInsecure(), {
    'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config': JSON.stringify(bootstrap(cp)),
  });
  const who = () =>
    new Promise<string>((resolve, reject) =>
      client.makeUnaryRequest(
        '/test.Echo/Who',
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.alloc(0),
        (err, res) => (err ? reject(err) : resolve((res as Buffer).toString())),
      ),
    );
  await who();
  // The flips rewrite the route with clusters named blue/green: point them at the gRPC upstreams.
  cp.set('endpoint', [
    loadAssignment('blue', [{ endpoints: [{ address: '127.0.0.1', port: gBlue.port }] }]),
    loadAssignment('green', [{ endpoints: [{ address: '127.0.0.1', port: gGreen.port }] }]),
  ]);
  const grpcSamples = await flips(cp, 'grpc-routes', who);
  client.close();
  gBlue.close();
  gGreen.close();
  await Promise.all([blue.close(), green.close(), cp.close()]);
  const row = (s: number[]) => ({
    p50: r1(pct(s, 0.5)),
    p99: r1(pct(s, 0.99)),
    max: r1(Math.max(...s)),
    lost: s.filter(Number.isNaN).length,
  });
  return { rounds: ROUNDS, meshwork: row(meshSamples), grpcJsXds: row(grpcSamples) };
}

async function grpcServer(name: string): Promise<{ port: number; close(): void }> {
  const server = new grpc.Server();
  server.addService(
    {
      Who: {
        path: '/test.Echo/Who',
        requestStream: false,
        responseStream: false,
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      },
    } as grpc.ServiceDefinition,
    {
      Who: (_c: unknown, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(name)),
    } as grpc.UntypedServiceImplementation,
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  return { port, close: () => server.forceShutdown() };
}

async function thousandClusters(): Promise<Record<string, unknown>> {
  const LISTENERS = 100;
  const PER = 10;
  const cp = await XdsControlPlane.start();
  const upstreams: TestServer[] = await Promise.all([startServer(named('a')), startServer(named('b'))]);
  const listeners: object[] = [];
  const routes: object[] = [];
  const clusters: object[] = [];
  const cla: object[] = [];
  const [a, b] = upstreams as [TestServer, TestServer];
  const at = (...ss: TestServer[]) => ss.map((u) => ({ address: '127.0.0.1', port: u.port }));
  const clusterName = (l: number, c: number) => `outbound|80||svc-${l}-${c}.bench.svc.cluster.local`;
  const weightsFor = (l: number, first: number) =>
    Object.fromEntries(Array.from({ length: PER }, (_, c) => [clusterName(l, c), c === first ? 91 : 1]));
  for (let l = 0; l < LISTENERS; l++) {
    for (let c = 0; c < PER; c++) {
      clusters.push(edsCluster(clusterName(l, c)));
      // Listener 7's first two clusters answer from one upstream each (to see a weight flip);
      // listener 3 sends everything to its first cluster (to see an endpoint change).
      const eps =
        l === 7 && c === 0 ? at(a) : l === 7 && c === 1 ? at(b) : l === 3 && c === 0 ? at(a) : at(a, b);
      cla.push(loadAssignment(clusterName(l, c), [{ endpoints: eps }]));
    }
    listeners.push(apiListener(`svc-${l}.bench.svc.cluster.local:80`, `route-${l}`));
    const weights = l === 3 ? { [clusterName(3, 0)]: 100 } : weightsFor(l, 0);
    routes.push(routeConfig(`route-${l}`, [weightedRoute(weights, '')]));
  }
  cp.set('listener', listeners);
  cp.set('route', routes);
  cp.set('cluster', clusters);
  cp.set('endpoint', cla);
  globalThis.gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const names = Array.from({ length: LISTENERS }, (_, l) => `svc-${l}.bench.svc.cluster.local:80`);
  const mesh: Mesh = createMesh({ env: {}, xds: { bootstrap: bootstrap(cp), listeners: names } });
  await until(() => Object.keys(mesh.snapshot().services).length >= LISTENERS + (LISTENERS - 1) * PER + 1);
  await cp.waitForAck('endpoint', undefined, 60_000);
  const syncMs = performance.now() - t0;
  const cpuSync = process.cpuUsage(cpu0);
  // Every listener answers once (pools are made on first use).
  for (const n of names) await (await mesh.fetch(`http://${n}/`)).text();
  globalThis.gc?.();
  const heap = process.memoryUsage().heapUsed - heap0;
  // One push of each kind, timed to the first request that sees it (requests back to back).
  const pushes: Record<string, number> = {};
  const timePush = async (what: string, url: string, push: () => void, done: (body: string) => boolean) => {
    const c0 = process.cpuUsage();
    const t = performance.now();
    push();
    // The control plane runs in this process: its encoding of the push is counted apart.
    const cp0 = process.cpuUsage(c0);
    pushes[`${what}ControlPlaneCpuMs`] = r1((cp0.user + cp0.system) / 1000);
    let tries = 0;
    while (!done(await (await mesh.fetch(url)).text())) {
      if (++tries > 100_000) throw new Error(`${what}: not seen`);
    }
    const cpu = process.cpuUsage(c0);
    pushes[`${what}Ms`] = r1(performance.now() - t);
    pushes[`${what}CpuMs`] = r1((cpu.user + cpu.system - cp0.user - cp0.system) / 1000);
  };
  // Route weights 91/1 → only the second cluster (upstream b).
  await timePush(
    'routeWeight',
    'http://svc-7.bench.svc.cluster.local/',
    () => cp.set('route', [routeConfig('route-7', [weightedRoute({ [clusterName(7, 1)]: 100 }, '')])]),
    (body) => body === 'b',
  );
  // Endpoints of one cluster: a → b.
  await timePush(
    'endpoint',
    'http://svc-3.bench.svc.cluster.local/',
    () => cp.set('endpoint', [loadAssignment(clusterName(3, 0), [{ endpoints: at(b) }])]),
    (body) => body === 'b',
  );
  await mesh.close();
  await Promise.all([...upstreams.map((s) => s.close()), cp.close()]);
  return {
    clusters: LISTENERS * PER,
    listeners: LISTENERS,
    endpoints: LISTENERS * PER * upstreams.length,
    firstSyncMs: Math.round(syncMs),
    firstSyncCpuMs: Math.round((cpuSync.user + cpuSync.system) / 1000),
    heapMB: Math.round((heap / 1024 / 1024) * 10) / 10,
    heapKBPerCluster: Math.round(heap / 1024 / (LISTENERS * PER)),
    ...pushes,
  };
}

async function until(cond: () => boolean, ms = 60_000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error('timed out');
    await sleep(10);
  }
}

const push = await pushToTraffic();
const big = await thousandClusters();
const p = push as {
  meshwork: { p50: number; p99: number; max: number; lost: number };
  grpcJsXds: { p50: number; p99: number; max: number; lost: number };
};
console.log(`xDS push → traffic moved (${ROUNDS} weight flips, concurrency 4)\n`);
console.log('| client | p50 ms | p99 ms | max ms | flips not seen in 10 s |');
console.log('| --- | --- | --- | --- | --- |');
console.log(
  `| meshwork (HTTP) | ${p.meshwork.p50} | ${p.meshwork.p99} | ${p.meshwork.max} | ${p.meshwork.lost} |`,
);
console.log(
  `| @grpc/grpc-js-xds (gRPC) | ${p.grpcJsXds.p50} | ${p.grpcJsXds.p99} | ${p.grpcJsXds.max} | ${p.grpcJsXds.lost} |`,
);
console.log(`\n1,000 clusters: ${JSON.stringify(big)}`);
console.log(JSON.stringify({ push, thousand: big }));
process.exit(0);
