// A real in-memory OpenTelemetry SDK for tests: spans to an InMemorySpanExporter, metrics
// through a manual reader, AsyncLocalStorage context and W3C trace-context propagation.
// `install()` registers it globally; `uninstall()` removes every global again.
import { context, metrics, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { type Instrumentation, registerInstrumentations } from '@opentelemetry/instrumentation';
import {
  AggregationTemporality,
  type DataPoint,
  type Histogram,
  MeterProvider,
  type MetricData,
  MetricReader,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';

class ManualReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

export interface TestOtel {
  spans(): ReadableSpan[];
  /** Collects every metric now, by name (meshwork's own when several scopes record one name). */
  collect(): Promise<Map<string, MetricData>>;
  /** Collects every metric now, with the instrumentation scope that recorded it. */
  collectScoped(): Promise<{ scope: string; metric: MetricData }[]>;
  uninstall(): Promise<void>;
}

export interface InstallOptions {
  traces?: boolean;
  metrics?: boolean;
  /**
   * Real instrumentations (instrumentation-http, instrumentation-undici...) to enable with
   * these providers. They patch modules for the rest of the process: give them only in a test
   * file of their own.
   */
  instrumentations?: Instrumentation[];
}

export function installOtel(opts: InstallOptions = {}): TestOtel {
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const reader = new ManualReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const cm = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(cm);
  propagation.setGlobalPropagator(
    new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
  );
  if (opts.traces !== false) trace.setGlobalTracerProvider(tracerProvider);
  if (opts.metrics !== false) metrics.setGlobalMeterProvider(meterProvider);
  const unregister = opts.instrumentations
    ? registerInstrumentations({
        instrumentations: opts.instrumentations,
        ...(opts.traces !== false ? { tracerProvider } : {}),
        ...(opts.metrics !== false ? { meterProvider } : {}),
      })
    : undefined;
  const collectScoped = async () => {
    const { resourceMetrics } = await reader.collect();
    const out: { scope: string; metric: MetricData }[] = [];
    for (const sm of resourceMetrics.scopeMetrics)
      for (const m of sm.metrics) out.push({ scope: sm.scope.name, metric: m });
    return out;
  };
  return {
    spans: () => exporter.getFinishedSpans(),
    async collect() {
      const out = new Map<string, MetricData>();
      for (const { scope, metric } of await collectScoped())
        if (scope === 'meshwork' || !out.has(metric.descriptor.name)) out.set(metric.descriptor.name, metric);
      return out;
    },
    collectScoped,
    async uninstall() {
      unregister?.();
      trace.disable();
      metrics.disable();
      propagation.disable();
      context.disable();
      await tracerProvider.shutdown();
      await meterProvider.shutdown();
    },
  };
}

/** The data points of a metric whose attributes include `match`. */
export function points<T = number>(
  m: MetricData | undefined,
  match: Record<string, unknown> = {},
): DataPoint<T>[] {
  if (!m) return [];
  return (m.dataPoints as DataPoint<T>[]).filter((p) =>
    Object.entries(match).every(([k, v]) => p.attributes[k] === v),
  );
}

export type { Histogram, ReadableSpan };
