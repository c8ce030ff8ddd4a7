/**
 * Istio YAML behaves as Istio does, checked with real traffic on loopback: each test loads real
 * or minimal Istio documents with fromIstio, adds discovery for real servers on 127.0.0.1, and
 * looks at what the servers received.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createMesh, type FromIstioOptions, fromIstio, isMeshworkError, type Mesh } from '../src/index.ts';
import { createPki, type Pki } from './support/certs.ts';
import { named, startServer, type TestServer } from './support/servers.ts';
import { startTlsServer } from './support/tls-servers.ts';

const corpus = (path: string) =>
  readFileSync(new URL(`./fixtures/istio/corpus/${path}`, import.meta.url), 'utf8');

const meshes: Mesh[] = [];
const servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function server(handle?: Parameters<typeof startServer>[0]): Promise<TestServer> {
  const s = await startServer(handle);
  servers.push(s);
  return s;
}

type Discovery = Record<
  string,
  { static: (string | { address: string; labels?: Record<string, string> })[] }
>;

/** fromIstio(yaml) with each service's discovery added, as a user would merge them. */
function meshFrom(
  yaml: string | string[],
  discovery: Discovery,
  opts: {
    istio?: FromIstioOptions;
    extra?: Record<string, unknown>;
    service?: Record<string, Record<string, unknown>>;
  } = {},
): Mesh {
  const istio = fromIstio(yaml, opts.istio);
  const services: Record<string, Record<string, unknown>> = {};
  for (const [name, d] of Object.entries(discovery)) {
    services[name] = { discovery: d, ...istio.services[name], ...opts.service?.[name] };
  }
  const m = createMesh({ env: {}, services, ...opts.extra } as never);
  meshes.push(m);
  return m;
}

const vs = (body: string, name = 'svc') => `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name} }
spec:
${body}`;
const dr = (body: string, name = 'svc') => `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: ${name} }
spec:
${body}`;

async function get(m: Mesh, url: string, init?: RequestInit): Promise<{ status: number; body: string }> {
  const res = await m.fetch(url, init);
  return { status: res.status, body: await res.text() };
}

describe('rewrite.uri on a route without a uri match replaces the default prefix "/"', () => {
  it('GET /items/7?a=1 with rewrite /v2/ reaches the upstream as /v2/items/7?a=1', async () => {
    const up = await server();
    const m = meshFrom(
      vs(`
  hosts: [svc]
  http:
  - match: [{ headers: { x-api: { exact: "2" } } }]
    rewrite: { uri: /v2/ }
    route: [{ destination: { host: svc } }]
  - rewrite: { uri: /v1/ }
    route: [{ destination: { host: svc } }]`),
      { svc: { static: [up.address] } },
    );
    await get(m, 'http://svc/items/7?a=1', { headers: { 'x-api': '2' } });
    await get(m, 'http://svc/items/8?b=2');
    expect(up.hits.map((h) => h.url)).toEqual(['/v2/items/7?a=1', '/v1/items/8?b=2']);
  });
});

describe('route[].destination.port sends to the endpoints on that port', () => {
  it('only the endpoint on port A gets traffic when the route names port A', async () => {
    const a = await server(named('a'));
    const b = await server(named('b'));
    const m = meshFrom(
      vs(`
  hosts: [svc]
  http:
  - route: [{ destination: { host: svc, port: { number: ${a.port} } } }]`),
      { svc: { static: [a.address, b.address] } },
    );
    for (let i = 0; i < 20; i++) expect((await get(m, 'http://svc/')).body).toBe('a');
    expect(b.hits).toHaveLength(0);
  });

  it('with a subset and a port, both narrow the endpoints; none on the port fails clearly', async () => {
    const v1a = await server(named('v1a'));
    const v1b = await server(named('v1b'));
    const v2 = await server(named('v2'));
    const m = meshFrom(
      [
        vs(`
  hosts: [svc]
  http:
  - match: [{ headers: { x-none: {} } }]
    route: [{ destination: { host: svc, subset: v2, port: { number: ${v1b.port} } } }]
  - route: [{ destination: { host: svc, subset: v1, port: { number: ${v1b.port} } } }]`),
        dr(`
  host: svc
  subsets:
  - { name: v1, labels: { version: v1 } }
  - { name: v2, labels: { version: v2 } }`),
      ],
      {
        svc: {
          static: [
            { address: v1a.address, labels: { version: 'v1' } },
            { address: v1b.address, labels: { version: 'v1' } },
            { address: v2.address, labels: { version: 'v2' } },
          ],
        },
      },
    );
    for (let i = 0; i < 10; i++) expect((await get(m, 'http://svc/')).body).toBe('v1b');
    const err = await m.fetch('http://svc/', { headers: { 'x-none': '1' } }).catch((e: unknown) => e);
    expect(isMeshworkError(err, 'MESHWORK_ERR_NO_ENDPOINTS')).toBe(true);
    expect((err as Error).message).toContain(`subset "v2": port ${v1b.port}`);
  });
});

describe('consistentHash.useSourceIp sticks every request of this process to one endpoint', () => {
  it('50 requests over 4 endpoints all land on one', async () => {
    const all = await Promise.all(['a', 'b', 'c', 'd'].map((n) => server(named(n))));
    const m = meshFrom(
      dr(`
  host: svc
  trafficPolicy:
    loadBalancer: { consistentHash: { useSourceIp: true } }`),
      { svc: { static: all.map((s) => s.address) } },
    );
    const seen = new Set<string>();
    for (let i = 0; i < 50; i++) seen.add((await get(m, 'http://svc/')).body);
    expect(seen.size).toBe(1);
  });
});

describe('converted outlierDetection never ejects on success rate (Istio: enforcing_success_rate 0)', () => {
  it('a replica answering 503 on a third of requests keeps its share with consecutive5xxErrors: 1000', async () => {
    let n = 0;
    const flaky = await server((_req, res) => {
      n++;
      res.statusCode = n % 3 === 0 ? 503 : 200;
      res.end('flaky');
    });
    const good = await Promise.all(['a', 'b', 'c', 'd'].map((x) => server(named(x))));
    const m = meshFrom(
      [
        vs(`
  hosts: [svc]
  http:
  - route: [{ destination: { host: svc } }]
    retries: { attempts: 0 }`),
        dr(`
  host: svc
  trafficPolicy:
    loadBalancer: { simple: ROUND_ROBIN }
    outlierDetection: { consecutive5xxErrors: 1000, interval: 2s, baseEjectionTime: 60s, maxEjectionPercent: 100 }`),
      ],
      { svc: { static: [flaky.address, ...good.map((s) => s.address)] } },
    );
    const started = performance.now();
    // Five hosts with 100+ requests each: enough for gRPC A50 / Envoy success-rate ejection.
    const burst = async (count: number) => {
      const queue = Array.from({ length: count }, (_, i) => i);
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          while (queue.pop() !== undefined) await get(m, 'http://svc/');
        }),
      );
    };
    await burst(600);
    // Let the interval pass, so the next answers run the analysis.
    await new Promise((r) => setTimeout(r, Math.max(0, 2_200 - (performance.now() - started))));
    const before = flaky.hits.length;
    await burst(100);
    // Round robin over five: about 20 of 100. Ejected, it would get none.
    expect(flaky.hits.length - before).toBeGreaterThanOrEqual(10);
    expect(m.snapshot().services.svc?.endpoints.every((e) => !e.ejected)).toBe(true);
  });
});

describe('gateways: "mesh" means in-mesh calls', () => {
  it('match gateways [mesh] is accepted; a VirtualService bound to [gw, mesh] keeps its routes for mesh calls', async () => {
    const v1 = await server(named('v1'));
    const v2 = await server(named('v2'));
    const yaml = [
      vs(`
  hosts: [svc]
  gateways: [bookinfo-gateway, mesh]
  http:
  - match: [{ gateways: [bookinfo-gateway], uri: { prefix: / } }]
    route: [{ destination: { host: svc, subset: v2 } }]
  - match: [{ gateways: [mesh] }]
    route: [{ destination: { host: svc, subset: v1 } }]`),
      dr(`
  host: svc
  subsets:
  - { name: v1, labels: { version: v1 } }
  - { name: v2, labels: { version: v2 } }`),
    ];
    const m = meshFrom(yaml, {
      svc: {
        static: [
          { address: v1.address, labels: { version: 'v1' } },
          { address: v2.address, labels: { version: 'v2' } },
        ],
      },
    });
    for (let i = 0; i < 10; i++) expect((await get(m, 'http://svc/')).body).toBe('v1');
    expect(v2.hits).toHaveLength(0);
  });
});

describe('non-strict mode fails closed: what does not apply to this workload is left out', () => {
  const abortAll = `
  http:
  - fault: { abort: { httpStatus: 500, percentage: { value: 100 } } }
    route: [{ destination: { host: svc } }]`;

  it.each([
    ['a gateway-only VirtualService', `  hosts: [svc]\n  gateways: [my-gateway]${abortAll}`],
    ['a VirtualService exported to another namespace only', `  hosts: [svc]\n  exportTo: [other]${abortAll}`],
    ['a VirtualService exported to "." of another namespace', `  hosts: [svc]\n  exportTo: ["."]${abortAll}`],
  ])('%s never applies to in-mesh calls, in either mode', async (_what, body) => {
    const up = await server();
    const doc = vs(body).replace('metadata: { name: svc }', 'metadata: { name: svc, namespace: shop }');
    for (const strict of [true, false]) {
      const warnings: string[] = [];
      const m = meshFrom(
        doc,
        { svc: { static: [up.address] } },
        { istio: { strict, warn: (w) => warnings.push(w) } },
      );
      for (let i = 0; i < 5; i++) expect((await get(m, 'http://svc/')).status).toBe(200);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/left out/);
    }
  });

  it('a DestinationRule whose workloadSelector does not select this workload is left out', async () => {
    const up = await server();
    // Applied, this rule would make every call fail (TLS to a plaintext server).
    const doc = dr(`
  host: svc
  workloadSelector: { matchLabels: { app: billing } }
  trafficPolicy: { tls: { mode: SIMPLE } }`);
    const m = meshFrom(
      doc,
      { svc: { static: [up.address] } },
      { istio: { workloadLabels: { app: 'orders' } } },
    );
    expect((await get(m, 'http://svc/')).status).toBe(200);
    // Without workloadLabels it cannot be known: strict refuses, non-strict leaves it out.
    expect(() => fromIstio(doc)).toThrow(/workloadSelector: selects workloads \{"app":"billing"\}/);
    const lax = meshFrom(doc, { svc: { static: [up.address] } }, { istio: { strict: false } });
    expect((await get(lax, 'http://svc/')).status).toBe(200);
    // Selecting this workload, it applies.
    const applied = fromIstio(doc, { workloadLabels: { app: 'billing' } });
    expect(applied.services.svc?.trafficPolicy?.tls).toEqual({ mode: 'SIMPLE' });
  });
});

describe("Istio's samples/bookinfo/networking/fault-injection-details-v1.yaml", () => {
  it('loads in strict mode (a catch-all route before another one is accepted with a warning) and aborts every call with 555', async () => {
    const up = await server();
    const warnings: string[] = [];
    const yaml = corpus('istio/samples/bookinfo/networking/fault-injection-details-v1.yaml');
    const m = meshFrom(
      yaml,
      { details: { static: [{ address: up.address, labels: { version: 'v1' } }] } },
      { istio: { warn: (w) => warnings.push(w) } },
    );
    for (let i = 0; i < 5; i++) expect((await get(m, 'http://details/details/0')).status).toBe(555);
    expect(up.hits).toHaveLength(0);
    expect(warnings).toEqual([
      'fromIstio: VirtualService/details spec.http[1]: can never match: spec.http[0] has no match and takes every request (Istio accepts this and never reaches it); left out',
    ]);
  });
});

describe('smaller ones', () => {
  it('httpCookie without ttl: sticky on the cookie, no cookie generated', async () => {
    const all = await Promise.all(['a', 'b', 'c'].map((n) => server(named(n))));
    const m = meshFrom(
      dr(`
  host: svc
  trafficPolicy:
    loadBalancer: { consistentHash: { httpCookie: { name: user } } }`),
      { svc: { static: all.map((s) => s.address) } },
    );
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const res = await m.fetch('http://svc/', { headers: { cookie: 'user=jason' } });
      seen.add(await res.text());
      expect(res.headers.get('set-cookie')).toBeNull();
    }
    expect(seen.size).toBe(1);
    const res = await m.fetch('http://svc/');
    await res.text();
    expect(res.headers.get('set-cookie')).toBeNull();
  });

  it('warmup (Istio 1.24+) is read', async () => {
    const up = await server();
    const m = meshFrom(
      dr(`
  host: svc
  trafficPolicy:
    loadBalancer: { simple: ROUND_ROBIN, warmup: { duration: 30s, minimumPercent: 20, aggression: 2 } }`),
      { svc: { static: [up.address] } },
    );
    expect((await get(m, 'http://svc/')).status).toBe(200);
    expect(
      fromIstio(dr('  host: svc\n  trafficPolicy: { loadBalancer: { warmup: { duration: 30s } } }')).services
        .svc,
    ).toEqual({ trafficPolicy: { loadBalancer: { warmup: { duration: '30s' } } } });
  });

  it('a header match on a JWT claim is refused at fromIstio, naming the path', () => {
    const doc = vs(`
  hosts: [svc]
  http:
  - match: [{ headers: { "@request.auth.claims.groups": { exact: admin } } }]
    route: [{ destination: { host: svc } }]`);
    expect(() => fromIstio(doc)).toThrow(
      /VirtualService\/svc spec\.http\[0\]\.match\[0\]\.headers\.@request\.auth\.claims\.groups: matches a JWT claim/,
    );
  });

  it(':authority in headers.request.set is the Host header sent; in a match it is the host matched', async () => {
    const up = await server();
    const m = meshFrom(
      vs(`
  hosts: [svc]
  http:
  - match: [{ headers: { ":authority": { exact: "svc:8080" } } }]
    headers: { request: { set: { ":authority": internal.example } } }
    route: [{ destination: { host: svc } }]
  - route: [{ destination: { host: svc } }]`),
      { svc: { static: [up.address] } },
    );
    await get(m, 'http://svc:8080/');
    await get(m, 'http://svc/');
    expect(up.hits.map((h) => h.headers.host)).toEqual(['internal.example', 'svc']);
    expect(() =>
      fromIstio(
        vs(
          '  hosts: [svc]\n  http:\n  - headers: { request: { set: { ":path": /x } } }\n    route: [{ destination: { host: svc } }]',
        ),
      ),
    ).toThrow(/headers\.request\.set\.:path: is a pseudo-header; only :authority may be set/);
  });
});

describe('match conditions: scheme, port, authority, sourceLabels, sourceNamespace', () => {
  it('routes on the URL port and scheme, and on the authority', async () => {
    const a = await server(named('a'));
    const b = await server(named('b'));
    const c = await server(named('c'));
    const m = meshFrom(
      [
        vs(`
  hosts: [svc]
  http:
  - match: [{ port: 8080 }]
    route: [{ destination: { host: svc, subset: a } }]
  - match: [{ authority: { prefix: "svc.internal" }, scheme: { exact: http } }]
    route: [{ destination: { host: svc, subset: b } }]
  - route: [{ destination: { host: svc, subset: c } }]`),
        dr(`
  host: svc
  subsets: [{ name: a, labels: { n: a } }, { name: b, labels: { n: b } }, { name: c, labels: { n: c } }]`),
      ],
      {
        svc: {
          static: [a, b, c].map((s, i) => ({ address: s.address, labels: { n: 'abc'[i] as string } })),
        },
      },
    );
    expect((await get(m, 'http://svc:8080/')).body).toBe('a');
    expect((await get(m, 'http://svc/')).body).toBe('c');
    // fetch never sends a caller's Host header; undici.request through the mesh's dispatcher does.
    const res = await request('http://svc/', {
      dispatcher: m.dispatcher,
      headers: { host: 'svc.internal.example' },
    });
    expect(await res.body.text()).toBe('b');
  });

  it("sourceLabels and sourceNamespace are matched against this workload's labels and namespace", async () => {
    const v1 = await server(named('v1'));
    const v2 = await server(named('v2'));
    const yaml = [
      vs(`
  hosts: [svc]
  http:
  - match: [{ sourceLabels: { app: reviews, version: v2 } }]
    route: [{ destination: { host: svc, subset: v2 } }]
  - match: [{ sourceNamespace: payments }]
    route: [{ destination: { host: svc, subset: v2 } }]
  - route: [{ destination: { host: svc, subset: v1 } }]`),
      dr(`
  host: svc
  subsets: [{ name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } }]`),
    ];
    const discovery = {
      svc: {
        static: [
          { address: v1.address, labels: { version: 'v1' } },
          { address: v2.address, labels: { version: 'v2' } },
        ],
      },
    };
    // Decided by fromIstio with workloadLabels / namespace:
    const asReviewsV2 = meshFrom(yaml, discovery, {
      istio: { workloadLabels: { app: 'reviews', version: 'v2' } },
    });
    expect((await get(asReviewsV2, 'http://svc/')).body).toBe('v2');
    const asOther = meshFrom(yaml, discovery, { istio: { workloadLabels: { app: 'ratings' } } });
    expect((await get(asOther, 'http://svc/')).body).toBe('v1');
    const inPayments = meshFrom(yaml, discovery, { istio: { namespace: 'payments', workloadLabels: {} } });
    expect((await get(inPayments, 'http://svc/')).body).toBe('v2');
    // Without workloadLabels, carried over and decided by the mesh's own `labels`:
    expect(fromIstio(yaml).services.svc?.http?.[0]?.match).toEqual([
      { sourceLabels: { app: 'reviews', version: 'v2' } },
    ]);
    const byMeshLabels = meshFrom(yaml, discovery, { extra: { labels: { app: 'reviews', version: 'v2' } } });
    expect((await get(byMeshLabels, 'http://svc/')).body).toBe('v2');
    expect(() => meshFrom(yaml, discovery)).toThrow(/sourceLabels: .*needs this workload's own labels/);
  });
});

describe('routes the mesh answers itself: redirect, directResponse, CORS preflight', () => {
  it('redirect keeps the query, swaps path and authority; directResponse answers status and body', async () => {
    const up = await server();
    const m = meshFrom(
      vs(`
  hosts: [svc]
  http:
  - match: [{ uri: { prefix: /old/ } }]
    redirect: { prefixRewrite: /new/, authority: other.example, redirectCode: 308 }
  - match: [{ uri: { exact: /moved } }]
    redirect: { uri: /here, derivePort: FROM_REQUEST_PORT }
  - match: [{ uri: { prefix: /teapot } }]
    directResponse: { status: 418, body: { string: "short and stout" } }
  - route: [{ destination: { host: svc } }]`),
      { svc: { static: [up.address] } },
    );
    const r1 = await m.fetch('http://svc/old/a/b?x=1', { redirect: 'manual' });
    expect(r1.status).toBe(308);
    expect(r1.headers.get('location')).toBe('http://other.example/new/a/b?x=1');
    const r2 = await m.fetch('http://svc:8080/moved?y', { redirect: 'manual' });
    expect(r2.status).toBe(301);
    expect(r2.headers.get('location')).toBe('http://svc:8080/here?y');
    const r3 = await get(m, 'http://svc/teapot');
    expect(r3).toEqual({ status: 418, body: 'short and stout' });
    expect(up.hits).toHaveLength(0);
  });

  it('corsPolicy: an allowed preflight is answered, an allowed request gets the headers, others pass untouched', async () => {
    const up = await server();
    const m = meshFrom(
      vs(`
  hosts: [svc]
  http:
  - corsPolicy:
      allowOrigins: [{ exact: "https://shop.example" }, { regex: "https://.*\\\\.test" }]
      allowMethods: [GET, POST]
      allowHeaders: [x-token]
      exposeHeaders: [x-trace]
      maxAge: 24h
      allowCredentials: true
    route: [{ destination: { host: svc } }]`),
      { svc: { static: [up.address] } },
    );
    const pre = await m.fetch('http://svc/api', {
      method: 'OPTIONS',
      headers: { origin: 'https://shop.example', 'access-control-request-method': 'POST' },
    });
    expect(pre.status).toBe(200);
    expect(Object.fromEntries([...pre.headers].filter(([k]) => k.startsWith('access-control-')))).toEqual({
      'access-control-allow-origin': 'https://shop.example',
      'access-control-allow-credentials': 'true',
      'access-control-allow-methods': 'GET,POST',
      'access-control-allow-headers': 'x-token',
      'access-control-max-age': '86400',
    });
    expect(up.hits).toHaveLength(0);
    const simple = await m.fetch('http://svc/api', { headers: { origin: 'https://a.test' } });
    await simple.text();
    expect(simple.headers.get('access-control-allow-origin')).toBe('https://a.test');
    expect(simple.headers.get('access-control-expose-headers')).toBe('x-trace');
    const other = await m.fetch('http://svc/api', {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    await other.text();
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    expect(up.hits.map((h) => h.method)).toEqual(['GET', 'OPTIONS']);
  });
});

describe('rewrites, mirrors and weights as Istio reads them', () => {
  it('uriRegexRewrite replaces every match in the path with groups, keeping the query', async () => {
    const up = await server();
    const m = meshFrom(
      vs(`
  hosts: [svc]
  http:
  - rewrite: { uriRegexRewrite: { match: "^/service/([^/]+)(/.*)$", rewrite: "\\\\2/instance/\\\\1" } }
    route: [{ destination: { host: svc } }]`),
      { svc: { static: [up.address] } },
    );
    await get(m, 'http://svc/service/foo/v1/api?x=1');
    expect(up.hits[0]?.url).toBe('/v1/api/instance/foo?x=1');
  });

  it('mirrors: several copies, each with its own percentage', async () => {
    const main = await server(named('main'));
    const m1 = await server(named('m1'));
    const m2 = await server(named('m2'));
    const m = meshFrom(
      vs(`
  hosts: [svc]
  http:
  - route: [{ destination: { host: svc } }]
    mirrors:
    - { destination: { host: one } }
    - { destination: { host: two }, percentage: { value: 0 } }`),
      { svc: { static: [main.address] }, one: { static: [m1.address] }, two: { static: [m2.address] } },
    );
    for (let i = 0; i < 5; i++) await get(m, 'http://svc/x');
    await expect.poll(() => m1.hits.length).toBe(5);
    expect(m1.hits[0]?.headers.host).toBe('svc-shadow');
    expect(m2.hits).toHaveLength(0);
  });

  it('route weights are relative: 1 and 1 is 50/50, 1 and 3 is 25/75', async () => {
    const a = await server(named('a'));
    const b = await server(named('b'));
    const doc = (wa: number, wb: number) => [
      vs(`
  hosts: [svc]
  http:
  - route:
    - { destination: { host: svc, subset: a }, weight: ${wa} }
    - { destination: { host: svc, subset: b }, weight: ${wb} }`),
      dr(`
  host: svc
  subsets: [{ name: a, labels: { n: a } }, { name: b, labels: { n: b } }]`),
    ];
    const discovery = {
      svc: {
        static: [
          { address: a.address, labels: { n: 'a' } },
          { address: b.address, labels: { n: 'b' } },
        ],
      },
    };
    expect(fromIstio(doc(1, 3)).services.svc?.http?.[0]?.route?.map((d) => d.weight)).toEqual([25, 75]);
    const m = meshFrom(doc(1, 1), discovery);
    const n = 400;
    for (let i = 0; i < n; i++) await get(m, 'http://svc/');
    // 50/50 within 5 standard deviations (sqrt(n * 0.25) = 10 requests).
    expect(Math.abs(a.hits.length - n / 2)).toBeLessThan(50);
    expect(a.hits.length + b.hits.length).toBe(n);
  });
});

describe('DestinationRule connectionPool and retries as Istio reads them', () => {
  it('connectionPool.http.maxRetries: only that many requests retry at once; the others get their answer', async () => {
    const up = await server(async (_req, res) => {
      await new Promise((r) => setTimeout(r, 150));
      res.statusCode = 503;
      res.end('down');
    });
    const m = meshFrom(
      [
        vs(`
  hosts: [svc]
  http:
  - route: [{ destination: { host: svc } }]
    retries: { attempts: 3, retryOn: 5xx, backoff: 1ms }`),
        dr(`
  host: svc
  trafficPolicy: { connectionPool: { http: { maxRetries: 1 } }, outlierDetection: { consecutive5xxErrors: 0 } }`),
      ],
      { svc: { static: [up.address] } },
    );
    const statuses = await Promise.all(
      Array.from({ length: 4 }, () => get(m, 'http://svc/').then((r) => r.status)),
    );
    expect(statuses).toEqual([503, 503, 503, 503]);
    // One request retried 3 times, three were not retried: 4 + 3 attempts (16 without the cap).
    expect(up.hits).toHaveLength(7);
    expect(m.snapshot().services.svc?.requests?.retryOverflows).toBe(3);
  });

  it('maxConnectionDuration: a connection older than it is replaced', async () => {
    let connections = 0;
    const up = await server();
    up.server.on('connection', () => connections++);
    const yaml = (extra: string) =>
      dr(`
  host: svc
  trafficPolicy: { connectionPool: { tcp: { maxConnections: 1${extra} } } }`);
    const run = async (extra: string) => {
      connections = 0;
      const m = meshFrom(yaml(extra), { svc: { static: [up.address] } });
      await get(m, 'http://svc/');
      await new Promise((r) => setTimeout(r, 300));
      await get(m, 'http://svc/');
      return connections;
    };
    expect(await run('')).toBe(1);
    expect(await run(', maxConnectionDuration: 100ms')).toBe(2);
  });

  it('a POST is not retried (counted, warned once per service); fromIstio({ retryNonIdempotent: true }) retries it as Istio does', async () => {
    const up = await server((_req, res) => {
      res.statusCode = 503;
      res.end();
    });
    const warnings: string[] = [];
    const logger = {
      debug() {},
      info() {},
      error() {},
      warn: (_o: object, msg?: string) => warnings.push(msg ?? ''),
    };
    const doc = (extra: string) =>
      vs(`
  hosts: [svc]
  http:
  - route: [{ destination: { host: svc } }]
    retries: { attempts: 2, retryOn: 5xx${extra} }`);
    const m = meshFrom(doc(''), { svc: { static: [up.address] } }, { extra: { logger } });
    for (let i = 0; i < 2; i++)
      expect((await get(m, 'http://svc/', { method: 'POST', body: 'x' })).status).toBe(503);
    expect(up.hits).toHaveLength(2);
    expect(m.snapshot().services.svc?.requests?.nonIdempotentRetriesSkipped).toBe(2);
    expect(warnings.filter((w) => w.startsWith('a non-idempotent request was not retried'))).toHaveLength(1);
    up.hits.length = 0;
    const m2 = meshFrom(doc(''), { svc: { static: [up.address] } }, { istio: { retryNonIdempotent: true } });
    expect((await get(m2, 'http://svc/', { method: 'POST', body: 'x' })).status).toBe(503);
    expect(up.hits).toHaveLength(3);
  });
});

describe('ClientTLSSettings: caCrl, insecureSkipVerify, credentialName', () => {
  let pki: Pki;
  beforeAll(() => {
    pki = createPki('istio-fidelity-ca');
  });
  afterAll(() => pki.cleanup());

  /** Revokes `certPath` with the test CA and returns the CRL (PEM), made by the openssl CLI. */
  function revoke(certPath: string): string {
    const dir = pki.dir;
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(join(dir, 'crlnumber'), '01\n');
    writeFileSync(
      join(dir, 'ca.cnf'),
      `[ca]\ndefault_ca = d\n[d]\ndatabase = ${join(dir, 'index.txt')}\ncrlnumber = ${join(dir, 'crlnumber')}\ndefault_md = sha256\ndefault_crl_days = 1\n`,
    );
    const ca = [
      '-config',
      join(dir, 'ca.cnf'),
      '-keyfile',
      join(dir, 'istio-fidelity-ca.key'),
      '-cert',
      pki.caPath,
    ];
    execFileSync('openssl', ['ca', ...ca, '-revoke', certPath], { stdio: 'ignore' });
    execFileSync('openssl', ['ca', ...ca, '-gencrl', '-out', join(dir, 'crl.pem')], { stdio: 'ignore' });
    return readFileSync(join(dir, 'crl.pem'), 'utf8');
  }

  it('caCrl: a server whose certificate the CRL revokes is refused', async () => {
    const cert = pki.issue('svc-revoked', ['DNS:svc']);
    const tlsServer = await startTlsServer({ cert: cert.cert, key: cert.key });
    try {
      const policy = (crl: string) =>
        dr(`
  host: svc
  trafficPolicy: { tls: { mode: SIMPLE, caCertificates: ${pki.caPath}${crl} } }`);
      const ok = meshFrom(policy(''), { svc: { static: [tlsServer.address] } });
      expect((await get(ok, 'http://svc/')).status).toBe(200);
      const crlPath = join(pki.dir, 'revoked.crl.pem');
      writeFileSync(crlPath, revoke(cert.certPath));
      const refused = meshFrom(policy(`, caCrl: ${crlPath}`), { svc: { static: [tlsServer.address] } });
      await expect(refused.fetch('http://svc/')).rejects.toThrow();
    } finally {
      await tlsServer.close();
    }
  });

  it('insecureSkipVerify: true reaches a server no CA vouches for, with a warning at fromIstio and at createMesh', async () => {
    const stranger = createPki('stranger-ca');
    const cert = stranger.issue('svc', ['DNS:elsewhere']);
    const tlsServer = await startTlsServer({ cert: cert.cert, key: cert.key });
    try {
      const policy = (skip: boolean) =>
        dr(`
  host: svc
  trafficPolicy: { tls: { mode: SIMPLE, caCertificates: ${pki.caPath}, insecureSkipVerify: ${skip} } }`);
      const verified = meshFrom(policy(false), { svc: { static: [tlsServer.address] } });
      await expect(verified.fetch('http://svc/')).rejects.toThrow();
      const warnings: string[] = [];
      const logger = {
        debug() {},
        info() {},
        error() {},
        warn: (_o: object, msg?: string) => warnings.push(msg ?? ''),
      };
      const skipping = meshFrom(
        policy(true),
        { svc: { static: [tlsServer.address] } },
        { extra: { logger } },
      );
      expect((await get(skipping, 'http://svc/')).status).toBe(200);
      expect(warnings.some((w) => w.includes('verification is OFF'))).toBe(true);
      expect(fromIstio(policy(true)).warnings.join()).toMatch(/will NOT be verified/);
    } finally {
      await tlsServer.close();
      stranger.cleanup();
    }
  });

  it('credentialName: MUTUAL with the files of the secret mounted under credentialsDir', async () => {
    const serverCert = pki.issue('svc-server', ['DNS:svc']);
    const clientCert = pki.issue('client', ['URI:spiffe://cluster.local/ns/default/sa/client']);
    const tlsServer = await startTlsServer({
      cert: serverCert.cert,
      key: serverCert.key,
      ca: pki.ca,
      requestCert: true,
      rejectUnauthorized: true,
    });
    const secrets = mkdtempSync(join(tmpdir(), 'meshwork-credentials-'));
    try {
      mkdirSync(join(secrets, 'svc-client'));
      writeFileSync(join(secrets, 'svc-client', 'tls.crt'), clientCert.cert);
      writeFileSync(join(secrets, 'svc-client', 'tls.key'), clientCert.key);
      writeFileSync(join(secrets, 'svc-client', 'ca.crt'), pki.ca);
      const m = meshFrom(
        dr(`
  host: svc
  trafficPolicy: { tls: { mode: MUTUAL, credentialName: svc-client } }`),
        { svc: { static: [tlsServer.address] } },
        { istio: { credentialsDir: secrets } },
      );
      expect((await get(m, 'http://svc/')).status).toBe(200);
      expect(tlsServer.peers).toEqual(['spiffe://cluster.local/ns/default/sa/client']);
    } finally {
      await tlsServer.close();
      rmSync(secrets, { recursive: true, force: true });
    }
  });
});

describe('clusters: portLevelSettings and a subset trafficPolicy in full, as Istio makes a cluster of each', () => {
  let pki: Pki;
  beforeAll(() => {
    pki = createPki('istio-clusters-ca');
  });
  afterAll(() => pki.cleanup());

  it('portLevelSettings: the endpoints on the port take its TLS; the others stay plaintext', async () => {
    const cert = pki.issue('svc-port', ['DNS:svc']);
    const secure = await startTlsServer({ cert: cert.cert, key: cert.key }, (_req, res) => res.end('tls'));
    const plain = await server(named('plain'));
    try {
      const port = Number(secure.address.split(':')[1]);
      const m = meshFrom(
        dr(`
  host: svc
  trafficPolicy:
    loadBalancer: { simple: ROUND_ROBIN }
    portLevelSettings:
    - port: { number: ${port} }
      tls: { mode: SIMPLE, caCertificates: ${pki.caPath} }`),
        { svc: { static: [plain.address, secure.address] } },
      );
      const seen = new Set<string>();
      for (let i = 0; i < 6; i++) seen.add((await get(m, 'http://svc/')).body);
      expect(seen).toEqual(new Set(['plain', 'tls']));
    } finally {
      await secure.close();
    }
  });

  it("a subset's connectionPool is its own cluster's: its limits do not touch the service's other traffic", async () => {
    const slow = await server(async (_req, res) => {
      await new Promise((r) => setTimeout(r, 100));
      res.end('ok');
    });
    const m = meshFrom(
      [
        vs(`
  hosts: [svc]
  http:
  - match: [{ headers: { x-subset: { exact: v1 } } }]
    route: [{ destination: { host: svc, subset: v1 } }]
    retries: { attempts: 0 }
  - route: [{ destination: { host: svc } }]
    retries: { attempts: 0 }`),
        dr(`
  host: svc
  subsets:
  - name: v1
    labels: { version: v1 }
    trafficPolicy: { connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } } }`),
      ],
      { svc: { static: [{ address: slow.address, labels: { version: 'v1' } }] } },
    );
    const burst = (headers: Record<string, string>) =>
      Promise.all(
        Array.from({ length: 4 }, () =>
          m.fetch('http://svc/', { headers }).then(
            async (r) => (await r.text()) && 'ok',
            (e: unknown) => (isMeshworkError(e, 'MESHWORK_ERR_OVERFLOW') ? 'UO' : String(e)),
          ),
        ),
      );
    // One connection and one pending request: of four at once, two overflow (Envoy: UO).
    expect((await burst({ 'x-subset': 'v1' })).sort()).toEqual(['UO', 'UO', 'ok', 'ok']);
    // The same endpoint outside the subset: the service's own pool, no such limit.
    expect(await burst({})).toEqual(['ok', 'ok', 'ok', 'ok']);
  });
});

describe('wildcard hosts', () => {
  it('a DestinationRule for *.local applies to every service without its own; the most specific wins', async () => {
    const a = await server(async (_req, res) => {
      await new Promise((r) => setTimeout(r, 100));
      res.end('a');
    });
    const b = await server(named('b'));
    const yaml = [
      dr(
        `
  host: "*.local"
  trafficPolicy: { connectionPool: { http: { http2MaxRequests: 1 } } }`,
        'mesh-wide',
      ),
      dr(
        `
  host: "*.shop.svc.cluster.local"
  trafficPolicy: { connectionPool: { http: { http2MaxRequests: 7 } } }`,
        'shop',
      ),
      dr('  host: billing\n  trafficPolicy: { loadBalancer: { simple: RANDOM } }', 'billing'),
    ];
    const converted = fromIstio(yaml, {
      services: ['orders', 'billing', 'api.example.com'],
      namespace: 'shop',
    });
    expect(converted.services.orders?.trafficPolicy).toEqual({
      connectionPool: { http: { http2MaxRequests: 7 } },
    });
    expect(converted.services.billing?.trafficPolicy).toEqual({ loadBalancer: { simple: 'RANDOM' } });
    expect(converted.services['api.example.com']).toBeUndefined();
    const other = fromIstio(yaml, { services: ['orders'] });
    expect(other.services.orders?.trafficPolicy).toEqual({
      connectionPool: { http: { http2MaxRequests: 1 } },
    });
    // With traffic: the mesh-wide rule's limit holds for a service it covers.
    const m = meshFrom(
      yaml.slice(0, 1),
      { orders: { static: [a.address] }, billing: { static: [b.address] } },
      {
        istio: { services: ['orders', 'billing'] },
      },
    );
    expect(m.snapshot().services.orders?.connectionPool).toEqual({ active: 0, overflows: 0 });
    const slow = await Promise.all([
      m.fetch('http://orders/'),
      m.fetch('http://orders/').catch((e: unknown) => e),
    ]);
    expect(slow.some((r) => isMeshworkError(r, 'MESHWORK_ERR_OVERFLOW'))).toBe(true);
  });

  it('a VirtualService with hosts ["*"] routes every known service that has none of its own', async () => {
    const v1 = await server(named('v1'));
    const m = meshFrom(
      vs(`
  hosts: ["*"]
  http:
  - directResponse: { status: 503, body: { string: maintenance } }`),
      { svc: { static: [v1.address] } },
      { istio: { services: ['svc'] } },
    );
    expect(await get(m, 'http://svc/')).toEqual({ status: 503, body: 'maintenance' });
    expect(
      fromIstio(vs('  hosts: ["*.example.org"]\n  http:\n  - route: [{ destination: { host: svc } }]'))
        .warnings[0],
    ).toMatch(/"\*\.example\.org" covers none of the services known here/);
  });
});

describe('delegate, retryBudget, outlierDetectionHttpErrorCodes, gRPC aborts, localities', () => {
  it('delegate: the delegate VirtualService routes, with the root match merged in and its fields inherited', async () => {
    const v1 = await server(named('v1'));
    const v2 = await server(named('v2'));
    const m = meshFrom(
      [
        vs(`
  hosts: [svc]
  http:
  - match: [{ uri: { prefix: /api } }]
    timeout: 5s
    delegate: { name: svc-api }
  - route: [{ destination: { host: svc, subset: v1 } }]`),
        vs(
          `
  http:
  - match: [{ uri: { prefix: /api/v2 } }]
    route: [{ destination: { host: svc, subset: v2 } }]
  - match: [{ uri: { prefix: /other } }]
    route: [{ destination: { host: svc, subset: v2 } }]
  - route: [{ destination: { host: svc, subset: v1 } }]`,
          'svc-api',
        ),
        dr('  host: svc\n  subsets: [{ name: v1, labels: { v: "1" } }, { name: v2, labels: { v: "2" } }]'),
      ],
      {
        svc: {
          static: [
            { address: v1.address, labels: { v: '1' } },
            { address: v2.address, labels: { v: '2' } },
          ],
        },
      },
    );
    expect((await get(m, 'http://svc/api/v2/x')).body).toBe('v2');
    expect((await get(m, 'http://svc/api/v1/x')).body).toBe('v1');
    // /other is not within /api: Istio drops that delegate route, so the last route takes it.
    expect((await get(m, 'http://svc/other')).body).toBe('v1');
    const converted = fromIstio([
      vs(
        '  hosts: [svc]\n  http:\n  - match: [{ uri: { prefix: /api } }]\n    timeout: 5s\n    delegate: { name: d }',
      ),
      vs(
        '  http:\n  - match: [{ uri: { prefix: /api/v2 } }]\n    route: [{ destination: { host: svc } }]',
        'd',
      ),
    ]);
    expect(converted.services.svc?.http).toEqual([
      { match: [{ uri: { prefix: '/api/v2' } }], route: [{ destination: { host: 'svc' } }], timeout: '5s' },
    ]);
  });

  it("trafficPolicy.retryBudget: retries bounded by a share of the requests (Envoy's retry budget)", async () => {
    const up = await server(async (_req, res) => {
      await new Promise((r) => setTimeout(r, 100));
      res.statusCode = 503;
      res.end();
    });
    const m = meshFrom(
      [
        vs(`
  hosts: [svc]
  http:
  - route: [{ destination: { host: svc } }]
    retries: { attempts: 1, retryOn: 5xx, backoff: 1ms }`),
        dr(`
  host: svc
  trafficPolicy: { retryBudget: { percent: 25, minRetryConcurrency: 1 }, outlierDetection: { consecutive5xxErrors: 0 } }`),
      ],
      { svc: { static: [up.address] } },
    );
    await Promise.all(Array.from({ length: 8 }, () => get(m, 'http://svc/')));
    // 8 requests in flight: 25% is 2 retrying at once; the other 6 are not retried.
    expect(up.hits).toHaveLength(10);
    expect(m.snapshot().services.svc?.requests?.retryOverflows).toBe(6);
  });

  it('outlierDetectionHttpErrorCodes: only those statuses count; a 500 does not eject, a 429 does', async () => {
    const busy = await server((_req, res) => {
      res.statusCode = 429;
      res.end();
    });
    const broken = await server((_req, res) => {
      res.statusCode = 500;
      res.end();
    });
    const ok = await server(named('ok'));
    const m = meshFrom(
      [
        vs(
          '  hosts: [svc]\n  http:\n  - route: [{ destination: { host: svc } }]\n    retries: { attempts: 0 }',
        ),
        dr(`
  host: svc
  trafficPolicy:
    loadBalancer: { simple: ROUND_ROBIN }
    outlierDetection: { consecutive5xxErrors: 2, outlierDetectionHttpErrorCodes: [429], maxEjectionPercent: 100, baseEjectionTime: 60s }`),
      ],
      { svc: { static: [busy.address, broken.address, ok.address] } },
    );
    for (let i = 0; i < 12; i++) await get(m, 'http://svc/');
    const eps = m.snapshot().services.svc?.endpoints ?? [];
    expect(eps.find((e) => e.address === busy.address)?.ejected).toBe(true);
    expect(eps.find((e) => e.address === broken.address)?.ejected).toBe(false);
  });

  it('a gRPC abort answers HTTP 200 with grpc-status, as Envoy does', async () => {
    const up = await server();
    const m = meshFrom(
      vs(`
  hosts: [svc]
  http:
  - fault: { abort: { grpcStatus: UNAVAILABLE, percentage: { value: 100 } } }
    route: [{ destination: { host: svc } }]`),
      { svc: { static: [up.address] } },
    );
    const res = await m.fetch('http://svc/pkg.Service/Method', { method: 'POST' });
    await res.text();
    expect(res.status).toBe(200);
    expect(res.headers.get('grpc-status')).toBe('14');
    expect(res.headers.get('content-type')).toBe('application/grpc');
    expect(up.hits).toHaveLength(0);
  });

  it('localityLbSetting.distribute sends each zone its share (real endpoints, the mesh in us-west/z1)', async () => {
    const z1 = await server(named('z1'));
    const z2 = await server(named('z2'));
    const m = meshFrom(
      dr(`
  host: svc
  trafficPolicy:
    loadBalancer:
      simple: RANDOM
      localityLbSetting:
        distribute:
        - from: us-west/z1/*
          to: { "us-west/z1/*": 75, "us-west/z2/*": 25 }`),
      {
        svc: {
          static: [
            { address: z1.address, zone: 'us-west/z1/a' } as never,
            { address: z2.address, zone: 'us-west/z2/a' } as never,
          ],
        },
      },
      { extra: { zone: 'us-west/z1/a' } },
    );
    const n = 400;
    for (let i = 0; i < n; i++) await get(m, 'http://svc/');
    expect(Math.abs(z2.hits.length / n - 0.25)).toBeLessThan(5 * Math.sqrt((0.25 * 0.75) / n));
  });
});
