/**
 * Active health checks as a filter on the discovery stream: a DiscoverySink that sits between a
 * provider and the endpoint set. Endpoints the provider inserts are passed on at once (healthy
 * until proven otherwise, as Envoy does by default) and probed every `interval` with
 * `GET http://host:port<path>` (2xx = success, bounded by `timeout`). After `unhealthyThreshold`
 * failures in a row the endpoint is marked unhealthy downstream (a `health` change: it keeps its
 * pool and load estimate, shows `healthy: false` in the snapshot and takes no requests); after
 * `healthyThreshold` successes in a row it is marked healthy again. Inserts and removes from the
 * provider pass through; ready / error / skipped pass through unchanged. Failing endpoints count
 * as unavailable for the panic threshold and locality failover, but are never used, not even in
 * panic mode: when every endpoint fails its check, requests fail fast with
 * MESHWORK_ERR_NO_ENDPOINTS (fail closed; Envoy's panic mode would fail open).
 */
import { Agent, request } from 'undici';
import type { HealthCheckConfig } from './schema.ts';
import { DISCOVERY_DEFAULTS } from './schema.ts';
import type { DiscoveryChange, DiscoverySink, EndpointSpec } from './types.ts';

export type Probe = (endpoint: EndpointSpec, signal: AbortSignal) => Promise<boolean>;

export interface EndpointHealth {
  address: string;
  healthy: boolean;
  successes: number;
  failures: number;
  lastError?: string | undefined;
}

interface Tracked {
  spec: EndpointSpec;
  healthy: boolean;
  successes: number;
  failures: number;
  lastError?: string | undefined;
  timer?: NodeJS.Timeout | undefined;
  abort?: AbortController | undefined;
}

export class HealthCheckingSink implements DiscoverySink {
  readonly #down: DiscoverySink;
  readonly #cfg: Required<HealthCheckConfig>;
  readonly #probe: Probe;
  readonly #agent: Agent | undefined;
  readonly #random: () => number;
  #endpoints = new Map<string, Tracked>();
  #closed = false;

  constructor(
    downstream: DiscoverySink,
    cfg: HealthCheckConfig,
    opts: { probe?: Probe; random?: () => number } = {},
  ) {
    this.#down = downstream;
    const d = DISCOVERY_DEFAULTS.healthCheck;
    this.#cfg = {
      path: cfg.path ?? d.path,
      interval: cfg.interval ?? d.interval,
      timeout: cfg.timeout ?? d.timeout,
      healthyThreshold: cfg.healthyThreshold ?? d.healthyThreshold,
      unhealthyThreshold: cfg.unhealthyThreshold ?? d.unhealthyThreshold,
    };
    this.#random = opts.random ?? Math.random;
    if (opts.probe) this.#probe = opts.probe;
    else {
      const agent = new Agent({ keepAliveTimeout: Math.max(1_000, this.#cfg.interval * 2), connections: 1 });
      this.#agent = agent;
      this.#probe = async (ep, signal) => {
        const res = await request(`http://${ep.address}${this.#cfg.path}`, {
          dispatcher: agent,
          signal,
          headers: { 'user-agent': 'meshwork-health-check' },
        });
        await res.body.dump();
        return res.statusCode >= 200 && res.statusCode < 300;
      };
    }
  }

  apply(changes: readonly DiscoveryChange[]): void {
    const out: DiscoveryChange[] = [];
    for (const c of changes) {
      if (c.type === 'health') {
        out.push(c);
      } else if (c.type === 'remove') {
        const t = this.#endpoints.get(c.address);
        if (!t) continue;
        this.#stop(t);
        this.#endpoints.delete(c.address);
        out.push(c);
      } else {
        const t = this.#endpoints.get(c.endpoint.address);
        if (t) {
          t.spec = c.endpoint;
          out.push(c); // an update (labels, weight): the endpoint keeps its health
        } else {
          const n: Tracked = { spec: c.endpoint, healthy: true, successes: 0, failures: 0 };
          this.#endpoints.set(c.endpoint.address, n);
          out.push(c);
          // Spread the first probes over one interval so endpoints are not checked in lockstep.
          this.#schedule(n, this.#random() * this.#cfg.interval);
        }
      }
    }
    if (out.length) this.#down.apply(out);
  }

  ready(): void {
    this.#down.ready();
  }
  error(err: Error): void {
    this.#down.error(err);
  }
  skipped(reason: string, record: unknown): void {
    this.#down.skipped(reason, record);
  }

  health(): EndpointHealth[] {
    return [...this.#endpoints.values()].map((t) => ({
      address: t.spec.address,
      healthy: t.healthy,
      successes: t.successes,
      failures: t.failures,
      lastError: t.lastError,
    }));
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#endpoints.values()) this.#stop(t);
    await this.#agent?.close();
  }

  #stop(t: Tracked): void {
    if (t.timer) clearTimeout(t.timer);
    t.timer = undefined;
    t.abort?.abort();
  }

  #schedule(t: Tracked, delay: number): void {
    if (this.#closed) return;
    t.timer = setTimeout(() => void this.#check(t), delay);
    t.timer.unref();
  }

  async #check(t: Tracked): Promise<void> {
    const abort = new AbortController();
    t.abort = abort;
    const timer = setTimeout(
      () => abort.abort(new Error(`timed out after ${this.#cfg.timeout}ms`)),
      this.#cfg.timeout,
    );
    timer.unref();
    let ok = false;
    try {
      ok = await this.#probe(t.spec, abort.signal);
      t.lastError = ok ? undefined : 'non-2xx status';
    } catch (err) {
      t.lastError = abort.signal.aborted
        ? String(abort.signal.reason?.message ?? 'aborted')
        : (err as Error).message;
    } finally {
      clearTimeout(timer);
    }
    if (this.#closed || this.#endpoints.get(t.spec.address) !== t) return;
    if (ok) {
      t.successes++;
      t.failures = 0;
      if (!t.healthy && t.successes >= this.#cfg.healthyThreshold) {
        t.healthy = true;
        this.#down.apply([{ type: 'health', address: t.spec.address, healthy: true }]);
      }
    } else {
      t.failures++;
      t.successes = 0;
      if (t.healthy && t.failures >= this.#cfg.unhealthyThreshold) {
        t.healthy = false;
        this.#down.apply([{ type: 'health', address: t.spec.address, healthy: false }]);
      }
    }
    this.#schedule(t, this.#cfg.interval);
  }
}
