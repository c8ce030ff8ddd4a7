import { context, propagation } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { isTracingSuppressed, W3CTraceContextPropagator } from '@opentelemetry/core';
import { describe, expect, it } from 'vitest';
import { endpointsOf, recorder, testRequest, testService } from '../../test/support/layers.ts';
import type { Endpoint } from '../balancer/endpoint.ts';
import type { EndpointDispatch } from '../pipeline.ts';
import { attemptLayer } from './attempt-layer.ts';

describe('attempt layer', () => {
  it('hands every attempt to the request observer, which sends it on', () => {
    const svc = testService();
    const [ep] = endpointsOf(svc);
    if (!ep) throw new Error('no endpoint');
    const noted: [string, number][] = [];
    const req = testRequest(svc);
    req.attempt = 2;
    req.telemetry = {
      span: undefined,
      noteRoute() {},
      noteRetry() {},
      attempt: (e: Endpoint, r, h, next: EndpointDispatch) => {
        noted.push([e.address, r.attempt]);
        next(e, r, h);
      },
    };
    let sent = 0;
    attemptLayer()(() => {
      sent++;
    })(ep, req, recorder());
    expect(noted).toEqual([[ep.address, 2]]);
    expect(sent).toBe(1);
  });

  it('costs nothing when nothing observes the request', () => {
    const svc = testService();
    const [ep] = endpointsOf(svc);
    const r = recorder();
    let passed: unknown;
    attemptLayer()((_ep, _req, h) => {
      passed = h;
    })(ep as Endpoint, testRequest(svc), r);
    expect(passed).toBe(r);
  });

  it('with a propagator registered, sends a request nothing observes (a mirrored copy) with tracing suppressed', () => {
    const svc = testService();
    const [ep] = endpointsOf(svc);
    const seen: boolean[] = [];
    const layer = attemptLayer()(() => {
      seen.push(isTracingSuppressed(context.active()));
    });
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    try {
      layer(ep as Endpoint, testRequest(svc), recorder());
      propagation.setGlobalPropagator(new W3CTraceContextPropagator());
      layer(ep as Endpoint, testRequest(svc), recorder());
    } finally {
      propagation.disable();
      context.disable();
    }
    expect(seen).toEqual([false, true]);
  });
});
