import { z } from 'zod';
import { duration } from '../config/zod-helpers.ts';
import { isPrime } from './maglev.ts';

/**
 * `simple` algorithms. PEAK_EWMA is meshwork's default (Istio has no such value; its default is
 * LEAST_REQUEST). LEAST_CONN is Istio's deprecated alias of LEAST_REQUEST. UNSPECIFIED means default.
 */
export const LB_ALGORITHMS = [
  'PEAK_EWMA',
  'LEAST_REQUEST',
  'LEAST_CONN',
  'ROUND_ROBIN',
  'RANDOM',
  'UNSPECIFIED',
] as const;

export type LbAlgorithm = (typeof LB_ALGORITHMS)[number];

const percent = z.number().min(0).max(100);

/** Envoy's (and so Istio's) largest Maglev table. */
export const MAGLEV_MAX_TABLE_SIZE = 5_000_011;

/** `consistentHash` (Istio), with `contextKey` for a gateway-context header. */
export const consistentHashSchema = z
  .strictObject({
    httpHeaderName: z.string().min(1).optional(),
    httpCookie: z
      .strictObject({
        name: z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'is not a valid cookie name'),
        path: z.string().startsWith('/').optional(),
        /**
         * Lifetime of the cookie generated when a request has none; 0 makes a session cookie.
         * Unset: no cookie is generated (Envoy, Istio), so requests without it are not sticky.
         */
        ttl: duration.optional(),
        /** Extra attributes of the generated cookie (`SameSite=Strict`, `Secure`), as Istio's `attributes`. */
        attributes: z
          .array(
            z.strictObject({
              name: z
                .string()
                .regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'is not a valid cookie attribute name'),
              value: z
                .string()
                .regex(
                  /^[\x21-\x3a\x3c-\x7e ]*$/,
                  'cannot be sent in a cookie attribute (";", control characters)',
                )
                .optional(),
            }),
          )
          .optional(),
      })
      .optional(),
    httpQueryParameterName: z.string().min(1).optional(),
    useSourceIp: z.boolean().optional(),
    /** Name of a gateway-context header whose value is the key. */
    contextKey: z.string().min(1).optional(),
    ringHash: z
      .strictObject({ minimumRingSize: z.number().int().positive().max(8_388_608).optional() })
      .optional(),
    maglev: z
      .strictObject({
        tableSize: z
          .number()
          .int()
          .max(MAGLEV_MAX_TABLE_SIZE)
          // The primality test runs only on sizes within the bound (it is slow on huge numbers).
          .refine((n) => n > MAGLEV_MAX_TABLE_SIZE || isPrime(n), {
            message: 'must be a prime number (e.g. 65537)',
          })
          .optional(),
      })
      .optional(),
    /** Istio's deprecated top-level form of ringHash.minimumRingSize. */
    minimumRingSize: z.number().int().positive().max(8_388_608).optional(),
  })
  .superRefine((v, ctx) => {
    const sources = (
      ['httpHeaderName', 'httpCookie', 'httpQueryParameterName', 'contextKey'] as const
    ).filter((k) => v[k] !== undefined);
    if (v.useSourceIp) sources.push('useSourceIp' as never);
    if (sources.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message:
          sources.length === 0
            ? 'needs one hash key: httpHeaderName, httpCookie, httpQueryParameterName, useSourceIp or contextKey'
            : `has several hash keys (${sources.join(', ')}); set exactly one`,
        input: v,
      });
    }
    if (v.ringHash && v.maglev) {
      ctx.addIssue({
        code: 'custom',
        path: ['maglev'],
        message: 'cannot be set together with ringHash',
        input: v,
      });
    }
    if (v.maglev && v.minimumRingSize !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['minimumRingSize'],
        message: 'applies to ringHash, not maglev',
        input: v.minimumRingSize,
      });
    }
  });

const localityPattern = z
  .string()
  .regex(/^(\*|[^/*]+(\/(\*|[^/*]+)){0,2}(\/\*)?)$/, 'is not a locality ("region", "region/zone/*", "*")');

/**
 * Istio's `localityLbSetting`. Localities are `region/zone/subzone`: the mesh's `zone` and the
 * endpoints' `zone` are read that way (without "/", a value is a region).
 */
export const localityLbSettingSchema = z
  .strictObject({
    /** Default: on when the mesh knows its own zone (config `zone` or MESHWORK_ZONE). */
    enabled: z.boolean().optional(),
    /**
     * Percentage of healthy local endpoints under which traffic starts spilling to other zones,
     * in proportion (default 71.43 = 100 / Envoy's overprovisioning factor 1.4).
     */
    failoverThreshold: percent.optional(),
    /**
     * Shares of traffic per locality, for callers in `from` (the first rule that covers the
     * mesh's locality applies): `{ from: 'us-west/zone1/*', to: { 'us-west/zone1/*': 80, 'us-west/zone2/*': 20 } }`.
     * A locality not listed gets no traffic.
     */
    distribute: z
      .array(
        z.strictObject({
          from: localityPattern,
          to: z
            .record(localityPattern, z.number().int().min(0).max(100))
            .refine((to) => Object.values(to).reduce((a, b) => a + b, 0) === 100, {
              message: 'weights must sum to 100',
            }),
        }),
      )
      .optional(),
    /** When the local region is unhealthy, traffic goes to `to` before any other region. */
    failover: z.array(z.strictObject({ from: z.string().min(1), to: z.string().min(1) })).optional(),
    /**
     * Tiers by labels: endpoints whose labels match the mesh's own `labels` for all the keys
     * first, then the first N-1... (`key=value` compares with that value;
     * `topology.kubernetes.io/region` and `/zone` with the localities).
     */
    failoverPriority: z.array(z.string().min(1)).optional(),
  })
  .superRefine((v, ctx) => {
    if (v.distribute !== undefined && (v.failover !== undefined || v.failoverPriority !== undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['distribute'],
        input: v.distribute,
        message: 'cannot be set together with failover or failoverPriority (Istio)',
      });
    }
  });

/** Istio's `warmup` (1.24+): slow start with its curve. */
export const warmupSchema = z.strictObject({
  duration: duration,
  /** Weight at the start of the window, in percent of the full weight (default 10, Envoy/Istio). */
  minimumPercent: percent.optional(),
  /** Curve: 1 is linear, higher is slower at first (default 1, Envoy/Istio). */
  aggression: z.number().min(1).optional(),
});

/** `trafficPolicy.loadBalancer` (Istio's DestinationRule vocabulary). */
export const loadBalancerSchema = z
  .strictObject({
    simple: z.enum(LB_ALGORITHMS).optional(),
    consistentHash: consistentHashSchema.optional(),
    localityLbSetting: localityLbSettingSchema.optional(),
    /** Slow start window for new endpoints (Istio field; a duration such as "30s"). */
    warmupDurationSecs: duration.optional(),
    warmup: warmupSchema.optional(),
    /**
     * Below this percentage of available endpoints, balance over all of them, ignoring health
     * and ejection (Envoy's healthy_panic_threshold, default 50; 0 disables panic mode).
     */
    panicThreshold: percent.optional(),
  })
  .superRefine((v, ctx) => {
    if (v.simple !== undefined && v.consistentHash !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['consistentHash'],
        message: 'cannot be set together with simple (Istio: one of simple or consistentHash)',
        input: v.consistentHash,
      });
    }
    if (v.warmupDurationSecs !== undefined && v.warmup !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['warmup'],
        message: 'cannot be set together with warmupDurationSecs',
        input: v.warmup,
      });
    }
  });

export type LoadBalancerConfig = z.output<typeof loadBalancerSchema>;
export type LoadBalancerConfigInput = z.input<typeof loadBalancerSchema>;
export type ConsistentHashConfig = z.output<typeof consistentHashSchema>;
export type LocalityLbSetting = z.output<typeof localityLbSettingSchema>;
