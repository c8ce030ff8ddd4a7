import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createMesh, isMeshworkError, type Mesh } from '../src/index.ts';
import { type Cert, createPki, type Pki, spiffeBundleOf } from './support/certs.ts';
import { startTlsServer, type TlsTestServer } from './support/tls-servers.ts';

/** Two meshes, two CAs: trust domain a.example (CA-A) and b.example (CA-B). */
const A = 'a.example';
const B = 'b.example';
const OLD = 'old.example';
const A_GATEWAY = `spiffe://${A}/ns/default/sa/gateway`;
const A_TRAVELS = `spiffe://${A}/ns/default/sa/travels`;
const B_TRAVELS = `spiffe://${B}/ns/default/sa/travels`;
const B_BILLING = `spiffe://${B}/ns/default/sa/billing`;

let pkiA: Pki;
let pkiB: Pki;
let servers: TlsTestServer[] = [];
let meshes: Mesh[] = [];

beforeAll(() => {
  pkiA = createPki('ca-a');
  pkiB = createPki('ca-b');
});
afterAll(() => {
  pkiA.cleanup();
  pkiB.cleanup();
});
afterEach(async () => {
  await Promise.all(meshes.map((m) => m.close()));
  await Promise.all(servers.map((s) => s.close()));
  meshes = [];
  servers = [];
});

let seq = 0;
function issue(pki: Pki, id: string): Cert {
  return pki.issue(`w${++seq}`, [`URI:${id}`]);
}

/** A plain https server with the given identity, requiring client certificates from `clientCa`. */
async function server(identity: Cert, clientCa: string): Promise<TlsTestServer> {
  const s = await startTlsServer(
    { cert: identity.cert, key: identity.key, ca: clientCa, requestCert: true, rejectUnauthorized: true },
    (_req, res) => res.end('hello'),
  );
  servers.push(s);
  return s;
}

function mesh(config: Record<string, unknown>): Mesh {
  const m = createMesh(config as never);
  meshes.push(m);
  return m;
}

/** A mesh in trust domain a.example calling `travels` at `address` with the given tls. */
function meshA(address: string, tls: Record<string, unknown>, identity: Record<string, unknown> = {}): Mesh {
  const me = issue(pkiA, A_GATEWAY);
  return mesh({
    identity: { cert: me.cert, key: me.key, ca: pkiA.ca, trustBundles: { [B]: pkiB.ca }, ...identity },
    services: { travels: { discovery: { static: [address] }, trafficPolicy: { tls } } },
  });
}

async function errorOf(p: Promise<unknown>): Promise<any> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

const unknownCa = /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER/;

describe('outbound: trafficPolicy.tls.trustDomain', () => {
  it('ISTIO_MUTUAL to a server of another trust domain: verified against that domain’s bundle', async () => {
    const s = await server(issue(pkiB, B_TRAVELS), pkiA.ca);
    const m = meshA(s.address, { mode: 'ISTIO_MUTUAL', trustDomain: B });
    const res = await m.fetch('http://travels/');
    expect(await res.text()).toBe('hello');
    expect(s.peers).toEqual([A_GATEWAY]);
  });

  it('without trustDomain, ISTIO_MUTUAL verifies against the own bundle only: the other domain’s server is refused', async () => {
    const s = await server(issue(pkiB, B_TRAVELS), pkiA.ca);
    const m = meshA(s.address, { mode: 'ISTIO_MUTUAL' });
    const err = await errorOf(m.fetch('http://travels/'));
    expect(String(err.cause?.code ?? err.code)).toMatch(unknownCa);
    expect(s.peers).toEqual([]);
  });

  it('an ID of domain b forged with CA-A is refused (the bundle of b alone verifies b)', async () => {
    const s = await server(issue(pkiA, B_TRAVELS), pkiA.ca);
    const m = meshA(s.address, { mode: 'ISTIO_MUTUAL', trustDomain: B });
    const err = await errorOf(m.fetch('http://travels/'));
    expect(String(err.cause?.code ?? err.code)).toMatch(unknownCa);
    expect(s.peers).toEqual([]);
  });

  it('an ID of domain a forged with CA-B is refused, though CA-B is trusted for b', async () => {
    const s = await server(issue(pkiB, A_TRAVELS), pkiA.ca);
    const m = meshA(s.address, { mode: 'ISTIO_MUTUAL' });
    const err = await errorOf(m.fetch('http://travels/'));
    expect(String(err.cause?.code ?? err.code)).toMatch(unknownCa);
  });

  it('the own CA does not vouch for another domain’s ID: MESHWORK_ERR_TLS_IDENTITY', async () => {
    const s = await server(issue(pkiA, B_TRAVELS), pkiA.ca);
    const m = meshA(s.address, { mode: 'ISTIO_MUTUAL' });
    const err = await errorOf(m.fetch('http://travels/'));
    expect(isMeshworkError(err, 'MESHWORK_ERR_TLS_IDENTITY')).toBe(true);
    expect(err.message).toContain(`spiffe://${A}/*`);
    expect(err.message).toContain(`URI:${B_TRAVELS}`);
  });

  it('subjectAltNames with trustDomain: exact ID, from that domain’s bundle', async () => {
    const s = await server(issue(pkiB, B_TRAVELS), pkiA.ca);
    const ok = meshA(s.address, { mode: 'ISTIO_MUTUAL', trustDomain: B, subjectAltNames: [B_TRAVELS] });
    expect((await ok.fetch('http://travels/')).status).toBe(200);
    const wrong = meshA(s.address, { mode: 'ISTIO_MUTUAL', trustDomain: B, subjectAltNames: [B_BILLING] });
    const err = await errorOf(wrong.fetch('http://travels/'));
    expect(isMeshworkError(err, 'MESHWORK_ERR_TLS_IDENTITY')).toBe(true);
  });

  it('MUTUAL with trustDomain: the client certificate is its own, the CA is the domain’s bundle', async () => {
    const s = await server(issue(pkiB, B_TRAVELS), pkiB.ca);
    const client = issue(pkiB, `spiffe://${B}/ns/default/sa/partner`);
    const m = meshA(s.address, {
      mode: 'MUTUAL',
      clientCertificate: client.cert,
      privateKey: client.key,
      trustDomain: B,
    });
    expect(await (await m.fetch('http://travels/')).text()).toBe('hello');
    expect(s.peers).toEqual([`spiffe://${B}/ns/default/sa/partner`]);
  });

  it('the bundle may be a SPIFFE bundle (JWKS: x509-svid keys used, jwt-svid keys ignored), inline or a file', async () => {
    const s = await server(issue(pkiB, B_TRAVELS), pkiA.ca);
    const inline = meshA(
      s.address,
      { mode: 'ISTIO_MUTUAL', trustDomain: B },
      { trustBundles: { [B]: { spiffeBundle: spiffeBundleOf(pkiB.ca) } } },
    );
    expect((await inline.fetch('http://travels/')).status).toBe(200);
    const file = join(pkiB.dir, 'bundle.json');
    writeFileSync(file, spiffeBundleOf(pkiB.ca));
    const fromFile = meshA(
      s.address,
      { mode: 'ISTIO_MUTUAL', trustDomain: B },
      { trustBundles: { [B]: { spiffeBundle: file } } },
    );
    expect((await fromFile.fetch('http://travels/')).status).toBe(200);
  });

  it('aliases: a server in an alias domain is the own domain (own bundle), subjectAltNames included', async () => {
    const s = await server(issue(pkiA, `spiffe://${OLD}/ns/default/sa/travels`), pkiA.ca);
    const byDomain = meshA(s.address, { mode: 'ISTIO_MUTUAL' }, { trustDomainAliases: [OLD] });
    expect((await byDomain.fetch('http://travels/')).status).toBe(200);
    const byId = meshA(
      s.address,
      { mode: 'ISTIO_MUTUAL', subjectAltNames: [A_TRAVELS] },
      { trustDomainAliases: [OLD] },
    );
    expect((await byId.fetch('http://travels/')).status).toBe(200);
    const noAlias = meshA(s.address, { mode: 'ISTIO_MUTUAL' });
    expect(
      isMeshworkError(await errorOf(noAlias.fetch('http://travels/')), 'MESHWORK_ERR_TLS_IDENTITY'),
    ).toBe(true);
  });
});

describe('trust domain config errors name the path and the value', () => {
  let me: Cert;
  beforeAll(() => {
    me = issue(pkiA, A_GATEWAY);
  });
  const create = (identity: Record<string, unknown>, tls?: Record<string, unknown>) => () =>
    mesh({
      identity: { cert: me.cert, key: me.key, ca: pkiA.ca, ...identity },
      services: tls ? { travels: { discovery: { static: ['127.0.0.1:1'] }, trafficPolicy: { tls } } } : {},
    });

  it('a bundle file that cannot be read', () => {
    expect(create({ trustBundles: { [B]: '/nonexistent/b.pem' } })).toThrow(
      /identity\.trustBundles\["b\.example"\]: "\/nonexistent\/b\.pem" cannot be read/,
    );
  });
  it('a PEM bundle without a certificate', () => {
    const file = join(pkiA.dir, 'empty.pem');
    writeFileSync(file, 'nothing here\n');
    expect(create({ trustBundles: { [B]: file } })).toThrow(
      new RegExp(`identity\\.trustBundles\\["b\\.example"\\]: "${file}" holds no PEM certificate`),
    );
  });
  it('a SPIFFE bundle that is not JSON, or has no X.509 authority', () => {
    const file = join(pkiA.dir, 'bad.json');
    writeFileSync(file, '{"keys": [');
    expect(create({ trustBundles: { [B]: { spiffeBundle: file } } })).toThrow(
      new RegExp(`identity\\.trustBundles\\["b\\.example"\\]\\.spiffeBundle: "${file}" is not JSON`),
    );
    expect(create({ trustBundles: { [B]: { spiffeBundle: '{"keys":[{"use":"jwt-svid"}]}' } } })).toThrow(
      /identity\.trustBundles\["b\.example"\]\.spiffeBundle: "\{\\"keys\\".*" has no x509-svid key/,
    );
    expect(
      create({ trustBundles: { [B]: { spiffeBundle: '{"keys":[{"use":"x509-svid","x5c":["bm90"]}]}' } } }),
    ).toThrow(/spiffeBundle: .* keys\[0\]\.x5c\[0\] is not a certificate/);
  });
  it('a bundle for the own domain, or for an alias', () => {
    expect(create({ trustBundles: { [A]: pkiB.ca } })).toThrow(
      /identity\.trustBundles\["a\.example"\]: is the own trust domain/,
    );
    expect(create({ trustDomainAliases: [OLD], trustBundles: { [OLD]: pkiB.ca } })).toThrow(
      /identity\.trustBundles\["old\.example"\]: "old\.example" is in trustDomainAliases/,
    );
  });
  it('a trust domain name that is not one', () => {
    expect(create({ trustBundles: { 'B.Example': pkiB.ca } })).toThrow(
      /identity\.trustBundles\["B\.Example"\]: "B\.Example" is not a SPIFFE trust domain name/,
    );
    expect(create({ trustDomainAliases: ['Old/x'] })).toThrow(/identity\.trustDomainAliases\[0\]: /);
  });
  it('trustDomain without a bundle, with caCertificates, with a SAN of another domain, without identity', () => {
    expect(create({}, { mode: 'ISTIO_MUTUAL', trustDomain: 'c.example' })).toThrow(
      /services\.travels\.trafficPolicy\.tls\.trustDomain: "c\.example" has no trust bundle: add it to identity\.trustBundles/,
    );
    expect(
      create({ trustBundles: { [B]: pkiB.ca } }, { mode: 'SIMPLE', trustDomain: B, caCertificates: pkiB.ca }),
    ).toThrow(/services\.travels\.trafficPolicy\.tls\.caCertificates: .*trustDomain/);
    expect(
      create({ trustBundles: { [B]: pkiB.ca } }, { mode: 'ISTIO_MUTUAL', subjectAltNames: [B_TRAVELS] }),
    ).toThrow(
      /services\.travels\.trafficPolicy\.tls\.subjectAltNames\[0\]: "spiffe:\/\/b\.example\/ns\/default\/sa\/travels" is in trust domain "b\.example".*set trustDomain: b\.example/,
    );
    expect(() =>
      mesh({
        services: {
          travels: {
            discovery: { static: ['127.0.0.1:1'] },
            trafficPolicy: { tls: { mode: 'SIMPLE', trustDomain: B } },
          },
        },
      }),
    ).toThrow(
      /services\.travels\.trafficPolicy\.tls\.trustDomain: "b\.example" needs the mesh-wide `identity`/,
    );
  });
});
