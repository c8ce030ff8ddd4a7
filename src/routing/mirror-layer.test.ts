import { describe, expect, it } from 'vitest';
import { recorder, testRequest, testService } from '../../test/support/layers.ts';
import type { MeshRequest } from '../pipeline.ts';
import { routingLayer } from './layer.ts';
import { MirrorGate } from './mirror.ts';
import { mirrorLayer } from './mirror-layer.ts';

function setup(mirrorPercentage?: number, gate = new MirrorGate()) {
  const svc = testService({
    http: [
      {
        route: [{ destination: {} }],
        mirror: { host: 'svc' },
        ...(mirrorPercentage === undefined ? {} : { mirrorPercentage: { value: mirrorPercentage } }),
      },
    ],
  });
  const services = new Map([['svc', svc]]);
  const sent: MeshRequest[] = [];
  const dispatch = routingLayer(
    services,
    () => 0.5,
  )(
    mirrorLayer(
      services,
      gate,
      () => 0.5,
    )((req, h) => {
      sent.push(req);
      h.onRequestStart?.(
        { abort() {}, pause() {}, resume() {}, aborted: false, paused: false, reason: null },
        {},
      );
      h.onResponseStart?.(undefined as never, 200, {}, '');
      h.onResponseEnd?.(undefined as never, {});
    }),
  );
  return { svc, sent, dispatch, gate };
}

describe('mirror layer', () => {
  it('sends the main request, then a copy with a -shadow Host that is never retried', async () => {
    const { svc, sent, dispatch, gate } = setup();
    const r = recorder();
    dispatch(testRequest(svc, { method: 'POST' }), r);
    await new Promise((res) => setImmediate(res));
    expect(sent).toHaveLength(2);
    expect(sent[0]?.opts.headers.host).toBe('svc');
    expect(sent[1]?.opts.headers.host).toBe('svc-shadow');
    expect(sent[1]?.retryPolicy?.attempts).toBe(0);
    expect(r.calls).toEqual(['start', 'headers 200', 'end']);
    expect(gate.inFlight).toBe(0);
  });

  it('mirrors only the configured share, and drops copies when the gate is full', () => {
    const low = setup(10);
    low.dispatch(testRequest(low.svc), recorder());
    expect(low.sent).toHaveLength(1); // draw 0.5 * 100 = 50 >= 10: no copy
    const full = setup(undefined, new MirrorGate(0));
    full.dispatch(testRequest(full.svc), recorder());
    expect(full.sent).toHaveLength(1);
    expect(full.gate.dropped).toBe(1);
  });
});
