// Outbound rate limits (`services.<name>.rateLimits`): the callee's quota is checked after
// routing and before body, mirror and retry, so a refused call sends nothing at all, a retried
// call counts once, and routing's destination decides whose limits apply. Real servers on
// 127.0.0.1 count what really arrives.
import { createServer } from 'node:http';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { meshHandler } from '../src/context/adapters.ts';
import { createMesh, type Mesh } from '../src/index.ts';
import { listen } from './support/inbound.ts';
import { startServer, type TestServer } from './support/servers.ts';

let closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.reverse()) await c();
  closers = [];
});

async function up(handle?: Parameters<typeof startServer>[0]): Promise<TestServer> {
  const s = await startServer(handle);
  closers.push(() => s.close());
  return s;
}

function mesh(config: Parameters<typeof createMesh>[0]): Mesh {
  const m = createMesh(config);
  closers.push(() => m.close());
  return m;
}

const quota = (requests: number, key: object = { header: 'x-app' }) => ({
  policies: [{ name: 'quota', key, limits: [{ requests, per: '1h' as const }] }],
});

describe('outbound rate limits', () => {
  it('a refused call sends nothing: the upstream sees exactly the admitted ones', async () => {
    const partner = await up();
    const m = mesh({
      services: { partner: { discovery: { static: [partner.address] }, rateLimits: quota(2) } },
    });
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      const r = await m.fetch('http://partner/search', { headers: { 'x-app': 'acme' } });
      statuses.push(r.status);
      if (r.status === 429) {
        expect(r.headers.get('retry-after')).not.toBeNull();
        expect(r.headers.get('ratelimit')).toMatch(/^"quota\/1h";r=0;t=\d+$/);
        expect(await r.text()).toBe('rate limit exceeded: quota/1h (2 per 1h)\n');
      } else await r.text();
    }
    expect(statuses).toEqual([200, 200, 429, 429]);
    expect(partner.hits).toHaveLength(2);
  });

  it('no mirror copy of a refused call; a retried call is one request against the quota', async () => {
    let flaky = 1;
    const partner = await up((_req, res) => {
      res.statusCode = flaky-- > 0 ? 503 : 200;
      res.end();
    });
    const shadow = await up();
    const m = mesh({
      services: {
        shadow: { discovery: { static: [shadow.address] } },
        partner: {
          discovery: { static: [partner.address] },
          retries: { attempts: 2, retryOn: '5xx' },
          http: [{ route: [{ destination: {} }], mirror: { host: 'shadow' } }],
          rateLimits: quota(1),
        },
      },
    });
    const first = await m.fetch('http://partner/x', { headers: { 'x-app': 'a' } });
    expect(first.status).toBe(200);
    expect(partner.hits).toHaveLength(2); // 503, then the retry
    const refused = await m.fetch('http://partner/x', { headers: { 'x-app': 'a' } });
    expect(refused.status).toBe(429);
    await new Promise((r) => setTimeout(r, 50));
    expect(partner.hits).toHaveLength(2);
    expect(shadow.hits).toHaveLength(1); // the first call's copy only
  });

  it('the limits of the service routing sends to apply (destination.host)', async () => {
    const v2 = await up();
    const m = mesh({
      services: {
        api: {
          discovery: { static: ['127.0.0.1:1'] },
          http: [{ route: [{ destination: { host: 'api-v2' } }] }],
        },
        'api-v2': { discovery: { static: [v2.address] }, rateLimits: quota(1) },
      },
    });
    expect((await m.fetch('http://api/x', { headers: { 'x-app': 'a' } })).status).toBe(200);
    expect((await m.fetch('http://api/x', { headers: { 'x-app': 'a' } })).status).toBe(429);
    expect((await m.fetch('http://api-v2/x', { headers: { 'x-app': 'a' } })).status).toBe(429);
    expect(v2.hits).toHaveLength(1);
  });

  it('keys from the request context: the inbound caller’s gateway app, inside mesh.inbound()', async () => {
    const partner = await up();
    const m = mesh({
      context: { headers: ['x-gateway-app'] },
      services: {
        partner: {
          discovery: { static: [partner.address] },
          rateLimits: quota(1, { context: 'x-gateway-app' }),
        },
      },
    });
    const front = await listen(
      createServer(
        meshHandler(m, async (_req, res) => {
          const r = await m.fetch('http://partner/quote');
          res.statusCode = r.status;
          res.end(await r.text());
        }),
      ),
    );
    closers.push(front.close);
    const call = async (app: string) =>
      (await fetch(front.url, { headers: { 'x-gateway-app': app } })).status;
    expect([await call('acme'), await call('acme'), await call('globex')]).toEqual([200, 429, 200]);
    // Outside any request: no context, no key, the policy is skipped.
    expect((await m.fetch('http://partner/quote')).status).toBe(200);
    expect(
      m.withContext({ headers: { 'x-gateway-app': 'acme' } }, () => m.context()?.headers['x-gateway-app']),
    ).toBe('acme');
    const viaJob = await m.withContext({ headers: { 'x-gateway-app': 'acme' } }, () =>
      m.fetch('http://partner/quote'),
    );
    expect(viaJob.status).toBe(429);
  });

  it('undici.request through mesh.dispatcher gets the same 429; usage is in the snapshot', async () => {
    const partner = await up();
    const m = mesh({
      services: { partner: { discovery: { static: [partner.address] }, rateLimits: quota(1) } },
    });
    const a = await request('http://partner/x', { dispatcher: m.dispatcher, headers: { 'x-app': 'k' } });
    await a.body.dump();
    const b = await request('http://partner/x', { dispatcher: m.dispatcher, headers: { 'x-app': 'k' } });
    expect(b.statusCode).toBe(429);
    expect(b.headers['retry-after']).toBeDefined();
    await b.body.dump();
    const snap = m.snapshot().rateLimits;
    expect(snap?.policies).toEqual([
      expect.objectContaining({ scope: 'partner', name: 'quota', admitted: 1, refused: 1 }),
    ]);
    expect(snap?.usage).toEqual([
      expect.objectContaining({ scope: 'partner', application: 'k', metric: 'policy:quota', refused: 1 }),
    ]);
  });
});
