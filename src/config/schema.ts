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
import { gatewayDiscovery, gatewayIssues } from '../gateway/config.ts';
import { type GatewayConfig, gatewaySchema, serviceContextSchema } from '../gateway/schema.ts';
import { pathNormalizationSchema } from '../http/path-schema.ts';
import { liveConfigSchema } from '../live/schema.ts';
import { rateLimitIssues, rateLimitsSchema, serviceRateLimitsSchema } from '../ratelimit/schema.ts';
import { retriesSchema, retryBudgetSchema } from '../retry/schema.ts';
import { createRoutingFields, routeReferenceIssues, sourceLabelIssues } from '../routing/schema.ts';
import { identitySchema, tlsSchema } from '../tls/schema.ts';
import { xdsField } from '../xds/schema.ts';
import { nullProtoRecord } from './reserved.ts';
import { duration, durationAtLeast, labels, userRecord } from './zod-helpers.ts';

/** `trafficPolicy.connectionPool` (Istio). Defaults live in src/balancer/endpoint.ts. */
export const connectionPoolSchema = z.strictObject({
  tcp: z
    .strictObject({
      maxConnections: z.number().int().positive().optional(),
      connectTimeout: durationAtLeast(1, '0 would fail every TLS connection at once').optional(),
      /**
       * TCP keepalive (Istio's tcpKeepalive): `time` is the idle time before the first probe
       * (default 60 s, undici's). Node.js cannot set `interval` and `probes` per socket: the
       * system's values apply (fromIstio warns when they are given).
       */
      tcpKeepalive: z
        .strictObject({ time: durationAtLeast(1000, 'the kernel counts keepalive idle time in seconds') })
        .optional(),
      /** A connection is closed, once idle, when it is this old (undici's clientTtl). */
      maxConnectionDuration: durationAtLeast(
        1,
        '0 would close every connection after each request',
      ).optional(),
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
      /**
       * Retries outstanding to the service at once (Envoy's max_retries circuit breaker; Istio's
       * default is unlimited). A retry beyond it is not made: the caller gets the answer it had.
       */
      maxRetries: z.number().int().nonnegative().optional(),
    })
    .optional(),
});

/**
 * `trafficPolicy.portLevelSettings[]`: the policy of the endpoints listening on `port.number`
 * (Istio keys it by service port; meshwork, which has no service ports, by the endpoint's port).
 */
export const portTrafficPolicySchema = z.strictObject({
  port: z.strictObject({ number: z.number().int().min(1).max(65535) }),
  loadBalancer: loadBalancerSchema.optional(),
  connectionPool: connectionPoolSchema.optional(),
  outlierDetection: outlierDetectionSchema.optional(),
  tls: tlsSchema.optional(),
});

/**
 * `trafficPolicy.retryBudget` (Istio's, Envoy's retry-budget circuit breaker): retries in flight
 * are bounded by `percent` of the requests in flight (default 20%), and never below
 * `minRetryConcurrency` (default 3). With `budgetInterval`, the requests started within it count
 * too. (Not the service-level `retryBudget`, Linkerd's rate-based budget; both apply.)
 */
export const envoyRetryBudgetSchema = z.strictObject({
  percent: z.number().min(0).max(100).optional(),
  minRetryConcurrency: z.number().int().min(0).optional(),
  budgetInterval: duration.optional(),
});

export const trafficPolicySchema = z.strictObject({
  loadBalancer: loadBalancerSchema.optional(),
  connectionPool: connectionPoolSchema.optional(),
  outlierDetection: outlierDetectionSchema.optional(),
  circuitBreaker: circuitBreakerSchema.optional(),
  tls: tlsSchema.optional(),
  retryBudget: envoyRetryBudgetSchema.optional(),
  portLevelSettings: z
    .array(portTrafficPolicySchema)
    .superRefine((list, ctx) => {
      const seen = new Set<number>();
      list.forEach((s, i) => {
        if (seen.has(s.port.number))
          ctx.addIssue({
            code: 'custom',
            path: [i, 'port', 'number'],
            input: s.port.number,
            message: 'is listed twice',
          });
        seen.add(s.port.number);
      });
    })
    .optional(),
});

const SERVICE_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;

export const serviceFields = z.strictObject({
  /** Where the endpoints come from. Not with `gateway`: its address is where connections go. */
  discovery: discoverySchema.optional(),
  /** The service is in another mesh, reached through that mesh's gateway (src/gateway). */
  gateway: gatewaySchema.optional(),
  /** Which gateway context headers go to this service (src/gateway/schema.ts). */
  context: serviceContextSchema.optional(),
  trafficPolicy: trafficPolicySchema.optional(),
  /** `http` (VirtualService routes) and `subsets` (DestinationRule subsets): src/routing/schema.ts. */
  ...createRoutingFields(trafficPolicySchema),
  /** Istio HTTPRetry, service level (routes override it). */
  retries: retriesSchema.optional(),
  /** Covers all attempts (Istio route timeout); none by default. */
  timeout: duration.optional(),
  retryBudget: retryBudgetSchema.optional(),
  /** Rate limits on calls to this service, checked before anything is sent (src/ratelimit). */
  rateLimits: serviceRateLimitsSchema.optional(),
});

/**
 * A service: `discovery` finds its endpoints, or, behind a gateway, the gateway's address (or its
 * own discovery) does; the output always has `discovery`.
 */
export const serviceSchema = serviceFields
  .superRefine((s, ctx) => {
    if (s.gateway === undefined) {
      if (s.discovery === undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['discovery'],
          message: 'is required (or `gateway`, for a service of another mesh)',
          input: undefined,
        });
      return;
    }
    if (s.discovery !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['discovery'],
        message:
          'cannot be used with `gateway`: connections go to the gateway, so give its address in gateway.address (or gateway.discovery)',
        input: s.discovery,
      });
    for (const issue of gatewayIssues(
      s.gateway,
      s.trafficPolicy?.tls,
      s.subsets,
      s.trafficPolicy?.portLevelSettings,
    ))
      ctx.addIssue({ code: 'custom', ...issue });
  })
  .transform((s) => {
    const { discovery, ...rest } = s;
    return { ...rest, discovery: discovery ?? gatewayDiscovery(s.gateway as GatewayConfig) };
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
    /**
     * true: failures the mesh makes (timeout, overflow, no healthy endpoint, connection failure)
     * are answered as an Istio sidecar answers them, HTTP 504 / 503 with the Envoy response flag
     * in `x-meshwork-response-flags`, instead of a thrown error (docs/errors.md). Default false.
     */
    sidecarResponses: z.boolean().optional(),
    /** Bound on how long close() waits for in-flight requests before destroying pools. */
    closeTimeout: duration.optional(),
    /** Gateway context and trace propagation (src/context, docs/context.md). */
    context: contextSchema.optional(),
    /**
     * This workload's own labels (its pod labels, in Istio), matched by routes' `sourceLabels`
     * (docs/routing.md).
     */
    labels: labels.optional(),
    /** This workload's mesh identity for ISTIO_MUTUAL and the server side (src/tls, docs/mtls.md). */
    identity: identitySchema.optional(),
    /** Caller authorization enforced by mesh.inbound() (docs/context.md). */
    authorization: authorizationSchema.optional(),
    /**
     * How request paths are normalized before authorization, inbound routing by the app and
     * outbound route matching (Istio's meshConfig.pathNormalization; docs/context.md).
     */
    pathNormalization: pathNormalizationSchema.optional(),
    /** Where live changes come from: a watched file, Istio YAML, Consul or etcd (docs/live-config.md). */
    liveConfig: liveConfigSchema.optional(),
    /** Rate limits, plans and quotas enforced by mesh.inbound() (src/ratelimit, docs/rate-limits.md). */
    rateLimits: rateLimitsSchema.optional(),
    /** Join an xDS control plane (Istio's proxyless mode, any ADS server): docs/xds.md. */
    xds: xdsField.optional(),
    services: userRecord(
      z.string().regex(SERVICE_NAME, 'is not a valid service name (lowercase DNS label(s))'),
      serviceSchema,
    ).default(() => nullProtoRecord<z.output<typeof serviceSchema>>()),
  })
  .superRefine((c, ctx) => {
    for (const issue of crossServiceIssues(c)) ctx.addIssue({ ...issue });
  });

/**
 * THE checks across services and top-level fields (the live update's fast path runs the same):
 * route and mirror hosts and subsets must exist, subset policies must be per-service ones, and
 * sourceLabels need this workload's own labels.
 */
export function crossServiceIssues(c: {
  services: Record<string, z.output<typeof serviceSchema>>;
  unknownServices?: 'reject' | 'passthrough' | undefined;
  labels?: Readonly<Record<string, string>> | undefined;
}): { code: 'custom'; path: PropertyKey[]; message: string; input?: unknown }[] {
  const issues: { code: 'custom'; path: PropertyKey[]; message: string; input?: unknown }[] = [];
  for (const issue of subsetPolicyIssues(c.services)) issues.push({ ...issue, code: 'custom' });
  for (const issue of routeReferenceIssues(c.services, c.unknownServices === 'passthrough'))
    issues.push({ ...issue, code: 'custom' });
  if (c.labels === undefined)
    for (const issue of sourceLabelIssues(c.services)) issues.push({ ...issue, code: 'custom' });
  for (const issue of rateLimitIssues(c as Parameters<typeof rateLimitIssues>[0]))
    issues.push({ ...issue, code: 'custom' } as (typeof issues)[number]);
  return issues;
}

export type MeshConfig = z.output<typeof meshConfigSchema>;
export type MeshConfigInput = z.input<typeof meshConfigSchema>;
export type ServiceConfig = z.output<typeof serviceSchema>;
export type ServiceConfigInput = z.input<typeof serviceSchema>;
export type TrafficPolicy = z.output<typeof trafficPolicySchema>;
export type ConnectionPoolConfig = z.output<typeof connectionPoolSchema>;

/**
 * What a cluster policy narrower than the service (a subset's trafficPolicy, a portLevelSettings
 * entry) cannot set, and why: these are kept per service (outlier detection and the breaker judge
 * the service's endpoints; http2MaxRequests and maxRetries count the service's requests).
 * Refused, never ignored. Pools (connectionPool), TLS and the balancer are per cluster.
 */
export function subsetPolicyIssues(services: Record<string, z.output<typeof serviceSchema>>) {
  const issues: { code: 'custom'; path: (string | number)[]; message: string; input: unknown }[] = [];
  const check = (tp: Record<string, unknown> | undefined, path: (string | number)[], service: string) => {
    if (tp === undefined) return;
    const refuse = (field: string[], input: unknown) =>
      issues.push({
        code: 'custom',
        path: [...path, ...field],
        input,
        message: `is not supported on a subset or a port (it is counted per service): set it on services.${service}.trafficPolicy`,
      });
    for (const field of ['outlierDetection', 'circuitBreaker', 'retryBudget'])
      if (tp[field] !== undefined) refuse([field], tp[field]);
    const http = (tp.connectionPool as { http?: Record<string, unknown> } | undefined)?.http;
    for (const field of ['http2MaxRequests', 'maxRetries'])
      if (http?.[field] !== undefined) refuse(['connectionPool', 'http', field], http[field]);
  };
  for (const [name, svc] of Object.entries(services)) {
    svc.trafficPolicy?.portLevelSettings?.forEach((p, j) => {
      check(p as never, ['services', name, 'trafficPolicy', 'portLevelSettings', j], name);
    });
    (svc.subsets ?? []).forEach((sub, i) => {
      const tp = sub.trafficPolicy as z.output<typeof trafficPolicySchema> | undefined;
      const path = ['services', name, 'subsets', i, 'trafficPolicy'];
      check(tp as never, path, name);
      tp?.portLevelSettings?.forEach((p, j) => {
        check(p as never, [...path, 'portLevelSettings', j], name);
      });
    });
  }
  return issues;
}
