/**
 * The xDS client of one mesh: follows the listeners of the URL authorities it is asked about
 * (and those listed up front), their route configurations, clusters and endpoints over one ADS
 * stream, and turns them into meshwork configuration, handed to `apply` (src/xds/apply.ts) each
 * time it changes. Loaded only when `xds` is configured (src/xds/index.ts imports it lazily).
 */
import type { DiscoveryProvider } from '../discovery/types.ts';
import { MeshworkConfigError, NoEndpointsError } from '../errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import { type AdsClient as Ads, AdsClient, type AdsStatus, type GrpcJs } from './ads.ts';
import { type AuthorityInput, assemble, type ListenerService, type XdsView } from './assemble.ts';
import { type Bootstrap, listenerName } from './bootstrap.ts';
import { Codec } from './codec.ts';
import { EdsRegistry } from './eds.ts';
import { ServiceNames } from './names.ts';
import {
  type ClusterModel,
  decodeResource,
  type EndpointsModel,
  type Fragment,
  type Kind,
  type ListenerModel,
  type Model,
  type RouteConfigModel,
} from './resources.ts';

/** What the client hands to apply: the xDS services (createMesh's `services` shape). */
export interface XdsServices {
  services: Record<string, Fragment>;
}

export interface XdsClientOptions {
  bootstrap: Bootstrap;
  grpc: GrpcJs;
  logger: Logger;
  /** Names given in `xds.listeners`. */
  listeners: readonly string[];
  initialTimeoutMs: number;
  resourceTimeoutMs: number;
  /** Services configured statically: xDS never takes their names. */
  staticNames: Iterable<string>;
  /** The certificate provider instance that is the mesh identity (clusters using it are ISTIO_MUTUAL). */
  identityProvider?: string | undefined;
  /** Replaces the xDS services of the mesh; throws when the configuration is refused. */
  apply: (config: XdsServices) => void;
  version: string;
  /** Reconnection backoff base (tests shorten it). */
  backoffBaseMs?: number | undefined;
}

/** Names followed at most (beyond it, those known not to exist are forgotten first). */
const MAX_AUTHORITIES = 10_000;

interface Waiter {
  resolve(name: string | null): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/** `mesh.snapshot().xds`. */
export interface XdsSnapshot {
  bootstrap: string;
  node: string;
  server: AdsStatus;
  /** Authority → its listener service (undefined while waiting for it), or "absent". */
  listeners: Record<string, string>;
  clusters: Record<string, string>;
  /** Configurations built from xDS and refused by the mesh (should not happen: each resource was checked). */
  applyErrors: number;
  lastApplyError?: string | undefined;
  updates: number;
}

export class XdsClient {
  readonly #o: XdsClientOptions;
  readonly #codec: Codec;
  readonly #ads: Ads;
  readonly #eds = new EdsRegistry();
  readonly #names: ServiceNames;
  readonly #listeners = new Map<string, ListenerModel>();
  readonly #routes = new Map<string, RouteConfigModel>();
  readonly #clusters = new Map<string, ClusterModel>();
  readonly #missing: Record<Kind, Set<string>> = {
    listener: new Set(),
    route: new Set(),
    cluster: new Set(),
    endpoint: new Set(),
  };
  /** Authority → the listener names it may be (see #ask), in the order first asked. */
  readonly #authorities = new Map<string, string[]>();
  readonly #waiters = new Map<string, Set<Waiter>>();
  /** Authority → its service, as last applied. */
  #served = new Map<string, ListenerService>();
  #absent = new Set<string>();
  #clusterServices = new Map<string, string>();
  #ownNames = new Set<string>();
  #appliedKey = '';
  #watched: Record<Kind, Set<string>> = {
    listener: new Set(),
    route: new Set(),
    cluster: new Set(),
    endpoint: new Set(),
  };
  #scheduled = false;
  #closed = false;
  #applyErrors = 0;
  #lastApplyError: string | undefined;
  #updates = 0;

  constructor(opts: XdsClientOptions) {
    this.#o = opts;
    this.#codec = new Codec();
    this.#names = new ServiceNames(opts.staticNames);
    const ctx = { codec: this.#codec, bootstrap: opts.bootstrap, identityProvider: opts.identityProvider };
    this.#ads = new AdsClient(
      {
        grpc: opts.grpc,
        codec: this.#codec,
        bootstrap: opts.bootstrap,
        logger: opts.logger,
        resourceTimeoutMs: opts.resourceTimeoutMs,
        version: opts.version,
        backoffBaseMs: opts.backoffBaseMs,
      },
      {
        decode: (kind, any) => decodeResource(kind, any, ctx),
        onChange: (kind, updated, removed) => this.#onChange(kind, updated, removed),
      },
    );
    this.#eds.onDemandChanged = () => this.#schedule();
    for (const name of opts.listeners) this.#ask(name);
  }

  /** A discovery provider following a cluster's endpoints (`discovery: { xds: { cluster } }`). */
  endpoints(cluster: string): DiscoveryProvider {
    return this.#eds.provider(cluster);
  }

  /** True when a listener of `host` (with any port, or none) is served now. */
  servesHost(host: string): boolean {
    for (const a of this.#served.keys()) if (a === host || a.startsWith(`${host}:`)) return true;
    return false;
  }

  /** True for the names of the services the client made (they are found by authority only). */
  owns(name: string): boolean {
    return this.#ownNames.has(name);
  }

  /**
   * The service for a URL authority: its name when ready, null when its listener does not exist,
   * or a promise (the first request waits, up to initialTimeout).
   */
  resolve(authority: string, secure = false): string | null | Promise<string | null> {
    const served = this.#served.get(authority);
    if (served) return served.name;
    if (this.#absent.has(authority)) return null;
    if (this.#closed) return null;
    this.#ask(authority, secure);
    return new Promise((resolve, reject) => {
      let set = this.#waiters.get(authority);
      if (!set) {
        set = new Set();
        this.#waiters.set(authority, set);
      }
      const w: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          set.delete(w);
          reject(this.#timeoutError(authority));
        }, this.#o.initialTimeoutMs),
      };
      w.timer.unref();
      set.add(w);
    });
  }

  snapshot(): XdsSnapshot {
    const listeners: Record<string, string> = {};
    for (const a of this.#authorities.keys())
      listeners[a] = this.#served.get(a)?.name ?? (this.#absent.has(a) ? 'absent' : 'waiting');
    return {
      bootstrap: this.#o.bootstrap.source,
      node: this.#o.bootstrap.node.id,
      server: this.#ads.status(),
      listeners,
      clusters: Object.fromEntries(this.#clusterServices),
      applyErrors: this.#applyErrors,
      lastApplyError: this.#lastApplyError,
      updates: this.#updates,
    };
  }

  close(): void {
    this.#closed = true;
    this.#ads.close();
    for (const [, set] of this.#waiters)
      for (const w of set) {
        clearTimeout(w.timer);
        w.resolve(null);
      }
    this.#waiters.clear();
  }

  #ask(authority: string, secure = false): void {
    if (this.#authorities.has(authority)) return;
    // Every unknown host is asked about: past the bound, the oldest names known not to exist are
    // forgotten (and unsubscribed), so a client calling many outside hosts does not grow forever.
    if (this.#authorities.size >= MAX_AUTHORITIES)
      for (const a of this.#authorities.keys()) {
        if (this.#authorities.size < MAX_AUTHORITIES) break;
        if (this.#absent.has(a)) {
          this.#authorities.delete(a);
          this.#absent.delete(a);
        }
      }
    // As written; without a port also with the scheme's default one, which is how Istio names a
    // service's listeners (istiod answers "reviews" with "reviews:80"): the name as written wins
    // when both exist.
    const names = [listenerName(this.#o.bootstrap, authority)];
    if (!/:\d+$/.test(authority) && !authority.endsWith(']'))
      names.push(listenerName(this.#o.bootstrap, `${authority}:${secure ? 443 : 80}`));
    this.#authorities.set(authority, names);
    this.#schedule();
  }

  #timeoutError(authority: string): Error {
    const listener = (this.#authorities.get(authority) ?? [authority]).join('" or "');
    const status = this.#ads.status();
    return new NoEndpointsError(
      authority,
      `the xDS control plane (${status.server}, ${status.state}) did not give listener "${listener}" and its routes and clusters within ${this.#o.initialTimeoutMs} ms` +
        (status.lastError ? `; last error: ${status.lastError}` : ''),
    );
  }

  #onChange(kind: Kind, updated: ReadonlyMap<string, Model>, removed: readonly string[]): void {
    const missing = this.#missing[kind];
    for (const [name, model] of updated) {
      missing.delete(name);
      switch (kind) {
        case 'listener':
          this.#listeners.set(name, model as ListenerModel);
          break;
        case 'route':
          this.#routes.set(name, model as RouteConfigModel);
          break;
        case 'cluster':
          this.#clusters.set(name, model as ClusterModel);
          break;
        case 'endpoint':
          this.#eds.setAssignment(name, model as EndpointsModel);
          break;
      }
    }
    for (const name of removed) {
      missing.add(name);
      if (kind === 'listener') this.#listeners.delete(name);
      else if (kind === 'route') this.#routes.delete(name);
      else if (kind === 'cluster') {
        this.#clusters.delete(name);
        this.#eds.setCluster(name, undefined);
        this.#eds.clusterMissing(name);
      } else this.#eds.setAssignment(name, undefined);
    }
    // EDS changes go straight to the providers; everything else rebuilds the configuration.
    if (kind !== 'endpoint') this.#schedule();
  }

  /** One rebuild per turn of the event loop, however many resources changed. */
  #schedule(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      if (!this.#closed) this.#rebuild();
    });
  }

  #rebuild(): void {
    const view: XdsView = {
      listeners: this.#listeners,
      routes: this.#routes,
      clusters: this.#clusters,
      missingListeners: this.#missing.listener,
      missingRoutes: this.#missing.route,
      missingClusters: this.#missing.cluster,
    };
    const authorities: AuthorityInput[] = [...this.#authorities].map(([authority, listeners]) => ({
      authority,
      listeners,
    }));
    const a = assemble(authorities, view, this.#names, this.#served, {
      initialTimeoutMs: this.#o.initialTimeoutMs,
      demanded: this.#eds.demanded(),
    });
    // Clusters: where their endpoints come from.
    const eds = new Set<string>();
    for (const c of a.wants.cluster) {
      const m = this.#clusters.get(c);
      if (m?.discovery.kind === 'eds') {
        eds.add(m.discovery.serviceName);
        this.#eds.setCluster(c, { edsName: m.discovery.serviceName, localityWeighted: m.localityWeighted });
      }
    }
    this.#watch('listener', a.wants.listener);
    this.#watch('route', a.wants.route);
    this.#watch('cluster', a.wants.cluster);
    this.#watch('endpoint', eds);
    // The configuration, applied when it changed.
    const services: Record<string, Fragment> = Object.create(null);
    for (const [name, cfg] of a.services) services[name] = cfg;
    const key = JSON.stringify(Object.entries(services));
    let applied = key === this.#appliedKey;
    if (!applied) {
      try {
        this.#ownNames = new Set([...this.#ownNames, ...a.services.keys()]);
        this.#o.apply({ services });
        this.#appliedKey = key;
        this.#updates++;
        applied = true;
        this.#ownNames = new Set(a.services.keys());
        this.#names.retain(this.#ownNames);
      } catch (err) {
        this.#applyErrors++;
        this.#lastApplyError = err instanceof MeshworkConfigError ? err.message : String(err);
        this.#o.logger.error(
          { err: this.#lastApplyError },
          'xds: configuration refused by the mesh; the last one keeps serving',
        );
      }
    }
    if (applied) {
      this.#served = a.listeners;
      this.#clusterServices = a.clusterServices;
    }
    this.#absent = a.absent;
    for (const [authority, set] of this.#waiters) {
      const served = this.#served.get(authority);
      const gone = this.#absent.has(authority);
      if (!served && !gone) continue;
      for (const w of set) {
        clearTimeout(w.timer);
        w.resolve(served ? served.name : null);
      }
      this.#waiters.delete(authority);
    }
  }

  #watch(kind: Kind, want: Set<string>): void {
    const now = this.#watched[kind];
    for (const name of want) if (!now.has(name)) this.#ads.watch(kind, name);
    for (const name of now)
      if (!want.has(name)) {
        this.#ads.unwatch(kind, name);
        this.#missing[kind].delete(name);
        if (kind === 'route') this.#routes.delete(name);
        if (kind === 'cluster') this.#clusters.delete(name);
        if (kind === 'endpoint') this.#eds.forgetAssignment(name);
      }
    this.#watched[kind] = new Set(want);
  }
}
