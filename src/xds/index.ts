/**
 * The xDS entry point the mesh uses: small, and the only xDS module loaded at import. Everything
 * else (the ADS client, protobufjs, @grpc/grpc-js, the Envoy descriptor) is loaded when a config
 * has `xds`: the bootstrap is read and the optional packages required synchronously in createMesh
 * (a bad bootstrap or a missing package fails createMesh), the client module itself is imported
 * right after, asynchronously (the first requests wait for it, within initialTimeout).
 */

import type { DiscoveryProvider, DiscoverySink, DiscoveryStatus } from '../discovery/types.ts';
import type { AuthorityResolver } from '../dispatcher.ts';
import { loadOptional } from '../optional.ts';
import type { Logger } from '../telemetry/logger.ts';
import { METER_VERSION } from '../telemetry/metrics.ts';
import type { IdentityConfig } from '../tls/schema.ts';
import type { GrpcJs } from './ads.ts';
import { type Bootstrap, identityProvider, loadBootstrap } from './bootstrap.ts';
import type { XdsClient, XdsServices, XdsSnapshot } from './client.ts';
import { parseXdsConfig, XDS_DEFAULTS, type XdsConfig, type XdsConfigInput } from './schema.ts';

export type { XdsServices, XdsSnapshot };

export interface XdsSetup {
  config: XdsConfig;
  bootstrap: Bootstrap;
  grpc: GrpcJs;
  /** The mesh identity from the bootstrap's certificate provider, when the config has none. */
  identity?: IdentityConfig | undefined;
  /** That provider's instance name (clusters that use it are ISTIO_MUTUAL). */
  identityProvider?: string | undefined;
}

const FEATURE = 'xds (the xDS client)';

/** Reads the bootstrap and loads the optional packages. Throws MeshworkConfigError / MissingDependencyError. */
export function prepareXds(input: XdsConfigInput, env: NodeJS.ProcessEnv, configIdentity: boolean): XdsSetup {
  const config = parseXdsConfig(input);
  const bootstrap = loadBootstrap(config.bootstrap, env);
  const grpc = loadOptional<GrpcJs>('@grpc/grpc-js', FEATURE);
  loadOptional('protobufjs', FEATURE);
  const idp = identityProvider(bootstrap);
  const setup: XdsSetup = { config, bootstrap, grpc, identityProvider: idp?.name };
  if (idp && !configIdentity)
    setup.identity = {
      cert: idp.provider.certificateFile as string,
      key: idp.provider.privateKeyFile as string,
      ca: idp.provider.caCertificateFile as string,
    };
  // With its own identity, the mesh's identity is not the provider's: clusters get MUTUAL with the files.
  if (configIdentity) setup.identityProvider = undefined;
  return setup;
}

export interface XdsHandleOptions {
  logger: Logger;
  staticNames: Iterable<string>;
  apply: (config: XdsServices) => void;
  /** Tests shorten the reconnection backoff. */
  backoffBaseMs?: number | undefined;
}

/** The mesh's handle on its xDS client: usable at once, while the client module loads. */
export class XdsHandle implements AuthorityResolver {
  readonly #loading: Promise<XdsClient>;
  #client: XdsClient | undefined;
  #closed = false;

  constructor(setup: XdsSetup, opts: XdsHandleOptions) {
    const c = setup.config;
    this.#loading = import('./client.ts').then((m) => {
      const client = new m.XdsClient({
        bootstrap: setup.bootstrap,
        grpc: setup.grpc,
        logger: opts.logger,
        listeners: c.listeners ?? [],
        initialTimeoutMs: c.initialTimeout ?? XDS_DEFAULTS.initialTimeout,
        resourceTimeoutMs: c.resourceTimeout ?? XDS_DEFAULTS.resourceTimeout,
        staticNames: opts.staticNames,
        identityProvider: setup.identityProvider,
        apply: opts.apply,
        version: METER_VERSION,
        backoffBaseMs: opts.backoffBaseMs,
      });
      if (this.#closed) client.close();
      this.#client = client;
      return client;
    });
    this.#loading.catch((err: unknown) =>
      opts.logger.error({ err: String(err) }, 'xds: the xDS client cannot start'),
    );
  }

  /** Resolves once the client module is loaded and running. */
  ready(): Promise<void> {
    return this.#loading.then(() => {});
  }

  owns(name: string): boolean {
    return this.#client?.owns(name) ?? false;
  }

  /** True when a listener of this host (any port) is served now. */
  serves(host: string): boolean {
    return this.#client?.servesHost(host) ?? false;
  }

  resolve(authority: string, secure = false): string | null | Promise<string | null> {
    if (this.#client) return this.#client.resolve(authority, secure);
    return this.#loading.then((c) => c.resolve(authority, secure));
  }

  endpoints(cluster: string): DiscoveryProvider {
    if (this.#client) return this.#client.endpoints(cluster);
    return new DeferredProvider(this.#loading, cluster);
  }

  snapshot(): XdsSnapshot | undefined {
    return this.#client?.snapshot();
  }

  close(): void {
    this.#closed = true;
    this.#client?.close();
  }
}

/** A provider for a service built before the client module finished loading. */
class DeferredProvider implements DiscoveryProvider {
  readonly kind = 'xds';
  readonly #loading: Promise<XdsClient>;
  readonly #cluster: string;
  #inner: DiscoveryProvider | undefined;
  #closed = false;

  constructor(loading: Promise<XdsClient>, cluster: string) {
    this.#loading = loading;
    this.#cluster = cluster;
  }

  start(sink: DiscoverySink): void {
    this.#loading.then(
      (c) => {
        if (this.#closed) return;
        this.#inner = c.endpoints(this.#cluster);
        this.#inner.start(sink);
      },
      (err: unknown) => sink.error(err instanceof Error ? err : new Error(String(err))),
    );
  }

  status(): DiscoveryStatus {
    return (
      this.#inner?.status?.() ?? { provider: 'xds', state: 'starting', updates: 0, errors: 0, skipped: 0 }
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#inner?.close();
  }
}
