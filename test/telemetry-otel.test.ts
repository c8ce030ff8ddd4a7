import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createMesh, type Mesh } from '../src/index.ts';
import { HTTP_DURATION_BUCKETS } from '../src/telemetry/metrics.ts';
import { endServerSpan, startServerSpan } from '../src/telemetry/tracing.ts';
import { type MiniMesh, miniMesh, retryOn503 } from './support/mini-mesh.ts';
import { type Histogram, installOtel, points, type TestOtel } from './support/otel.ts';
import { named, refusedAddress, startServer, type TestServer } from './support/servers.ts';

let a: TestServer;
let flaky: TestServer;
let otel: TestOtel;
const meshes: Mesh[] = [];
const minis: MiniMesh[] = [];

function mesh(addresses: string[]): Mesh {
  const m = createMesh({ env: {}, services: { upstream: { discovery: { static: addresses } } } });
  meshes.push(m);
  return m;
}

beforeAll(async () => {
  a = await startServer(named('a'));
  let n = 0;
  flaky = await startServer((_req, res) => {
    res.statusCode = n++ % 2 === 0 ? 503 : 200;
    res.end(String(res.statusCode));
  });
});
beforeEach(() => {
  otel = installOtel();
});
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
  await Promise.all(minis.splice(0).map((m) => m.close()));
  await otel.uninstall();
});
afterAll(async () => {
  await a.close();
  await flaky.close();
});

describe('the CLIENT span of a logical request', () => {
  it('carries the HTTP semantic-convention and meshwork attributes, with secrets stripped from url.full', async () => {
    const m = mesh([a.address]);
    const res = await m.fetch('http://upstream:8080/search?q=paris&token=s3cr3t&api_key=k&page=2');
    expect(await res.text()).toBe('a');
    const spans = otel.spans();
    expect(spans).toHaveLength(1);
    const span = spans[0]!;
    expect(span.kind).toBe(SpanKind.CLIENT);
    expect(span.name).toBe('GET');
    expect(span.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.full': 'http://upstream:8080/search?q=paris&token=REDACTED&api_key=REDACTED&page=2',
      'server.address': 'upstream',
      'server.port': 8080,
      'http.response.status_code': 200,
      'meshwork.service': 'upstream',
      'meshwork.endpoint': a.address,
      'network.peer.address': '127.0.0.1',
      'network.peer.port': a.port,
    });
    expect(span.attributes['error.type']).toBeUndefined();
    expect(span.attributes['http.request.resend_count']).toBeUndefined();
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
    const attempt = span.events.find((e) => e.name === 'meshwork.attempt');
    expect(attempt?.attributes).toMatchObject({ 'meshwork.attempt': 0, 'meshwork.endpoint': a.address });
  });

  it('is a child of the caller’s active span, and is itself active below the layer', async () => {
    const m = mesh([a.address]);
    const tracer = trace.getTracer('test');
    await tracer.startActiveSpan('caller', async (parent) => {
      const res = await request('http://upstream/x', { dispatcher: m.dispatcher });
      await res.body.dump();
      parent.end();
    });
    const client = otel.spans().find((s) => s.name === 'GET')!;
    const caller = otel.spans().find((s) => s.name === 'caller')!;
    expect(client.parentSpanContext?.spanId).toBe(caller.spanContext().spanId);
    expect(client.spanContext().traceId).toBe(caller.spanContext().traceId);
  });

  it('marks a 5xx response with error.type = status code and span status ERROR', async () => {
    const s = await startServer((_req, res) => {
      res.statusCode = 502;
      res.end('bad gateway');
    });
    try {
      const m = mesh([s.address]);
      const res = await m.fetch('http://upstream/');
      expect(res.status).toBe(502);
      await res.text();
      const span = otel.spans()[0]!;
      expect(span.attributes['http.response.status_code']).toBe(502);
      expect(span.attributes['error.type']).toBe('502');
      expect(span.status.code).toBe(SpanStatusCode.ERROR);
    } finally {
      await s.close();
    }
  });

  it('records a connection error as error.type (the error code) with the exception', async () => {
    const m = mesh([await refusedAddress()]);
    await expect(m.fetch('http://upstream/')).rejects.toThrow();
    const span = otel.spans()[0]!;
    expect(span.attributes['error.type']).toBe('ECONNREFUSED');
    expect(span.attributes['http.response.status_code']).toBeUndefined();
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    expect(span.events.some((e) => e.name === 'exception')).toBe(true);
  });

  it('shows each attempt and the retry reason as events, and http.request.resend_count', async () => {
    const mini = miniMesh('flaky', [flaky.address], { layers: [retryOn503] });
    minis.push(mini);
    const res = await request('http://flaky/r', { dispatcher: mini.dispatcher });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    const span = otel.spans()[0]!;
    expect(span.attributes['http.request.resend_count']).toBe(1);
    expect(span.attributes['http.response.status_code']).toBe(200);
    const names = span.events.map((e) => e.name);
    expect(names).toEqual(['meshwork.attempt', 'meshwork.retry', 'meshwork.attempt']);
    expect(span.events[1]?.attributes).toMatchObject({
      'meshwork.attempt': 1,
      'meshwork.retry.reason': '5xx',
    });
    expect(span.events[2]?.attributes).toMatchObject({
      'meshwork.attempt': 1,
      'meshwork.endpoint': flaky.address,
      'meshwork.retry.reason': '5xx',
    });
    const m = await otel.collect();
    expect(
      points(m.get('meshwork.retries'), { 'meshwork.service': 'flaky', 'meshwork.reason': '5xx' })[0]?.value,
    ).toBe(1);
  });

  it('puts ejections and budget exhaustion on the active span as events', async () => {
    const mini = miniMesh('svc', [a.address]);
    minis.push(mini);
    const tracer = trace.getTracer('test');
    tracer.startActiveSpan('work', (span) => {
      mini.svc.telemetry.ejection({ endpoint: a.address, reason: 'consecutive-5xx', durationMs: 30_000 });
      mini.svc.telemetry.retryBudgetExhausted({ attempt: 2, reason: '5xx' });
      span.end();
    });
    const work = otel.spans().find((s) => s.name === 'work')!;
    expect(work.events.map((e) => e.name)).toEqual([
      'meshwork.endpoint.ejected',
      'meshwork.retry_budget.exhausted',
    ]);
    expect(work.events[0]?.attributes).toMatchObject({
      'meshwork.endpoint': a.address,
      'meshwork.ejection.reason': 'consecutive-5xx',
      'meshwork.ejection.duration_ms': 30_000,
    });
    const m = await otel.collect();
    expect(points(m.get('meshwork.endpoint.ejections'))[0]?.value).toBe(1);
    expect(points(m.get('meshwork.retry_budget.exhausted'))[0]?.value).toBe(1);
  });
});

describe('metrics', () => {
  it('records http.client.request.duration with the semantic-convention buckets, and active requests', async () => {
    const m = mesh([a.address]);
    for (let i = 0; i < 3; i++) await (await m.fetch('http://upstream/')).text();
    const res = await request('http://upstream/', { method: 'POST', body: 'x', dispatcher: m.dispatcher });
    await res.body.dump();
    const metrics = await otel.collect();
    const duration = metrics.get('http.client.request.duration')!;
    expect(duration.descriptor.unit).toBe('s');
    const gets = points<Histogram>(duration, { 'http.request.method': 'GET' });
    expect(gets).toHaveLength(1);
    expect(gets[0]!.attributes).toEqual({
      'http.request.method': 'GET',
      'http.response.status_code': 200,
      'server.address': 'upstream',
      'server.port': 80,
      'meshwork.service': 'upstream',
    });
    expect(gets[0]!.value.count).toBe(3);
    expect(gets[0]!.value.buckets.boundaries).toEqual(HTTP_DURATION_BUCKETS);
    expect(gets[0]!.value.sum).toBeGreaterThan(0);
    expect(gets[0]!.value.sum).toBeLessThan(10);
    expect(points<Histogram>(duration, { 'http.request.method': 'POST' })[0]?.value.count).toBe(1);
    const active = points(metrics.get('http.client.active_requests'), { 'server.address': 'upstream' });
    expect(active[0]?.value).toBe(0);
  });

  it('labels failed requests with error.type', async () => {
    const m = mesh([await refusedAddress()]);
    await expect(m.fetch('http://upstream/')).rejects.toThrow();
    const metrics = await otel.collect();
    const p = points<Histogram>(metrics.get('http.client.request.duration'), {
      'error.type': 'ECONNREFUSED',
    });
    expect(p[0]?.value.count).toBe(1);
    expect(p[0]?.attributes['http.response.status_code']).toBeUndefined();
  });

  it('observes endpoints by state and counts discovery updates', async () => {
    mesh([a.address, flaky.address]);
    const metrics = await otel.collect();
    const eps = metrics.get('meshwork.endpoints');
    expect(
      points(eps, { 'meshwork.service': 'upstream', 'meshwork.endpoint.state': 'healthy' })[0]?.value,
    ).toBe(2);
    expect(
      points(eps, { 'meshwork.service': 'upstream', 'meshwork.endpoint.state': 'ejected' })[0]?.value,
    ).toBe(0);
    const updates = points(metrics.get('meshwork.discovery.updates'), { 'meshwork.service': 'upstream' });
    expect(updates[0]?.value).toBe(1);
    expect(updates[0]?.attributes['meshwork.discovery.provider']).toBe('static');
  });

  it('reports circuit breaker state as a 1/0 gauge per state', async () => {
    const mini = miniMesh('svc', [a.address]);
    minis.push(mini);
    mini.svc.telemetry.circuitBreaker({ state: 'open' });
    const metrics = await otel.collect();
    const cb = metrics.get('meshwork.circuit_breaker.state');
    expect(
      points(cb, { 'meshwork.service': 'svc', 'meshwork.circuit_breaker.state': 'open' })[0]?.value,
    ).toBe(1);
    expect(
      points(cb, { 'meshwork.service': 'svc', 'meshwork.circuit_breaker.state': 'closed' })[0]?.value,
    ).toBe(0);
  });

  it('works with metrics only (no tracer provider)', async () => {
    await otel.uninstall();
    otel = installOtel({ traces: false });
    const m = mesh([a.address]);
    await (await m.fetch('http://upstream/')).text();
    const metrics = await otel.collect();
    expect(points<Histogram>(metrics.get('http.client.request.duration'))[0]?.value.count).toBe(1);
    expect(otel.spans()).toHaveLength(0);
  });
});

describe('the inbound SERVER span helper', () => {
  it('continues the caller’s trace from traceparent and records http.server.request.duration', async () => {
    const server = await startServer((req, res) => {
      const s = startServerSpan(req, res, { route: '/bookings/:id' });
      context.with(s.context, () => {
        expect(trace.getActiveSpan()).toBe(s.span);
        res.end('ok');
      });
    });
    try {
      const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
      const res = await request(`http://${server.address}/bookings/7?sig=abc&x=1`, {
        headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01`, 'user-agent': 'test-agent' },
      });
      await res.body.dump();
      await new Promise((r) => setTimeout(r, 20));
      const span = otel.spans().find((s) => s.kind === SpanKind.SERVER)!;
      expect(span.name).toBe('GET /bookings/:id');
      expect(span.spanContext().traceId).toBe(traceId);
      expect(span.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
      expect(span.attributes).toMatchObject({
        'http.request.method': 'GET',
        'url.path': '/bookings/7',
        'url.query': 'sig=REDACTED&x=1',
        'url.scheme': 'http',
        'server.address': '127.0.0.1',
        'server.port': server.port,
        'http.route': '/bookings/:id',
        'http.response.status_code': 200,
        'user_agent.original': 'test-agent',
      });
      const metrics = await otel.collect();
      const p = points<Histogram>(metrics.get('http.server.request.duration'), {
        'http.route': '/bookings/:id',
      });
      expect(p[0]?.value.count).toBe(1);
      expect(p[0]?.attributes['http.response.status_code']).toBe(200);
    } finally {
      await server.close();
    }
  });

  it('marks a 5xx and ends only once', async () => {
    const s = startServerSpan({ method: 'PUT', url: '/x', headers: {}, socket: {} } as never);
    endServerSpan(s, { statusCode: 503 });
    endServerSpan(s, { statusCode: 200 });
    const spans = otel.spans().filter((x) => x.kind === SpanKind.SERVER);
    expect(spans).toHaveLength(1);
    expect(spans[0]!.attributes['error.type']).toBe('503');
    expect(spans[0]!.status.code).toBe(SpanStatusCode.ERROR);
  });
});
