import type { SecureContextOptions, TlsOptions } from 'node:tls';
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
 * certificate, and client certificates required and verified against the mesh CA (mTLS
 * STRICT). `requireClientCert: false` is PERMISSIVE: a client certificate is requested and
 * verified if sent, but plain-TLS clients are accepted (they have no principal).
 */
export function buildServerTlsOptions(identity: MeshIdentity, requireClientCert = true): ServerTlsOptions {
  const pem = identity.material.pem;
  return {
    cert: pem.cert as string,
    key: pem.key as string,
    ca: pem.ca as string,
    requestCert: true,
    rejectUnauthorized: requireClientCert,
    minVersion: 'TLSv1.2',
  };
}

/** The parts of a tls.Server / https.Server that rotation uses. */
export interface RotatableServer {
  setSecureContext(options: SecureContextOptions): void;
  once(event: 'close', fn: () => void): unknown;
}

/** Keeps a server's certificate current: new handshakes use rotated files, open connections keep theirs. */
export function watchServer(identity: MeshIdentity, server: RotatableServer): () => void {
  const off = identity.material.onChange((pem) => {
    server.setSecureContext({ cert: pem.cert, key: pem.key, ca: pem.ca });
  });
  server.once('close', off);
  return off;
}
