/**
 * Property tests for mesh.inbound(): the path normalizer, authorization on real servers with
 * generated request targets, and forged context headers. Bounded: 300 runs per property.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import express from 'express';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { meshHandler } from '../../src/context/adapters.ts';
import {
  type EscapedSlashesAction,
  normalizeTarget,
  type PathNormalization,
  pathOf,
  pathOptions,
} from '../../src/http/path.ts';
import { createMesh, type Mesh } from '../../src/index.ts';
import { listen } from '../support/inbound.ts';
import { rawRequest } from '../support/raw-http.ts';

const RUNS = 300;

/** Pieces that path tricks are made of. */
const PIECES = [
  'admin',
  'ADMIN',
  'Admin',
  'public',
  'x',
  '.',
  '..',
  '%2e',
  '%2E%2e',
  '.%2e',
  '%2f',
  '%2F',
  '%5c',
  '\\',
  '/',
  '//',
  ';',
  '#',
  '?',
  '&',
  '=',
  '%',
  '%zz',
  '%00',
  '%61dmin',
  '%41DMIN',
  '%252e',
  'é',
  '\u00e9',
  '\u2028',
  '\u0000',
  '\t',
  ' ',
  '\u007f',
  'http://svc',
  'HTTP://svc/',
];

const piece = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...PIECES) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 4 }) },
);

/** A request target: pieces joined by `/` or nothing, mostly starting with `/`. */
const target = fc
  .tuple(
    fc.constantFrom('/', '/', '/', 'http://svc/', '', '//'),
    fc.array(fc.tuple(piece, fc.constantFrom('/', '')), { maxLength: 8 }),
  )
  .map(([start, parts]) => start + parts.map(([p, sep]) => p + sep).join(''));

/** Targets aimed at /admin: a detour, an admin spelling, a tail (some of them leave /admin again). */
const adminTarget = fc
  .tuple(
    fc.constantFrom('/', 'http://svc/', '//', '/./', '/public/../', '/%2e/', '/x/%2E%2e/', '\\', '/.%2e/'),
    fc.constantFrom('admin', 'ADMIN', 'Admin', '%61dmin', '%41DMIN', 'adm%69n', 'admin%2f', 'admin\\'),
    fc.array(piece, { maxLength: 3 }),
    fc.constantFrom('', '/', '/secret', '//x', '/./y', '#f', '?q=1', '/..', ';x', '/x/..'),
  )
  .map(([a, b, c, d]) => a + b + c.join('/') + d);

const options = fc.record({
  normalization: fc.constantFrom<PathNormalization>(
    'NONE',
    'BASE',
    'MERGE_SLASHES',
    'DECODE_AND_MERGE_SLASHES',
  ),
  escapedSlashes: fc.constantFrom<EscapedSlashesAction>(
    'REJECT_REQUEST',
    'KEEP_UNCHANGED',
    'UNESCAPE_AND_FORWARD',
  ),
});

describe('normalizeTarget properties', () => {
  it('returns a string or its own rejection, never throws; the result is idempotent and clean', () => {
    fc.assert(
      fc.property(
        fc.oneof(target, adminTarget, fc.string({ unit: 'binary', maxLength: 40 })),
        options,
        (t, o) => {
          const opts = pathOptions(o);
          const r = normalizeTarget(t, opts);
          if (typeof r !== 'string') {
            expect(r.rejected).toBe(true);
            expect(typeof r.reason).toBe('string');
            return;
          }
          expect(r.startsWith('/')).toBe(true);
          expect(r).not.toContain('#');
          expect([...r].some((c) => c.charCodeAt(0) <= 0x20 || c.charCodeAt(0) === 0x7f)).toBe(false);
          expect(normalizeTarget(r, opts)).toBe(r);
          if (opts.normalization === 'NONE') return;
          const path = pathOf(r);
          expect(`${path}/`).not.toMatch(/\/\.{1,2}\//);
          expect(path).not.toMatch(/[\\\u0080-\uffff]/);
          if (opts.normalization !== 'BASE') expect(path).not.toContain('//');
        },
      ),
      { numRuns: RUNS },
    );
  });
});

/** Is a normalized path under /admin, in any case (what a case-insensitive router would reach)? */
const underAdmin = (path: string) => /^\/admin(\/|$)/i.test(path);

/** Like test/context-paths.test.ts: a router reading `new URL(req.url).pathname`, decoded, any case. */
function lenientIsAdmin(url: string): boolean {
  let p: string;
  try {
    p = new URL(url, 'http://svc').pathname;
  } catch {
    return false;
  }
  try {
    p = decodeURIComponent(p);
  } catch {}
  return underAdmin(p.replaceAll('\\', '/').replace(/\/+/g, '/'));
}

describe('mesh.inbound() on real servers', () => {
  let mesh: Mesh;
  let authzPort = 0;
  let nodePort = 0;
  let expressPort = 0;
  const adminHits: string[] = [];
  const closers: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    mesh = createMesh({
      env: {},
      authorization: {
        policies: [{ action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin', '/admin/*'] } }] }] }],
      },
      context: {
        headers: ['x-consumer-id', 'x-app-plan'],
        trust: { signature: { hmacSecret: 'a-gateway-secret-of-32-characters!' } },
      },
    } as never);
    closers.push(() => mesh.close());
    const authz = await listen(
      createServer(
        meshHandler(mesh, (req, res) => {
          if (lenientIsAdmin(req.url ?? '/')) {
            adminHits.push(req.url ?? '');
            res.end('ADMIN');
          } else res.end('public');
        }),
      ),
    );
    closers.push(authz.close);
    authzPort = Number(new URL(authz.url).port);

    const dump = (req: IncomingMessage) =>
      JSON.stringify({ h: req.headers, d: req.headersDistinct, r: req.rawHeaders });
    const node = await listen(
      createServer(
        meshHandler(mesh, (req, res) => {
          res.end(dump(req));
        }),
      ),
    );
    closers.push(node.close);
    nodePort = Number(new URL(node.url).port);
    const app = express();
    app.use(mesh.inbound());
    app.use((req, res) => {
      res.end(dump(req) + JSON.stringify([req.get('x-consumer-id'), req.get('x-app-plan')]));
    });
    const ex = await listen(app.listen(0, '127.0.0.1') as Server);
    closers.push(ex.close);
    expressPort = Number(new URL(ex.url).port);
  });

  afterAll(async () => {
    for (const c of closers.reverse()) await c();
  });

  it('a DENY on /admin and /admin/*: no generated target whose normalized path is under /admin reaches it', async () => {
    let underAdminSent = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(target, adminTarget), async (t) => {
        const res = await rawRequest(authzPort, t);
        const n = normalizeTarget(t);
        if (typeof n === 'string' && underAdmin(pathOf(n))) {
          underAdminSent++;
          expect(res.status === 403 || res.status === 400, `${JSON.stringify(t)} → ${res.status}`).toBe(true);
        }
        expect(res.body).not.toBe('ADMIN');
      }),
      { numRuns: RUNS },
    );
    expect(adminHits).toEqual([]);
    // The generator does produce admin paths, not only junk.
    expect(underAdminSent).toBeGreaterThan(RUNS / 10);
  });

  const FORGED = 'FORGED';
  const contextName = fc.constantFrom(
    'x-consumer-id',
    'X-Consumer-Id',
    'X-CONSUMER-ID',
    'x-app-plan',
    'X-App-Plan',
    'x-meshwork-context-token',
    'X-Meshwork-Context-Token',
  );
  const otherName = fc.constantFrom('x-other', 'accept', 'x-consumer', 'x-app-plans', 'user-agent');
  const headerValue = fc.stringMatching(/^[\x21-\x7e][\x20-\x7e]{0,15}$/);
  const headerSet = fc.array(
    fc.oneof(
      contextName.chain((n) => headerValue.map((v) => [n, `${FORGED}${v}`] as const)),
      otherName.chain((n) => headerValue.map((v) => [n, v.replaceAll(FORGED, 'f')] as const)),
    ),
    { minLength: 1, maxLength: 8 },
  );

  it('forged context headers never appear in headers, headersDistinct, rawHeaders or req.get()', async () => {
    await fc.assert(
      fc.asyncProperty(headerSet, fc.boolean(), async (headers, viaExpress) => {
        const res = await rawRequest(viaExpress ? expressPort : nodePort, '/', { headers });
        expect(res.status).toBe(200);
        expect(res.body).not.toContain(FORGED);
      }),
      { numRuns: RUNS },
    );
  });
});
