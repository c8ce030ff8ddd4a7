/**
 * Two meshes, two CAs, one gateway between them (and a third-party site outside any mesh): the
 * east mesh (this process's meshwork) calls services of the west mesh through west's gateways.
 * Everything is real: certificates from two CAs made here, HAProxy passing TLS through on the SNI
 * (AUTO_PASSTHROUGH), a node proxy terminating TLS and forwarding by Host (TERMINATE).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMesh, isMeshworkError, type Mesh, type MeshConfigInput } from '../src/index.ts';
import { type Cert, createPki, createPublicSite, type Pki, type PublicSite } from './support/certs.ts';
import {
  haproxyMissing,
  type RunningGateway,
  startSniGateway,
  startTerminatingGateway,
  type Terminated,
} from './support/gateways.ts';
import { startServer, type TestServer } from './support/servers.ts';
import { startTlsServer, type TlsTestServer } from './support/tls-servers.ts';

const PORTAL = 'spiffe://east.example/ns/travel/sa/portal';
const REVIEWS = 'spiffe://west.example/ns/default/sa/reviews';
const INTRUDER = 'spiffe://west.example/ns/default/sa/intruder';
const WEST_GATEWAY = 'spiffe://west.example/ns/istio-system/sa/eastwest-gateway';
const INGRESS = 'spiffe://west.example/ns/istio-system/sa/ingress-gateway';
const REVIEWS_HOST = 'reviews.default.svc.west.local';
const RATINGS_HOST = 'ratings.default.svc.west.local';
const DETAILS_HOST = 'details.default.svc.west.local';
const FORGED_HOST = 'reviews-copy.default.svc.west.local';
const sni = (subset: string, host: string) => `outbound_.9080_.${subset}_.${host}`;

// haproxy comes with the test setup (Debian's package); a machine without it says so, loudly.
const missing = haproxyMissing();
if (missing) console.warn(`[skip] the cross-mesh gateway tests are SKIPPED: ${missing}`);
const group = missing ? describe.skip : describe;

let east: Pki;
let west: Pki;
let portal: Cert;
let publicSite: PublicSite;
const closers: (() => Promise<void>)[] = [];
let eastWest: RunningGateway;
let ingress: RunningGateway & { seen: Terminated[] };
let weather: TlsTestServer;
let inMesh: TestServer;
let reviewsV1: TlsTestServer;
let details: TestServer;

/** A west workload: TLS with west's certificate; trusts east's CA for its callers (federation). */
async function westWorkload(name: string, spiffeId: string): Promise<TlsTestServer> {
  const c = west.issue(name, [`URI:${spiffeId}`]);
  const s = await startTlsServer(
    { cert: c.cert, key: c.key, ca: east.ca, requestCert: true, rejectUnauthorized: true },
    echo(name),
  );
  closers.push(() => s.close());
  return s;
}

function echo(name: string) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket as TLSSocket;
    res.setHeader('content-type', 'application/json');
    res.end(
      JSON.stringify({ name, host: req.headers.host, sni: socket.servername ?? null, headers: req.headers }),
    );
  };
}

beforeAll(async () => {
  if (missing) return;
  east = createPki('east-ca');
  west = createPki('west-ca');
  portal = east.issue('portal', [`URI:${PORTAL}`]);
  const v1 = await westWorkload('reviews-v1', REVIEWS);
  reviewsV1 = v1;
  const v2 = await westWorkload('reviews-v2', REVIEWS);
  const intruder = await westWorkload('ratings-intruder', INTRUDER);
  // A certificate naming west's reviews identity, but signed by east's CA: only west's bundle vouches for west.
  const f = east.issue('forged', [`URI:${REVIEWS}`]);
  const forged = await startTlsServer(
    { cert: f.cert, key: f.key, ca: east.ca, requestCert: true },
    echo('forged'),
  );
  closers.push(() => forged.close());
  eastWest = await startSniGateway({
    [sni('', REVIEWS_HOST)]: v1.address,
    [sni('v1', REVIEWS_HOST)]: v1.address,
    [sni('v2', REVIEWS_HOST)]: v2.address,
    // The west mesh's gateway sends ratings to a workload with a valid west certificate but another identity.
    [sni('', RATINGS_HOST)]: intruder.address,
    [sni('', FORGED_HOST)]: forged.address,
  });
  closers.push(() => eastWest.stop());
  details = await startServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ name: 'details', host: req.headers.host, headers: req.headers }));
  });
  closers.push(() => details.close());
  const broken = await startServer((_req, res) => {
    res.statusCode = 500;
    res.end('broken');
  });
  closers.push(() => broken.close());
  const gw = west.issue('ingress', [`URI:${INGRESS}`, 'DNS:gateway.west.example']);
  ingress = await startTerminatingGateway(
    { cert: gw.cert, key: gw.key, ca: east.ca, requestCert: true, rejectUnauthorized: true },
    { [DETAILS_HOST]: details.address, 'broken.default.svc.west.local': broken.address },
  );
  closers.push(() => ingress.stop());
  publicSite = createPublicSite(['api.weather.example']);
  weather = await startTlsServer({ cert: publicSite.chain, key: publicSite.key }, echo('weather'));
  closers.push(() => weather.close());
  inMesh = await startServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ name: 'flights', headers: req.headers }));
  });
  closers.push(() => inMesh.close());
});

afterAll(async () => {
  for (const c of closers.reverse()) await c();
  east?.cleanup();
  west?.cleanup();
  publicSite?.cleanup();
});

/**
 * Client mTLS of the east workload towards a west workload: the mesh identity's certificate,
 * verified against west's bundle only (trustDomain), as the remote identity.
 */
function toWest(subjectAltNames: string[]) {
  return { mode: 'ISTIO_MUTUAL' as const, trustDomain: 'west.example', subjectAltNames };
}

/** The east workload's identity: east's CA for its own domain, west's bundle for west.example. */
function eastIdentity() {
  return { cert: portal.cert, key: portal.key, ca: east.ca, trustBundles: { 'west.example': west.ca } };
}

function passthrough(extra: Record<string, unknown> = {}) {
  return { mode: 'AUTO_PASSTHROUGH' as const, address: eastWest.address, port: 9080, ...extra };
}

function eastMesh(services: MeshConfigInput['services']): Mesh {
  const m = createMesh({ identity: eastIdentity(), context: { headers: ['x-app-id', 'x-plan'] }, services });
  closers.push(() => m.close());
  return m;
}

async function errorOf(p: Promise<unknown>): Promise<any> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

const CONTEXT = {
  headers: {
    'x-app-id': 'app-7',
    'x-plan': 'gold',
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  },
};

group('AUTO_PASSTHROUGH: through the east-west gateway, TLS end to end to the remote workload', () => {
  function reviewsMesh() {
    return eastMesh({
      [REVIEWS_HOST]: {
        gateway: passthrough(),
        trafficPolicy: { tls: toWest([REVIEWS]) },
        subsets: [
          { name: 'v1', labels: { version: 'v1' } },
          { name: 'v2', labels: { version: 'v2' } },
        ],
        http: [
          {
            match: [{ headers: { 'x-canary': { exact: '1' } } }],
            route: [{ destination: { host: REVIEWS_HOST, subset: 'v2' } }],
          },
          { route: [{ destination: { host: REVIEWS_HOST, subset: 'v1' } }] },
        ],
      },
    });
  }

  it('reaches the subset the route picks, with Istio SNI; the workload sees the east identity; Host is kept', async () => {
    const m = reviewsMesh();
    const a = (await (await m.fetch(`http://${REVIEWS_HOST}/reviews/1`)).json()) as any;
    expect(a).toMatchObject({ name: 'reviews-v1', host: REVIEWS_HOST, sni: sni('v1', REVIEWS_HOST) });
    const b = (await (
      await m.fetch(`http://${REVIEWS_HOST}/reviews/1`, { headers: { 'x-canary': '1' } })
    ).json()) as any;
    expect(b).toMatchObject({ name: 'reviews-v2', host: REVIEWS_HOST, sni: sni('v2', REVIEWS_HOST) });
    // Alternating subsets over the one gateway address: each SNI keeps its own connections.
    for (let i = 0; i < 4; i++) {
      const canary = i % 2 === 1;
      const r = (await (
        await m.fetch(`http://${REVIEWS_HOST}/`, { headers: canary ? { 'x-canary': '1' } : {} })
      ).json()) as any;
      expect(r.name).toBe(canary ? 'reviews-v2' : 'reviews-v1');
    }
    const snap = m.snapshot().services[REVIEWS_HOST];
    // Every connection went to the gateway's address, none to a workload's.
    expect(snap?.endpoints.map((e: { address: string }) => e.address)).toEqual([eastWest.address]);
    expect(snap?.tls).toMatchObject({
      mode: 'ISTIO_MUTUAL',
      gateway: 'AUTO_PASSTHROUGH',
      identityFailures: 0,
    });
  });

  it("the client certificate reached the workload itself: the gateway never terminated TLS (the workload's peer is east's identity)", async () => {
    const before = reviewsV1.peers.length;
    const m = eastMesh({
      [REVIEWS_HOST]: { gateway: passthrough(), trafficPolicy: { tls: toWest([REVIEWS]) } },
    });
    const r = (await (await m.fetch(`http://${REVIEWS_HOST}/`)).json()) as any;
    expect(r).toMatchObject({ name: 'reviews-v1', sni: sni('', REVIEWS_HOST) });
    // The workload verified east's certificate itself (against east's CA): TLS ended there.
    expect(reviewsV1.peers.slice(before)).toEqual([PORTAL]);
  });

  it("verifies the remote workload's identity, not the gateway's: an impostor behind the gateway is refused", async () => {
    const m = eastMesh({
      [RATINGS_HOST]: {
        gateway: passthrough(),
        trafficPolicy: { tls: toWest(['spiffe://west.example/ns/default/sa/ratings']) },
      },
    });
    const err = await errorOf(m.fetch(`http://${RATINGS_HOST}/`));
    expect(isMeshworkError(err, 'MESHWORK_ERR_TLS_IDENTITY')).toBe(true);
    expect(err.presented).toContain(`URI:${INTRUDER}`);
    // Expecting the gateway's identity fails too: the server on the other end is the workload.
    const g = eastMesh({
      [REVIEWS_HOST]: { gateway: passthrough(), trafficPolicy: { tls: toWest([WEST_GATEWAY]) } },
    });
    const err2 = await errorOf(g.fetch(`http://${REVIEWS_HOST}/`));
    expect(isMeshworkError(err2, 'MESHWORK_ERR_TLS_IDENTITY')).toBe(true);
    expect(err2.presented).toContain(`URI:${REVIEWS}`);
  });

  it("a workload whose certificate claims the right identity but is not signed by west's bundle is refused", async () => {
    const m = eastMesh({
      [FORGED_HOST]: {
        gateway: passthrough(),
        trafficPolicy: { tls: toWest([REVIEWS]) },
        retries: { attempts: 0 },
      },
    });
    const err = await errorOf(m.fetch(`http://${FORGED_HOST}/`));
    expect(`${err.cause?.code} ${err.cause?.message}`).toMatch(/UNABLE_TO_VERIFY|SELF_SIGNED_CERT_IN_CHAIN/);
  });

  it('a service the gateway does not route (wrong SNI) is refused by the gateway; an unconfigured one by the mesh', async () => {
    const m = eastMesh({
      [REVIEWS_HOST]: {
        gateway: passthrough({ host: 'reviews.other.svc.west.local' }),
        trafficPolicy: { tls: toWest([REVIEWS]) },
        retries: { attempts: 0 },
      },
    });
    // HAProxy has no backend for that SNI: it closes the connection during the handshake.
    const err = await errorOf(m.fetch(`http://${REVIEWS_HOST}/`));
    expect(err.code).toBe('ECONNRESET');
    expect(err.cause.message).toMatch(/before secure TLS connection was established/);
    const err2 = await errorOf(m.fetch('http://details.default.svc.west.local/'));
    expect(isMeshworkError(err2, 'MESHWORK_ERR_UNKNOWN_SERVICE')).toBe(true);
  });

  it('without the gateway setting, the same TLS to the gateway (SNI = the host name) gets nowhere', async () => {
    const m = eastMesh({
      [REVIEWS_HOST]: {
        discovery: { static: [eastWest.address] },
        trafficPolicy: { tls: toWest([REVIEWS]) },
        retries: { attempts: 0 },
      },
    });
    const err = await errorOf(m.fetch(`http://${REVIEWS_HOST}/`));
    expect(err.code).toBe('ECONNRESET');
    expect(err.cause.message).toMatch(/before secure TLS connection was established/);
  });
});

group('TERMINATE: TLS to the gateway, verified as the gateway, which forwards by Host', () => {
  function detailsMesh(subjectAltNames: string[], extra: Record<string, unknown> = {}) {
    return eastMesh({
      [DETAILS_HOST]: {
        gateway: {
          mode: 'TERMINATE',
          address: ingress.address,
          subjectAltNames,
          tls: { mode: 'ISTIO_MUTUAL', trustDomain: 'west.example' },
        },
        ...extra,
      },
    });
  }

  it("reaches the service behind the gateway; the gateway saw east's certificate; Host is kept", async () => {
    const before = ingress.seen.length;
    const m = detailsMesh([INGRESS]);
    const res = await m.fetch(`http://${DETAILS_HOST}/details/3`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ name: 'details', host: DETAILS_HOST });
    expect(ingress.seen.slice(before)).toEqual([{ host: DETAILS_HOST, sni: DETAILS_HOST, client: PORTAL }]);
  });

  it("the gateway's own identity is verified: another one is refused before anything is sent", async () => {
    const before = ingress.seen.length;
    const m = detailsMesh(['spiffe://west.example/ns/istio-system/sa/someone-else']);
    const err = await errorOf(m.fetch(`http://${DETAILS_HOST}/`));
    expect(isMeshworkError(err, 'MESHWORK_ERR_TLS_IDENTITY')).toBe(true);
    expect(ingress.seen.length).toBe(before);
  });

  it('a DNS name works as the gateway identity too', async () => {
    const m = detailsMesh(['gateway.west.example']);
    expect((await m.fetch(`http://${DETAILS_HOST}/`)).status).toBe(200);
  });

  it("the remote service's 5xx answers do not eject the gateway (the one address every call goes through)", async () => {
    const host = 'broken.default.svc.west.local';
    const m = eastMesh({
      [host]: {
        gateway: {
          mode: 'TERMINATE',
          address: ingress.address,
          subjectAltNames: [INGRESS],
          tls: { mode: 'ISTIO_MUTUAL', trustDomain: 'west.example' },
        },
        retries: { attempts: 0 },
      },
    });
    for (let i = 0; i < 8; i++) expect((await m.fetch(`http://${host}/`)).status).toBe(500);
    expect(m.snapshot().services[host]?.endpoints).toMatchObject([
      { address: ingress.address, ejected: false },
    ]);
  });

  it('a host the gateway does not forward is refused by the gateway (404)', async () => {
    const m = eastMesh({
      'payments.default.svc.west.local': {
        gateway: {
          mode: 'TERMINATE',
          address: ingress.address,
          subjectAltNames: [INGRESS],
          tls: { mode: 'ISTIO_MUTUAL', trustDomain: 'west.example' },
        },
      },
    });
    expect((await m.fetch('http://payments.default.svc.west.local/')).status).toBe(404);
  });
});

group('a third-party service outside any mesh, with a public-style certificate (SIMPLE TLS)', () => {
  it('verifies the chain (root -> intermediate -> leaf) and the DNS name', async () => {
    const m = eastMesh({
      'api.weather.example': {
        discovery: { static: [weather.address] },
        trafficPolicy: { tls: { mode: 'SIMPLE', caCertificates: publicSite.root } },
        context: { propagate: false },
      },
    });
    const r = await m.withContext(
      CONTEXT,
      async () => (await m.fetch('http://api.weather.example/forecast')).json() as Promise<any>,
    );
    expect(r).toMatchObject({ name: 'weather', host: 'api.weather.example', sni: 'api.weather.example' });
    expect(r.headers['x-app-id']).toBeUndefined();
    expect(r.headers.traceparent).toBe(CONTEXT.headers.traceparent);
  });

  it('a name the certificate does not cover is refused', async () => {
    const m = eastMesh({
      'api.weather.example': {
        discovery: { static: [weather.address] },
        trafficPolicy: {
          tls: { mode: 'SIMPLE', caCertificates: publicSite.root, sni: 'api.climate.example' },
        },
      },
    });
    const err = await errorOf(m.fetch('http://api.weather.example/'));
    expect(isMeshworkError(err, 'MESHWORK_ERR_TLS_IDENTITY')).toBe(true);
  });
});

group('gateway context per destination', () => {
  it('stripped by default behind a gateway, carried in the mesh; trace headers always go', async () => {
    const m = eastMesh({
      flights: { discovery: { static: [inMesh.address] } },
      [REVIEWS_HOST]: { gateway: passthrough(), trafficPolicy: { tls: toWest([REVIEWS]) } },
    });
    const [own, remote] = await m.withContext(CONTEXT, async () => [
      (await (await m.fetch('http://flights/')).json()) as any,
      (await (await m.fetch(`http://${REVIEWS_HOST}/`)).json()) as any,
    ]);
    expect(own.headers).toMatchObject({ 'x-app-id': 'app-7', 'x-plan': 'gold' });
    expect(remote.headers['x-app-id']).toBeUndefined();
    expect(remote.headers['x-plan']).toBeUndefined();
    expect(remote.headers.traceparent).toBe(CONTEXT.headers.traceparent);
  });

  it('carried where allowed: only the listed headers', async () => {
    const m = eastMesh({
      [DETAILS_HOST]: {
        gateway: {
          mode: 'TERMINATE',
          address: ingress.address,
          subjectAltNames: [INGRESS],
          tls: { mode: 'ISTIO_MUTUAL', trustDomain: 'west.example' },
        },
        context: { propagate: ['x-plan'] },
      },
    });
    const r = await m.withContext(
      CONTEXT,
      async () => (await m.fetch(`http://${DETAILS_HOST}/`)).json() as Promise<any>,
    );
    expect(r.headers['x-plan']).toBe('gold');
    expect(r.headers['x-app-id']).toBeUndefined();
  });

  it('also a header the caller set itself, and true carries everything', async () => {
    const m = eastMesh({
      [REVIEWS_HOST]: { gateway: passthrough(), trafficPolicy: { tls: toWest([REVIEWS]) } },
      flights: { discovery: { static: [inMesh.address] }, context: { propagate: false } },
    });
    const r = (await (
      await m.fetch('http://flights/', { headers: { 'x-app-id': 'mine', baggage: 'k=v' } })
    ).json()) as any;
    expect(r.headers['x-app-id']).toBeUndefined();
    expect(r.headers.baggage).toBeUndefined();
    const all = eastMesh({
      [REVIEWS_HOST]: {
        gateway: passthrough(),
        trafficPolicy: { tls: toWest([REVIEWS]) },
        context: { propagate: true },
      },
    });
    const r2 = await all.withContext(
      CONTEXT,
      async () => (await all.fetch(`http://${REVIEWS_HOST}/`)).json() as Promise<any>,
    );
    expect(r2.headers['x-app-id']).toBe('app-7');
  });
});
