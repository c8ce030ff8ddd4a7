import { describe, expect, it } from 'vitest';
import { endpointsOf, recorder, testRequest, testService } from '../../test/support/layers.ts';
import type { Endpoint } from '../balancer/endpoint.ts';
import { triedLayer } from './tried-layer.ts';

describe('tried layer', () => {
  it("records the attempt's endpoint on the request and in its tried set, before sending", () => {
    const svc = testService();
    const [ep] = endpointsOf(svc);
    if (!ep) throw new Error('no endpoint');
    const req = testRequest(svc);
    req.tried = new Set<Endpoint>();
    let seenAtSend: Endpoint | undefined;
    triedLayer()((_ep, r) => {
      seenAtSend = r.endpoint;
    })(ep, req, recorder());
    expect(seenAtSend).toBe(ep);
    expect(req.endpoint).toBe(ep);
    expect(req.tried.has(ep)).toBe(true);
  });
});
