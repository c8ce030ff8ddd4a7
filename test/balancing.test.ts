// Balancers through the mesh against real servers: each algorithm, consistent hashing with
// headers and cookies, locality, and peak-EWMA steering away from a slow replica.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createMesh, type Mesh } from '../src/index.ts';
import { seededRandom } from './support/seeded-random.ts';
import { named, startServer, type TestServer } from './support/servers.ts';

let s: TestServer[] = [];
const meshes: Mesh[] = [];

beforeAll(async () => {
  s = await Promise.all(['a', 'b', 'c'].map((n) => startServer(named(n))));
});
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
  for (const x of s) x.hits.length = 0;
});
afterAll(async () => {
  await Promise.all(s.map((x) => x.close()));
});

function mesh(loadBalancer: object, extra: object = {}, endpoints?: unknown[]): Mesh {
  const m = createMesh({
    env: {},
    ...extra,
    services: {
      travels: {
        discovery: { static: (endpoints ?? s.map((x) => x.address)) as never },
        trafficPolicy: { loadBalancer: loadBalancer as never },
      },
    },
  });
  meshes.push(m);
  return m;
}

async function get(m: Mesh, init?: RequestInit): Promise<string> {
  return (await m.fetch('http://travels/', init)).text();
}

const counts = () => s.map((x) => x.hits.length);

describe('algorithms', () => {
  it('ROUND_ROBIN spreads sequential requests evenly', async () => {
    const m = mesh({ simple: 'ROUND_ROBIN' });
    for (let i = 0; i < 30; i++) await get(m);
    expect(counts()).toEqual([10, 10, 10]);
  });

  it('weighted ROUND_ROBIN follows the weights', async () => {
    const m = mesh({ simple: 'ROUND_ROBIN' }, {}, [
      { address: s[0]?.address, weight: 3 },
      { address: s[1]?.address, weight: 1 },
    ]);
    for (let i = 0; i < 40; i++) await get(m);
    expect(counts().slice(0, 2)).toEqual([30, 10]);
  });

  it('RANDOM with weights sends about the weighted share', async () => {
    const m = mesh({ simple: 'RANDOM' }, { random: seededRandom(3) }, [
      { address: s[0]?.address, weight: 4 },
      { address: s[1]?.address, weight: 1 },
    ]);
    for (let i = 0; i < 200; i++) await get(m);
    const share = (s[0]?.hits.length ?? 0) / 200;
    expect(share).toBeGreaterThan(0.65);
    expect(share).toBeLessThan(0.95);
  });

  it('LEAST_REQUEST (and its alias LEAST_CONN) avoids an endpoint with requests stuck in flight', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const stuck = await startServer(async (_req, res) => {
      await gate;
      res.end('stuck');
    });
    for (const simple of ['LEAST_REQUEST', 'LEAST_CONN']) {
      const m = mesh({ simple }, {}, [stuck.address, s[0]?.address]);
      // Pin a few requests on the stuck endpoint, then measure where new ones go.
      const pinned = Array.from({ length: 4 }, () => get(m).catch(() => ''));
      await new Promise((r) => setTimeout(r, 100));
      const before = stuck.hits.length;
      for (let i = 0; i < 20; i++) await get(m);
      expect(stuck.hits.length - before).toBeLessThanOrEqual(1);
      expect(m.snapshot().services.travels?.loadBalancer).toContain('LEAST_REQUEST');
      void pinned;
    }
    release();
    await stuck.close();
  });

  it('PEAK_EWMA (the default) sends little traffic to a much slower replica', async () => {
    // 150 ms rather than bench/balancing's 40 ms: under a loaded test run the fast replicas
    // (in this same process) slow down too, and the test must not depend on machine speed.
    const slow = await startServer(async (_req, res) => {
      await new Promise((r) => setTimeout(r, 150));
      res.end('slow');
    });
    const m = mesh({}, {}, [slow.address, ...s.map((x) => x.address)]);
    const n = 200;
    for (let i = 0; i < n; i += 8) await Promise.all(Array.from({ length: 8 }, () => get(m)));
    const share = slow.hits.length / n;
    // Round robin would send 25%; peak-EWMA should send a few percent.
    expect(share).toBeLessThan(0.1);
    const snap = m.snapshot().services.travels?.endpoints.find((e) => e.address === slow.address);
    expect(snap?.ewmaMs).toBeGreaterThan(20);
    await slow.close();
  });
});

describe('consistent hashing', () => {
  it('httpHeaderName: the same key always lands on the same endpoint; keys spread', async () => {
    const m = mesh({ consistentHash: { httpHeaderName: 'x-user' } });
    const where = new Map<string, string>();
    for (let u = 0; u < 30; u++) {
      for (let k = 0; k < 3; k++) {
        const got = await get(m, { headers: { 'x-user': `user-${u}` } });
        if (k === 0) where.set(`user-${u}`, got);
        else expect(got).toBe(where.get(`user-${u}`));
      }
    }
    expect(new Set(where.values()).size).toBe(3);
  });

  it('httpCookie: sets the cookie when it is missing, then sticks to one endpoint', async () => {
    const m = mesh({ consistentHash: { httpCookie: { name: 'mw-affinity', ttl: '1h' } } });
    const first = await m.fetch('http://travels/');
    const target = await first.text();
    const setCookie = first.headers.getSetCookie();
    expect(setCookie).toHaveLength(1);
    expect(setCookie[0]).toMatch(/^mw-affinity=[0-9a-f]+; Path=\/; HttpOnly; Max-Age=3600$/);
    const cookie = (setCookie[0] as string).split(';')[0] as string;
    for (let i = 0; i < 10; i++) {
      const r = await m.fetch('http://travels/', { headers: { cookie } });
      expect(await r.text()).toBe(target);
      expect(r.headers.getSetCookie()).toHaveLength(0);
    }
  });

  it('httpQueryParameterName hashes on a query parameter', async () => {
    const m = mesh({ consistentHash: { httpQueryParameterName: 'cart', maglev: {} } });
    const a = await (await m.fetch('http://travels/?cart=42')).text();
    for (let i = 0; i < 5; i++) expect(await (await m.fetch('http://travels/?cart=42&x=1')).text()).toBe(a);
  });
});

describe('locality', () => {
  it('prefers endpoints in the mesh zone', async () => {
    const m = mesh({}, { zone: 'eu-1' }, [
      { address: s[0]?.address, zone: 'eu-1' },
      { address: s[1]?.address, zone: 'us-1' },
      { address: s[2]?.address, zone: 'us-1' },
    ]);
    await Promise.all(Array.from({ length: 30 }, () => get(m)));
    expect(counts()).toEqual([30, 0, 0]);
  });
});
