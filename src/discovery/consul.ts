/**
 * Consul discovery: passing instances of one service, read with blocking queries on
 * GET /v1/health/service/:name (index/wait), through the `consul` npm client.
 *
 * Loop: ask with the last X-Consul-Index; Consul holds the request until the index moves past it
 * or `wait` ends. Between two requests at least `minInterval` passes (an index that churns cannot
 * flood Consul, consul#1244). Errors back off with jitter up to 30s and keep the last endpoints.
 * An index that goes backwards (or is < 1) resets to 0 (a non-blocking read). Every
 * `refreshInterval` the next read is non-blocking too (a full refresh).
 *
 * Labels: Service.Meta is copied as is; each tag T adds `consul.tag.T = "true"`, and a tag
 * "k=v" also adds `k = v` unless Meta has k. Also `consul.node`, `consul.dc`, `consul.id`.
 * Zone: Service.Meta.zone, else Node.Meta.zone. Weight: Service.Weights.Passing (default 1).
 * Address: Service.Address, else Node.Address.
 */
import { EventEmitter } from 'node:events';
import type Consul from 'consul';
import { formatHostPort, parseHostPort } from '../config/address.ts';
import { MeshworkConfigError } from '../errors.ts';
import { loadOptional } from '../optional.ts';
import { hasUserinfo } from '../telemetry/url.ts';
import { CONSUL_CREDENTIALS, type ConsulConfig } from './schema.ts';
import { backoffDelay, ProviderTracker } from './tracker.ts';
import type { DiscoveryProvider, DiscoverySink, DiscoveryStatus, EndpointSpec } from './types.ts';
import { WakeableSleep } from './wakeable-sleep.ts';

export const CONSUL_DEFAULTS = {
  host: '127.0.0.1',
  port: 8500,
  wait: 60_000,
  minInterval: 250,
  refreshInterval: 5 * 60_000,
  backoffBase: 500,
  backoffCap: 30_000,
} as const;

export interface ConsulSettings {
  service: string;
  host: string;
  port: number;
  secure: boolean;
  token?: string | undefined;
  dc?: string | undefined;
  tag?: string | string[] | undefined;
  filter?: string | undefined;
  stale: boolean;
  wait: number;
  minInterval: number;
  refreshInterval: number;
}

/** Merges the config with CONSUL_HTTP_ADDR / CONSUL_HTTP_TOKEN / CONSUL_HTTP_SSL and defaults. */
export function consulSettings(cfg: ConsulConfig, service: string, env: NodeJS.ProcessEnv): ConsulSettings {
  let host: string = CONSUL_DEFAULTS.host;
  let port: number = CONSUL_DEFAULTS.port;
  let secure = /^(1|true)$/i.test(env.CONSUL_HTTP_SSL ?? '');
  const addr = env.CONSUL_HTTP_ADDR?.trim();
  if (addr && hasUserinfo(addr))
    throw new MeshworkConfigError([{ path: 'CONSUL_HTTP_ADDR (environment)', message: CONSUL_CREDENTIALS }]);
  if (addr) {
    let rest = addr;
    const scheme = /^(https?):\/\//i.exec(addr);
    if (scheme) {
      secure = scheme[1]?.toLowerCase() === 'https';
      rest = addr.slice(scheme[0].length).replace(/\/.*$/, '');
    }
    const hp = parseHostPort(rest);
    if (hp) {
      host = hp.host;
      port = hp.port;
    } else if (rest) {
      host = rest;
      port = secure ? 443 : 80;
    }
  }
  return {
    service: cfg.service ?? service,
    host: cfg.host ?? host,
    port: cfg.port ?? port,
    secure: cfg.secure ?? secure,
    token: cfg.token ?? (env.CONSUL_HTTP_TOKEN || undefined),
    dc: cfg.dc,
    tag: cfg.tag,
    filter: cfg.filter,
    stale: cfg.stale ?? false,
    wait: Math.min(cfg.wait ?? CONSUL_DEFAULTS.wait, 10 * 60_000),
    minInterval: cfg.minInterval ?? CONSUL_DEFAULTS.minInterval,
    refreshInterval: cfg.refreshInterval ?? CONSUL_DEFAULTS.refreshInterval,
  };
}

/** Turns one /v1/health/service entry into an EndpointSpec, or a reason to skip it. */
export function consulEntrySpec(entry: unknown): EndpointSpec | string {
  if (typeof entry !== 'object' || entry === null) return 'entry is not an object';
  const e = entry as ConsulEntry;
  const svc = e.Service;
  const node = e.Node ?? {};
  if (typeof svc !== 'object' || svc === null) return 'entry has no Service';
  const host = typeof svc.Address === 'string' && svc.Address !== '' ? svc.Address : node.Address;
  if (typeof host !== 'string' || host === '') return 'neither Service.Address nor Node.Address is set';
  const port = svc.Port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)
    return `Service.Port ${JSON.stringify(port)} is not a port`;
  const address = formatHostPort(host, port);
  if (!parseHostPort(address)) return `address ${JSON.stringify(address)} is not a valid host:port`;
  let weight = 1;
  if (svc.Weights != null && svc.Weights.Passing !== undefined) {
    const w = svc.Weights.Passing;
    if (typeof w !== 'number' || !Number.isInteger(w) || w < 1)
      return `Service.Weights.Passing ${JSON.stringify(w)} is not a positive integer`;
    weight = w;
  }
  const labels: Record<string, string> = {};
  const meta = isStringRecord(svc.Meta) ? svc.Meta : {};
  const tags: unknown[] = Array.isArray(svc.Tags) ? svc.Tags : [];
  for (const t of tags) {
    if (typeof t !== 'string') continue;
    labels[`consul.tag.${t}`] = 'true';
    const eq = t.indexOf('=');
    if (eq > 0 && !Object.hasOwn(meta, t.slice(0, eq))) labels[t.slice(0, eq)] = t.slice(eq + 1);
  }
  Object.assign(labels, meta);
  if (typeof node.Node === 'string') labels['consul.node'] = node.Node;
  if (typeof node.Datacenter === 'string') labels['consul.dc'] = node.Datacenter;
  if (typeof svc.ID === 'string') labels['consul.id'] = svc.ID;
  const nodeMeta = isStringRecord(node.Meta) ? node.Meta : {};
  const zone = meta.zone || nodeMeta.zone || undefined;
  return { address, host: parseHostPort(address)!.host, port, labels, weight, zone };
}

/** One /v1/health/service entry as Consul sends it: untyped JSON, every field checked. */
interface ConsulEntry {
  Service?: {
    Address?: unknown;
    Port?: unknown;
    Weights?: { Passing?: unknown } | null;
    Meta?: unknown;
    Tags?: unknown;
    ID?: unknown;
  } | null;
  Node?: { Address?: unknown; Node?: unknown; Datacenter?: unknown; Meta?: unknown };
  Checks?: unknown;
}

function isStringRecord(v: unknown): v is Record<string, string> {
  return (
    typeof v === 'object' && v !== null && Object.values(v as object).every((x) => typeof x === 'string')
  );
}

/** True when every check of the entry (node serfHealth included) is passing. */
function allPassing(entry: unknown): boolean {
  const checks = (entry as ConsulEntry | null)?.Checks;
  return !Array.isArray(checks) || checks.every((c: { Status?: unknown } | null) => c?.Status === 'passing');
}

export interface ConsulDiscoveryOptions {
  random?: () => number;
}

export class ConsulDiscovery implements DiscoveryProvider {
  readonly kind = 'consul';
  readonly settings: ConsulSettings;
  readonly #tracker = new ProviderTracker('consul');
  readonly #consul: Consul;
  readonly #random: () => number;
  #closed = false;
  #index = 0;
  #lastFull = 0;
  #failures = 0;
  #ctx: EventEmitter | undefined;
  readonly #sleeper = new WakeableSleep();
  #loop: Promise<void> | undefined;
  /** Requests sent to Consul (for the snapshot and the bench). */
  requests = 0;

  constructor(
    cfg: ConsulConfig,
    ctx: { service: string; env: NodeJS.ProcessEnv },
    opts: ConsulDiscoveryOptions = {},
  ) {
    this.settings = consulSettings(cfg, ctx.service, ctx.env);
    this.#random = opts.random ?? Math.random;
    // An optional peer dependency, loaded here (createMesh) for the first Consul service.
    const ConsulClient = loadOptional<typeof Consul>('consul', 'Consul discovery (`discovery.consul`)');
    this.#consul = new ConsulClient({
      host: this.settings.host,
      port: this.settings.port,
      secure: this.settings.secure,
    });
  }

  start(sink: DiscoverySink): void {
    this.#tracker.attach(sink);
    this.#loop = this.#run();
  }

  status(): DiscoveryStatus & { index: number; requests: number } {
    return { ...this.#tracker.status(), index: this.#index, requests: this.requests };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#tracker.close();
    this.#ctx?.emit('cancel');
    this.#sleeper.wake();
    await this.#loop;
    this.#consul.destroy();
  }

  async #run(): Promise<void> {
    const s = this.settings;
    while (!this.#closed) {
      const started = Date.now();
      if (this.#index > 0 && started - this.#lastFull >= s.refreshInterval) this.#index = 0;
      const requested = this.#index;
      try {
        const [res, body] = await this.#query(requested);
        if (this.#closed) break;
        const header = Number(res?.headers?.['x-consul-index']);
        if (!Number.isSafeInteger(header) || header < 1 || header < requested) {
          // Missing, invalid or backwards: the next read is a full, non-blocking one.
          this.#index = 0;
        } else {
          this.#index = header;
        }
        if (requested === 0) this.#lastFull = Date.now();
        this.#failures = 0;
        this.#tracker.recovered();
        this.#publish(body);
      } catch (err) {
        if (this.#closed) break;
        this.#tracker.error(new Error(`consul ${s.host}:${s.port} service "${s.service}": ${describe(err)}`));
        await this.#sleep(
          backoffDelay(
            this.#failures++,
            CONSUL_DEFAULTS.backoffBase,
            CONSUL_DEFAULTS.backoffCap,
            this.#random,
          ),
        );
        continue;
      }
      const elapsed = Date.now() - started;
      if (elapsed < s.minInterval) await this.#sleep(s.minInterval - elapsed);
    }
  }

  #publish(body: unknown): void {
    if (!Array.isArray(body)) {
      this.#tracker.error(
        new Error(`consul answered a non-array body for service "${this.settings.service}"`),
      );
      return;
    }
    const specs: EndpointSpec[] = [];
    for (const entry of body) {
      if (!allPassing(entry)) continue;
      const spec = consulEntrySpec(entry);
      if (typeof spec === 'string') this.#tracker.skipped(`consul: ${spec}`, entry);
      else specs.push(spec);
    }
    this.#tracker.publish(specs);
  }

  async #query(index: number): Promise<[{ headers?: Record<string, unknown> } | undefined, unknown]> {
    const s = this.settings;
    const ctx = new EventEmitter() as EventEmitter & { includeResponse?: boolean };
    ctx.includeResponse = true;
    this.#ctx = ctx;
    const opts: Record<string, unknown> = { service: s.service, passing: true, ctx };
    if (s.token) opts.token = s.token;
    if (s.dc) opts.dc = s.dc;
    if (s.tag) opts.tag = s.tag;
    if (s.filter) opts.filter = s.filter;
    if (s.stale) opts.stale = true;
    if (index > 0) {
      opts.index = String(index);
      opts.wait = `${Math.max(1, Math.round(s.wait / 1000))}s`;
      // Consul may add up to wait/16; a dead connection must not hang us forever.
      opts.timeout = s.wait + s.wait / 16 + 5_000;
    } else {
      opts.timeout = 10_000;
    }
    this.requests++;
    try {
      return (await this.#consul.health.service(opts as never)) as unknown as [
        { headers?: Record<string, unknown> } | undefined,
        unknown,
      ];
    } finally {
      if (this.#ctx === ctx) this.#ctx = undefined;
    }
  }

  #sleep(ms: number): Promise<void> {
    return this.#closed ? Promise.resolve() : this.#sleeper.sleep(ms);
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const e = err as { response?: { statusCode?: unknown }; statusCode?: unknown };
    const status = e.response?.statusCode ?? e.statusCode;
    return status ? `${status} ${err.message}` : err.message;
  }
  return String(err);
}
