/**
 * Istio YAML behaves as Istio does, checked with real traffic on loopback: each test loads real
 * or minimal Istio documents with fromIstio, adds discovery for real servers on 127.0.0.1, and
 * looks at what the servers received.
 */
import { readFileSync } from 'node:fs';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { createMesh, type FromIstioOptions, fromIstio, isMeshworkError, type Mesh } from '../src/index.ts';
import { named, startServer, type TestServer } from './support/servers.ts';

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
