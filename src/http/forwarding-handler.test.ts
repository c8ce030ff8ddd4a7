import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { DispatchController, DispatchHandler } from '../pipeline.ts';
import { ForwardingHandler } from './forwarding-handler.ts';

const controller = {} as DispatchController;

function recording(): { handler: DispatchHandler; calls: string[] } {
  const calls: string[] = [];
  const handler: DispatchHandler = {
    onRequestStart: () => calls.push('start'),
    onResponseStart: () => calls.push('headers'),
    onResponseData: () => calls.push('data'),
    onResponseEnd: () => calls.push('end'),
    onResponseError: () => calls.push('error'),
    onRequestUpgrade: () => calls.push('upgrade'),
  };
  return { handler, calls };
}

describe('ForwardingHandler', () => {
  it('forwards every callback until the response ends, then nothing (it has let go of the handler)', () => {
    const { handler, calls } = recording();
    const f = new ForwardingHandler(handler);
    f.onRequestStart(controller, {});
    f.onResponseStart(controller, 200, {}, 'OK');
    f.onResponseData(controller, Buffer.from('x'));
    f.onResponseEnd(controller, {});
    f.onResponseData(controller, Buffer.from('late'));
    f.onResponseError(controller, new Error('late'));
    expect(calls).toEqual(['start', 'headers', 'data', 'end']);
  });

  it('lets go after an error and after an upgrade too', () => {
    const a = recording();
    const fa = new ForwardingHandler(a.handler);
    fa.onResponseError(controller, new Error('reset'));
    fa.onResponseEnd(controller, {});
    expect(a.calls).toEqual(['error']);
    const b = recording();
    const fb = new ForwardingHandler(b.handler);
    fb.onRequestUpgrade(controller, 101, {}, new Duplex());
    fb.onResponseEnd(controller, {});
    expect(b.calls).toEqual(['upgrade']);
  });
});
