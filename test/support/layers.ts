/**
 * A harness for layer tests in the fake-dispatch style: a real ServiceRuntime (static endpoints,
 * nothing connects unless a test sends through a pool), requests built as the dispatcher builds
 * them, controllers that record aborts, handlers that record what reaches them, and scripted
 * answers standing in for the layers below.
 */
import type { Endpoint } from '../../src/balancer/endpoint.ts';
import { validateConfig } from '../../src/config/load.ts';
import type { ServiceConfig } from '../../src/config/schema.ts';
import { LocalController as RecordingController } from '../../src/http/synthetic.ts';
import { type DispatchHandler, type MeshRequest, newMeshRequest } from '../../src/pipeline.ts';
import { ServiceRuntime } from '../../src/service.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';

export interface FakeClock {
  (): number;
  now: number;
  advance(ms: number): void;
}

export function fakeClock(start = 1_000): FakeClock {
  const c = (() => c.now) as FakeClock;
  c.now = start;
  c.advance = (ms) => {
    c.now += ms;
  };
  return c;
}

/** A real service runtime over static endpoints, started (endpoints present), with a fake clock. */
export function testService(
  cfg: Record<string, unknown> = {},
  addresses: string[] = ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80'],
  clock: FakeClock = fakeClock(),
  opts: { start?: boolean } = {},
): ServiceRuntime {
  const config = validateConfig({ services: { svc: { discovery: { static: addresses }, ...cfg } } });
  const svc = new ServiceRuntime('svc', config.services.svc as ServiceConfig, {
    clock,
    logger: silentLogger,
    zone: undefined,
    env: {},
  });
  if (opts.start !== false) svc.start();
  return svc;
}

export function endpointsOf(svc: ServiceRuntime): Endpoint[] {
  return [...svc.endpoints.endpoints()];
}

export function testRequest(
  svc: ServiceRuntime,
  opts: { method?: string; path?: string; startedAt?: number } = {},
): MeshRequest {
  return newMeshRequest(
    svc,
    { origin: 'http://svc', method: opts.method ?? 'GET', path: opts.path ?? '/', headers: { host: 'svc' } },
    'svc',
    opts.startedAt ?? 0,
  );
}

/** A controller that records aborts and pauses (the mesh's own local controller). */
export { LocalController as RecordingController } from '../../src/http/synthetic.ts';

/** A handler that records the callbacks reaching it, in order, with statuses and errors. */
export interface Recorder
  extends Required<
    Omit<
      DispatchHandler,
      | 'onResponseStarted'
      | 'onBodySent'
      | 'onRequestSent'
      | 'onConnect'
      | 'onError'
      | 'onUpgrade'
      | 'onHeaders'
      | 'onData'
      | 'onComplete'
    >
  > {
  calls: string[];
  errors: Error[];
  status: number;
}

export function recorder(): Recorder {
  const r: Recorder = {
    calls: [],
    errors: [],
    status: 0,
    onRequestStart: () => {
      r.calls.push('start');
    },
    onResponseStart: (_c, status) => {
      r.status = status;
      r.calls.push(`headers ${status}`);
    },
    onResponseData: () => {
      r.calls.push('data');
    },
    onResponseEnd: () => {
      r.calls.push('end');
    },
    onResponseError: (_c, err) => {
      r.errors.push(err);
      r.calls.push(`error ${(err as { code?: string }).code ?? err.name}`);
    },
    onRequestUpgrade: () => {
      r.calls.push('upgrade');
    },
  };
  return r;
}

/** Drives a handler through a whole answer: start, headers, one chunk, end. */
export function answer(handler: DispatchHandler, status: number, body = 'ok'): RecordingController {
  const c = new RecordingController();
  handler.onRequestStart?.(c, {});
  handler.onResponseStart?.(c, status, {}, '');
  handler.onResponseData?.(c, Buffer.from(body));
  handler.onResponseEnd?.(c, {});
  return c;
}

/** Drives a handler to an error before any headers. */
export function fail(handler: DispatchHandler, err: Error): RecordingController {
  const c = new RecordingController();
  handler.onRequestStart?.(c, {});
  handler.onResponseError?.(c, err);
  return c;
}

/** Headers, then the body breaks. */
export function breakBody(handler: DispatchHandler, status: number, err: Error): RecordingController {
  const c = new RecordingController();
  handler.onRequestStart?.(c, {});
  handler.onResponseStart?.(c, status, {}, '');
  handler.onResponseData?.(c, Buffer.from('part'));
  handler.onResponseError?.(c, err);
  return c;
}

/** An error shaped like a socket reset. */
export function resetError(): Error {
  return Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' });
}

/** An error shaped like a refused connection. */
export function refusedError(): Error {
  return Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
}
