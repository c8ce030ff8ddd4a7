// Bad input against the rate limits, sent as raw bytes where fetch would clean it up: malformed
// and odd keys, huge header values, unknown plans, wrong JWTs. Each gets a clear answer with the
// right status, and nothing is counted against another application.
import { createServer } from 'node:http';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { meshHandler } from '../src/context/adapters.ts';
import { signJws } from '../src/context/jws.ts';
import { createMesh, type Mesh } from '../src/index.ts';
import { listen } from './support/inbound.ts';
import { rawRequest } from './support/raw-http.ts';

const SECRET = 'gateway-secret-for-the-bad-input-tests';
const JWT_SECRET = 'jwt-secret-for-the-bad-input-tests-0123456789';

let mesh: Mesh;
let port: number;
let served = 0;
let close: () => Promise<void>;

beforeAll(async () => {
  mesh = createMesh({
    context: { headers: ['x-gateway-app', 'x-gateway-plan'], trust: { signature: { hmacSecret: SECRET } } },
    rateLimits: {
      policies: [
        { name: 'per-key', key: { header: 'x-app' }, limits: [{ requests: 2, per: '1h' }] },
        { name: 'per-user', key: { claim: 'sub' }, limits: [{ requests: 2, per: '1h' }] },
      ],
      plans: { partner: { limits: { hits: [{ requests: 1000, per: '1h' }] } } },
      applications: { acme: { plan: 'partner', userKeys: ['k-acme-7f3a9c1e'] } },
      jwt: { hmacSecret: JWT_SECRET },
      credentials: [
        { userKey: { header: 'user-key' } },
        { context: { app: 'x-gateway-app', plan: 'x-gateway-plan' } },
      ],
    },
  });
  const server = createServer(
    meshHandler(mesh, (_req, res) => {
      served++;
      res.end('ok');
    }),
  );
  const l = await listen(server);
  port = Number(new URL(l.url).port);
  close = async () => {
    await l.close();
    await mesh.close();
  };
});
afterAll(() => close());

const ACME = ['user-key', 'k-acme-7f3a9c1e'] as const;
const send = (headers: (readonly [string, string])[], target = '/x') => rawRequest(port, target, { headers });

/** What is left for acme on both its policy key and its plan, read from a real request. */
async function acmeLeft(): Promise<string> {
  const r = await send([ACME, ['x-app', 'acme']]);
  return r.headers.ratelimit ?? '';
}

describe('bad input: the right answer, nothing counted against another application', () => {
  it('odd key values each get their own bucket, never acme’s', async () => {
    const odd = [
      'acme|x',
      'acme ', // trailing space: trimmed by node:http, this IS acme
      '{acme}',
      '#none',
      '__proto__',
      'constructor',
      'acme\u00e9\u00ff', // Latin-1 bytes
      'a'.repeat(8_000), // huge
      'acme\t',
    ];
    for (const v of odd) {
      const r = await send([ACME, ['x-app', v]]);
      expect([200, 429], v.slice(0, 20)).toContain(r.status);
    }
    // `acme ` and `acme\t` were acme (node:http trims optional whitespace): its bucket is spent.
    const r = await send([
      ['user-key', 'k-acme-7f3a9c1e'],
      ['x-app', 'acme'],
    ]);
    expect(r.status).toBe(429);
    expect(r.headers.ratelimit).toContain('"per-key/1h";r=0;');
    const snap = mesh.snapshot().rateLimits;
    const keys = snap?.usage.filter((u) => u.metric === 'policy:per-key').map((u) => u.application) ?? [];
    // Plain names are themselves (a Map key, never an object's prototype); the rest are hashes,
    // so a huge value is never a key and `#none` is not the shared bucket of keyless requests.
    expect(keys.filter((k) => !k.startsWith('#')).sort()).toEqual(['__proto__', 'acme', 'constructor']);
    expect(keys.filter((k) => /^#[\w-]{32}$/.test(k))).toHaveLength(5);
  });

  it('a user key that is almost right, or another app’s with junk, is 403 and counted for nobody', async () => {
    const before = JSON.stringify(mesh.snapshot().rateLimits?.usage);
    for (const key of [
      'k-acme-7f3a9c1',
      'k-acme-7f3a9c1e ',
      'K-ACME-7F3A9C1E',
      'k-acme-7f3a9c1e\u00a0',
      'x'.repeat(5_000),
    ]) {
      const r = await send([['user-key', key]]);
      // node:http trims the trailing space: that one is the right key.
      expect([403, 200], JSON.stringify(key).slice(0, 30)).toContain(r.status);
      if (r.status === 403) expect(r.body).toBe('invalid credential: unknown user_key\n');
    }
    const after = mesh.snapshot().rateLimits?.usage ?? [];
    const acme = after.find((u) => u.application === 'acme' && u.metric === 'hits');
    const prev = (JSON.parse(before) as typeof after).find(
      (u) => u.application === 'acme' && u.metric === 'hits',
    );
    // Only the trimmed right key counted.
    expect(acme?.used.hour).toBe((prev?.used.hour ?? 0) + 1);
  });

  it('an unknown plan from the signed context is 403; an unsigned claim is no credential (401)', async () => {
    const exp = Math.floor(Date.now() / 1000) + 60;
    const gold = await signJws({ 'x-gateway-app': 'acme', 'x-gateway-plan': 'gold', exp }, 'HS256', SECRET);
    const r = await send([['x-meshwork-context-token', gold]]);
    expect(r.status).toBe(403);
    expect(r.body).toBe('invalid credential: unknown plan "gold"\n');
    const odd = await signJws(
      { 'x-gateway-app': 'acme', 'x-gateway-plan': '\u0000\u202e', exp },
      'HS256',
      SECRET,
    );
    const r2 = await send([['x-meshwork-context-token', odd]]);
    expect(r2.status).toBe(403);
    expect(r2.body).toBe('invalid credential: unknown plan "\\u0000\\u202e"\n');
    const forged = await send([
      ['x-gateway-app', 'acme'],
      ['x-gateway-plan', 'partner'],
    ]);
    expect(forged.status).toBe(401);
    expect(forged.headers['www-authenticate']).toBe('Key realm="meshwork"');
  });

  it('wrong JWTs (claim keys) are 403 and never counted by their claims', async () => {
    const exp = Math.floor(Date.now() / 1000) + 60;
    const good = (sub: string) =>
      new SignJWT({ sub, exp })
        .setProtectedHeader({ alg: 'HS256' })
        .sign(new TextEncoder().encode(JWT_SECRET));
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'u-victim', exp })).toString('base64url')}.`;
    const wrongKey = await new SignJWT({ sub: 'u-victim', exp })
      .setProtectedHeader({ alg: 'HS256' })
      .sign(new TextEncoder().encode(`${JWT_SECRET}!`));
    const valid = await good('u-victim');
    const padded = `${valid}=`;
    const cases: [string, string][] = [
      [none, 'malformed JWT'],
      [wrongKey, 'bad signature'],
      [padded, 'malformed JWT'],
      ['a.b.c', 'malformed JWT'],
      ['x'.repeat(10_000), 'malformed JWT'],
    ];
    for (const [token, reason] of cases) {
      const r = await send([ACME, ['authorization', `Bearer ${token}`]]);
      expect(r.status, reason).toBe(403);
      expect(r.body).toBe(`invalid credential: JWT refused: ${reason}\n`);
    }
    expect(served).toBeGreaterThan(0);
    const victim = mesh.snapshot().rateLimits?.usage.find((u) => u.application === 'u-victim');
    expect(victim).toBeUndefined();
    // The victim's own valid token still has its whole allowance (2 per hour).
    const r = await send([
      [
        'x-meshwork-context-token',
        await signJws({ 'x-gateway-app': 'victim-app', 'x-gateway-plan': 'partner', exp }, 'HS256', SECRET),
      ],
      ['authorization', `Bearer ${valid}`],
    ]);
    expect(r.status).toBe(200);
    expect(r.headers.ratelimit).toContain('"per-user/1h";r=1;');
  });

  it('the counters stay bounded whatever keys arrive', async () => {
    expect(mesh.snapshot().rateLimits?.store.counters).toBeLessThan(100);
    expect(await acmeLeft()).toMatch(/"partner.hits\/1h";r=9\d\d;/);
  });
});
