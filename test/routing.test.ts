import { readFileSync } from 'node:fs';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createMesh, fromIstio, isMeshworkError, type Mesh } from '../src/index.ts';
import { binomialTolerance, seededRandom } from './support/seeded-random.ts';
import { named, startServer, type TestServer } from './support/servers.ts';

let v1: TestServer;
let v2: TestServer;
let v3: TestServer;
let other: TestServer;
const meshes: Mesh[] = [];

beforeAll(async () => {
  v1 = await startServer(named('v1'));
  v2 = await startServer(named('v2'));
  v3 = await startServer(named('v3'));
  other = await startServer(named('other'));
});
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
  for (const s of [v1, v2, v3, other]) s.hits.length = 0;
});
afterAll(async () => {
  await Promise.all([v1, v2, v3, other].map((s) => s.close()));
});

function reviewsDiscovery() {
  return {
    static: [
      { address: v1.address, labels: { version: 'v1' } },
      { address: v2.address, labels: { version: 'v2' } },
      { address: v3.address, labels: { version: 'v3' } },
    ],
  };
}
const subsets = [
  { name: 'v1', labels: { version: 'v1' } },
  { name: 'v2', labels: { version: 'v2' } },
  { name: 'v3', labels: { version: 'v3' } },
];

function mesh(config: Parameters<typeof createMesh>[0]): Mesh {
  const m = createMesh({ env: {}, ...config });
  meshes.push(m);
  return m;
}

async function text(m: Mesh, url: string, init?: RequestInit): Promise<string> {
  return (await m.fetch(url, init)).text();
}

describe('matches and subsets', () => {
  it('sends a header match to its subset and everything else to the default route', async () => {
    const m = mesh({
      services: {
        reviews: {
          discovery: reviewsDiscovery(),
          subsets,
          http: [
            {
              match: [{ headers: { 'end-user': { exact: 'jason' } } }],
              route: [{ destination: { subset: 'v2' } }],
            },
            { route: [{ destination: { subset: 'v1' } }] },
          ],
        },
      },
    });
    for (let i = 0; i < 5; i++)
      expect(await text(m, 'http://reviews/r', { headers: { 'End-User': 'jason' } })).toBe('v2');
    for (let i = 0; i < 5; i++)
      expect(await text(m, 'http://reviews/r', { headers: { 'end-user': 'kim' } })).toBe('v1');
    expect(await text(m, 'http://reviews/r')).toBe('v1');
    expect(v3.hits).toHaveLength(0);
  });

  it('ORs match blocks and ANDs the conditions inside one (uri, method, query, withoutHeaders)', async () => {
    const m = mesh({
      services: {
        reviews: {
          discovery: reviewsDiscovery(),
          subsets,
          http: [
            {
              match: [
                { uri: { prefix: '/api/' }, method: { exact: 'POST' } },
                { uri: { regex: '/legacy/[0-9]+' } },
                { queryParams: { beta: { exact: 'on' } }, withoutHeaders: { 'x-internal': {} } },
              ],
              route: [{ destination: { subset: 'v2' } }],
            },
            { route: [{ destination: { subset: 'v1' } }] },
          ],
        },
      },
    });
    expect(await text(m, 'http://reviews/api/x', { method: 'POST' })).toBe('v2');
    expect(await text(m, 'http://reviews/api/x', { method: 'GET' })).toBe('v1');
    expect(await text(m, 'http://reviews/legacy/42')).toBe('v2');
    expect(await text(m, 'http://reviews/legacy/4x')).toBe('v1');
    expect(await text(m, 'http://reviews/p?beta=on')).toBe('v2');
    expect(await text(m, 'http://reviews/p?beta=on', { headers: { 'x-internal': '1' } })).toBe('v1');
  });

  it('answers 404 when a service has routes and none matches, as Istio does', async () => {
    const m = mesh({
      services: {
        reviews: {
          discovery: reviewsDiscovery(),
          http: [{ match: [{ uri: { exact: '/only' } }], route: [{ destination: {} }] }],
        },
      },
    });
    const res = await m.fetch('http://reviews/else');
    expect(res.status).toBe(404);
    expect(res.headers.get('x-meshwork-no-route')).toBe('reviews');
    expect(v1.hits.length + v2.hits.length + v3.hits.length).toBe(0);
  });

  it('routes to another service named by destination.host, keeping the original Host', async () => {
    const m = mesh({
      services: {
        reviews: { discovery: reviewsDiscovery(), http: [{ route: [{ destination: { host: 'legacy' } }] }] },
        legacy: { discovery: { static: [other.address] } },
      },
    });
    expect(await text(m, 'http://reviews/x')).toBe('other');
    expect(other.hits[0]?.headers.host).toBe('reviews');
  });
});

describe('weighted canaries', () => {
  it('splits 90/10 within a statistical tolerance', async () => {
    const m = mesh({
      random: seededRandom(7),
      services: {
        reviews: {
          discovery: reviewsDiscovery(),
          subsets,
          http: [
            {
              route: [
                { destination: { subset: 'v1' }, weight: 90 },
                { destination: { subset: 'v3' }, weight: 10 },
              ],
            },
          ],
        },
      },
    });
    const n = 600;
    for (let i = 0; i < n; i += 50)
      await Promise.all(Array.from({ length: 50 }, () => text(m, 'http://reviews/')));
    const share = v3.hits.length / n;
    expect(v1.hits.length + v3.hits.length).toBe(n);
    expect(Math.abs(share - 0.1)).toBeLessThan(binomialTolerance(0.1, n));
  });

  it('refuses weights that do not sum to 100 at createMesh, naming the route', () => {
    expect(() =>
      createMesh({
        env: {},
        services: {
          reviews: {
            discovery: reviewsDiscovery(),
            subsets,
            http: [
              {
                route: [
                  { destination: { subset: 'v1' }, weight: 80 },
                  { destination: { subset: 'v2' }, weight: 10 },
                ],
              },
            ],
          },
        },
      }),
    ).toThrow(/services\.reviews\.http\[0\]\.route: weights sum to 90, not 100/);
  });

  it('refuses a destination subset or host that does not exist', () => {
    const err = (() => {
      try {
        createMesh({
          env: {},
          services: {
            reviews: {
              discovery: reviewsDiscovery(),
              subsets,
              http: [
                {
                  route: [
                    { destination: { subset: 'v9' }, weight: 50 },
                    { destination: { host: 'nope' }, weight: 50 },
                  ],
                },
              ],
            },
          },
        });
      } catch (e) {
        return e as Error;
      }
    })();
    expect(isMeshworkError(err, 'MESHWORK_ERR_CONFIG')).toBe(true);
    expect(err?.message).toContain('services.reviews.http[0].route[0].destination.subset');
    expect(err?.message).toContain('services.reviews.http[0].route[1].destination.host: "nope"');
  });
});

describe('subset policies', () => {
  it('refuses subset settings counted per service (outlier detection), naming the path', () => {
    expect(() =>
      createMesh({
        env: {},
        services: {
          reviews: {
            discovery: reviewsDiscovery(),
            subsets: [
              {
                name: 'v1',
                labels: { version: 'v1' },
                trafficPolicy: { outlierDetection: { consecutive5xxErrors: 1 } },
              },
            ],
          },
        },
      }),
    ).toThrow(
      /services\.reviews\.subsets\[0\]\.trafficPolicy\.outlierDetection: .* is not supported on a subset/,
    );
  });
});

describe('rewrites and header edits', () => {
  it('rewrites the uri prefix and the authority, and edits request and response headers', async () => {
    const m = mesh({
      services: {
        reviews: {
          discovery: { static: [v1.address] },
          http: [
            {
              match: [{ uri: { prefix: '/v1/reviews' } }],
              rewrite: { uri: '/reviews', authority: 'reviews.internal' },
              headers: {
                request: { set: { 'x-route': 'legacy' }, add: { 'x-added': 'yes' }, remove: ['x-secret'] },
                response: { set: { 'x-served-route': 'legacy' }, remove: ['x-served-by'] },
              },
              route: [{ destination: {} }],
            },
          ],
        },
      },
    });
    const res = await m.fetch('http://reviews/v1/reviews/7?x=1', {
      headers: { 'x-secret': 's', 'x-route': 'caller' },
    });
    expect(await res.text()).toBe('v1');
    const hit = v1.hits[0];
    expect(hit?.url).toBe('/reviews/7?x=1');
    expect(hit?.headers.host).toBe('reviews.internal');
    expect(hit?.headers['x-route']).toBe('legacy');
    expect(hit?.headers['x-added']).toBe('yes');
    expect(hit?.headers['x-secret']).toBeUndefined();
    // fetch reads raw headers when it can: the edited ones must win.
    expect(res.headers.get('x-served-route')).toBe('legacy');
    expect(res.headers.get('x-served-by')).toBeNull();
    const r2 = await request('http://reviews/v1/reviews/8', { dispatcher: m.dispatcher });
    await r2.body.text();
    expect(r2.headers['x-served-route']).toBe('legacy');
    expect(r2.headers['x-served-by']).toBeUndefined();
  });
});

describe('outbound paths are normalized before route matching', () => {
  const prefixThenDeny = () => ({
    discovery: { static: [v1.address] },
    http: [
      {
        match: [{ uri: { prefix: '/api/' } }],
        rewrite: { uri: '/internal/public/' },
        route: [{ destination: {} }],
      },
      { route: [{ destination: {} }], fault: { abort: { httpStatus: 403, percentage: { value: 100 } } } },
    ],
  });
  const send = async (m: Mesh, path: string) => {
    const r = await m.dispatcher.request({ origin: 'http://reviews', path, method: 'GET' });
    return { status: r.statusCode, body: await r.body.text() };
  };

  it('a dot segment cannot match a prefix route and escape it after the rewrite', async () => {
    const m = mesh({ services: { reviews: prefixThenDeny() } });
    expect(await send(m, '/api/../admin')).toEqual({ status: 403, body: 'fault filter abort' });
    expect(await send(m, '/api/%2e%2e/admin')).toMatchObject({ status: 403 });
    expect(await send(m, '/api/x/../../admin')).toMatchObject({ status: 403 });
    expect(v1.hits).toHaveLength(0);
  });

  it('sends the normalized path, query string intact', async () => {
    const m = mesh({ services: { reviews: prefixThenDeny() } });
    expect(await send(m, '/api/./a//b/../c?next=/../x&y=%2F')).toMatchObject({ status: 200 });
    expect(await send(m, '/api/items?q=1')).toMatchObject({ status: 200 });
    expect(v1.hits.map((h) => h.url)).toEqual([
      '/internal/public/a/c?next=/../x&y=%2F',
      '/internal/public/items?q=1',
    ]);
  });

  it('refuses a path that cannot be normalized with MESHWORK_ERR_INVALID_PATH, before sending', async () => {
    const m = mesh({ services: { reviews: prefixThenDeny() } });
    for (const path of ['/api/%zz', '/api/..%2Fadmin', '/api/%00']) {
      const err = await send(m, path).catch((e: unknown) => e);
      expect(isMeshworkError(err, 'MESHWORK_ERR_INVALID_PATH'), path).toBe(true);
      expect((err as Error).message).toContain('service "reviews"');
    }
    expect(v1.hits).toHaveLength(0);
  });

  it('follows pathNormalization: KEEP_UNCHANGED forwards %2F as one segment', async () => {
    const m = mesh({
      pathNormalization: { escapedSlashes: 'KEEP_UNCHANGED' },
      services: { reviews: prefixThenDeny() },
    });
    expect(await send(m, '/api/a%2fb')).toMatchObject({ status: 200 });
    expect(v1.hits.map((h) => h.url)).toEqual(['/internal/public/a%2Fb']);
  });
});

describe('per-route retries and timeout', () => {
  it("a route's retries and timeout override the service's", async () => {
    let calls = 0;
    const flaky = await startServer((_req, res) => {
      calls++;
      res.statusCode = 503;
      res.end('busy');
    });
    const hang = await startServer(() => {});
    const m = mesh({
      services: {
        api: {
          discovery: { static: [flaky.address] },
          retries: { attempts: 3, retryOn: '5xx' },
          http: [
            { match: [{ uri: { prefix: '/once' } }], route: [{ destination: {} }], retries: { attempts: 0 } },
            {
              match: [{ uri: { prefix: '/slow' } }],
              route: [{ destination: { host: 'slow' } }],
              timeout: '150ms',
            },
            { route: [{ destination: {} }] },
          ],
        },
        slow: { discovery: { static: [hang.address] } },
      },
    });
    expect((await m.fetch('http://api/once')).status).toBe(503);
    expect(calls).toBe(1);
    calls = 0;
    expect((await m.fetch('http://api/other')).status).toBe(503);
    expect(calls).toBe(4); // the service's 3 retries
    const err = await m.fetch('http://api/slow').catch((e) => e);
    expect(isMeshworkError(err, 'MESHWORK_ERR_TIMEOUT')).toBe(true);
    await flaky.close();
    await hang.close();
  });
});

describe('fault injection', () => {
  it('an injected abort answers its status without reaching the upstream', async () => {
    const m = mesh({
      services: {
        ratings: {
          discovery: { static: [v1.address] },
          http: [
            {
              route: [{ destination: {} }],
              fault: { abort: { httpStatus: 503, percentage: { value: 100 } } },
            },
          ],
        },
      },
    });
    const res = await m.fetch('http://ratings/');
    expect(res.status).toBe(503);
    expect(await res.text()).toBe('fault filter abort');
    expect(v1.hits).toHaveLength(0);
  });

  it('aborts about the configured share of requests', async () => {
    const m = mesh({
      random: seededRandom(11),
      services: {
        ratings: {
          discovery: { static: [v1.address] },
          http: [
            {
              route: [{ destination: {} }],
              fault: { abort: { httpStatus: 500, percentage: { value: 30 } } },
            },
          ],
        },
      },
    });
    const n = 400;
    let aborted = 0;
    for (let i = 0; i < n; i += 50) {
      const statuses = await Promise.all(
        Array.from({ length: 50 }, async () => {
          const r = await m.fetch('http://ratings/');
          await r.text();
          return r.status;
        }),
      );
      aborted += statuses.filter((s) => s === 500).length;
    }
    expect(aborted + v1.hits.length).toBe(n);
    expect(Math.abs(aborted / n - 0.3)).toBeLessThan(binomialTolerance(0.3, n));
  });

  it('an injected delay holds the request for fixedDelay before it is sent', async () => {
    const m = mesh({
      services: {
        ratings: {
          discovery: { static: [v1.address] },
          http: [
            {
              route: [{ destination: {} }],
              fault: { delay: { fixedDelay: '300ms', percentage: { value: 100 } } },
            },
          ],
        },
      },
    });
    const t0 = performance.now();
    expect(await text(m, 'http://ratings/')).toBe('v1');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
  });

  it('attempt-level chaos aborts and resets attempts below the balancer', async () => {
    const m = mesh({
      services: {
        ratings: {
          discovery: { static: [v1.address] },
          http: [
            {
              match: [{ uri: { prefix: '/abort' } }],
              route: [{ destination: {} }],
              chaos: { abort: { httpStatus: 502, percentage: { value: 100 } } },
            },
            { route: [{ destination: {} }], chaos: { reset: { percentage: { value: 100 } } } },
          ],
        },
      },
    });
    const res = await m.fetch('http://ratings/abort');
    expect(res.status).toBe(502);
    expect(res.headers.get('x-meshwork-chaos')).toBe('abort');
    const err = await request('http://ratings/reset', { dispatcher: m.dispatcher }).catch((e) => e);
    expect(err.code).toBe('ECONNRESET');
    expect(v1.hits).toHaveLength(0);
  });
});

describe('mirroring', () => {
  it('sends a copy with a -shadow Host, and a slow mirror does not delay the main response', async () => {
    let releaseMirror!: () => void;
    const mirrorHeld = new Promise<void>((r) => {
      releaseMirror = r;
    });
    const shadow = await startServer(async (_req, res) => {
      await mirrorHeld;
      res.end('shadow');
    });
    const m = mesh({
      services: {
        httpbin: {
          discovery: { static: [v1.address] },
          http: [
            { route: [{ destination: {} }], mirror: { host: 'shadow' }, mirrorPercentage: { value: 100 } },
          ],
        },
        shadow: { discovery: { static: [shadow.address] } },
      },
    });
    const t0 = performance.now();
    const r = await request('http://httpbin/headers', {
      dispatcher: m.dispatcher,
      method: 'POST',
      body: 'payload',
    });
    const body = await r.body.text();
    const mainMs = performance.now() - t0;
    expect(body).toBe('v1');
    // The mirror is still held by its server while the main response is already done.
    await new Promise((r) => setTimeout(r, 100));
    expect(shadow.hits).toHaveLength(1);
    expect(shadow.hits[0]?.headers.host).toBe('httpbin-shadow');
    expect(shadow.hits[0]?.body).toBe('payload');
    expect(mainMs).toBeLessThan(1000);
    releaseMirror();
    await shadow.close();
  });
});

describe('mirroring mesh.fetch bodies', () => {
  it('mirrors a mesh.fetch POST, whose body undici hands over as a stream, once it is buffered', async () => {
    const shadow = await startServer(named('shadow'));
    const m = mesh({
      services: {
        httpbin: {
          discovery: { static: [v1.address] },
          http: [{ route: [{ destination: {} }], mirror: { host: 'shadow' } }],
        },
        shadow: { discovery: { static: [shadow.address] } },
      },
    });
    expect(await text(m, 'http://httpbin/post', { method: 'POST', body: '{"a":1}' })).toBe('v1');
    await new Promise((r) => setTimeout(r, 100));
    expect(v1.hits[0]?.body).toBe('{"a":1}');
    expect(shadow.hits[0]?.body).toBe('{"a":1}');
    await shadow.close();
  });
});

describe('fromIstio', () => {
  it('loads bookinfo reviews: subsets + header match, and routes as Istio would', async () => {
    const fixtures = ['destination-rule-all.yaml', 'virtual-service-reviews-test-v2.yaml'].map((f) =>
      readFileSync(new URL(`./fixtures/istio/${f}`, import.meta.url), 'utf8'),
    );
    const istio = fromIstio(fixtures);
    const reviews = istio.services.reviews as object;
    const m = mesh({
      unknownServices: 'passthrough',
      services: { reviews: { ...reviews, discovery: reviewsDiscovery() } },
    });
    expect(await text(m, 'http://reviews/', { headers: { 'end-user': 'jason' } })).toBe('v2');
    expect(await text(m, 'http://reviews/')).toBe('v1');
  });
});
