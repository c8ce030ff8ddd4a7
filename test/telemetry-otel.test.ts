import { createServer } from 'node:http';
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { meshHandler } from '../src/context/adapters.ts';
import { createMesh, type Mesh } from '../src/index.ts';
import { HTTP_DURATION_BUCKETS } from '../src/telemetry/metrics.ts';
import { endServerSpan, startServerSpan } from '../src/telemetry/tracing.ts';
import { listen } from './support/inbound.ts';
import { type MiniMesh, miniMesh, retryOn503 } from './support/mini-mesh.ts';
import { type Histogram, installOtel, points, type ReadableSpan, type TestOtel } from './support/otel.ts';
import { named, refusedAddress, startServer, type TestServer } from './support/servers.ts';

let a: TestServer;
let flaky: TestServer;
let otel: TestOtel;
const meshes: Mesh[] = [];
const minis: MiniMesh[] = [];
const closers: (() => Promise<void>)[] = [];

async function waitFor(cond: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

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
  await Promise.all(closers.splice(0).map((c) => c()));
  await Promise.all(meshes.splice(0).map((m) => m.close()));
  await Promise.all(minis.splice(0).map((m) => m.close()));
  await otel.uninstall();
});
afterAll(async () => {
  await a.close();
  await flaky.close();
});

/** The spans of one logical request: its INTERNAL span and the CLIENT span of each attempt. */
function requestSpans(spans: ReadableSpan[], service: string) {
  const logical = spans.filter((s) => s.kind === SpanKind.INTERNAL && s.name.endsWith(` ${service}`));
  expect(logical).toHaveLength(1);
  const l = logical[0] as ReadableSpan;
  const attempts = spans
    .filter((s) => s.kind === SpanKind.CLIENT && s.parentSpanContext?.spanId === l.spanContext().spanId)
    .sort(
      (x, y) =>
        Number(x.attributes['http.request.resend_count'] ?? 0) -
        Number(y.attributes['http.request.resend_count'] ?? 0),
    );
  return { logical: l, attempts };
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/;

describe('the spans of a logical request', () => {
  it('one INTERNAL span for the request, one CLIENT span for its attempt, with the semantic-convention attributes and secrets stripped', async () => {
    const m = mesh([a.address]);
    const res = await m.fetch('http://upstream:8080/search?q=paris&token=s3cr3t&api_key=k&page=2');
    expect(await res.text()).toBe('a');
    const spans = otel.spans();
    expect(spans).toHaveLength(2);
    const { logical, attempts } = requestSpans(spans, 'upstream');
    expect(logical.name).toBe('GET upstream');
    expect(logical.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.full': 'http://upstream:8080/search?q=paris&token=REDACTED&api_key=REDACTED&page=2',
      'server.address': 'upstream',
      'server.port': 8080,
      'http.response.status_code': 200,
      'meshwork.service': 'upstream',
      'meshwork.endpoint': a.address,
      'meshwork.attempts': 1,
    });
    expect(logical.status.code).toBe(SpanStatusCode.UNSET);
    expect(attempts).toHaveLength(1);
    const attempt = attempts[0] as ReadableSpan;
    expect(attempt.name).toBe('GET');
    expect(attempt.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.full': 'http://upstream:8080/search?q=paris&token=REDACTED&api_key=REDACTED&page=2',
      'server.address': 'upstream',
      'server.port': 8080,
      'http.response.status_code': 200,
      'network.peer.address': '127.0.0.1',
      'network.peer.port': a.port,
      'network.protocol.version': '1.1',
      'meshwork.service': 'upstream',
      'meshwork.endpoint': a.address,
    });
    expect(attempt.attributes['error.type']).toBeUndefined();
    expect(attempt.attributes['http.request.resend_count']).toBeUndefined();
    // The upstream got the attempt's trace context, exactly once.
    const tp = a.hits.at(-1)?.headers.traceparent;
    expect(tp).toMatch(TRACEPARENT);
    expect(String(tp).split('-')[2]).toBe(attempt.spanContext().spanId);
  });

  it('is a child of the caller’s active span, and is itself active below the layer', async () => {
    const m = mesh([a.address]);
    const tracer = trace.getTracer('test');
    await tracer.startActiveSpan('caller', async (parent) => {
      const res = await request('http://upstream/x', { dispatcher: m.dispatcher });
      await res.body.dump();
      parent.end();
    });
    const caller = otel.spans().find((s) => s.name === 'caller')!;
    const { logical, attempts } = requestSpans(otel.spans(), 'upstream');
    expect(logical.parentSpanContext?.spanId).toBe(caller.spanContext().spanId);
    expect(logical.spanContext().traceId).toBe(caller.spanContext().traceId);
    expect(attempts[0]?.spanContext().traceId).toBe(caller.spanContext().traceId);
  });

  it('marks a 5xx response with error.type = status code and span status ERROR', async () => {
    const s = await startServer((_req, res) => {
      res.statusCode = 502;
      res.end('bad gateway');
    });
    try {
      const m = mesh([s.address]);
      const res = await m.fetch('http://upstream/', { method: 'POST', body: 'x' });
      expect(res.status).toBe(502);
      await res.text();
      const { logical, attempts } = requestSpans(otel.spans(), 'upstream');
      for (const span of [logical, ...attempts]) {
        expect(span.attributes['http.response.status_code']).toBe(502);
        expect(span.attributes['error.type']).toBe('502');
        expect(span.status.code).toBe(SpanStatusCode.ERROR);
      }
    } finally {
      await s.close();
    }
  });

  it('records a connection error on every attempt and on the request, with the exception', async () => {
    const m = mesh([await refusedAddress()]);
    await expect(m.fetch('http://upstream/')).rejects.toThrow();
    const { logical, attempts } = requestSpans(otel.spans(), 'upstream');
    expect(logical.attributes['error.type']).toBe('ECONNREFUSED');
    expect(logical.attributes['http.response.status_code']).toBeUndefined();
    expect(logical.attributes['meshwork.attempts']).toBe(attempts.length);
    expect(logical.status.code).toBe(SpanStatusCode.ERROR);
    expect(logical.events.some((e) => e.name === 'exception')).toBe(true);
    expect(attempts.length).toBeGreaterThan(1); // connect failures are retried by default
    attempts.forEach((span, i) => {
      expect(span.attributes['error.type']).toBe('ECONNREFUSED');
      expect(span.attributes['http.request.resend_count']).toBe(i === 0 ? undefined : i);
      expect(span.events.some((e) => e.name === 'exception')).toBe(true);
    });
  });

  it('gives each attempt its own CLIENT span and traceparent: http.request.resend_count and the retry reason on resends', async () => {
    const mini = miniMesh('flaky', [flaky.address], { layers: [retryOn503] });
    minis.push(mini);
    const before = flaky.hits.length;
    const res = await request('http://flaky/r', { dispatcher: mini.dispatcher });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    const { logical, attempts } = requestSpans(otel.spans(), 'flaky');
    expect(logical.attributes['http.response.status_code']).toBe(200);
    expect(logical.attributes['meshwork.attempts']).toBe(2);
    expect(logical.events.map((e) => e.name)).toEqual(['meshwork.retry']);
    expect(logical.events[0]?.attributes).toMatchObject({
      'meshwork.attempt': 1,
      'meshwork.retry.reason': '5xx',
    });
    expect(attempts).toHaveLength(2);
    expect(attempts[0]!.attributes['http.response.status_code']).toBe(503);
    expect(attempts[0]!.attributes['error.type']).toBe('503');
    expect(attempts[0]!.attributes['http.request.resend_count']).toBeUndefined();
    expect(attempts[1]!.attributes).toMatchObject({
      'http.response.status_code': 200,
      'http.request.resend_count': 1,
      'meshwork.retry.reason': '5xx',
      'meshwork.endpoint': flaky.address,
    });
    // Each upstream request carried the trace context of its own attempt.
    const seen = flaky.hits.slice(before).map((h) => String(h.headers.traceparent).split('-')[2]);
    expect(seen).toEqual(attempts.map((s) => s.spanContext().spanId));
    const m = await otel.collect();
    expect(
      points(m.get('meshwork.retries'), { 'meshwork.service': 'flaky', 'meshwork.reason': '5xx' })[0]?.value,
    ).toBe(1);
  });

  it('keeps a traceparent the caller set itself', async () => {
    const m = mesh([a.address]);
    const mine = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    await (await m.fetch('http://upstream/', { headers: { traceparent: mine } })).text();
    expect(a.hits.at(-1)?.headers.traceparent).toBe(mine);
  });

  it('delivers the caller’s callbacks in the caller’s context, whichever request opened the connection', async () => {
    // The body comes in two parts, the second once the caller listens: undici pushes it from the
    // connection's callback, and the stream emits it there, synchronously.
    const slow = await startServer((_req, res) => {
      res.write('a');
      setTimeout(() => res.end('b'), 50);
    });
    try {
      const m = mesh([slow.address]);
      const tracer = trace.getTracer('test');
      const seen: string[] = [];
      for (const name of ['first', 'second']) {
        await tracer.startActiveSpan(name, async (span) => {
          const res = await request('http://upstream/', { dispatcher: m.dispatcher });
          await new Promise<void>((resolve) => {
            res.body.on('data', (chunk) => seen.push(`${name} ${chunk}: ${trace.getActiveSpan() === span}`));
            res.body.on('end', resolve);
          });
          span.end();
        });
      }
      // One pooled connection served both; it was opened by the first request.
      expect(slow.hits).toHaveLength(2);
      expect(seen).toEqual(['first a: true', 'first b: true', 'second a: true', 'second b: true']);
    } finally {
      await slow.close();
    }
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
  it('records meshwork.request.duration per request and http.client.request.duration per attempt, with the semantic-convention buckets', async () => {
    const m = mesh([a.address]);
    for (let i = 0; i < 3; i++) await (await m.fetch('http://upstream/')).text();
    const res = await request('http://upstream/', { method: 'POST', body: 'x', dispatcher: m.dispatcher });
    await res.body.dump();
    const metrics = await otel.collect();
    const logical = metrics.get('meshwork.request.duration')!;
    const perAttempt = metrics.get('http.client.request.duration')!;
    expect(logical.descriptor.unit).toBe('s');
    expect(perAttempt.descriptor.unit).toBe('s');
    const gets = points<Histogram>(logical, { 'http.request.method': 'GET' });
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
    expect(points<Histogram>(logical, { 'http.request.method': 'POST' })[0]?.value.count).toBe(1);
    const attemptGets = points<Histogram>(perAttempt, { 'http.request.method': 'GET' });
    expect(attemptGets).toHaveLength(1);
    expect(attemptGets[0]!.attributes).toEqual({
      'http.request.method': 'GET',
      'http.response.status_code': 200,
      'server.address': 'upstream',
      'server.port': 80,
      'network.protocol.version': '1.1',
      'meshwork.service': 'upstream',
    });
    expect(attemptGets[0]!.value.count).toBe(3);
    expect(attemptGets[0]!.value.buckets.boundaries).toEqual(HTTP_DURATION_BUCKETS);
    const active = points(metrics.get('http.client.active_requests'), { 'server.address': 'upstream' });
    expect(active[0]?.value).toBe(0);
  });

  it('counts a request once and each of its attempts once', async () => {
    const mini = miniMesh('flaky', [flaky.address], { layers: [retryOn503] });
    minis.push(mini);
    for (let i = 0; i < 2; i++)
      await (await request('http://flaky/', { dispatcher: mini.dispatcher })).body.dump();
    const metrics = await otel.collect();
    const total = (name: string) =>
      points<Histogram>(metrics.get(name), { 'meshwork.service': 'flaky' }).reduce(
        (n, p) => n + p.value.count,
        0,
      );
    expect(total('meshwork.request.duration')).toBe(2);
    // The flaky upstream alternates 503 and 200: two requests, three or four attempts.
    const attempts = total('http.client.request.duration');
    expect(attempts).toBeGreaterThanOrEqual(3);
    expect(
      points<Histogram>(metrics.get('http.client.request.duration'), { 'error.type': '503' })[0]?.value.count,
    ).toBe(attempts - 2);
  });

  it('labels failed requests with error.type', async () => {
    const m = mesh([await refusedAddress()]);
    await expect(m.fetch('http://upstream/')).rejects.toThrow();
    const metrics = await otel.collect();
    const p = points<Histogram>(metrics.get('meshwork.request.duration'), { 'error.type': 'ECONNREFUSED' });
    expect(p[0]?.value.count).toBe(1);
    expect(p[0]?.attributes['http.response.status_code']).toBeUndefined();
    const sent = points<Histogram>(metrics.get('http.client.request.duration'), {
      'error.type': 'ECONNREFUSED',
    });
    expect(sent[0]?.value.count).toBeGreaterThan(1);
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
    expect(points<Histogram>(metrics.get('meshwork.request.duration'))[0]?.value.count).toBe(1);
    expect(points<Histogram>(metrics.get('http.client.request.duration'))[0]?.value.count).toBe(1);
    expect(otel.spans()).toHaveLength(0);
  });
});

describe('mesh.inbound() and the SERVER span', () => {
  async function service(handle: (m: Mesh) => Promise<void>, config: Record<string, unknown> = {}) {
    const m = createMesh({
      env: {},
      ...config,
      services: { upstream: { discovery: { static: [a.address] } } },
    });
    meshes.push(m);
    const l = await listen(
      createServer(
        meshHandler(m, async (_req, res) => {
          await handle(m);
          res.end('done');
        }),
      ),
    );
    closers.push(l.close);
    return l.url;
  }

  it('with no other instrumentation, starts the SERVER span itself: the trace continues, outbound spans are its children, http.server.request.duration is recorded', async () => {
    const url = await service(async (m) => {
      await (await m.fetch('http://upstream/')).text();
    });
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const res = await request(`${url}/bookings/7`, {
      headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
    });
    expect(await res.body.text()).toBe('done');
    await waitFor(() => otel.spans().some((s) => s.kind === SpanKind.SERVER));
    const servers = otel.spans().filter((s) => s.kind === SpanKind.SERVER);
    expect(servers).toHaveLength(1);
    const server = servers[0]!;
    expect(server.instrumentationScope.name).toBe('meshwork');
    expect(server.spanContext().traceId).toBe(traceId);
    expect(server.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
    expect(server.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.path': '/bookings/7',
      'network.protocol.version': '1.1',
      'http.response.status_code': 200,
    });
    const { logical } = requestSpans(otel.spans(), 'upstream');
    expect(logical.parentSpanContext?.spanId).toBe(server.spanContext().spanId);
    const metrics = await otel.collect();
    const p = points<Histogram>(metrics.get('http.server.request.duration'));
    expect(p).toHaveLength(1);
    expect(p[0]!.value.count).toBe(1);
    expect(p[0]!.attributes).toMatchObject({
      'http.request.method': 'GET',
      'http.response.status_code': 200,
      'network.protocol.version': '1.1',
      'url.scheme': 'http',
    });
  });

  it('gives a request refused by authorization its SERVER span too (403, not an error on the server side)', async () => {
    const url = await service(async () => {}, {
      authorization: {
        policies: [{ name: 'closed', action: 'DENY', rules: [{ to: [{ operation: { paths: ['/x'] } }] }] }],
      },
    });
    const res = await request(`${url}/x`);
    expect(res.statusCode).toBe(403);
    await res.body.dump();
    await waitFor(() => otel.spans().some((s) => s.kind === SpanKind.SERVER));
    const server = otel.spans().find((s) => s.kind === SpanKind.SERVER)!;
    expect(server.attributes['http.response.status_code']).toBe(403);
    expect(server.status.code).toBe(SpanStatusCode.UNSET);
  });

  it('reuses a SERVER span another instrumentation already made active: no second span, no second duration', async () => {
    // What instrumentation-http does: a SERVER span active around the request listener.
    const other = trace.getTracer('other-http-instrumentation');
    const m = createMesh({ env: {}, services: { upstream: { discovery: { static: [a.address] } } } });
    meshes.push(m);
    const inner = meshHandler(m, async (_req, res) => {
      await (await m.fetch('http://upstream/')).text();
      res.end('done');
    });
    const l = await listen(
      createServer((req, res) => {
        const span = other.startSpan('GET', { kind: SpanKind.SERVER });
        res.on('finish', () => span.end());
        context.with(trace.setSpan(context.active(), span), () => inner(req, res));
      }),
    );
    closers.push(l.close);
    await (await request(`${l.url}/`)).body.text();
    await waitFor(() => otel.spans().some((s) => s.kind === SpanKind.SERVER));
    const servers = otel.spans().filter((s) => s.kind === SpanKind.SERVER);
    expect(servers.map((s) => s.instrumentationScope.name)).toEqual(['other-http-instrumentation']);
    const { logical } = requestSpans(otel.spans(), 'upstream');
    expect(logical.parentSpanContext?.spanId).toBe(servers[0]!.spanContext().spanId);
    const metrics = await otel.collect();
    expect(metrics.get('http.server.request.duration')).toBeUndefined();
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
