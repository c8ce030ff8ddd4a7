/**
 * The URL scheme as a requirement: an `https://` request must be encrypted on the wire. The mesh
 * originates TLS for a service with `trafficPolicy.tls` whatever the scheme (`http://` included, as
 * Istio does); a request that asks for `https://` to a service without TLS is refused, never
 * downgraded (docs/mtls.md).
 */

/** True when a dispatch origin (string or URL) has the https scheme. */
export function wantsTls(origin: unknown): boolean {
  if (typeof origin === 'string') return /^https:/i.test(origin);
  return origin instanceof URL && origin.protocol === 'https:';
}
