import type { Socket } from 'node:net';
import {
  type ConnectionOptions,
  checkServerIdentity,
  createSecureContext,
  type PeerCertificate,
  type SecureContext,
  type TLSSocket,
  connect as tlsConnect,
} from 'node:tls';
import { errors as undiciErrors } from 'undici';
import { MeshworkConfigError, TlsIdentityError } from '../errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { MeshIdentity } from './identity.ts';
import { type Pem, TlsMaterial } from './material.ts';
import { presentedSans, sanMatches, trustDomain } from './san.ts';
import type { TlsConfig } from './schema.ts';

/**
 * The shape of an undici connector (`Pool` option `connect` as a function). `alpn`: what it
 * offers by ALPN, read by the endpoint's Pool options (src/http/protocol.ts).
 */
export type Connector = { alpn?: readonly string[] } & ((
  opts: ConnectorOptions,
  callback: ConnectorCallback,
) => void);

type ConnectorOptions = {
  hostname: string;
  host?: string;
  protocol: string;
  port: string;
  servername?: string | null;
  localAddress?: string | null;
  httpSocket?: Socket;
};

type ConnectorCallback = (err: Error | null, socket: Socket | TLSSocket | null) => void;

const HTTP1_ONLY = ['http/1.1'];

/** TLS sessions kept for resumption, per SNI name (bounded). */
const SESSION_CACHE_MAX = 100;

export interface ClientTlsOptions {
  service: string;
  tls: TlsConfig;
  /** `services.<name>.trafficPolicy.tls`, for config errors. */
  path: string;
  identity: MeshIdentity | undefined;
  connectTimeoutMs: number;
  /** Idle time before TCP keepalive probes (connectionPool.tcp.tcpKeepalive.time); default 60 s. */
  keepAliveInitialDelayMs?: number | undefined;
  logger: Logger;
  /** What the handshake offers by ALPN (src/http/protocol.ts); default `http/1.1` only. */
  alpn?: string[] | undefined;
}

/**
 * Client-side TLS for one service: a connector for every endpoint's Pool. It dials TLS with a
 * SecureContext built once per certificate generation; when the files rotate, the context is
 * rebuilt and only new connections use it (pooled connections and in-flight requests keep
 * theirs). The server is verified against `subjectAltNames`, never the URL's hostname.
 */
export class ClientTls {
  readonly #opts: ClientTlsOptions;
  readonly #material: TlsMaterial;
  readonly #ownsMaterial: boolean;
  readonly #unsubscribe: () => void;
  readonly #sessions = new Map<string, Buffer>();
  #context: SecureContext;
  /** The server's trust domain (`tls.trustDomain`, or the own one with ISTIO_MUTUAL) and the names it goes by (aliases). */
  #domain: { name: string; accepted: readonly string[] } | undefined;
  /** Connections dialed / refused for identity. */
  handshakes = 0;
  /** Handshakes that resumed a cached TLS session (cheaper: no certificate exchange). */
  resumed = 0;
  identityFailures = 0;
  /** The undici connector (stable; reads the current SecureContext per new connection). */
  readonly connect: Connector;

  constructor(opts: ClientTlsOptions) {
    this.#opts = opts;
    this.connect = Object.assign(
      (o: ConnectorOptions, callback: ConnectorCallback) => this.#connect(o, callback),
      { alpn: opts.alpn ?? HTTP1_ONLY },
    );
    const { tls } = opts;
    if (tls.mode === 'ISTIO_MUTUAL') {
      this.#material = (opts.identity as MeshIdentity).material;
      this.#ownsMaterial = false;
    } else {
      const f = (k: 'caCertificates' | 'clientCertificate' | 'privateKey' | 'caCrl') =>
        tls[k] ? { path: `${opts.path}.${k}`, value: tls[k] as string } : undefined;
      this.#material = new TlsMaterial(
        { ca: f('caCertificates'), cert: f('clientCertificate'), key: f('privateKey'), crl: f('caCrl') },
        opts.logger,
      );
      this.#ownsMaterial = true;
    }
    if (tls.insecureSkipVerify) {
      opts.logger.warn(
        { service: opts.service, path: `${opts.path}.insecureSkipVerify` },
        'TLS server verification is OFF (insecureSkipVerify: true): any server, or anyone in between, is trusted',
      );
    }
    // Which trust domain the server must be in, and whose bundle verifies it: trustDomain, or
    // the own domain with ISTIO_MUTUAL.
    const trust = opts.identity?.trust;
    const td = tls.trustDomain ?? (tls.mode === 'ISTIO_MUTUAL' ? trust?.own : undefined);
    if (td !== undefined && trust !== undefined) {
      if (trust.bundlePem(td) === undefined) {
        if (this.#ownsMaterial) this.#material.close();
        throw new MeshworkConfigError([
          {
            path: `${opts.path}.trustDomain`,
            message: `${JSON.stringify(td)} has no trust bundle: add it to identity.trustBundles, or list it in identity.trustDomainAliases when it is the own domain under another name`,
          },
        ]);
      }
      this.#domain = { name: td, accepted: trust.equivalents(td) };
      for (const [i, san] of (tls.subjectAltNames ?? []).entries()) {
        const sanDomain = trustDomain(san);
        if (sanDomain !== undefined && !this.#domain.accepted.includes(sanDomain)) {
          if (this.#ownsMaterial) this.#material.close();
          throw new MeshworkConfigError([
            {
              path: `${opts.path}.subjectAltNames[${i}]`,
              message: `${JSON.stringify(san)} is in trust domain "${sanDomain}", but the server is verified against the bundle of "${td}": set trustDomain: ${sanDomain}`,
            },
          ]);
        }
      }
    }
    this.#context = this.#build(this.#material.pem);
    const rebuild = () => {
      this.#context = this.#build(this.#material.pem);
      this.#sessions.clear();
    };
    const offMaterial = this.#material.onChange(rebuild);
    // ISTIO_MUTUAL in the own domain: the bundle is the identity's material, whose change is seen above.
    const ownMaterialOnly =
      tls.mode === 'ISTIO_MUTUAL' &&
      this.#domain !== undefined &&
      trust?.canonical(this.#domain.name) === trust?.own;
    const offTrust =
      this.#domain !== undefined && trust !== undefined && !ownMaterialOnly
        ? trust.onChange(rebuild)
        : () => {};
    this.#unsubscribe = () => {
      offMaterial();
      offTrust();
    };
  }

  get rotations(): number {
    return this.#material.rotations;
  }

  #build(pem: Pem): SecureContext {
    // Without a CA, Node's default roots verify the server (SIMPLE against a public server).
    // With a trust domain, that domain's bundle alone: another domain's CA cannot vouch for it.
    const ca = this.#domain ? this.#opts.identity?.trust.bundlePem(this.#domain.name) : pem.ca;
    return createSecureContext({
      ca,
      cert: pem.cert,
      key: pem.key,
      crl: pem.crl,
      minVersion: 'TLSv1.2',
    });
  }

  /** The identities a server must present, or the trust domains one of its URI SANs must be in. */
  #expected(servername: string): { names: string[]; domains?: readonly string[] } {
    const { tls, identity } = this.#opts;
    const domains = this.#domain?.accepted;
    if (tls.subjectAltNames && tls.subjectAltNames.length > 0) {
      if (domains === undefined || identity === undefined) return { names: tls.subjectAltNames };
      // An alias names the own domain: spiffe://alias/x is spiffe://own/x.
      const names = tls.subjectAltNames.flatMap((n) => {
        const td = trustDomain(n);
        if (td === undefined || !domains.includes(td)) return [n];
        const rest = n.slice(`spiffe://${td}`.length);
        return domains.map((d) => `spiffe://${d}${rest}`);
      });
      return { names: [...new Set(names)], domains };
    }
    if (domains !== undefined) return { names: domains.map((d) => `spiffe://${d}/*`), domains };
    if (tls.mode === 'ISTIO_MUTUAL') return { names: [] };
    return { names: [servername] };
  }

  #check(servername: string, where: string, cert: PeerCertificate): Error | undefined {
    const presented = presentedSans(cert);
    const { names, domains } = this.#expected(servername);
    // A server's SPIFFE ID must be in the expected domain, whatever else it presents.
    const inDomain = (san: string) => domains?.some((d) => san.startsWith(`URI:spiffe://${d}/`)) === true;
    const foreignId =
      domains !== undefined && presented.some((s) => s.startsWith('URI:spiffe://') && !inDomain(s));
    let ok: boolean;
    if (foreignId) ok = false;
    else if (this.#opts.tls.subjectAltNames?.length) ok = sanMatches(names, presented);
    else if (domains !== undefined) ok = presented.some(inDomain);
    else if (names.length === 0) ok = true;
    else ok = checkServerIdentity(servername, cert) === undefined;
    if (ok) return undefined;
    this.identityFailures++;
    return new TlsIdentityError(this.#opts.service, where, names, presented);
  }

  #connect(opts: ConnectorOptions, callback: ConnectorCallback): void {
    const servername = this.#opts.tls.sni ?? opts.servername ?? this.#opts.service;
    const where = `${opts.hostname}:${opts.port}`;
    const host = opts.hostname.startsWith('[') ? opts.hostname.slice(1, -1) : opts.hostname;
    const session = this.#sessions.get(servername);
    const options: ConnectionOptions = {
      host,
      port: Number(opts.port),
      servername,
      secureContext: this.#context,
      rejectUnauthorized: this.#opts.tls.insecureSkipVerify !== true,
      ALPNProtocols: this.#opts.alpn ?? HTTP1_ONLY,
      checkServerIdentity: (_name, cert) =>
        this.#opts.tls.insecureSkipVerify === true ? undefined : this.#check(servername, where, cert),
      ...(session ? { session } : {}),
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
      ...(opts.httpSocket ? { socket: opts.httpSocket } : {}),
    };
    this.handshakes++;
    const socket = tlsConnect(options);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, this.#opts.keepAliveInitialDelayMs ?? 60_000);
    const context = this.#context;
    socket.on('session', (s: Buffer) => {
      // Only cache sessions made with the current certificates.
      if (context !== this.#context) return;
      if (this.#sessions.size >= SESSION_CACHE_MAX) this.#sessions.clear();
      this.#sessions.set(servername, s);
    });
    let done = false;
    const timer = setTimeout(() => {
      finish(
        new undiciErrors.ConnectTimeoutError(
          `Connect Timeout Error (attempted address: ${where}, timeout: ${this.#opts.connectTimeoutMs}ms)`,
        ),
      );
      socket.destroy();
    }, this.#opts.connectTimeoutMs);
    timer.unref();
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off('error', finish);
      if (err) {
        this.#sessions.delete(servername);
        callback(err, null);
      } else callback(null, socket);
    };
    socket.once('secureConnect', () => {
      if (socket.isSessionReused()) this.resumed++;
      finish(null);
    });
    socket.once('error', finish);
  }

  close(): void {
    this.#unsubscribe();
    if (this.#ownsMaterial) this.#material.close();
  }
}
