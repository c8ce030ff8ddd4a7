/**
 * Rate-limit metrics through @opentelemetry/api (no-ops without an SDK), created once per meter
 * provider like the mesh's other instruments:
 *   meshwork.ratelimit.decisions  {meshwork.ratelimit.scope, .policy, .decision}
 *     decision: allowed | refused | shadow_refused | store_unavailable
 *   meshwork.ratelimit.usage      {meshwork.ratelimit.scope, .application, .metric} (plans only:
 *     the applications are the configured or gateway-given ones, not arbitrary request values)
 * The store's own counters (calls, errors, timeouts, decisions without it) are in mesh.snapshot().
 */
import { type Counter, type MeterProvider, metrics } from '@opentelemetry/api';
import { METER_NAME, METER_VERSION } from '../telemetry/metrics.ts';

export interface RateLimitInstruments {
  readonly decisions: Counter;
  readonly usage: Counter;
}

let cachedProvider: MeterProvider | undefined;
let cached: RateLimitInstruments | undefined;

export function rateLimitInstruments(): RateLimitInstruments {
  const provider = metrics.getMeterProvider();
  if (provider === cachedProvider && cached !== undefined) return cached;
  cachedProvider = provider;
  const meter = provider.getMeter(METER_NAME, METER_VERSION);
  cached = {
    decisions: meter.createCounter('meshwork.ratelimit.decisions', {
      description:
        'Rate-limit decisions, per policy or plan metric: allowed, refused, shadow_refused, store_unavailable.',
      unit: '{request}',
    }),
    usage: meter.createCounter('meshwork.ratelimit.usage', {
      description:
        'Usage counted against application plans, per application and metric (the deltas of mapping rules).',
      unit: '{hit}',
    }),
  };
  return cached;
}
