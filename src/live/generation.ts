/**
 * A generation: one running configuration, as the dispatcher reads it once per request. It is
 * immutable; a live update builds the next one beside it (`plan`), and swaps it in at once
 * (`ConfigController.commit`). A request keeps the generation it started with to its end: its service
 * versions (routes, policies) and the services its routes and mirrors can reach.
 *
 * What carries over from one generation to the next, per service (src/service.ts):
 *   - config unchanged (and zone, pathNormalization): the same ServiceRuntime object;
 *   - discovery, TLS and pool settings unchanged: the same core (endpoints, pools, load estimates,
 *     ejections, health, request counts), with the new routes, policies and grouping over it;
 *     within it, the retry budget, breaker and outlier detector whose settings did not change;
 *   - discovery (or TLS or pool settings) changed: a new core is started beside the old one; the
 *     service keeps serving from the old endpoints until the new source has given endpoints
 *     (a handover), then the old core drains.
 */
import type { Fallback } from '../breaker/breaker.ts';
import type { Clock } from '../clock.ts';
import type { MeshConfig } from '../config/schema.ts';
import { ContextRuntime } from '../context/runtime.ts';
import type { DispatchTable } from '../dispatcher.ts';
import { pathOptions } from '../http/path.ts';
import type { RateLimitRuntime } from '../ratelimit/runtime.ts';
import { coreKey, groupLayout, ServiceCore, ServiceRuntime, type ServiceRuntimeOptions } from '../service.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { MeshIdentity } from '../tls/identity.ts';
import { type ConfigKeys, configKey, configKeys, hashOfKey } from './key.ts';

export interface Generation extends DispatchTable {
  /** 1 at createMesh, one more for each applied update. */
  readonly version: number;
  /** Hash of the validated config (the same config always hashes the same). */
  readonly hash: string;
  readonly config: MeshConfig;
  readonly services: ReadonlyMap<string, ServiceRuntime>;
  readonly unknownServices: 'reject' | 'passthrough';
}

/** What the mesh gives every generation (fixed at createMesh). */
export interface BuildContext {
  clock: Clock;
  logger: Logger;
  env: NodeJS.ProcessEnv;
  identity: MeshIdentity | undefined;
  fallbacks: Readonly<Record<string, Fallback>> | undefined;
  /** The mesh's rate limits (built once at createMesh), for each service's outbound limits. */
  rateLimits?: RateLimitRuntime | undefined;
  /** The xDS client, for `discovery.xds` (when `xds` is configured). */
  xds?: ServiceRuntimeOptions['xds'];
}

/** A generation built and not yet live; `dispose` undoes it when the update is refused. */
export interface Plan {
  readonly generation: Generation;
  /** The context/authorization settings of the new config; undefined = unchanged. */
  readonly context: ContextRuntime | undefined;
  /** Cores built by this plan (new services, new discovery sources): started on commit. */
  readonly created: readonly ServiceCore[];
  /** Service → the new core that takes over from the one serving now, once it has endpoints. */
  readonly handovers: ReadonlyMap<string, ServiceCore>;
  readonly changed: { added: string[]; removed: string[]; changed: string[] };
  dispose(): void;
}

/**
 * Builds the generation for `config` beside `prev` (which stays untouched and running).
 * Throws what building throws (a missing optional package, unreadable certificates, ISTIO_MUTUAL
 * without an identity...), after closing what it built.
 */
export function plan(
  prev: Generation | undefined,
  config: MeshConfig,
  ctx: BuildContext,
  pending: ReadonlyMap<string, ServiceCore>,
  keys: ConfigKeys = configKeys(config),
): Plan {
  const zone = config.zone ?? (ctx.env.MESHWORK_ZONE || undefined);
  const globals = configKey({ zone, paths: config.pathNormalization, labels: config.labels });
  const contextKey = configKey([config.context, config.authorization, config.pathNormalization]);
  const created: ServiceCore[] = [];
  const handovers = new Map<string, ServiceCore>();
  const services = new Map<string, ServiceRuntime>();
  const changed: Plan['changed'] = { added: [], removed: [], changed: [] };
  let context: ContextRuntime | undefined;
  const prevBreakers = new Set(prev ? Array.from(prev.services.values(), (v) => v.breaker) : []);
  const dispose = () => {
    for (const v of services.values()) if (!prevBreakers.has(v.breaker)) v.breaker?.shutdown();
    for (const c of created) void c.close(0);
  };
  try {
    const previousContext =
      prev && configKey([prev.config.context, prev.config.authorization, prev.config.pathNormalization]);
    // The context runtime reads its keys (PEM files) here: a bad one refuses the update.
    context =
      previousContext === contextKey
        ? undefined
        : new ContextRuntime(config.context, config.authorization, {
            clock: ctx.clock,
            logger: ctx.logger,
            pathNormalization: config.pathNormalization,
          });
    const paths = pathOptions(config.pathNormalization);
    for (const [name, svc] of Object.entries(config.services)) {
      const sourceKey = `${keys.services.get(name) ?? configKey(svc)}${globals}`;
      const before = prev?.services.get(name);
      if (before && before.sourceKey === sourceKey) {
        services.set(name, before);
        // A handover in progress for it goes on.
        const next = pending.get(name);
        if (next) handovers.set(name, next);
        continue;
      }
      const opts: ServiceRuntimeOptions = {
        clock: ctx.clock,
        logger: ctx.logger,
        zone,
        env: ctx.env,
        identity: ctx.identity,
        paths,
        labels: config.labels,
        rateLimits: ctx.rateLimits,
        xds: ctx.xds,
        fallback: ctx.fallbacks && Object.hasOwn(ctx.fallbacks, name) ? ctx.fallbacks[name] : undefined,
      };
      let version: ServiceRuntime;
      if (!before) {
        version = new ServiceRuntime(name, svc, opts);
        created.push(version.core);
        changed.added.push(name);
      } else {
        changed.changed.push(name);
        const key = coreKey(svc);
        if (before.core.key === key) {
          version = new ServiceRuntime(name, svc, opts, { previous: before, core: before.core });
        } else if (before.core.endpoints.size === 0) {
          // Nothing to hand over: the new source takes over at once.
          version = new ServiceRuntime(name, svc, opts, { previous: before });
          created.push(version.core);
        } else {
          // The old endpoints keep serving until the new source has given some.
          let next = pending.get(name);
          if (next?.key !== key) {
            next = new ServiceCore(name, svc, opts, groupLayout(svc, zone, undefined, config.labels));
            created.push(next);
          }
          handovers.set(name, next);
          version = new ServiceRuntime(name, svc, opts, { previous: before, core: before.core });
        }
      }
      version.sourceKey = sourceKey;
      services.set(name, version);
    }
  } catch (err) {
    dispose();
    throw err;
  }
  if (prev) for (const name of prev.services.keys()) if (!services.has(name)) changed.removed.push(name);
  const generation: Generation = {
    version: (prev?.version ?? 0) + 1,
    hash: hashOfKey(keys.key),
    config,
    services,
    unknownServices: config.unknownServices ?? 'reject',
  };
  return { generation, context, created, handovers, changed, dispose };
}

/** The same generation with one service's version replaced (a finished handover). */
export function withService(gen: Generation, version: ServiceRuntime): Generation {
  const services = new Map(gen.services);
  services.set(version.name, version);
  return { ...gen, services };
}

/**
 * The running generation's services as a map, for what is built once (the layer stack) and
 * needs a fallback: requests carry their own generation's map (`MeshRequest.services`).
 */
export class CurrentServices implements ReadonlyMap<string, ServiceRuntime> {
  readonly #current: () => ReadonlyMap<string, ServiceRuntime>;
  constructor(current: () => ReadonlyMap<string, ServiceRuntime>) {
    this.#current = current;
  }
  get size(): number {
    return this.#current().size;
  }
  get(name: string): ServiceRuntime | undefined {
    return this.#current().get(name);
  }
  has(name: string): boolean {
    return this.#current().has(name);
  }
  forEach(fn: (v: ServiceRuntime, k: string, m: ReadonlyMap<string, ServiceRuntime>) => void): void {
    this.#current().forEach(fn);
  }
  entries(): MapIterator<[string, ServiceRuntime]> {
    return this.#current().entries();
  }
  keys(): MapIterator<string> {
    return this.#current().keys();
  }
  values(): MapIterator<ServiceRuntime> {
    return this.#current().values();
  }
  [Symbol.iterator](): MapIterator<[string, ServiceRuntime]> {
    return this.#current()[Symbol.iterator]();
  }
}
