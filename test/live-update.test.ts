import dc from 'node:diagnostics_channel';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CHANNELS, type ConfigUpdateMessage, createMesh, isMeshworkError, type Mesh } from '../src/index.ts';
import { named, startServer, type TestServer } from './support/servers.ts';

let v1: TestServer;
let v2: TestServer;
let slow: TestServer;
let failing: TestServer;
const connections = new Map<TestServer, number>();
const meshes: Mesh[] = [];
const events: ConfigUpdateMessage[] = [];
const onEvent = (m: unknown) => events.push(m as ConfigUpdateMessage);

beforeAll(async () => {
  v1 = await startServer(named('v1'));
  v2 = await startServer(named('v2'));
  slow = await startServer(async (_req, res) => {
    await new Promise((r) => setTimeout(r, 400));
    res.end('slow');
  });
  failing = await startServer((_req, res) => {
    res.statusCode = 500;
    res.end('no');
  });
  for (const s of [v1, v2, slow, failing]) {
    connections.set(s, 0);
    s.server.on('connection', () => connections.set(s, (connections.get(s) ?? 0) + 1));
  }
  dc.subscribe(CHANNELS.configUpdate, onEvent);
});
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
  events.length = 0;
});
afterAll(async () => {
  dc.unsubscribe(CHANNELS.configUpdate, onEvent);
  await Promise.all([v1, v2, slow, failing].map((s) => s.close()));
});

function mesh(config: Parameters<typeof createMesh>[0]): Mesh {
  const m = createMesh({ env: {}, ...config });
  meshes.push(m);
  return m;
}

async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function served(m: Mesh, url: string, n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const body = await (await m.fetch(url)).text();
    counts[body] = (counts[body] ?? 0) + 1;
  }
  return counts;
}

const reviews = (weights: [number, number], extra: Record<string, unknown> = {}) => ({
  discovery: {
    static: [
      { address: v1.address, labels: { version: 'v1' } },
      { address: v2.address, labels: { version: 'v2' } },
    ],
  },
  subsets: [
    { name: 'v1', labels: { version: 'v1' } },
    { name: 'v2', labels: { version: 'v2' } },
  ],
  http: [
    {
      route: [
        { destination: { subset: 'v1' }, weight: weights[0] },
        { destination: { subset: 'v2' }, weight: weights[1] },
      ],
    },
  ],
  ...extra,
});

describe('mesh.update', () => {
  it('shifts a canary 100/0 → 50/50 → 0/100 live, keeping endpoints, their pools and their load state', async () => {
    const m = mesh({ services: { reviews: reviews([100, 0]) } });
    expect(await served(m, 'http://reviews/', 20)).toEqual({ v1: 20 });
    const s1 = m.snapshot();
    expect(s1.config).toMatchObject({ version: 1, source: 'createMesh', updates: { applied: 0 } });
    const v1Before = s1.services.reviews?.endpoints.find((e) => e.address === v1.address);
    const v1Conns = connections.get(v1);

    await m.update({ services: { reviews: reviews([50, 50]) } });
    const mixed = await served(m, 'http://reviews/', 200);
    expect(mixed.v1).toBeGreaterThan(50);
    expect(mixed.v2).toBeGreaterThan(50);

    await m.update({ services: { reviews: reviews([0, 100]) } });
    expect(await served(m, 'http://reviews/', 20)).toEqual({ v2: 20 });

    const s3 = m.snapshot();
    expect(s3.config).toMatchObject({
      version: 3,
      source: 'mesh.update',
      updates: { applied: 2, refused: 0 },
    });
    expect(s3.config?.hash).toMatch(/^[0-9a-f]{16}$/);
    expect(s3.config?.hash).not.toBe(s1.config?.hash);
    expect(Date.parse(s3.config?.appliedAt ?? '')).toBeGreaterThanOrEqual(Date.parse(s1.takenAt));
    // The same endpoint, with its history (attempts kept counting, as its load estimate did), and
    // v1's pool made no new connection.
    const v1After = s3.services.reviews?.endpoints.find((e) => e.address === v1.address);
    expect(v1After?.attempts).toBe((v1Before?.attempts ?? 0) + (mixed.v1 ?? 0));
    expect(connections.get(v1)).toBe(v1Conns);
    expect(events.map((e) => [e.result, e.source, e.version])).toEqual([
      ['applied', 'mesh.update', 2],
      ['applied', 'mesh.update', 3],
    ]);
    expect(events[1]?.services).toEqual({ added: [], removed: [], changed: ['reviews'] });
  });

  it('validates the whole config first: an invalid one rejects with MESHWORK_ERR_CONFIG and nothing changes', async () => {
    const m = mesh({ services: { reviews: reviews([100, 0]) } });
    const before = m.snapshot().config;
    const bad = {
      services: {
        // A valid change here...
        reviews: reviews([0, 100]),
        // ...and a bad value there: the whole update is refused.
        other: { discovery: { static: [v1.address] }, timeout: 'soon' },
      },
    };
    const err = await m.update(bad).catch((e: unknown) => e);
    expect(isMeshworkError(err, 'MESHWORK_ERR_CONFIG')).toBe(true);
    expect((err as Error).message).toContain('services.other.timeout: "soon" is not a duration');
    expect(await served(m, 'http://reviews/', 10)).toEqual({ v1: 10 });
    const after = m.snapshot().config;
    expect(after).toMatchObject({ version: before?.version, hash: before?.hash, source: 'createMesh' });
    expect(after?.lastRefused).toMatchObject({ source: 'mesh.update', code: 'MESHWORK_ERR_CONFIG' });
    expect(after?.lastRefused?.issues).toEqual([
      { path: 'services.other.timeout', message: expect.stringContaining('"soon"') },
    ]);
    expect(events.map((e) => e.result)).toEqual(['refused']);
    expect(events[0]?.error).toBe(err);

    // A config that validates but cannot be built (ISTIO_MUTUAL needs an identity) is refused too.
    const mtls = {
      services: { reviews: reviews([0, 100], { trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL' } } }) },
    };
    const err2 = await m.update(mtls).catch((e: unknown) => e);
    expect((err2 as Error).message).toContain('services.reviews.trafficPolicy.tls.mode');
    expect(await served(m, 'http://reviews/', 5)).toEqual({ v1: 5 });

    // Code-only options and what cannot change on a running mesh are named, not ignored.
    const err3 = await m.update({ logger: console } as never).catch((e: unknown) => e);
    expect((err3 as Error).message).toContain('logger: is a code-only option');
    const err4 = await m
      .update({ identity: { cert: '/x.pem', key: '/x.key', ca: '/ca.pem' }, services: {} } as never)
      .catch((e: unknown) => e);
    expect((err4 as Error).message).toContain('identity: cannot change on a running mesh');
    expect(m.snapshot().config).toMatchObject({ version: 1, updates: { applied: 0, refused: 4 } });
  });

  it('a request in flight finishes on the config it started with', async () => {
    const m = mesh({
      services: { api: { discovery: { static: [slow.address] }, timeout: '5s', retries: { attempts: 0 } } },
    });
    const inflight = m.fetch('http://api/').then((r) => r.text());
    await new Promise((r) => setTimeout(r, 100));
    await m.update({
      services: {
        api: { discovery: { static: [slow.address] }, timeout: '100ms', retries: { attempts: 0 } },
      },
    });
    // Started under timeout 5s: it is not cut at 100 ms by the new config.
    expect(await inflight).toBe('slow');
    const err = await m.fetch('http://api/').catch((e: unknown) => e);
    expect(isMeshworkError(err, 'MESHWORK_ERR_TIMEOUT')).toBe(true);
  });

  it('a route to a service the update removes still reaches it for the requests already on their way', async () => {
    const m = mesh({
      services: {
        front: {
          discovery: { static: [v1.address] },
          http: [{ route: [{ destination: { host: 'back' } }] }],
        },
        back: { discovery: { static: [slow.address] } },
      },
    });
    const inflight = m.fetch('http://front/').then((r) => r.text());
    await new Promise((r) => setTimeout(r, 100));
    await m.update({ services: { front: { discovery: { static: [v1.address] } } } });
    expect(await inflight).toBe('slow');
    expect(await (await m.fetch('http://front/')).text()).toBe('v1');
  });

  it('a removed service drains: new requests are refused, in-flight ones finish, then its pools close', async () => {
    const m = mesh({
      services: {
        a: { discovery: { static: [v1.address] } },
        b: { discovery: { static: [slow.address] } },
      },
    });
    const inflight = m.fetch('http://b/').then((r) => r.text());
    await new Promise((r) => setTimeout(r, 100));
    await m.update({ services: { a: { discovery: { static: [v1.address] } } } });
    const err = await m.fetch('http://b/').catch((e: unknown) => e);
    expect(isMeshworkError(err, 'MESHWORK_ERR_UNKNOWN_SERVICE')).toBe(true);
    expect(m.snapshot().config?.draining.map((d) => d.service)).toEqual(['b']);
    expect(Object.keys(m.snapshot().services)).toEqual(['a']);
    expect(await inflight).toBe('slow');
    await waitFor(() => m.snapshot().config?.draining.length === 0, 'the drain to end');
    expect(events.at(-1)?.services).toEqual({ added: [], removed: ['b'], changed: [] });
  });

  it('keeps the breaker, ejections and retry budget when only the routes change; new breaker settings start closed', async () => {
    const policy = {
      outlierDetection: { consecutive5xxErrors: 2, baseEjectionTime: '60s', maxEjectionPercent: 100 },
      circuitBreaker: { volumeThreshold: 3, errorThresholdPercentage: 50, resetTimeout: '60s' },
    };
    const failing2 = await startServer((_req, res) => {
      res.statusCode = 500;
      res.end('no');
    });
    const cfg = (headers?: Record<string, string>, cb = policy.circuitBreaker) => ({
      services: {
        api: {
          discovery: { static: [failing.address, failing2.address] },
          retries: { attempts: 0 },
          trafficPolicy: { ...policy, circuitBreaker: cb },
          http: [
            { ...(headers ? { headers: { request: { set: headers } } } : {}), route: [{ destination: {} }] },
          ],
        },
      },
    });
    const m = mesh(cfg());
    meshes.push({ close: () => failing2.close() } as Mesh);
    for (let i = 0; i < 12 && m.snapshot().services.api?.circuitBreaker?.state !== 'open'; i++)
      await m.fetch('http://api/').catch(() => {});
    const before = m.snapshot().services.api;
    expect(before?.circuitBreaker?.state).toBe('open');
    const ejected = before?.endpoints.find((e) => e.ejected)?.address;
    expect(ejected).toBeDefined();
    const budget = before?.retryBudget;

    await m.update(cfg({ 'x-version': '2' }));
    const after = m.snapshot().services.api;
    expect(after?.circuitBreaker?.state).toBe('open');
    expect(after?.endpoints.find((e) => e.address === ejected)?.ejected).toBe(true);
    expect(after?.retryBudget?.requests).toBe(budget?.requests);
    const err = await m.fetch('http://api/').catch((e: unknown) => e);
    expect(isMeshworkError(err, 'MESHWORK_ERR_CIRCUIT_OPEN')).toBe(true);

    // New breaker settings: a new breaker (closed); the ejection, an endpoint's state, stays.
    await m.update(cfg({ 'x-version': '3' }, { ...policy.circuitBreaker, volumeThreshold: 50 }));
    const third = m.snapshot().services.api;
    expect(third?.circuitBreaker?.state).toBe('closed');
    expect(third?.circuitBreakers).toEqual([{ state: 'closed' }]);
    expect(third?.endpoints.find((e) => e.address === ejected)?.ejected).toBe(true);
    expect((await m.fetch('http://api/')).status).toBe(500);
  });

  it('regrouping subsets keeps the endpoints, and a request that chose a removed subset still finds it', async () => {
    const m = mesh({ services: { reviews: reviews([100, 0]) } });
    await served(m, 'http://reviews/', 5);
    const cfg = reviews([100, 0]);
    // v1 becomes the subset of version v2 endpoints; subset v2 is gone.
    await m.update({
      services: {
        reviews: {
          ...cfg,
          subsets: [{ name: 'v1', labels: { version: 'v2' } }],
          http: [{ route: [{ destination: { subset: 'v1' } }] }],
        },
      },
    });
    expect(await served(m, 'http://reviews/', 5)).toEqual({ v2: 5 });
    const eps = m.snapshot().services.reviews?.endpoints ?? [];
    expect(eps.find((e) => e.address === v1.address)?.attempts).toBe(5);
    expect(m.snapshot().services.reviews?.subsets).toEqual([
      { name: 'v1', labels: { version: 'v2' }, endpoints: 1 },
    ]);
  });

  it('a service whose discovery changes keeps its old endpoints until the new source has some', async () => {
    const file = join(tmpdir(), `meshwork-live-${process.pid}-${Date.now()}.json`);
    rmSync(file, { force: true });
    try {
      const m = mesh({ services: { api: { discovery: { static: [v1.address] } } } });
      expect(await served(m, 'http://api/', 3)).toEqual({ v1: 3 });
      await m.update({ services: { api: { discovery: { file: { path: file, pollInterval: '100ms' } } } } });
      // The file does not exist yet: the old endpoints keep serving.
      expect(await served(m, 'http://api/', 3)).toEqual({ v1: 3 });
      expect(m.snapshot().config?.handovers).toMatchObject([
        { service: 'api', provider: 'file', endpoints: 0 },
      ]);
      writeFileSync(file, JSON.stringify([v2.address]));
      await waitFor(() => m.snapshot().config?.handovers.length === 0, 'the handover');
      expect(await served(m, 'http://api/', 3)).toEqual({ v2: 3 });
      expect(m.snapshot().services.api?.discovery.provider).toBe('file');
      await waitFor(() => m.snapshot().config?.draining.length === 0, 'the old endpoints to drain');
    } finally {
      rmSync(file, { force: true });
    }
  });

  it('new request limits apply at once, over the same endpoints and in-flight counts', async () => {
    const cfg = (max?: number) => ({
      services: {
        api: {
          discovery: { static: [slow.address] },
          retries: { attempts: 0 },
          ...(max ? { trafficPolicy: { connectionPool: { http: { http2MaxRequests: max } } } } : {}),
        },
      },
    });
    const m = mesh(cfg());
    const first = m.fetch('http://api/').then((r) => r.text());
    await waitFor(() => m.snapshot().services.api?.inflight === 1, 'the first request in flight');
    await m.update(cfg(1));
    // The request in flight counts against the new limit: a second one overflows.
    const err = await m.fetch('http://api/').catch((e: unknown) => e);
    expect(isMeshworkError(err, 'MESHWORK_ERR_OVERFLOW')).toBe(true);
    expect(await first).toBe('slow');
    expect(m.snapshot().services.api?.connectionPool).toEqual({ active: 0, overflows: 1 });
    expect(m.snapshot().services.api?.endpoints[0]?.attempts).toBe(1);
  });

  it('the same config again is "unchanged": no new version', async () => {
    const m = mesh({ services: { reviews: reviews([100, 0]) } });
    await m.update({ services: { reviews: reviews([100, 0]) } });
    expect(m.snapshot().config).toMatchObject({ version: 1, updates: { applied: 0, unchanged: 1 } });
    expect(events.map((e) => e.result)).toEqual(['unchanged']);
  });

  it('a closed mesh refuses updates', async () => {
    const m = mesh({ services: { reviews: reviews([100, 0]) } });
    await m.close();
    const err = await m.update({ services: {} }).catch((e: unknown) => e);
    expect(isMeshworkError(err, 'MESHWORK_ERR_CLOSED')).toBe(true);
  });
});

describe('per-call overrides', () => {
  it('timeout, retries and a subset pin, per call, over the route', async () => {
    let calls = 0;
    const flaky = await startServer((_req, res) => {
      calls++;
      res.statusCode = 503;
      res.end('busy');
    });
    try {
      const m = mesh({
        services: {
          reviews: reviews([100, 0]),
          api: { discovery: { static: [slow.address] }, timeout: '5s' },
          busy: { discovery: { static: [flaky.address] }, retries: { attempts: 2, retryOn: '503' } },
        },
      });
      // A subset pin beats the route's weights.
      const pinned = await m.fetch('http://reviews/', { meshwork: { subset: 'v2' } });
      expect(await pinned.text()).toBe('v2');
      // The timeout replaces the service's.
      const err = await m.fetch('http://api/', { meshwork: { timeout: '50ms' } }).catch((e: unknown) => e);
      expect(isMeshworkError(err, 'MESHWORK_ERR_TIMEOUT')).toBe(true);
      // retries: 0 replaces the service's two retries.
      calls = 0;
      expect((await m.fetch('http://busy/', { meshwork: { retries: 0 } })).status).toBe(503);
      expect(calls).toBe(1);
      calls = 0;
      expect((await m.fetch('http://busy/')).status).toBe(503);
      expect(calls).toBe(3);
      // Any client, through withCallOptions.
      const res = await m.withCallOptions({ subset: 'v2' }, () =>
        request('http://reviews/', { dispatcher: m.dispatcher }),
      );
      expect(await res.body.text()).toBe('v2');
      // A bad option is a config error naming it.
      const bad = await m
        .fetch('http://reviews/', { meshwork: { timeout: 'soon' } })
        .catch((e: unknown) => e);
      expect(isMeshworkError(bad, 'MESHWORK_ERR_CONFIG')).toBe(true);
      expect((bad as Error).message).toContain('meshwork.timeout: "soon" is not a duration');
      expect(() => m.withCallOptions({ retries: { hedge: { delay: '10ms' } } } as never, () => 0)).toThrow(
        /callOptions\.retries/,
      );
      // An unknown subset fails the call, not silently ignored.
      const unknown = await m
        .fetch('http://reviews/', { meshwork: { subset: 'v9' } })
        .catch((e: unknown) => e);
      expect(isMeshworkError(unknown, 'MESHWORK_ERR_NO_ENDPOINTS')).toBe(true);
    } finally {
      await flaky.close();
    }
  });
});
