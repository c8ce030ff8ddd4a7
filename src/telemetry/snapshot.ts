/**
 * `mesh.snapshot()`: the whole live state, as plain JSON-able data (the admin page renders it).
 * Fields other layers own are optional, so each lands with its layer: `outlier` per endpoint and
 * `retryBudget`, `routes` and `subsets`, `tls`. `circuitBreakers`
 * and per-endpoint `ejections` are kept by ServiceTelemetry from the events it is told about.
 */

import type { ContextCounters } from '../context/runtime.ts';
import type { DiscoveryStatus } from '../discovery/types.ts';
import type { ConfigSnapshot } from '../live/controller.ts';
import type { RateLimitsSnapshot } from '../ratelimit/runtime.ts';
import type { BudgetSnapshot } from '../retry/budget.ts';
import type { ServiceRuntime } from '../service.ts';
import { type IdentitySnapshot, type TlsSnapshot, tlsSnapshot } from '../tls/snapshot.ts';
import type { XdsSnapshot } from '../xds/client.ts';
import type { CircuitState } from './channels.ts';
import type { EndpointState } from './metrics.ts';
import { endpointState } from './service-telemetry.ts';
import type { WindowSummary } from './stats.ts';

export type { WindowSummary } from './stats.ts';

export interface EndpointSnapshot {
  address: string;
  labels: Record<string, string>;
  /** Weight from discovery. */
  weight: number;
  /** Weight the balancer uses now (slow start applied). */
  effectiveWeight: number;
  zone: string | undefined;
  /** One word for the page: draining > ejected > unhealthy > healthy. */
  state: EndpointState;
  healthy: boolean;
  ejected: boolean;
  /** While ejected: ms until the endpoint comes back. */
  ejectedForMs?: number | undefined;
  draining: boolean;
  inflight: number;
  /** Attempts sent to it so far (retries and hedges included). */
  attempts: number;
  /** Attempts answered with a 5xx status. */
  responses5xx: number;
  /** Attempts that failed without a complete answer (refused, reset, per-try timeout). */
  errors: number;
  /** Peak-EWMA round-trip estimate, ms. */
  ewmaMs: number;
  /**
   * Outlier ejections so far (when any), with the last reason (the outlierDetection setting
   * whose counter tripped: `consecutive5xxErrors`, `consecutiveGatewayErrors`,
   * `consecutiveLocalOriginFailures`, `successRate`, `failurePercentage`) and time.
   */
  ejections?: { count: number; lastReason: string; lastAt: string } | undefined;
  /**
   * Its attempts over the last minute (rate, success rate, p50, p99). Kept once an admin
   * handler exists (`mesh.adminHandler()`), and only for an endpoint that has had attempts since.
   */
  lastMinute?: WindowSummary | undefined;
  /** Outlier-detection counters. */
  outlier?: Record<string, unknown> | undefined;
}

export interface CircuitBreakerSnapshot {
  /** Undefined for a service-wide breaker. */
  endpoint?: string | undefined;
  state: CircuitState;
}

export interface RouteSnapshot {
  name?: string | undefined;
  match?: unknown;
  destinations?:
    | {
        host?: string | undefined;
        subset?: string | undefined;
        /** Configured weight (Istio: all destinations of a route share 100). */
        weight?: number | undefined;
        /** Requests this route sent there in the last minute (once an admin handler exists). */
        observed?: number | undefined;
      }[]
    | undefined;
  [key: string]: unknown;
}

export interface ServiceSnapshot {
  endpoints: EndpointSnapshot[];
  loadBalancer: string;
  /** Requests in flight to this service's endpoints (sum over endpoints). */
  inflight: number;
  discovery: DiscoveryStatus;
  /** Breaker state transitions seen (from telemetry events). */
  circuitBreakers?: CircuitBreakerSnapshot[] | undefined;
  /** The service-level breaker; undefined unless configured. `pending`: let through, not judged yet. */
  circuitBreaker?: { state: CircuitState; rejected: number; pending: number } | undefined;
  /** Requests in the retry layer now: started, not finished (retries and hedges of one request count once). */
  /**
   * `active`: requests in the mesh now. `retryOverflows`: retries not made because
   * connectionPool.http.maxRetries requests were already retrying. `nonIdempotentRetriesSkipped`:
   * retries not made because the request (POST, PATCH) is not idempotent and may have been sent.
   */
  requests?: { active: number; retryOverflows?: number; nonIdempotentRetriesSkipped?: number } | undefined;
  /** The retry budget; undefined when `retryBudget.enabled: false`. */
  retryBudget?: BudgetSnapshot | undefined;
  outlierDetection?: { enabled: boolean; ejectionsTotal: number } | undefined;
  /** connectionPool request accounting: requests active, overflows rejected (UO). */
  connectionPool?: { active: number; overflows: number } | undefined;
  /** Client TLS (trafficPolicy.tls), when enabled. */
  tls?: TlsSnapshot | undefined;
  routes?: RouteSnapshot[] | undefined;
  subsets?: { name: string; labels: Record<string, string>; endpoints: number }[] | undefined;
  /**
   * Requests addressed to this service over the last minute (rate, success rate, retries, p50,
   * p99). Kept once an admin handler exists (`mesh.adminHandler()`).
   */
  lastMinute?: WindowSummary | undefined;
}

export interface MeshSnapshot {
  zone: string | undefined;
  closed: boolean;
  /** Wall-clock time of the snapshot (ISO 8601). */
  takenAt: string;
  services: Record<string, ServiceSnapshot>;
  /** mesh.inbound(): context trust and authorization counters. */
  inbound: ContextCounters;
  /** The mesh identity's SPIFFE ID and rotations, when `identity` is configured. */
  identity?: IdentitySnapshot | undefined;
  /** Mirrored copies: in flight now (bounded by `max`), sent and dropped so far. */
  mirrors?: { inFlight: number; max: number; sent: number; dropped: number } | undefined;
  /** The running config: version, hash, source, when applied, the last refused update (docs/live-config.md). */
  config?: ConfigSnapshot | undefined;
  /** Rate limits: the store, every policy's decisions, refusals, usage per application (docs/rate-limits.md). */
  rateLimits?: RateLimitsSnapshot | undefined;
  /** The xDS client: control plane connection, versions, ACKs/NACKs, listeners (docs/xds.md). */
  xds?: XdsSnapshot | undefined;
}

/**
 * Checks a snapshot for counters that disagree or went wrong, and with `idle: true` (nothing is
 * being sent, every request has finished) for anything still counted in flight. Returns one line
 * per problem, empty when all is well: for tests, health checks and soak runs.
 */
export function snapshotProblems(s: MeshSnapshot, opts: { idle?: boolean } = {}): string[] {
  const problems: string[] = [];
  const check = (ok: boolean, what: string) => {
    if (!ok) problems.push(what);
  };
  for (const [name, svc] of Object.entries(s.services)) {
    const at = `services.${name}`;
    let sum = 0;
    for (const ep of svc.endpoints) {
      sum += ep.inflight;
      check(ep.inflight >= 0, `${at} endpoint ${ep.address}: inflight ${ep.inflight} < 0`);
      if (opts.idle)
        check(ep.inflight === 0, `${at} endpoint ${ep.address}: inflight ${ep.inflight} while idle`);
    }
    check(sum === svc.inflight, `${at}.inflight ${svc.inflight} != sum over endpoints ${sum}`);
    const active = svc.connectionPool?.active ?? 0;
    check(active === svc.inflight, `${at}.connectionPool.active ${active} != inflight ${svc.inflight}`);
    const requests = svc.requests?.active ?? 0;
    check(requests >= 0, `${at}.requests.active ${requests} < 0`);
    const pending = svc.circuitBreaker?.pending ?? 0;
    check(pending >= 0, `${at}.circuitBreaker.pending ${pending} < 0`);
    if (opts.idle) {
      check(svc.inflight === 0, `${at}.inflight ${svc.inflight} while idle`);
      check(requests === 0, `${at}.requests.active ${requests} while idle`);
      check(pending === 0, `${at}.circuitBreaker.pending ${pending} while idle`);
    }
  }
  const m = s.mirrors;
  if (m) {
    check(m.inFlight >= 0 && m.inFlight <= m.max, `mirrors.inFlight ${m.inFlight} outside 0..${m.max}`);
    if (opts.idle) check(m.inFlight === 0, `mirrors.inFlight ${m.inFlight} while idle`);
  }
  return problems;
}

const round3 = (n: number) => Math.round(n * 1000) / 1000;

export function serviceSnapshot(svc: ServiceRuntime, now: number): ServiceSnapshot {
  const tel = svc.telemetry;
  const endpoints: EndpointSnapshot[] = [];
  let inflight = 0;
  for (const ep of svc.endpoints.endpoints()) {
    const ejected = ep.isEjected(now);
    const e: EndpointSnapshot = {
      address: ep.address,
      labels: { ...ep.labels },
      weight: ep.weight,
      effectiveWeight: round3(ep.effectiveWeight(now)),
      zone: ep.zone,
      state: endpointState(ep, now),
      healthy: ep.healthy,
      ejected,
      draining: ep.draining,
      inflight: ep.inflight,
      attempts: ep.attempts,
      responses5xx: ep.responses5xx,
      errors: ep.errors,
      ewmaMs: round3(ep.ewma.estimate(now)),
    };
    if (ejected) e.ejectedForMs = Math.round(ep.ejectedUntil - now);
    const rec = tel.ejections.get(ep.address);
    if (rec) e.ejections = { ...rec };
    const recent = tel.stats.endpoint(ep, now);
    if (recent) e.lastMinute = recent;
    inflight += ep.inflight;
    endpoints.push(e);
  }
  const s: ServiceSnapshot = {
    endpoints,
    loadBalancer: svc.endpoints.all.balancer.name,
    inflight,
    discovery: svc.discoveryStatus(),
  };
  if (tel.breakers.size > 0) s.circuitBreakers = Array.from(tel.circuitStates(), (b) => ({ ...b }));
  s.retryBudget = svc.retry.budget?.snapshot();
  s.outlierDetection = {
    enabled: svc.outlier !== undefined,
    ejectionsTotal: svc.outlier?.ejectionsTotal ?? 0,
  };
  if (svc.breaker)
    s.circuitBreaker = {
      state: svc.breaker.state,
      rejected: svc.breaker.rejected,
      pending: svc.breaker.pending,
    };
  s.requests = {
    active: svc.retry.active,
    retryOverflows: svc.retry.retryOverflows,
    nonIdempotentRetriesSkipped: svc.retry.nonIdempotentSkipped,
  };
  s.connectionPool = { active: svc.limits.active, overflows: svc.limits.overflows };
  const tls = tlsSnapshot(svc);
  if (tls) s.tls = tls;
  if (svc.router.size > 0) {
    s.routes = svc.router.routes.map((r) => {
      const observed = tel.stats.route(r, r.config.route?.length ?? 0, now);
      return {
        name: r.config.name ?? `${svc.name}.http[${r.index}]`,
        match: r.config.match,
        destinations: (r.config.route ?? []).map((d, i) => ({
          host: d.destination.host,
          subset: d.destination.subset,
          weight: d.weight,
          ...(observed ? { observed: observed[i] ?? 0 } : {}),
        })),
      };
    });
  }
  const recent = tel.stats.requests(now);
  if (recent) s.lastMinute = recent;
  if (svc.config.subsets?.length) {
    s.subsets = svc.config.subsets.map((sub) => ({
      name: sub.name,
      labels: { ...(sub.labels ?? {}) },
      endpoints: svc.endpoints.group(sub.name)?.endpoints.length ?? 0,
    }));
  }
  return s;
}
