/**
 * meshwork as an xDS client, against the ADS control plane of test/support (checked faithful by
 * @grpc/grpc-js-xds in xds-control-plane.test.ts): real HTTP(S) servers, real gRPC streams, real
 * certificates.
 */
import { copyFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TLSSocket } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isMeshworkError } from '../src/errors.ts';
import { createMesh, type Mesh } from '../src/mesh.ts';
import { createPki, GATEWAY_ID, type Pki, TRAVELS_ID } from './support/certs.ts';
import { named, startServer, type TestServer } from './support/servers.ts';
import {
  apiListener,
  clusterRoute,
  edsCluster,
  faultFilter,
  loadAssignment,
  pack,
  routeConfig,
  routerFilter,
  weightedRoute,
  XdsControlPlane,
} from './support/xds-control-plane.ts';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server(name: string, handle?: Parameters<typeof startServer>[0]): Promise<TestServer> {
  const s = await startServer(handle ?? named(name));
  cleanups.push(() => s.close());
  return s;
}

async function controlPlane(
  opts: Parameters<typeof XdsControlPlane.start>[0] = {},
): Promise<XdsControlPlane> {
  const cp = await XdsControlPlane.start(opts);
  cleanups.push(() => cp.close());
  return cp;
}

function bootstrap(cp: XdsControlPlane, extra: Record<string, unknown> = {}) {
  return {
    xds_servers: [
      { server_uri: cp.address, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] },
    ],
    node: { id: 'sidecar~127.0.0.1~test.default~default.svc.cluster.local', locality: { zone: 'zone-a' } },
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

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function endpointsOf(name: string, ...servers: TestServer[]) {
  return loadAssignment(name, [{ endpoints: servers.map((s) => ({ address: '127.0.0.1', port: s.port })) }]);
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
  cp.set('endpoint', [endpointsOf('blue', blue), endpointsOf('green', green)]);
}

const HTTP_FAULT = 'envoy.extensions.filters.http.fault.v3.HTTPFault';

describe('xDS: routing from a control plane', () => {
  it('subscribes a listener on first use and routes to its clusters; weights shift live', async () => {
    const [cp, blue, green] = await Promise.all([controlPlane(), server('blue'), server('green')]);
    twoBackends(cp, blue, green);
    const m = mesh(cp);
    expect(await body(m, 'http://echo/hello')).toBe('200 blue');
    expect(blue.hits[0]?.url).toBe('/hello');
    for (const kind of ['listener', 'route', 'cluster', 'endpoint'] as const) await cp.waitForAck(kind);
    expect(cp.nacks).toEqual([]);
    expect(cp.requests.find((r) => r.node)?.node).toMatchObject({
      id: 'sidecar~127.0.0.1~test.default~default.svc.cluster.local',
      user_agent_name: 'meshwork',
    });
    cp.set('route', [routeConfig('echo-routes', [weightedRoute({ blue: 0, green: 100 })])]);
    await cp.waitForAck('route');
    await until(async () => (await body(m, 'http://echo/')) === '200 green', 'the weight shift');
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) seen.add(await body(m, 'http://echo/'));
    expect([...seen]).toEqual(['200 green']);
    // A split: both get traffic.
    cp.set('route', [routeConfig('echo-routes', [weightedRoute({ blue: 50, green: 50 })])]);
    await cp.waitForAck('route');
    await until(async () => {
      const s = new Set<string>();
      for (let i = 0; i < 20; i++) s.add(await body(m, 'http://echo/'));
      return s.size === 2;
    }, 'a 50/50 split');
  });

  it('addresses listeners by authority as written: host:port is the listener name; static services keep working', async () => {
    const [cp, blue, local] = await Promise.all([controlPlane(), server('blue'), server('static')]);
    const name = 'reviews.default.svc.cluster.local:9080';
    cp.set('listener', [apiListener(name, 'outbound|9080||reviews.default.svc.cluster.local')]);
    cp.set('route', [
      routeConfig(
        'outbound|9080||reviews.default.svc.cluster.local',
        [clusterRoute('outbound|9080||reviews.default.svc.cluster.local')],
        ['reviews.default.svc.cluster.local', 'reviews.default.svc.cluster.local:9080'],
      ),
    ]);
    cp.set('cluster', [edsCluster('outbound|9080||reviews.default.svc.cluster.local')]);
    cp.set('endpoint', [endpointsOf('outbound|9080||reviews.default.svc.cluster.local', blue)]);
    const m = mesh(
      cp,
      { initialTimeout: '300ms' },
      { services: { local: { discovery: { static: [local.address] } } } },
    );
    expect(await body(m, `http://${name}/r`)).toBe('200 blue');
    // The Host header is the authority as written.
    expect(blue.hits[0]?.headers.host).toBe(name);
    expect(await body(m, 'http://local/')).toBe('200 static');
    expect(cp.subscribed('listener')).toEqual(new Set([name]));
    // Unknown hosts do not leak to the control plane when a static service has the name.
    expect(cp.subscribed('listener').has('local')).toBe(false);
    const snap = m.snapshot();
    expect(snap.xds?.listeners[name]).toBe('reviews.default.svc.cluster.local-9080');
    expect(Object.keys(snap.services)).toEqual(
      expect.arrayContaining([
        'local',
        'reviews.default.svc.cluster.local-9080',
        'outbound-9080-reviews.default.svc.cluster.local',
      ]),
    );
    // xDS is a layer of the live config: mesh.update changes the code layer, the xDS services stay.
    expect(m.snapshot().config?.source).toBe(`xds ${cp.address}`);
    await m.update({ services: { local: { discovery: { static: [local.address] }, timeout: '5s' } } });
    expect(await body(m, `http://${name}/r`)).toBe('200 blue');
    expect(await body(m, 'http://local/')).toBe('200 static');
    // The cluster's service cannot be reached by host name: that name is asked for as a listener.
    const hits = blue.hits.length;
    await expect(m.fetch('http://outbound-9080-reviews.default.svc.cluster.local/')).rejects.toMatchObject({
      code: 'MESHWORK_ERR_NO_ENDPOINTS',
    });
    expect(blue.hits.length).toBe(hits);
    expect(cp.subscribed('listener')).toContain('outbound-9080-reviews.default.svc.cluster.local');
  });

  it('a URL without a port also asks for the listener on the default port (Istio names them host:80)', async () => {
    const [cp, a] = await Promise.all([controlPlane(), server('a')]);
    cp.set('listener', [apiListener('web.default.svc.cluster.local:80', 'r')]);
    cp.set('route', [routeConfig('r', [clusterRoute('c')])]);
    cp.set('cluster', [edsCluster('c')]);
    cp.set('endpoint', [endpointsOf('c', a)]);
    const m = mesh(cp);
    // new URL() drops ":80": both names are asked for; the one that exists serves.
    expect(await body(m, 'http://web.default.svc.cluster.local:80/')).toBe('200 a');
    expect(cp.subscribed('listener')).toEqual(
      new Set(['web.default.svc.cluster.local', 'web.default.svc.cluster.local:80']),
    );
  });

  it('mesh.agent (node:http clients) reaches xDS listeners too', async () => {
    const [cp, blue, green] = await Promise.all([controlPlane(), server('blue'), server('green')]);
    twoBackends(cp, blue, green);
    const m = mesh(cp);
    const text = await new Promise<string>((resolve, reject) => {
      const req = httpGet('http://echo/via-agent', { agent: m.agent }, (res) => {
        let b = '';
        res.on('data', (c) => {
          b += c;
        });
        res.on('end', () => resolve(`${res.statusCode} ${b}`));
      });
      req.on('error', reject);
    });
    expect(text).toBe('200 blue');
    expect(blue.hits.at(-1)?.url).toBe('/via-agent');
  });

  it('names listed up front are subscribed at createMesh; a name with no listener fails, then is unknown', async () => {
    const [cp, blue, green] = await Promise.all([controlPlane(), server('blue'), server('green')]);
    twoBackends(cp, blue, green);
    const m = mesh(cp, { listeners: ['echo'], initialTimeout: '300ms', resourceTimeout: '600ms' });
    await cp.waitForAck('endpoint');
    expect(cp.subscribed('cluster')).toEqual(new Set(['blue', 'green']));
    expect(await body(m, 'http://echo/')).toBe('200 blue');
    // "nope" has no listener: the first request waits initialTimeout; once the resource timer
    // says it does not exist, requests fail at once as to an unknown service.
    await expect(m.fetch('http://nope/')).rejects.toMatchObject({ code: 'MESHWORK_ERR_NO_ENDPOINTS' });
    await until(() => m.snapshot().xds?.listeners.nope === 'absent', 'the listener to be known absent');
    const t0 = performance.now();
    await expect(m.fetch('http://nope/')).rejects.toMatchObject({ code: 'MESHWORK_ERR_UNKNOWN_SERVICE' });
    expect(performance.now() - t0).toBeLessThan(200);
  });

  it('endpoints come and go through EDS; UNHEALTHY and DRAINING endpoints take no traffic', async () => {
    const [cp, a, b] = await Promise.all([controlPlane(), server('a'), server('b')]);
    cp.set('listener', [apiListener('svc', 'r')]);
    cp.set('route', [routeConfig('r', [clusterRoute('c')])]);
    cp.set('cluster', [edsCluster('c')]);
    cp.set('endpoint', [endpointsOf('c', a)]);
    const m = mesh(cp);
    expect(await body(m, 'http://svc/')).toBe('200 a');
    cp.set('endpoint', [endpointsOf('c', a, b)]);
    await until(async () => {
      const s = new Set<string>();
      for (let i = 0; i < 10; i++) s.add(await body(m, 'http://svc/'));
      return s.size === 2;
    }, 'endpoint b to take traffic');
    cp.set('endpoint', [endpointsOf('c', b)]);
    await cp.waitForAck('endpoint');
    await until(async () => (await body(m, 'http://svc/')) === '200 b', 'endpoint a to leave');
    for (let i = 0; i < 10; i++) expect(await body(m, 'http://svc/')).toBe('200 b');
    cp.set('endpoint', [
      loadAssignment('c', [
        {
          endpoints: [
            { address: '127.0.0.1', port: a.port, health: 'HEALTHY' },
            { address: '127.0.0.1', port: b.port, health: 'DRAINING' },
          ],
        },
      ]),
    ]);
    await cp.waitForAck('endpoint');
    await until(async () => (await body(m, 'http://svc/')) === '200 a', 'the draining endpoint to leave');
    for (let i = 0; i < 10; i++) expect(await body(m, 'http://svc/')).toBe('200 a');
    const eps = m.snapshot().services.c?.endpoints ?? [];
    expect(eps.map((e) => e.address)).toContain(`127.0.0.1:${a.port}`);
  });

  it('priorities: the lowest priority with a usable endpoint takes the traffic; locality weights split it', async () => {
    const [cp, p0, p1, z2] = await Promise.all([controlPlane(), server('p0'), server('p1'), server('z2')]);
    cp.set('listener', [apiListener('svc', 'r')]);
    cp.set('route', [routeConfig('r', [clusterRoute('c')])]);
    cp.set('cluster', [edsCluster('c', { common_lb_config: { locality_weighted_lb_config: {} } })]);
    cp.set('endpoint', [
      loadAssignment('c', [
        { zone: 'a', priority: 0, weight: 1, endpoints: [{ address: '127.0.0.1', port: p0.port }] },
        { zone: 'b', priority: 1, weight: 1, endpoints: [{ address: '127.0.0.1', port: p1.port }] },
      ]),
    ]);
    const m = mesh(cp);
    for (let i = 0; i < 10; i++) expect(await body(m, 'http://svc/')).toBe('200 p0');
    // Priority 0 unhealthy: priority 1 takes over.
    cp.set('endpoint', [
      loadAssignment('c', [
        {
          zone: 'a',
          priority: 0,
          weight: 1,
          endpoints: [{ address: '127.0.0.1', port: p0.port, health: 'UNHEALTHY' }],
        },
        { zone: 'b', priority: 1, weight: 1, endpoints: [{ address: '127.0.0.1', port: p1.port }] },
      ]),
    ]);
    await until(async () => (await body(m, 'http://svc/')) === '200 p1', 'failover to priority 1');
    // Locality weights 3:1 within priority 0.
    cp.set('endpoint', [
      loadAssignment('c', [
        { zone: 'a', priority: 0, weight: 3, endpoints: [{ address: '127.0.0.1', port: p0.port }] },
        { zone: 'c', priority: 0, weight: 1, endpoints: [{ address: '127.0.0.1', port: z2.port }] },
      ]),
    ]);
    await cp.waitForAck('endpoint');
    await until(async () => (await body(m, 'http://svc/')) !== '200 p1', 'priority 0 back');
    const counts = new Map<string, number>();
    for (let i = 0; i < 200; i++) {
      const b = await body(m, 'http://svc/');
      counts.set(b, (counts.get(b) ?? 0) + 1);
    }
    const share = (counts.get('200 p0') ?? 0) / 200;
    expect(share).toBeGreaterThan(0.6);
    expect(share).toBeLessThan(0.9);
  });
});

describe('xDS: route policies', () => {
  it('applies the route retry policy (retry_on 5xx, num_retries) and timeout', async () => {
    let n = 0;
    const [cp, flaky, slow] = await Promise.all([
      controlPlane(),
      server('flaky', (_req, res) => {
        res.statusCode = ++n <= 2 ? 503 : 200;
        res.end(String(n));
      }),
      server('slow', (_req, res) => {
        setTimeout(() => res.end('late'), 3_000);
      }),
    ]);
    cp.set('listener', [apiListener('svc', 'r')]);
    cp.set('route', [
      routeConfig('r', [
        clusterRoute('slow', '/slow', { timeout: { nanos: 300_000_000 } }),
        clusterRoute('flaky', '/', {
          retry_policy: {
            retry_on: '5xx',
            num_retries: { value: 2 },
            retry_back_off: { base_interval: { nanos: 1_000_000 } },
          },
        }),
      ]),
    ]);
    cp.set('cluster', [edsCluster('flaky'), edsCluster('slow')]);
    cp.set('endpoint', [endpointsOf('flaky', flaky), endpointsOf('slow', slow)]);
    const m = mesh(cp);
    expect(await body(m, 'http://svc/x')).toBe('200 3');
    expect(flaky.hits.length).toBe(3);
    const t0 = performance.now();
    const err = await m.fetch('http://svc/slow').catch((e: unknown) => e);
    expect(isMeshworkError(err, 'MESHWORK_ERR_TIMEOUT')).toBe(true);
    expect(performance.now() - t0).toBeLessThan(2_500);
    // No retry_policy: no retries (Envoy), even on 5xx.
    n = 0;
    const updates = m.snapshot().xds?.updates ?? 0;
    cp.set('route', [routeConfig('r', [clusterRoute('flaky', '/')])]);
    await until(() => (m.snapshot().xds?.updates ?? 0) > updates, 'the new route');
    const before = flaky.hits.length;
    expect(await body(m, 'http://svc/y')).toBe('503 1');
    expect(flaky.hits.length).toBe(before + 1);
  });

  it('per-route fault injection from typed_per_filter_config, with the fault filter', async () => {
    const [cp, a] = await Promise.all([controlPlane(), server('a')]);
    cp.set('listener', [apiListener('svc', 'r', { filters: [faultFilter(), routerFilter()] })]);
    cp.set('route', [
      routeConfig('r', [
        {
          match: { prefix: '/broken' },
          route: { cluster: 'c' },
          typed_per_filter_config: {
            'envoy.filters.http.fault': pack(HTTP_FAULT, {
              abort: { http_status: 418, percentage: { numerator: 100, denominator: 'HUNDRED' } },
            }),
          },
        },
        clusterRoute('c'),
      ]),
    ]);
    cp.set('cluster', [edsCluster('c')]);
    cp.set('endpoint', [endpointsOf('c', a)]);
    const m = mesh(cp);
    expect((await m.fetch('http://svc/broken')).status).toBe(418);
    expect(await body(m, 'http://svc/fine')).toBe('200 a');
    expect(a.hits.length).toBe(1);
  });

  it('header matches, prefix rewrite and header mutations', async () => {
    const [cp, a, b] = await Promise.all([controlPlane(), server('a'), server('b')]);
    cp.set('listener', [apiListener('svc', 'r')]);
    cp.set('route', [
      {
        name: 'r',
        virtual_hosts: [
          {
            name: 'vh',
            domains: ['*'],
            request_headers_to_add: [{ header: { key: 'x-vhost', value: 'yes' } }],
            routes: [
              {
                match: { prefix: '/api/', headers: [{ name: 'x-canary', string_match: { exact: 'true' } }] },
                route: { cluster: 'b', prefix_rewrite: '/v2/' },
                response_headers_to_add: [{ header: { key: 'x-route', value: 'canary' } }],
              },
              { match: { prefix: '/' }, route: { cluster: 'a' } },
            ],
          },
        ],
      },
    ]);
    cp.set('cluster', [edsCluster('a'), edsCluster('b')]);
    cp.set('endpoint', [endpointsOf('a', a), endpointsOf('b', b)]);
    const m = mesh(cp);
    const res = await m.fetch('http://svc/api/x?q=1', { headers: { 'x-canary': 'true' } });
    expect(await res.text()).toBe('b');
    expect(res.headers.get('x-route')).toBe('canary');
    expect(b.hits[0]?.url).toBe('/v2/x?q=1');
    expect(b.hits[0]?.headers['x-vhost']).toBe('yes');
    expect(await body(m, 'http://svc/api/x')).toBe('200 a');
  });

  it('RING_HASH with a header hash policy keeps a key on one endpoint', async () => {
    const servers = await Promise.all(['a', 'b', 'c', 'd'].map((n) => server(n)));
    const cp = await controlPlane();
    cp.set('listener', [apiListener('svc', 'r')]);
    cp.set('route', [
      routeConfig('r', [clusterRoute('c', '/', { hash_policy: [{ header: { header_name: 'x-user' } }] })]),
    ]);
    cp.set('cluster', [edsCluster('c', { lb_policy: 'RING_HASH' })]);
    cp.set('endpoint', [endpointsOf('c', ...servers)]);
    const m = mesh(cp);
    for (const user of ['ann', 'bob', 'cyd']) {
      const first = await body(m, 'http://svc/', { headers: { 'x-user': user } });
      for (let i = 0; i < 5; i++)
        expect(await body(m, 'http://svc/', { headers: { 'x-user': user } })).toBe(first);
    }
  });
});

describe('xDS: clusters', () => {
  it('outlier detection from CDS ejects the failing endpoint', async () => {
    const [cp, good, bad] = await Promise.all([
      controlPlane(),
      server('good'),
      server('bad', (_req, res) => {
        res.statusCode = 500;
        res.end('bad');
      }),
    ]);
    cp.set('listener', [apiListener('svc', 'r')]);
    cp.set('route', [routeConfig('r', [clusterRoute('c')])]);
    cp.set('cluster', [
      edsCluster('c', {
        outlier_detection: {
          consecutive_5xx: { value: 2 },
          interval: { seconds: 1 },
          base_ejection_time: { seconds: 30 },
          max_ejection_percent: { value: 50 },
        },
      }),
    ]);
    cp.set('endpoint', [endpointsOf('c', good, bad)]);
    const m = mesh(cp);
    for (let i = 0; i < 10; i++) await body(m, 'http://svc/');
    await until(() => (m.snapshot().services.c?.endpoints ?? []).some((e) => e.ejected), 'an ejection');
    const ejected = (m.snapshot().services.c?.endpoints ?? []).filter((e) => e.ejected).map((e) => e.address);
    expect(ejected).toEqual([bad.address]);
    for (let i = 0; i < 10; i++) expect(await body(m, 'http://svc/')).toBe('200 good');
  });

  it('no outlier_detection in CDS: none (Envoy), whatever meshwork defaults to', async () => {
    const [cp, bad] = await Promise.all([
      controlPlane(),
      server('bad', (_req, res) => {
        res.statusCode = 500;
        res.end('bad');
      }),
    ]);
    cp.set('listener', [apiListener('svc', 'r')]);
    cp.set('route', [routeConfig('r', [clusterRoute('c')])]);
    cp.set('cluster', [edsCluster('c')]);
    cp.set('endpoint', [endpointsOf('c', bad)]);
    const m = mesh(cp);
    for (let i = 0; i < 10; i++) expect(await body(m, 'http://svc/')).toBe('500 bad');
    expect(m.snapshot().services.c?.outlierDetection?.enabled ?? false).toBe(false);
  });

  it('circuit breakers become the connection pool limits', async () => {
    const [cp, slow] = await Promise.all([
      controlPlane(),
      server('slow', (_req, res) => {
        setTimeout(() => res.end('ok'), 300);
      }),
    ]);
    cp.set('listener', [apiListener('svc', 'r')]);
    cp.set('route', [routeConfig('r', [clusterRoute('c')])]);
    cp.set('cluster', [
      edsCluster('c', {
        circuit_breakers: {
          thresholds: [{ max_requests: { value: 1 }, max_pending_requests: { value: 1 } }],
        },
      }),
    ]);
    cp.set('endpoint', [endpointsOf('c', slow)]);
    const m = mesh(cp);
    await body(m, 'http://svc/');
    const results = await Promise.all(
      Array.from({ length: 4 }, () =>
        m.fetch('http://svc/').then(
          (r) => r.status,
          (e: { code?: string }) => e.code,
        ),
      ),
    );
    expect(results.filter((r) => r === 200).length).toBeGreaterThanOrEqual(1);
    expect(results.some((r) => r !== 200)).toBe(true);
  });
});

describe('xDS: protocol', () => {
  it('NACKs an invalid resource with a reason naming it and the field; the last good config keeps serving', async () => {
    const [cp, a, b] = await Promise.all([controlPlane(), server('a'), server('b')]);
    cp.set('listener', [apiListener('svc', 'r')]);
    cp.set('route', [routeConfig('r', [clusterRoute('a')])]);
    cp.set('cluster', [edsCluster('a'), edsCluster('b')]);
    cp.set('endpoint', [endpointsOf('a', a), endpointsOf('b', b)]);
    const m = mesh(cp);
    expect(await body(m, 'http://svc/')).toBe('200 a');
    await cp.waitForAck('route');
    const goodVersion = String(cp.versions.route);
    // A regex RE2 refuses (a backreference) in a route.
    cp.set('route', [
      routeConfig('r', [
        { match: { safe_regex: { regex: '(a)\\1' } }, route: { cluster: 'b' } },
        clusterRoute('b'),
      ]),
    ]);
    const nack = await cp.waitForNack('route');
    expect(nack.error).toMatch(/RouteConfiguration "r"/);
    expect(nack.error).toMatch(/virtual_hosts\[0\]\.routes\[0\]/);
    expect(nack.version).toBe(goodVersion);
    for (let i = 0; i < 5; i++) expect(await body(m, 'http://svc/')).toBe('200 a');
    // A listener with a filter meshwork does not run (not optional): NACKed too.
    const before = cp.nacks.length;
    cp.set('listener', [
      apiListener('svc', 'r', {
        filters: [
          {
            name: 'envoy.filters.http.rbac',
            typed_config: pack('envoy.extensions.filters.http.rbac.v3.RBAC', {}),
          },
          routerFilter(),
        ],
      }),
    ]);
    const n2 = await cp.waitForNack('listener', before);
    expect(n2.error).toMatch(/Listener "svc".*http_filters\[0\].*not supported/);
    expect(await body(m, 'http://svc/')).toBe('200 a');
    // One bad cluster in a response does not hold back the good one (gRFC A46).
    const n3 = cp.nacks.length;
    cp.set('cluster', [edsCluster('a', { lb_policy: 'CLUSTER_PROVIDED' }), edsCluster('b')]);
    const n3r = await cp.waitForNack('cluster', n3);
    expect(n3r.error).toMatch(/Cluster "a": lb_policy: "CLUSTER_PROVIDED" is not supported/);
    // Fixed: ACKed again, and the route follows.
    cp.set('route', [routeConfig('r', [clusterRoute('b')])]);
    await cp.waitForAck('route');
    await until(async () => (await body(m, 'http://svc/')) === '200 b', 'the fixed route');
    expect(m.snapshot().xds?.server.types.route?.nacks).toBe(1);
  });

  it('a control-plane outage keeps the last config serving; the client reconnects and follows again', async () => {
    const [cp, blue, green] = await Promise.all([controlPlane(), server('blue'), server('green')]);
    twoBackends(cp, blue, green);
    const m = mesh(cp);
    expect(await body(m, 'http://echo/')).toBe('200 blue');
    await cp.waitForAck('endpoint');
    await cp.stop();
    await until(() => m.snapshot().xds?.server.state !== 'connected', 'the client to see the outage');
    for (let i = 0; i < 10; i++) expect(await body(m, 'http://echo/')).toBe('200 blue');
    // Changed while down, served once back.
    cp.set('route', [routeConfig('echo-routes', [weightedRoute({ blue: 0, green: 100 })])]);
    await cp.start();
    await until(async () => (await body(m, 'http://echo/')) === '200 green', 'the reconnection', 15_000);
    expect(cp.streamsOpened).toBeGreaterThanOrEqual(2);
    // The reconnected stream resubscribes with the versions it had.
    const resub = cp.requests.filter((r) => r.stream === cp.streamsOpened && r.kind === 'listener')[0];
    expect(resub?.names).toEqual(['echo', 'echo:80']);
    expect(resub?.version).not.toBe('');
  });

  it('a control plane that never answers: the first request fails within initialTimeout, naming it', async () => {
    const cp = await controlPlane({ silent: ['listener'] });
    const m = mesh(cp, { initialTimeout: '300ms' });
    const t0 = performance.now();
    const err = await m.fetch('http://svc/').catch((e: unknown) => e);
    expect(isMeshworkError(err, 'MESHWORK_ERR_NO_ENDPOINTS')).toBe(true);
    expect((err as Error).message).toMatch(/xDS control plane .* did not give listener "svc"/);
    expect(performance.now() - t0).toBeLessThan(3_000);
  });

  it('a route configuration that never comes: does not exist after resourceTimeout, every request 404', async () => {
    const cp = await controlPlane({ silent: ['route'] });
    cp.set('listener', [apiListener('svc', 'r')]);
    const m = mesh(cp, { resourceTimeout: '300ms', initialTimeout: '3s' });
    const res = await m.fetch('http://svc/');
    expect(res.status).toBe(404);
    expect(m.snapshot().xds?.server.types.route?.missing).toEqual(['r']);
  });

  it('ignore_resource_deletion keeps a listener the control plane stops sending', async () => {
    const [cp, blue, green] = await Promise.all([controlPlane(), server('blue'), server('green')]);
    twoBackends(cp, blue, green);
    const features = {
      xds_servers: [
        {
          server_uri: cp.address,
          channel_creds: [{ type: 'insecure' }],
          server_features: ['xds_v3', 'ignore_resource_deletion'],
        },
      ],
    };
    const m = createMesh({ env: {}, xds: { bootstrap: bootstrap(cp, features) } } as never);
    cleanups.push(() => m.close());
    expect(await body(m, 'http://echo/')).toBe('200 blue');
    cp.delete('listener', ['echo']);
    await cp.waitForAck('listener');
    expect(await body(m, 'http://echo/')).toBe('200 blue');
    // Without the feature, the listener is gone at once.
    cp.set('listener', [apiListener('echo', 'echo-routes')]);
    const m2 = mesh(cp, { resourceTimeout: '300ms' });
    expect(await body(m2, 'http://echo/')).toBe('200 blue');
    cp.delete('listener', ['echo']);
    await until(() => m2.snapshot().xds?.listeners.echo === 'absent', 'the deletion');
    await expect(m2.fetch('http://echo/')).rejects.toMatchObject({ code: 'MESHWORK_ERR_UNKNOWN_SERVICE' });
    expect(await body(m, 'http://echo/')).toBe('200 blue');
  });
});

describe('xDS: bootstrap', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshwork-xds-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads GRPC_XDS_BOOTSTRAP, then GRPC_XDS_BOOTSTRAP_CONFIG; `xds.bootstrap` may be a path', async () => {
    const [cp, blue, green] = await Promise.all([controlPlane(), server('blue'), server('green')]);
    twoBackends(cp, blue, green);
    const file = join(dir, 'bootstrap.json');
    writeFileSync(file, JSON.stringify(bootstrap(cp)));
    for (const cfg of [
      { env: { GRPC_XDS_BOOTSTRAP: file, GRPC_XDS_BOOTSTRAP_CONFIG: '{' }, xds: {} },
      { env: { GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify(bootstrap(cp)) }, xds: {} },
      { env: {}, xds: { bootstrap: file } },
    ]) {
      const m = createMesh(cfg);
      cleanups.push(() => m.close());
      expect(await body(m, 'http://echo/')).toBe('200 blue');
    }
  });

  it("a unix:/// server_uri (as Istio's agent serves it)", async () => {
    const socket = join(dir, 'XDS');
    const cp = await controlPlane({ socket });
    const blue = await server('blue');
    cp.set('listener', [apiListener('echo', 'r')]);
    cp.set('route', [routeConfig('r', [clusterRoute('blue')])]);
    cp.set('cluster', [edsCluster('blue')]);
    cp.set('endpoint', [endpointsOf('blue', blue)]);
    expect(cp.address).toBe(`unix://${socket}`);
    const m = createMesh({
      env: {},
      xds: {
        bootstrap: {
          xds_servers: [{ server_uri: `unix://${socket}`, channel_creds: [{ type: 'insecure' }] }],
          node: { id: 'n' },
        },
      },
    });
    cleanups.push(() => m.close());
    expect(await body(m, 'http://echo/')).toBe('200 blue');
  });

  it('a bad bootstrap is a MeshworkConfigError naming where it came from, the field and the value', () => {
    const bad = (xds: unknown, env: Record<string, string> = {}) => {
      try {
        createMesh({ env, xds } as never);
      } catch (err) {
        expect(isMeshworkError(err, 'MESHWORK_ERR_CONFIG')).toBe(true);
        return (err as Error).message;
      }
      throw new Error('accepted');
    };
    expect(bad({})).toMatch(
      /xds\.bootstrap: is not set, and neither GRPC_XDS_BOOTSTRAP .* nor GRPC_XDS_BOOTSTRAP_CONFIG/,
    );
    expect(bad({ bootstrap: { xds_servers: [] } })).toMatch(
      /xds\.bootstrap\.xds_servers: \[\] must be a non-empty list/,
    );
    expect(
      bad({
        bootstrap: { xds_servers: [{ server_uri: 'http://x:1', channel_creds: [{ type: 'insecure' }] }] },
      }),
    ).toMatch(/xds\.bootstrap\.xds_servers\[0\]\.server_uri: "http:\/\/x:1" is not a server address/);
    expect(
      bad({
        bootstrap: { xds_servers: [{ server_uri: 'x:1', channel_creds: [{ type: 'google_default' }] }] },
      }),
    ).toMatch(/channel_creds: \["google_default"\] has no supported type/);
    const file = join(dir, 'broken.json');
    writeFileSync(file, '{"xds_servers": [');
    expect(bad({}, { GRPC_XDS_BOOTSTRAP: file })).toMatch(
      /GRPC_XDS_BOOTSTRAP: ".*broken\.json" is not valid JSON/,
    );
    writeFileSync(
      file,
      JSON.stringify({
        xds_servers: [{ server_uri: 'x:1', channel_creds: [{ type: 'insecure' }] }],
        node: { id: 7 },
      }),
    );
    expect(bad({ bootstrap: file })).toMatch(
      /xds\.bootstrap \(".*broken\.json"\)\.node\.id: 7 is not a string/,
    );
    expect(bad({ bootstrap: join(dir, 'missing.json') })).toMatch(
      /xds\.bootstrap: ".*missing\.json" cannot be read/,
    );
    expect(
      bad({
        bootstrap: {
          xds_servers: [{ server_uri: 'x:1', channel_creds: [{ type: 'insecure' }] }],
          certificate_providers: { default: { plugin_name: 'meshca' } },
        },
      }),
    ).toMatch(/certificate_providers\.default\.plugin_name: "meshca" is not supported/);
    expect(bad({ bootstrap: {}, listeners: [''] })).toMatch(/xds\.listeners\[0\]/);
  });
});

describe('xDS: mTLS from the bootstrap certificate provider (file_watcher)', () => {
  let pki: Pki;
  beforeAll(() => {
    pki = createPki();
  });
  afterAll(() => pki.cleanup());

  function tlsCluster(name: string, sans: string[]) {
    return edsCluster(name, {
      transport_socket: {
        name: 'envoy.transport_sockets.tls',
        typed_config: pack('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', {
          common_tls_context: {
            tls_certificate_provider_instance: { instance_name: 'default', certificate_name: 'default' },
            combined_validation_context: {
              default_validation_context: {
                match_subject_alt_names: sans.map((exact) => ({ exact })),
                ca_certificate_provider_instance: { instance_name: 'default', certificate_name: 'ROOTCA' },
              },
            },
          },
          sni: 'outbound_.443_._.travels.default.svc.cluster.local',
        }),
      },
    });
  }

  it("ISTIO_MUTUAL with the provider's files: SANs checked, certificates rotate with the files", async () => {
    const srv = pki.issue('travels-xds', [`URI:${TRAVELS_ID}`]);
    const v1 = pki.issue('me-v1', [`URI:${GATEWAY_ID}`]);
    const v2 = pki.issue('me-v2', [`URI:${GATEWAY_ID}`]);
    const files = {
      cert: join(pki.dir, 'cert-chain.pem'),
      key: join(pki.dir, 'key.pem'),
      ca: join(pki.dir, 'root-cert.pem'),
    };
    copyFileSync(v1.certPath, files.cert);
    copyFileSync(v1.keyPath, files.key);
    copyFileSync(pki.caPath, files.ca);
    const serials: string[] = [];
    const https = createHttpsServer(
      { cert: srv.cert, key: srv.key, ca: pki.ca, requestCert: true, rejectUnauthorized: true },
      (req, res) => {
        serials.push((req.socket as TLSSocket).getPeerCertificate().serialNumber);
        res.setHeader('connection', 'close');
        res.end(`hello ${(req.socket as TLSSocket).servername}`);
      },
    );
    await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => https.close(r)));
    const port = (https.address() as { port: number }).port;
    const cp = await controlPlane();
    cp.set('listener', [apiListener('travels', 'r'), apiListener('impostor', 'r2')]);
    cp.set('route', [
      routeConfig('r', [clusterRoute('travels')]),
      routeConfig('r2', [clusterRoute('impostor')]),
    ]);
    cp.set('cluster', [tlsCluster('travels', [TRAVELS_ID]), tlsCluster('impostor', [GATEWAY_ID])]);
    cp.set('endpoint', [
      loadAssignment('travels', [{ endpoints: [{ address: '127.0.0.1', port }] }]),
      loadAssignment('impostor', [{ endpoints: [{ address: '127.0.0.1', port }] }]),
    ]);
    const m = createMesh({
      env: {},
      xds: {
        bootstrap: bootstrap(cp, {
          certificate_providers: {
            default: {
              plugin_name: 'file_watcher',
              config: {
                certificate_file: files.cert,
                private_key_file: files.key,
                ca_certificate_file: files.ca,
                refresh_interval: '900s',
              },
            },
          },
        }),
      },
    });
    cleanups.push(() => m.close());
    expect(await body(m, 'http://travels/')).toBe(
      '200 hello outbound_.443_._.travels.default.svc.cluster.local',
    );
    expect(m.snapshot().identity?.spiffeId).toBe(GATEWAY_ID);
    const clusterService = m.snapshot().xds?.clusters.travels as string;
    expect(m.snapshot().services[clusterService]?.tls?.mode).toBe('ISTIO_MUTUAL');
    // The server is not who the cluster expects: refused.
    await expect(m.fetch('http://impostor/')).rejects.toMatchObject({ code: 'MESHWORK_ERR_TLS_IDENTITY' });
    // Rotation: the agent writes new files; new connections present the new certificate.
    const first = serials[0];
    for (const [from, to] of [
      [v2.keyPath, files.key],
      [v2.certPath, files.cert],
    ] as const) {
      copyFileSync(from, `${to}.tmp`);
      renameSync(`${to}.tmp`, to);
    }
    await until(() => (m.snapshot().identity?.rotations ?? 0) >= 1, 'the identity rotation');
    await until(async () => {
      await body(m, 'http://travels/');
      return serials[serials.length - 1] !== first;
    }, 'the new client certificate');
  });
});
