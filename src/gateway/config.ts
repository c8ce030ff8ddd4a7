/** Checks across a gateway service's fields, and what its config means for the service. */
import type { DiscoveryConfig } from '../discovery/schema.ts';
import type { TlsConfig } from '../tls/schema.ts';
import type { GatewayConfig } from './schema.ts';

/** Where a gateway service's connections go: the gateway's addresses, or its own discovery. */
export function gatewayDiscovery(g: GatewayConfig): DiscoveryConfig {
  if (g.discovery !== undefined) return g.discovery;
  const list = typeof g.address === 'string' ? [g.address] : (g.address ?? []);
  return { static: [...list] };
}

type Issue = { path: (string | number)[]; message: string; input: unknown };

/** Problems of a gateway service's fields taken together (paths relative to the service). */
export function gatewayIssues(
  g: GatewayConfig,
  tls: TlsConfig | undefined,
  subsets: readonly { trafficPolicy?: unknown }[] | undefined,
  portLevelSettings?: readonly unknown[] | undefined,
): Issue[] {
  const issues: Issue[] = [];
  if (portLevelSettings !== undefined && portLevelSettings.length > 0)
    issues.push({
      path: ['trafficPolicy', 'portLevelSettings'],
      message:
        "is not supported behind a gateway: the endpoints are the gateway's addresses, and the remote service's port is a route through it (gateway.port, a route's destination.port)",
      input: portLevelSettings,
    });
  if (g.mode === 'AUTO_PASSTHROUGH') {
    if (tls === undefined || tls.mode === 'DISABLE') {
      issues.push({
        path: ['trafficPolicy', 'tls'],
        message:
          'is required with gateway.mode AUTO_PASSTHROUGH: TLS goes through the gateway, end to end to the remote workload (mode ISTIO_MUTUAL or MUTUAL, with the remote trustDomain and/or subjectAltNames)',
        input: tls,
      });
      return issues;
    }
    if (tls.sni !== undefined)
      issues.push({
        path: ['trafficPolicy', 'tls', 'sni'],
        message:
          'cannot be set with gateway.mode AUTO_PASSTHROUGH: the SNI is what the gateway routes on (outbound_.<port>_.<subset>_.<host>)',
        input: tls.sni,
      });
    if (tls.mode !== 'ISTIO_MUTUAL' && !hasRemoteIdentity(tls))
      issues.push({
        path: ['trafficPolicy', 'tls'],
        message:
          'needs subjectAltNames or trustDomain with gateway.mode AUTO_PASSTHROUGH: the server verified is the remote workload (its SPIFFE ID or trust domain), not the SNI, which names a route through the gateway',
        input: tls,
      });
  } else if (g.tls !== undefined && tls !== undefined) {
    issues.push({
      path: ['trafficPolicy', 'tls'],
      message:
        'cannot be used with gateway.tls: with gateway.mode TERMINATE the one TLS hop is to the gateway; give its settings in one place',
      input: tls,
    });
  }
  (subsets ?? []).forEach((s, i) => {
    const own = (s.trafficPolicy as { tls?: unknown } | undefined)?.tls;
    if (own !== undefined)
      issues.push({
        path: ['subsets', i, 'trafficPolicy', 'tls'],
        message:
          "is not supported behind a gateway: a subset is a route through the remote mesh's gateway, reached with the service's TLS",
        input: own,
      });
  });
  return issues;
}

/** Whether client TLS names the identity the remote workload must present (exact IDs, or its trust domain). */
function hasRemoteIdentity(tls: TlsConfig): boolean {
  return (tls.subjectAltNames?.length ?? 0) > 0 || tls.trustDomain !== undefined;
}

/** The TLS settings of a TERMINATE gateway's connections (gateway.tls, else trafficPolicy.tls, else SIMPLE), with the gateway's identity. */
export function terminateTls(g: GatewayConfig, serviceTls: TlsConfig | undefined): TlsConfig {
  const base: TlsConfig =
    g.tls ?? (serviceTls && serviceTls.mode !== 'DISABLE' ? serviceTls : { mode: 'SIMPLE' });
  return g.subjectAltNames ? { ...base, subjectAltNames: g.subjectAltNames } : base;
}

/**
 * The SNI Istio's east-west gateway (AUTO_PASSTHROUGH) routes on: its cluster name in DNS SRV form,
 * `outbound_.<port>_.<subset>_.<host>`, the subset empty when there is none (Istio's
 * BuildDNSSrvSubsetKey).
 */
export function passthroughSni(port: number, subset: string | undefined, host: string): string {
  return `outbound_.${port}_.${subset ?? ''}_.${host}`;
}
