/**
 * The SDK path: with an OpenTelemetry SDK registered through @opentelemetry/api (real
 * sdk-trace-base, context-async-hooks and core's W3C propagators), the mesh injects the active
 * context, so the trace continues through the service's own spans. The no-SDK path (forward
 * unchanged) is covered in context-propagation.test.ts.
 */
import { createServer } from 'node:http';
import { context, propagation, SpanKind, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { meshHandler } from '../src/context/adapters.ts';
import { createMesh, type Mesh } from '../src/index.ts';
import { listen } from './support/inbound.ts';
import { startServer, type TestServer } from './support/servers.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const TP = `00-${TRACE_ID}-00f067aa0ba902b7-01`;
const exporter = new InMemorySpanExporter();

beforeAll(() => {
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  trace.setGlobalTracerProvider(provider);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(
    new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
  );
});
afterAll(() => {
  trace.disable();
  context.disable();
  propagation.disable();
});

let closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.reverse()) await c();
  closers = [];
});

async function setup(
  handler: (mesh: Mesh) => Promise<void>,
): Promise<{ url: string; downstream: TestServer; mesh: Mesh }> {
  const downstream = await startServer();
  const mesh = createMesh({
    context: { headers: ['x-consumer-id'] },
    services: { reviews: { discovery: { static: [downstream.address] } } },
  });
  const l = await listen(
    createServer(
      meshHandler(mesh, async (_req, res) => {
        await handler(mesh);
        res.end();
      }),
    ),
  );
  closers.push(
    () => downstream.close(),
    () => mesh.close(),
    l.close,
  );
  return { url: l.url, downstream, mesh };
}

describe('with an OpenTelemetry SDK registered', () => {
  it("continues the trace: the downstream's parent is the service's own span", async () => {
    const tracer = trace.getTracer('test');
    let spanId = '';
    const { url, downstream } = await setup((mesh) =>
      tracer.startActiveSpan('handle', async (span) => {
        spanId = span.spanContext().spanId;
        await (await mesh.fetch('http://reviews/')).text();
        span.end();
      }),
    );
    await (
      await fetch(url, {
        headers: { traceparent: TP, tracestate: 'v=1', baggage: 'k=v', 'x-consumer-id': 'c' },
      })
    ).text();
    const h = downstream.hits[0]?.headers ?? {};
    // The parent is the service's span, or a mesh span below it when the telemetry layers
    // (src/stack.ts) are active: either way the trace continues below the service's span.
    const [, traceId, parentId, flags] = String(h.traceparent).split('-');
    expect([traceId, flags]).toEqual([TRACE_ID, '01']);
    expect(parentId).not.toBe('00f067aa0ba902b7');
    const spans = exporter.getFinishedSpans();
    const ancestors: string[] = [];
    for (let id = parentId; id !== undefined; ) {
      ancestors.push(id);
      id = spans.find((s) => s.spanContext().spanId === id)?.parentSpanContext?.spanId;
    }
    expect(ancestors).toContain(spanId);
    expect(h.tracestate).toBe('v=1');
    expect(h.baggage).toBe('k=v');
    expect(h['x-consumer-id']).toBe('c');
    const handle = spans.find((s) => s.name === 'handle');
    expect(handle?.spanContext().traceId).toBe(TRACE_ID);
    // mesh.inbound() started the request's SERVER span (no other instrumentation did), a child of the caller's.
    const server = spans.find((s) => s.spanContext().spanId === handle?.parentSpanContext?.spanId);
    expect(server?.kind).toBe(SpanKind.SERVER);
    expect(server?.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
  });

  it('with no span of its own, the inbound trace goes on (same trace id, same sampling)', async () => {
    const { url, downstream } = await setup(async (mesh) => {
      await (await mesh.fetch('http://reviews/')).text();
    });
    await (await fetch(url, { headers: { traceparent: TP, tracestate: 'v=2' } })).text();
    const h = downstream.hits[0]?.headers ?? {};
    const [, traceId, , flags] = String(h.traceparent).split('-');
    expect([traceId, flags]).toEqual([TRACE_ID, '01']);
    expect(h.tracestate).toBe('v=2');
  });

  it('outside any inbound request, an active span is still propagated (but no gateway context)', async () => {
    const { downstream, mesh } = await setup(async () => {});
    const tracer = trace.getTracer('test');
    await tracer.startActiveSpan('job', async (span) => {
      await (await mesh.fetch('http://reviews/')).text();
      const h = downstream.hits[0]?.headers ?? {};
      expect(String(h.traceparent).split('-')[1]).toBe(span.spanContext().traceId);
      expect(h['x-consumer-id']).toBeUndefined();
      span.end();
    });
  });
});
