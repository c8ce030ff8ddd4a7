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
  /** Behind another mesh's gateway: its mode (TLS to the gateway with TERMINATE, through it with AUTO_PASSTHROUGH). */
  gateway?: 'AUTO_PASSTHROUGH' | 'TERMINATE';
}

export function tlsSnapshot(svc: ServiceRuntime): TlsSnapshot | undefined {
  const tls = svc.tls;
  if (!tls) return undefined;
  const gw = svc.config.gateway;
  const mode =
    gw?.mode === 'TERMINATE'
      ? (gw.tls ?? svc.config.trafficPolicy?.tls)?.mode
      : svc.config.trafficPolicy?.tls?.mode;
  return {
    mode: mode ?? (gw?.mode === 'TERMINATE' ? 'SIMPLE' : 'DISABLE'),
    handshakes: tls.handshakes,
    resumed: tls.resumed,
    identityFailures: tls.identityFailures,
    rotations: tls.rotations,
    ...(gw ? { gateway: gw.mode } : {}),
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
