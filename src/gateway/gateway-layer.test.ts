import { describe, expect, it } from 'vitest';
import { endpointsOf, recorder, testRequest, testService } from '../../test/support/layers.ts';
import type { MeshRequest, ServiceView } from '../pipeline.ts';
import { gatewayLayer } from './gateway-layer.ts';
import { ServiceGateway } from './service-gateway.ts';

function behind(config: ConstructorParameters<typeof ServiceGateway>[1]) {
  const svc = testService();
  const view: ServiceView = Object.assign(Object.create(svc), {
    gateway: new ServiceGateway('reviews', config),
  });
  return { svc, view };
}

function run(req: MeshRequest): MeshRequest | undefined {
  let seen: MeshRequest | undefined;
  const ep = endpointsOf(testService())[0];
  if (ep === undefined) throw new Error('no endpoint');
  gatewayLayer()((_ep, r) => {
    seen = r;
  })(ep, req, recorder());
  return seen;
}

describe('gateway layer', () => {
  it("AUTO_PASSTHROUGH: the attempt's server name is Istio's route, subset and port from routing", () => {
    const { svc, view } = behind({
      mode: 'AUTO_PASSTHROUGH',
      address: 'gw:15443',
      host: 'reviews.ns.svc.west.local',
    });
    const req = testRequest(svc);
    req.service = view;
    expect(run(req)?.opts.servername).toBe('outbound_.80_._.reviews.ns.svc.west.local');
    req.subset = 'v2';
    req.port = 9080;
    expect(run(req)?.opts.servername).toBe('outbound_.9080_.v2_.reviews.ns.svc.west.local');
  });

  it('gateway.port when routing names none; the service name when no host is given', () => {
    const { svc, view } = behind({ mode: 'AUTO_PASSTHROUGH', address: 'gw:15443', port: 9443 });
    const req = testRequest(svc);
    req.service = view;
    expect(run(req)?.opts.servername).toBe('outbound_.9443_._.reviews');
  });

  it('TERMINATE and services without a gateway: the server name is left alone', () => {
    const { svc, view } = behind({ mode: 'TERMINATE', address: 'gw:443' });
    const req = testRequest(svc);
    req.service = view;
    expect(run(req)?.opts.servername).toBeUndefined();
    const plain = testRequest(svc);
    expect(run(plain)?.opts.servername).toBeUndefined();
  });
});
