/**
 * The whole mesh config, in Istio's vocabulary (camelCase). Each feature folder owns the
 * schema of its own fields (src/<feature>/schema.ts); this file only composes them.
 * Objects are strict: an unknown field is an error, never silently ignored.
 */
import { z } from 'zod';
import { outlierDetectionSchema } from '../balancer/outlier-schema.ts';
import { loadBalancerSchema } from '../balancer/schema.ts';
import { circuitBreakerSchema } from '../breaker/schema.ts';
import { authorizationSchema, contextSchema } from '../context/schema.ts';
import { discoverySchema } from '../discovery/schema.ts';
import { pathNormalizationSchema } from '../http/path-schema.ts';
import { retriesSchema, retryBudgetSchema } from '../retry/schema.ts';
import { createRoutingFields, routeReferenceIssues } from '../routing/schema.ts';
import { identitySchema, tlsSchema } from '../tls/schema.ts';
import { xdsField } from '../xds/schema.ts';
import { nullProtoRecord } from './reserved.ts';
import { duration, durationAtLeast, userRecord } from './zod-helpers.ts';

/** `trafficPolicy.connectionPool` (Istio). Defaults live in src/balancer/endpoint.ts. */
export const connectionPoolSchema = z.strictObject({
  tcp: z
    .strictObject({
      maxConnections: z.number().int().positive().optional(),
      connectTimeout: durationAtLeast(1, '0 would fail every TLS connection at once').optional(),
    })
    .optional(),
  http: z
    .strictObject({
      http1MaxPendingRequests: z.number().int().positive().optional(),
      http2MaxRequests: z.number().int().positive().optional(),
      maxRequestsPerConnection: z.number().int().nonnegative().optional(),
      idleTimeout: durationAtLeast(1, 'undici refuses 0, so every request would fail').optional(),
      /** HTTP/2 to the endpoints: UPGRADE = h2c by prior knowledge, or ALPN h2 over TLS (src/http/protocol.ts). */
      h2UpgradePolicy: z.enum(['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE']).optional(),
      /** true: HTTP/1.1, the in-process client's protocol; h2UpgradePolicy has no effect (Istio). */
      useClientProtocol: z.boolean().optional(),
      /** Concurrent streams per HTTP/2 connection (undici's default: 100). */
      maxConcurrentStreams: z
        .number()
        .int()
        .positive()
        .max(2 ** 31 - 1)
        .optional(),
    })
    .optional(),
});

export const trafficPolicySchema = z.strictObject({
  loadBalancer: loadBalancerSchema.optional(),
  connectionPool: connectionPoolSchema.optional(),
  outlierDetection: outlierDetectionSchema.optional(),
  circuitBreaker: circuitBreakerSchema.optional(),
  tls: tlsSchema.optional(),
});

const SERVICE_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;

export const serviceSchema = z.strictObject({
  discovery: discoverySchema,
  trafficPolicy: trafficPolicySchema.optional(),
  /** `http` (VirtualService routes) and `subsets` (DestinationRule subsets): src/routing/schema.ts. */
  ...createRoutingFields(trafficPolicySchema),
  /** Istio HTTPRetry, service level (routes override it). */
  retries: retriesSchema.optional(),
  /** Covers all attempts (Istio route timeout); none by default. */
  timeout: duration.optional(),
  retryBudget: retryBudgetSchema.optional(),
});

export const meshConfigSchema = z
  .strictObject({
    /** This mesh's own zone (locality). Falls back to MESHWORK_ZONE. */
    zone: z.string().min(1).optional(),
    /**
     * What to do with a host that is not a configured service: "reject" (default) fails with
     * MESHWORK_ERR_UNKNOWN_SERVICE; "passthrough" sends it through a plain undici Agent.
     */
    unknownServices: z.enum(['reject', 'passthrough']).optional(),
    /** Bound on how long close() waits for in-flight requests before destroying pools. */
    closeTimeout: duration.optional(),
    /** Gateway context and trace propagation (src/context, docs/context.md). */
    context: contextSchema.optional(),
    /** This workload's mesh identity for ISTIO_MUTUAL and the server side (src/tls, docs/mtls.md). */
    identity: identitySchema.optional(),
    /** Caller authorization enforced by mesh.inbound() (docs/context.md). */
    authorization: authorizationSchema.optional(),
    /**
     * How request paths are normalized before authorization, inbound routing by the app and
     * outbound route matching (Istio's meshConfig.pathNormalization; docs/context.md).
     */
    pathNormalization: pathNormalizationSchema.optional(),
    /** Join an xDS control plane (Istio's proxyless mode, any ADS server): docs/xds.md. */
    xds: xdsField.optional(),
    services: userRecord(
      z.string().regex(SERVICE_NAME, 'is not a valid service name (lowercase DNS label(s))'),
      serviceSchema,
    ).default(() => nullProtoRecord<z.output<typeof serviceSchema>>()),
  })
  .superRefine((c, ctx) => {
    // References across services: route/mirror hosts and subsets must exist.
    for (const issue of subsetPolicyIssues(c.services)) ctx.addIssue(issue);
    for (const issue of routeReferenceIssues(c.services, c.unknownServices === 'passthrough'))
      ctx.addIssue({ ...issue });
  });

export type MeshConfig = z.output<typeof meshConfigSchema>;
export type MeshConfigInput = z.input<typeof meshConfigSchema>;
export type ServiceConfig = z.output<typeof serviceSchema>;
export type ServiceConfigInput = z.input<typeof serviceSchema>;
export type TrafficPolicy = z.output<typeof trafficPolicySchema>;
export type ConnectionPoolConfig = z.output<typeof connectionPoolSchema>;

/**
 * A subset's trafficPolicy may only set `loadBalancer`: pools, TLS, outlier detection and the
 * breaker belong to endpoints and services, which all subsets share. Refused, never ignored.
 */
function subsetPolicyIssues(services: Record<string, z.output<typeof serviceSchema>>) {
  const issues: { code: 'custom'; path: (string | number)[]; message: string; input: unknown }[] = [];
  for (const [name, svc] of Object.entries(services)) {
    (svc.subsets ?? []).forEach((sub, i) => {
      const tp = (sub.trafficPolicy ?? {}) as Record<string, unknown>;
      for (const field of ['connectionPool', 'tls', 'outlierDetection', 'circuitBreaker']) {
        if (tp[field] === undefined) continue;
        issues.push({
          code: 'custom',
          path: ['services', name, 'subsets', i, 'trafficPolicy', field],
          input: tp[field],
          message: `is not supported on a subset (endpoints are shared by the whole service): set it on services.${name}.trafficPolicy`,
        });
      }
    });
  }
  return issues;
}
