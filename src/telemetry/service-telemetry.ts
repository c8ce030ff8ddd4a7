/**
 * The telemetry API of one service, for the layers that see rare events: retries and the
 * retry budget, outlier ejections, circuit breaker transitions,
 * discovery changes and errors (wired here through `discoverySink`). Each call does the whole
 * job: metric, diagnostics channel, span event (on the request's span, or the active span)
 * and, where an operator should hear about it, a log line through the mesh's logger.
 *
 * Layers reach it as `req.service.telemetry`. It also keeps the few per-service facts the
 * snapshot and the gauges show (breaker states, ejection history) and the request layer's
 * cached metric attribute objects.
 */
import { type Attributes, trace } from '@opentelemetry/api';
import type { EndpointSet } from '../balancer/endpoint-set.ts';
import type { Clock } from '../clock.ts';
import type { DiscoveryChange, DiscoverySink } from '../discovery/types.ts';
import type { MeshRequest } from '../pipeline.ts';
import {
  type CircuitState,
  discoveryChangeChannel,
  publishCircuitBreakerState,
  publishDiscoveryChange,
  publishDiscoveryError,
  publishEjection,
  publishRetry,
  publishRetryBudgetExhausted,
} from './channels.ts';
import type { Logger } from './logger.ts';
import { type EndpointState, type GaugeSource, instruments, registerGaugeSource } from './metrics.ts';
import { ServiceStats, statsEnabled } from './stats.ts';
import { otelRegistered, spanEvent, splitAuthority } from './tracing.ts';

export interface RetryEvent {
  /** The logical request, so the event lands on its span. */
  req?: MeshRequest | undefined;
  /** The attempt about to be sent (1 = first retry). */
  attempt: number;
  reason: string;
  /** The endpoint whose failure caused the retry. */
  endpoint?: string | undefined;
  delayMs?: number | undefined;
}

export interface RetryBudgetEvent {
  req?: MeshRequest | undefined;
  attempt?: number | undefined;
  reason?: string | undefined;
}

export interface EjectionEvent {
  req?: MeshRequest | undefined;
  endpoint: string;
  reason: string;
  durationMs: number;
}

export interface CircuitBreakerEvent {
  /** Omit for a service-wide breaker. */
  endpoint?: string | undefined;
  state: CircuitState;
}

export interface EjectionRecord {
  count: number;
  lastReason: string;
  /** Wall-clock time of the last ejection (ISO 8601). */
  lastAt: string;
}

const ATTR_CACHE_MAX = 512;

export class ServiceTelemetry implements GaugeSource {
  readonly service: string;
  readonly logger: Logger;
  readonly #endpoints: EndpointSet;
  readonly #clock: Clock;
  readonly #unregister: () => void;
  readonly #attrs = new Map<string, Attributes>();
  readonly #reasonAttrs = new Map<string, Attributes>();
  /** Breaker state by endpoint address ('' = service-wide). */
  readonly breakers = new Map<string, CircuitState>();
  /** Outlier ejections by endpoint address. */
  readonly ejections = new Map<string, EjectionRecord>();
  retryBudgetExhaustedCount = 0;
  /** The admin page's rolling minute (fed only once an admin handler exists, see stats.ts). */
  readonly stats = new ServiceStats();

  constructor(service: string, endpoints: EndpointSet, logger: Logger, clock: Clock) {
    this.service = service;
    this.logger = logger;
    this.#endpoints = endpoints;
    this.#clock = clock;
    this.#unregister = registerGaugeSource(this);
  }

  // ── events other layers report ───────────────────────────────────────────────────────────

  /** A retry is about to be sent. Call it from the retry layer before each resend. */
  retry(e: RetryEvent): void {
    e.req?.telemetry?.noteRetry(e.reason);
    if (statsEnabled()) this.stats.retry(this.#clock());
    if (otelRegistered()) instruments().retries.add(1, this.#reason(e.reason));
    publishRetry({
      service: this.service,
      attempt: e.attempt,
      reason: e.reason,
      endpoint: e.endpoint,
      delayMs: e.delayMs,
    });
    const attrs: Attributes = { 'meshwork.attempt': e.attempt, 'meshwork.retry.reason': e.reason };
    if (e.endpoint !== undefined) attrs['meshwork.endpoint'] = e.endpoint;
    if (e.delayMs !== undefined) attrs['meshwork.retry.delay_ms'] = e.delayMs;
    spanEvent(e.req?.telemetry?.span ?? trace.getActiveSpan(), 'meshwork.retry', attrs);
  }

  /** The retry budget refused a retry. */
  retryBudgetExhausted(e: RetryBudgetEvent = {}): void {
    this.retryBudgetExhaustedCount++;
    if (otelRegistered()) instruments().retryBudgetExhausted.add(1, this.#reason(e.reason ?? 'budget'));
    publishRetryBudgetExhausted({ service: this.service, attempt: e.attempt, reason: e.reason });
    const attrs: Attributes = { 'meshwork.service': this.service };
    if (e.attempt !== undefined) attrs['meshwork.attempt'] = e.attempt;
    if (e.reason !== undefined) attrs['meshwork.retry.reason'] = e.reason;
    spanEvent(e.req?.telemetry?.span ?? trace.getActiveSpan(), 'meshwork.retry_budget.exhausted', attrs);
    this.logger.debug(
      { service: this.service, attempt: e.attempt, reason: e.reason },
      'retry budget exhausted',
    );
  }

  /** Outlier detection ejected an endpoint. */
  ejection(e: EjectionEvent): void {
    const prev = this.ejections.get(e.endpoint);
    const rec: EjectionRecord = {
      count: (prev?.count ?? 0) + 1,
      lastReason: e.reason,
      lastAt: new Date().toISOString(),
    };
    this.ejections.set(e.endpoint, rec);
    if (otelRegistered()) instruments().ejections.add(1, this.#reason(e.reason));
    publishEjection({
      service: this.service,
      endpoint: e.endpoint,
      reason: e.reason,
      durationMs: e.durationMs,
      ejections: rec.count,
    });
    spanEvent(e.req?.telemetry?.span ?? trace.getActiveSpan(), 'meshwork.endpoint.ejected', {
      'meshwork.endpoint': e.endpoint,
      'meshwork.ejection.reason': e.reason,
      'meshwork.ejection.duration_ms': e.durationMs,
    });
    this.logger.warn(
      {
        service: this.service,
        endpoint: e.endpoint,
        reason: e.reason,
        durationMs: e.durationMs,
        ejections: rec.count,
      },
      'endpoint ejected by outlier detection',
    );
  }

  /**
   * Drops the ejection records of endpoints the set no longer has (neither live nor draining):
   * with churn (new pod addresses all the time) they would otherwise pile up for ever.
   */
  #forgetGone(set: EndpointSet): void {
    if (this.ejections.size === 0) return;
    for (const address of this.ejections.keys()) if (!set.has(address)) this.ejections.delete(address);
  }

  /** A circuit breaker changed state. */
  circuitBreaker(e: CircuitBreakerEvent): void {
    const key = e.endpoint ?? '';
    const previous = this.breakers.get(key);
    if (previous === e.state) return;
    this.breakers.set(key, e.state);
    publishCircuitBreakerState({ service: this.service, endpoint: e.endpoint, state: e.state, previous });
    const log = { service: this.service, endpoint: e.endpoint, state: e.state, previous };
    if (e.state === 'open') this.logger.warn(log, 'circuit breaker opened');
    else this.logger.info(log, `circuit breaker ${e.state}`);
  }

  /**
   * The sink discovery pushes into: forwards to the endpoint set, then counts the update or
   * error, publishes it on its channel, and (for errors) the endpoint set logs it.
   */
  /** `routingOnly`: a service with routes and no endpoints of its own (an xDS listener): no warning for 0 endpoints. */
  discoverySink(set: EndpointSet, routingOnly = false): DiscoverySink {
    const provider = set.status.provider;
    const attrs = { 'meshwork.service': this.service, 'meshwork.discovery.provider': provider };
    const registryErr = { ...attrs, 'meshwork.discovery.error.kind': 'registry' };
    const recordErr = { ...attrs, 'meshwork.discovery.error.kind': 'record' };
    return {
      apply: (changes: readonly DiscoveryChange[]) => {
        if (changes.length === 0) return;
        const watched = discoveryChangeChannel.hasSubscribers;
        const known = watched ? new Set(Array.from(set.endpoints(), (ep) => ep.address)) : undefined;
        set.apply(changes);
        this.#forgetGone(set);
        if (otelRegistered()) instruments().discoveryUpdates.add(1, attrs);
        if (known) {
          const msg = {
            service: this.service,
            provider,
            added: [] as string[],
            updated: [] as string[],
            removed: [] as string[],
            unhealthy: [] as string[],
            healthy: [] as string[],
            total: 0,
          };
          for (const c of changes) {
            if (c.type === 'remove') msg.removed.push(c.address);
            else if (c.type === 'health') (c.healthy ? msg.healthy : msg.unhealthy).push(c.address);
            else (known.has(c.endpoint.address) ? msg.updated : msg.added).push(c.endpoint.address);
          }
          msg.total = set.size;
          publishDiscoveryChange(msg);
        }
        this.logger.debug(
          { service: this.service, provider, changes: changes.length },
          'discovery update applied',
        );
      },
      ready: () => {
        const first = !set.isReady;
        set.ready();
        if (first && set.all.endpoints.length === 0 && !routingOnly)
          this.logger.warn(
            { service: this.service, provider },
            'discovery is ready with 0 endpoints: requests fail with MESHWORK_ERR_NO_ENDPOINTS until some appear',
          );
      },
      error: (err: Error) => {
        set.error(err);
        if (otelRegistered()) instruments().discoveryErrors.add(1, registryErr);
        publishDiscoveryError({ service: this.service, provider, kind: 'registry', error: err });
      },
      skipped: (reason: string, record: unknown) => {
        set.skipped(reason, record);
        if (otelRegistered()) instruments().discoveryErrors.add(1, recordErr);
        publishDiscoveryError({ service: this.service, provider, kind: 'record', error: reason, record });
      },
    };
  }

  // ── gauges ───────────────────────────────────────────────────────────────────────────────

  endpointCounts(): Record<EndpointState, number> {
    const counts = { healthy: 0, ejected: 0, draining: 0, unhealthy: 0 };
    const now = this.#clock();
    for (const ep of this.#endpoints.endpoints()) counts[endpointState(ep, now)]++;
    return counts;
  }

  *circuitStates(): Iterable<{ endpoint: string | undefined; state: CircuitState }> {
    for (const [key, state] of this.breakers) yield { endpoint: key === '' ? undefined : key, state };
  }

  // ── request-path attribute objects, reused ────────────────────────────────────────────────

  /** `http.client.active_requests` attributes for an authority. */
  activeAttrs(authority: string): Attributes {
    return this.#cached(authority, () => {
      const { port } = splitAuthority(authority, 'http');
      return { 'server.address': this.service, 'server.port': port, 'meshwork.service': this.service };
    });
  }

  /**
   * `meshwork.request.duration` attributes, and with `protocolVersion`, those of
   * `http.client.request.duration` (one attempt).
   */
  durationAttrs(
    authority: string,
    method: string,
    status: number,
    errType: string | undefined,
    protocolVersion?: string,
  ): Attributes {
    const key = `${authority}\u0000${method}\u0000${status}\u0000${errType ?? ''}\u0000${protocolVersion ?? ''}`;
    return this.#cached(key, () => {
      const a: Attributes = { ...this.activeAttrs(authority), 'http.request.method': method };
      if (status > 0) a['http.response.status_code'] = status;
      if (errType !== undefined) a['error.type'] = errType;
      if (protocolVersion !== undefined) a['network.protocol.version'] = protocolVersion;
      return a;
    });
  }

  #cached(key: string, make: () => Attributes): Attributes {
    let a = this.#attrs.get(key);
    if (a === undefined) {
      a = make();
      if (this.#attrs.size < ATTR_CACHE_MAX) this.#attrs.set(key, a);
    }
    return a;
  }

  #reason(reason: string): Attributes {
    let a = this.#reasonAttrs.get(reason);
    if (a === undefined) {
      a = { 'meshwork.service': this.service, 'meshwork.reason': reason };
      if (this.#reasonAttrs.size < ATTR_CACHE_MAX) this.#reasonAttrs.set(reason, a);
    }
    return a;
  }

  close(): void {
    this.#unregister();
  }
}

/** One state per endpoint, in this order: draining, ejected, unhealthy, healthy. */
export function endpointState(
  ep: { draining: boolean; healthy: boolean; isEjected(now: number): boolean },
  now: number,
): EndpointState {
  if (ep.draining) return 'draining';
  if (ep.isEjected(now)) return 'ejected';
  if (!ep.healthy) return 'unhealthy';
  return 'healthy';
}
