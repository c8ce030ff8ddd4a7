/**
 * Path tricks against `authorization` (a DENY on /admin and /admin/*), sent as raw request
 * targets over TCP to real node:http, Express and Fastify servers: none may reach the protected
 * handler, and allowed paths still work, with the app seeing the path the policy judged.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { meshFastify, meshHandler, meshRewriteUrl } from '../src/context/adapters.ts';
import { createMesh, type Mesh } from '../src/index.ts';
import { listen } from './support/inbound.ts';
import { rawRequest } from './support/raw-http.ts';

const DENY_ADMIN = {
  policies: [
    { name: 'no-admin', action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin', '/admin/*'] } }] }] },
  ],
};

/**
 * Targets that must never reach the admin handler. `status`: 403 refused by the policy, 400
 * refused as a malformed target (by meshwork or by Node's parser), undefined: any answer
 * (the app's own 404 for instance) as long as the admin handler does not run.
 */
const DENIED: readonly (readonly [target: string, status: 400 | 403 | undefined])[] = [
  ['/admin', 403],
  ['/admin/secret', 403],
  ['/admin/', 403],
  ['http://svc/admin/secret', 403],
  ['HTTP://svc/admin/secret', 403],
  ['https://svc/admin/secret', 403],
  ['http://svc:8080/admin/secret', 403],
  ['http://user@svc/admin/secret', 403],
  ['http://svc/public/../admin', 403],
  ['http://svc/%2e%2e/admin', 403],
  ['/public/../admin/secret', 403],
  ['/%2e/admin/secret', 403],
  ['/public/%2e%2e/admin/secret', 403],
  ['/./admin/secret', 403],
  ['/admin#frag', 403],
  ['/admin/secret#frag', 403],
  ['/admin?x=1', 403],
  ['/admin?', 403],
  ['/admin/?next=/../public', 403],
  ['/ADMIN/secret', 403],
  ['/Admin', 403],
  ['/aDmIn/secret', 403],
  ['/%61dmin/secret', 403],
  ['/%41DMIN/secret', 403],
  ['/adm%69n', 403],
  ['/adm%69N/x', 403],
  ['//admin/secret', 403],
  ['/admin//secret', 403],
  ['///admin', 403],
  ['/public/%2E%2E/admin', 403],
  ['/public/.%2e/admin', 403],
  ['/public/%2e./admin', 403],
  ['/public/%2E%2e/admin', 403],
  ['/x/y/../../admin', 403],
  ['/../admin', 403],
  ['/../../admin/secret', 403],
  ['/%2e%2e/admin', 403],
  ['/%2E/%2E%2E/admin', 403],
  ['/admin/.', 403],
  ['/admin/secret/..', 403],
  ['/pub%6cic/../admin', 403],
  ['/public/.%2E/ADMIN/secret', 403],
  ['/public\\..\\admin', 403],
  ['/\\admin', 403],
  ['/admin\\secret', 403],
  ['/public/..%2fadmin', 400],
  ['/admin%2fsecret', 400],
  ['/ADMIN%2Fsecret', 400],
  ['/admin%5csecret', 400],
  ['/public/%2e%2e%2fadmin', 400],
  ['/admin%00', 400],
  ['/admin%zz', 400],
  ['/admin%', 400],
  ['/admin%2', 400],
  ['/%2', 400],
  ['svc:80', 400],
  ['*', 400],
  ['ftp://svc/admin', 400],
  ['/admin\u0000', 400],
  ['/ad min', 400],
  ['/admin\tx', 400],
  ['/admin/café', 400],
  ['/admin;x', undefined],
  ['/admin.json', undefined],
];

/** Targets that must still work; the app sees the normalized form. */
const ALLOWED: readonly (readonly [target: string, seen: string])[] = [
  ['/public/x', '/public/x'],
  ['/public/x?q=1&r=/../admin', '/public/x?q=1&r=/../admin'],
  ['/administrator', '/administrator'],
  ['/', '/'],
  ['/public/./x', '/public/x'],
  ['/public//x', '/public/x'],
  ['/public/a/../x', '/public/x'],
  ['/%70ublic/x', '/public/x'],
  ['/public/%7euser', '/public/~user'],
  ['http://svc/public/x?q=1', '/public/x?q=1'],
  ['http://svc', '/'],
  ['/public/x#frag', '/public/x'],
  ['/public/caf%c3%a9', '/public/caf%C3%A9'],
  ['/admin/..', '/'],
  ['/admin/../public/x', '/public/x'],
  ['/public/%252e%252e/admin', '/public/%252e%252e/admin'],
];

interface Target {
  name: string;
  port: number;
  adminHits: string[];
  /** false: the server cannot route the normalized path (Fastify without rewriteUrl). */
  rewrites: boolean;
}

let mesh: Mesh;
const targets: Target[] = [];
const closers: (() => Promise<void>)[] = [];

/**
 * A deliberately lenient router, like code that reads `new URL(req.url, base).pathname` (dot
 * segments, `%2e` and backslashes resolved), decodes it once, merges slashes and ignores case.
 */
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
  p = p.replaceAll('\\', '/').replace(/\/+/g, '/').toLowerCase();
  return p === '/admin' || p.startsWith('/admin/');
}

async function fastifyTarget(name: string, app: FastifyInstance, rewrites: boolean): Promise<Target> {
  const adminHits: string[] = [];
  meshFastify(app, mesh);
  const admin = async (request: { url: string }) => {
    adminHits.push(request.url);
    return `ADMIN ${request.url}`;
  };
  const pub = async (request: { url: string }) => `public ${request.url}`;
  app.get('/admin', admin);
  app.get('/admin/*', admin);
  for (const p of ['/', '/public/*', '/administrator']) app.get(p, pub);
  await app.listen({ port: 0, host: '127.0.0.1' });
  closers.push(() => app.close());
  return { name, port: (app.server.address() as AddressInfo).port, adminHits, rewrites };
}

beforeAll(async () => {
  mesh = createMesh({ env: {}, authorization: DENY_ADMIN } as never);
  closers.push(() => mesh.close());

  const nodeHits: string[] = [];
  const node = await listen(
    createServer(
      meshHandler(mesh, (req: IncomingMessage, res) => {
        if (lenientIsAdmin(req.url ?? '/')) {
          nodeHits.push(req.url ?? '');
          res.end(`ADMIN ${req.url}`);
        } else res.end(`public ${req.url}`);
      }),
    ),
  );
  closers.push(node.close);
  targets.push({
    name: 'node:http',
    port: Number(new URL(node.url).port),
    adminHits: nodeHits,
    rewrites: true,
  });

  const expressHits: string[] = [];
  const app = express();
  app.use(mesh.inbound());
  app.get(['/admin', '/admin/*splat'], (req, res) => {
    expressHits.push(req.url);
    res.send(`ADMIN ${req.url}`);
  });
  app.get(['/', '/public/*splat', '/administrator'], (req, res) => {
    res.send(`public ${req.url}`);
  });
  const ex = await listen(app.listen(0, '127.0.0.1') as Server);
  closers.push(ex.close);
  targets.push({
    name: 'express',
    port: Number(new URL(ex.url).port),
    adminHits: expressHits,
    rewrites: true,
  });

  targets.push(await fastifyTarget('fastify', Fastify(), false));
  targets.push(
    await fastifyTarget('fastify+rewriteUrl', Fastify({ rewriteUrl: meshRewriteUrl(mesh) }), true),
  );
}, 20_000);

afterAll(async () => {
  for (const c of closers.reverse()) await c();
});

describe('authorization judges the normalized path (DENY /admin, /admin/*)', () => {
  it(`${DENIED.length} tricky targets never reach the protected handler (node:http, Express, Fastify)`, async () => {
    const failures: string[] = [];
    for (const t of targets) {
      for (const [target, status] of DENIED) {
        const res = await rawRequest(t.port, target);
        const reached = res.body.startsWith('ADMIN');
        if (reached) failures.push(`${t.name} ${JSON.stringify(target)}: reached the admin handler`);
        else if (status !== undefined && res.status !== status)
          failures.push(`${t.name} ${JSON.stringify(target)}: ${res.status}, expected ${status}`);
      }
      expect(t.adminHits, t.name).toEqual([]);
    }
    expect(failures).toEqual([]);
  });

  it(`${ALLOWED.length} allowed targets still work, and the app sees the normalized path`, async () => {
    const failures: string[] = [];
    for (const t of targets) {
      for (const [target, seen] of ALLOWED) {
        const res = await rawRequest(t.port, target);
        // Fastify routes before any hook runs: without rewriteUrl it cannot be given the
        // normalized path, so a target that normalization changes is refused instead.
        const expected = t.rewrites || target === seen ? `200 public ${seen}` : '400';
        const got = expected === '400' ? String(res.status) : `${res.status} ${res.body}`;
        if (got !== expected)
          failures.push(`${t.name} ${JSON.stringify(target)}: ${got}, expected ${expected}`);
      }
    }
    expect(failures).toEqual([]);
  });
});

describe('normalization details', () => {
  it('Fastify without rewriteUrl: a target that normalization changes gets 400 with the fix in the body', async () => {
    const t = targets.find((x) => x.name === 'fastify') as Target;
    const res = await rawRequest(t.port, '/public//x');
    expect(res.status).toBe(400);
    expect(res.body).toContain('normalizes to /public/x');
    expect(res.body).toContain('rewriteUrl: meshRewriteUrl(mesh)');
  });

  it('counts 400s and 403s; the 400 names the reason', async () => {
    const before = mesh.snapshot().inbound;
    const node = targets[0] as Target;
    const bad = await rawRequest(node.port, '/a%2fb');
    expect(bad.status).toBe(400);
    expect(bad.body).toBe('Bad Request: percent-encoded slash or backslash (%2F, %5C) in the path\n');
    expect((await rawRequest(node.port, '/ADMIN')).status).toBe(403);
    const after = mesh.snapshot().inbound;
    expect(after.badRequests - before.badRequests).toBe(1);
    expect(after.denied - before.denied).toBe(1);
  });

  it('Express mount: req.url stays relative to the mount; leaving the mount point is refused', async () => {
    const m = createMesh({ env: {}, authorization: DENY_ADMIN } as never);
    const app = express();
    app.use('/api', m.inbound(), (req, res) => {
      res.send(`${req.baseUrl} ${req.url} ${req.originalUrl}`);
    });
    const l = await listen(app.listen(0, '127.0.0.1') as Server);
    try {
      const port = Number(new URL(l.url).port);
      expect((await rawRequest(port, '/api/a/./b//c')).body).toBe('/api /a/b/c /api/a/b/c');
      const out = await rawRequest(port, '/api/../admin');
      expect(out.status).toBe(403);
      const out2 = await rawRequest(port, '/api/../other');
      expect(out2.status).toBe(400);
      expect(out2.body).toContain('outside the mount point /api');
    } finally {
      await l.close();
      await m.close();
    }
  });

  it('pathCase: SENSITIVE is Istio exact matching (for case-sensitive routers); escapedSlashes: KEEP_UNCHANGED', async () => {
    const m = createMesh({
      env: {},
      authorization: { ...DENY_ADMIN, pathCase: 'SENSITIVE' },
      pathNormalization: { escapedSlashes: 'KEEP_UNCHANGED' },
    } as never);
    const l = await listen(
      createServer(
        meshHandler(m, (req, res) => {
          res.end(req.url);
        }),
      ),
    );
    try {
      const port = Number(new URL(l.url).port);
      expect(await rawRequest(port, '/ADMIN/x')).toMatchObject({ status: 200, body: '/ADMIN/x' });
      expect(await rawRequest(port, '/files/a%2fb')).toMatchObject({ status: 200, body: '/files/a%2Fb' });
      expect((await rawRequest(port, '/admin/x')).status).toBe(403);
    } finally {
      await l.close();
      await m.close();
    }
  });

  it('refuses conflicting settings at createMesh', () => {
    expect(() =>
      createMesh({
        env: {},
        pathNormalization: { normalization: 'DECODE_AND_MERGE_SLASHES', escapedSlashes: 'REJECT_REQUEST' },
      } as never),
    ).toThrow(
      /pathNormalization\.escapedSlashes: "REJECT_REQUEST" conflicts with normalization DECODE_AND_MERGE_SLASHES/,
    );
  });
});
