/**
 * A forged (unsigned) context header must not be readable by service code through any header
 * API: req.headers, req.headersDistinct, req.rawHeaders, Express's req.get() and Fastify's
 * request.headers, on real servers.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { meshFastify, meshHandler } from '../src/context/adapters.ts';
import { signJws } from '../src/context/jws.ts';
import { createMesh, type Mesh } from '../src/index.ts';
import { listen } from './support/inbound.ts';
import { rawRequest } from './support/raw-http.ts';

const SECRET = 'a-gateway-secret-of-32-characters!';

/** Every view of the request headers service code could read. */
function views(req: IncomingMessage, extra: Record<string, unknown> = {}) {
  return {
    headers: req.headers,
    headersDistinct: req.headersDistinct,
    rawHeaders: req.rawHeaders,
    ...extra,
  };
}

let mesh: Mesh;
const ports: Record<string, number> = {};
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  mesh = createMesh({
    env: {},
    context: { headers: ['x-consumer-id', 'x-app-plan'], trust: { signature: { hmacSecret: SECRET } } },
  } as never);
  closers.push(() => mesh.close());

  const node = await listen(
    createServer(
      meshHandler(mesh, (req, res) => {
        res.end(JSON.stringify(views(req)));
      }),
    ),
  );
  closers.push(node.close);
  ports.node = Number(new URL(node.url).port);

  const app = express();
  app.use(mesh.inbound());
  app.get('/', (req, res) => {
    res.json(views(req, { get: req.get('x-consumer-id') ?? null, getPlan: req.get('x-app-plan') ?? null }));
  });
  const ex = await listen(app.listen(0, '127.0.0.1') as Server);
  closers.push(ex.close);
  ports.express = Number(new URL(ex.url).port);

  const f = Fastify();
  meshFastify(f, mesh);
  f.get('/', async (request) => views(request.raw, { fastify: request.headers }));
  await f.listen({ port: 0, host: '127.0.0.1' });
  closers.push(() => f.close());
  ports.fastify = (f.server.address() as AddressInfo).port;
});

afterAll(async () => {
  for (const c of closers.reverse()) await c();
});

describe('forged context headers are stripped from every header API', () => {
  for (const server of ['node', 'express', 'fastify']) {
    it(`${server}: an unsigned x-consumer-id (any case, repeated) is not readable anywhere`, async () => {
      const res = await rawRequest(ports[server] as number, '/', {
        headers: [
          ['X-Consumer-Id', 'admin'],
          ['x-consumer-id', 'root'],
          ['X-APP-PLAN', 'gold'],
          ['x-other', 'kept'],
        ],
      });
      expect(res.status).toBe(200);
      expect(res.body).not.toMatch(/admin|root|gold/);
      const seen = JSON.parse(res.body);
      expect(seen.headers['x-other']).toBe('kept');
      expect(seen.headersDistinct['x-other']).toEqual(['kept']);
      expect(seen.rawHeaders).toContain('x-other');
      expect(seen.headersDistinct['x-consumer-id']).toBeUndefined();
      if (server === 'express') expect(seen.get).toBeNull();
      if (server === 'fastify') expect(seen.fastify['x-consumer-id']).toBeUndefined();
    });

    it(`${server}: a signed token's claims replace forged values in every view`, async () => {
      const token = await signJws(
        { 'x-consumer-id': 'c-42', 'x-app-plan': 'gold', exp: Math.floor(Date.now() / 1000) + 60 },
        'HS256',
        SECRET,
      );
      const res = await rawRequest(ports[server] as number, '/', {
        headers: [
          ['x-meshwork-context-token', token],
          ['X-Consumer-Id', 'admin'],
        ],
      });
      const seen = JSON.parse(res.body);
      expect(res.body).not.toContain('admin');
      expect(seen.headers['x-consumer-id']).toBe('c-42');
      expect(seen.headersDistinct['x-consumer-id']).toEqual(['c-42']);
      expect(seen.headersDistinct['x-app-plan']).toEqual(['gold']);
      const raw: string[] = seen.rawHeaders;
      const values = raw.filter((_, i) => i % 2 === 1 && raw[i - 1]?.toLowerCase() === 'x-consumer-id');
      expect(values).toEqual(['c-42']);
      if (server === 'express') expect(seen.get).toBe('c-42');
    });
  }

  it('a refused token is stripped from every view too', async () => {
    const res = await rawRequest(ports.node as number, '/', {
      headers: [['x-meshwork-context-token', 'not.a.token']],
    });
    expect(res.body).not.toContain('not.a.token');
  });
});
