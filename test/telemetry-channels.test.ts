import dc from 'node:diagnostics_channel';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createMesh, type Logger, type Mesh } from '../src/index.ts';
import type { Layer } from '../src/pipeline.ts';
import {
  CHANNELS,
  type DiscoveryChangeMessage,
  type DiscoveryErrorMessage,
  type EjectionMessage,
  type RequestMessage,
  type RetryMessage,
} from '../src/telemetry/channels.ts';
import { type MiniMesh, miniMesh, retryOn503 } from './support/mini-mesh.ts';
import { named, refusedAddress, startServer, type TestServer } from './support/servers.ts';

let a: TestServer;
let flaky: TestServer;
const meshes: Mesh[] = [];
const minis: MiniMesh[] = [];
const unsubscribe: (() => void)[] = [];

function listen<T>(name: string): T[] {
  const got: T[] = [];
  const fn = (msg: unknown) => got.push(msg as T);
  dc.subscribe(name, fn);
  unsubscribe.push(() => dc.unsubscribe(name, fn));
  return got;
}

function mesh(addresses: string[], extra: { logger?: Logger } = {}): Mesh {
  const m = createMesh({ env: {}, services: { upstream: { discovery: { static: addresses } } }, ...extra });
  meshes.push(m);
  return m;
}

function recordingLogger(): Logger & { lines: { level: string; obj: object; msg?: string | undefined }[] } {
  const lines: { level: string; obj: object; msg?: string | undefined }[] = [];
  const at = (level: string) => (obj: object, msg?: string) => lines.push({ level, obj, msg });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

beforeAll(async () => {
  a = await startServer(named('a'));
  let n = 0;
  flaky = await startServer((_req, res) => {
    res.statusCode = n++ % 2 === 0 ? 503 : 200;
    res.end();
  });
});
afterEach(async () => {
  for (const u of unsubscribe.splice(0)) u();
  await Promise.all(meshes.splice(0).map((m) => m.close()));
  await Promise.all(minis.splice(0).map((m) => m.close()));
});
afterAll(async () => {
  await a.close();
  await flaky.close();
});

describe('diagnostics channels', () => {
  it('publish request start and end (same object, filled in) for a successful request', async () => {
    const starts = listen<RequestMessage>(CHANNELS.requestStart);
    const ends = listen<RequestMessage>(CHANNELS.requestEnd);
    const snapshotAtStart: RequestMessage[] = [];
    const fn = (m: unknown) => snapshotAtStart.push({ ...(m as RequestMessage) });
    dc.subscribe(CHANNELS.requestStart, fn);
    unsubscribe.push(() => dc.unsubscribe(CHANNELS.requestStart, fn));
    const m = mesh([a.address]);
    const res = await m.fetch('http://upstream/hello?token=t');
    await res.text();
    expect(starts).toHaveLength(1);
    expect(ends).toHaveLength(1);
    expect(ends[0]).toBe(starts[0]);
    expect(snapshotAtStart[0]).toMatchObject({
      service: 'upstream',
      authority: 'upstream',
      method: 'GET',
      path: '/hello?token=t',
    });
    expect(snapshotAtStart[0]?.statusCode).toBeUndefined();
    expect(ends[0]).toMatchObject({ statusCode: 200, attempts: 1, endpoint: a.address });
    expect(ends[0]!.durationMs).toBeGreaterThan(0);
  });

  it('publish request error with the error and its type', async () => {
    const errors = listen<RequestMessage>(CHANNELS.requestError);
    const ends = listen<RequestMessage>(CHANNELS.requestEnd);
    const m = mesh([await refusedAddress()]);
    await expect(m.fetch('http://upstream/')).rejects.toThrow();
    expect(ends).toHaveLength(0);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.errorType).toBe('ECONNREFUSED');
    expect(errors[0]?.error).toBeInstanceOf(Error);
  });

  it('publish retries through the service telemetry API', async () => {
    const retries = listen<RetryMessage>(CHANNELS.retry);
    const ends = listen<RequestMessage>(CHANNELS.requestEnd);
    const mini = miniMesh('flaky', [flaky.address], { layers: [retryOn503] });
    minis.push(mini);
    const res = await request('http://flaky/', { dispatcher: mini.dispatcher });
    await res.body.dump();
    expect(retries).toEqual([
      { service: 'flaky', attempt: 1, reason: '5xx', endpoint: undefined, delayMs: 0 },
    ]);
    expect(ends[0]).toMatchObject({ statusCode: 200, attempts: 2 });
  });

  it('publish ejections, breaker changes and budget exhaustion, and log ejections', async () => {
    const logger = recordingLogger();
    const ejections = listen<EjectionMessage>(CHANNELS.endpointEjected);
    const breaker = listen<unknown>(CHANNELS.circuitBreakerState);
    const budget = listen<unknown>(CHANNELS.retryBudgetExhausted);
    const mini = miniMesh('svc', [a.address], { logger });
    minis.push(mini);
    const t = mini.svc.telemetry;
    t.ejection({ endpoint: a.address, reason: 'consecutive-5xx', durationMs: 30_000 });
    t.ejection({ endpoint: a.address, reason: 'consecutive-5xx', durationMs: 60_000 });
    t.circuitBreaker({ state: 'open' });
    t.circuitBreaker({ state: 'open' });
    t.circuitBreaker({ state: 'half_open' });
    t.retryBudgetExhausted({ attempt: 1, reason: 'reset' });
    expect(ejections.map((e) => e.ejections)).toEqual([1, 2]);
    expect(ejections[1]).toMatchObject({ service: 'svc', endpoint: a.address, durationMs: 60_000 });
    expect(breaker).toEqual([
      { service: 'svc', endpoint: undefined, state: 'open', previous: undefined },
      { service: 'svc', endpoint: undefined, state: 'half_open', previous: 'open' },
    ]);
    expect(budget).toEqual([{ service: 'svc', attempt: 1, reason: 'reset' }]);
    const warns = logger.lines.filter((l) => l.level === 'warn');
    expect(warns.map((w) => w.msg)).toEqual([
      'endpoint ejected by outlier detection',
      'endpoint ejected by outlier detection',
      'circuit breaker opened',
    ]);
    expect(warns[0]?.obj).toMatchObject({ service: 'svc', endpoint: a.address, reason: 'consecutive-5xx' });
  });

  it('publish discovery changes and errors, and log discovery errors', async () => {
    const changes = listen<DiscoveryChangeMessage>(CHANNELS.discoveryChange);
    const errors = listen<DiscoveryErrorMessage>(CHANNELS.discoveryError);
    const logger = recordingLogger();
    const mini = miniMesh('svc', [a.address], { logger });
    minis.push(mini);
    expect(changes).toEqual([
      {
        service: 'svc',
        provider: 'static',
        added: [a.address],
        updated: [],
        removed: [],
        unhealthy: [],
        healthy: [],
        total: 1,
      },
    ]);
    // Drive the same sink discovery uses, as a dynamic provider would.
    const sink = mini.svc.telemetry.discoverySink(mini.svc.endpoints);
    sink.apply([
      {
        type: 'insert',
        endpoint: { address: flaky.address, host: '127.0.0.1', port: flaky.port, labels: {}, weight: 1 },
      },
      {
        type: 'insert',
        endpoint: { address: a.address, host: '127.0.0.1', port: a.port, labels: { v: '2' }, weight: 1 },
      },
    ]);
    sink.apply([{ type: 'remove', address: flaky.address }]);
    sink.apply([{ type: 'health', address: a.address, healthy: false }]);
    sink.apply([{ type: 'health', address: a.address, healthy: true }]);
    sink.error(new Error('registry down'));
    sink.skipped('port is not a number', { port: 'x' });
    expect(changes[1]).toEqual({
      service: 'svc',
      provider: 'static',
      added: [flaky.address],
      updated: [a.address],
      removed: [],
      unhealthy: [],
      healthy: [],
      total: 2,
    });
    expect(changes[2]).toMatchObject({ removed: [flaky.address], total: 1 });
    // Active health checks flip an endpoint without removing it.
    expect(changes[3]).toMatchObject({
      added: [],
      removed: [],
      unhealthy: [a.address],
      healthy: [],
      total: 1,
    });
    expect(changes[4]).toMatchObject({ unhealthy: [], healthy: [a.address], total: 1 });
    expect(errors.map((e) => e.kind)).toEqual(['registry', 'record']);
    expect(logger.lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual([
      'discovery error: keeping the last known endpoints',
      'discovery record skipped',
    ]);
  });
});

describe('configuration warnings', () => {
  it('warn when discovery is ready with no endpoint at all', async () => {
    const logger = recordingLogger();
    const m = createMesh({ env: {}, logger, services: { empty: { discovery: { static: [] } } } });
    meshes.push(m);
    expect(logger.lines.filter((l) => l.level === 'warn')).toEqual([
      {
        level: 'warn',
        obj: { service: 'empty', provider: 'static' },
        msg: 'discovery is ready with 0 endpoints: requests fail with MESHWORK_ERR_NO_ENDPOINTS until some appear',
      },
    ]);
  });
});

describe('with no SDK and no subscriber', () => {
  it('the telemetry layer steps aside: no per-request state, requests work', async () => {
    const seen: unknown[] = [];
    const probe: Layer = (next) => (req, handler) => {
      seen.push(req.telemetry);
      next(req, handler);
    };
    const mini = miniMesh('svc', [a.address], { layers: [probe] });
    minis.push(mini);
    const res = await request('http://svc/', { dispatcher: mini.dispatcher });
    expect(await res.body.text()).toBe('a');
    expect(seen).toEqual([undefined]);
    // A subscriber turns it on.
    const ends = listen<RequestMessage>(CHANNELS.requestEnd);
    await (await request('http://svc/', { dispatcher: mini.dispatcher })).body.dump();
    expect(seen[1]).toBeDefined();
    expect(ends).toHaveLength(1);
  });

  it('a mesh built with telemetry: false works and publishes nothing per request', async () => {
    const ends = listen<RequestMessage>(CHANNELS.requestEnd);
    const m = createMesh({
      env: {},
      telemetry: false,
      services: { upstream: { discovery: { static: [a.address] } } },
    });
    meshes.push(m);
    expect(await (await m.fetch('http://upstream/')).text()).toBe('a');
    expect(ends).toHaveLength(0);
  });
});

describe('mesh.snapshot()', () => {
  it('holds endpoints with state, EWMA, in-flight, weights, zone, ejections, breakers and discovery', async () => {
    const m = createMesh({
      env: {},
      zone: 'eu-1',
      services: {
        upstream: {
          discovery: { static: [{ address: a.address, zone: 'eu-1', weight: 3, labels: { version: 'v1' } }] },
        },
      },
    });
    meshes.push(m);
    await (await m.fetch('http://upstream/')).text();
    const snap = m.snapshot();
    expect(snap.zone).toBe('eu-1');
    expect(typeof snap.takenAt).toBe('string');
    const svc = snap.services.upstream!;
    expect(svc.loadBalancer).toBeTypeOf('string');
    expect(svc.inflight).toBe(0);
    expect(svc.discovery).toMatchObject({ provider: 'static', state: 'ready', updates: 1, errors: 0 });
    expect(svc.endpoints[0]).toMatchObject({
      address: a.address,
      zone: 'eu-1',
      weight: 3,
      effectiveWeight: 3,
      labels: { version: 'v1' },
      state: 'healthy',
      healthy: true,
      ejected: false,
      draining: false,
      inflight: 0,
    });
    expect(svc.endpoints[0]!.ewmaMs).toBeGreaterThan(0);
    expect(JSON.parse(JSON.stringify(snap))).toEqual(snap);
  });
});
