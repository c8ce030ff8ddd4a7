/** The OpenTelemetry API's own global registry (its key for API major version 1). */
const OTEL_GLOBAL = Symbol.for('opentelemetry.js.api.1');

/**
 * True when something (an SDK) has registered this global with the OpenTelemetry API: `trace`,
 * `metrics` or `propagation`. Reads the API's registry directly: the API functions would do a
 * version check on every call, and `propagation.fields()` allocates an array each time, which
 * the request path should not pay for when nothing is registered.
 */
export function otelHas(key: 'trace' | 'metrics' | 'propagation'): boolean {
  const g = (globalThis as Record<symbol, Record<string, unknown> | undefined>)[OTEL_GLOBAL];
  return g !== undefined && g[key] !== undefined;
}
