// HTTP/2 upstreams: h2c by prior knowledge and TLS with ALPN h2, against real node:http2 servers
// (real certificates), with the mesh's balancing, retries and telemetry.
import dc from 'node:diagnostics_channel';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CHANNELS,
  createMesh,
  fromIstio,
  type Mesh,
  MeshworkConfigError,
  type RequestMessage,
} from '../src/index.ts';
import { createPki, GATEWAY_ID, type Pki, TRAVELS_ID } from './support/certs.ts';

let pki: Pki;
beforeAll(() => {
  pki = createPki();
});
afterAll(() => pki.cleanup());

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface H2Server {
  address: string;
  /** HTTP/2 sessions (connections) opened to it. */
  sessions: number;
  /** What each request saw: protocol version, :authority, path, body. */
  seen: { version: string; authority: string; path: string; body: string; peer?: string | undefined }[];
}

type H2Handle = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, body: string) => void;

const echo: H2Handle = (req, res) => {
  res.setHeader('x-version', req.httpVersion);
  res.end(`hello over ${req.httpVersion}`);
};

async function listen(
  server: http2.Http2Server | http2.Http2SecureServer,
  handle: H2Handle,
  record: H2Server,
): Promise<H2Server> {
  server.on('session', () => record.sessions++);
  server.on('request', async (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString();
    const cert = (req.socket as unknown as TLSSocket).getPeerCertificate?.();
    const uri = cert?.subjectaltname?.split(/,\s*/).find((s) => s.startsWith('URI:'));
    record.seen.push({
      version: req.httpVersion,
      authority: String(req.headers[':authority'] ?? req.headers.host),
      path: String(req.url),
      body,
      peer: uri?.slice(4),
    });
    handle(req, res, body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  record.address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Open sessions keep close() waiting: end them.
        server.emit('meshwork-test-close');
      }),
  );
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s: http2.ServerHttp2Session) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('meshwork-test-close', () => {
    for (const s of sessions) s.destroy();
  });
  return record;
}

/** An h2c server (cleartext HTTP/2 only: it cannot answer HTTP/1.1). */
function h2cServer(handle: H2Handle = echo): Promise<H2Server> {
  return listen(http2.createServer(), handle, { address: '', sessions: 0, seen: [] });
}

/** An HTTP/2 server over TLS with a certificate for `travels`; HTTP/1.1 too unless h2Only. */
function h2TlsServer(
  handle: H2Handle = echo,
  opts: { h2Only?: boolean; requestCert?: boolean } = {},
): Promise<H2Server> {
  const cert = pki.issue(`travels-${Math.random().toString(36).slice(2)}`, [
    'DNS:travels',
    `URI:${TRAVELS_ID}`,
  ]);
  const server = http2.createSecureServer({
    cert: cert.cert,
    key: cert.key,
    allowHTTP1: !opts.h2Only,
    ...(opts.requestCert ? { requestCert: true, rejectUnauthorized: true, ca: pki.ca } : {}),
  });
  return listen(server, handle, { address: '', sessions: 0, seen: [] });
}

function mesh(config: Record<string, unknown>): Mesh {
  const m = createMesh({ env: {}, ...config } as never);
  cleanups.push(() => m.close());
  return m;
}

const UPGRADE = { connectionPool: { http: { h2UpgradePolicy: 'UPGRADE' } } };

async function text(m: Mesh, url: string, init?: RequestInit): Promise<string> {
  const res = await m.fetch(url, init);
  expect(res.status).toBe(200);
  return res.text();
}

describe('h2c by prior knowledge (h2UpgradePolicy: UPGRADE in cleartext)', () => {
  it('speaks HTTP/2 from the first byte to a server that only speaks HTTP/2; :authority is the service', async () => {
    const s = await h2cServer();
    const m = mesh({ services: { travels: { discovery: { static: [s.address] }, trafficPolicy: UPGRADE } } });
    expect(await text(m, 'http://travels/trips?from=AMS')).toBe('hello over 2.0');
    expect(await text(m, 'http://travels/book', { method: 'POST', body: 'seat 12A' })).toBe('hello over 2.0');
    expect(s.seen).toEqual([
      { version: '2.0', authority: 'travels', path: '/trips?from=AMS', body: '', peer: undefined },
      { version: '2.0', authority: 'travels', path: '/book', body: 'seat 12A', peer: undefined },
    ]);
  });

  it('without UPGRADE the mesh speaks HTTP/1.1 (Istio’s default), which an h2c-only server cannot answer', async () => {
    const s = await h2cServer();
    const m = mesh({
      services: { travels: { discovery: { static: [s.address] }, retries: { attempts: 0 } } },
    });
    const err = await m.fetch('http://travels/x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(s.seen).toHaveLength(0);
  });

  it('multiplexes concurrent requests on one connection per endpoint, balanced over the endpoints', async () => {
    const a = await h2cServer();
    const b = await h2cServer();
    const m = mesh({
      services: {
        travels: {
          discovery: { static: [a.address, b.address] },
          trafficPolicy: { ...UPGRADE, loadBalancer: { simple: 'ROUND_ROBIN' } },
        },
      },
    });
    await text(m, 'http://travels/warm'); // one connection each, before the burst
    await text(m, 'http://travels/warm');
    const all = await Promise.all(Array.from({ length: 60 }, (_, i) => text(m, `http://travels/${i}`)));
    expect(all.every((t) => t === 'hello over 2.0')).toBe(true);
    expect(a.seen.length + b.seen.length).toBe(62);
    expect(a.seen.length).toBeGreaterThan(20);
    expect(b.seen.length).toBeGreaterThan(20);
    expect([a.sessions, b.sessions]).toEqual([1, 1]);
  });

  it('retries a refused stream (REFUSED_STREAM), even a POST: it provably was not processed', async () => {
    const good = await h2cServer();
    // The refusing server resets every stream before its handler runs.
    const refuser = http2.createServer();
    refuser.on('stream', (stream) => {
      stream.on('error', () => {}); // the server's side of the reset
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    });
    refuser.listen(0, '127.0.0.1');
    await once(refuser, 'listening');
    cleanups.push(() => new Promise<void>((r) => refuser.close(() => r())));
    let refused = 0;
    refuser.on('stream', () => refused++);
    const refuserAddress = `127.0.0.1:${(refuser.address() as AddressInfo).port}`;
    const m = mesh({
      services: {
        travels: {
          discovery: { static: [refuserAddress, good.address] },
          trafficPolicy: {
            ...UPGRADE,
            loadBalancer: { simple: 'ROUND_ROBIN' },
            outlierDetection: { enabled: false },
          },
        },
      },
    });
    for (let i = 0; i < 4; i++)
      expect(await text(m, 'http://travels/book', { method: 'POST', body: `order ${i}` })).toBe(
        'hello over 2.0',
      );
    expect(refused).toBeGreaterThan(0);
    expect(good.seen.map((x) => x.body)).toEqual(['order 0', 'order 1', 'order 2', 'order 3']);
  });

  it('retries 5xx answers and publishes the request and its attempts as over HTTP/1.1', async () => {
    let n = 0;
    const s = await h2cServer((_req, res) => {
      res.statusCode = n++ === 0 ? 503 : 200;
      res.end(String(res.statusCode));
    });
    const ends: RequestMessage[] = [];
    const fn = (msg: unknown) => ends.push(msg as RequestMessage);
    dc.subscribe(CHANNELS.requestEnd, fn);
    cleanups.push(() => void dc.unsubscribe(CHANNELS.requestEnd, fn));
    const m = mesh({
      services: {
        travels: {
          discovery: { static: [s.address] },
          trafficPolicy: UPGRADE,
          retries: { attempts: 2, retryOn: '5xx' },
        },
      },
    });
    const res = await request('http://travels/x', { dispatcher: m.dispatcher });
    expect(res.statusCode).toBe(200);
    await res.body.text();
    expect(ends.map((e) => [e.service, e.statusCode, e.attempts, e.endpoint])).toEqual([
      ['travels', 200, 2, s.address],
    ]);
    const ep = m.snapshot().services.travels?.endpoints[0];
    expect([ep?.attempts, ep?.responses5xx]).toEqual([2, 1]);
  });

  it('streams large bodies both ways', async () => {
    const s = await h2cServer((_req, res, body) => {
      res.end(body.toUpperCase());
    });
    const m = mesh({ services: { travels: { discovery: { static: [s.address] }, trafficPolicy: UPGRADE } } });
    const big = 'abcdefgh'.repeat(512 * 1024); // 4 MiB
    const echoed = await text(m, 'http://travels/echo', { method: 'PUT', body: big });
    expect(echoed.length).toBe(big.length);
    expect(echoed).toBe(big.toUpperCase());
  });

  it('mesh.agent clients reach an h2c upstream too (HTTP/1.1 in memory, HTTP/2 on the wire)', async () => {
    const s = await h2cServer();
    const m = mesh({ services: { travels: { discovery: { static: [s.address] }, trafficPolicy: UPGRADE } } });
    const body = await new Promise<string>((resolve, reject) => {
      http
        .get('http://travels/x', { agent: m.agent }, (res) => {
          let d = '';
          res.on('data', (c) => {
            d += c;
          });
          res.on('end', () => resolve(d));
        })
        .on('error', reject);
    });
    expect(body).toBe('hello over 2.0');
  });
});

describe('HTTP/2 over TLS (ALPN h2)', () => {
  const tls = () => ({ mode: 'SIMPLE', caCertificates: pki.ca, subjectAltNames: [TRAVELS_ID] });

  it('UPGRADE offers h2 by ALPN; the server picks it; the server identity is verified as before', async () => {
    const s = await h2TlsServer();
    const m = mesh({
      services: {
        travels: { discovery: { static: [s.address] }, trafficPolicy: { ...UPGRADE, tls: tls() } },
      },
    });
    expect(await text(m, 'http://travels/x')).toBe('hello over 2.0');
    expect(await text(m, 'https://travels/y')).toBe('hello over 2.0');
    expect(s.sessions).toBe(1);
  });

  it('by default a TLS service stays on HTTP/1.1, even with a server that could speak HTTP/2', async () => {
    const s = await h2TlsServer();
    const m = mesh({
      services: { travels: { discovery: { static: [s.address] }, trafficPolicy: { tls: tls() } } },
    });
    expect(await text(m, 'http://travels/x')).toBe('hello over 1.1');
  });

  it('tls.alpnProtocols negotiates h2 without UPGRADE; useClientProtocol keeps HTTP/1.1 whatever else is set', async () => {
    const s = await h2TlsServer();
    const m = mesh({
      services: {
        alpn: {
          discovery: { static: [s.address] },
          trafficPolicy: { tls: { ...tls(), alpnProtocols: ['h2', 'http/1.1'] } },
        },
        client: {
          discovery: { static: [s.address] },
          trafficPolicy: {
            tls: tls(),
            connectionPool: { http: { h2UpgradePolicy: 'UPGRADE', useClientProtocol: true } },
          },
        },
      },
    });
    expect(await text(m, 'http://alpn/x')).toBe('hello over 2.0');
    expect(await text(m, 'http://client/x')).toBe('hello over 1.1');
  });

  it('mTLS (MUTUAL) over HTTP/2: the server sees the client identity', async () => {
    const s = await h2TlsServer(echo, { h2Only: true, requestCert: true });
    const client = pki.issue('gateway-h2', [`URI:${GATEWAY_ID}`]);
    const m = mesh({
      services: {
        travels: {
          discovery: { static: [s.address] },
          trafficPolicy: {
            ...UPGRADE,
            tls: { ...tls(), mode: 'MUTUAL', clientCertificate: client.certPath, privateKey: client.keyPath },
          },
        },
      },
    });
    expect(await text(m, 'http://travels/x')).toBe('hello over 2.0');
    expect(s.seen[0]?.peer).toBe(GATEWAY_ID);
  });
});

describe('HTTP/2 config', () => {
  it('refuses alpnProtocols without TLS and unknown protocols, naming the path', () => {
    const bad = (tls: Record<string, unknown>) => () =>
      createMesh({
        env: {},
        services: { travels: { discovery: { static: ['10.0.0.1:80'] }, trafficPolicy: { tls } } },
      });
    expect(bad({ alpnProtocols: ['h2'] })).toThrow(
      /services\.travels\.trafficPolicy\.tls\.alpnProtocols: .*needs TLS/,
    );
    expect(bad({ mode: 'SIMPLE', alpnProtocols: ['h3'] })).toThrow(MeshworkConfigError);
    expect(bad({ mode: 'SIMPLE', alpnProtocols: ['h2', 'h2'] })).toThrow(/lists a protocol twice/);
    expect(() =>
      createMesh({
        env: {},
        services: {
          travels: {
            discovery: { static: ['10.0.0.1:80'] },
            trafficPolicy: { connectionPool: { http: { h2UpgradePolicy: 'ALWAYS' } } },
          },
        },
      } as never),
    ).toThrow(/h2UpgradePolicy/);
  });

  it('fromIstio carries h2UpgradePolicy, useClientProtocol and maxConcurrentStreams', () => {
    const istio = fromIstio(`
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: travels }
spec:
  host: travels
  trafficPolicy:
    connectionPool:
      http: { h2UpgradePolicy: UPGRADE, useClientProtocol: false, maxConcurrentStreams: 50 }
`);
    expect(
      (istio.services.travels as { trafficPolicy?: { connectionPool?: unknown } }).trafficPolicy
        ?.connectionPool,
    ).toEqual({
      http: {
        h2UpgradePolicy: 'UPGRADE',
        useClientProtocol: false,
        maxConcurrentStreams: 50,
      },
    });
  });
});
