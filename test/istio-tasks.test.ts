/**
 * The istio.io traffic-management tasks, replayed with the corpus YAML (test/fixtures/istio/corpus)
 * and real servers on loopback, against the numbers the pages give: request routing (jason),
 * traffic shifting (50/50, 80/20, 90/10, 100% v3), fault injection (delay and abort), request
 * timeouts, circuit breaking and mirroring. Statistical checks allow 5 standard deviations.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMesh, fromIstio, isMeshworkError, type Mesh } from '../src/index.ts';
import { binomialTolerance } from './support/seeded-random.ts';
import { named, startServer, type TestServer } from './support/servers.ts';

const corpus = (path: string) =>
  readFileSync(new URL(`./fixtures/istio/corpus/${path}`, import.meta.url), 'utf8');
const bookinfo = (file: string) => corpus(`istio/samples/bookinfo/networking/${file}`);
const task = (file: string) => corpus(`istio.io/tasks/traffic-management/${file}`);

const servers: TestServer[] = [];
async function server(handle?: Parameters<typeof startServer>[0]): Promise<TestServer> {
  const s = await startServer(handle);
  servers.push(s);
  return s;
}
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

const meshes: Mesh[] = [];
afterAll(async () => {
  await Promise.all(meshes.map((m) => m.close()));
});

/** Bookinfo's versions: a server per version of reviews, ratings, details, productpage. */
let reviews: Record<'v1' | 'v2' | 'v3', TestServer>;
let ratings: TestServer;
let details: TestServer;
let productpage: TestServer;

beforeAll(async () => {
  reviews = { v1: await server(named('v1')), v2: await server(named('v2')), v3: await server(named('v3')) };
  ratings = await server(named('ratings-v1'));
  details = await server(named('details-v1'));
  productpage = await server(named('productpage-v1'));
});

function bookinfoDiscovery() {
  const v = (s: TestServer, version: string) => ({ address: s.address, labels: { version } });
  return {
    reviews: { static: [v(reviews.v1, 'v1'), v(reviews.v2, 'v2'), v(reviews.v3, 'v3')] },
    ratings: { static: [v(ratings, 'v1')] },
    details: { static: [v(details, 'v1')] },
    productpage: { static: [v(productpage, 'v1')] },
  };
}

/** Bookinfo with the default destination rules and the given task YAML applied. */
function bookinfoMesh(...yaml: string[]): Mesh {
  const istio = fromIstio([bookinfo('destination-rule-all.yaml'), ...yaml]);
  const services: Record<string, Record<string, unknown>> = {};
  for (const [name, discovery] of Object.entries(bookinfoDiscovery())) {
    services[name] = { discovery, ...istio.services[name] };
  }
  const m = createMesh({ env: {}, services } as never);
  meshes.push(m);
  return m;
}

async function version(m: Mesh, headers: Record<string, string> = {}): Promise<string> {
  return (await m.fetch('http://reviews:9080/reviews/0', { headers })).text();
}

async function shares(m: Mesh, n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const v = await version(m);
    counts[v] = (counts[v] ?? 0) + 1;
  }
  return counts;
}

describe('request routing (virtual-service-all-v1.yaml, virtual-service-reviews-test-v2.yaml)', () => {
  it('all traffic to v1; then jason to v2, everyone else to v1', async () => {
    const allV1 = bookinfoMesh(bookinfo('virtual-service-all-v1.yaml'));
    for (let i = 0; i < 20; i++) expect(await version(allV1)).toBe('v1');
    const jason = bookinfoMesh(bookinfo('virtual-service-reviews-test-v2.yaml'));
    for (let i = 0; i < 10; i++) {
      expect(await version(jason, { 'end-user': 'jason' })).toBe('v2');
      expect(await version(jason, { 'end-user': 'kim' })).toBe('v1');
      expect(await version(jason)).toBe('v1');
    }
  });
});

describe('traffic shifting', () => {
  const n = 600;
  it.each([
    ['virtual-service-reviews-50-v3.yaml', { v1: 0.5, v3: 0.5 }],
    ['virtual-service-reviews-80-20.yaml', { v1: 0.8, v2: 0.2 }],
    ['virtual-service-reviews-90-10.yaml', { v1: 0.9, v2: 0.1 }],
    ['virtual-service-reviews-v3.yaml', { v3: 1 }],
  ] as const)('%s splits as written', async (file, expected) => {
    const got = await shares(bookinfoMesh(bookinfo(file)), n);
    expect(Object.keys(got).sort()).toEqual(Object.keys(expected).sort());
    for (const [v, p] of Object.entries(expected)) {
      expect(Math.abs((got[v] ?? 0) / n - p)).toBeLessThanOrEqual(binomialTolerance(p, n) + 1e-9);
    }
  });
});

describe('fault injection (virtual-service-ratings-test-delay.yaml, -test-abort.yaml)', () => {
  it("jason's call to ratings is delayed 7 s: past productpage's 3 s timeout; others are not delayed", async () => {
    const m = bookinfoMesh(bookinfo('virtual-service-ratings-test-delay.yaml'));
    let started = performance.now();
    await m.fetch('http://ratings:9080/ratings/0').then((r) => r.text());
    expect(performance.now() - started).toBeLessThan(2_000);
    started = performance.now();
    // productpage's own timeout to reviews (and so to ratings through it) is 3 s (the page).
    const err = await m
      .fetch('http://ratings:9080/ratings/0', {
        headers: { 'end-user': 'jason' },
        signal: AbortSignal.timeout(3_000),
      })
      .catch((e: unknown) => e);
    expect((err as Error).name).toMatch(/TimeoutError|AbortError/);
    expect(performance.now() - started).toBeGreaterThanOrEqual(2_900);
    expect(ratings.hits.filter((h) => h.headers['end-user'] === 'jason')).toHaveLength(0);
  });

  it('jason gets HTTP 500 from ratings every time, immediately; everyone else 200', async () => {
    const m = bookinfoMesh(bookinfo('virtual-service-ratings-test-abort.yaml'));
    const before = ratings.hits.length;
    for (let i = 0; i < 20; i++) {
      const res = await m.fetch('http://ratings:9080/ratings/0', { headers: { 'end-user': 'jason' } });
      await res.text();
      expect(res.status).toBe(500);
    }
    expect(ratings.hits.length).toBe(before);
    for (let i = 0; i < 5; i++) expect((await m.fetch('http://ratings:9080/ratings/0')).status).toBe(200);
  });
});

describe('request timeouts (the task page YAML)', () => {
  it('reviews v2 calls ratings, delayed 2 s: about 2 s without a timeout, cut at 0.5 s with it', async () => {
    // reviews v2 calls ratings through its own mesh, as the real reviews v2 does.
    const callerOfRatings = createMesh({
      env: {},
      services: {
        ratings: {
          discovery: bookinfoDiscovery().ratings,
          ...fromIstio([
            bookinfo('destination-rule-all.yaml'),
            task('request-timeouts/ratings-delay-2s.yaml'),
          ]).services.ratings,
        },
      },
    } as never);
    meshes.push(callerOfRatings);
    const reviewsV2 = await server(async (_req, res) => {
      const r = await callerOfRatings.fetch('http://ratings:9080/ratings/0');
      res.end(`reviews-v2 with ${await r.text()}`);
    });
    const withReviews = (file: string) => {
      const istio = fromIstio([bookinfo('destination-rule-all.yaml'), task(file)]);
      const m = createMesh({
        env: {},
        services: {
          reviews: {
            discovery: { static: [{ address: reviewsV2.address, labels: { version: 'v2' } }] },
            ...istio.services.reviews,
          },
        },
      } as never);
      meshes.push(m);
      return m;
    };
    let started = performance.now();
    const slow = await withReviews('request-timeouts/reviews-v2.yaml').fetch('http://reviews:9080/reviews/0');
    expect(await slow.text()).toBe('reviews-v2 with ratings-v1');
    expect(performance.now() - started).toBeGreaterThanOrEqual(1_900);
    started = performance.now();
    const err = await withReviews('request-timeouts/reviews-timeout.yaml')
      .fetch('http://reviews:9080/reviews/0')
      .catch((e: unknown) => e);
    const took = performance.now() - started;
    expect(isMeshworkError((err as Error).cause ?? err, 'MESHWORK_ERR_TIMEOUT')).toBe(true);
    expect(took).toBeGreaterThanOrEqual(450);
    expect(took).toBeLessThan(1_500);
  });
});

describe('circuit breaking (the task page DestinationRule: 1 connection, 1 pending request)', () => {
  /** fortio load -c <threads> -n <calls>: each thread sends its share one after another. */
  async function fortio(m: Mesh, threads: number, calls: number): Promise<{ ok: number; overflow: number }> {
    let ok = 0;
    let overflow = 0;
    await Promise.all(
      Array.from({ length: threads }, async () => {
        for (let i = 0; i < calls / threads; i++) {
          try {
            const res = await m.fetch('http://httpbin:8000/get');
            await res.text();
            if (res.status === 200) ok++;
          } catch (err) {
            if (isMeshworkError((err as Error).cause ?? err, 'MESHWORK_ERR_OVERFLOW')) overflow++;
            else throw err;
          }
        }
      }),
    );
    return { ok, overflow };
  }

  it('one thread never trips it; two rarely (the page: 15%); three mostly (the page: 63%)', async () => {
    const httpbin = await server(async (_req, res) => {
      await new Promise((r) => setTimeout(r, 5));
      res.end('{}');
    });
    const istio = fromIstio(task('circuit-breaking/destination-rule.yaml'));
    const m = createMesh({
      env: {},
      services: { httpbin: { discovery: { static: [httpbin.address] }, ...istio.services.httpbin } },
    } as never);
    meshes.push(m);
    expect(await fortio(m, 1, 20)).toEqual({ ok: 20, overflow: 0 });
    const two = await fortio(m, 2, 20);
    expect(two.ok + two.overflow).toBe(20);
    // Two at once: one sent, one pending; overflow only when a third slips in between (leeway).
    expect(two.overflow / 20).toBeLessThanOrEqual(0.5);
    const three = await fortio(m, 3, 30);
    expect(three.ok + three.overflow).toBe(30);
    // Three at once: the third overflows (503 UO in Envoy) until one finishes.
    expect(three.overflow / 30).toBeGreaterThanOrEqual(0.2);
    expect(three.overflow).toBeGreaterThan(two.overflow);
    expect(m.snapshot().services.httpbin?.connectionPool?.overflows).toBe(two.overflow + three.overflow);
    console.log(
      `circuit breaking: -c 2 -n 20: ${two.overflow} overflow (${(100 * two.overflow) / 20}%, page 15%); ` +
        `-c 3 -n 30: ${three.overflow} overflow (${((100 * three.overflow) / 30).toFixed(1)}%, page 63.3%)`,
    );
  });
});

describe('mirroring (the task page YAML)', () => {
  it('all traffic to v1; with the mirror, v2 gets a copy of each request with Host "-shadow"', async () => {
    const v1 = await server(named('httpbin-v1'));
    const v2 = await server(named('httpbin-v2'));
    const discovery = {
      static: [
        { address: v1.address, labels: { version: 'v1' } },
        { address: v2.address, labels: { version: 'v2' } },
      ],
    };
    const routeV1 = task('mirroring/route-v1.yaml');
    const make = (...yaml: string[]) => {
      const m = createMesh({
        env: {},
        services: { httpbin: { discovery, ...fromIstio(yaml).services.httpbin } },
      } as never);
      meshes.push(m);
      return m;
    };
    const plain = make(routeV1);
    for (let i = 0; i < 5; i++)
      expect(await (await plain.fetch('http://httpbin:8000/headers')).text()).toBe('httpbin-v1');
    expect(v2.hits).toHaveLength(0);
    // The second document replaces the VirtualService (kubectl apply); the DestinationRule stays.
    const dr = routeV1.slice(routeV1.indexOf('---'));
    const mirrored = make(task('mirroring/mirror-v2.yaml'), dr);
    for (let i = 0; i < 5; i++)
      expect(await (await mirrored.fetch('http://httpbin:8000/headers')).text()).toBe('httpbin-v1');
    await expect.poll(() => v2.hits.length).toBe(5);
    expect(v2.hits.every((h) => h.headers.host === 'httpbin-shadow:8000')).toBe(true);
    expect(v1.hits).toHaveLength(10);
  });
});
