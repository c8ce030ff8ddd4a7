/**
 * Adversarial properties (fast-check, bounded): the context token verifier accepts exactly the
 * valid tokens, never throws and never hangs; credentials written in a URL never show up in an
 * error, a log line, a diagnostics channel message or the snapshot.
 */
import { createHmac, generateKeyPairSync } from 'node:crypto';
import dc from 'node:diagnostics_channel';
import fc from 'fast-check';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type JwsKeys, type JwsResult, JwsVerifier, signJws } from '../../src/context/jws.ts';
import { CHANNELS, createMesh, isMeshworkError, type Logger, type Mesh } from '../../src/index.ts';
import type { DispatchHandler } from '../../src/pipeline.ts';
import { startServer, type TestServer } from '../support/servers.ts';

const RUNS = 300;
const SECRET = 'a-gateway-secret-of-32-characters!';
const NOW = 1_700_000_000_000;
const NOW_S = NOW / 1000;
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const otherEc = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const PUBLIC_PEM = ec.publicKey.export({ type: 'spki', format: 'pem' }) as string;
const KEYS: JwsKeys = {
  hmacSecret: SECRET,
  publicKey: ec.publicKey,
  algorithms: ['HS256', 'ES256'],
  skewMs: 30_000,
  audience: 'travels',
  issuer: 'gateway',
};

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
/** HS256 over any header and payload, with node:crypto (independent of the code under test). */
function hs256(header: unknown, claims: unknown, secret = SECRET): string {
  const input = `${b64(header)}.${b64(claims)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** Resolves with the verifier's answer, or fails the property after 2 s (a hang) or on a rejection. */
async function settle(p: Promise<JwsResult>): Promise<JwsResult> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('verification hung')), 2_000);
  });
  try {
    return await Promise.race([p, hang]);
  } finally {
    clearTimeout(timer);
  }
}

/** Claims of a valid token: context headers, aud, iss, a future exp, sometimes a past nbf. */
const validClaims = fc.record(
  {
    'x-consumer-id': fc.string({ maxLength: 20 }),
    'x-app-plan': fc.oneof(fc.constantFrom('gold', 'partner'), fc.jsonValue({ maxDepth: 2 })),
    aud: fc.oneof(fc.constant('travels'), fc.constant(['portal', 'travels'])),
    iss: fc.constant('gateway'),
    exp: fc.integer({ min: NOW_S + 1, max: NOW_S + 86_400 }),
    nbf: fc.integer({ min: NOW_S - 86_400, max: NOW_S }),
  },
  { requiredKeys: ['x-consumer-id', 'aud', 'iss', 'exp'] },
);

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

type Mutation = (token: string, claims: Record<string, unknown>) => string | Promise<string>;

/** Ways to damage a valid token; each either changes the string or yields an invalid token. */
const mutation: fc.Arbitrary<[string, Mutation]> = fc.oneof(
  fc.tuple(fc.nat(), fc.integer({ min: 1, max: 63 })).map(([at, xor]): [string, Mutation] => [
    'flip a character',
    (t) => {
      const i = at % t.length;
      const c = B64URL.indexOf(t[i] as string);
      const next = c === -1 ? 'A' : (B64URL[c ^ xor] as string);
      return `${t.slice(0, i)}${next}${t.slice(i + 1)}`;
    },
  ]),
  fc.tuple(fc.nat(), fc.integer({ min: 0, max: 15 })).map(([at, bit]): [string, Mutation] => [
    'flip a bit of a byte',
    (t) => {
      const bytes = Buffer.from(t, 'latin1');
      const i = at % bytes.length;
      bytes[i] = (bytes[i] as number) ^ (1 << (bit % 8));
      return bytes.toString('latin1');
    },
  ]),
  fc
    .string({ minLength: 1, maxLength: 8, unit: 'binary-ascii' })
    .map((junk): [string, Mutation] => ['append junk', (t) => `${t}${junk}`]),
  fc
    .string({ minLength: 1, maxLength: 8, unit: 'binary-ascii' })
    .map((junk): [string, Mutation] => ['prepend junk', (t) => `${junk}${t}`]),
  fc
    .tuple(fc.nat(), fc.constantFrom(' ', '\t', '\n', '=', '==', '.', '+', '/'))
    .map(([at, s]): [string, Mutation] => [
      `insert ${JSON.stringify(s)}`,
      (t) => {
        const i = at % (t.length + 1);
        return `${t.slice(0, i)}${s}${t.slice(i)}`;
      },
    ]),
  fc.constant<[string, Mutation]>([
    'signature in standard base64, padded',
    (t) => {
      const [h, p, s] = t.split('.') as [string, string, string];
      return `${h}.${p}.${Buffer.from(s, 'base64url').toString('base64')}`;
    },
  ]),
  fc.constant<[string, Mutation]>([
    'signature in standard base64, unpadded',
    (t) => {
      const [h, p, s] = t.split('.') as [string, string, string];
      const std = Buffer.from(s, 'base64url').toString('base64').replace(/=+$/, '');
      // Without + or /, this spelling is the valid token itself: make the difference certain.
      return std === s ? `${h}.${p}.${std}=` : `${h}.${p}.${std}`;
    },
  ]),
  fc.integer({ min: 1, max: 3 }).map((unused): [string, Mutation] => [
    'unused bits of the last signature character',
    (t) => {
      const c = B64URL.indexOf(t.at(-1) as string);
      return `${t.slice(0, -1)}${B64URL[c ^ unused]}`;
    },
  ]),
  fc.nat().map((n): [string, Mutation] => ['truncate', (t) => t.slice(0, n % t.length)]),
  fc.constantFrom<[string, Mutation]>(
    ['alg none, no signature', (t) => `${b64({ alg: 'none' })}.${t.split('.')[1]}.`],
    [
      'alg none, signature kept',
      (t) => `${b64({ alg: 'none', typ: 'JWT' })}.${t.split('.')[1]}.${t.split('.')[2]}`,
    ],
    ['alg NONE', (t) => `${b64({ alg: 'NONE' })}.${t.split('.')[1]}.`],
    ['alg HS512 header, HS256 signature', (_t, c) => hs256({ alg: 'HS512' }, c)],
    ['crit header, correctly signed', (_t, c) => hs256({ alg: 'HS256', crit: ['x-gw'], 'x-gw': true }, c)],
    ['crit b64:false, correctly signed', (_t, c) => hs256({ alg: 'HS256', crit: ['b64'], b64: false }, c)],
    ['wrong aud, correctly signed', (_t, c) => hs256({ alg: 'HS256' }, { ...c, aud: 'reviews' })],
    ['no aud, correctly signed', (_t, c) => hs256({ alg: 'HS256' }, { ...c, aud: undefined })],
    ['wrong iss, correctly signed', (_t, c) => hs256({ alg: 'HS256' }, { ...c, iss: 'evil' })],
    ['expired, correctly signed', (_t, c) => hs256({ alg: 'HS256' }, { ...c, exp: NOW_S - 31 })],
    ['no exp, correctly signed', (_t, c) => hs256({ alg: 'HS256' }, { ...c, exp: undefined })],
    ['string exp, correctly signed', (_t, c) => hs256({ alg: 'HS256' }, { ...c, exp: String(c.exp) })],
    ['not yet valid, correctly signed', (_t, c) => hs256({ alg: 'HS256' }, { ...c, nbf: NOW_S + 31 })],
    ['claims are an array, correctly signed', (_t, c) => hs256({ alg: 'HS256' }, [c])],
    ['another secret', (_t, c) => hs256({ alg: 'HS256' }, c, 'another-secret-of-enough-length')],
    ['HS256 with the ES256 public key as secret', (_t, c) => hs256({ alg: 'HS256' }, c, PUBLIC_PEM)],
    ['ES256 from another key', (_t, c) => signJws(c, 'ES256', otherEc.privateKey)],
    ['four parts', (t) => `${t}.${t.split('.')[2]}`],
    [
      'payload of another token',
      (t, c) => `${t.split('.')[0]}.${b64({ ...c, 'x-app-plan': 'platinum' })}.${t.split('.')[2]}`,
    ],
  ),
);

describe('context token verification (properties)', () => {
  it('arbitrary strings are never accepted; verification never rejects nor hangs', async () => {
    const verifier = new JwsVerifier(KEYS);
    const part = fc.string({ unit: fc.constantFrom(...B64URL), maxLength: 60 });
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 200 }),
          fc.tuple(part, part, part).map((p) => p.join('.')),
          fc
            .tuple(fc.jsonValue({ maxDepth: 2 }), fc.jsonValue({ maxDepth: 2 }), part)
            .map(([h, p, s]) => `${b64(h)}.${b64(p)}.${s}`),
          fc
            .tuple(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 1 })), part)
            .map(
              ([h, s]) =>
                `${b64({ alg: 'HS256', ...h })}.${b64({ exp: NOW_S + 60, aud: 'travels', iss: 'gateway' })}.${s}`,
            ),
        ),
        async (token) => {
          const r = await settle(verifier.verify(token, NOW));
          expect(r.ok).toBe(false);
          expect(verifier.cached(token, NOW)).toBeUndefined();
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('a mutated valid token is accepted only when it is exactly the valid token, cached or not', async () => {
    const cachedVerifier = new JwsVerifier(KEYS, { cacheSize: 64 });
    await fc.assert(
      fc.asyncProperty(
        validClaims,
        fc.constantFrom<'HS256' | 'ES256'>('HS256', 'HS256', 'ES256'),
        mutation,
        async (claims, alg, [, mutate]) => {
          const valid = await signJws(claims, alg, alg === 'HS256' ? SECRET : ec.privateKey);
          const original = await settle(cachedVerifier.verify(valid, NOW));
          expect(original.ok).toBe(true);
          expect(original.ok && original.claims['x-consumer-id']).toBe(claims['x-consumer-id']);
          expect(cachedVerifier.cached(valid, NOW)).toBe(original);
          const mutated = await mutate(valid, claims);
          const fresh = await settle(new JwsVerifier(KEYS, { cacheSize: 0 }).verify(mutated, NOW));
          const viaCache =
            cachedVerifier.cached(mutated, NOW) ?? (await settle(cachedVerifier.verify(mutated, NOW)));
          expect(fresh.ok).toBe(mutated === valid);
          expect(viaCache.ok).toBe(mutated === valid);
        },
      ),
      { numRuns: RUNS },
    );
  });
});

describe('credentials in URLs (property)', () => {
  let server: TestServer;
  let mesh: Mesh;
  const lines: unknown[] = [];
  const published: unknown[] = [];
  const record = (msg: unknown) => published.push(msg);
  const log = (obj: object, msg?: string) => lines.push([obj, msg]);
  const logger: Logger = { debug: log, info: log, warn: log, error: log };

  beforeAll(async () => {
    server = await startServer();
    mesh = createMesh({
      env: {},
      logger,
      unknownServices: 'passthrough',
      services: { reviews: { discovery: { static: [server.address] } } },
    });
    for (const c of Object.values(CHANNELS)) dc.subscribe(c, record);
  });
  afterAll(async () => {
    for (const c of Object.values(CHANNELS)) dc.unsubscribe(c, record);
    await mesh.close();
    await server.close();
  });

  /** Everything an error shows: message, stack, own properties, its causes. */
  function shown(err: unknown, depth = 0): string {
    if (typeof err !== 'object' || err === null || depth > 5) return String(err);
    const e = err as Error & Record<string, unknown>;
    const own = Object.getOwnPropertyNames(e)
      .filter((k) => k !== 'cause')
      .map((k) => `${k}=${String(e[k])}`);
    return [String(e.message), String(e.stack), ...own, shown(e.cause, depth + 1)].join('\n');
  }

  async function failure(p: () => Promise<unknown>): Promise<unknown> {
    try {
      await p();
    } catch (err) {
      return err;
    }
    throw new Error('expected a failure');
  }

  function dispatchError(origin: string | URL): Promise<Error> {
    return new Promise((resolve, reject) => {
      const handler: DispatchHandler = {
        onRequestStart() {},
        onResponseError: (_c, err) => resolve(err),
        onResponseStart: () => reject(new Error('sent upstream')),
      };
      mesh.dispatcher.dispatch({ origin, path: '/', method: 'GET' }, handler);
    });
  }

  const text = fc.oneof(
    fc.string({ unit: 'binary-ascii', maxLength: 10 }),
    fc.string({ unit: 'grapheme', maxLength: 6 }),
  );

  it('the password never appears in errors, logs, channel messages or the snapshot', async () => {
    await fc.assert(
      fc.asyncProperty(
        text,
        text,
        fc.constantFrom(
          'reviews',
          'reviews:8080',
          'elsewhere.invalid',
          'bad host',
          '[::1',
          'a%zz',
          '',
          'x y:1',
        ),
        fc.boolean(),
        async (user, rest, host, encode) => {
          const password = `S3cr3t-${rest}`;
          // Raw userinfo cannot hold the characters that end an authority; encoded, it holds anything.
          const raw = !encode && !/[/?#\\]/.test(user + password);
          const userinfo = raw
            ? `${user}:${password}`
            : `${encodeURIComponent(user)}:${encodeURIComponent(password)}`;
          const url = `http://${userinfo}@${host}/path`;
          lines.length = 0;
          published.length = 0;
          const errors: unknown[] = [];
          errors.push(await failure(() => mesh.fetch(url)));
          errors.push(await dispatchError(`http://${userinfo}@${host}`));
          let parsed: URL | undefined;
          try {
            parsed = new URL(url);
          } catch {
            parsed = undefined;
          }
          if (parsed) {
            errors.push(await failure(() => mesh.fetch(parsed)));
            errors.push(await dispatchError(parsed));
          }
          for (const err of errors) expect(isMeshworkError(err, 'MESHWORK_ERR_INVALID_URL')).toBe(true);
          const everything = [
            ...errors.map((e) => shown(e)),
            JSON.stringify(lines),
            ...published.map((m) => shown(m)),
            JSON.stringify(mesh.snapshot()),
          ].join('\n');
          const forms = new Set([password, encodeURIComponent(password), parsed?.password ?? password]);
          for (const form of forms) expect(everything).not.toContain(form);
        },
      ),
      { numRuns: RUNS },
    );
    // undici.request hands the mesh only the origin: the userinfo is dropped, never sent.
    const r = await request(`http://u:${encodeURIComponent('S3cr3t-x')}@reviews/`, {
      dispatcher: mesh.dispatcher,
    });
    await r.body.text();
    expect(JSON.stringify(server.hits)).not.toContain('S3cr3t');
    expect(server.hits.every((h) => h.headers.authorization === undefined)).toBe(true);
  });
});
