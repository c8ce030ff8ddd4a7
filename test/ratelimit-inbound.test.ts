// Rate limits enforced by mesh.inbound(): policies, plans with 3scale credentials and mapping
// rules, JWTs (HMAC, PEM public key, JWKS), the gateway's signed context, the answers and their
// headers, on node:http, Express and Fastify. Real servers on 127.0.0.1; the service code must
// never run for a refused request.
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import express from 'express';
import Fastify from 'fastify';
import { exportJWK, SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { meshFastify, meshHandler } from '../src/context/adapters.ts';
import { signJws } from '../src/context/jws.ts';
import { createMesh, type Mesh, type MeshConfigInput } from '../src/index.ts';
import { listen } from './support/inbound.ts';

let closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.reverse()) await c();
  closers = [];
});

interface App {
  mesh: Mesh;
  url: string;
  /** Requests the service code ran for. */
  served: () => number;
}

async function serve(config: MeshConfigInput): Promise<App> {
  const mesh = createMesh(config);
  let served = 0;
  const server = createServer(
    meshHandler(mesh, (_req, res) => {
      served++;
      res.end('served');
    }),
  );
  const { url, close } = await listen(server);
  closers.push(close, () => mesh.close());
  return { mesh, url, served: () => served };
}

async function get(url: string, headers: Record<string, string> = {}) {
  const r = await fetch(url, { headers });
  return { status: r.status, headers: r.headers, body: await r.text() };
}

const perApp = (requests: number, per: '1s' | '1m' | '1h' | '1d' | 'month' = '1h') => ({
  rateLimits: {
    policies: [{ name: 'per-app', key: { header: 'x-app' }, limits: [{ requests, per }] }],
  },
});

describe('policies on mesh.inbound()', () => {
  it('refuses with 429, Retry-After and the RateLimit headers; the service code never runs', async () => {
    const app = await serve(perApp(3));
    const answers = [];
    for (let i = 0; i < 5; i++) answers.push(await get(`${app.url}/trips`, { 'x-app': 'acme' }));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 429, 429]);
    expect(app.served()).toBe(3);
    const ok = answers[0] as (typeof answers)[0];
    expect(ok.headers.get('ratelimit-policy')).toBe('"per-app/1h";q=3;w=3600');
    expect(ok.headers.get('ratelimit')).toMatch(/^"per-app\/1h";r=2;t=\d+$/);
    const refused = answers[3] as (typeof answers)[0];
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(3600);
    expect(refused.headers.get('ratelimit')).toMatch(/^"per-app\/1h";r=0;t=\d+$/);
    expect(refused.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(refused.body).toBe('rate limit exceeded: per-app/1h (3 per 1h)\n');
    // Each application has its own bucket.
    expect((await get(`${app.url}/trips`, { 'x-app': 'globex' })).status).toBe(200);
    const snap = app.mesh.snapshot().rateLimits;
    expect(snap?.policies[0]).toMatchObject({ name: 'per-app', admitted: 4, refused: 2 });
    expect(snap?.refusals.inbound?.overLimit).toBe(2);
    expect(snap?.usage.find((u) => u.application === 'acme')).toMatchObject({
      used: { hour: 3 },
      refused: 2,
    });
  });

  it('a request without the key skips the policy (Envoy), or shares one bucket (missingKey: shared)', async () => {
    const skip = await serve(perApp(1));
    for (let i = 0; i < 3; i++) expect((await get(skip.url)).status).toBe(200);
    const shared = await serve({
      rateLimits: {
        policies: [
          {
            name: 'anon',
            key: { header: 'x-app' },
            missingKey: 'shared',
            limits: [{ requests: 1, per: '1h' }],
          },
        ],
      },
    });
    expect((await get(shared.url)).status).toBe(200);
    expect((await get(shared.url)).status).toBe(429);
    expect((await get(shared.url, { 'x-app': 'a' })).status).toBe(200);
  });

  it('policy match (Istio HTTPMatchRequest) and the block match decide what is counted', async () => {
    const app = await serve({
      rateLimits: {
        match: [{ uri: { prefix: '/api/' } }],
        policies: [
          {
            name: 'writes',
            match: [{ method: { exact: 'POST' } }],
            key: { header: 'x-app' },
            limits: [{ requests: 1, per: '1h' }],
          },
          { name: 'reads', key: { header: 'x-app' }, limits: [{ requests: 2, per: '1h' }] },
        ],
      },
    });
    const post = (path: string) => fetch(`${app.url}${path}`, { method: 'POST', headers: { 'x-app': 'a' } });
    expect((await post('/api/b')).status).toBe(200);
    const second = await post('/api/b');
    expect(second.status).toBe(429);
    expect(await second.text()).toContain('writes/1h');
    // Outside the block's match: nothing counted at all, no headers.
    const health = await get(`${app.url}/healthz`, { 'x-app': 'a' });
    expect(health.status).toBe(200);
    expect(health.headers.get('ratelimit')).toBeNull();
  });

  it('when one policy refuses, the tokens the others took are given back', async () => {
    const app = await serve({
      rateLimits: {
        policies: [
          { name: 'wide', key: { header: 'x-app' }, limits: [{ requests: 10, per: '1h' }] },
          { name: 'narrow', key: { header: 'x-user' }, limits: [{ requests: 1, per: '1h' }] },
        ],
      },
    });
    expect((await get(app.url, { 'x-app': 'a', 'x-user': 'u' })).status).toBe(200);
    for (let i = 0; i < 5; i++)
      expect((await get(app.url, { 'x-app': 'a', 'x-user': 'u' })).status).toBe(429);
    const r = await get(app.url, { 'x-app': 'a', 'x-user': 'v' });
    expect(r.status).toBe(200);
    // 2 admitted requests used "wide": the 5 refused ones did not.
    expect(r.headers.get('ratelimit')).toMatch(/"wide\/1h";r=8;/);
  });

  it('shadow policies count and report, never refuse, and send no headers', async () => {
    const app = await serve({
      rateLimits: {
        policies: [
          { name: 'trial', shadow: true, key: { header: 'x-app' }, limits: [{ requests: 1, per: '1h' }] },
        ],
      },
    });
    for (let i = 0; i < 3; i++) {
      const r = await get(app.url, { 'x-app': 'a' });
      expect(r.status).toBe(200);
      expect(r.headers.get('ratelimit')).toBeNull();
    }
    expect(app.mesh.snapshot().rateLimits?.policies[0]).toMatchObject({
      admitted: 1,
      shadowRefused: 2,
      refused: 0,
    });
    expect(app.served()).toBe(3);
  });

  it('configurable answers; legacy X-RateLimit headers on request; a burst per second', async () => {
    const app = await serve({
      rateLimits: {
        policies: [
          // One a second once the burst of 2 is spent: the third request, right after, is refused.
          { name: 'burst', key: { header: 'x-app' }, limits: [{ requests: 60, per: '1m', burst: 2 }] },
        ],
        answers: { overLimit: { status: 503, message: 'slow down' } },
        headers: { legacy: true, draft: false },
      },
    });
    const a = await get(app.url, { 'x-app': 'a' });
    expect(a.headers.get('x-ratelimit-limit')).toBe('60');
    expect(a.headers.get('x-ratelimit-remaining')).toBe('1');
    expect(a.headers.get('ratelimit')).toBeNull();
    await get(app.url, { 'x-app': 'a' });
    const r = await get(app.url, { 'x-app': 'a' });
    expect(r.status).toBe(503);
    expect(r.body).toBe('slow down\n');
    expect(r.headers.get('retry-after')).toBe('1');
  });

  it('mode local: each process takes limit / N, N counted from discovery', async () => {
    const app = await serve({
      rateLimits: {
        store: { mode: 'local', replicas: { service: 'travels' } },
        policies: [{ name: 'per-app', key: { header: 'x-app' }, limits: [{ requests: 10, per: '1h' }] }],
      },
      services: { travels: { discovery: { static: ['10.0.0.1:80', '10.0.0.2:80'] } } },
    });
    const statuses = [];
    for (let i = 0; i < 7; i++) statuses.push((await get(app.url, { 'x-app': 'a' })).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
    expect(app.mesh.snapshot().rateLimits?.store).toMatchObject({ mode: 'local', replicas: 2 });
  });

  it('under an Express mount, match and mapping rules see the whole path (as authorization does)', async () => {
    const mesh = createMesh({
      rateLimits: {
        policies: [
          {
            name: 'api',
            match: [{ uri: { prefix: '/api/' } }],
            key: { header: 'x-app' },
            limits: [{ requests: 1, per: '1h' }],
          },
        ],
      },
    });
    closers.push(() => mesh.close());
    const ex = express();
    ex.use('/api', mesh.inbound(), (_req, res) => {
      res.send('ok');
    });
    const e = await listen(createServer(ex));
    closers.push(e.close);
    expect((await get(`${e.url}/api/trips`, { 'x-app': 'a' })).status).toBe(200);
    expect((await get(`${e.url}/api/trips`, { 'x-app': 'a' })).status).toBe(429);
  });

  it('works the same on Express and Fastify', async () => {
    const mesh = createMesh(perApp(1));
    closers.push(() => mesh.close());
    let expressRuns = 0;
    const ex = express();
    ex.use(mesh.inbound());
    ex.get('/x', (_req, res) => {
      expressRuns++;
      res.send('ok');
    });
    const e = await listen(createServer(ex));
    closers.push(e.close);
    expect((await get(`${e.url}/x`, { 'x-app': 'a' })).status).toBe(200);
    const refused = await get(`${e.url}/x`, { 'x-app': 'a' });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).not.toBeNull();
    expect(expressRuns).toBe(1);

    let fastifyRuns = 0;
    const f = Fastify();
    meshFastify(f, mesh);
    f.get('/x', async () => {
      fastifyRuns++;
      return 'ok';
    });
    await f.listen({ port: 0, host: '127.0.0.1' });
    closers.push(() => f.close());
    const port = (f.server.address() as { port: number }).port;
    const fa = await get(`http://127.0.0.1:${port}/x`, { 'x-app': 'b' });
    expect(fa.status).toBe(200);
    expect(fa.headers.get('ratelimit')).toMatch(/"per-app\/1h";r=0/);
    const fr = await get(`http://127.0.0.1:${port}/x`, { 'x-app': 'b' });
    expect(fr.status).toBe(429);
    expect(fr.headers.get('retry-after')).not.toBeNull();
    expect(fastifyRuns).toBe(1);
  });
});

const plans = {
  plans: {
    basic: { limits: { hits: [{ requests: 2, per: '1h' as const }] } },
    partner: {
      limits: {
        hits: [{ requests: 5, per: '1h' as const }],
        bookings: [{ requests: 10, per: '1d' as const }],
      },
    },
  },
  applications: {
    acme: { plan: 'partner', userKeys: ['k-acme-7f3a9c1e'], appKeys: ['secret-acme-1'] },
    globex: { plan: 'basic', userKeys: ['k-globex-21c9d0a4'], appKeys: ['secret-globex-1'] },
  },
};

describe('plans with 3scale credentials', () => {
  it('user_key in a header or the query identifies the application and its plan', async () => {
    const app = await serve({
      rateLimits: {
        ...plans,
        credentials: [{ userKey: { header: 'user-key' } }, { userKey: { query: 'user_key' } }],
      },
    });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await get(`${app.url}/x?user_key=k-globex-21c9d0a4`)).status);
    expect(statuses).toEqual([200, 200, 429]);
    const r = await get(`${app.url}/x`, { 'user-key': 'k-acme-7f3a9c1e' });
    expect(r.status).toBe(200);
    expect(r.headers.get('ratelimit-policy')).toBe('"partner.hits/1h";q=5;w=3600');
    const usage = app.mesh.snapshot().rateLimits?.usage ?? [];
    expect(usage.map((u) => [u.application, u.plan, u.metric, u.used.hour, u.refused])).toEqual([
      ['acme', 'partner', 'hits', 1, 0],
      ['globex', 'basic', 'hits', 2, 1],
    ]);
  });

  it('401 with WWW-Authenticate when no credential is sent, 403 for an unknown key; nothing counted', async () => {
    const app = await serve({ rateLimits: { ...plans, credentials: [{ userKey: { header: 'user-key' } }] } });
    const missing = await get(`${app.url}/x`);
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toBe('Key realm="meshwork"');
    expect(missing.body).toBe('credential missing: send user_key (header user-key)\n');
    const wrong = await get(`${app.url}/x`, { 'user-key': 'k-acme-7f3a9c1eX' });
    expect(wrong.status).toBe(403);
    expect(wrong.body).toBe('invalid credential: unknown user_key\n');
    expect(app.served()).toBe(0);
    expect(app.mesh.snapshot().rateLimits?.usage).toEqual([]);
    expect(app.mesh.snapshot().rateLimits?.refusals.inbound).toMatchObject({
      missingCredential: 1,
      invalidCredential: 1,
    });
  });

  it('app_id + app_key: a key of another application is refused and counted for neither', async () => {
    const app = await serve({
      rateLimits: { ...plans, credentials: [{ appId: { header: 'app-id' }, appKey: { header: 'app-key' } }] },
    });
    expect((await get(app.url, { 'app-id': 'acme', 'app-key': 'secret-globex-1' })).status).toBe(403);
    expect((await get(app.url, { 'app-id': 'acme' })).body).toBe('invalid credential: app_key missing\n');
    expect((await get(app.url, { 'app-id': 'nobody', 'app-key': 'x' })).body).toBe(
      'invalid credential: unknown app_id\n',
    );
    expect((await get(app.url, { 'app-id': '__proto__', 'app-key': 'x' })).status).toBe(403);
    expect(app.mesh.snapshot().rateLimits?.usage).toEqual([]);
    expect((await get(app.url, { 'app-id': 'acme', 'app-key': 'secret-acme-1' })).status).toBe(200);
  });

  it('mapping rules (method + pattern → metric, delta); no rule matched is 404, as APIcast', async () => {
    const app = await serve({
      rateLimits: {
        ...plans,
        credentials: [{ userKey: { header: 'user-key' } }],
        mappingRules: [
          { pattern: '/', metric: 'hits' },
          { method: 'POST', pattern: '/bookings/{id}$', metric: 'bookings', delta: 4 },
          { pattern: '/free', metric: 'hits', delta: 0, last: true },
        ],
      },
    });
    const acme = { 'user-key': 'k-acme-7f3a9c1e' };
    const post = () => fetch(`${app.url}/bookings/7`, { method: 'POST', headers: acme });
    expect((await post()).status).toBe(200);
    expect((await post()).status).toBe(200);
    const third = await post();
    // 2 × 4 bookings used of 10 a day: a third would make 12.
    expect(third.status).toBe(429);
    expect(await third.text()).toContain('partner.bookings/1d');
    // A metric's limits apply only to it: plain hits still pass.
    expect((await get(`${app.url}/trips`, acme)).status).toBe(200);
    const usage = app.mesh.snapshot().rateLimits?.usage ?? [];
    expect(usage.find((u) => u.metric === 'bookings')?.used.day).toBe(8);
    expect(usage.find((u) => u.metric === 'hits')?.used.hour).toBe(3);
  });

  it('no mapping rule matched: 404', async () => {
    const app = await serve({
      rateLimits: {
        ...plans,
        credentials: [{ userKey: { header: 'user-key' } }],
        mappingRules: [{ pattern: '/api/', metric: 'hits' }],
      },
    });
    const r = await get(`${app.url}/other`, { 'user-key': 'k-acme-7f3a9c1e' });
    expect(r.status).toBe(404);
    expect(r.body).toBe('no mapping rule matched "GET" "/other"\n');
  });

  it('the gateway’s signed context is the credential: app and plan from the verified token', async () => {
    const secret = 'a-shared-secret-of-the-gateway-0123';
    const app = await serve({
      context: { headers: ['x-gateway-app', 'x-gateway-plan'], trust: { signature: { hmacSecret: secret } } },
      rateLimits: {
        ...plans,
        credentials: [{ context: { app: 'x-gateway-app', plan: 'x-gateway-plan' } }],
      },
    });
    const token = (claims: Record<string, string>) =>
      signJws({ ...claims, exp: Math.floor(Date.now() / 1000) + 60 }, 'HS256', secret);
    const basic = await token({ 'x-gateway-app': 'initech', 'x-gateway-plan': 'basic' });
    expect((await get(app.url, { 'x-meshwork-context-token': basic })).status).toBe(200);
    expect((await get(app.url, { 'x-meshwork-context-token': basic })).status).toBe(200);
    expect((await get(app.url, { 'x-meshwork-context-token': basic })).status).toBe(429);
    // Plain headers without the token are stripped by trust: no credential.
    expect((await get(app.url, { 'x-gateway-app': 'initech', 'x-gateway-plan': 'partner' })).status).toBe(
      401,
    );
    // A plan the gateway names that is not configured.
    const gold = await token({ 'x-gateway-app': 'initech', 'x-gateway-plan': 'gold' });
    const r = await get(app.url, { 'x-meshwork-context-token': gold });
    expect(r.status).toBe(403);
    expect(r.body).toBe('invalid credential: unknown plan "gold"\n');
  });
});

describe('JWT credentials and claim keys (jose)', () => {
  const hmac = 'a-jwt-secret-for-the-api-at-least-32-chars';
  const sign = (
    claims: Record<string, unknown>,
    key: Parameters<SignJWT['sign']>[0],
    alg: string,
    kid?: string,
  ) =>
    new SignJWT({ exp: Math.floor(Date.now() / 1000) + 60, ...claims })
      .setProtectedHeader({ alg, ...(kid ? { kid } : {}) })
      .sign(key);

  it('HS256: the azp claim names the application; a wrong signature or an expired token is 403', async () => {
    const app = await serve({
      rateLimits: { ...plans, jwt: { hmacSecret: hmac }, credentials: [{ jwt: {} }] },
    });
    const good = await sign({ azp: 'globex' }, new TextEncoder().encode(hmac), 'HS256');
    for (const want of [200, 200, 429])
      expect((await get(app.url, { authorization: `Bearer ${good}` })).status).toBe(want);
    const forged = await sign({ azp: 'acme' }, new TextEncoder().encode(`${hmac}-not`), 'HS256');
    const bad = await get(app.url, { authorization: `Bearer ${forged}` });
    expect(bad.status).toBe(403);
    expect(bad.body).toBe('invalid credential: JWT refused: bad signature\n');
    const expired = await sign(
      { azp: 'acme', exp: Math.floor(Date.now() / 1000) - 3600 },
      new TextEncoder().encode(hmac),
      'HS256',
    );
    expect((await get(app.url, { authorization: `Bearer ${expired}` })).body).toBe(
      'invalid credential: JWT refused: expired\n',
    );
    // Basic auth is not a JWT: no credential at all.
    expect((await get(app.url, { authorization: 'Basic dTpw' })).status).toBe(401);
    // Nothing was counted for acme by the refused tokens.
    expect(app.mesh.snapshot().rateLimits?.usage.map((u) => u.application)).toEqual(['globex']);
  });

  it('RS256 with a PEM public key; a claim as a policy key', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const app = await serve({
      rateLimits: {
        jwt: {
          publicKey: publicKey.export({ type: 'spki', format: 'pem' }) as string,
          issuer: 'https://idp.test',
        },
        policies: [{ name: 'per-user', key: { claim: 'sub' }, limits: [{ requests: 1, per: '1h' }] }],
      },
    });
    const t = await sign({ sub: 'u-1', iss: 'https://idp.test' }, privateKey, 'RS256');
    expect((await get(app.url, { authorization: `Bearer ${t}` })).status).toBe(200);
    expect((await get(app.url, { authorization: `Bearer ${t}` })).status).toBe(429);
    const otherIssuer = await sign({ sub: 'u-2', iss: 'https://evil.test' }, privateKey, 'RS256');
    expect((await get(app.url, { authorization: `Bearer ${otherIssuer}` })).body).toBe(
      'invalid credential: JWT refused: wrong issuer\n',
    );
    // An HS256 token signed with the public key as the secret (the classic confusion) is refused.
    const confused = await sign(
      { sub: 'u-3', iss: 'https://idp.test' },
      new TextEncoder().encode(publicKey.export({ type: 'spki', format: 'pem' }) as string),
      'HS256',
    );
    expect((await get(app.url, { authorization: `Bearer ${confused}` })).status).toBe(403);
    // No token: the claim key is missing, the policy is skipped.
    expect((await get(app.url)).status).toBe(200);
  });

  it('a JWKS URL (as Keycloak serves it)', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    let fetched = 0;
    const jwks = await listen(
      createServer((_req, res) => {
        fetched++;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ keys: [jwk] }));
      }),
    );
    closers.push(jwks.close);
    const app = await serve({
      rateLimits: {
        ...plans,
        jwt: { jwksUri: `${jwks.url}/certs` },
        credentials: [{ jwt: { app: 'client_id' } }],
      },
    });
    const t = await sign({ client_id: 'acme' }, privateKey, 'ES256', 'k1');
    expect((await get(app.url, { authorization: `Bearer ${t}` })).status).toBe(200);
    expect((await get(app.url, { authorization: `Bearer ${t}` })).status).toBe(200);
    expect(fetched).toBe(1);
    const unknownKid = await sign({ client_id: 'acme' }, privateKey, 'ES256', 'k2');
    expect((await get(app.url, { authorization: `Bearer ${unknownKid}` })).status).toBe(403);
  });
});
