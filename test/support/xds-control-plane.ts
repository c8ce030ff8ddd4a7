/**
 * An xDS control plane for tests: a real @grpc/grpc-js server on
 * `envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources`, speaking
 * ADS in state-of-the-world mode as go-control-plane and istiod do:
 *
 *   - it holds v3 resources (listeners, route configurations, clusters, cluster load
 *     assignments), one version counter per type, bumped by every change of that type;
 *   - a stream's request for a type (re)subscribes it to the names listed (LDS and CDS with no
 *     names = everything, the wildcard); it answers with the subscribed resources of that type.
 *     LDS and CDS responses always carry every subscribed resource that exists (absence means
 *     "does not exist" to the client); RDS and EDS responses carry those that exist, and nothing
 *     is sent while none does (the client's does-not-exist timer is what notices);
 *   - every change is pushed to the streams subscribed to it, with a new version and nonce;
 *   - requests that echo the last nonce sent for a type are ACKs, or NACKs when they carry
 *     `error_detail`; both are recorded (type, version, nonce, resource names, error message).
 *     A request with an older nonce is stale and ignored, as the protocol says.
 *
 * Messages are encoded and decoded with protobufjs from the Envoy .proto files vendored by
 * @grpc/grpc-js-xds (not with meshwork's compiled descriptor): the fake shares no code with the
 * client under test. `stop()` is an outage (every stream cut, the port closed); `start()` listens
 * on the same port again with the same resources and versions.
 */
import { accessSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';

const require = createRequire(import.meta.url);
const DEPS = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
const PROTOBUFJS = dirname(require.resolve('protobufjs/package.json'));
const INCLUDE = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(DEPS, d));

export const TYPE_URL = {
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  route: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoint: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
} as const;

export type Kind = keyof typeof TYPE_URL;
const KINDS = Object.keys(TYPE_URL) as Kind[];
const kindOf = (typeUrl: string): Kind | undefined => KINDS.find((k) => TYPE_URL[k] === typeUrl);

let rootCache: protobuf.Root | undefined;

/** Envoy's v3 API parsed from the .proto sources (once per process). */
export function envoyRoot(): protobuf.Root {
  if (rootCache) return rootCache;
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    for (const dir of INCLUDE) {
      const p = join(dir, target);
      try {
        accessSync(p);
        return p;
      } catch {}
    }
    if (target.startsWith('google/protobuf/'))
      return target in protobuf.common ? target : join(PROTOBUFJS, target);
    return protobuf.util.path.resolve(origin, target);
  };
  root.loadSync(
    [
      'envoy/service/discovery/v3/ads.proto',
      'envoy/config/listener/v3/listener.proto',
      'envoy/config/route/v3/route.proto',
      'envoy/config/cluster/v3/cluster.proto',
      'envoy/config/endpoint/v3/endpoint.proto',
      'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
      'envoy/extensions/filters/http/fault/v3/fault.proto',
      'envoy/extensions/filters/http/router/v3/router.proto',
      'envoy/extensions/transport_sockets/tls/v3/tls.proto',
      'envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto',
      'envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto',
      'envoy/extensions/load_balancing_policies/random/v3/random.proto',
      'envoy/extensions/load_balancing_policies/ring_hash/v3/ring_hash.proto',
      'envoy/extensions/load_balancing_policies/maglev/v3/maglev.proto',
      'envoy/extensions/load_balancing_policies/wrr_locality/v3/wrr_locality.proto',
      'envoy/extensions/filters/http/rbac/v3/rbac.proto',
      'xds/type/v3/typed_struct.proto',
    ],
    { keepCase: true },
  );
  root.resolveAll();
  rootCache = root;
  return root;
}

/** A google.protobuf.Any holding `value` encoded as `typeName` (nested typed configs). */
export function pack(typeName: string, value: object): { type_url: string; value: Uint8Array } {
  const type = envoyRoot().lookupType(typeName);
  checkFields(type, value, typeName);
  return { type_url: `type.googleapis.com/${typeName}`, value: type.encode(type.fromObject(value)).finish() };
}

/** Throws on a field the message type does not have (fromObject would drop it silently). */
function checkFields(type: protobuf.Type, value: unknown, path: string): void {
  if (typeof value !== 'object' || value === null || value instanceof Uint8Array) return;
  if (type.fullName === '.google.protobuf.Any') return;
  for (const [key, v] of Object.entries(value)) {
    const field = type.fields[key];
    if (!field) throw new Error(`${path}: ${type.name} has no field "${key}"`);
    const sub = field.resolve().resolvedType;
    if (!(sub instanceof protobuf.Type) || field.map) continue;
    for (const item of Array.isArray(v) ? v : [v]) {
      if (typeof item !== 'object' || item === null)
        throw new Error(`${path}.${key}: ${JSON.stringify(item)} is not a ${sub.name} message`);
      checkFields(sub, item, `${path}.${key}`);
    }
  }
}

const RESOURCE_TYPE: Record<Kind, string> = {
  listener: 'envoy.config.listener.v3.Listener',
  route: 'envoy.config.route.v3.RouteConfiguration',
  cluster: 'envoy.config.cluster.v3.Cluster',
  endpoint: 'envoy.config.endpoint.v3.ClusterLoadAssignment',
};

/** One request the control plane received, decoded. */
export interface RecordedRequest {
  stream: number;
  kind: Kind | string;
  version: string;
  nonce: string;
  names: string[];
  error?: string | undefined;
  node?: Record<string, unknown> | undefined;
}

/** An ACK or NACK: a request echoing the last nonce sent for its type. */
export interface Reply {
  stream: number;
  kind: Kind;
  version: string;
  nonce: string;
  names: string[];
  error?: string | undefined;
}

interface TypeState {
  names: Set<string>;
  wildcard: boolean;
  lastNonce: string;
  subscribed: boolean;
}

interface Stream {
  id: number;
  call: grpc.ServerDuplexStream<Uint8Array, Uint8Array>;
  types: Map<Kind, TypeState>;
}

export interface ControlPlaneOptions {
  /** Port to listen on (default 0, any free one); `start()` after `stop()` reuses the first one. */
  port?: number;
  /** Listen on a Unix socket instead (`unix:///path` in a bootstrap). */
  socket?: string;
  /** Types answered with nothing at all (the client's 15 s timer is what notices). */
  silent?: Kind[];
}

export class XdsControlPlane {
  readonly resources: Record<Kind, Map<string, object>> = {
    listener: new Map(),
    route: new Map(),
    cluster: new Map(),
    endpoint: new Map(),
  };
  readonly versions: Record<Kind, number> = { listener: 0, route: 0, cluster: 0, endpoint: 0 };
  readonly requests: RecordedRequest[] = [];
  readonly acks: Reply[] = [];
  readonly nacks: Reply[] = [];
  /** Streams opened since the control plane was made (reconnections count). */
  streamsOpened = 0;
  readonly silent: Set<Kind>;
  #server: grpc.Server | undefined;
  #port: number;
  readonly #socket: string | undefined;
  readonly #streams = new Set<Stream>();
  #nonce = 0;
  readonly #waiters = new Set<() => void>();

  private constructor(opts: ControlPlaneOptions) {
    this.#port = opts.port ?? 0;
    this.#socket = opts.socket;
    this.silent = new Set(opts.silent ?? []);
  }

  static async start(opts: ControlPlaneOptions = {}): Promise<XdsControlPlane> {
    const cp = new XdsControlPlane(opts);
    await cp.start();
    return cp;
  }

  /** `host:port` (or `unix:///path`) for a bootstrap's `server_uri`. */
  get address(): string {
    return this.#socket ? `unix://${this.#socket}` : `127.0.0.1:${this.#port}`;
  }

  get port(): number {
    return this.#port;
  }

  /** Streams open now. */
  get streams(): number {
    return this.#streams.size;
  }

  /** Listens (again, after stop(): same port, same resources and versions). */
  async start(): Promise<void> {
    if (this.#server) return;
    const root = envoyRoot();
    const Req = root.lookupType('envoy.service.discovery.v3.DiscoveryRequest');
    const Res = root.lookupType('envoy.service.discovery.v3.DiscoveryResponse');
    const server = new grpc.Server();
    server.addService(
      {
        StreamAggregatedResources: {
          path: '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
          requestStream: true,
          responseStream: true,
          requestSerialize: (m: Uint8Array) => Buffer.from(m),
          requestDeserialize: (b: Buffer) => b,
          responseSerialize: (m: Uint8Array) => Buffer.from(m),
          responseDeserialize: (b: Buffer) => b,
          originalName: 'streamAggregatedResources',
        },
      } as grpc.ServiceDefinition,
      {
        StreamAggregatedResources: (call: grpc.ServerDuplexStream<Uint8Array, Uint8Array>) =>
          this.#onStream(call, Req, Res),
      } as grpc.UntypedServiceImplementation,
    );
    const target = this.#socket ? `unix:${this.#socket}` : `127.0.0.1:${this.#port}`;
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(target, grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    if (!this.#socket) this.#port = port;
    this.#server = server;
  }

  /** An outage: every stream is cut and the port closed (resources and versions are kept). */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.#streams) s.call.destroy(new Error('control plane stopped'));
    this.#streams.clear();
    server?.forceShutdown();
  }

  async close(): Promise<void> {
    await this.stop();
  }

  /** Adds or replaces resources of one type (one version bump), and pushes them. */
  set(kind: Kind, resources: Record<string, object> | object[]): void {
    const entries = Array.isArray(resources)
      ? resources.map(
          (r) =>
            [
              (r as { name?: string; cluster_name?: string }).name ??
                (r as { cluster_name: string }).cluster_name,
              r,
            ] as const,
        )
      : Object.entries(resources).map(([n, r]) => [n, { ...(r as object), [nameField(kind)]: n }] as const);
    for (const [name, r] of entries) {
      if (!name) throw new Error(`a ${kind} resource needs a name`);
      // Fail here, in the test, on a misspelt field (the wire would drop it silently).
      checkFields(envoyRoot().lookupType(RESOURCE_TYPE[kind]), r, `${kind} ${name}`);
      this.resources[kind].set(name, r);
    }
    this.versions[kind]++;
    this.#push(kind, new Set(entries.map(([n]) => n)));
  }

  /** Removes resources of one type (one version bump); LDS/CDS streams learn it at once. */
  delete(kind: Kind, names: string[]): void {
    for (const n of names) this.resources[kind].delete(n);
    this.versions[kind]++;
    this.#push(kind, new Set(names));
  }

  /** Names subscribed to by any open stream. */
  subscribed(kind: Kind): Set<string> {
    const out = new Set<string>();
    for (const s of this.#streams) for (const n of s.types.get(kind)?.names ?? []) out.add(n);
    return out;
  }

  /** Resolves when `test()` holds (checked on every request and change), or rejects after `timeoutMs`. */
  waitFor(test: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    if (test()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`control plane: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const check = () => {
        if (!test()) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      this.#waiters.add(check);
    });
  }

  /** The ACK of the current version of `kind` (after a push). */
  waitForAck(kind: Kind, version = String(this.versions[kind]), timeoutMs?: number): Promise<Reply> {
    const find = () => this.acks.find((a) => a.kind === kind && a.version === version);
    return this.waitFor(() => find() !== undefined, `an ACK of ${kind} version ${version}`, timeoutMs).then(
      () => find() as Reply,
    );
  }

  /** The first NACK of `kind` after `since` NACKs were recorded. */
  waitForNack(kind: Kind, since = 0, timeoutMs?: number): Promise<Reply> {
    const find = () => this.nacks.slice(since).find((a) => a.kind === kind);
    return this.waitFor(() => find() !== undefined, `a NACK of ${kind}`, timeoutMs).then(
      () => find() as Reply,
    );
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }

  #onStream(
    call: grpc.ServerDuplexStream<Uint8Array, Uint8Array>,
    Req: protobuf.Type,
    Res: protobuf.Type,
  ): void {
    const stream: Stream = { id: ++this.streamsOpened, call, types: new Map() };
    this.#streams.add(stream);
    const send = (kind: Kind) => this.#send(stream, kind, Res);
    call.on('data', (buf: Uint8Array) => {
      const m = Req.toObject(Req.decode(buf), { defaults: true, longs: String }) as {
        type_url: string;
        version_info: string;
        response_nonce: string;
        resource_names: string[];
        error_detail?: { message?: string } | null;
        node?: Record<string, unknown> | null;
      };
      const kind = kindOf(m.type_url);
      const rec: RecordedRequest = {
        stream: stream.id,
        kind: kind ?? m.type_url,
        version: m.version_info,
        nonce: m.response_nonce,
        names: [...m.resource_names],
        error: m.error_detail ? (m.error_detail.message ?? '') : undefined,
        node: m.node ?? undefined,
      };
      this.requests.push(rec);
      if (!kind) return this.#notify();
      let st = stream.types.get(kind);
      if (!st) {
        st = { names: new Set(), wildcard: false, lastNonce: '', subscribed: false };
        stream.types.set(kind, st);
      }
      if (m.response_nonce !== '' && m.response_nonce !== st.lastNonce) return this.#notify(); // stale
      if (m.response_nonce !== '') {
        const reply: Reply = {
          stream: stream.id,
          kind,
          version: m.version_info,
          nonce: m.response_nonce,
          names: rec.names,
          error: rec.error,
        };
        (rec.error !== undefined ? this.nacks : this.acks).push(reply);
      }
      const names = new Set(m.resource_names);
      const wildcard = names.size === 0 && (kind === 'listener' || kind === 'cluster');
      const changed =
        !st.subscribed ||
        wildcard !== st.wildcard ||
        names.size !== st.names.size ||
        [...names].some((n) => !st.names.has(n));
      st.names = names;
      st.wildcard = wildcard;
      st.subscribed = true;
      if (changed || m.response_nonce === '') send(kind);
      this.#notify();
    });
    const end = () => {
      this.#streams.delete(stream);
      this.#notify();
    };
    call.on('end', () => {
      end();
      call.end();
    });
    call.on('error', end);
    call.on('cancelled', end);
    call.on('close', end);
  }

  #push(kind: Kind, changed: Set<string>): void {
    const Res = envoyRoot().lookupType('envoy.service.discovery.v3.DiscoveryResponse');
    for (const s of this.#streams) {
      const st = s.types.get(kind);
      if (!st?.subscribed) continue;
      if (!st.wildcard && ![...changed].some((n) => st.names.has(n))) continue;
      this.#send(s, kind, Res);
    }
    this.#notify();
  }

  #send(stream: Stream, kind: Kind, Res: protobuf.Type): void {
    const st = stream.types.get(kind);
    if (!st || this.silent.has(kind)) return;
    const type = envoyRoot().lookupType(RESOURCE_TYPE[kind]);
    const out: { type_url: string; value: Uint8Array }[] = [];
    for (const [name, r] of this.resources[kind]) {
      if (!st.wildcard && !st.names.has(name)) continue;
      out.push({ type_url: TYPE_URL[kind], value: type.encode(type.fromObject(r)).finish() });
    }
    // State of the world: LDS and CDS answers list every subscribed resource (none = none exist);
    // RDS and EDS answers are not sent empty.
    if (out.length === 0 && (kind === 'route' || kind === 'endpoint')) return;
    const nonce = String(++this.#nonce);
    st.lastNonce = nonce;
    const msg = Res.fromObject({
      version_info: String(this.versions[kind]),
      resources: out,
      type_url: TYPE_URL[kind],
      nonce,
    });
    stream.call.write(Res.encode(msg).finish());
  }
}

function nameField(kind: Kind): string {
  return kind === 'endpoint' ? 'cluster_name' : 'name';
}

// ---- resource builders (Envoy v3, snake_case as in the .proto files) ----------------------------

const HCM = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = 'envoy.extensions.filters.http.router.v3.Router';
const FAULT = 'envoy.extensions.filters.http.fault.v3.HTTPFault';

/** The router filter, last in every HCM's http_filters. */
export const routerFilter = () => ({ name: 'envoy.filters.http.router', typed_config: pack(ROUTER, {}) });
/** The fault filter with no fault of its own (routes set theirs in typed_per_filter_config). */
export const faultFilter = (config: object = {}) => ({
  name: 'envoy.filters.http.fault',
  typed_config: pack(FAULT, config),
});

/** A listener as istiod's grpc generator sends it: api_listener HCM, RDS over ADS, [fault, router]. */
export function apiListener(
  name: string,
  routeConfigName: string,
  opts: { filters?: object[]; inline?: object } = {},
): object {
  const hcm: Record<string, unknown> = {
    http_filters: opts.filters ?? [faultFilter(), routerFilter()],
  };
  if (opts.inline) hcm.route_config = opts.inline;
  else
    hcm.rds = { route_config_name: routeConfigName, config_source: { ads: {}, resource_api_version: 'V3' } };
  return { name, api_listener: { api_listener: pack(HCM, hcm) } };
}

/** A route configuration with one virtual host. */
export function routeConfig(name: string, routes: object[], domains = ['*'], vhost: object = {}): object {
  return { name, virtual_hosts: [{ name: `${name}-vh`, domains, routes, ...vhost }] };
}

/** A route sending everything under `prefix` to weighted clusters (name → weight). */
export function weightedRoute(weights: Record<string, number>, prefix = '/', extra: object = {}): object {
  return {
    match: { prefix },
    route: {
      weighted_clusters: {
        clusters: Object.entries(weights).map(([name, weight]) => ({ name, weight: { value: weight } })),
      },
      ...extra,
    },
  };
}

/** A route sending everything under `prefix` to one cluster. */
export function clusterRoute(cluster: string, prefix = '/', action: object = {}, match: object = {}): object {
  return { match: { prefix, ...match }, route: { cluster, ...action } };
}

/** An EDS cluster over ADS. */
export function edsCluster(name: string, extra: object = {}): object {
  return {
    name,
    type: 'EDS',
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: name },
    connect_timeout: { seconds: 1 },
    lb_policy: 'ROUND_ROBIN',
    ...extra,
  };
}

export interface TestEndpoint {
  address: string;
  port: number;
  weight?: number;
  health?: 'UNKNOWN' | 'HEALTHY' | 'UNHEALTHY' | 'DRAINING' | 'TIMEOUT' | 'DEGRADED';
}

/** A ClusterLoadAssignment; localities carry a load_balancing_weight (gRPC needs one). */
export function loadAssignment(
  cluster: string,
  localities: { zone?: string; priority?: number; weight?: number; endpoints: TestEndpoint[] }[],
): object {
  return {
    cluster_name: cluster,
    endpoints: localities.map((l) => ({
      locality: { region: 'test', zone: l.zone ?? 'zone-a' },
      load_balancing_weight: { value: l.weight ?? 1 },
      priority: l.priority ?? 0,
      lb_endpoints: l.endpoints.map((e) => ({
        endpoint: { address: { socket_address: { address: e.address, port_value: e.port } } },
        health_status: e.health ?? 'HEALTHY',
        ...(e.weight !== undefined ? { load_balancing_weight: { value: e.weight } } : {}),
      })),
    })),
  };
}
