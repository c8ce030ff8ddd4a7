/** `trafficPolicy.tls` (Istio ClientTLSSettings) and the mesh-wide `identity`. See docs/mtls.md. */
import { z } from 'zod';
import { userRecord } from '../config/zod-helpers.ts';
import { TRUST_DOMAIN } from './bundle.ts';

/** A PEM string (contains "-----BEGIN") or a path to a PEM file (watched for rotation). */
const pemOrPath = z.string().min(1);

/** A SPIFFE trust domain name (`cluster.local`, `prod.example.org`). */
const trustDomainName = z
  .string()
  .regex(TRUST_DOMAIN, 'is not a SPIFFE trust domain name (lowercase letters, digits, ".", "-", "_")');

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
    /**
     * The SPIFFE trust domain the server belongs to: its certificate is verified against that
     * domain's bundle only (`identity.trustBundles`, or `identity.ca` for the own domain and its
     * aliases), and its URI SAN must be in that domain. Default with ISTIO_MUTUAL: the own domain.
     */
    trustDomain: trustDomainName.optional(),
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
    if (v.trustDomain !== undefined && v.mode === 'DISABLE')
      ctx.addIssue({
        code: 'custom',
        message: 'needs TLS (mode SIMPLE, MUTUAL or ISTIO_MUTUAL)',
        input: v.trustDomain,
        path: ['trustDomain'],
      });
    if (v.trustDomain !== undefined && v.caCertificates !== undefined)
      ctx.addIssue({
        code: 'custom',
        message:
          'and trustDomain both say which CA verifies the server: set one (trustDomain takes the bundle from identity.trustBundles)',
        input: v.caCertificates,
        path: ['caCertificates'],
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

/** A trust bundle: PEM (or a path to it), or a SPIFFE bundle (JWKS JSON, or a path to it). */
const trustBundleSchema = z.union([
  pemOrPath,
  z.strictObject({
    /** The SPIFFE bundle format (what SPIRE's bundle endpoint serves): JSON, or a path to a JSON file. */
    spiffeBundle: z.string().min(1),
  }),
]);

export const identitySchema = z
  .strictObject({
    /** This workload's certificate (PEM or path); its URI SAN is its SPIFFE ID. */
    cert: pemOrPath,
    key: pemOrPath,
    /** The CA bundle of the own trust domain (PEM or path). */
    ca: pemOrPath,
    /** The own trust domain. Default: the trust domain of the URI SAN of `cert`. */
    trustDomain: trustDomainName.optional(),
    /**
     * The bundles of other trust domains, by domain name: peers whose SPIFFE ID is in one of
     * them are verified against that bundle only. Watched like the identity files.
     */
    trustBundles: userRecord(z.string(), trustBundleSchema).optional(),
    /**
     * Istio's MeshConfig trustDomainAliases: SPIFFE IDs in these domains are the own domain's
     * (verified against `ca`, matched as the own domain by principals and context trust).
     */
    trustDomainAliases: z.array(trustDomainName).optional(),
  })
  .superRefine((v, ctx) => {
    for (const td of Object.keys(v.trustBundles ?? {})) {
      if (!TRUST_DOMAIN.test(td))
        ctx.addIssue({
          code: 'custom',
          message: `is not a SPIFFE trust domain name (lowercase letters, digits, ".", "-", "_")`,
          input: td,
          path: ['trustBundles', td],
        });
      else if (td === v.trustDomain)
        ctx.addIssue({
          code: 'custom',
          message: 'is the own trust domain: its bundle is identity.ca',
          input: td,
          path: ['trustBundles', td],
        });
      else if (v.trustDomainAliases?.includes(td))
        ctx.addIssue({
          code: 'custom',
          message:
            'is in trustDomainAliases: an alias is verified against identity.ca and has no bundle of its own',
          input: td,
          path: ['trustBundles', td],
        });
    }
  });

export type TlsConfig = z.output<typeof tlsSchema>;
export type IdentityConfig = z.output<typeof identitySchema>;
export type TrustBundleConfig = z.output<typeof trustBundleSchema>;
