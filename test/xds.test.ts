/**
 * meshwork as an xDS client, against the ADS control plane of test/support (checked faithful by
 * @grpc/grpc-js-xds in xds-control-plane.test.ts): real HTTP servers, real gRPC streams.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createMesh, type Mesh } from '../src/mesh.ts';
import { named, startServer, type TestServer } from './support/servers.ts';
import {
  apiListener,
  clusterRoute,
  edsCluster,
  loadAssignment,
  routeConfig,
  weightedRoute,
  XdsControlPlane,
} from './support/xds-control-plane.ts';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server(name: string): Promise<TestServer> {
  const s = await startServer(named(name));
  cleanups.push(() => s.close());
  return s;
}

async function controlPlane(): Promise<XdsControlPlane> {
  const cp = await XdsControlPlane.start();
  cleanups.push(() => cp.close());
  return cp;
}

function bootstrap(cp: XdsControlPlane, extra: Record<string, unknown> = {}) {
  return {
    xds_servers: [
      { server_uri: cp.address, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] },
    ],
    node: {
      id: 'meshwork-test~127.0.0.1~test.default~default.svc.cluster.local',
      locality: { zone: 'zone-a' },
    },
    ...extra,
  };
}

function mesh(
  cp: XdsControlPlane,
  xds: Record<string, unknown> = {},
  rest: Record<string, unknown> = {},
): Mesh {
  const m = createMesh({ env: {}, xds: { bootstrap: bootstrap(cp), ...xds }, ...rest } as never);
  cleanups.push(() => m.close());
  return m;
}

async function body(m: Mesh, url: string, init?: RequestInit): Promise<string> {
  const res = await m.fetch(url, init);
  return `${res.status} ${await res.text()}`;
}

function twoBackends(
  cp: XdsControlPlane,
  blue: TestServer,
  green: TestServer,
  weights = { blue: 100, green: 0 },
) {
  cp.set('listener', [apiListener('echo', 'echo-routes')]);
  cp.set('route', [routeConfig('echo-routes', [weightedRoute(weights)])]);
  cp.set('cluster', [edsCluster('blue'), edsCluster('green')]);
  cp.set('endpoint', [
    loadAssignment('blue', [{ endpoints: [{ address: '127.0.0.1', port: blue.port }] }]),
    loadAssignment('green', [{ endpoints: [{ address: '127.0.0.1', port: green.port }] }]),
  ]);
}

describe('xDS: routing through a control plane', () => {
  it('subscribes a listener on first use and routes to its clusters; weights shift live', async () => {
    const [cp, blue, green] = await Promise.all([controlPlane(), server('blue'), server('green')]);
    twoBackends(cp, blue, green);
    const m = mesh(cp);
    expect(await body(m, 'http://echo/hello')).toBe('200 blue');
    expect(blue.hits[0]?.url).toBe('/hello');
    for (const kind of ['listener', 'route', 'cluster', 'endpoint'] as const) await cp.waitForAck(kind);
    expect(cp.nacks).toEqual([]);
    cp.set('route', [routeConfig('echo-routes', [weightedRoute({ blue: 0, green: 100 })])]);
    await cp.waitForAck('route');
    await new Promise((r) => setTimeout(r, 20));
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) seen.add(await body(m, 'http://echo/'));
    expect([...seen]).toEqual(['200 green']);
  });
});
