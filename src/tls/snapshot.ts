import type { ServiceRuntime } from '../service.ts';
import type { MeshIdentity } from './identity.ts';

/** `mesh.snapshot().services.<name>.tls`. */
export interface TlsSnapshot {
  mode: string;
  /** TLS connections dialed. */
  handshakes: number;
  /** Of those, handshakes that resumed a cached session. */
  resumed: number;
  /** Connections refused because the server's identity did not match. */
  identityFailures: number;
  /** Certificate generations taken from the watched files. */
  rotations: number;
}

export function tlsSnapshot(svc: ServiceRuntime): TlsSnapshot | undefined {
  const tls = svc.tls;
  if (!tls) return undefined;
  return {
    mode: svc.config.trafficPolicy?.tls?.mode ?? 'DISABLE',
    handshakes: tls.handshakes,
    resumed: tls.resumed,
    identityFailures: tls.identityFailures,
    rotations: tls.rotations,
  };
}

/** `mesh.snapshot().identity`. */
export interface IdentitySnapshot {
  spiffeId: string | undefined;
  rotations: number;
}

export function identitySnapshot(identity: MeshIdentity | undefined): IdentitySnapshot | undefined {
  return identity ? { spiffeId: identity.spiffeId, rotations: identity.material.rotations } : undefined;
}
