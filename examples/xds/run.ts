// meshwork as a proxyless xDS client, end to end on 127.0.0.1: `node examples/xds/run.ts`.
//
// A control plane speaking ADS over a Unix socket, as Istio's agent serves istiod's answers to a
// proxyless pod (here the repository's test control plane, test/support/xds-control-plane.ts,
// which @grpc/grpc-js-xds checks in the tests), a bootstrap file named by GRPC_XDS_BOOTSTRAP as the
// grpc-agent template sets it, and two versions of a `reviews` service. The app only calls
// `http://reviews.default.svc.cluster.local:9080/`; everything else comes from the control plane:
//
//   1. all traffic to v1;  2. a canary, 80/20, pushed live;  3. everything to v2, with a route
//   retry policy;  4. the control plane goes away: the last configuration keeps serving;
//   5. it comes back with a change, and the mesh follows.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMesh } from '../../src/index.ts';
import {
  apiListener,
  edsCluster,
  loadAssignment,
  routeConfig,
  weightedRoute,
  XdsControlPlane,
} from '../../test/support/xds-control-plane.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshwork-xds-example-'));
const failures: string[] = [];
const say = (msg: string) => console.log(`\n▸ ${msg}`);
const check = (ok: boolean, what: string) => {
  console.log(`  ${ok ? '✔' : '✘'} ${what}`);
  if (!ok) failures.push(what);
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function reviews(version: string): Promise<{ server: Server; port: number }> {
  const server = createServer((_req, res) => res.end(version));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

// The names istiod gives a Kubernetes Service "reviews" (port 9080) and its DestinationRule subsets.
const HOST = 'reviews.default.svc.cluster.local';
const LISTENER = `${HOST}:9080`;
const ROUTES = `outbound|9080||${HOST}`;
const V1 = `outbound|9080|v1|${HOST}`;
const V2 = `outbound|9080|v2|${HOST}`;

const [v1, v2] = await Promise.all([reviews('v1'), reviews('v2')]);
const cp = await XdsControlPlane.start({ socket: join(dir, 'XDS') });
const routes = (weights: Record<string, number>, extra: object = {}) =>
  routeConfig(ROUTES, [weightedRoute(weights, '/', extra)], [HOST, LISTENER, 'reviews', 'reviews:9080']);
cp.set('listener', [apiListener(LISTENER, ROUTES)]);
cp.set('route', [routes({ [V1]: 100, [V2]: 0 })]);
cp.set('cluster', [edsCluster(V1), edsCluster(V2)]);
cp.set('endpoint', [
  loadAssignment(V1, [{ endpoints: [{ address: '127.0.0.1', port: v1.port }] }]),
  loadAssignment(V2, [{ endpoints: [{ address: '127.0.0.1', port: v2.port }] }]),
]);

// What Istio's agent writes (pkg/istio-agent/grpcxds), pointing at our socket.
const bootstrapFile = join(dir, 'grpc-bootstrap.json');
writeFileSync(
  bootstrapFile,
  JSON.stringify({
    xds_servers: [
      { server_uri: cp.address, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] },
    ],
    node: {
      id: 'sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local',
      locality: { zone: 'local' },
      metadata: { GENERATOR: 'grpc', NAMESPACE: 'default' },
    },
  }),
);

const mesh = createMesh({ env: { GRPC_XDS_BOOTSTRAP: bootstrapFile } as NodeJS.ProcessEnv, xds: {} });
const url = `http://${LISTENER}/reviews/0`;
async function tally(n: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const body = await (await mesh.fetch(url)).text();
    out[body] = (out[body] ?? 0) + 1;
  }
  return out;
}
async function until(cond: () => Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    if (await cond()) return true;
    await sleep(25);
  }
  return false;
}

try {
  say(`GET ${url}: the listener, its routes, clusters and endpoints are asked for on first use`);
  const first = await tally(20);
  console.log(`  ${JSON.stringify(first)}`);
  check(first.v1 === 20, 'all traffic to v1');
  const snap = mesh.snapshot().xds;
  console.log(
    `  server ${snap?.server.server} ${snap?.server.state}; listener → service ${snap?.listeners[LISTENER]}`,
  );

  say('the control plane pushes a canary: 80/20');
  cp.set('route', [routes({ [V1]: 80, [V2]: 20 })]);
  const canary = await until(async () => ((await tally(10)).v2 ?? 0) > 0);
  const split = await tally(500);
  console.log(`  ${JSON.stringify(split)}`);
  check(
    canary && (split.v2 ?? 0) > 50 && (split.v2 ?? 0) < 150,
    `v2 took ${split.v2 ?? 0}/500 (20% expected)`,
  );

  say('everything to v2, with a route retry policy (retry_on 5xx, 2 retries)');
  cp.set('route', [
    routes({ [V1]: 0, [V2]: 100 }, { retry_policy: { retry_on: '5xx', num_retries: { value: 2 } } }),
  ]);
  check(await until(async () => (await tally(5)).v2 === 5), 'all traffic to v2');

  say('the control plane goes away: the last configuration keeps serving');
  await cp.stop();
  const during = await tally(20);
  check(during.v2 === 20, `20/20 answered by v2 during the outage (${mesh.snapshot().xds?.server.state})`);

  say('it comes back, with everything on v1 again: the mesh reconnects and follows');
  cp.set('route', [routes({ [V1]: 100, [V2]: 0 })]);
  await cp.start();
  check(
    await until(async () => (await tally(5)).v1 === 5),
    `all traffic to v1 (streams opened: ${cp.streamsOpened})`,
  );

  const s = mesh.snapshot().xds;
  console.log(
    `\n  versions: ${JSON.stringify(Object.fromEntries(Object.entries(s?.server.types ?? {}).map(([k, t]) => [k, t.version])))}`,
  );
  console.log(`  ACKs ${cp.acks.length}, NACKs ${cp.nacks.length}`);
} finally {
  await mesh.close();
  await cp.close();
  v1.server.close();
  v2.server.close();
  rmSync(dir, { recursive: true, force: true });
}

if (failures.length > 0) {
  console.log(`\n${failures.length} check(s) failed.`);
  process.exit(1);
}
console.log('\nAll xDS checks passed.');
