/**
 * meshwork beside the OpenTelemetry instrumentations most Node services run: the real
 * @opentelemetry/instrumentation-http (SERVER spans of every node:http server in this process,
 * the service's and the upstreams') and @opentelemetry/instrumentation-undici (which sees every
 * request undici creates, meshwork's attempts among them, through diagnostics_channel).
 * They patch node:http for the rest of the process: this file has them to itself.
 */
import { createServer, type IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import { SpanKind } from '@opentelemetry/api';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { meshHandler } from '../src/context/adapters.ts';
import { createMesh, type Mesh } from '../src/index.ts';
import { listen } from './support/inbound.ts';
import { type Histogram, installOtel, points, type ReadableSpan } from './support/otel.ts';
import { rawRequest } from './support/raw-http.ts';
import { startServer, type TestServer } from './support/servers.ts';

const otel = installOtel({ instrumentations: [new HttpInstrumentation(), new UndiciInstrumentation()] });
// instrumentation-http patches node:http when it is required (ESM imports of it came earlier).
createRequire(import.meta.url)('node:http');

const HTTP_SCOPE = '@opentelemetry/instrumentation-http';
const UNDICI_SCOPE = '@opentelemetry/instrumentation-undici';
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/;

let upstream: TestServer;
let flaky: TestServer;
let service: { url: string; close(): Promise<void> };
let mesh: Mesh;
/** What each upstream request carried: every traceparent line as sent (rawHeaders). */
const wire: { url: string; traceparents: string[] }[] = [];

function record(req: IncomingMessage): void {
  const traceparents: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2)
    if (req.rawHeaders[i]?.toLowerCase() === 'traceparent')
      traceparents.push(req.rawHeaders[i + 1] as string);
  wire.push({ url: req.url ?? '', traceparents });
}

beforeAll(async () => {
  upstream = await startServer((req, res) => {
    record(req);
    res.end('reviews');
  });
  let n = 0;
  flaky = await startServer((req, res) => {
    record(req);
    res.statusCode = n++ % 2 === 0 ? 503 : 200;
    res.end(String(res.statusCode));
  });
  mesh = createMesh({
    env: {},
    services: {
      reviews: { discovery: { static: [upstream.address] } },
      flaky: {
        discovery: { static: [flaky.address] },
        trafficPolicy: { outlierDetection: { enabled: false } },
      },
    },
  });
  // The service under test: plain node:http, mesh.inbound() through meshHandler.
  const l = await listen(
    createServer(
      meshHandler(mesh, async (req, res) => {
        const target = req.url === '/flaky' ? 'http://flaky/' : 'http://reviews/x';
        const r = await mesh.fetch(target);
        res.end(await r.text());
      }),
    ),
  );
  service = l;
});
afterEach(() => {
  wire.length = 0;
});
afterAll(async () => {
  await service.close();
  await mesh.close();
  await upstream.close();
  await flaky.close();
  await otel.uninstall();
});

/**
 * A request to the service over a plain socket: an undici or node:http client would be traced
 * by the instrumentations too (and add a traceparent of their own).
 */
async function call(path: string, traceparent?: string): Promise<string> {
  const res = await rawRequest(Number(new URL(service.url).port), path, {
    headers: traceparent ? [['traceparent', traceparent]] : [],
  });
  expect(res.status).toBe(200);
  return res.body;
}

async function settle(count: (spans: ReadableSpan[]) => boolean): Promise<ReadableSpan[]> {
  const end = Date.now() + 5_000;
  while (!count(otel.spans())) {
    if (Date.now() > end) throw new Error(`spans did not arrive: ${otel.spans().map((s) => s.name)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return otel.spans();
}

const ofTrace = (spans: ReadableSpan[], traceId: string) =>
  spans.filter((s) => s.spanContext().traceId === traceId);
const parentOf = (spans: ReadableSpan[], s: ReadableSpan) =>
  spans.find((p) => p.spanContext().spanId === s.parentSpanContext?.spanId);

describe('with instrumentation-http and instrumentation-undici loaded', () => {
  it('the upstream receives exactly one valid traceparent, continuing the trace', async () => {
    expect(await call('/', `00-${TRACE_ID}-00f067aa0ba902b7-01`)).toBe('reviews');
    expect(wire).toHaveLength(1);
    expect(wire[0]!.traceparents).toHaveLength(1);
    const tp = wire[0]!.traceparents[0]!;
    expect(tp).toMatch(TRACEPARENT);
    expect(tp.split('-')[1]).toBe(TRACE_ID);
    const spans = await settle((s) => ofTrace(s, TRACE_ID).length >= 4);
    // Its parent is meshwork's attempt span.
    const parent = spans.find((s) => s.spanContext().spanId === tp.split('-')[2]);
    expect(parent?.instrumentationScope.name).toBe('meshwork');
    expect(parent?.kind).toBe(SpanKind.CLIENT);
  });

  it('one tree: SERVER (instrumentation-http) → meshwork request → meshwork attempt → upstream SERVER; no undici span, no second SERVER span', async () => {
    const traceId = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1';
    await call('/', `00-${traceId}-00f067aa0ba902b7-01`);
    const spans = ofTrace(await settle((s) => ofTrace(s, traceId).length >= 4), traceId);
    const summary = spans.map((s) => `${s.instrumentationScope.name} ${SpanKind[s.kind]} ${s.name}`).sort();
    expect(summary).toEqual([
      `${HTTP_SCOPE} SERVER GET`,
      `${HTTP_SCOPE} SERVER GET`,
      'meshwork CLIENT GET',
      'meshwork INTERNAL GET reviews',
    ]);
    const [inbound, upstreamServer] = spans
      .filter((s) => s.kind === SpanKind.SERVER)
      .sort((x, y) =>
        x.parentSpanContext?.spanId === '00f067aa0ba902b7'
          ? -1
          : y.parentSpanContext?.spanId === '00f067aa0ba902b7'
            ? 1
            : 0,
      );
    const logical = spans.find((s) => s.kind === SpanKind.INTERNAL)!;
    const attempt = spans.find((s) => s.kind === SpanKind.CLIENT)!;
    expect(parentOf(spans, logical)).toBe(inbound);
    expect(parentOf(spans, attempt)).toBe(logical);
    expect(parentOf(spans, upstreamServer!)).toBe(attempt);
    expect(otel.spans().filter((s) => s.instrumentationScope.name === UNDICI_SCOPE)).toEqual([]);
  });

  it('retries: one CLIENT span per attempt under the request, each upstream SERVER span under the attempt that reached it', async () => {
    const traceId = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2';
    expect(await call('/flaky', `00-${traceId}-00f067aa0ba902b7-01`)).toBe('200');
    expect(wire.map((w) => w.traceparents.length)).toEqual([1, 1]);
    const spans = ofTrace(await settle((s) => ofTrace(s, traceId).length >= 6), traceId);
    const logical = spans.find((s) => s.kind === SpanKind.INTERNAL)!;
    expect(logical.name).toBe('GET flaky');
    const attempts = spans
      .filter((s) => s.kind === SpanKind.CLIENT)
      .sort(
        (x, y) =>
          Number(x.attributes['http.request.resend_count'] ?? 0) -
          Number(y.attributes['http.request.resend_count'] ?? 0),
      );
    expect(
      attempts.map((s) => [
        s.attributes['http.response.status_code'],
        s.attributes['http.request.resend_count'],
      ]),
    ).toEqual([
      [503, undefined],
      [200, 1],
    ]);
    for (const a of attempts) expect(parentOf(spans, a)).toBe(logical);
    // The upstream saw two traceparents, one per attempt, and made one SERVER span under each.
    expect(wire.map((w) => w.traceparents[0]!.split('-')[2])).toEqual(
      attempts.map((a) => a.spanContext().spanId),
    );
    const upstreamServers = spans.filter(
      (s) => s.kind === SpanKind.SERVER && s.parentSpanContext?.spanId !== '00f067aa0ba902b7',
    );
    expect(upstreamServers.map((s) => parentOf(spans, s)).sort()).toEqual([...attempts].sort());
  });

  it('counts each metric once: requests in meshwork.request.duration, attempts in http.client.request.duration (undici’s), inbound requests in http.server.request.duration (instrumentation-http’s)', async () => {
    // Counts are cumulative over the file: compare before and after.
    const count = async () => {
      const all = await otel.collectScoped();
      const total = (scope: string, name: string, match: Record<string, unknown> = {}) =>
        all
          .filter((m) => m.scope === scope && m.metric.descriptor.name === name)
          .flatMap((m) => points<Histogram>(m.metric, match))
          .reduce((n, p) => n + p.value.count, 0);
      return {
        meshworkClient: total('meshwork', 'http.client.request.duration'),
        meshworkServer: total('meshwork', 'http.server.request.duration'),
        requests: total('meshwork', 'meshwork.request.duration', { 'meshwork.service': 'flaky' }),
        undiciAttempts: total(UNDICI_SCOPE, 'http.client.request.duration', { 'server.port': flaky.port }),
        // Every node:http server here: the service's, and the upstreams'.
        inbound: total(HTTP_SCOPE, 'http.server.request.duration'),
      };
    };
    const before = await count();
    for (let i = 0; i < 3; i++) await call('/flaky');
    const after = await count();
    expect(after.meshworkClient).toBe(0);
    expect(after.meshworkServer).toBe(0);
    expect(after.requests - before.requests).toBe(3);
    // The flaky upstream alternates 503 and 200: three requests made at least four attempts, each counted once.
    expect(wire.length).toBeGreaterThanOrEqual(4);
    expect(after.undiciAttempts - before.undiciAttempts).toBe(wire.length);
    // Three requests to the service, and each attempt is a request to the upstream's server.
    expect(after.inbound - before.inbound).toBe(3 + wire.length);
  });

  it('leaves undici requests that do not go through the mesh to instrumentation-undici', async () => {
    await (await request(`http://${upstream.address}/direct`)).body.text();
    const spans = await settle((s) => s.some((x) => x.instrumentationScope.name === UNDICI_SCOPE));
    const direct = spans.find((s) => s.instrumentationScope.name === UNDICI_SCOPE)!;
    expect(wire.at(-1)?.traceparents).toEqual([
      `00-${direct.spanContext().traceId}-${direct.spanContext().spanId}-01`,
    ]);
  });
});
