import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { copyFileSync, renameSync, writeFileSync } from 'node:fs';
import { createSecureServer } from 'node:http2';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { meshHandler } from '../src/context/adapters.ts';
import { createMesh, isMeshworkError, type Mesh } from '../src/index.ts';
import type { Logger } from '../src/telemetry/logger.ts';
import { type Cert, createPki, type Pki, spiffeBundleOf } from './support/certs.ts';
import { listen } from './support/inbound.ts';
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
let closers: (() => Promise<void>)[] = [];

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
  for (const c of closers.reverse()) await c();
  meshes = [];
  servers = [];
  closers = [];
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

const A_CALLER = `spiffe://${A}/ns/default/sa/caller`;
const B_CALLER = `spiffe://${B}/ns/default/sa/caller`;

interface Inbound {
  mesh: Mesh;
  url: string;
  address: string;
}

/**
 * A service of trust domain a.example behind mesh.inbound(): answers the caller's principal and
 * the context header it kept. `watch`: mesh.watchServerTls(server) too.
 */
async function inboundA(
  config: Record<string, unknown> = {},
  identity: Record<string, unknown> = {},
  opts: { watch?: boolean; connectionClose?: boolean; logger?: Logger } = {},
): Promise<Inbound> {
  const me = issue(pkiA, A_TRAVELS);
  const m = mesh({
    identity: { cert: me.cert, key: me.key, ca: pkiA.ca, trustBundles: { [B]: pkiB.ca }, ...identity },
    context: { headers: ['x-tenant'] },
    services: {},
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...config,
  });
  const handler = meshHandler(m, (req, res) => {
    if (opts.connectionClose) res.setHeader('connection', 'close');
    res.end(
      JSON.stringify({ principal: m.context()?.principal ?? null, tenant: req.headers['x-tenant'] ?? null }),
    );
  });
  const server = createHttpsServer(m.serverTlsOptions(), handler);
  if (opts.watch) m.watchServerTls(server);
  const l = await listen(server, 'https');
  closers.push(l.close);
  return { mesh: m, url: l.url, address: l.url.slice('https://'.length) };
}

/** A raw mTLS call with the given client certificate (trusting the server's CA-A). */
async function callWith(url: string, client: Cert): Promise<{ status: number; body: string }> {
  const agent = new Agent({
    connect: { ca: pkiA.ca, cert: client.cert, key: client.key, checkServerIdentity: () => undefined },
  });
  try {
    const res = await request(`${url}/x`, { dispatcher: agent, headers: { 'x-tenant': 't1' } });
    return { status: res.statusCode, body: await res.body.text() };
  } finally {
    await agent.close();
  }
}

const allowOnly = (...principals: string[]) => ({
  authorization: { policies: [{ action: 'ALLOW', rules: [{ from: [{ source: { principals } }] }] }] },
});

describe('inbound: a caller from any configured trust domain, verified by its own domain’s bundle', () => {
  it('two meshes: b.example calls a.example (ISTIO_MUTUAL trustDomain a.example), the policy names the b principal', async () => {
    const srv = await inboundA(allowOnly(`${B}/ns/default/sa/caller`));
    const me = issue(pkiB, B_CALLER);
    const client = mesh({
      identity: { cert: me.cert, key: me.key, ca: pkiB.ca, trustBundles: { [A]: pkiA.ca } },
      services: {
        travels: {
          discovery: { static: [srv.address] },
          trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL', trustDomain: A, subjectAltNames: [A_TRAVELS] } },
        },
      },
    });
    const res = await client.fetch('http://travels/');
    expect(res.status).toBe(200);
    expect(JSON.parse(await res.text()).principal).toBe(B_CALLER);
    // Another principal of b is authenticated, and refused by the policy.
    const other = await callWith(srv.url, issue(pkiB, B_BILLING));
    expect(other.status).toBe(403);
    expect(other.body).toContain('no ALLOW policy matches');
    expect(srv.mesh.snapshot().identity).toMatchObject({
      trustDomain: A,
      trustDomains: [A, B],
      refusedPeers: 0,
    });
  });

  it('a domain without a bundle on the server side: the handshake fails', async () => {
    const srv = await inboundA({}, { trustBundles: {} });
    await expect(callWith(srv.url, issue(pkiB, B_CALLER))).rejects.toThrow();
  });

  it('an ID of b forged with CA-A passes the handshake’s combined CA list but is refused: 403 by mesh.inbound()', async () => {
    const srv = await inboundA();
    const r = await callWith(srv.url, issue(pkiA, B_CALLER));
    expect(r.status).toBe(403);
    expect(r.body).toContain(
      `the client certificate ${B_CALLER} is not issued by the trust bundle of its trust domain "${B}"`,
    );
    // And the other way round: an ID of a from CA-B.
    const r2 = await callWith(srv.url, issue(pkiB, A_CALLER));
    expect(r2.status).toBe(403);
    // The genuine ones pass.
    expect(JSON.parse((await callWith(srv.url, issue(pkiA, A_CALLER))).body).principal).toBe(A_CALLER);
    expect(JSON.parse((await callWith(srv.url, issue(pkiB, B_CALLER))).body).principal).toBe(B_CALLER);
    expect(srv.mesh.snapshot().identity?.refusedPeers).toBe(2);
  });

  it('with watchServerTls the forged caller’s connection is closed right after the handshake', async () => {
    const srv = await inboundA({}, {}, { watch: true });
    await expect(callWith(srv.url, issue(pkiA, B_CALLER))).rejects.toThrow();
    expect((await callWith(srv.url, issue(pkiB, B_CALLER))).status).toBe(200);
  });

  it('an ID in a domain with no bundle, signed by the own CA, is refused (a CA vouches for its own domain only)', async () => {
    const srv = await inboundA({}, { trustBundles: {} });
    const r = await callWith(srv.url, issue(pkiA, 'spiffe://c.example/ns/default/sa/caller'));
    expect(r.status).toBe(403);
    expect(r.body).toContain('in trust domain "c.example", which has no trust bundle');
  });

  it('callers with intermediate CAs: the own domain’s through the own certificate file, another’s through its bundle', async () => {
    // Node's TLS server does not show a client's intermediates: a chain through one cannot be
    // told from a forgery unless the intermediate is known.
    const midB = pkiB.intermediate(`mid-b-${++seq}`);
    const leafB = midB.issue(`mid-leaf-${seq}`, [`URI:${B_CALLER}`]);
    const unknown = await inboundA(allowOnly('*'));
    const r = await callWith(unknown.url, { ...leafB, cert: leafB.cert + midB.chain });
    expect(r.status).toBe(403);
    expect(r.body).toContain('so those of a trust domain go in its bundle');
    const known = await inboundA(allowOnly('*'), { trustBundles: { [B]: pkiB.ca + midB.ca } });
    const ok = await callWith(known.url, { ...leafB, cert: leafB.cert + midB.chain });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body).principal).toBe(B_CALLER);
    // The own domain, as with Istio's plugged-in CA: workloads' cert-chain.pem holds the
    // intermediate, so the server knows it from its own certificate file.
    const midA = pkiA.intermediate(`mid-a-${++seq}`);
    const me = midA.issue(`mid-me-${seq}`, [`URI:${A_TRAVELS}`]);
    const own = await inboundA(allowOnly('*'), { cert: me.cert + midA.chain, key: me.key });
    const peer = midA.issue(`mid-peer-${seq}`, [`URI:${A_CALLER}`]);
    expect((await callWith(own.url, { ...peer, cert: peer.cert + midA.chain })).status).toBe(200);
    // An intermediate under CA-A issuing an ID of b: the handshake accepts it (CA-A is in the
    // list), the check refuses it, even with that intermediate known.
    const forged = midA.issue(`mid-forged-${seq}`, [`URI:${B_CALLER}`]);
    const f = await callWith(own.url, { ...forged, cert: forged.cert + midA.chain });
    expect(f.status).toBe(403);
    expect(f.body).toContain(`is not issued by the trust bundle of its trust domain "${B}"`);
  });

  it('HTTP/2: the same check through the compatibility API', async () => {
    const me = issue(pkiA, A_TRAVELS);
    const m = mesh({
      identity: { cert: me.cert, key: me.key, ca: pkiA.ca, trustBundles: { [B]: pkiB.ca } },
      services: {},
    });
    const handler = meshHandler(m, (_req, res) => {
      res.end(String(m.context()?.principal));
    });
    const server = createSecureServer(m.serverTlsOptions(), handler as never);
    const sessions = new Set<{ destroy(): void }>();
    server.on('session', (s) => sessions.add(s));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const l = { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}` };
    closers.push(async () => {
      for (const s of sessions) s.destroy();
      await new Promise((r) => server.close(r));
    });
    const h2 = async (client: Cert) => {
      const agent = new Agent({
        allowH2: true,
        connect: { ca: pkiA.ca, cert: client.cert, key: client.key, checkServerIdentity: () => undefined },
      });
      try {
        const res = await request(`${l.url}/`, { dispatcher: agent });
        return { status: res.statusCode, body: await res.body.text() };
      } finally {
        await agent.close();
      }
    };
    expect(await h2(issue(pkiB, B_CALLER))).toEqual({ status: 200, body: B_CALLER });
    expect((await h2(issue(pkiA, B_CALLER))).status).toBe(403);
  });

  it('context.trust.callers names callers of any domain', async () => {
    const srv = await inboundA({ context: { headers: ['x-tenant'], trust: { callers: [B_CALLER] } } });
    expect(JSON.parse((await callWith(srv.url, issue(pkiB, B_CALLER))).body).tenant).toBe('t1');
    expect(JSON.parse((await callWith(srv.url, issue(pkiA, A_CALLER))).body).tenant).toBe(null);
  });

  it('aliases: an alias-domain caller is the own domain for principals and context trust, verified by the own CA only', async () => {
    const OLD_CALLER = `spiffe://${OLD}/ns/default/sa/caller`;
    const srv = await inboundA(
      {
        ...allowOnly(`${A}/ns/default/sa/caller`),
        context: { headers: ['x-tenant'], trust: { callers: [A_CALLER] } },
      },
      { trustDomainAliases: [OLD] },
    );
    const r = JSON.parse((await callWith(srv.url, issue(pkiA, OLD_CALLER))).body);
    expect(r).toEqual({ principal: OLD_CALLER, tenant: 't1' });
    // The policy may name the alias too: it matches the own domain's ID.
    const byAlias = await inboundA(allowOnly(`spiffe://${OLD}/ns/default/sa/caller`), {
      trustDomainAliases: [OLD],
    });
    expect((await callWith(byAlias.url, issue(pkiA, A_CALLER))).status).toBe(200);
    expect((await callWith(byAlias.url, issue(pkiA, `spiffe://${A}/ns/default/sa/other`))).status).toBe(403);
    // Istio: cluster.local in a policy points at the current trust domain.
    const istioStyle = await inboundA(allowOnly('cluster.local/ns/default/sa/caller'));
    expect((await callWith(istioStyle.url, issue(pkiA, A_CALLER))).status).toBe(200);
    expect((await callWith(istioStyle.url, issue(pkiB, B_CALLER))).status).toBe(403);
    // An alias-domain ID from CA-B (trusted, but for b) is refused.
    const forged = await callWith(srv.url, issue(pkiB, OLD_CALLER));
    expect(forged.status).toBe(403);
    // Without the alias, the old domain has no bundle.
    const noAlias = await inboundA();
    expect((await callWith(noAlias.url, issue(pkiA, OLD_CALLER))).status).toBe(403);
  });
});

/** Replaces a file the way a secret manager does: write aside, then rename over. */
function replace(to: string, content: string): void {
  writeFileSync(`${to}.tmp`, content);
  renameSync(`${to}.tmp`, to);
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what}: not in time`);
    await sleep(20);
  }
}

describe('bundle rotation', () => {
  it('outbound: a server of b moved to a new CA is trusted once the bundle file of b has it', async () => {
    const pkiB3 = createPki('ca-b3');
    try {
      const bundle = join(pkiA.dir, `bundle-out-${++seq}.pem`);
      writeFileSync(bundle, pkiB.ca);
      const s = await server(issue(pkiB3, B_TRAVELS), pkiA.ca);
      const m = meshA(s.address, { mode: 'ISTIO_MUTUAL', trustDomain: B }, { trustBundles: { [B]: bundle } });
      const err = await errorOf(m.fetch('http://travels/'));
      expect(String(err.cause?.code ?? err.code)).toMatch(unknownCa);
      replace(bundle, pkiB.ca + pkiB3.ca);
      await until(() => m.snapshot().identity?.trustBundleRotations === 1, 'bundle reload');
      expect((await m.fetch('http://travels/')).status).toBe(200);
    } finally {
      pkiB3.cleanup();
    }
  });

  // Several reloads under load: slow on a busy machine, so a longer bound than the default.
  it('under steady traffic: a new CA added to the bundle, the caller moved to it, the old CA removed; no request fails; a bad bundle keeps the last good one', async () => {
    const pkiB2 = createPki('ca-b2');
    try {
      const bundle = join(pkiA.dir, 'bundle-b.json');
      writeFileSync(bundle, spiffeBundleOf(pkiB.ca));
      const warnings: { obj: Record<string, unknown>; msg: string | undefined }[] = [];
      const logger: Logger = {
        debug() {},
        info() {},
        warn: (obj, msg) => warnings.push({ obj: obj as Record<string, unknown>, msg }),
        error() {},
      };
      const srv = await inboundA(
        allowOnly(`${B}/ns/default/sa/caller`),
        { trustBundles: { [B]: { spiffeBundle: bundle } } },
        { watch: true, connectionClose: true, logger },
      );
      // The caller: domain b, identity files rotated from CA-B to CA-B2.
      const v1 = issue(pkiB, B_CALLER);
      const v2 = issue(pkiB2, B_CALLER);
      const live = { cert: join(pkiB.dir, 'live-caller.pem'), key: join(pkiB.dir, 'live-caller.key') };
      copyFileSync(v1.certPath, live.cert);
      copyFileSync(v1.keyPath, live.key);
      const caller = mesh({
        identity: { cert: live.cert, key: live.key, ca: pkiB.ca, trustBundles: { [A]: pkiA.ca } },
        services: {
          travels: {
            discovery: { static: [srv.address] },
            trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL', trustDomain: A } },
          },
        },
      });
      let ok = 0;
      const failures: unknown[] = [];
      let stop = false;
      const worker = async () => {
        // Bounded: at most 20,000 calls each.
        for (let i = 0; i < 20_000 && !stop; i++) {
          try {
            const res = await caller.fetch('http://travels/', { method: 'POST', body: 'x' });
            const body = await res.text();
            if (res.status === 200) ok++;
            else failures.push(`${res.status} ${body}`);
          } catch (err) {
            failures.push(err);
          }
        }
      };
      const load = Promise.all(Array.from({ length: 4 }, worker));
      const snap = () => srv.mesh.snapshot().identity;
      try {
        await until(() => ok > 50, 'first calls');
        // 1. The bundle of b gains CA-B2.
        replace(bundle, spiffeBundleOf(pkiB.ca, pkiB2.ca));
        await until(() => snap()?.trustBundleRotations === 1, 'bundle with CA-B2');
        const before2 = ok;
        await until(() => ok > before2 + 50, 'calls after the first bundle change');
        // 2. The caller's certificate moves to CA-B2 (key first: the half pair is refused).
        replace(live.key, v2.key);
        replace(live.cert, v2.cert);
        await until(() => caller.snapshot().identity?.rotations === 1, 'caller certificate rotation');
        const before3 = ok;
        await until(() => ok > before3 + 50, 'calls with the new certificate');
        // 3. CA-B leaves the bundle.
        replace(bundle, spiffeBundleOf(pkiB2.ca));
        await until(() => snap()?.trustBundleRotations === 2, 'bundle without CA-B');
        const before4 = ok;
        await until(() => ok > before4 + 50, 'calls after the second bundle change');
        // 4. A bad bundle: refused and logged, naming the path; the last good one stays.
        replace(bundle, '{"keys": [{"use": "x509-svid", "x5c": ["bm90"]}]}');
        await until(() => (snap()?.trustBundleReloadErrors ?? 0) >= 1, 'bad bundle refused');
        const before5 = ok;
        await until(() => ok > before5 + 50, 'calls after the bad bundle');
      } finally {
        stop = true;
        await load;
      }
      expect(failures).toEqual([]);
      expect(snap()?.refusedPeers).toBe(0);
      const bad = warnings.find((w) => String(w.obj.err).includes('keys[0].x5c[0] is not a certificate'));
      expect(String(bad?.obj.err)).toContain(`identity.trustBundles["${B}"].spiffeBundle: "${bundle}"`);
      // With CA-B gone, the old certificate is refused now.
      const old = await callWith(srv.url, v1).catch((err: Error) => ({ status: 0, body: err.message }));
      expect(old.status).not.toBe(200);
      const fresh = issue(pkiB2, B_CALLER);
      expect((await callWith(srv.url, fresh)).status).toBe(200);
      expect(new X509Certificate(fresh.cert).issuer).toContain('ca-b2');
    } finally {
      pkiB2.cleanup();
    }
  }, 60_000);
});
