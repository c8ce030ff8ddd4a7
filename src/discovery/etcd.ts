/**
 * etcd discovery: every key under `prefix` is one endpoint. An initial range read of the prefix,
 * then a watch from the revision after it, so no change between the two is lost.
 *
 * Values (JSON):
 *   - meshwork: { "address": "host:port", "labels": {..}, "weight": n, "zone": ".." }
 *   - gRPC-Go naming (go.etcd.io/etcd/client/v3/naming/endpoints): { "Addr": "host:port",
 *     "Metadata": {..} } (string, number and boolean Metadata values become labels; "Op": 1, a
 *     delete marker of the older grpcproxy format, counts as absent).
 * A malformed value is skipped (and a key that turns malformed is removed: its last good value
 * no longer describes it). When the watch or the connection fails, the last endpoints stay, the
 * provider reports the error, and re-lists after a jittered backoff (up to 30s).
 */
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import { parseHostPort } from '../config/address.ts';
import { MeshworkConfigError } from '../errors.ts';
import { loadOptional } from '../optional.ts';
import { hasUserinfo } from '../telemetry/url.ts';
import { ETCD_CREDENTIALS, type EtcdConfig } from './schema.ts';
import { backoffDelay, ProviderTracker } from './tracker.ts';
import type { DiscoveryProvider, DiscoverySink, DiscoveryStatus, EndpointSpec } from './types.ts';

export const ETCD_DEFAULTS = {
  hosts: ['http://127.0.0.1:2379'],
  backoffBase: 500,
  backoffCap: 30_000,
} as const;

/** A value as the registry wrote it: untyped JSON, every field checked before use. */
type EtcdValue = Record<string, unknown> & {
  Addr?: unknown;
  Op?: unknown;
  Metadata?: unknown;
};

/** Parses one value; returns a spec, undefined (a delete marker), or a reason to skip it. */
export function etcdValueSpec(raw: string): EndpointSpec | undefined | string {
  let v: EtcdValue;
  try {
    v = JSON.parse(raw) as EtcdValue;
  } catch {
    return 'value is not JSON';
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'value is not a JSON object';
  if ('Addr' in v) {
    if (v.Op === 1) return undefined;
    const addr = v.Addr;
    const hp = typeof addr === 'string' ? parseHostPort(addr) : undefined;
    if (!hp || typeof addr !== 'string') return `Addr ${JSON.stringify(addr)} is not a valid host:port`;
    const labels: Record<string, string> = {};
    if (typeof v.Metadata === 'object' && v.Metadata !== null)
      for (const [k, x] of Object.entries(v.Metadata))
        if (['string', 'number', 'boolean'].includes(typeof x)) labels[k] = String(x);
    return {
      address: addr,
      host: hp.host,
      port: hp.port,
      labels,
      weight: 1,
      zone: labels.zone || undefined,
    };
  }
  const address = v.address;
  const hp = typeof address === 'string' ? parseHostPort(address) : undefined;
  if (!hp || typeof address !== 'string')
    return `address ${JSON.stringify(address)} is not a valid host:port`;
  const weight = v.weight;
  if (weight !== undefined && (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 1))
    return `weight ${JSON.stringify(weight)} is not a positive integer`;
  const labels = v.labels;
  if (labels !== undefined) {
    if (typeof labels !== 'object' || labels === null || Array.isArray(labels))
      return 'labels is not an object';
    if (!Object.values(labels).every((x) => typeof x === 'string')) return 'labels values must be strings';
  }
  const zone = v.zone;
  if (zone !== undefined && (typeof zone !== 'string' || zone === '')) return 'zone is not a string';
  return {
    address,
    host: hp.host,
    port: hp.port,
    labels: { ...((labels as Record<string, string> | undefined) ?? {}) },
    weight: weight ?? 1,
    zone,
  };
}

/**
 * etcd3 brings gRPC and protobuf with it (about 0.1 s and 20 MB at import), so it is an optional
 * peer dependency, loaded when a service is configured with etcd discovery (in createMesh).
 */
function loadEtcd3(): typeof import('etcd3') {
  return loadOptional<typeof import('etcd3')>('etcd3', 'etcd discovery (`discovery.etcd`)');
}

export class EtcdDiscovery implements DiscoveryProvider {
  readonly kind = 'etcd';
  readonly prefix: string;
  readonly #client: Etcd3;
  readonly #tracker = new ProviderTracker('etcd');
  readonly #random: () => number;
  /** key -> address, for keys whose value was good. */
  #keys = new Map<string, string>();
  #watcher: Watcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #failures = 0;
  #generation = 0;

  constructor(
    cfg: EtcdConfig,
    ctx: { service: string; env: NodeJS.ProcessEnv },
    opts: { random?: () => number } = {},
  ) {
    const fromEnv = ctx.env.ETCDCTL_ENDPOINTS?.split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (cfg.hosts === undefined && fromEnv?.some(hasUserinfo))
      throw new MeshworkConfigError([{ path: 'ETCDCTL_ENDPOINTS (environment)', message: ETCD_CREDENTIALS }]);
    const hosts = (cfg.hosts ?? (fromEnv?.length ? fromEnv : [...ETCD_DEFAULTS.hosts])).map((h) =>
      /^https?:\/\//.test(h) ? h : `http://${h}`,
    );
    this.prefix = cfg.prefix ?? `/meshwork/services/${ctx.service}/`;
    this.#random = opts.random ?? Math.random;
    this.#client = new (loadEtcd3().Etcd3)({
      hosts,
      ...(cfg.username ? { auth: { username: cfg.username, password: cfg.password ?? '' } } : {}),
      dialTimeout: 3_000,
    });
  }

  start(sink: DiscoverySink): void {
    this.#tracker.attach(sink);
    void this.#sync();
  }

  status(): DiscoveryStatus {
    return this.#tracker.status();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#tracker.close();
    if (this.#timer) clearTimeout(this.#timer);
    const w = this.#watcher;
    this.#watcher = undefined;
    await w?.cancel().catch(() => {});
    this.#client.close();
  }

  /** Lists the prefix, publishes it whole, then watches from the next revision. */
  async #sync(): Promise<void> {
    const gen = ++this.#generation;
    try {
      const res = await this.#client.getAll().prefix(this.prefix).exec();
      if (this.#closed || gen !== this.#generation) return;
      this.#keys.clear();
      const specs: EndpointSpec[] = [];
      for (const kv of res.kvs) {
        const spec = this.#parse(kv);
        if (spec) {
          this.#keys.set(kv.key.toString(), spec.address);
          specs.push(spec);
        }
      }
      this.#tracker.publish(specs);
      const watcher = await this.#client
        .watch()
        .prefix(this.prefix)
        .startRevision(String(BigInt(res.header.revision) + 1n))
        .create();
      if (this.#closed || gen !== this.#generation) {
        await watcher.cancel().catch(() => {});
        return;
      }
      this.#watcher = watcher;
      this.#failures = 0;
      watcher.on('put', (kv) => this.#onPut(kv));
      watcher.on('delete', (kv) => this.#onDelete(kv));
      // On 'disconnected' the etcd3 watch manager reconnects by itself (jittered backoff, capped
      // at 30s) and resumes from the last revision seen; we only report it. Any other watch error
      // (e.g. the revision was compacted) starts a fresh list + watch.
      watcher.on('disconnected', (err) => {
        if (gen === this.#generation && !this.#closed)
          this.#tracker.error(
            new Error(`etcd prefix ${this.prefix}: watch disconnected: ${err?.message ?? ''}`),
          );
      });
      watcher.on('connected', () => {
        if (gen === this.#generation) this.#tracker.recovered();
      });
      watcher.on('error', (err) => this.#fail(err, gen));
    } catch (err) {
      this.#fail(err, gen);
    }
  }

  #fail(err: unknown, gen: number): void {
    if (this.#closed || gen !== this.#generation) return;
    this.#generation++; // this attempt is over; late events of it are ignored
    const e = err instanceof Error ? err : new Error(String(err));
    this.#tracker.error(new Error(`etcd prefix ${this.prefix}: ${e.message}`));
    const w = this.#watcher;
    this.#watcher = undefined;
    w?.removeAllListeners();
    w?.cancel().catch(() => {});
    const delay = backoffDelay(
      this.#failures++,
      ETCD_DEFAULTS.backoffBase,
      ETCD_DEFAULTS.backoffCap,
      this.#random,
    );
    this.#timer = setTimeout(() => void this.#sync(), delay);
    this.#timer.unref();
  }

  #parse(kv: IKeyValue): EndpointSpec | undefined {
    const spec = etcdValueSpec(kv.value.toString());
    if (typeof spec === 'string') {
      this.#tracker.skipped(`etcd ${kv.key.toString()}: ${spec}`, kv.value.toString());
      return undefined;
    }
    return spec;
  }

  #onPut(kv: IKeyValue): void {
    const key = kv.key.toString();
    const spec = this.#parse(kv);
    const old = this.#keys.get(key);
    const changes: Parameters<ProviderTracker['applyChanges']>[0][number][] = [];
    if (old !== undefined && old !== spec?.address && !this.#otherKeyHas(key, old))
      changes.push({ type: 'remove', address: old });
    if (spec) {
      this.#keys.set(key, spec.address);
      changes.push({ type: 'insert', endpoint: spec });
    } else this.#keys.delete(key);
    this.#tracker.applyChanges(changes);
  }

  #onDelete(kv: IKeyValue): void {
    const key = kv.key.toString();
    const old = this.#keys.get(key);
    this.#keys.delete(key);
    if (old !== undefined && !this.#otherKeyHas(key, old))
      this.#tracker.applyChanges([{ type: 'remove', address: old }]);
  }

  #otherKeyHas(key: string, address: string): boolean {
    for (const [k, a] of this.#keys) if (k !== key && a === address) return true;
    return false;
  }
}
