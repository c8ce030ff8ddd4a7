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
  /** The own trust domain (`identity.trustDomain`, else the domain of the identity's certificate). */
  trustDomain: string | undefined;
  /** `identity.trustDomainAliases`. */
  trustDomainAliases: string[];
  /** Every trust domain with a bundle: the own one and those of `identity.trustBundles`. */
  trustDomains: string[];
  /** Bundles of `identity.trustBundles` reloaded from their files, and reloads refused. */
  trustBundleRotations: number;
  trustBundleReloadErrors: number;
  /** Inbound connections whose certificate no bundle of its own trust domain vouched for. */
  refusedPeers: number;
}

export function identitySnapshot(identity: MeshIdentity | undefined): IdentitySnapshot | undefined {
  if (!identity) return undefined;
  const t = identity.trust;
  return {
    spiffeId: identity.spiffeId,
    rotations: identity.material.rotations,
    trustDomain: t.own,
    trustDomainAliases: [...t.aliases],
    trustDomains: t.domains,
    trustBundleRotations: t.rotations,
    trustBundleReloadErrors: t.reloadErrors,
    refusedPeers: t.refused,
  };
}
