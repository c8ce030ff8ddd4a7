/**
 * The retry layer's policy, pinned in the fake-dispatch style: the layers below are a script that
 * records each attempt and answers it when the test says so; timers are vitest's fake timers, and
 * the layer's clock is the faked Date.now, so backoff, timeouts and hedge delays are exact.
 * Semantics: Istio HTTPRetry / Envoy retry policy (docs/resilience.md).
 */
import { channel } from 'node:diagnostics_channel';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  endpointsOf,
  RecordingController,
  recorder,
  refusedError,
  resetError,
  testRequest,
  testService,
} from '../../test/support/layers.ts';
import { MeshTimeoutError } from '../errors.ts';
import { withCallOverrides } from '../http/call-options.ts';
import { DISCARDED } from '../outcome.ts';
import type { DispatchHandler, MeshRequest, ResponseHeaders } from '../pipeline.ts';
import { LOSER_DRAIN_MS, retryLayer } from './retry-layer.ts';

interface Sent {
  req: MeshRequest;
  h: DispatchHandler;
  c: RecordingController;
  /** Headers, one chunk, end. */
  answer(status: number, headers?: ResponseHeaders, body?: string): void;
  fail(err: Error): void;
}

/**
 * A retry layer over a scripted transport. Each attempt is given the next endpoint (round robin)
 * and started (onRequestStart) unless `startAttempts` is false; the test answers it.
 */
function harness(
  cfg: Record<string, unknown> = {},
  opts: {
    random?: () => number;
    /** false, or which attempts (by index) the transport starts at once. */
    startAttempts?: boolean | ((i: number) => boolean);
    /** false: attempts never get an endpoint (still waiting for discovery). */
    endpoints?: boolean;
  } = {},
) {
  const svc = testService({ retryBudget: { enabled: false }, ...cfg });
  const eps = endpointsOf(svc);
  const sent: Sent[] = [];
  const dispatch = retryLayer(
    () => Date.now(),
    opts.random ?? (() => 0),
  )((req, h) => {
    const c = new RecordingController();
    const i = sent.length;
    if (opts.endpoints !== false) req.endpoint = eps[i % eps.length];
    const s: Sent = {
      req,
      h,
      c,
      answer(status, headers = {}, body = 'ok') {
        h.onResponseStart?.(c, status, headers, '');
        h.onResponseData?.(c, Buffer.from(body));
        h.onResponseEnd?.(c, {});
      },
      fail(err) {
        h.onResponseError?.(c, err);
      },
    };
    sent.push(s);
    const start = opts.startAttempts;
    if (typeof start === 'function' ? start(i) : start !== false) h.onRequestStart?.(c, {});
  });
  const send = (req: MeshRequest = testRequest(svc)) => {
    const r = recorder();
    dispatch(req, r);
    return r;
  };
  const at = (i: number): Sent => {
    const s = sent[i];
    if (!s) throw new Error(`attempt ${i} was not sent (sent ${sent.length})`);
    return s;
  };
  return { svc, eps, sent, send, at, dispatch };
}

function post(svc: ReturnType<typeof testService>, headers: Record<string, string> = {}): MeshRequest {
  const req = testRequest(svc, { method: 'POST' });
  Object.assign(req.opts.headers, headers);
  return req;
}

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

/** Lets any backoff (at most 250 ms by default) run out. */
function settle(): void {
  vi.advanceTimersByTime(300);
}

describe('retry layer: which answers are retried (retryOn)', () => {
  it('by default (Istio) retries a 503 after the backoff and delivers the retry’s answer only', () => {
    const { send, at, sent, svc } = harness();
    const r = send();
    expect(r.calls).toEqual(['start']);
    at(0).answer(503);
    expect(sent).toHaveLength(1); // waits for the backoff (random 0: 0 ms, still a timer)
    expect(r.calls).toEqual(['start']);
    vi.advanceTimersByTime(0);
    expect(sent).toHaveLength(2);
    expect(at(0).c.aborted).toBe(true);
    expect(at(0).c.reason).toBe(DISCARDED);
    at(1).answer(200);
    expect(r.calls).toEqual(['start', 'headers 200', 'data', 'end']);
    expect(svc.retry.active).toBe(0);
    expect(svc.retry.retrying).toBe(0);
  });

  it('does not retry a 500 or a 502 under the default retryOn', () => {
    for (const status of [500, 502]) {
      const { send, at, sent } = harness();
      const r = send();
      at(0).answer(status);
      settle();
      expect(sent).toHaveLength(1);
      expect(r.calls).toEqual(['start', `headers ${status}`, 'data', 'end']);
    }
  });

  it('retries a gRPC UNAVAILABLE (grpc-status 14) under the default, not grpc-status 2', () => {
    const a = harness();
    a.send();
    a.at(0).answer(200, { 'grpc-status': '14' });
    settle();
    expect(a.sent).toHaveLength(2);
    const b = harness();
    b.send();
    b.at(0).answer(200, { 'grpc-status': '2' });
    settle();
    expect(b.sent).toHaveLength(1);
  });

  it('5xx retries any 5xx; gateway-error only 502, 503, 504', () => {
    const count = (retryOn: string, status: number) => {
      const h = harness({ retries: { retryOn, attempts: 1 } });
      h.send();
      h.at(0).answer(status);
      settle();
      return h.sent.length;
    };
    expect(count('5xx', 500)).toBe(2);
    expect(count('gateway-error', 500)).toBe(1);
    expect(count('gateway-error', 504)).toBe(2);
    expect(count('gateway-error', 404)).toBe(1);
  });

  it('retries a connect failure; not a reset unless retryOn has reset', () => {
    const a = harness();
    const ra = a.send();
    a.at(0).fail(refusedError());
    settle();
    expect(a.sent).toHaveLength(2);
    a.at(1).answer(200);
    expect(ra.calls).toEqual(['start', 'headers 200', 'data', 'end']);

    const b = harness();
    const rb = b.send();
    b.at(0).fail(resetError());
    settle();
    expect(b.sent).toHaveLength(1);
    expect(rb.calls).toEqual(['start', 'error UND_ERR_SOCKET']);

    const c = harness({ retries: { retryOn: 'reset' } });
    c.send();
    c.at(0).fail(resetError());
    settle();
    expect(c.sent).toHaveLength(2);
  });

  it('makes at most `attempts` retries, then delivers the last answer', () => {
    const { send, at, sent } = harness({ retries: { attempts: 2 } });
    const r = send();
    for (let i = 0; i < 3; i++) {
      at(i).answer(503);
      settle();
    }
    expect(sent).toHaveLength(3);
    expect(r.calls).toEqual(['start', 'headers 503', 'data', 'end']);
  });

  it('attempts: 0 sends once', () => {
    const { send, at, sent } = harness({ retries: { attempts: 0 } });
    const r = send();
    at(0).answer(503);
    settle();
    expect(sent).toHaveLength(1);
    expect(r.status).toBe(503);
  });

  it('the final error names how many attempts reached an endpoint and the last endpoint', () => {
    const { send, at, sent } = harness({ retries: { retryOn: 'reset', attempts: 2 } });
    const r = send();
    for (let i = 0; i < 3; i++) {
      at(i).fail(resetError());
      settle();
    }
    expect(sent).toHaveLength(3);
    const err = r.errors[0] as Error & { attempts?: number; endpoint?: string };
    expect(err.attempts).toBe(3);
    expect(err.endpoint).toBe(at(2).req.endpoint?.address);
    expect(err.endpoint).toBe('10.0.0.3:80');
  });
});

describe('retry layer: non-idempotent requests', () => {
  it.each(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE', 'get'])('%s is retried on a 503', (method) => {
    const { send, at, sent, svc } = harness();
    send(testRequest(svc, { method }));
    at(0).answer(503);
    settle();
    expect(sent).toHaveLength(2);
  });

  it('a POST is not retried on a 503: counted and warned about once per service', () => {
    const { send, at, sent, svc } = harness();
    const warned: string[][] = [];
    svc.retry.onNonIdempotentSkip = (m, why) => warned.push([m, why]);
    for (let i = 0; i < 2; i++) {
      const r = send(post(svc));
      at(i).answer(503);
      settle();
      expect(r.status).toBe(503);
    }
    expect(sent).toHaveLength(2);
    expect(svc.retry.nonIdempotentSkipped).toBe(2);
    expect(warned).toEqual([['POST', '503']]);
  });

  it('a PATCH that was reset is not retried (it may have reached the server), counted with its kind', () => {
    const { send, at, sent, svc } = harness({ retries: { retryOn: 'reset' } });
    const warned: string[][] = [];
    svc.retry.onNonIdempotentSkip = (m, why) => warned.push([m, why]);
    const req = testRequest(svc, { method: 'patch' });
    const r = send(req);
    at(0).fail(resetError());
    settle();
    expect(sent).toHaveLength(1);
    expect(r.calls).toEqual(['start', 'error UND_ERR_SOCKET']);
    expect(warned).toEqual([['PATCH', 'reset']]);
  });

  it('a POST whose connection was refused is retried: it provably never left', () => {
    const { send, at, sent, svc } = harness();
    const r = send(post(svc));
    at(0).fail(refusedError());
    settle();
    expect(sent).toHaveLength(2);
    at(1).answer(200);
    expect(r.status).toBe(200);
    expect(svc.retry.nonIdempotentSkipped).toBe(0);
  });

  it('a POST with an Idempotency-Key, or with retryNonIdempotent, is retried like a GET', () => {
    const a = harness();
    a.send(post(a.svc, { 'idempotency-key': 'k1' }));
    a.at(0).answer(503);
    settle();
    expect(a.sent).toHaveLength(2);
    const b = harness({ retries: { retryNonIdempotent: true } });
    b.send(post(b.svc));
    b.at(0).answer(503);
    settle();
    expect(b.sent).toHaveLength(2);
  });

  it('a skip is not counted when no retry was left anyway (attempts used up, or a streamed body)', () => {
    const a = harness({ retries: { attempts: 0 } });
    a.send(post(a.svc));
    a.at(0).answer(503);
    expect(a.svc.retry.nonIdempotentSkipped).toBe(0);

    const b = harness();
    const req = post(b.svc);
    req.opts.body = Readable.from([Buffer.from('x')]) as never;
    b.send(req);
    b.at(0).answer(503);
    expect(b.svc.retry.nonIdempotentSkipped).toBe(0);
  });

  it('no hedge for a POST', () => {
    const { send, sent, svc } = harness({ retries: { hedge: { delay: '10ms', maxExtraLoad: 1 } } });
    send(post(svc));
    vi.advanceTimersByTime(100);
    expect(sent).toHaveLength(1);
  });
});

describe('retry layer: request bodies', () => {
  it('a streamed body (not made replayable above) is sent once: a 503 is delivered', () => {
    const { send, at, sent, svc } = harness();
    const req = testRequest(svc, { method: 'PUT' });
    req.opts.body = Readable.from([Buffer.from('x')]) as never;
    const r = send(req);
    at(0).answer(503);
    settle();
    expect(sent).toHaveLength(1);
    expect(r.status).toBe(503);
  });

  it('a Buffer or string body is replayed: each retry sends the same body', () => {
    for (const body of [Buffer.from('payload'), 'payload']) {
      const { send, at, sent, svc } = harness();
      const req = testRequest(svc, { method: 'PUT' });
      req.opts.body = body as never;
      send(req);
      at(0).answer(503);
      settle();
      expect(sent).toHaveLength(2);
      expect(at(1).req.opts.body).toBe(body);
    }
  });

  it('no hedge for a streamed body', () => {
    const { send, sent, svc } = harness({ retries: { hedge: { delay: '10ms', maxExtraLoad: 1 } } });
    const req = testRequest(svc, { method: 'PUT' });
    req.opts.body = Readable.from([Buffer.from('x')]) as never;
    send(req);
    vi.advanceTimersByTime(100);
    expect(sent).toHaveLength(1);
  });
});

describe('retry layer: attempts as sent', () => {
  it('the first attempt is the request itself; a retry is a copy with its attempt number, no endpoint and no signal', () => {
    const { send, at, svc } = harness();
    const req = testRequest(svc);
    send(req);
    expect(at(0).req).toBe(req);
    at(0).answer(503);
    settle();
    const retry = at(1).req;
    expect(retry).not.toBe(req);
    expect(retry.attempt).toBe(1);
    expect(retry.opts.method).toBe('GET');
    expect((retry.opts as { signal?: unknown }).signal).toBeUndefined();
    expect(retry.opts.headers['x-meshwork-deadline']).toBeUndefined();
    expect(retry.opts.headers).toBe(req.opts.headers); // shared when no deadline header of its own
  });

  it('retries avoid the endpoints tried; with retryIgnorePreviousHosts: false nothing is tracked', () => {
    const a = harness({ retries: { attempts: 2 } });
    const req = testRequest(a.svc);
    a.send(req);
    a.at(0).answer(503);
    settle();
    expect([...(req.tried ?? [])].map((e) => e.address)).toEqual(['10.0.0.1:80']);
    expect(a.at(1).req.tried).toBe(req.tried);
    a.at(1).answer(503);
    settle();
    expect([...(req.tried ?? [])].map((e) => e.address)).toEqual(['10.0.0.1:80', '10.0.0.2:80']);

    const b = harness({ retries: { retryIgnorePreviousHosts: false } });
    const req2 = testRequest(b.svc);
    b.send(req2);
    b.at(0).answer(503);
    settle();
    expect(b.sent).toHaveLength(2);
    expect(req2.tried?.size ?? 0).toBe(0);
  });

  it('publishes each retry with its attempt number, reason, delay and the endpoint that failed', () => {
    const events: unknown[] = [];
    const ch = channel('meshwork:retry');
    const sub = (m: unknown) => events.push(m);
    ch.subscribe(sub);
    try {
      const { send, at } = harness({ retries: { attempts: 2 } }, { random: () => 0.5 });
      send();
      at(0).answer(503);
      settle();
      at(1).fail(refusedError());
      settle();
      expect(events).toEqual([
        { service: 'svc', attempt: 1, reason: '503', endpoint: '10.0.0.1:80', delayMs: 12 },
        { service: 'svc', attempt: 2, reason: 'connect', endpoint: '10.0.0.2:80', delayMs: 25 },
      ]);
    } finally {
      ch.unsubscribe(sub);
    }
  });
});

describe('retry layer: backoff and Retry-After', () => {
  it('waits the jittered exponential backoff: base 25 ms doubling, capped at 10 × base', () => {
    // random 0.999: just under the ceiling, 25 × 2^n ms capped at 250 ms (floored).
    const { send, at, sent } = harness({ retries: { attempts: 6 } }, { random: () => 0.999 });
    send();
    const waits: number[] = [];
    for (let i = 0; i < 6; i++) {
      at(i).answer(503);
      let waited = 0;
      while (sent.length === i + 1 && waited < 5_000) {
        vi.advanceTimersByTime(1);
        waited++;
      }
      waits.push(waited);
    }
    expect(waits).toEqual([24, 49, 99, 199, 249, 249]);
  });

  it('the backoff base is retries.backoff, and its cap 10 × that', () => {
    const { send, at, sent } = harness(
      { retries: { attempts: 5, backoff: '100ms' } },
      { random: () => 0.999 },
    );
    send();
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      at(i).answer(503);
      let waited = 0;
      while (sent.length === i + 1 && waited < 5_000) {
        vi.advanceTimersByTime(1);
        waited++;
      }
      waits.push(waited);
    }
    expect(waits).toEqual([99, 199, 399, 799, 999]);
  });

  it('honours Retry-After in seconds instead of the backoff', () => {
    const { send, at, sent } = harness();
    send();
    at(0).answer(503, { 'retry-after': '1' });
    vi.advanceTimersByTime(999);
    expect(sent).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(sent).toHaveLength(2);
  });

  it('honours Retry-After as an HTTP date', () => {
    const { send, at, sent } = harness();
    send();
    at(0).answer(503, { 'retry-after': new Date(Date.now() + 2_000).toUTCString() });
    vi.advanceTimersByTime(1_999);
    expect(sent).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(sent).toHaveLength(2);
  });

  it('a Retry-After up to retryAfterMax (default 2 s) is waited; a longer one ends retrying', () => {
    const a = harness();
    a.send();
    a.at(0).answer(503, { 'retry-after': '2' });
    vi.advanceTimersByTime(2_000);
    expect(a.sent).toHaveLength(2);

    const b = harness();
    const r = b.send();
    b.at(0).answer(503, { 'retry-after': '3' });
    expect(r.calls).toEqual(['start', 'headers 503', 'data', 'end']);
    settle();
    expect(b.sent).toHaveLength(1);

    const c = harness({ retries: { retryAfterMax: '5s' } });
    c.send();
    c.at(0).answer(503, { 'retry-after': '3' });
    vi.advanceTimersByTime(3_000);
    expect(c.sent).toHaveLength(2);
  });
});

describe('retry layer: timeouts and the deadline', () => {
  it('the request timeout ends the request with MESHWORK_ERR_TIMEOUT and aborts the attempt', () => {
    const { send, at, svc } = harness({ timeout: '100ms' });
    const r = send();
    vi.advanceTimersByTime(99);
    expect(r.calls).toEqual(['start']);
    vi.advanceTimersByTime(1);
    expect(r.calls).toEqual(['start', 'error MESHWORK_ERR_TIMEOUT']);
    const err = r.errors[0] as MeshTimeoutError;
    expect(err).toBeInstanceOf(MeshTimeoutError);
    expect(err.scope).toBe('request');
    expect(err.timeoutMs).toBe(100);
    expect((err as { attempts?: number }).attempts).toBe(1);
    expect(at(0).c.aborted).toBe(true);
    expect(svc.retry.active).toBe(0);
  });

  it('each attempt carries the time left in x-meshwork-deadline', () => {
    const { send, at } = harness({ timeout: '1s' }, { random: () => 0.999 });
    send();
    expect(at(0).req.opts.headers['x-meshwork-deadline']).toBe('1000');
    at(0).answer(503); // backoff 24 ms
    vi.runOnlyPendingTimers();
    expect(at(1).req.opts.headers['x-meshwork-deadline']).toBe('976');
  });

  it('a perTryTimeout alone sets the header to the per-try time; the smaller of the two wins', () => {
    const a = harness({ retries: { perTryTimeout: '300ms' } });
    a.send();
    expect(a.at(0).req.opts.headers['x-meshwork-deadline']).toBe('300');
    const b = harness({ retries: { perTryTimeout: '300ms' }, timeout: '200ms' });
    b.send();
    expect(b.at(0).req.opts.headers['x-meshwork-deadline']).toBe('200');
  });

  it('an inbound deadline shorter than the timeout wins and is named as the deadline', () => {
    const { send, svc } = harness({ timeout: '1s' });
    const req = testRequest(svc);
    req.opts.headers['x-meshwork-deadline'] = '50';
    const r = send(req);
    vi.advanceTimersByTime(50);
    expect((r.errors[0] as MeshTimeoutError).scope).toBe('deadline');
    expect((r.errors[0] as MeshTimeoutError).timeoutMs).toBe(50);
  });

  it('an inbound deadline without a timeout of its own bounds the request', () => {
    const { send, at, svc } = harness();
    const req = testRequest(svc);
    req.opts.headers['x-meshwork-deadline'] = '80';
    const r = send(req);
    expect(at(0).req.opts.headers['x-meshwork-deadline']).toBe('80');
    vi.advanceTimersByTime(80);
    expect((r.errors[0] as MeshTimeoutError).scope).toBe('deadline');
  });

  it('a timeout shorter than the inbound deadline is the request’s own', () => {
    const { send, svc } = harness({ timeout: '40ms' });
    const req = testRequest(svc);
    req.opts.headers['x-meshwork-deadline'] = '500';
    const r = send(req);
    vi.advanceTimersByTime(40);
    expect((r.errors[0] as MeshTimeoutError).scope).toBe('request');
  });

  it('no time left at all: fails at once, nothing is sent', () => {
    const { send, sent, svc } = harness();
    const req = testRequest(svc);
    req.opts.headers['x-meshwork-deadline'] = '0';
    const r = send(req);
    expect(sent).toHaveLength(0);
    expect(r.calls).toEqual(['start', 'error MESHWORK_ERR_TIMEOUT']);
    expect((r.errors[0] as MeshTimeoutError).timeoutMs).toBe(0);
    expect(svc.retry.active).toBe(0);
  });

  it('no retry whose backoff would end at or after the deadline', () => {
    // backoff 200 ms base, random 0.5: the first retry waits 100 ms; the timeout is 100 ms.
    const a = harness({ timeout: '100ms', retries: { backoff: '200ms' } }, { random: () => 0.5 });
    const r = a.send();
    a.at(0).answer(503);
    expect(r.status).toBe(503);
    expect(a.sent).toHaveLength(1);
    // 101 ms: just fits.
    const b = harness({ timeout: '101ms', retries: { backoff: '200ms' } }, { random: () => 0.5 });
    const rb = b.send();
    b.at(0).answer(503);
    expect(rb.calls).toEqual(['start']);
    vi.advanceTimersByTime(100);
    expect(b.sent).toHaveLength(2);
  });

  it('a per-try timeout aborts the attempt; under retryOn 5xx it is retried, by default it ends the request', () => {
    const a = harness({ retries: { perTryTimeout: '50ms', retryOn: '5xx' } });
    const ra = a.send();
    vi.advanceTimersByTime(49);
    expect(a.at(0).c.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(a.at(0).c.aborted).toBe(true);
    const reason = a.at(0).c.reason as MeshTimeoutError;
    expect(reason.scope).toBe('per-try');
    expect(reason.timeoutMs).toBe(50);
    a.at(0).fail(reason); // the transport reports the abort
    vi.advanceTimersByTime(0);
    expect(a.sent).toHaveLength(2);
    a.at(1).answer(200);
    expect(ra.status).toBe(200);

    const b = harness({ retries: { perTryTimeout: '50ms' } });
    const rb = b.send();
    vi.advanceTimersByTime(50);
    b.at(0).fail(new Error('aborted')); // whatever the transport says, the timeout is the reason
    expect(rb.calls).toEqual(['start', 'error MESHWORK_ERR_TIMEOUT']);
    expect((rb.errors[0] as MeshTimeoutError).scope).toBe('per-try');
  });

  it('a per-try timeout while the attempt still waits (not started) ends it, and it is aborted if it ever starts', () => {
    const { send, at, sent } = harness({ retries: { perTryTimeout: '50ms' } }, { startAttempts: false });
    const r = send();
    vi.advanceTimersByTime(50);
    expect(r.calls).toEqual(['start', 'error MESHWORK_ERR_TIMEOUT']);
    expect(sent).toHaveLength(1);
    const late = new RecordingController();
    at(0).h.onRequestStart?.(late, {});
    expect(late.aborted).toBe(true);
    expect((late.reason as MeshTimeoutError).scope).toBe('per-try');
  });

  it('a per-try timeout is cleared when the answer comes', () => {
    const { send, at } = harness({ retries: { perTryTimeout: '50ms' } });
    const r = send();
    at(0).h.onResponseStart?.(at(0).c, 200, {}, '');
    vi.advanceTimersByTime(100);
    expect(at(0).c.aborted).toBe(false);
    at(0).h.onResponseEnd?.(at(0).c, {});
    expect(r.calls).toEqual(['start', 'headers 200', 'end']);
  });

  it('the request timer is cleared at the end', () => {
    const { send, at } = harness({ timeout: '100ms' });
    const r = send();
    at(0).answer(200);
    vi.advanceTimersByTime(1_000);
    expect(r.calls).toEqual(['start', 'headers 200', 'data', 'end']);
  });
});

describe('retry layer: retry limits', () => {
  it('maxRetries bounds the requests retrying at once; a request already retrying keeps its slot', () => {
    const { send, at, sent, svc } = harness({
      retries: { attempts: 3 },
      trafficPolicy: { connectionPool: { http: { maxRetries: 1 } } },
    });
    const r1 = send();
    const r2 = send();
    at(0).answer(503); // request 1 retries: holds the one slot
    at(1).answer(503); // request 2 may not
    expect(r2.status).toBe(503);
    expect(svc.retry.retryOverflows).toBe(1);
    expect(svc.retry.retrying).toBe(1);
    settle();
    expect(sent).toHaveLength(3);
    at(2).answer(503); // request 1 again: it holds the slot
    settle();
    expect(sent).toHaveLength(4);
    at(3).answer(200);
    expect(r1.status).toBe(200);
    expect(svc.retry.retrying).toBe(0);
    expect(svc.retry.active).toBe(0);
  });

  it('the retry budget refuses a retry: counted, the 503 is delivered', () => {
    const { send, at, sent, svc } = harness({ retryBudget: { retryPercent: 0, minRetriesPerSecond: 0 } });
    const r = send();
    at(0).answer(503);
    settle();
    expect(sent).toHaveLength(1);
    expect(r.status).toBe(503);
    expect(svc.telemetry.retryBudgetExhaustedCount).toBe(1);
  });

  it('a request deposits in the retry budget: with retryPercent 100 one retry per request is allowed', () => {
    const { send, at, sent, svc } = harness({
      retryBudget: { retryPercent: 100, minRetriesPerSecond: 0 },
      retries: { attempts: 2 },
    });
    const r = send();
    at(0).answer(503);
    settle();
    expect(sent).toHaveLength(2);
    at(1).answer(503);
    settle();
    expect(sent).toHaveLength(2);
    expect(r.status).toBe(503);
    expect(svc.telemetry.retryBudgetExhaustedCount).toBe(1);
  });
});

describe('retry layer: hedging', () => {
  const hedged = (extra: Record<string, unknown> = {}) =>
    harness({ retries: { hedge: { delay: '20ms', maxExtraLoad: 1 }, ...extra } });

  it('sends a backup after the delay, not before; the first answer wins and the loser drains, bounded', () => {
    const { send, at, sent, svc } = hedged();
    const req = testRequest(svc);
    const r = send(req);
    vi.advanceTimersByTime(19);
    expect(sent).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(sent).toHaveLength(2);
    // The backup avoids the first attempt's endpoint.
    expect([...(req.tried ?? [])].map((e) => e.address)).toEqual(['10.0.0.1:80']);
    expect(at(1).req.attempt).toBe(1);
    at(1).answer(200, {}, 'backup');
    expect(r.calls).toEqual(['start', 'headers 200', 'data', 'end']);
    // The loser runs on (its answer thrown away) for LOSER_DRAIN_MS, then is aborted.
    expect(at(0).c.aborted).toBe(false);
    at(0).h.onResponseStart?.(at(0).c, 200, {}, '');
    at(0).h.onResponseData?.(at(0).c, Buffer.from('late'));
    expect(r.calls).toEqual(['start', 'headers 200', 'data', 'end']);
    expect(at(0).c.aborted).toBe(false);
    vi.advanceTimersByTime(LOSER_DRAIN_MS);
    expect(at(0).c.aborted).toBe(true);
    expect(sent).toHaveLength(2);
  });

  it('a loser that never answers is aborted after LOSER_DRAIN_MS', () => {
    const { send, at } = hedged();
    send();
    vi.advanceTimersByTime(20);
    at(1).answer(200);
    vi.advanceTimersByTime(LOSER_DRAIN_MS - 1);
    expect(at(0).c.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(at(0).c.aborted).toBe(true);
    expect(at(0).c.reason).toBe(DISCARDED);
  });

  it('the loser’s drain is bounded by perTryTimeout when there is one', () => {
    const { send, at } = hedged({ perTryTimeout: '300ms' });
    send();
    vi.advanceTimersByTime(20);
    at(0).answer(200);
    vi.advanceTimersByTime(299);
    expect(at(1).c.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(at(1).c.aborted).toBe(true);
  });

  it('the first attempt winning stops the backup from being sent', () => {
    const { send, at, sent } = hedged();
    send();
    at(0).answer(200);
    vi.advanceTimersByTime(100);
    expect(sent).toHaveLength(1);
  });

  it('a retryable answer while a hedge runs is discarded and the other attempt is awaited', () => {
    const { send, at, sent } = hedged();
    const r = send();
    vi.advanceTimersByTime(20);
    at(0).answer(503);
    expect(at(0).c.aborted).toBe(true);
    expect(r.calls).toEqual(['start']);
    at(1).answer(200);
    expect(r.calls).toEqual(['start', 'headers 200', 'data', 'end']);
    expect(sent).toHaveLength(2);
  });

  it('an error while a hedge runs waits for the other attempt', () => {
    const { send, at } = hedged();
    const r = send();
    vi.advanceTimersByTime(20);
    at(1).fail(resetError());
    expect(r.calls).toEqual(['start']);
    at(0).answer(200);
    expect(r.status).toBe(200);
  });

  it('hedges count as attempts: at most `attempts` backups', () => {
    const { send, sent } = hedged({ attempts: 1 });
    send();
    vi.advanceTimersByTime(1_000);
    expect(sent).toHaveLength(2);
    // Enough budget (each request deposits, POSTs too, which never hedge): three backups.
    const b = hedged({ attempts: 3 });
    for (let i = 0; i < 5; i++) b.send(post(b.svc));
    b.send();
    vi.advanceTimersByTime(20);
    expect(b.sent).toHaveLength(7);
    vi.advanceTimersByTime(20);
    expect(b.sent).toHaveLength(8);
    vi.advanceTimersByTime(20);
    expect(b.sent).toHaveLength(9);
    vi.advanceTimersByTime(1_000);
    expect(b.sent).toHaveLength(9);
  });

  it('the hedge budget refuses backups beyond maxExtraLoad', () => {
    const { send, sent } = harness({ retries: { hedge: { delay: '20ms', maxExtraLoad: 0.01 } } });
    // The budget's allowance: 0.1 per second over 10 s (1 backup), plus 1% of requests.
    for (let i = 0; i < 5; i++) send();
    vi.advanceTimersByTime(20);
    expect(sent).toHaveLength(6);
  });

  it('the timeout, when it fires during hedging, aborts every attempt and counts them', () => {
    const { send, at } = harness({
      timeout: '100ms',
      retries: { hedge: { delay: '20ms', maxExtraLoad: 1 } },
    });
    const r = send();
    vi.advanceTimersByTime(100);
    expect(r.calls).toEqual(['start', 'error MESHWORK_ERR_TIMEOUT']);
    expect(at(0).c.aborted).toBe(true);
    expect(at(1).c.aborted).toBe(true);
    expect(at(2).c.aborted).toBe(true);
    expect((r.errors[0] as { attempts?: number }).attempts).toBe(3);
  });
});

describe('retry layer: the caller’s controller', () => {
  it('the caller’s abort reaches the running attempt, and the caller gets its own reason back', () => {
    const { svc, dispatch, sent } = harness();
    let ctl: { abort(e?: Error): void } | undefined;
    const r = recorder();
    const mine = new Error('mine');
    dispatch(testRequest(svc), {
      ...r,
      onRequestStart: (c) => {
        ctl = c;
      },
    });
    ctl?.abort(mine);
    expect(r.errors).toEqual([mine]);
    expect((mine as { attempts?: number }).attempts).toBeUndefined();
    expect(sent[0]?.c.aborted).toBe(true);
    expect(svc.retry.active).toBe(0);
  });

  it('an abort without a reason is a MeshAbortedError', () => {
    const { svc, dispatch } = harness();
    let ctl: { abort(e?: Error): void } | undefined;
    const r = recorder();
    dispatch(testRequest(svc), {
      ...r,
      onRequestStart: (c) => {
        ctl = c;
      },
    });
    (ctl as { abort(): void }).abort();
    expect(r.calls).toEqual(['error MESHWORK_ERR_ABORTED']);
  });

  it('a signal aborted before the start sends nothing; one aborted later aborts the attempt', () => {
    const a = harness();
    const req = testRequest(a.svc);
    const ac = new AbortController();
    const why = new Error('gone');
    ac.abort(why);
    (req.opts as { signal?: AbortSignal }).signal = ac.signal;
    const r = a.send(req);
    expect(a.sent).toHaveLength(0);
    expect(r.errors).toEqual([why]);

    const b = harness();
    const req2 = testRequest(b.svc);
    const ac2 = new AbortController();
    (req2.opts as { signal?: AbortSignal }).signal = ac2.signal;
    const r2 = b.send(req2);
    expect(b.sent).toHaveLength(1);
    expect(b.at(0).req).not.toBe(req2); // the attempt has no signal of its own
    expect((b.at(0).req.opts as { signal?: unknown }).signal).toBeUndefined();
    ac2.abort(why);
    expect(r2.errors).toEqual([why]);
    expect(b.at(0).c.aborted).toBe(true);
  });

  it('the signal’s listener is removed at the end', () => {
    const { send, at, svc } = harness();
    const req = testRequest(svc);
    const ac = new AbortController();
    (req.opts as { signal?: AbortSignal }).signal = ac.signal;
    const r = send(req);
    at(0).answer(200);
    ac.abort(new Error('late'));
    expect(r.calls).toEqual(['start', 'headers 200', 'data', 'end']);
  });

  it('pause before the answer reaches the winner; pause and resume after it go to the winner', () => {
    const { svc, dispatch, at } = harness();
    let ctl: { pause(): void; resume(): void; rawHeaders?: unknown } | undefined;
    const r = recorder();
    dispatch(testRequest(svc), {
      ...r,
      onRequestStart: (c) => {
        ctl = c;
        c.pause();
      },
    });
    at(0).c.rawHeaders = [Buffer.from('x-a'), Buffer.from('1')];
    at(0).h.onResponseStart?.(at(0).c, 200, {}, '');
    expect(at(0).c.paused).toBe(true);
    expect(ctl?.rawHeaders).toBe(at(0).c.rawHeaders);
    ctl?.resume();
    expect(at(0).c.paused).toBe(false);
    ctl?.pause();
    expect(at(0).c.paused).toBe(true);
  });

  it('a body that breaks after the headers is delivered as an error, not retried', () => {
    const { send, at, sent } = harness({ retries: { retryOn: 'reset,5xx' } });
    const r = send();
    at(0).h.onResponseStart?.(at(0).c, 200, {}, '');
    at(0).h.onResponseError?.(at(0).c, resetError());
    settle();
    expect(sent).toHaveLength(1);
    expect(r.calls).toEqual(['start', 'headers 200', 'error UND_ERR_SOCKET']);
  });

  it('an upgrade is delivered to the caller', () => {
    const { send, at, svc } = harness();
    const r = send();
    at(0).h.onRequestUpgrade?.(at(0).c, 101, {}, {} as never);
    expect(r.calls).toEqual(['start', 'upgrade']);
    expect(svc.retry.active).toBe(0);
  });
});

describe('retry layer: more edges', () => {
  it('the request’s own headers are not changed by the deadline header of its attempts', () => {
    const { send, at, svc } = harness({ timeout: '1s' });
    const req = testRequest(svc);
    send(req);
    expect(at(0).req.opts.headers['x-meshwork-deadline']).toBe('1000');
    expect(req.opts.headers['x-meshwork-deadline']).toBeUndefined();
  });

  it('an attempt that got headers and then broke is counted once', () => {
    const { send, at } = harness();
    const r = send();
    at(0).h.onResponseStart?.(at(0).c, 200, {}, '');
    at(0).h.onResponseError?.(at(0).c, resetError());
    expect((r.errors[0] as { attempts?: number }).attempts).toBe(1);
    expect((r.errors[0] as { endpoint?: string }).endpoint).toBe('10.0.0.1:80');
  });

  it('an attempt that never reached an endpoint is not counted', () => {
    const { send } = harness(
      { retries: { perTryTimeout: '50ms' } },
      { startAttempts: false, endpoints: false },
    );
    const r = send();
    vi.advanceTimersByTime(50);
    const err = r.errors[0] as { attempts?: number; endpoint?: string };
    expect(err.attempts).toBe(0);
    expect(err.endpoint).toBeUndefined();
  });

  it('the budget’s refusal is published with the attempt it refused and the reason', () => {
    const events: unknown[] = [];
    const ch = channel('meshwork:retry_budget:exhausted');
    const sub = (m: unknown) => events.push(m);
    ch.subscribe(sub);
    try {
      const { send, at } = harness({ retryBudget: { retryPercent: 0, minRetriesPerSecond: 0 } });
      send();
      at(0).answer(503);
      expect(events).toEqual([{ service: 'svc', attempt: 1, reason: '503' }]);
    } finally {
      ch.unsubscribe(sub);
    }
  });

  it('no hedge during a backoff: the retry’s own launch arms it again', () => {
    const { send, at, sent } = harness(
      { retries: { hedge: { delay: '20ms', maxExtraLoad: 1 } } },
      { random: () => 0.999 },
    );
    send();
    vi.advanceTimersByTime(5);
    at(0).answer(503); // backoff 24 ms: the retry goes at 29 ms
    vi.advanceTimersByTime(20); // 25 ms: the hedge (due at 20 ms) was cancelled
    expect(sent).toHaveLength(1);
    vi.advanceTimersByTime(4);
    expect(sent).toHaveLength(2);
    vi.advanceTimersByTime(20); // the retry's hedge
    expect(sent).toHaveLength(3);
  });

  it('a hedge still waiting to start when another attempt wins is aborted the moment it starts', () => {
    const { send, at } = harness(
      { retries: { hedge: { delay: '20ms', maxExtraLoad: 1 } } },
      { startAttempts: (i) => i === 0 },
    );
    const r = send();
    vi.advanceTimersByTime(20);
    at(0).answer(200);
    expect(r.status).toBe(200);
    const late = new RecordingController();
    at(1).h.onRequestStart?.(late, {});
    expect(late.aborted).toBe(true);
    expect(late.reason).toBe(DISCARDED);
  });

  it('a discarded attempt’s upgrade, error or data never reach the caller', () => {
    const { send, at } = harness({ retries: { hedge: { delay: '20ms', maxExtraLoad: 1 } } });
    const r = send();
    vi.advanceTimersByTime(20);
    at(1).answer(200);
    at(0).h.onRequestUpgrade?.(at(0).c, 101, {}, {} as never);
    at(0).h.onResponseData?.(at(0).c, Buffer.from('x'));
    at(0).h.onResponseError?.(at(0).c, resetError());
    expect(r.calls).toEqual(['start', 'headers 200', 'data', 'end']);
  });

  it('a route’s policy (set by routing) wins over the service’s; per-call overrides win over both', () => {
    const a = harness({ retries: { attempts: 3 } });
    const req = testRequest(a.svc);
    req.retryPolicy = { ...a.svc.retry.policy, attempts: 0 };
    const r = a.send(req);
    a.at(0).answer(503);
    settle();
    expect(a.sent).toHaveLength(1);
    expect(r.status).toBe(503);

    const b = harness({ retries: { attempts: 3 } });
    const req2 = testRequest(b.svc);
    (req2 as { call: unknown }).call = { retries: { attempts: 0 } };
    b.send(req2);
    b.at(0).answer(503);
    settle();
    expect(b.sent).toHaveLength(1);
    expect(withCallOverrides(b.svc.retry.policy, { timeoutMs: 5 } as never).timeoutMs).toBe(5);
  });
});
