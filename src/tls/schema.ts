/** `trafficPolicy.tls` (Istio ClientTLSSettings) and the mesh-wide `identity`. See docs/mtls.md. */
import { z } from 'zod';

/** A PEM string (contains "-----BEGIN") or a path to a PEM file (watched for rotation). */
const pemOrPath = z.string().min(1);

export const tlsSchema = z
  .strictObject({
    mode: z.enum(['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL']).default('DISABLE'),
    caCertificates: pemOrPath.optional(),
    clientCertificate: pemOrPath.optional(),
    privateKey: pemOrPath.optional(),
    /** Identities the server may present: `spiffe://…` (URI SAN) or a DNS name (DNS SAN, `*.x` allowed). */
    subjectAltNames: z.array(z.string().min(1)).optional(),
    /** SNI sent in the ClientHello. Default: the service name. */
    sni: z.string().min(1).optional(),
    /**
     * meshwork's extension (Envoy's `alpn_protocols`): the protocols the handshake offers, in
     * order. Default `[http/1.1]`, or `[h2, http/1.1]` with `h2UpgradePolicy: UPGRADE`.
     */
    alpnProtocols: z
      .array(z.enum(['h2', 'http/1.1']))
      .min(1)
      .refine((l) => new Set(l).size === l.length, 'lists a protocol twice')
      .optional(),
    /**
     * Certificate revocation lists (PEM or path), as Istio's caCrl: a server whose certificate
     * (or an intermediate) is listed is refused. Watched for rotation like the other files.
     */
    caCrl: pemOrPath.optional(),
    /**
     * true: the server's certificate and name are NOT verified (Istio's insecureSkipVerify).
     * Logged as a warning when the mesh starts; for tests and migrations only.
     */
    insecureSkipVerify: z.boolean().optional(),
  })
  .superRefine((v, ctx) => {
    if (v.alpnProtocols !== undefined && v.mode === 'DISABLE')
      ctx.addIssue({
        code: 'custom',
        message:
          'needs TLS (mode SIMPLE, MUTUAL or ISTIO_MUTUAL); for HTTP/2 in cleartext use connectionPool.http.h2UpgradePolicy: UPGRADE',
        input: v.alpnProtocols,
        path: ['alpnProtocols'],
      });
    if (v.mode === 'MUTUAL') {
      for (const f of ['clientCertificate', 'privateKey'] as const) {
        if (!v[f])
          ctx.addIssue({
            code: 'custom',
            message: 'is required when mode is MUTUAL',
            input: v[f],
            path: [f],
          });
      }
    }
    if ((v.clientCertificate === undefined) !== (v.privateKey === undefined) && v.mode !== 'MUTUAL') {
      const f = v.clientCertificate === undefined ? 'clientCertificate' : 'privateKey';
      ctx.addIssue({
        code: 'custom',
        message: 'clientCertificate and privateKey go together',
        input: undefined,
        path: [f],
      });
    }
  });

export const identitySchema = z.strictObject({
  /** This workload's certificate (PEM or path); its URI SAN is its SPIFFE ID. */
  cert: pemOrPath,
  key: pemOrPath,
  /** The mesh CA bundle (PEM or path). */
  ca: pemOrPath,
});

export type TlsConfig = z.output<typeof tlsSchema>;
export type IdentityConfig = z.output<typeof identitySchema>;
