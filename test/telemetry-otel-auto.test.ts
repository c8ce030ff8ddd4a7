/**
 * The setup most Node services have: @opentelemetry/sdk-node started with the
 * @opentelemetry/auto-instrumentations-node bundle (http, undici, express, net, dns... all of
 * them), an Express app with mesh.inbound() as middleware. Spans go to memory, metrics to a
 * reader the test collects. The bundle patches modules for the rest of the process: this file
 * has it to itself.
 */
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import { SpanKind } from '@opentelemetry/api';
import { getNodeAutoInstrumentations } from '@opentelemetry/auto-instrumentations-node';
import { AggregationTemporality, MetricReader } from '@opentelemetry/sdk-metrics';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMesh, type Mesh } from '../src/index.ts';
import { listen } from './support/inbound.ts';
import { rawRequest } from './support/raw-http.ts';
import { startServer, type TestServer } from './support/servers.ts';

class ManualReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

const exporter = new InMemorySpanExporter();
const reader = new ManualReader();
const sdk = new NodeSDK({
  serviceName: 'trips',
  spanProcessors: [new SimpleSpanProcessor(exporter)],
  metricReader: reader,
  instrumentations: [getNodeAutoInstrumentations()],
});
sdk.start();
// The bundle patches modules when they are required: express, and node:http (imported earlier).
const require = createRequire(import.meta.url);
require('node:http');
const express = require('express') as typeof import('express');

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
let upstream: TestServer;
let mesh: Mesh;
let app: { url: string; close(): Promise<void> };
const traceparents: string[][] = [];

beforeAll(async () => {
  upstream = await startServer((req, res) => {
    const tps: string[] = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2)
      if (req.rawHeaders[i]?.toLowerCase() === 'traceparent') tps.push(req.rawHeaders[i + 1] as string);
    traceparents.push(tps);
    res.end('reviews');
  });
  mesh = createMesh({ env: {}, services: { reviews: { discovery: { static: [upstream.address] } } } });
  const e = express();
  e.use(mesh.inbound());
  e.get('/trips/:id', async (_req, res) => {
    const r = await mesh.fetch('http://reviews/for-trip');
    res.send(await r.text());
  });
  const server: Server = e.listen(0, '127.0.0.1');
  app = await listen(server);
});
afterAll(async () => {
  await app.close();
  await mesh.close();
  await upstream.close();
  await sdk.shutdown();
});

const parentOf = (spans: readonly ReadableSpan[], s: ReadableSpan) =>
  spans.find((p) => p.spanContext().spanId === s.parentSpanContext?.spanId);

describe('sdk-node with the auto-instrumentations-node bundle, Express and mesh.inbound()', () => {
  it('one traceparent upstream; meshwork’s spans in the request’s trace under its SERVER span; no second SERVER span, no undici span', async () => {
    const res = await rawRequest(Number(new URL(app.url).port), '/trips/7', {
      headers: [['traceparent', `00-${TRACE_ID}-b7ad6b7169203331-01`]],
    });
    expect(res.status).toBe(200);
    expect(res.body).toBe('reviews');
    expect(traceparents).toHaveLength(1);
    expect(traceparents[0]).toHaveLength(1);
    const [, traceId, parentId] = (traceparents[0]?.[0] ?? '').split('-');
    expect(traceId).toBe(TRACE_ID);
    // Both SERVER spans (the app's and the upstream's) end after the response is written.
    const ofTrace = () => exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === TRACE_ID);
    const end = Date.now() + 5_000;
    while (ofTrace().filter((s) => s.kind === SpanKind.SERVER).length < 2 && Date.now() < end)
      await new Promise((r) => setTimeout(r, 10));
    const spans = ofTrace();
    const attempt = spans.find((s) => s.spanContext().spanId === parentId);
    expect(attempt?.instrumentationScope.name).toBe('meshwork');
    expect(attempt?.kind).toBe(SpanKind.CLIENT);
    const logical = parentOf(spans, attempt as ReadableSpan);
    expect(logical?.name).toBe('GET reviews');
    // Up from meshwork's request span: Express's handler span, then instrumentation-http's SERVER span.
    const chain: string[] = [];
    for (let s = logical; s !== undefined; s = parentOf(spans, s))
      chain.push(`${s.instrumentationScope.name} ${SpanKind[s.kind]}`);
    expect(chain[0]).toBe('meshwork INTERNAL');
    expect(chain.at(-1)).toBe('@opentelemetry/instrumentation-http SERVER');
    expect(chain.filter((c) => c.endsWith('SERVER'))).toHaveLength(1);
    expect(
      spans.filter((s) => s.instrumentationScope.name === 'meshwork' && s.kind === SpanKind.SERVER),
    ).toEqual([]);
    expect(
      spans.filter((s) => s.instrumentationScope.name === '@opentelemetry/instrumentation-undici'),
    ).toEqual([]);
    // The upstream's SERVER span is a child of meshwork's attempt.
    const upstreamServer = spans.find(
      (s) => s.kind === SpanKind.SERVER && s.parentSpanContext?.spanId === parentId,
    );
    expect(upstreamServer?.instrumentationScope.name).toBe('@opentelemetry/instrumentation-http');
  });

  it('each metric once: no meshwork series beside the bundle’s http.client.request.duration and http.server.request.duration', async () => {
    const { resourceMetrics } = await reader.collect();
    const byName = new Map<string, string[]>();
    for (const sm of resourceMetrics.scopeMetrics)
      for (const m of sm.metrics)
        byName.set(m.descriptor.name, [...(byName.get(m.descriptor.name) ?? []), sm.scope.name]);
    expect(byName.get('http.client.request.duration')).toEqual(['@opentelemetry/instrumentation-undici']);
    expect(byName.get('http.server.request.duration')).toEqual(['@opentelemetry/instrumentation-http']);
    expect(byName.get('meshwork.request.duration')).toEqual(['meshwork']);
  });
});
