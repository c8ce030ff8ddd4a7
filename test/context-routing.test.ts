// The mission in one test: the gateway's context (plan) arrives at a service, the service code
// only calls mesh.fetch('http://travels/...'), and the mesh routes partner traffic to v2 and
// internal traffic to v1 on that context, forwards it downstream, and hands on the deadline.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMesh, type Mesh } from '../src/index.ts';
import { named, startServer, type TestServer } from './support/servers.ts';

let v1: TestServer;
let v2: TestServer;
let hang: TestServer;
let mesh: Mesh;
let portal: Server;
let portalUrl: string;

beforeAll(async () => {
  v1 = await startServer(named('v1'));
  v2 = await startServer(named('v2'));
  hang = await startServer(() => {});
  mesh = createMesh({
    env: {},
    context: { headers: ['x-gateway-app', 'x-gateway-plan'] },
    services: {
      travels: {
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
            match: [{ headers: { 'x-gateway-plan': { exact: 'partner' } } }],
            route: [{ destination: { subset: 'v2' } }],
          },
          { route: [{ destination: { subset: 'v1' } }] },
        ],
      },
      slow: { discovery: { static: [hang.address] }, retries: { attempts: 0 } },
    },
  });
  // The portal's code knows nothing about gateway headers: it just calls the service by name.
  const handler = mesh.inbound();
  portal = createServer((req, res) =>
    handler(req, res, async () => {
      try {
        const target = req.url === '/slow' ? 'http://slow/' : 'http://travels/trips';
        const r = await mesh.fetch(target);
        res.end(await r.text());
      } catch (err) {
        res.statusCode = 504;
        res.end((err as { code?: string }).code ?? 'error');
      }
    }),
  );
  await new Promise<void>((r) => portal.listen(0, '127.0.0.1', r));
  portalUrl = `http://127.0.0.1:${(portal.address() as AddressInfo).port}`;
});

afterAll(async () => {
  portal.closeAllConnections();
  await new Promise((r) => portal.close(r));
  await mesh.close();
  await Promise.all([v1, v2, hang].map((s) => s.close()));
});

async function viaPortal(path: string, headers: Record<string, string>): Promise<string> {
  return (await fetch(`${portalUrl}${path}`, { headers })).text();
}

describe('routing on gateway context', () => {
  it('partner-plan traffic goes to v2, internal traffic to v1, without service code touching headers', async () => {
    for (let i = 0; i < 5; i++) {
      expect(await viaPortal('/', { 'x-gateway-plan': 'partner', 'x-gateway-app': 'acme' })).toBe('v2');
      expect(await viaPortal('/', { 'x-gateway-plan': 'internal', 'x-gateway-app': 'intranet' })).toBe('v1');
    }
    // The context rode along to the deepest hop.
    expect(
      v2.hits.every(
        (h) => h.headers['x-gateway-plan'] === 'partner' && h.headers['x-gateway-app'] === 'acme',
      ),
    ).toBe(true);
    expect(v1.hits.every((h) => h.headers['x-gateway-plan'] === 'internal')).toBe(true);
  });

  it('an outbound call inherits the time left of the inbound request (x-meshwork-deadline)', async () => {
    const t0 = performance.now();
    const body = await viaPortal('/slow', { 'x-meshwork-deadline': '300' });
    const took = performance.now() - t0;
    expect(body).toBe('MESHWORK_ERR_TIMEOUT');
    expect(took).toBeLessThan(3000);
    expect(Number(hang.hits[0]?.headers['x-meshwork-deadline'])).toBeLessThanOrEqual(300);
  });

  it('an already expired deadline sends nothing', async () => {
    const before = hang.hits.length;
    expect(await viaPortal('/slow', { 'x-meshwork-deadline': '0' })).toBe('MESHWORK_ERR_TIMEOUT');
    expect(hang.hits.length).toBe(before);
  });
});
