/**
 * `xds`: join an xDS control plane (istiod, a go-control-plane server...) as a proxyless client.
 * See docs/xds.md. The bootstrap itself is checked by src/xds/bootstrap.ts (its own format,
 * gRPC's), when createMesh reads it.
 */
import { z } from 'zod';
import { durationAtLeast } from '../config/zod-helpers.ts';

export const xdsSchema = z.strictObject({
  /**
   * The gRPC/Istio bootstrap: a path to its JSON file, or the bootstrap object itself. Default:
   * the file named by GRPC_XDS_BOOTSTRAP, else the JSON in GRPC_XDS_BOOTSTRAP_CONFIG (as gRPC).
   */
  bootstrap: z.union([z.string().min(1), z.record(z.string(), z.unknown())]).optional(),
  /**
   * Names (URL authorities: `reviews.default.svc.cluster.local:9080`, `svc`) subscribed at
   * createMesh rather than on first use.
   */
  listeners: z.array(z.string().min(1).max(1024)).optional(),
  /**
   * How long the first request to a name waits for its listener, routes and clusters (then for
   * the endpoints, as discovery's first wait). Default 5s.
   */
  initialTimeout: durationAtLeast(1, '0 would fail every first request').optional(),
  /**
   * A subscribed resource the control plane has not sent within this time counts as missing
   * (gRPC A57: 15s).
   */
  resourceTimeout: durationAtLeast(1, '0 would declare every resource missing at once').optional(),
});

export type XdsConfig = z.output<typeof xdsSchema>;

export const XDS_DEFAULTS = {
  initialTimeout: 5_000,
  resourceTimeout: 15_000,
  /** Reconnection backoff (gRPC connection backoff: 1s base, x1.6, 120s cap, ±20% jitter). */
  backoffBaseMs: 1_000,
  backoffMaxMs: 120_000,
} as const;
