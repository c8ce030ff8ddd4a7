/**
 * Which HTTP version meshwork speaks to a service's endpoints, from its trafficPolicy (see
 * docs/configuration.md, "HTTP/2 to upstreams"):
 *
 * - HTTP/1.1 by default, as Istio (`h2UpgradePolicy: DEFAULT` follows the mesh-wide default,
 *   DO_NOT_UPGRADE).
 * - `connectionPool.http.h2UpgradePolicy: UPGRADE`: HTTP/2. In cleartext by prior knowledge
 *   (h2c: the connection starts with the HTTP/2 preface, no `Upgrade: h2c` round trip, as Envoy
 *   does with HTTP/2 options on a plaintext cluster); over TLS by ALPN, offering `h2` then
 *   `http/1.1`, so the server picks.
 * - `tls.alpnProtocols` (meshwork's extension, Envoy's `alpn_protocols`): what the TLS handshake
 *   offers, in order; `[h2, http/1.1]` negotiates HTTP/2 without UPGRADE, `[h2]` insists on it.
 * - `connectionPool.http.useClientProtocol: true` (Istio: keep the client's protocol, and
 *   h2UpgradePolicy has no effect): HTTP/1.1, the protocol of every in-process client.
 */
import type { ConnectionPoolConfig } from '../config/schema.ts';
import type { TlsConfig } from '../tls/schema.ts';

/** undici's default number of concurrent streams per HTTP/2 connection. */
export const DEFAULT_MAX_CONCURRENT_STREAMS = 100;

interface ProtocolPolicy {
  connectionPool?: ConnectionPoolConfig | undefined;
  tls?: TlsConfig | undefined;
}

function keepsClientProtocol(policy: ProtocolPolicy | undefined): boolean {
  return policy?.connectionPool?.http?.useClientProtocol === true;
}

function upgrades(policy: ProtocolPolicy | undefined): boolean {
  return !keepsClientProtocol(policy) && policy?.connectionPool?.http?.h2UpgradePolicy === 'UPGRADE';
}

/** What the TLS handshake offers by ALPN. */
export function alpnProtocols(policy: ProtocolPolicy | undefined): string[] {
  if (keepsClientProtocol(policy)) return ['http/1.1'];
  const own = policy?.tls?.alpnProtocols;
  if (own && own.length > 0) return [...own];
  return upgrades(policy) ? ['h2', 'http/1.1'] : ['http/1.1'];
}

/**
 * The undici Pool options for the HTTP version. Cleartext: h2c by prior knowledge (undici's
 * `useH2c`). TLS: the connector's ALPN decides (undici speaks HTTP/2 on a socket that
 * negotiated `h2`); `allowH2` when it offers `h2` lets the Pool hold a burst of first requests
 * until the first handshake tells which protocol it got, instead of opening a connection for
 * each of them.
 */
export function poolProtocolOptions(
  cp: ConnectionPoolConfig | undefined,
  connect: unknown,
): { allowH2: boolean; useH2c?: boolean; h2Options?: { maxConcurrentStreams: number } } {
  const secure = connect !== undefined;
  const h2c = !secure && upgrades({ connectionPool: cp });
  const alpn = (connect as { alpn?: readonly string[] } | undefined)?.alpn;
  const h2 = h2c || (secure && alpn?.includes('h2') === true);
  if (!h2) return { allowH2: false };
  const h2Options = {
    maxConcurrentStreams: cp?.http?.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS,
  };
  return h2c ? { allowH2: true, useH2c: true, h2Options } : { allowH2: true, h2Options };
}
