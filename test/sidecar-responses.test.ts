/**
 * `sidecarResponses: true`: the failures the mesh makes come back as the HTTP responses an Istio
 * sidecar gives (Envoy's status codes, the response flag in a header), checked with real servers.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createMesh, isMeshworkError, type Mesh } from '../src/index.ts';
import { refusedAddress, startServer, type TestServer } from './support/servers.ts';

const meshes: Mesh[] = [];
const servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function mesh(service: Record<string, unknown>, sidecarResponses = true): Mesh {
  const m = createMesh({ env: {}, sidecarResponses, services: { svc: service } } as never);
  meshes.push(m);
  return m;
}

async function answer(m: Mesh, init?: RequestInit) {
  const res = await m.fetch('http://svc/x', init);
  return { status: res.status, flag: res.headers.get('x-meshwork-response-flags'), body: await res.text() };
}

describe('sidecarResponses: mesh-made failures as a sidecar answers them', () => {
  it('a route timeout is 504 UT "upstream request timeout"', async () => {
    const slow = await startServer(async (_req, res) => {
      await new Promise((r) => setTimeout(r, 500));
      res.end('late');
    });
    servers.push(slow);
    const m = mesh({ discovery: { static: [slow.address] }, timeout: '50ms' });
    expect(await answer(m)).toEqual({ status: 504, flag: 'UT', body: 'upstream request timeout' });
  });

  it('an overflow is 503 UO; no endpoint is 503 UH; a refused connection is 503 UF', async () => {
    const slow = await startServer(async (_req, res) => {
      await new Promise((r) => setTimeout(r, 200));
      res.end('ok');
    });
    servers.push(slow);
    const limited = mesh({
      discovery: { static: [slow.address] },
      trafficPolicy: { connectionPool: { http: { http2MaxRequests: 1 } } },
    });
    const [first, second] = await Promise.all([answer(limited), answer(limited)]);
    expect([first.status, second.status].sort()).toEqual([200, 503]);
    expect([first.flag, second.flag]).toContain('UO');

    const empty = mesh({ discovery: { static: [] } });
    expect(await answer(empty)).toMatchObject({ status: 503, flag: 'UH', body: 'no healthy upstream' });

    const refused = mesh({ discovery: { static: [await refusedAddress()] } });
    expect(await answer(refused)).toMatchObject({ status: 503, flag: 'UF' });
  });

  it("the caller's own failures still throw: an aborted request, an unknown service", async () => {
    const slow = await startServer(async (_req, res) => {
      await new Promise((r) => setTimeout(r, 300));
      res.end('late');
    });
    servers.push(slow);
    const m = mesh({ discovery: { static: [slow.address] } });
    await expect(m.fetch('http://svc/', { signal: AbortSignal.timeout(50) })).rejects.toThrow();
    const err = await m.fetch('http://nope/').catch((e: unknown) => e);
    expect(isMeshworkError((err as Error).cause ?? err, 'MESHWORK_ERR_UNKNOWN_SERVICE')).toBe(true);
  });

  it('off by default: the same timeout throws MESHWORK_ERR_TIMEOUT', async () => {
    const slow = await startServer(async (_req, res) => {
      await new Promise((r) => setTimeout(r, 500));
      res.end('late');
    });
    servers.push(slow);
    const m = mesh({ discovery: { static: [slow.address] }, timeout: '50ms' }, false);
    const err = await m.fetch('http://svc/').catch((e: unknown) => e);
    expect(isMeshworkError((err as Error).cause ?? err, 'MESHWORK_ERR_TIMEOUT')).toBe(true);
  });
});
