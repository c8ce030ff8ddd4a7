/**
 * `xds`: join an xDS control plane (istiod, a go-control-plane server...) as a proxyless client.
 * See docs/xds.md. The bootstrap itself is checked by src/xds/bootstrap.ts (its own format,
 * gRPC's), when createMesh reads it.
 *
 * The mesh config schema only checks that `xds` is an object: its fields are checked here, when
 * createMesh finds one (the schema is built then), so a mesh without xDS pays nothing for it.
 */
import { z } from 'zod';
import { formatIssues } from '../config/load.ts';
import { durationAtLeast } from '../config/zod-helpers.ts';
import { MeshworkConfigError } from '../errors.ts';

export interface XdsConfigInput {
  /**
   * The gRPC/Istio bootstrap: a path to its JSON file, or the bootstrap object itself. Default:
   * the file named by GRPC_XDS_BOOTSTRAP, else the JSON in GRPC_XDS_BOOTSTRAP_CONFIG (as gRPC).
   */
  bootstrap?: string | Record<string, unknown> | undefined;
  /**
   * Names (URL authorities: `reviews.default.svc.cluster.local:9080`, `svc`) subscribed at
   * createMesh rather than on first use.
   */
  listeners?: string[] | undefined;
  /**
   * How long the first request to a name waits for its listener, routes and clusters (then for
   * the endpoints, as discovery's first wait). Default 5s.
   */
  initialTimeout?: string | number | undefined;
  /**
   * A subscribed resource the control plane has not sent within this time counts as missing
   * (gRPC A57: 15s).
   */
  resourceTimeout?: string | number | undefined;
}

export interface XdsConfig {
  bootstrap?: string | Record<string, unknown> | undefined;
  listeners?: string[] | undefined;
  initialTimeout?: number | undefined;
  resourceTimeout?: number | undefined;
}

/** The field in the mesh schema: an object, checked in full by parseXdsConfig. */
export const xdsField = z.custom<XdsConfigInput>(
  (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
  { message: 'is not an object (expected { bootstrap, listeners, initialTimeout, resourceTimeout })' },
);

let schema: z.ZodType | undefined;

function xdsSchema(): z.ZodType {
  schema ??= z.strictObject({
    bootstrap: z.union([z.string().min(1), z.record(z.string(), z.unknown())]).optional(),
    listeners: z.array(z.string().min(1).max(1024)).optional(),
    initialTimeout: durationAtLeast(1, '0 would fail every first request').optional(),
    resourceTimeout: durationAtLeast(1, '0 would declare every resource missing at once').optional(),
  });
  return schema;
}

/** Checks `xds` in full. Throws MeshworkConfigError with paths from the config root. */
export function parseXdsConfig(input: XdsConfigInput): XdsConfig {
  const r = xdsSchema().safeParse(input, { reportInput: true });
  if (!r.success) throw new MeshworkConfigError(formatIssues(r.error.issues, ['xds']));
  return r.data as XdsConfig;
}

export const XDS_DEFAULTS = {
  initialTimeout: 5_000,
  resourceTimeout: 15_000,
  /** Reconnection backoff (gRPC connection backoff: 1s base, x1.6, 120s cap, ±20% jitter). */
  backoffBaseMs: 1_000,
  backoffMaxMs: 120_000,
} as const;
