import type { Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import express from 'express';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { meshFastify } from '../src/context/adapters.ts';
import { signJws } from '../src/context/jws.ts';
import { createMesh, type Mesh } from '../src/index.ts';
import { listen } from './support/inbound.ts';
import { startServer, type TestServer } from './support/servers.ts';

const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const IN = { 'x-consumer-id': 'c-1', traceparent: TP, baggage: 'k=v', 'content-type': 'application/json' };

let closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.reverse()) await c();
  closers = [];
});

async function meshWithDownstream(policies?: unknown[]): Promise<{ mesh: Mesh; downstream: TestServer }> {
  const downstream = await startServer();
  const mesh = createMesh({
    context: { headers: ['x-consumer-id'] },
    ...(policies ? { authorization: { policies } } : {}),
    services: { reviews: { discovery: { static: [downstream.address] } } },
  } as never);
  closers.push(
    () => downstream.close(),
    () => mesh.close(),
  );
  return { mesh, downstream };
}

function expectForwarded(downstream: TestServer, n: number): void {
  expect(downstream.hits).toHaveLength(n);
  for (const h of downstream.hits) {
    expect(h.headers['x-consumer-id']).toBe('c-1');
    expect(h.headers.traceparent).toBe(TP);
    expect(h.headers.baggage).toBe('k=v');
  }
}

describe('Express adapter: app.use(mesh.inbound())', () => {
  it('forwards the context from a route handler, with a parsed JSON body', async () => {
    const { mesh, downstream } = await meshWithDownstream();
    const app = express();
    app.use(mesh.inbound());
    app.use(express.json());
    app.post('/book', async (req, res) => {
      await sleep(2);
      await (await mesh.fetch('http://reviews/one')).text();
      await (
        await mesh.fetch('http://reviews/two', { method: 'POST', body: JSON.stringify(req.body) })
      ).text();
      res.json({ consumer: mesh.context()?.headers['x-consumer-id'] });
    });
    const l = await listen(app.listen(0, '127.0.0.1') as Server);
    closers.push(l.close);
    const res = await fetch(`${l.url}/book`, { method: 'POST', headers: IN, body: '{"seat":"1A"}' });
    expect(await res.json()).toEqual({ consumer: 'c-1' });
    expectForwarded(downstream, 2);
    expect(downstream.hits[1]?.body).toBe('{"seat":"1A"}');
  });

  it('authorization refuses with 403 before the routes run', async () => {
    const { mesh, downstream } = await meshWithDownstream([
      { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] },
    ]);
    const app = express();
    app.use(mesh.inbound());
    app.get('/admin', (_req, res) => {
      res.end('should not run');
    });
    const l = await listen(app.listen(0, '127.0.0.1') as Server);
    closers.push(l.close);
    const res = await fetch(`${l.url}/admin`);
    expect(res.status).toBe(403);
    expect(await res.text()).toMatch(/^RBAC: access denied: denied by DENY policy #0/);
    expect(downstream.hits).toHaveLength(0);
  });
});

describe('Fastify adapter: meshFastify(fastify, mesh)', () => {
  it('forwards the context from a handler, after body parsing', async () => {
    const { mesh, downstream } = await meshWithDownstream();
    const app = Fastify();
    meshFastify(app, mesh);
    app.post('/book', async (request) => {
      await sleep(2);
      await (await mesh.fetch('http://reviews/one')).text();
      await (
        await mesh.fetch('http://reviews/two', { method: 'POST', body: JSON.stringify(request.body) })
      ).text();
      return { consumer: mesh.context()?.headers['x-consumer-id'] };
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    closers.push(() => app.close());
    const { port } = app.server.address() as { port: number };
    const res = await fetch(`http://127.0.0.1:${port}/book`, {
      method: 'POST',
      headers: IN,
      body: '{"seat":"2B"}',
    });
    expect(await res.json()).toEqual({ consumer: 'c-1' });
    expectForwarded(downstream, 2);
    expect(downstream.hits[1]?.body).toBe('{"seat":"2B"}');
  });

  it('authorization refuses with 403', async () => {
    const { mesh } = await meshWithDownstream([
      { action: 'ALLOW', rules: [{ to: [{ operation: { methods: ['GET'] } }] }] },
    ]);
    const app = Fastify();
    meshFastify(app, mesh);
    app.post('/x', async () => 'no');
    app.get('/x', async () => 'yes');
    await app.listen({ port: 0, host: '127.0.0.1' });
    closers.push(() => app.close());
    const { port } = app.server.address() as { port: number };
    const post = await fetch(`http://127.0.0.1:${port}/x`, { method: 'POST' });
    expect(post.status).toBe(403);
    expect(await post.text()).toContain('no ALLOW policy matches');
    expect(await (await fetch(`http://127.0.0.1:${port}/x`)).text()).toBe('yes');
  });
});

describe('a signed context token: the adapters wait for its (async) verification', () => {
  const SECRET = 'a-gateway-secret-of-32-characters!';

  async function signedMesh(): Promise<{ mesh: Mesh; downstream: TestServer; token: string }> {
    const downstream = await startServer();
    const mesh = createMesh({
      context: {
        headers: ['x-consumer-id'],
        trust: { signature: { hmacSecret: SECRET, audience: 'travels' } },
      },
      services: { reviews: { discovery: { static: [downstream.address] } } },
    });
    closers.push(
      () => downstream.close(),
      () => mesh.close(),
    );
    const token = await signJws(
      { 'x-consumer-id': 'signed-7', aud: 'travels', exp: Math.floor(Date.now() / 1000) + 60 },
      'HS256',
      SECRET,
    );
    return { mesh, downstream, token };
  }

  /** Twice: the first verification is async, the second is answered from the cache. */
  async function twice(url: string, token: string): Promise<unknown[]> {
    const out: unknown[] = [];
    for (let i = 0; i < 2; i++) {
      const res = await fetch(url, {
        method: 'POST',
        headers: { ...IN, 'x-consumer-id': 'forged', 'x-meshwork-context-token': token },
        body: `{"n":${i}}`,
      });
      out.push(await res.json());
    }
    return out;
  }

  it('Express', async () => {
    const { mesh, downstream, token } = await signedMesh();
    const app = express();
    app.use(mesh.inbound());
    app.use(express.json());
    app.post('/book', async (req, res) => {
      await (await mesh.fetch('http://reviews/')).text();
      res.json({
        consumer: mesh.context()?.headers['x-consumer-id'],
        seen: req.headers['x-consumer-id'],
        body: req.body,
      });
    });
    const l = await listen(app.listen(0, '127.0.0.1') as Server);
    closers.push(l.close);
    expect(await twice(`${l.url}/book`, token)).toEqual([
      { consumer: 'signed-7', seen: 'signed-7', body: { n: 0 } },
      { consumer: 'signed-7', seen: 'signed-7', body: { n: 1 } },
    ]);
    expect(downstream.hits.map((h) => h.headers['x-consumer-id'])).toEqual(['signed-7', 'signed-7']);
  });

  it('Fastify', async () => {
    const { mesh, downstream, token } = await signedMesh();
    const app = Fastify();
    meshFastify(app, mesh);
    app.post('/book', async (request) => {
      await (await mesh.fetch('http://reviews/')).text();
      return {
        consumer: mesh.context()?.headers['x-consumer-id'],
        seen: request.headers['x-consumer-id'],
        body: request.body,
      };
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    closers.push(() => app.close());
    const { port } = app.server.address() as { port: number };
    expect(await twice(`http://127.0.0.1:${port}/book`, token)).toEqual([
      { consumer: 'signed-7', seen: 'signed-7', body: { n: 0 } },
      { consumer: 'signed-7', seen: 'signed-7', body: { n: 1 } },
    ]);
    expect(downstream.hits.map((h) => h.headers['x-consumer-id'])).toEqual(['signed-7', 'signed-7']);
  });
});
