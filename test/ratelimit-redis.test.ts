// Limits shared through a real Redis: several meshes (as replicas) share one limit in lease and
// exact mode, usage totals add up across them, and a Redis that dies (killed, or hung) never
// makes a request wait past the store's timeout: the local fallback takes over, and sharing
// resumes by itself when Redis is back. Speed is measured in bench/ratelimit, not here.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { meshHandler } from '../src/context/adapters.ts';
import { createMesh, type Mesh, type MeshConfigInput } from '../src/index.ts';
import { connectRedis, type RedisConnection } from '../src/ratelimit/redis-client.ts';
import { silentLogger } from '../src/telemetry/logger.ts';
import { listen } from './support/inbound.ts';
import {
  type PrivateRedis,
  redisBinary,
  startPrivateCluster,
  startPrivateRedis,
} from './support/redis-server.ts';
import { requireService, suiteName, testServices } from './support/services.ts';

const svc = testServices();
const NEEDS = 'redis (MESHWORK_TEST_REDIS)';
const run = requireService(NEEDS, !!svc.redis && !!redisBinary());

let closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.reverse()) await c();
  closers = [];
});

interface Replica {
  mesh: Mesh;
  url: string;
  served: () => number;
}

async function replica(config: MeshConfigInput): Promise<Replica> {
  const mesh = createMesh(config);
  let served = 0;
  const { url, close } = await listen(
    createServer(
      meshHandler(mesh, (_req, res) => {
        served++;
        res.end('ok');
      }),
    ),
  );
  closers.push(close, () => mesh.close());
  return { mesh, url, served: () => served };
}

async function connected(m: Mesh, want = 'connected', ms = 5_000): Promise<void> {
  const until = Date.now() + ms;
  while (m.snapshot().rateLimits?.store.state !== want) {
    if (Date.now() > until)
      throw new Error(`store state ${m.snapshot().rateLimits?.store.state}, wanted ${want}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function get(url: string, headers: Record<string, string> = { 'x-app': 'acme' }) {
  const t0 = performance.now();
  const r = await fetch(url, { headers });
  await r.arrayBuffer();
  return { status: r.status, ms: performance.now() - t0, headers: r.headers };
}

/**
 * A limit shared through `redis`. The timeout is generous unless a test sets it: a call slower
 * than the timeout is decided locally (by design), which on a loaded test machine would blur what
 * the sharing tests check.
 */
const shared = (
  redis: string,
  mode: 'lease' | 'exact',
  requests: number,
  extra: object = {},
): MeshConfigInput => ({
  rateLimits: {
    domain: `test-${randomUUID()}`,
    store: { redis, mode, timeout: '1s', ...extra },
    policies: [{ name: 'per-app', key: { header: 'x-app' }, limits: [{ requests, per: '1h' }] }],
  },
});

describe.runIf(run)(suiteName('rate limits shared through Redis', run, NEEDS), () => {
  for (const mode of ['lease', 'exact'] as const)
    it(`${mode}: three replicas never admit more than the limit together, and admit all of it`, async () => {
      const config = shared(svc.redis as string, mode, 20);
      const replicas = await Promise.all([replica(config), replica(config), replica(config)]);
      for (const r of replicas) await connected(r.mesh);
      const statuses: number[] = [];
      await Promise.all(
        replicas.map(async (r) => {
          for (let i = 0; i < 15; i++) statuses.push((await get(r.url)).status);
        }),
      );
      const admitted = statuses.filter((s) => s === 200).length;
      expect(admitted).toBeLessThanOrEqual(20);
      // A lease held by a replica that stops asking is given back within a second (then reused).
      if (admitted < 20) await new Promise((r) => setTimeout(r, 1_300));
      let more = 0;
      for (const r of replicas) for (let i = 0; i < 5; i++) if ((await get(r.url)).status === 200) more++;
      expect(admitted + more).toBe(20);
      expect(replicas.reduce((n, r) => n + r.served(), 0)).toBe(20);
    });

  it('lease: the RateLimit header shows what is left across replicas', async () => {
    const config = shared(svc.redis as string, 'lease', 100);
    const [a, b] = await Promise.all([replica(config), replica(config)]);
    await connected(a.mesh);
    await connected(b.mesh);
    for (let i = 0; i < 10; i++) await get(a.url);
    const r = await get(b.url);
    const left = Number(/r=(\d+)/.exec(r.headers.get('ratelimit') ?? '')?.[1]);
    // 11 used; a's unspent lease still counts as used from b's side.
    expect(left).toBeLessThanOrEqual(89);
    expect(left).toBeGreaterThanOrEqual(80);
  });

  it('usage is reported in batches and the totals add up across replicas', async () => {
    const config = shared(svc.redis as string, 'lease', 1000);
    const [a, b] = await Promise.all([replica(config), replica(config)]);
    await connected(a.mesh);
    await connected(b.mesh);
    for (let i = 0; i < 7; i++) await get(a.url);
    for (let i = 0; i < 5; i++) await get(b.url);
    const rt = (m: Mesh) => (m as unknown as { snapshot(): unknown }).snapshot;
    void rt;
    // Two report ticks (1 s each) bring both replicas' counts in.
    const until = Date.now() + 5_000;
    let total: number | undefined;
    while (Date.now() < until) {
      await new Promise((r) => setTimeout(r, 200));
      total = a.mesh.snapshot().rateLimits?.usage[0]?.total?.day;
      const totalB = b.mesh.snapshot().rateLimits?.usage[0]?.total?.day;
      if (total === 12 && totalB === 12) break;
    }
    expect(total).toBe(12);
    expect(a.mesh.snapshot().rateLimits?.usage[0]?.used.day).toBe(7);
    expect(a.mesh.snapshot().rateLimits?.store.replicas).toBe(2);
  });

  it('counter keys carry a hash tag (Redis Cluster: one slot per script call)', async () => {
    const config = shared(svc.redis as string, 'exact', 10);
    const r = await replica(config);
    await connected(r.mesh);
    await get(r.url);
    const domain = (config.rateLimits as { domain: string }).domain;
    const conn: RedisConnection = connectRedis({
      url: svc.redis as string,
      cluster: false,
      logger: silentLogger,
    });
    closers.push(() => conn.close());
    while (!conn.ready) await new Promise((x) => setTimeout(x, 10));
    const keys = (await conn.evalScript(
      { source: "return redis.call('KEYS', ARGV[1])", sha: '0' },
      ['x'],
      [`mwrl:{${domain}*`],
      1_000,
    )) as string[];
    // The counter (its own slot), and the domain's heartbeat set (usage keys join it once reported).
    expect(keys.sort()).toEqual(
      [`mwrl:{${domain}}:replicas`, `mwrl:{${domain}|inbound|p|per-app|acme}`].sort(),
    );
  });
});

describe.runIf(run)(suiteName('when Redis dies', run, NEEDS), () => {
  let redis: PrivateRedis;
  beforeAll(async () => {
    redis = await startPrivateRedis();
  });
  afterAll(() => redis.stop());

  it('killed: no request waits past the timeout, local limits take over, sharing resumes when it is back', async () => {
    const r = await replica(shared(redis.url, 'lease', 30, { timeout: '10ms', replicas: 1 }));
    await connected(r.mesh);
    for (let i = 0; i < 10; i++) expect((await get(r.url)).status).toBe(200);
    await redis.kill();
    const during: { status: number; ms: number }[] = [];
    for (let i = 0; i < 40; i++) during.push(await get(r.url));
    // Generous bound for a loaded machine: the point is that nobody waits for a dead Redis.
    expect(Math.max(...during.map((d) => d.ms))).toBeLessThan(250);
    // Local fallback: this replica enforces the limit (30/h) on its own; 10 were used via Redis
    // but a fresh local window does not know them: at most 30 more.
    const admitted = during.filter((d) => d.status === 200).length;
    expect(admitted).toBeGreaterThan(0);
    expect(admitted).toBeLessThanOrEqual(30);
    expect(during.some((d) => d.status === 429)).toBe(true);
    expect(r.mesh.snapshot().rateLimits?.store.state).toBe('fallback');
    await redis.restart();
    await connected(r.mesh, 'connected', 10_000);
    const after = await get(r.url);
    expect([200, 429]).toContain(after.status);
    expect(r.mesh.snapshot().rateLimits?.store.fallbackDecisions).toBeGreaterThan(0);
  });

  it('hung (SIGSTOP): calls time out at the store timeout, the breaker opens, nothing waits', async () => {
    const r = await replica(shared(redis.url, 'exact', 1000, { timeout: '20ms' }));
    await connected(r.mesh);
    expect((await get(r.url)).status).toBe(200);
    redis.pause();
    try {
      const during: number[] = [];
      for (let i = 0; i < 20; i++) during.push((await get(r.url)).ms);
      expect(Math.max(...during)).toBeLessThan(250);
      const snap = r.mesh.snapshot().rateLimits?.store;
      expect(snap?.timeouts).toBeGreaterThanOrEqual(3);
      expect(snap?.breaker).not.toBe('closed');
    } finally {
      redis.resume();
    }
    await connected(r.mesh, 'connected', 10_000);
  });

  it('onFailure closed refuses with 503 (Retry-After); open lets everything through', async () => {
    const closed = await replica(shared(redis.url, 'exact', 1000, { onFailure: 'closed' }));
    const open = await replica(shared(redis.url, 'exact', 1, { onFailure: 'open' }));
    await connected(closed.mesh);
    await connected(open.mesh);
    await redis.kill();
    try {
      const c = await get(closed.url);
      expect(c.status).toBe(503);
      expect(c.headers.get('retry-after')).toBe('1');
      for (let i = 0; i < 3; i++) expect((await get(open.url)).status).toBe(200);
      expect(closed.served()).toBe(0);
    } finally {
      await redis.restart();
    }
  });

  it('before the first connection, decisions are local (never waiting for Redis)', async () => {
    await redis.kill();
    try {
      const r = await replica(shared(redis.url, 'lease', 2, { replicas: 1 }));
      expect(r.mesh.snapshot().rateLimits?.store.state).toBe('connecting');
      const s = [await get(r.url), await get(r.url), await get(r.url)];
      expect(s.map((x) => x.status)).toEqual([200, 200, 429]);
    } finally {
      await redis.restart();
    }
  });
});

describe.runIf(run)(suiteName('on a Redis Cluster', run, NEEDS), () => {
  it('three nodes: counters spread over the slots, each script call on one node', {
    timeout: 60_000,
  }, async () => {
    const cluster = await startPrivateCluster();
    closers.push(() => cluster.stop());
    const config = shared(cluster.url, 'lease', 5, { cluster: true });
    const [a, b] = await Promise.all([replica(config), replica(config)]);
    await connected(a.mesh, 'connected', 10_000);
    await connected(b.mesh, 'connected', 10_000);
    const apps = ['acme', 'globex', 'initech', 'umbrella', 'hooli', 'stark'];
    for (const app of apps) {
      let admitted = 0;
      for (let i = 0; i < 4; i++) {
        if ((await get(a.url, { 'x-app': app })).status === 200) admitted++;
        if ((await get(b.url, { 'x-app': app })).status === 200) admitted++;
      }
      expect(admitted, app).toBeLessThanOrEqual(5);
      expect(admitted, app).toBeGreaterThanOrEqual(4); // a lease held by the other may wait for its window
    }
    // Every decision went through the cluster: no errors (a cross-slot script would fail).
    expect(a.mesh.snapshot().rateLimits?.store).toMatchObject({ errors: 0, fallbackDecisions: 0 });
    expect(b.mesh.snapshot().rateLimits?.store).toMatchObject({ errors: 0, fallbackDecisions: 0 });
    // The counters are spread: more than one node holds some.
    const holding = cluster.nodes.filter(
      (n) =>
        Number(execFileSync('redis-cli', ['-p', String(n.port), 'dbsize'], { encoding: 'utf8' }).trim()) > 0,
    );
    expect(holding.length).toBeGreaterThan(1);
  });
});
