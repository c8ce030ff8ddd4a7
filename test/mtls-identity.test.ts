import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createMesh, isMeshworkError, type Mesh } from '../src/index.ts';
import { createPki, GATEWAY_ID, type Pki, TRAVELS_ID } from './support/certs.ts';
import { startTlsServer, type TlsTestServer } from './support/tls-servers.ts';

let pki: Pki;
let servers: TlsTestServer[] = [];
let meshes: Mesh[] = [];

beforeAll(() => {
  pki = createPki();
});
afterAll(() => pki.cleanup());
afterEach(async () => {
  await Promise.all(meshes.map((m) => m.close()));
  await Promise.all(servers.map((s) => s.close()));
  meshes = [];
  servers = [];
});

async function travelsServer(sans = [`URI:${TRAVELS_ID}`, 'DNS:travels.default.svc'], days?: number) {
  const c = pki.issue(`travels-${Math.random().toString(36).slice(2)}`, sans, { days });
  const s = await startTlsServer(
    { cert: c.cert, key: c.key, ca: pki.ca, requestCert: true, rejectUnauthorized: true },
    (req, res) => res.end(`hello ${req.url}`),
  );
  servers.push(s);
  return s;
}

function mesh(address: string, tls: Record<string, unknown>, extra: Record<string, unknown> = {}): Mesh {
  const m = createMesh({
    services: { travels: { discovery: { static: [address] }, trafficPolicy: { tls: tls as never } } },
    ...extra,
  });
  meshes.push(m);
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

describe('trafficPolicy.tls (client mTLS)', () => {
  it('MUTUAL: the URL stays http://service, the server sees the client SPIFFE ID, the SAN matches', async () => {
    const s = await travelsServer();
    const client = pki.issue('gateway', [`URI:${GATEWAY_ID}`]);
    const m = mesh(s.address, {
      mode: 'MUTUAL',
      caCertificates: pki.caPath,
      clientCertificate: client.certPath,
      privateKey: client.key, // a PEM string works as well as a path
      subjectAltNames: [TRAVELS_ID],
    });
    const res = await m.fetch('http://travels/bookings?x=1');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('hello /bookings?x=1');
    expect(s.peers).toEqual([GATEWAY_ID]);
    expect(m.snapshot().services.travels?.tls).toMatchObject({
      mode: 'MUTUAL',
      handshakes: 1,
      identityFailures: 0,
    });
  });

  it('matches a DNS SAN too', async () => {
    const s = await travelsServer();
    const client = pki.issue('gateway2', [`URI:${GATEWAY_ID}`]);
    const m = mesh(s.address, {
      mode: 'MUTUAL',
      caCertificates: pki.ca,
      clientCertificate: client.cert,
      privateKey: client.key,
      subjectAltNames: ['travels.default.svc'],
    });
    expect((await m.fetch('http://travels/')).status).toBe(200);
  });

  it('wrong SAN: fails with MESHWORK_ERR_TLS_IDENTITY naming expected and presented identities', async () => {
    const s = await travelsServer();
    const client = pki.issue('gateway3', [`URI:${GATEWAY_ID}`]);
    const m = mesh(s.address, {
      mode: 'MUTUAL',
      caCertificates: pki.ca,
      clientCertificate: client.cert,
      privateKey: client.key,
      subjectAltNames: ['spiffe://cluster.local/ns/default/sa/reviews'],
    });
    const err = await errorOf(m.fetch('http://travels/'));
    expect(isMeshworkError(err, 'MESHWORK_ERR_TLS_IDENTITY')).toBe(true);
    expect(err.message).toContain('spiffe://cluster.local/ns/default/sa/reviews');
    expect(err.message).toContain(`URI:${TRAVELS_ID}`);
    expect(err.message).toContain('"travels"');
    expect(err.presented).toContain(`URI:${TRAVELS_ID}`);
    expect(s.peers).toEqual([]);
    expect(m.snapshot().services.travels?.tls?.identityFailures).toBe(1);
  });

  it('does not check the hostname: the server cert has no SAN for 127.0.0.1 or "travels", and that is fine', async () => {
    const s = await travelsServer([`URI:${TRAVELS_ID}`]);
    const client = pki.issue('gateway4', [`URI:${GATEWAY_ID}`]);
    const m = mesh(s.address, {
      mode: 'MUTUAL',
      caCertificates: pki.ca,
      clientCertificate: client.cert,
      privateKey: client.key,
      subjectAltNames: [TRAVELS_ID],
    });
    expect((await m.fetch('http://travels/')).status).toBe(200);
  });

  it('SIMPLE without subjectAltNames checks the SNI name (default: the service name)', async () => {
    const s = await startTlsServer({ ...pki.issue('simple', ['DNS:travels']) });
    servers.push(s);
    const m = mesh(s.address, { mode: 'SIMPLE', caCertificates: pki.ca });
    expect((await m.fetch('http://travels/')).status).toBe(200);
    const m2 = mesh(s.address, { mode: 'SIMPLE', caCertificates: pki.ca, sni: 'other.example' });
    const err = await errorOf(m2.fetch('http://travels/'));
    expect(isMeshworkError(err, 'MESHWORK_ERR_TLS_IDENTITY')).toBe(true);
    expect(err.message).toContain('other.example');
  });

  it('expired server certificate: the handshake fails (CERT_HAS_EXPIRED), nothing is sent', async () => {
    const s = await travelsServer([`URI:${TRAVELS_ID}`], -1);
    const client = pki.issue('gateway5', [`URI:${GATEWAY_ID}`]);
    const m = mesh(s.address, {
      mode: 'MUTUAL',
      caCertificates: pki.ca,
      clientCertificate: client.cert,
      privateKey: client.key,
      subjectAltNames: [TRAVELS_ID],
    });
    const err = await errorOf(m.fetch('http://travels/'));
    expect(err.cause?.code ?? err.code).toBe('CERT_HAS_EXPIRED');
    expect(s.peers).toEqual([]);
  });

  it('a server certificate from another CA is refused', async () => {
    const other = createPki('other-ca');
    try {
      const c = other.issue('rogue', [`URI:${TRAVELS_ID}`]);
      const s = await startTlsServer({ cert: c.cert, key: c.key });
      servers.push(s);
      const m = mesh(s.address, { mode: 'SIMPLE', caCertificates: pki.ca, subjectAltNames: [TRAVELS_ID] });
      const err = await errorOf(m.fetch('http://travels/'));
      expect(String(err.cause?.code ?? err.code)).toMatch(
        /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER/,
      );
    } finally {
      other.cleanup();
    }
  });

  it('ISTIO_MUTUAL uses the mesh-wide identity; serverTlsOptions() builds the server side', async () => {
    const serverId = pki.issue('travels-id', [`URI:${TRAVELS_ID}`]);
    const serverMesh = createMesh({
      services: {},
      identity: { cert: serverId.certPath, key: serverId.keyPath, ca: pki.caPath },
    });
    meshes.push(serverMesh);
    const s = await startTlsServer(serverMesh.serverTlsOptions(), (_req, res) => res.end('istio'));
    servers.push(s);
    const clientId = pki.issue('gateway-id', [`URI:${GATEWAY_ID}`]);
    const m = mesh(
      s.address,
      { mode: 'ISTIO_MUTUAL' },
      { identity: { cert: clientId.cert, key: clientId.key, ca: pki.ca } },
    );
    const res = await m.fetch('http://travels/');
    expect(await res.text()).toBe('istio');
    expect(s.peers).toEqual([GATEWAY_ID]);
    expect(m.snapshot().identity?.spiffeId).toBe(GATEWAY_ID);
  });

  it('ISTIO_MUTUAL without subjectAltNames refuses a server outside the trust domain', async () => {
    const c = pki.issue('foreign', ['URI:spiffe://evil.example/ns/default/sa/travels']);
    const s = await startTlsServer({ cert: c.cert, key: c.key });
    servers.push(s);
    const clientId = pki.issue('gateway-id2', [`URI:${GATEWAY_ID}`]);
    const m = mesh(
      s.address,
      { mode: 'ISTIO_MUTUAL' },
      { identity: { cert: clientId.cert, key: clientId.key, ca: pki.ca } },
    );
    const err = await errorOf(m.fetch('http://travels/'));
    expect(isMeshworkError(err, 'MESHWORK_ERR_TLS_IDENTITY')).toBe(true);
    expect(err.message).toContain('spiffe://cluster.local/*');
  });

  it('a server requiring client certificates refuses a mesh without one (SIMPLE)', async () => {
    const s = await travelsServer();
    const m = mesh(s.address, { mode: 'SIMPLE', caCertificates: pki.ca, subjectAltNames: [TRAVELS_ID] });
    await expect(m.fetch('http://travels/')).rejects.toThrow();
    expect(s.peers).toEqual([]);
  });
});

describe('trafficPolicy.tls config errors name the field', () => {
  const svc =
    (tls: unknown, extra = {}) =>
    () =>
      createMesh({
        services: {
          travels: { discovery: { static: ['127.0.0.1:1'] }, trafficPolicy: { tls: tls as never } },
        },
        ...extra,
      });

  it('MUTUAL without a client certificate', () => {
    expect(svc({ mode: 'MUTUAL', caCertificates: 'x' })).toThrow(
      /services\.travels\.trafficPolicy\.tls\.clientCertificate: .*MUTUAL/,
    );
  });
  it('an unknown mode', () => {
    expect(svc({ mode: 'STRICT' })).toThrow(
      /services\.travels\.trafficPolicy\.tls\.mode: "STRICT" is not one of/,
    );
  });
  it('ISTIO_MUTUAL without identity', () => {
    expect(svc({ mode: 'ISTIO_MUTUAL' })).toThrow(/services\.travels\.trafficPolicy\.tls\.mode: .*identity/);
  });
  it('a certificate file that cannot be read', () => {
    expect(svc({ mode: 'SIMPLE', caCertificates: '/nonexistent/ca.pem' })).toThrow(
      /services\.travels\.trafficPolicy\.tls\.caCertificates: "\/nonexistent\/ca\.pem" cannot be read/,
    );
  });
  it('a key that does not match the certificate', () => {
    const a = pki.issue('a', ['DNS:a']);
    const b = pki.issue('b', ['DNS:b']);
    expect(
      svc({ mode: 'MUTUAL', caCertificates: pki.ca, clientCertificate: a.cert, privateKey: b.key }),
    ).toThrow(/services\.travels\.trafficPolicy\.tls\.privateKey: is not valid TLS material/);
  });
});
