import diagnostics from 'node:diagnostics_channel';
import { describe, expect, it } from 'vitest';
import {
  answer,
  fail,
  fakeClock,
  recorder,
  resetError,
  testRequest,
  testService,
} from '../../test/support/layers.ts';
import type { RequestMessage } from './channels.ts';
import { CHANNELS } from './channels.ts';
import { telemetryLayer } from './telemetry-layer.ts';

describe('telemetry layer', () => {
  it('passes straight through when nothing observes requests', () => {
    const svc = testService();
    const req = testRequest(svc);
    const r = recorder();
    let passed: unknown;
    telemetryLayer(fakeClock())((_req, h) => {
      passed = h;
    })(req, r);
    expect(passed).toBe(r);
    expect(req.telemetry).toBeUndefined();
  });

  it('publishes one end or error message per request with its status, attempts and duration', () => {
    const clock = fakeClock();
    const svc = testService({}, undefined, clock);
    const ends: RequestMessage[] = [];
    const errors: RequestMessage[] = [];
    const onEnd = (m: unknown) => ends.push(m as RequestMessage);
    const onError = (m: unknown) => errors.push(m as RequestMessage);
    diagnostics.subscribe(CHANNELS.requestEnd, onEnd);
    diagnostics.subscribe(CHANNELS.requestError, onError);
    try {
      const layer = telemetryLayer(clock);
      layer((_req, h) => {
        clock.advance(12);
        answer(h, 201);
      })(testRequest(svc, { startedAt: clock() }), recorder());
      layer((_req, h) => fail(h, resetError()))(testRequest(svc), recorder());
    } finally {
      diagnostics.unsubscribe(CHANNELS.requestEnd, onEnd);
      diagnostics.unsubscribe(CHANNELS.requestError, onError);
    }
    expect(ends).toHaveLength(1);
    expect(ends[0]).toMatchObject({ service: 'svc', statusCode: 201, durationMs: 12 });
    expect(errors).toHaveLength(1);
    expect(errors[0]?.error?.message).toBe('other side closed');
  });
});
