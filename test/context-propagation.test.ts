import { createServer } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { meshHandler } from '../src/context/adapters.ts';
import { createMesh, type Mesh } from '../src/index.ts';
import { listen } from './support/inbound.ts';
import { startServer, type TestServer } from './support/servers.ts';

const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const GATEWAY = {
  'x-consumer-id': 'c-42',
  'x-app-plan': 'gold',
  traceparent: TP,
  tracestate: 'vendor=abc',
  baggage: 'tenant=acme,region=eu',
  'x-meshwork-deadline': '5000',
};

let closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.reverse()) await c();
  closers = [];
});

async function setup(contextCfg: Record<string, unknown> = { headers: ['X-Consumer-Id', 'x-app-plan'] }) {
  const downstream: TestServer = await startServer((_req, res) => {
    res.end('down');
  });
  const mesh: Mesh = createMesh({
    context: contextCfg as never,
    services: { reviews: { discovery: { static: [downstream.address] } } },
  });
  closers.push(
    () => downstream.close(),
    () => mesh.close(),
  );
  return { downstream, mesh };
}

const pick = (h: Record<string, unknown>, keys: string[]) => Object.fromEntries(keys.map((k) => [k, h[k]]));
const CTX_KEYS = ['x-consumer-id', 'x-app-plan', 'traceparent', 'tracestate', 'baggage'];

describe('mesh.inbound() + context layer (node:http)', () => {
  it('carries gateway headers, trace, baggage and deadline across awaits, timers, streams and mesh.dispatcher', async () => {
    const { downstream, mesh } = await setup();
    const server = createServer(
      meshHandler(mesh, async (_req, res) => {
        await sleep(5);
        await (await mesh.fetch('http://reviews/after-await')).text();
        await new Promise<void>((resolve) =>
          setTimeout(async () => {
            await (await mesh.fetch('http://reviews/in-timer')).text();
            resolve();
          }, 5),
        );
        const r = await request('http://reviews/dispatcher', { dispatcher: mesh.dispatcher });
        await r.body.text();
        await pipeline(
          Readable.from(['a', 'b']),
          async function* (src) {
            for await (const chunk of src) {
              await (await mesh.fetch(`http://reviews/stream-${chunk}`)).text();
              yield chunk;
            }
          },
          async (src) => {
            for await (const _ of src);
          },
        );
        res.end(JSON.stringify(mesh.context()));
      }),
    );
    const up = await listen(server);
    closers.push(up.close);
    const res = await fetch(`${up.url}/in`, { headers: GATEWAY });
    const ctx = (await res.json()) as any;
    expect(ctx.headers).toMatchObject(pick(GATEWAY, CTX_KEYS));
    expect(ctx.principal).toBeUndefined();
    expect(downstream.hits.map((h) => h.url)).toEqual([
      '/after-await',
      '/in-timer',
      '/dispatcher',
      '/stream-a',
      '/stream-b',
    ]);
    for (const hit of downstream.hits) {
      expect(pick(hit.headers, CTX_KEYS)).toEqual(pick(GATEWAY, CTX_KEYS));
      const dl = Number(hit.headers['x-meshwork-deadline']);
      expect(dl).toBeGreaterThan(0);
      expect(dl).toBeLessThanOrEqual(5000);
    }
    expect(mesh.snapshot().inbound).toMatchObject({ inbound: 1, accepted: 1, untrusted: 0 });
  });

  it('keeps concurrent requests apart', async () => {
    const { downstream, mesh } = await setup();
    const server = createServer(
      meshHandler(mesh, async (req, res) => {
        await sleep(req.url === '/a' ? 30 : 1);
        await (await mesh.fetch(`http://reviews${req.url}`)).text();
        res.end();
      }),
    );
    const up = await listen(server);
    closers.push(up.close);
    await Promise.all([
      fetch(`${up.url}/a`, { headers: { 'x-consumer-id': 'A' } }).then((r) => r.text()),
      fetch(`${up.url}/b`, { headers: { 'x-consumer-id': 'B' } }).then((r) => r.text()),
    ]);
    const byUrl = Object.fromEntries(downstream.hits.map((h) => [h.url, h.headers['x-consumer-id']]));
    expect(byUrl).toEqual({ '/a': 'A', '/b': 'B' });
  });

  it('a header the caller set explicitly wins; unconfigured headers are not carried', async () => {
    const { downstream, mesh } = await setup();
    const server = createServer(
      meshHandler(mesh, async (_req, res) => {
        await (await mesh.fetch('http://reviews/', { headers: { 'x-consumer-id': 'explicit' } })).text();
        res.end();
      }),
    );
    const up = await listen(server);
    closers.push(up.close);
    await (await fetch(up.url, { headers: { ...GATEWAY, 'x-not-configured': '1' } })).text();
    expect(downstream.hits[0]?.headers['x-consumer-id']).toBe('explicit');
    expect(downstream.hits[0]?.headers['x-app-plan']).toBe('gold');
    expect(downstream.hits[0]?.headers['x-not-configured']).toBeUndefined();
  });

  it('calls outside any inbound request carry no context', async () => {
    const { downstream, mesh } = await setup();
    const server = createServer(
      meshHandler(mesh, (_req, res) => {
        res.end();
      }),
    );
    const up = await listen(server);
    closers.push(up.close);
    await (await fetch(up.url, { headers: GATEWAY })).text();
    expect(mesh.context()).toBeUndefined();
    await (await mesh.fetch('http://reviews/outside')).text();
    expect(pick(downstream.hits[0]?.headers ?? {}, [...CTX_KEYS, 'x-meshwork-deadline'])).toEqual(
      Object.fromEntries([...CTX_KEYS, 'x-meshwork-deadline'].map((k) => [k, undefined])),
    );
  });

  it('withContext sets the context for jobs and queue consumers', async () => {
    const { downstream, mesh } = await setup();
    await mesh.withContext(
      { headers: { 'X-Consumer-Id': 'job-7', traceparent: TP }, deadlineMs: 1000 },
      async () => {
        expect(mesh.context()?.headers['x-consumer-id']).toBe('job-7');
        await sleep(1);
        await (await mesh.fetch('http://reviews/job')).text();
      },
    );
    const h = downstream.hits[0]?.headers ?? {};
    expect(h['x-consumer-id']).toBe('job-7');
    expect(h.traceparent).toBe(TP);
    expect(Number(h['x-meshwork-deadline'])).toBeLessThanOrEqual(1000);
    // A context read from one request can be handed to a job later (same shape).
    const saved = mesh.withContext({ headers: { 'x-app-plan': 'silver' } }, () => mesh.context());
    await mesh.withContext(saved!, async () => {
      await (await mesh.fetch('http://reviews/job2')).text();
    });
    expect(downstream.hits[1]?.headers['x-app-plan']).toBe('silver');
  });

  it('baggage: false drops baggage; a malformed traceparent is not forwarded', async () => {
    const { downstream, mesh } = await setup({ headers: ['x-consumer-id'], baggage: false });
    const server = createServer(
      meshHandler(mesh, async (_req, res) => {
        await (await mesh.fetch('http://reviews/')).text();
        res.end();
      }),
    );
    const up = await listen(server);
    closers.push(up.close);
    await (await fetch(up.url, { headers: { ...GATEWAY, traceparent: 'garbage' } })).text();
    const h = downstream.hits[0]?.headers ?? {};
    expect(h.baggage).toBeUndefined();
    expect(h.traceparent).toBeUndefined();
    expect(h.tracestate).toBeUndefined();
    expect(h['x-consumer-id']).toBe('c-42');
  });

  it('mesh.inbound() is connect-style middleware for plain node:http', async () => {
    const { downstream, mesh } = await setup();
    const inbound = mesh.inbound();
    const server = createServer((req, res) =>
      inbound(req, res, async () => {
        await (await mesh.fetch('http://reviews/')).text();
        res.end();
      }),
    );
    const up = await listen(server);
    closers.push(up.close);
    await (await fetch(up.url, { headers: GATEWAY })).text();
    expect(downstream.hits[0]?.headers['x-consumer-id']).toBe('c-42');
  });

  it('rejects a bad context config with the field path', () => {
    expect(() => createMesh({ context: { headers: ['bad header'] }, services: {} } as never)).toThrow(
      /context\.headers\[0\]: "bad header" is not a valid HTTP header name/,
    );
    expect(() =>
      createMesh({
        context: { headers: [], trust: { signature: { algorithms: ['HS256'] } } },
        services: {},
      } as never),
    ).toThrow(/context\.trust\.signature/);
    expect(() =>
      createMesh({
        context: { trust: { signature: { publicKey: '/nonexistent/key.pem' } } },
        services: {},
      } as never),
    ).toThrow(/context\.trust\.signature\.publicKey: is not a readable PEM public key/);
    expect(() =>
      createMesh({ context: { trust: { callers: ['cluster.local/ns/a/sa/b'] } }, services: {} } as never),
    ).toThrow(/context\.trust\.callers\[0\]: "cluster\.local\/ns\/a\/sa\/b" is not a SPIFFE ID/);
    expect(() =>
      createMesh({ authorization: { policies: [{ action: 'AUDIT' }] }, services: {} } as never),
    ).toThrow(/authorization\.policies\[0\]\.action: "AUDIT" is not one of ALLOW, DENY/);
  });
});
