// A real in-memory OpenTelemetry SDK for tests: spans to an InMemorySpanExporter, metrics
// through a manual reader, AsyncLocalStorage context and W3C trace-context propagation.
// `install()` registers it globally; `uninstall()` removes every global again.
import { context, metrics, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
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
  /** Collects every metric now, by name. */
  collect(): Promise<Map<string, MetricData>>;
  uninstall(): Promise<void>;
}

export function installOtel(opts: { traces?: boolean; metrics?: boolean } = {}): TestOtel {
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const reader = new ManualReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const cm = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(cm);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  if (opts.traces !== false) trace.setGlobalTracerProvider(tracerProvider);
  if (opts.metrics !== false) metrics.setGlobalMeterProvider(meterProvider);
  return {
    spans: () => exporter.getFinishedSpans(),
    async collect() {
      const { resourceMetrics } = await reader.collect();
      const out = new Map<string, MetricData>();
      for (const sm of resourceMetrics.scopeMetrics)
        for (const m of sm.metrics) out.set(m.descriptor.name, m);
      return out;
    },
    async uninstall() {
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
