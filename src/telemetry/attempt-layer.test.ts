import { describe, expect, it } from 'vitest';
import { endpointsOf, recorder, testRequest, testService } from '../../test/support/layers.ts';
import type { Endpoint } from '../balancer/endpoint.ts';
import { attemptLayer } from './attempt-layer.ts';

describe('attempt layer', () => {
  it('tells the request observer about every attempt, with its endpoint and number', () => {
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
      noteAttempt: (e: Endpoint, n: number) => noted.push([e.address, n]),
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
    let sent = 0;
    attemptLayer()(() => {
      sent++;
    })(ep as Endpoint, testRequest(svc), recorder());
    expect(sent).toBe(1);
  });
});
