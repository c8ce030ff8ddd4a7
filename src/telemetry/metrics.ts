/**
 * Metrics through @opentelemetry/api only. Instruments are created once per meter provider,
 * lazily, the first time they are needed after a provider is registered (`instruments()`
 * compares the global provider with the cached one: one property read and a comparison).
 * Without an SDK the global provider is the API's no-op one, and recording is a no-op call.
 * Gauges (`meshwork.endpoints`, `meshwork.circuit_breaker.state`) are observed from the live
 * services of every open mesh (see `registerGaugeSource`).
 */
import {
  type Counter,
  type Histogram,
  type Meter,
  type MeterProvider,
  metrics,
  type ObservableGauge,
  type UpDownCounter,
} from '@opentelemetry/api';
import type { CircuitState } from './channels.ts';

export const METER_NAME = 'meshwork';
export const METER_VERSION = '0.1.0';

/** OpenTelemetry semantic-convention buckets for HTTP durations, in seconds. */
export const HTTP_DURATION_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
];

export type EndpointState = 'healthy' | 'ejected' | 'draining' | 'unhealthy';
export const ENDPOINT_STATES: readonly EndpointState[] = ['healthy', 'ejected', 'draining', 'unhealthy'];
export const CIRCUIT_STATES: readonly CircuitState[] = ['closed', 'open', 'half_open'];

export interface Instruments {
  readonly meter: Meter;
  /** Per attempt (one HTTP request sent to an endpoint). */
  readonly clientDuration: Histogram;
  /** Attempts in flight. */
  readonly clientActive: UpDownCounter;
  /** Per logical request (every attempt and backoff of it). */
  readonly requestDuration: Histogram;
  readonly serverDuration: Histogram;
  readonly retries: Counter;
  readonly retryBudgetExhausted: Counter;
  readonly ejections: Counter;
  readonly discoveryUpdates: Counter;
  readonly discoveryErrors: Counter;
  readonly endpoints: ObservableGauge;
  readonly circuitBreakerState: ObservableGauge;
}

/** What the observable gauges read: one per live service of an open mesh. */
export interface GaugeSource {
  readonly service: string;
  /** Endpoints of the service by state. */
  endpointCounts(): Record<EndpointState, number>;
  /** Known breaker states (service-wide when `endpoint` is undefined). */
  circuitStates(): Iterable<{ endpoint: string | undefined; state: CircuitState }>;
}

const sources = new Set<GaugeSource>();

/** Adds a source to the gauges; returns the function that removes it (call it on close). */
export function registerGaugeSource(source: GaugeSource): () => void {
  sources.add(source);
  return () => {
    sources.delete(source);
  };
}

let cachedProvider: MeterProvider | undefined;
let cached: Instruments | undefined;

/** The instruments of the current global meter provider (created on first use per provider). */
export function instruments(): Instruments {
  const provider = metrics.getMeterProvider();
  if (provider === cachedProvider && cached !== undefined) return cached;
  cachedProvider = provider;
  cached = create(provider.getMeter(METER_NAME, METER_VERSION));
  return cached;
}

function create(meter: Meter): Instruments {
  const endpoints = meter.createObservableGauge('meshwork.endpoints', {
    description: 'Endpoints of each service, by state (healthy, ejected, draining, unhealthy).',
    unit: '{endpoint}',
  });
  endpoints.addCallback((result) => {
    for (const src of sources) {
      const counts = src.endpointCounts();
      for (const state of ENDPOINT_STATES)
        result.observe(counts[state], { 'meshwork.service': src.service, 'meshwork.endpoint.state': state });
    }
  });
  const circuitBreakerState = meter.createObservableGauge('meshwork.circuit_breaker.state', {
    description: 'Circuit breaker state: 1 for the current state, 0 for the others.',
    unit: '1',
  });
  circuitBreakerState.addCallback((result) => {
    for (const src of sources) {
      for (const { endpoint, state } of src.circuitStates()) {
        for (const s of CIRCUIT_STATES) {
          const attrs: Record<string, string> = {
            'meshwork.service': src.service,
            'meshwork.circuit_breaker.state': s,
          };
          if (endpoint !== undefined) attrs['meshwork.endpoint'] = endpoint;
          result.observe(s === state ? 1 : 0, attrs);
        }
      }
    }
  });
  return {
    meter,
    clientDuration: meter.createHistogram('http.client.request.duration', {
      description:
        'Duration of HTTP client requests: each HTTP request the mesh sends to an endpoint (each attempt) once.',
      unit: 's',
      advice: { explicitBucketBoundaries: HTTP_DURATION_BUCKETS },
    }),
    clientActive: meter.createUpDownCounter('http.client.active_requests', {
      description: 'HTTP requests the mesh has sent to endpoints and not finished (attempts in flight).',
      unit: '{request}',
    }),
    requestDuration: meter.createHistogram('meshwork.request.duration', {
      description:
        'Duration of logical requests through the mesh, as the caller waits for them: routing, every attempt and backoff, until the response ends.',
      unit: 's',
      advice: { explicitBucketBoundaries: HTTP_DURATION_BUCKETS },
    }),
    serverDuration: meter.createHistogram('http.server.request.duration', {
      description: 'Duration of inbound HTTP server requests.',
      unit: 's',
      advice: { explicitBucketBoundaries: HTTP_DURATION_BUCKETS },
    }),
    retries: meter.createCounter('meshwork.retries', {
      description: 'Retries sent (each attempt after the first), by reason.',
      unit: '{retry}',
    }),
    retryBudgetExhausted: meter.createCounter('meshwork.retry_budget.exhausted', {
      description: 'Retries refused because the retry budget was exhausted.',
      unit: '{retry}',
    }),
    ejections: meter.createCounter('meshwork.endpoint.ejections', {
      description: 'Endpoints ejected by outlier detection, by reason.',
      unit: '{ejection}',
    }),
    discoveryUpdates: meter.createCounter('meshwork.discovery.updates', {
      description: 'Batches of endpoint changes applied from discovery.',
      unit: '{update}',
    }),
    discoveryErrors: meter.createCounter('meshwork.discovery.errors', {
      description: 'Discovery errors: registry unreadable (kind=registry) or a record skipped (kind=record).',
      unit: '{error}',
    }),
    endpoints,
    circuitBreakerState,
  };
}
