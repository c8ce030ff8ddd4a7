import type { SecureContextOptions, TLSSocket, TlsOptions } from 'node:tls';
import type { MeshIdentity } from './identity.ts';

export interface ServerTlsOptions extends TlsOptions {
  cert: string;
  key: string;
  ca: string;
  requestCert: boolean;
  rejectUnauthorized: boolean;
}

/**
 * Options for `https.createServer` / `tls.createServer` from the mesh identity: the workload's
 * certificate, and client certificates required and verified against the trust bundles (mTLS
 * STRICT). `requireClientCert: false` is PERMISSIVE: a client certificate is requested and
 * verified if sent, but plain-TLS clients are accepted (they have no principal).
 *
 * With `identity.trustBundles`, `ca` holds every domain's bundle: the handshake accepts a chain
 * to any of them, and then the peer is checked against its own domain's bundle only (by
 * `watchServer`, which closes the connection, and by mesh.inbound(), which answers 403).
 */
export function buildServerTlsOptions(identity: MeshIdentity, requireClientCert = true): ServerTlsOptions {
  const pem = identity.material.pem;
  return {
    cert: pem.cert as string,
    key: pem.key as string,
    ca: identity.trust.allPem() as string,
    requestCert: true,
    rejectUnauthorized: requireClientCert,
    minVersion: 'TLSv1.2',
  };
}

/** The parts of a tls.Server / https.Server that rotation and the trust domain check use. */
export interface RotatableServer {
  setSecureContext(options: SecureContextOptions): void;
  once(event: 'close', fn: () => void): unknown;
  on?(event: 'secureConnection', fn: (socket: TLSSocket) => void): unknown;
  off?(event: 'secureConnection', fn: (socket: TLSSocket) => void): unknown;
}

/**
 * Keeps a server's certificate and trust bundles current (new handshakes use rotated files, open
 * connections keep theirs) and closes, right after the handshake, a connection whose client
 * certificate is not vouched for by the bundle of its own trust domain.
 */
export function watchServer(identity: MeshIdentity, server: RotatableServer): () => void {
  const off = identity.trust.onChange(() => {
    const pem = identity.material.pem;
    server.setSecureContext({
      cert: pem.cert,
      key: pem.key,
      ca: identity.trust.allPem(),
      minVersion: 'TLSv1.2',
    });
  });
  const check = (socket: TLSSocket) => {
    if (identity.trust.verifyPeer(socket).refused !== undefined) socket.destroy();
  };
  server.on?.('secureConnection', check);
  const stop = () => {
    off();
    server.off?.('secureConnection', check);
  };
  server.once('close', stop);
  return stop;
}
