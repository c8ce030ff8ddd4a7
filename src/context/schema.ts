/**
 * `context` (gateway context propagation), `authorization` (Istio AuthorizationPolicy-like rules
 * enforced by mesh.inbound()). See docs/context.md.
 */
import { z } from 'zod';
import { duration } from '../config/zod-helpers.ts';

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const headerName = z
  .string()
  .regex(HEADER_NAME, 'is not a valid HTTP header name')
  .transform((h) => h.toLowerCase());

const spiffeId = z
  .string()
  .regex(/^spiffe:\/\/[^/\s]+(\/\S*)?$/, 'is not a SPIFFE ID (spiffe://trust-domain/path)');

const pemOrPath = z.string().min(1);

const oneOrMore = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

/** The largest `clockSkew` accepted: more would let expired tokens live on. */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;

export const signatureSchema = z
  .strictObject({
    /** The header carrying the compact JWS. Default `x-meshwork-context-token`. */
    header: headerName.optional(),
    /** Shared secret for HS256. */
    hmacSecret: z.string().min(16, 'must be at least 16 characters').optional(),
    /** PEM public key (or a path to one) for ES256. */
    publicKey: pemOrPath.optional(),
    /** Accepted `alg` values. Default: HS256 with hmacSecret, ES256 with publicKey. */
    algorithms: z
      .array(z.enum(['HS256', 'ES256']))
      .min(1)
      .optional(),
    /** Allowed clock skew on exp/nbf. Default 30 s, at most 5 minutes. */
    clockSkew: duration
      .refine((ms) => ms <= MAX_CLOCK_SKEW_MS, 'must be at most 5m (a token outlives its exp by this much)')
      .optional(),
    /** When set, the token's `aud` claim must hold one of these values. */
    audience: oneOrMore.optional(),
    /** When set, the token's `iss` claim must be one of these values. */
    issuer: oneOrMore.optional(),
  })
  .superRefine((v, ctx) => {
    if (!v.hmacSecret && !v.publicKey) {
      ctx.addIssue({ code: 'custom', message: 'needs hmacSecret or publicKey', input: v, path: [] });
    }
    for (const [i, alg] of (v.algorithms ?? []).entries()) {
      if (alg === 'HS256' && !v.hmacSecret)
        ctx.addIssue({
          code: 'custom',
          message: 'HS256 needs hmacSecret',
          input: alg,
          path: ['algorithms', i],
        });
      if (alg === 'ES256' && !v.publicKey)
        ctx.addIssue({
          code: 'custom',
          message: 'ES256 needs publicKey',
          input: alg,
          path: ['algorithms', i],
        });
    }
  });

export const trustSchema = z.strictObject({
  /** Accept plain context headers only from these mTLS peers (URI SAN of the client certificate). */
  callers: z.array(spiffeId).optional(),
  /** Accept context only from a compact JWS signed by the gateway. */
  signature: signatureSchema.optional(),
});

export const contextSchema = z.strictObject({
  /** Gateway header names to carry (lowercased). */
  headers: z.array(headerName).default([]),
  /** Forward W3C `baggage`. Default true. */
  baggage: z.boolean().default(true),
  /** Who may set the context headers. Default: anyone (see docs/context.md). */
  trust: trustSchema.optional(),
});

/** Istio principal: `cluster.local/ns/x/sa/y` or `spiffe://cluster.local/ns/x/sa/y`, with `*` prefix/suffix. */
const stringList = z.array(z.string().min(1)).min(1);

const sourceSchema = z.strictObject({
  principals: stringList.optional(),
  notPrincipals: stringList.optional(),
});
const operationSchema = z.strictObject({
  paths: stringList.optional(),
  notPaths: stringList.optional(),
  methods: stringList.optional(),
  notMethods: stringList.optional(),
});
const ruleSchema = z.strictObject({
  from: z.array(z.strictObject({ source: sourceSchema })).optional(),
  to: z.array(z.strictObject({ operation: operationSchema })).optional(),
});

export const authorizationPolicySchema = z.strictObject({
  name: z.string().min(1).optional(),
  action: z.enum(['ALLOW', 'DENY']).default('ALLOW'),
  /** Istio: an ALLOW policy with no rules allows nothing; `rules: [{}]` matches every request. */
  rules: z.array(ruleSchema).default([]),
});

/**
 * How policy paths compare with the request path. Istio compares exactly (SENSITIVE), but
 * Express routes `/ADMIN` to `/admin`; FAIL_CLOSED (default) folds case only where that refuses
 * more (a DENY policy's `paths`, an ALLOW policy's `notPaths`). See docs/context.md.
 */
export const pathCaseSchema = z.enum(['FAIL_CLOSED', 'SENSITIVE', 'INSENSITIVE']);

export const authorizationSchema = z.strictObject({
  policies: z.array(authorizationPolicySchema).default([]),
  pathCase: pathCaseSchema.optional(),
});

export type ContextConfig = z.output<typeof contextSchema>;
export type TrustConfig = z.output<typeof trustSchema>;
export type SignatureConfig = z.output<typeof signatureSchema>;
export type AuthorizationConfig = z.output<typeof authorizationSchema>;
export type AuthorizationPolicy = z.output<typeof authorizationPolicySchema>;
export type AuthorizationRule = z.output<typeof ruleSchema>;
export type PathCase = z.output<typeof pathCaseSchema>;
