// Discovery seen through the mesh: traffic follows the registry, the first request waits for
// the first resolution, a removed endpoint drains, an outage keeps the last endpoints, and
// the snapshot shows discovery state. Against the Consul HTTP API double and real servers.
import { writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createMesh, isMeshworkError, type Mesh } from '../src/index.ts';
import { ConsulDouble } from './support/consul-double.ts';
import { named, startServer, type TestServer } from './support/servers.ts';

let consul: ConsulDouble;
let a: TestServer;
let b: TestServer;
let mesh: Mesh | undefined;

beforeEach(async () => {
  consul = await new ConsulDouble().start();
  a = await startServer(named('a'));
  b = await startServer(named('b'));
});
afterEach(async () => {
  await mesh?.close();
  mesh = undefined;
  await consul.stop();
  await a.close();
  await b.close();
});

function consulMesh(extra: object = {}): Mesh {
  mesh = createMesh({
    env: {},
    services: {
      travels: {
        discovery: {
          consul: { service: 'travels', host: '127.0.0.1', port: consul.port, wait: '30s', minInterval: 50 },
          ...extra,
        },
      },
    },
  });
  return mesh;
}

const register = (id: string, s: TestServer) =>
  consul.register({ id, service: 'travels', port: s.port, address: '127.0.0.1' });

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function served(m: Mesh, n: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) seen.add(await (await m.fetch('http://travels/')).text());
  return seen;
}

describe('discovery through the mesh', () => {
  it('follows the registry: new instances take traffic, removed ones stop', async () => {
    register('a', a);
    const m = consulMesh();
    expect(await served(m, 5)).toEqual(new Set(['a']));
    register('b', b);
    await until(() => m.snapshot().services.travels?.endpoints.length === 2);
    // Both instances take traffic once the watch delivered the new one (concurrent requests:
    // with nothing in flight, P2C peak-EWMA rightly keeps choosing the endpoint it knows is fast).
    await Promise.all(Array.from({ length: 20 }, async () => (await m.fetch('http://travels/')).text()));
    expect(a.hits.length).toBeGreaterThan(0);
    expect(b.hits.length).toBeGreaterThan(0);
    consul.deregister('a');
    await until(() => m.snapshot().services.travels?.endpoints.filter((e) => !e.draining).length === 1);
    const before = a.hits.length;
    expect(await served(m, 10)).toEqual(new Set(['b']));
    expect(a.hits.length).toBe(before);
  });

  it('a failing health check in the registry takes the instance out', async () => {
    register('a', a);
    register('b', b);
    const m = consulMesh();
    await until(() => m.snapshot().services.travels?.endpoints.length === 2);
    consul.setCheck('b', 'service:b', 'critical');
    await until(() => m.snapshot().services.travels?.endpoints.filter((e) => !e.draining).length === 1);
    expect(await served(m, 10)).toEqual(new Set(['a']));
  });

  it('the first request waits for the first resolution instead of failing', async () => {
    consul.fail(500);
    register('a', a);
    const m = consulMesh();
    const pending = m.fetch('http://travels/').then((r) => r.text());
    setTimeout(() => consul.fail(undefined), 300);
    expect(await pending).toBe('a');
  });

  it('gives up after initialTimeout with a clear error that carries the last registry error', async () => {
    consul.fail(500, 'No cluster leader');
    const m = consulMesh({ initialTimeout: '400ms' });
    const err = await m.fetch('http://travels/').catch((e) => e);
    expect(isMeshworkError(err, 'MESHWORK_ERR_NO_ENDPOINTS')).toBe(true);
    expect(err.message).toMatch(/within 400 ms/);
  });

  it('keeps the last known endpoints while the registry is down', async () => {
    register('a', a);
    const m = consulMesh();
    expect(await served(m, 2)).toEqual(new Set(['a']));
    consul.fail(500);
    consul.touch('travels'); // wake the blocked query so it sees the outage
    await until(() => (m.snapshot().services.travels?.discovery.errors ?? 0) > 0);
    expect(await served(m, 5)).toEqual(new Set(['a']));
    expect(m.snapshot().services.travels?.discovery.lastError).toBeTruthy();
  });

  it('a removed endpoint finishes its in-flight request (drain), then its pool closes', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const slow = await startServer(async (_req, res) => {
      await held;
      res.end('slow-done');
    });
    consul.register({ id: 'slow', service: 'travels', port: slow.port, address: '127.0.0.1' });
    const m = consulMesh();
    const inflight = m.fetch('http://travels/').then((r) => r.text());
    await until(() => slow.hits.length === 1);
    consul.deregister('slow');
    await until(() => m.snapshot().services.travels?.endpoints.some((e) => e.draining) === true);
    expect(m.snapshot().services.travels?.endpoints.find((e) => e.draining)?.inflight).toBe(1);
    release();
    expect(await inflight).toBe('slow-done');
    await until(() => (m.snapshot().services.travels?.endpoints.length ?? 1) === 0);
    await slow.close();
  });
});

describe('file discovery and health checks through the mesh', () => {
  it('a file edit moves traffic; an endpoint failing its active health check is taken out', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'meshwork-file-'));
    const file = join(dir, 'travels.json');
    writeFileSync(file, JSON.stringify([a.address]));
    let bHealthy = true;
    const bHealth = await startServer((req, res) => {
      if (req.url === '/healthz') res.statusCode = bHealthy ? 200 : 503;
      res.end('b');
    });
    mesh = createMesh({
      env: {},
      services: {
        travels: {
          discovery: {
            file: { path: file },
            healthCheck: { interval: '100ms', timeout: '200ms', unhealthyThreshold: 2, healthyThreshold: 1 },
          },
        },
      },
    });
    const m = mesh;
    expect(await served(m, 3)).toEqual(new Set(['a']));
    writeFileSync(file, JSON.stringify([bHealth.address]));
    await until(
      () =>
        m.snapshot().services.travels?.endpoints.some((e) => e.address === bHealth.address && !e.draining) ===
        true,
    );
    expect(await served(m, 3)).toEqual(new Set(['b']));
    bHealthy = false;
    const bInSnapshot = () =>
      m.snapshot().services.travels?.endpoints.find((e) => e.address === bHealth.address && !e.draining);
    await until(() => bInSnapshot()?.healthy === false);
    // Fail closed: a failing check is never overridden, not even by panic mode (1 of 1 is down).
    const err = await m.fetch('http://travels/').catch((e) => e);
    expect(isMeshworkError(err, 'MESHWORK_ERR_NO_ENDPOINTS')).toBe(true);
    bHealthy = true;
    await until(() => bInSnapshot()?.healthy === true);
    expect(await served(m, 2)).toEqual(new Set(['b']));
    await bHealth.close();
  });
});
