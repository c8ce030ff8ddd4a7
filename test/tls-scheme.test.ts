import { request, stream } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createMesh, isMeshworkError, type Mesh } from '../src/index.ts';
import { createPki, type Pki, TRAVELS_ID } from './support/certs.ts';
import { startServer, type TestServer } from './support/servers.ts';
import { startTlsServer, type TlsTestServer } from './support/tls-servers.ts';

let pki: Pki;
let plain: TestServer;
let secure: TlsTestServer;
let meshes: Mesh[] = [];

beforeAll(async () => {
  pki = createPki();
  plain = await startServer();
  const c = pki.issue('travels-tls', [`URI:${TRAVELS_ID}`]);
  secure = await startTlsServer({ cert: c.cert, key: c.key }, (req, res) =>
    res.end(`tls ${(req.socket as { encrypted?: boolean }).encrypted === true}`),
  );
});
afterAll(async () => {
  await plain.close();
  await secure.close();
  pki.cleanup();
});
afterEach(async () => {
  await Promise.all(meshes.map((m) => m.close()));
  meshes = [];
  plain.hits.length = 0;
});

function mesh(services: Record<string, unknown>): Mesh {
  const m = createMesh({ env: {}, services } as never);
  meshes.push(m);
  return m;
}

const simple = () => ({ mode: 'SIMPLE', caCertificates: pki.ca, subjectAltNames: [TRAVELS_ID] });

async function errorOf(p: Promise<unknown>): Promise<any> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('https:// is never sent as cleartext', () => {
  it('https:// to a service with no TLS is refused with MESHWORK_ERR_TLS_REQUIRED; nothing is sent', async () => {
    const m = mesh({ reviews: { discovery: { static: [plain.address] } } });
    const viaFetch = await errorOf(m.fetch('https://reviews/secret?x=1'));
    expect(isMeshworkError(viaFetch, 'MESHWORK_ERR_TLS_REQUIRED')).toBe(true);
    expect(viaFetch.name).toBe('TlsRequiredError');
    expect(viaFetch.service).toBe('reviews');
    expect(viaFetch.message).toContain('service "reviews" has no TLS configured');
    expect(viaFetch.message).toContain('services.reviews.trafficPolicy.tls');
    expect(viaFetch.message).toContain('SIMPLE');
    const viaRequest = await errorOf(request('https://reviews:443/', { dispatcher: m.dispatcher }));
    expect(viaRequest.code).toBe('MESHWORK_ERR_TLS_REQUIRED');
    const viaStream = await errorOf(
      stream('https://reviews/', { dispatcher: m.dispatcher, method: 'GET', opaque: null }, () => {
        throw new Error('no body expected');
      }),
    );
    expect(viaStream.code).toBe('MESHWORK_ERR_TLS_REQUIRED');
    // Uppercase scheme, URL object: same answer.
    expect((await errorOf(m.fetch(new URL('HTTPS://reviews/')))).code).toBe('MESHWORK_ERR_TLS_REQUIRED');
    expect(plain.hits).toHaveLength(0);
    // http:// to the same service is plaintext, as configured.
    expect((await m.fetch('http://reviews/')).status).toBe(200);
    expect(plain.hits).toHaveLength(1);
  });

  it('tls.mode DISABLE is no TLS: https:// is refused too', async () => {
    const m = mesh({
      reviews: { discovery: { static: [plain.address] }, trafficPolicy: { tls: { mode: 'DISABLE' } } },
    });
    expect((await errorOf(m.fetch('https://reviews/'))).code).toBe('MESHWORK_ERR_TLS_REQUIRED');
    expect(plain.hits).toHaveLength(0);
  });

  it('https:// and http:// to a service with TLS both go out over TLS (origination, as Istio does)', async () => {
    const m = mesh({
      travels: { discovery: { static: [secure.address] }, trafficPolicy: { tls: simple() } },
    });
    expect(await (await m.fetch('https://travels/')).text()).toBe('tls true');
    expect(await (await m.fetch('http://travels/')).text()).toBe('tls true');
    const r = await request('https://travels/', { dispatcher: m.dispatcher });
    expect(await r.body.text()).toBe('tls true');
  });

  it('a route that sends an https:// request to a service with no TLS is refused; to one with TLS it works', async () => {
    const m = mesh({
      travels: {
        discovery: { static: [secure.address] },
        trafficPolicy: { tls: simple() },
        http: [
          {
            match: [{ uri: { prefix: '/legacy' } }],
            route: [{ destination: { host: 'legacy' } }],
          },
          { route: [{ destination: {} }] },
        ],
      },
      legacy: { discovery: { static: [plain.address] } },
      gateway: {
        discovery: { static: [plain.address] },
        http: [{ route: [{ destination: { host: 'travels' } }] }],
      },
    });
    const err = await errorOf(m.fetch('https://travels/legacy/x'));
    expect(err.code).toBe('MESHWORK_ERR_TLS_REQUIRED');
    expect(err.service).toBe('legacy');
    expect(plain.hits).toHaveLength(0);
    // http:// on the same route is plaintext to legacy, as configured.
    expect((await m.fetch('http://travels/legacy/x')).status).toBe(200);
    expect(plain.hits).toHaveLength(1);
    // gateway has no TLS, but routes everything to travels, which has: https:// is honoured.
    expect(await (await m.fetch('https://gateway/')).text()).toBe('tls true');
  });

  it('an https:// request is not mirrored to a service with no TLS', async () => {
    const m = mesh({
      travels: {
        discovery: { static: [secure.address] },
        trafficPolicy: { tls: simple() },
        http: [
          { route: [{ destination: {} }], mirror: { host: 'shadow' }, mirrorPercentage: { value: 100 } },
        ],
      },
      shadow: { discovery: { static: [plain.address] } },
    });
    expect(await (await m.fetch('https://travels/')).text()).toBe('tls true');
    expect(await (await m.fetch('http://travels/')).text()).toBe('tls true');
    await new Promise((r) => setTimeout(r, 100));
    // Only the http:// request was copied to the plaintext mirror.
    expect(plain.hits).toHaveLength(1);
  });
});
