// mesh.agent: node:http-based clients (http.request, axios, got, node-fetch, superagent) through
// the mesh, against real upstream servers on 127.0.0.1.
import { createHash, randomBytes } from 'node:crypto';
import dc from 'node:diagnostics_channel';
import { once } from 'node:events';
import http from 'node:http';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { SpanKind, trace } from '@opentelemetry/api';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import axios from 'axios';
import got from 'got';
import nodeFetch from 'node-fetch';
import { afterEach, describe, expect, it } from 'vitest';
import { CHANNELS, createMesh, isMeshworkError, type Mesh, type RequestMessage } from '../src/index.ts';
import { installOtel } from './support/otel.ts';
import { named, refusedAddress, startServer, type TestServer } from './support/servers.ts';

interface SuperagentResponse {
  status: number;
  text: string;
}
interface SuperagentRequest extends Promise<SuperagentResponse> {
  agent(a: http.Agent): SuperagentRequest;
  set(name: string, value: string): SuperagentRequest;
  send(body: string): SuperagentRequest;
}
// superagent ships no types: the little of it used here.
const superagent = createRequire(import.meta.url)('superagent') as {
  get(url: string): SuperagentRequest;
  post(url: string): SuperagentRequest;
};

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server(handle?: Parameters<typeof startServer>[0]): Promise<TestServer> {
  const s = await startServer(handle);
  cleanups.push(() => s.close());
  return s;
}

function mesh(config: Record<string, unknown>): Mesh {
  const m = createMesh({ env: {}, ...config } as never);
  cleanups.push(() => m.close());
  return m;
}

function oneService(
  addresses: string[],
  svc: Record<string, unknown> = {},
  extra: Record<string, unknown> = {},
) {
  return mesh({ services: { travels: { discovery: { static: addresses }, ...svc } }, ...extra });
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  reusedSocket: boolean;
}

/** http.request through the agent; resolves with the whole answer. */
function call(
  url: string,
  agent: http.Agent,
  opts: http.RequestOptions & { body?: string | Buffer | Readable } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const { body, ...options } = opts;
    const req = http.request(url, { agent, ...options }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks),
          reusedSocket: req.reusedSocket,
        }),
      );
    });
    req.on('error', reject);
    if (body instanceof Readable) body.pipe(req);
    else req.end(body);
  });
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('node:http clients through mesh.agent', () => {
  it('http.request: method, path, headers and body arrive as sent; Host is the service', async () => {
    const s = await server((req, res, body) => {
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.setHeader('x-echo', String(req.headers['x-custom']));
      res.end(JSON.stringify({ method: req.method, url: req.url, host: req.headers.host, body }));
    });
    const m = oneService([s.address]);
    const r = await call('http://travels/trips?from=AMS', m.agent, {
      method: 'PUT',
      headers: { 'x-custom': 'v', 'content-type': 'text/plain' },
      body: 'hello',
    });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body.toString())).toEqual({
      method: 'PUT',
      url: '/trips?from=AMS',
      host: 'travels',
      body: 'hello',
    });
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(r.headers['x-echo']).toBe('v');
    expect(s.hits[0]?.headers['content-type']).toBe('text/plain');
    // A port in the URL is kept in Host, as the caller wrote it.
    const r2 = await call('http://travels:8080/x', m.agent);
    expect(JSON.parse(r2.body.toString()).host).toBe('travels:8080');
  });

  it('reuses its in-memory connections (keep-alive) and answers HEAD and 204 without a body', async () => {
    const s = await server((req, res) => {
      if (req.url === '/empty') {
        res.statusCode = 204;
        res.end();
        return;
      }
      res.setHeader('content-length', '5');
      res.end(req.method === 'HEAD' ? undefined : 'hello');
    });
    const m = oneService([s.address]);
    const first = await call('http://travels/a', m.agent);
    const second = await call('http://travels/a', m.agent);
    expect(first.body.toString()).toBe('hello');
    expect(second.reusedSocket).toBe(true);
    const head = await call('http://travels/a', m.agent, { method: 'HEAD' });
    expect(head.headers['content-length']).toBe('5');
    expect(head.body.length).toBe(0);
    const empty = await call('http://travels/empty', m.agent);
    expect(empty.status).toBe(204);
  });

  it('axios (httpAgent), got, node-fetch and superagent all go through the mesh’s routing', async () => {
    const v1 = await server(named('v1'));
    const v2 = await server(named('v2'));
    const m = mesh({
      services: {
        travels: {
          discovery: {
            static: [
              { address: v1.address, labels: { version: 'v1' } },
              { address: v2.address, labels: { version: 'v2' } },
            ],
          },
          subsets: [
            { name: 'v1', labels: { version: 'v1' } },
            { name: 'v2', labels: { version: 'v2' } },
          ],
          http: [
            {
              match: [{ headers: { 'x-canary': { exact: '1' } } }],
              route: [{ destination: { subset: 'v2' } }],
            },
            { route: [{ destination: { subset: 'v1' } }] },
          ],
        },
      },
    });
    const ax = axios.create({ httpAgent: m.agent, proxy: false });
    expect((await ax.get('http://travels/x', { responseType: 'text' })).data).toBe('v1');
    expect(
      (await ax.get('http://travels/x', { headers: { 'x-canary': '1' }, responseType: 'text' })).data,
    ).toBe('v2');
    expect(await got('http://travels/x', { agent: { http: m.agent } }).text()).toBe('v1');
    expect(
      await got('http://travels/x', { agent: { http: m.agent }, headers: { 'x-canary': '1' } }).text(),
    ).toBe('v2');
    expect(await (await nodeFetch('http://travels/x', { agent: m.agent })).text()).toBe('v1');
    expect(
      await (await nodeFetch('http://travels/x', { agent: m.agent, headers: { 'x-canary': '1' } })).text(),
    ).toBe('v2');
    expect((await superagent.get('http://travels/x').agent(m.agent)).text).toBe('v1');
    expect((await superagent.get('http://travels/x').agent(m.agent).set('x-canary', '1')).text).toBe('v2');
    const posted = await superagent.post('http://travels/x').agent(m.agent).send('body');
    expect(posted.status).toBe(200);
    expect(v1.hits.map((h) => h.method)).toEqual(['GET', 'GET', 'GET', 'GET', 'POST']);
    expect(v2.hits).toHaveLength(4);
    // Every request was a mesh request: the endpoints' own counters saw them.
    const eps = m.snapshot().services.travels?.endpoints ?? [];
    expect(eps.reduce((n, e) => n + e.attempts, 0)).toBe(9);
  });

  it('streams a large request body to the upstream as it is written, and it arrives whole', async () => {
    let firstChunkSeen!: () => void;
    const firstChunk = new Promise<void>((r) => {
      firstChunkSeen = r;
    });
    const got: Buffer[] = [];
    const s = await server();
    s.server.removeAllListeners('request');
    s.server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      req.on('data', (c: Buffer) => {
        got.push(c);
        firstChunkSeen();
      });
      req.on('end', () => res.end(sha(Buffer.concat(got))));
    });
    const m = oneService([s.address]);
    const payload = randomBytes(24 * 1024 * 1024);
    let sentAll = false;
    async function* body() {
      yield payload.subarray(0, 1 << 20);
      // The upstream has bytes before the client has written the rest: streamed, not buffered.
      await firstChunk;
      for (let off = 1 << 20; off < payload.length; off += 1 << 20)
        yield payload.subarray(off, off + (1 << 20));
      sentAll = true;
    }
    const r = await call('http://travels/upload', m.agent, { method: 'POST', body: Readable.from(body()) });
    expect(sentAll).toBe(true);
    expect(r.body.toString()).toBe(sha(payload));
  });

  it('streams a large response body back as it arrives, with backpressure, whole', async () => {
    const payload = randomBytes(32 * 1024 * 1024);
    let release!: () => void;
    const released = new Promise<void>((r) => {
      release = r;
    });
    const s = await server(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write(payload.subarray(0, 65536));
      await released;
      for (let off = 65536; off < payload.length; off += 65536) {
        if (!res.write(payload.subarray(off, off + 65536))) await once(res, 'drain');
      }
      res.end();
    });
    const m = oneService([s.address]);
    const chunks: Buffer[] = [];
    const done = new Promise<void>((resolve, reject) => {
      const req = http.get('http://travels/download', { agent: m.agent }, (res) => {
        res.once('data', () => release()); // the first bytes came before the upstream finished
        // A slow reader: pause now and then; the upstream is held back, nothing is lost.
        let n = 0;
        res.on('data', (c: Buffer) => {
          chunks.push(c);
          if (++n % 50 === 0) {
            res.pause();
            setTimeout(() => res.resume(), 5);
          }
        });
        res.on('end', resolve);
        res.on('error', reject);
      });
      req.on('error', reject);
    });
    await done;
    expect(sha(Buffer.concat(chunks))).toBe(sha(payload));
  });

  it('retries as mesh.fetch does: a 503 then a refused endpoint, and the client sees the 200', async () => {
    let n = 0;
    const flaky = await server((_req, res) => {
      res.statusCode = n++ === 0 ? 503 : 200;
      res.end(String(res.statusCode));
    });
    const m = oneService([flaky.address], { retries: { attempts: 2, retryOn: '5xx' } });
    const r = await call('http://travels/x', m.agent, {
      method: 'POST',
      headers: { 'idempotency-key': 'k1' },
      body: 'b',
    });
    expect(r.status).toBe(200);
    expect(flaky.hits.map((h) => h.body)).toEqual(['b', 'b']);
    const refused = await refusedAddress();
    const good = await server(named('good'));
    const m2 = oneService([refused, good.address], {
      retries: { attempts: 3, retryOn: 'connect-failure' },
      trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } },
    });
    for (let i = 0; i < 4; i++)
      expect((await call('http://travels/x', m2.agent)).body.toString()).toBe('good');
  });

  it('carries the request context (withContext) and publishes the request on the meshwork channels', async () => {
    const s = await server();
    const m = oneService([s.address], {}, { context: { headers: ['x-app-plan'] } });
    const ends: RequestMessage[] = [];
    const fn = (msg: unknown) => ends.push(msg as RequestMessage);
    dc.subscribe(CHANNELS.requestEnd, fn);
    cleanups.push(() => void dc.unsubscribe(CHANNELS.requestEnd, fn));
    const trace = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    await m.withContext({ headers: { 'x-app-plan': 'gold', traceparent: trace } }, async () => {
      // The context is taken where the request is made, even when it is sent later.
      const p = call('http://travels/ctx', m.agent);
      await p;
    });
    // Outside any context: nothing carried.
    await call('http://travels/none', m.agent);
    expect(s.hits[0]?.headers['x-app-plan']).toBe('gold');
    expect(s.hits[0]?.headers.traceparent).toBe(trace);
    expect(s.hits[1]?.headers['x-app-plan']).toBeUndefined();
    expect(ends.map((e) => [e.service, e.path, e.statusCode, e.attempts])).toEqual([
      ['travels', '/ctx', 200, 1],
      ['travels', '/none', 200, 1],
    ]);
  });

  it('fails with the mesh’s own error, in the one error shape: unknown service, refused, timeout', async () => {
    const s = await server();
    const m = oneService([s.address]);
    const unknown = await call('http://elsewhere/x', m.agent).catch((e: unknown) => e);
    expect(isMeshworkError(unknown, 'MESHWORK_ERR_UNKNOWN_SERVICE')).toBe(true);
    expect(unknown).toMatchObject({ attempts: 0, endpoint: undefined });
    const refused = await refusedAddress();
    const m2 = oneService([refused], { retries: { attempts: 1, retryOn: 'connect-failure' } });
    const err = await call('http://travels/x', m2.agent).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ECONNREFUSED', attempts: 2, endpoint: refused });
    const hang = await server(() => {});
    const m3 = oneService([hang.address], { timeout: '150ms' });
    const timeout = await call('http://travels/x', m3.agent).catch((e: unknown) => e);
    expect(isMeshworkError(timeout, 'MESHWORK_ERR_TIMEOUT')).toBe(true);
    expect(timeout).toMatchObject({ attempts: 1, endpoint: hang.address });
    // axios hands it on as its cause-bearing error, with the same code.
    const ax = await axios
      .get('http://travels/x', { httpAgent: m2.agent, proxy: false })
      .catch((e: unknown) => e);
    expect((ax as { code?: string }).code).toBe('ECONNREFUSED');
  });

  it('refuses upgrades and CONNECT with a clear error, before anything is sent', async () => {
    const s = await server();
    const m = oneService([s.address]);
    const upgrade = await call('http://travels/ws', m.agent, {
      headers: { connection: 'upgrade', upgrade: 'websocket' },
    }).catch((e: unknown) => e);
    expect(isMeshworkError(upgrade, 'MESHWORK_ERR_UNSUPPORTED_REQUEST')).toBe(true);
    expect((upgrade as Error).message).toMatch(
      /Upgrade request \(websocket\) is not supported through mesh\.agent/,
    );
    const connect = await call('http://travels/', m.agent, {
      method: 'CONNECT',
      path: 'example.com:443',
    }).catch((e: unknown) => e);
    expect(isMeshworkError(connect, 'MESHWORK_ERR_UNSUPPORTED_REQUEST')).toBe(true);
    expect(s.hits).toHaveLength(0);
  });

  it('passes hosts that are not services straight through when unknownServices is passthrough', async () => {
    const outside = await server(named('outside'));
    const inside = await server(named('inside'));
    const m = oneService([inside.address], {}, { unknownServices: 'passthrough' });
    const r = await call(`http://${outside.address}/x`, m.agent);
    expect(r.body.toString()).toBe('outside');
    expect(outside.hits[0]?.headers.host).toBe(outside.address);
    expect((await call('http://travels/x', m.agent)).body.toString()).toBe('inside');
    expect(m.snapshot().services.travels?.endpoints[0]?.attempts).toBe(1);
  });

  it('aborts the mesh request when the client gives up, and the client’s own timeout works', async () => {
    let closed!: () => void;
    const upstreamClosed = new Promise<void>((r) => {
      closed = r;
    });
    const hang = await server((req) => {
      req.socket.once('close', () => closed());
    });
    const m = oneService([hang.address]);
    const err = await new Promise<Error>((resolve) => {
      const req = http.get('http://travels/slow', { agent: m.agent });
      req.setTimeout(100, () => req.destroy(new Error('client timeout')));
      req.on('error', resolve);
    });
    expect(err.message).toBe('client timeout');
    await upstreamClosed; // the mesh let go of the upstream request
    expect(m.snapshot().services.travels?.endpoints[0]?.inflight).toBe(0);
  });

  it('an upload the upstream breaks off fails the client with the mesh’s error, in its shape', async () => {
    const s = await server();
    s.server.removeAllListeners('request');
    s.server.on('request', (req: http.IncomingMessage) => {
      let n = 0;
      req.on('data', (c: Buffer) => {
        n += c.length;
        if (n > 2_000_000) req.socket.destroy();
      });
    });
    const m = oneService([s.address], { retries: { attempts: 0 } });
    async function* body() {
      for (let i = 0; i < 8; i++) {
        yield Buffer.alloc(1 << 20, 1);
        await sleep(5);
      }
    }
    const err = await call('http://travels/up', m.agent, {
      method: 'POST',
      body: Readable.from(body()),
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ attempts: 1, endpoint: s.address });
    expect(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']).toContain((err as { code?: string }).code);
  });

  it('a response broken mid-body fails the client, never a short body taken for whole', async () => {
    const s = await server((_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('only part');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const m = oneService([s.address]);
    const err = await call('http://travels/x', m.agent).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
  });

  it('after mesh.close(), requests are refused with MESHWORK_ERR_CLOSED', async () => {
    const s = await server();
    const m = oneService([s.address]);
    await call('http://travels/x', m.agent);
    await m.close();
    const err = await call('http://travels/x', m.agent).catch((e: unknown) => e);
    expect(isMeshworkError(err, 'MESHWORK_ERR_CLOSED')).toBe(true);
    await sleep(0);
  });
});

describe('mesh.agent and OpenTelemetry', () => {
  it('meshwork’s request span is a child of the span active where the request was made', async () => {
    const otel = installOtel();
    cleanups.push(() => otel.uninstall());
    const s = await server();
    const m = oneService([s.address]);
    await trace.getTracer('test').startActiveSpan('caller', async (span) => {
      await call('http://travels/x', m.agent);
      span.end();
    });
    const caller = otel.spans().find((x) => x.name === 'caller');
    const mesh = otel.spans().filter((x) => x.instrumentationScope.name === 'meshwork');
    const request = mesh.find((x) => x.kind === SpanKind.INTERNAL);
    const attempt = mesh.find((x) => x.kind === SpanKind.CLIENT);
    expect(request?.parentSpanContext?.spanId).toBe(caller?.spanContext().spanId);
    expect(attempt?.parentSpanContext?.spanId).toBe(request?.spanContext().spanId);
    // The upstream's traceparent names the attempt that reached it.
    expect(s.hits[0]?.headers.traceparent).toContain(attempt?.spanContext().spanId);
  });

  it('with @opentelemetry/instrumentation-http: one traceparent, naming meshwork’s span; no SERVER span for the in-memory hop', async () => {
    const otel = installOtel();
    cleanups.push(() => otel.uninstall());
    const s = await server();
    const m = oneService([s.address]);
    // One instance (node:http is patched once per process when it is required).
    const instrumentation = new HttpInstrumentation();
    try {
      const patched = createRequire(import.meta.url)('node:http') as typeof http;
      expect(isWrapped(patched.request)).toBe(true);
      for (const ignoreMesh of [false, true]) {
        // The documented recipe: leave requests through mesh.agent to meshwork's own span.
        if (ignoreMesh)
          instrumentation.setConfig({ ignoreOutgoingRequestHook: (opts) => opts.agent === m.agent });
        await new Promise<void>((resolve, reject) => {
          patched
            .get('http://travels/x', { agent: m.agent }, (res) => {
              res.resume();
              res.on('end', resolve);
            })
            .on('error', reject);
        });
      }
    } finally {
      instrumentation.disable();
    }
    const spans = otel.spans();
    const byStart = (a: { startTime: [number, number] }, b: { startTime: [number, number] }) =>
      a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1];
    const mesh = spans.filter((x) => x.instrumentationScope.name === 'meshwork');
    const requests = mesh.filter((x) => x.kind === SpanKind.INTERNAL).sort(byStart);
    const attempts = mesh.filter((x) => x.kind === SpanKind.CLIENT).sort(byStart);
    const httpClient = spans.filter(
      (x) => x.instrumentationScope.name !== 'meshwork' && x.kind === SpanKind.CLIENT,
    );
    expect(requests).toHaveLength(2);
    expect(attempts).toHaveLength(2);
    // Without the recipe, instrumentation-http's span of the call is the parent of meshwork's;
    // with it, there is only meshwork's.
    expect(httpClient).toHaveLength(1);
    expect(requests[0]?.parentSpanContext?.spanId).toBe(httpClient[0]?.spanContext().spanId);
    expect(requests[1]?.parentSpanContext).toBeUndefined();
    // The upstream got one traceparent each time, naming meshwork's attempt span; the in-memory
    // server made no SERVER span (the upstream, in this process too, made one per request).
    for (const [i, hit] of s.hits.entries()) {
      expect(typeof hit.headers.traceparent).toBe('string');
      expect(hit.headers.traceparent).toContain(attempts[i]?.spanContext().spanId);
    }
    const servers = spans.filter((x) => x.kind === SpanKind.SERVER).sort(byStart);
    expect(servers.map((x) => x.parentSpanContext?.spanId)).toEqual(
      attempts.map((x) => x.spanContext().spanId),
    );
  });
});

function isWrapped(fn: unknown): boolean {
  return typeof fn === 'function' && (fn as { __wrapped?: boolean }).__wrapped === true;
}
