import { isIP } from 'node:net';
import { z } from 'zod';
import { parseHostPort } from '../config/address.ts';
import { duration, durationAtLeast, hostPort, labels, period } from '../config/zod-helpers.ts';
import { hasUserinfo } from '../telemetry/url.ts';

/** One static endpoint: "host:port" or { address, labels, weight, zone }. */
export const staticEndpoint = z.union([
  hostPort,
  z.strictObject({
    address: hostPort,
    labels: labels.optional(),
    weight: z.number().int().positive().optional(),
    zone: z.string().min(1).optional(),
  }),
]);

/** A DNS server: an IP, or "ip:port" ("[::1]:5353" for IPv6). */
const dnsServer = z
  .string()
  .refine((v) => isIP(v) !== 0 || (parseHostPort(v) !== undefined && isIP(parseHostPort(v)!.host) !== 0), {
    message: 'is not a DNS server address (an IP or "ip:port", IPv6 as "[::1]:5353")',
  });

const port = z.number().int().min(1).max(65535);

/** `discovery.dns`: `{ host, port }` (A/AAAA) or `{ srv }` (SRV: target, port, priority, weight). */
export const dnsSchema = z
  .strictObject({
    host: z.string().min(1).optional(),
    port: port.optional(),
    srv: z.string().min(1).optional(),
    /** Which address records `{ host, port }` reads. Default "any" (A and AAAA). */
    family: z.enum(['any', 'ipv4', 'ipv6']).optional(),
    /** DNS servers to ask instead of the system's (e.g. ["127.0.0.1:5353"]). */
    servers: z.array(dnsServer).min(1).optional(),
    /** Bounds on the re-resolve interval, which otherwise follows the records' TTL. */
    minRefresh: period('re-resolves a name').optional(),
    maxRefresh: period('re-resolves a name').optional(),
    /** Per-query timeout. */
    timeout: durationAtLeast(1, '0 would time every query out').optional(),
  })
  .superRefine((d, ctx) => {
    if (d.srv !== undefined) {
      for (const k of ['host', 'port', 'family'] as const)
        if (d[k] !== undefined)
          ctx.addIssue({ code: 'custom', path: [k], message: 'cannot be used with "srv"', input: d[k] });
    } else {
      if (d.host === undefined)
        ctx.addIssue({ code: 'custom', path: ['host'], message: 'is required (or use "srv")', input: d });
      if (d.port === undefined)
        ctx.addIssue({ code: 'custom', path: ['port'], message: 'is required with "host"', input: d });
    }
    if (d.minRefresh !== undefined && d.maxRefresh !== undefined && d.minRefresh > d.maxRefresh)
      ctx.addIssue({
        code: 'custom',
        path: ['minRefresh'],
        message: 'must not be greater than maxRefresh',
        input: d.minRefresh,
      });
  });

/** The messages for an address with userinfo (the value itself is never shown). */
export const ETCD_CREDENTIALS =
  'has credentials (user:password@), which are not used there: set discovery.etcd.username and password';
export const CONSUL_CREDENTIALS =
  'has credentials (user:password@), which are not used there: Consul authenticates with a token ' +
  '(discovery.consul.token or CONSUL_HTTP_TOKEN)';

/** `discovery.consul`. Unset host/port/secure/token fall back to CONSUL_HTTP_ADDR / CONSUL_HTTP_TOKEN. */
export const consulSchema = z.strictObject({
  /** The Consul service name. Default: the mesh service name. */
  service: z.string().min(1).optional(),
  host: z
    .string()
    .min(1)
    .refine((h) => !hasUserinfo(h), { message: CONSUL_CREDENTIALS, params: { hideInput: true } })
    .optional(),
  port: port.optional(),
  secure: z.boolean().optional(),
  token: z.string().min(1).optional(),
  dc: z.string().min(1).optional(),
  /** One tag, or several (an instance must have all of them; sent as repeated `?tag=`). */
  tag: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
  /** A Consul filter expression (`?filter=`). */
  filter: z.string().min(1).optional(),
  /** Allow any Consul server to answer (`?stale`). Default false. */
  stale: z.boolean().optional(),
  /** Blocking query wait. Default 60s (Consul caps it at 10m). */
  wait: duration.optional(),
  /** Least time between two queries, even when the index churns. Default 250ms. */
  minInterval: duration.optional(),
  /** A non-blocking full re-read this often. Default 5m. */
  refreshInterval: period('re-reads the whole service').optional(),
});

/** `discovery.etcd`: keys under `prefix`, watched. */
export const etcdSchema = z.strictObject({
  /**
   * etcd client URLs or host:port. Default: ETCDCTL_ENDPOINTS, else http://127.0.0.1:2379.
   * Credentials go in username/password: a URL with `user:password@` is refused.
   */
  hosts: z
    .array(
      z
        .string()
        .min(1)
        .refine((h) => !hasUserinfo(h), { message: ETCD_CREDENTIALS, params: { hideInput: true } }),
    )
    .min(1)
    .optional(),
  /** Key prefix. Default "/meshwork/services/<service>/". */
  prefix: z.string().min(1).optional(),
  username: z.string().min(1).optional(),
  password: z.string().min(1).optional(),
});

/** `discovery.file`: a JSON or YAML file, watched. */
export const fileSchema = z.strictObject({
  path: z.string().min(1),
  /** Poll interval (fallback for file systems where fs.watch misses changes). Default 2s. */
  pollInterval: period('reads the file').optional(),
});

/** `discovery.healthCheck`: optional active HTTP health checks of each endpoint. */
export const healthCheckSchema = z.strictObject({
  path: z.string().startsWith('/').optional(),
  interval: period('probes each endpoint').optional(),
  timeout: durationAtLeast(1, '0 would time every probe out and mark every endpoint unhealthy').optional(),
  healthyThreshold: z.number().int().positive().optional(),
  unhealthyThreshold: z.number().int().positive().optional(),
});

/** `discovery.xds`: the endpoints of a cluster of the mesh's xDS control plane (EDS). */
export const xdsDiscoverySchema = z.strictObject({ cluster: z.string().min(1) });

export const PROVIDER_KEYS = ['static', 'dns', 'consul', 'etcd', 'file', 'xds'] as const;

/** Defaults of the lifecycle fields (applied by the endpoint set, not by the schema). */
export const DISCOVERY_DEFAULTS = {
  initialTimeout: 5_000,
  drainTimeout: 30_000,
  healthCheck: {
    path: '/healthz',
    interval: 10_000,
    timeout: 1_000,
    healthyThreshold: 2,
    unhealthyThreshold: 3,
  },
} as const;

/**
 * `services.<name>.discovery`: exactly one provider key (static, dns, consul, etcd, file, xds) plus
 * the lifecycle fields.
 */
export const discoverySchema = z
  .strictObject({
    static: z.array(staticEndpoint).optional(),
    dns: dnsSchema.optional(),
    consul: consulSchema.optional(),
    etcd: etcdSchema.optional(),
    file: fileSchema.optional(),
    xds: xdsDiscoverySchema.optional(),
    /** How long the first request waits for the first resolution. Default 5s. */
    initialTimeout: duration.optional(),
    /** How long a removed endpoint's in-flight requests may take before its pool is closed. Default 30s. */
    drainTimeout: duration.optional(),
    healthCheck: healthCheckSchema.optional(),
  })
  .refine((d) => PROVIDER_KEYS.filter((k) => d[k] !== undefined).length === 1, {
    message: `needs exactly one provider (${PROVIDER_KEYS.join(', ')})`,
  });

export type DiscoveryConfig = z.output<typeof discoverySchema>;
export type DnsConfig = z.output<typeof dnsSchema>;
export type ConsulConfig = z.output<typeof consulSchema>;
export type EtcdConfig = z.output<typeof etcdSchema>;
export type FileConfig = z.output<typeof fileSchema>;
export type HealthCheckConfig = z.output<typeof healthCheckSchema>;
