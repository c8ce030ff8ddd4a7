/**
 * The mesh's rate limits, put together: one store (in-process, or Redis), one limiter for
 * mesh.inbound() (`rateLimits`) and one per service with `services.<name>.rateLimits`, the usage
 * book and its reports, and the snapshot. Built by createMesh only when something is configured.
 */
import type { IncomingMessage } from 'node:http';
import type { Clock } from '../clock.ts';
import type { MeshConfig } from '../config/schema.ts';
import type { InboundGate, InboundResult } from '../context/runtime.ts';
import type { Logger } from '../telemetry/logger.ts';
import { JwtVerifier } from './jwt.ts';
import { type Answer, Limiter, type PolicySnapshot, type Verdict } from './limiter.ts';
import { connectRedis, type RedisConnection } from './redis-client.ts';
import { RedisStore } from './redis-store.ts';
import type { RateLimitBlock } from './schema.ts';
import { type CounterStore, MemoryStore, type StoreSnapshot } from './store.ts';
import { UsageBook, type UsageSnapshot } from './usage.ts';

/** Default bound on one store call. */
export const DEFAULT_STORE_TIMEOUT_MS = 10;
const DEFAULT_REPORT_INTERVAL_MS = 1_000;

export interface RateLimitsSnapshot {
  domain?: string | undefined;
  store: StoreSnapshot;
  /** Every policy and plan limit, with what it admitted and refused (this process). */
  policies: PolicySnapshot[];
  /** Refusals by kind, per scope (`inbound` or the service called). */
  refusals: Record<string, Record<string, number>>;
  /** Usage per application, metric and window (this process; `total` across processes with Redis). */
  usage: UsageSnapshot[];
}

export interface RateLimitRuntimeOptions {
  clock: Clock;
  logger: Logger;
  /** Endpoints of a configured service now (for `store.replicas: { service }`). */
  endpointsOf: (service: string) => number | undefined;
  /** Wall clock (ms) for calendar windows; default Date.now. */
  wall?: () => number;
  /** Test hook: the Redis connection. */
  connection?: RedisConnection;
}

function hasRateLimits(config: MeshConfig): boolean {
  if (config.rateLimits !== undefined) return true;
  for (const svc of Object.values(config.services)) if (svc.rateLimits !== undefined) return true;
  return false;
}

export class RateLimitRuntime {
  readonly store: CounterStore;
  readonly usage: UsageBook;
  readonly inbound: Limiter | undefined;
  readonly #services = new Map<string, Limiter>();
  readonly #logger: Logger;
  readonly #domain: string | undefined;
  readonly #redis: RedisStore | undefined;
  readonly #reportMs: number;
  #timer: NodeJS.Timeout | undefined;
  #reporting = false;

  /** The runtime for `config`, or undefined when it configures no rate limits. */
  static fromConfig(config: MeshConfig, opts: RateLimitRuntimeOptions): RateLimitRuntime | undefined {
    return hasRateLimits(config) ? new RateLimitRuntime(config, opts) : undefined;
  }

  constructor(config: MeshConfig, opts: RateLimitRuntimeOptions) {
    const rl = config.rateLimits;
    const wall = opts.wall ?? Date.now;
    this.#logger = opts.logger;
    this.#domain = rl?.domain;
    const s = rl?.store;
    const configured = s?.replicas;
    const replicas =
      configured === undefined
        ? () => undefined
        : typeof configured === 'number'
          ? () => configured
          : () => Math.max(1, opts.endpointsOf(configured.service) ?? 1);
    this.#reportMs = s?.reportInterval ?? DEFAULT_REPORT_INTERVAL_MS;
    if (s?.redis !== undefined && s.mode !== 'local') {
      this.#redis = new RedisStore({
        connection:
          opts.connection ?? connectRedis({ url: s.redis, cluster: s.cluster === true, logger: opts.logger }),
        url: s.redis,
        domain: rl?.domain as string,
        mode: s.mode ?? 'lease',
        onFailure: s.onFailure ?? 'local',
        timeoutMs: s.timeout ?? DEFAULT_STORE_TIMEOUT_MS,
        replicas,
        leaseMax: s.leaseMax,
        clock: opts.clock,
        wall,
        logger: opts.logger,
      });
      this.store = this.#redis;
    } else {
      this.store = new MemoryStore({
        clock: opts.clock,
        wall,
        logger: opts.logger,
        ...(s?.mode === 'local' ? { share: () => replicas() ?? 1 } : {}),
      });
    }
    this.usage = new UsageBook(wall);
    this.inbound = rl && this.#hasWork(rl) ? this.#limiter(rl, 'inbound', 'rateLimits') : undefined;
    for (const [name, svc] of Object.entries(config.services))
      if (svc.rateLimits && this.#hasWork(svc.rateLimits))
        this.#services.set(name, this.#limiter(svc.rateLimits, name, `services.${name}.rateLimits`));
    if (rl?.credentials?.some((c) => c.context) && !config.context?.trust)
      opts.logger.warn(
        {},
        'rateLimits: applications are identified by the gateway context, but context.trust is not configured: any caller can claim any application and plan (docs/context.md, "Trust")',
      );
    if (this.#redis) {
      this.#timer = setInterval(() => this.#tick(), this.#reportMs);
      this.#timer.unref();
      // A first report right away: the heartbeat tells every replica how many share the limits.
      this.#redis.onConnected = () => void this.#tick();
    }
  }

  #hasWork(b: RateLimitBlock): boolean {
    return (b.policies?.length ?? 0) > 0 || b.credentials !== undefined;
  }

  #limiter(block: RateLimitBlock, scope: string, path: string): Limiter {
    const jwt = block.jwt ? new JwtVerifier(block.jwt, `${path}.jwt`) : undefined;
    return new Limiter(
      block,
      scope,
      { store: this.store, usage: this.usage, logger: this.#logger, jwt },
      this.#domain ?? 'meshwork',
    );
  }

  /** The outbound limiter of a service, or undefined when it has no rate limits. */
  forService(name: string): Limiter | undefined {
    return this.#services.get(name);
  }

  /** The check mesh.inbound() runs after authorization and the context; undefined without one. */
  gate(): InboundGate | undefined {
    const limiter = this.inbound;
    if (limiter === undefined) return undefined;
    return (req: IncomingMessage, r: InboundResult) => {
      const v = limiter.check({
        method: req.method ?? 'GET',
        // The whole normalized target, as authorization judged it (Express rewrites req.url
        // under a mount point; originalUrl keeps it whole).
        path: (req as { originalUrl?: string }).originalUrl ?? req.url ?? '/',
        headers: req.headers,
        ctx: r.ctx,
        principal: r.ctx.principal,
      });
      return v instanceof Promise ? v.then((x) => applyVerdict(r, x)) : applyVerdict(r, v);
    };
  }

  /** Reports usage and settles what counters owe the store (Redis store only). */
  async #tick(): Promise<void> {
    const store = this.#redis;
    if (!store || this.#reporting) return;
    this.#reporting = true;
    try {
      store.settle();
      const batch = this.usage.pending();
      const reply = await store.report(batch.fields, batch.deltas, this.#reportMs);
      if (reply) this.usage.reported(batch, reply);
    } catch (err) {
      this.#logger.debug({ err: String(err) }, 'rate limits: usage report failed');
    } finally {
      this.#reporting = false;
    }
  }

  /** Reports now (tests and close()). */
  flush(): Promise<void> {
    return this.#tick();
  }

  snapshot(): RateLimitsSnapshot {
    const policies: PolicySnapshot[] = [];
    const refusals: Record<string, Record<string, number>> = {};
    for (const l of [this.inbound, ...this.#services.values()]) {
      if (!l) continue;
      policies.push(...l.snapshot());
      refusals[l.scope] = { ...l.refusals };
    }
    return {
      ...(this.#domain !== undefined ? { domain: this.#domain } : {}),
      store: this.store.snapshot(),
      policies,
      refusals,
      usage: this.usage.snapshot(),
    };
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#redis) await this.#tick();
    await this.store.close();
  }
}

function applyVerdict(r: InboundResult, v: Verdict): InboundResult {
  if (v.refusal) r.denied = toRefusal(v.refusal);
  else if (v.headers) r.headers = v.headers;
  return r;
}

function toRefusal(a: Answer): NonNullable<InboundResult['denied']> {
  return { status: a.status, reason: a.body.trimEnd(), body: a.body, headers: a.headers };
}
