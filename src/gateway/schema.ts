/**
 * `services.<name>.gateway`: the service lives in another mesh and is reached through that mesh's
 * gateway (docs/mtls.md#across-meshes-through-a-gateway). `services.<name>.context`: which
 * gateway context headers go to the service (docs/context.md#per-destination-context).
 */
import { z } from 'zod';
import { hostPort } from '../config/zod-helpers.ts';
import { discoverySchema } from '../discovery/schema.ts';
import { tlsSchema } from '../tls/schema.ts';

const SERVICE_HOST = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;

export const gatewaySchema = z
  .strictObject({
    /**
     * AUTO_PASSTHROUGH (Istio's east-west gateway): TLS goes through the gateway, end to end to the
     * remote workload, routed on the SNI `outbound_.<port>_.<subset>_.<host>`. TERMINATE: TLS ends
     * at the gateway, which forwards by Host.
     */
    mode: z.enum(['AUTO_PASSTHROUGH', 'TERMINATE']),
    /** The gateway's address(es), `host:port`. Or `discovery` to find them. */
    address: z.union([hostPort, z.array(hostPort).min(1)]).optional(),
    /** Finds the gateway's addresses (static, DNS, Consul, etcd, file), instead of `address`. */
    discovery: discoverySchema.optional(),
    /** AUTO_PASSTHROUGH: the service's host name in the remote mesh, in the SNI. Default: the service name. */
    host: z.string().regex(SERVICE_HOST, 'is not a host name (lowercase DNS labels)').optional(),
    /**
     * AUTO_PASSTHROUGH: the service's port in the remote mesh, in the SNI. Default: the route's
     * `destination.port.number`, else the port in the URL, else 80 (443 for https://).
     */
    port: z.number().int().min(1).max(65535).optional(),
    /** TERMINATE: the identities the gateway's own certificate must present (SPIFFE ID or DNS name). */
    subjectAltNames: z.array(z.string().min(1)).min(1).optional(),
    /** TERMINATE: TLS to the gateway (the fields of trafficPolicy.tls). Default: SIMPLE, system roots. */
    tls: tlsSchema.optional(),
  })
  .superRefine((g, ctx) => {
    const issue = (path: string, message: string, input: unknown) =>
      ctx.addIssue({ code: 'custom', path: [path], message, input });
    if (g.address === undefined && g.discovery === undefined)
      issue('address', 'is required: the gateway\'s "host:port" (or give gateway.discovery)', g.address);
    if (g.address !== undefined && g.discovery !== undefined)
      issue('discovery', 'cannot be used with gateway.address: give one of them', g.discovery);
    if (g.mode === 'AUTO_PASSTHROUGH') {
      const why =
        'is only for mode TERMINATE: in AUTO_PASSTHROUGH the TLS session is with the remote workload';
      if (g.subjectAltNames !== undefined)
        issue(
          'subjectAltNames',
          `${why} (its identity goes in trafficPolicy.tls.subjectAltNames)`,
          g.subjectAltNames,
        );
      if (g.tls !== undefined) issue('tls', `${why} (set trafficPolicy.tls)`, g.tls);
    } else {
      for (const k of ['host', 'port'] as const)
        if (g[k] !== undefined)
          issue(k, 'is only for mode AUTO_PASSTHROUGH (the SNI); a TERMINATE gateway forwards by Host', g[k]);
      if (g.tls?.mode === 'DISABLE')
        issue(
          'tls',
          'mode DISABLE: a TERMINATE gateway is reached over TLS (SIMPLE, MUTUAL or ISTIO_MUTUAL)',
          g.tls,
        );
    }
  });

export type GatewayConfig = z.output<typeof gatewaySchema>;

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** `services.<name>.context`: which gateway context headers the mesh sends to this service. */
export const serviceContextSchema = z.strictObject({
  /**
   * true: every gateway context header (today's default for services of this mesh); false: none
   * (the default for a service behind a gateway); a list: only these headers.
   */
  propagate: z.union([
    z.boolean(),
    z.array(
      z
        .string()
        .regex(HEADER_NAME, 'is not a valid HTTP header name')
        .transform((h) => h.toLowerCase()),
    ),
  ]),
});

export type ServiceContextConfig = z.output<typeof serviceContextSchema>;
