import { createHmac, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { meshHandler } from '../src/context/adapters.ts';
import { signJws } from '../src/context/jws.ts';
import { createMesh, type Mesh } from '../src/index.ts';
import { type Cert, createPki, GATEWAY_ID, OTHER_ID, type Pki, TRAVELS_ID } from './support/certs.ts';
import { listen } from './support/inbound.ts';
import { startServer, type TestServer } from './support/servers.ts';

const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const SECRET = 'a-gateway-secret-of-32-characters!';

let pki: Pki;
let serverId: Cert;
let gateway: Cert;
let intruder: Cert;
beforeAll(() => {
  pki = createPki();
  serverId = pki.issue('travels', [`URI:${TRAVELS_ID}`]);
  gateway = pki.issue('gateway', [`URI:${GATEWAY_ID}`]);
  intruder = pki.issue('intruder', [`URI:${OTHER_ID}`]);
});
afterAll(() => pki.cleanup());

let closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.reverse()) await c();
  closers = [];
});

interface Upstream {
  mesh: Mesh;
  downstream: TestServer;
  url: string;
  /** Headers the service code saw on the inbound request. */
  seen: Record<string, unknown>[];
}

/** A service with mesh.inbound() that calls `reviews` once per request; https when the mesh has an identity. */
async function upstream(config: Record<string, unknown>): Promise<Upstream> {
  const downstream = await startServer();
  const mesh = createMesh({
    ...config,
    services: { reviews: { discovery: { static: [downstream.address] } } },
  } as never);
  const seen: Record<string, unknown>[] = [];
  const handler = meshHandler(mesh, async (req, res) => {
    seen.push({ ...req.headers });
    await (await mesh.fetch('http://reviews/')).text();
    res.end('ok');
  });
  const secure = 'identity' in config;
  const server = secure
    ? createHttpsServer(mesh.serverTlsOptions({ requireClientCert: false }), handler)
    : createHttpServer(handler);
  const l = await listen(server, secure ? 'https' : 'http');
  closers.push(
    () => downstream.close(),
    () => mesh.close(),
    l.close,
  );
  return { mesh, downstream, url: l.url, seen };
}

async function call(
  url: string,
  headers: Record<string, string>,
  client?: Cert,
): Promise<{ status: number; body: string }> {
  const agent = new Agent({
    connect: {
      ca: pki.ca,
      ...(client ? { cert: client.cert, key: client.key } : {}),
      checkServerIdentity: () => undefined,
    },
  });
  try {
    const res = await request(url, { dispatcher: agent, headers });
    return { status: res.statusCode, body: await res.body.text() };
  } finally {
    await agent.close();
  }
}

const identity = () => ({ cert: serverId.cert, key: serverId.key, ca: pki.ca });
const FORGED = { 'x-consumer-id': 'forged', 'x-app-plan': 'platinum', traceparent: TP };
const token = (
  claims: Record<string, unknown>,
  alg: 'HS256' | 'ES256' = 'HS256',
  key: string | KeyObject = SECRET,
): Promise<string> => signJws({ exp: Math.floor(Date.now() / 1000) + 60, ...claims }, alg, key);
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
/** HS256 over any header, with node:crypto (independent of the code under test). */
function hs256(header: Record<string, unknown>, claims: Record<string, unknown>): string {
  const input = `${b64(header)}.${b64({ exp: Math.floor(Date.now() / 1000) + 60, ...claims })}`;
  return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
}

describe('context trust', () => {
  it('by default accepts context headers from any caller', async () => {
    const u = await upstream({ context: { headers: ['x-consumer-id'] } });
    await call(u.url, FORGED);
    expect(u.downstream.hits[0]?.headers['x-consumer-id']).toBe('forged');
    expect(u.mesh.snapshot().inbound).toMatchObject({ accepted: 1, untrusted: 0 });
  });

  it('trust.callers: accepts context only from listed mTLS identities; strips and counts the rest', async () => {
    const u = await upstream({
      identity: identity(),
      context: { headers: ['x-consumer-id', 'x-app-plan'], trust: { callers: [GATEWAY_ID] } },
    });
    expect((await call(u.url, FORGED, gateway)).status).toBe(200);
    expect((await call(u.url, FORGED, intruder)).status).toBe(200);
    expect((await call(u.url, FORGED)).status).toBe(200);
    const [fromGateway, fromIntruder, fromAnonymous] = u.downstream.hits.map((h) => h.headers);
    expect(fromGateway?.['x-consumer-id']).toBe('forged');
    expect(fromGateway?.['x-app-plan']).toBe('platinum');
    for (const h of [fromIntruder, fromAnonymous]) {
      expect(h?.['x-consumer-id']).toBeUndefined();
      expect(h?.['x-app-plan']).toBeUndefined();
      // The trace is not authority: it still follows.
      expect(h?.traceparent).toBe(TP);
    }
    // Service code does not see the forged values either.
    expect(u.seen[1]?.['x-consumer-id']).toBeUndefined();
    expect(u.mesh.snapshot().inbound).toMatchObject({
      inbound: 3,
      accepted: 1,
      untrusted: 2,
      strippedHeaders: 4,
    });
  });

  it('trust.signature (HS256): a signed context is accepted; forged plain headers beside it are not', async () => {
    const u = await upstream({
      context: { headers: ['x-consumer-id', 'x-app-plan'], trust: { signature: { hmacSecret: SECRET } } },
    });
    const t = await token({ 'x-consumer-id': 'signed-42' });
    await call(u.url, { ...FORGED, 'x-meshwork-context-token': t });
    const h = u.downstream.hits[0]?.headers ?? {};
    expect(h['x-consumer-id']).toBe('signed-42');
    expect(h['x-app-plan']).toBeUndefined();
    expect(h['x-meshwork-context-token']).toBe(t);
    expect(u.seen[0]?.['x-consumer-id']).toBe('signed-42');
    expect(u.mesh.snapshot().inbound).toMatchObject({ untrusted: 1, strippedHeaders: 1, invalidTokens: 0 });
  });

  it('trust.signature: expired, tampered, alg "none" and unsigned contexts are stripped and counted', async () => {
    const u = await upstream({
      context: {
        headers: ['x-consumer-id'],
        trust: { signature: { hmacSecret: SECRET, header: 'x-gw-token' } },
      },
    });
    const expired = await signJws(
      { 'x-consumer-id': 'e', exp: Math.floor(Date.now() / 1000) - 120 },
      'HS256',
      SECRET,
    );
    const good = await token({ 'x-consumer-id': 'good' });
    const [h, p] = good.split('.');
    const tampered = `${h}.${Buffer.from(JSON.stringify({ 'x-consumer-id': 'admin', exp: 9e9 })).toString('base64url')}.${good.split('.')[2]}`;
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${p}.`;
    const wrongKey = await signJws(
      { 'x-consumer-id': 'w', exp: 9e9 },
      'HS256',
      'another-secret-of-enough-length',
    );
    for (const t of [expired, tampered, none, wrongKey, 'not-a-jws'])
      await call(u.url, { ...FORGED, 'x-gw-token': t });
    await call(u.url, FORGED);
    for (const hit of u.downstream.hits) {
      expect(hit.headers['x-consumer-id']).toBeUndefined();
      expect(hit.headers['x-gw-token']).toBeUndefined();
    }
    expect(u.mesh.snapshot().inbound).toMatchObject({ inbound: 6, untrusted: 6, invalidTokens: 5 });
  });

  it('trust.signature: junk after the signature, standard base64, an unknown crit, a wrong aud or iss are refused', async () => {
    const u = await upstream({
      context: {
        headers: ['x-consumer-id'],
        trust: { signature: { hmacSecret: SECRET, audience: 'travels', issuer: ['gw-1', 'gw-2'] } },
      },
    });
    let good = '';
    for (let i = 0; !/[-_]/.test(good.split('.')[2] ?? ''); i++)
      good = hs256({ alg: 'HS256', typ: 'JWT' }, { 'x-consumer-id': 'ok', aud: 'travels', iss: 'gw-2', i });
    const [h, p, s] = good.split('.') as [string, string, string];
    const refused = [
      `${good}junk`,
      `${good}==`,
      `${h}.${p}.${Buffer.from(s, 'base64url').toString('base64')}`,
      hs256(
        { alg: 'HS256', crit: ['x-gw'], 'x-gw': 1 },
        { 'x-consumer-id': 'crit', aud: 'travels', iss: 'gw-1' },
      ),
      hs256({ alg: 'HS256' }, { 'x-consumer-id': 'aud', aud: 'reviews', iss: 'gw-1' }),
      hs256({ alg: 'HS256' }, { 'x-consumer-id': 'iss', aud: 'travels', iss: 'evil' }),
      hs256({ alg: 'HS256' }, { 'x-consumer-id': 'no-aud', iss: 'gw-1' }),
    ];
    for (const t of refused) await call(u.url, { 'x-meshwork-context-token': t });
    // The valid one, twice: the second is answered from the verifier's cache.
    await call(u.url, { 'x-meshwork-context-token': good });
    await call(u.url, { 'x-meshwork-context-token': good });
    expect(u.downstream.hits.map((x) => x.headers['x-consumer-id'])).toEqual([
      ...refused.map(() => undefined),
      'ok',
      'ok',
    ]);
    expect(u.downstream.hits.map((x) => x.headers['x-meshwork-context-token'])).toEqual([
      ...refused.map(() => undefined),
      good,
      good,
    ]);
    expect(u.mesh.snapshot().inbound).toMatchObject({ inbound: 9, invalidTokens: refused.length });
  });

  it('trust.signature: audience/issuer must be non-empty; clockSkew is at most 5m', () => {
    const sig = (extra: Record<string, unknown>) => () =>
      createMesh({
        context: { headers: [], trust: { signature: { hmacSecret: SECRET, ...extra } } },
      } as never);
    expect(sig({ audience: [] })).toThrow(/audience/);
    expect(sig({ issuer: '' })).toThrow(/issuer/);
    expect(sig({ clockSkew: '10m' })).toThrow(/clockSkew: .*must be at most 5m/);
    expect(sig({ audience: ['a', 'b'], issuer: 'gw', clockSkew: '1m' })).not.toThrow();
  });

  it('trust.signature (ES256, public key PEM): accepted; an HS256 token is refused', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const u = await upstream({
      context: {
        headers: ['x-consumer-id'],
        trust: { signature: { publicKey: publicKey.export({ type: 'spki', format: 'pem' }) as string } },
      },
    });
    await call(u.url, {
      'x-meshwork-context-token': await token({ 'x-consumer-id': 'es' }, 'ES256', privateKey),
    });
    await call(u.url, { 'x-meshwork-context-token': await token({ 'x-consumer-id': 'hs' }) });
    expect(u.downstream.hits.map((h) => h.headers['x-consumer-id'])).toEqual(['es', undefined]);
  });

  it('trust.callers and trust.signature together: a trusted peer may forward plain headers', async () => {
    const u = await upstream({
      identity: identity(),
      context: {
        headers: ['x-consumer-id'],
        trust: { callers: [GATEWAY_ID], signature: { hmacSecret: SECRET } },
      },
    });
    await call(u.url, FORGED, gateway);
    await call(u.url, { 'x-meshwork-context-token': await token({ 'x-consumer-id': 'tok' }) }, intruder);
    await call(u.url, FORGED, intruder);
    expect(u.downstream.hits.map((h) => h.headers['x-consumer-id'])).toEqual(['forged', 'tok', undefined]);
  });
});

describe('authorization (Istio AuthorizationPolicy)', () => {
  const policies = [
    { name: 'no-intruders', action: 'DENY', rules: [{ from: [{ source: { principals: [OTHER_ID] } }] }] },
    {
      name: 'gateway-reads',
      action: 'ALLOW',
      rules: [
        {
          from: [{ source: { principals: ['cluster.local/ns/default/sa/gateway'] } }],
          to: [{ operation: { methods: ['GET'], paths: ['/api/*'] } }],
        },
      ],
    },
    { name: 'health', action: 'ALLOW', rules: [{ to: [{ operation: { paths: ['/healthz'] } }] }] },
  ];

  it('DENY first, then ALLOW by principal, path and method; 403 with the reason', async () => {
    const u = await upstream({ identity: identity(), authorization: { policies } });
    expect(await call(`${u.url}/api/bookings`, {}, gateway)).toMatchObject({ status: 200 });
    const agent = new Agent({
      connect: { ca: pki.ca, cert: gateway.cert, key: gateway.key, checkServerIdentity: () => undefined },
    });
    closers.push(() => agent.close());
    const post = await request(`${u.url}/api/bookings`, { method: 'POST', dispatcher: agent });
    expect(post.statusCode).toBe(403);
    expect(await post.body.text()).toContain(
      `no ALLOW policy matches (principal ${GATEWAY_ID}, POST /api/bookings)`,
    );
    const denied = await call(`${u.url}/healthz`, {}, intruder);
    expect(denied.status).toBe(403);
    expect(denied.body).toContain('RBAC: access denied: denied by DENY policy "no-intruders"');
    const anonymous = await call(`${u.url}/api/bookings`, {});
    expect(anonymous.status).toBe(403);
    expect(anonymous.body).toContain('principal (none');
    expect(await call(`${u.url}/healthz?probe=1`, {})).toMatchObject({ status: 200 });
    // Refused requests never reach the service nor make calls.
    expect(u.seen).toHaveLength(2);
    expect(u.mesh.snapshot().inbound.denied).toBe(3);
  });

  it('with no ALLOW policy, everything not denied is allowed', async () => {
    const u = await upstream({ identity: identity(), authorization: { policies: [policies[0]] } });
    expect((await call(`${u.url}/anything`, {})).status).toBe(200);
    expect((await call(`${u.url}/anything`, {}, gateway)).status).toBe(200);
    expect((await call(`${u.url}/anything`, {}, intruder)).status).toBe(403);
  });
});
