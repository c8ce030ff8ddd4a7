import { describe, expect, it } from 'vitest';
import { fakeClock, recorder, testRequest, testService } from '../../test/support/layers.ts';
import { validateConfig } from '../config/load.ts';
import type { MeshRequest } from '../pipeline.ts';
import { silentLogger } from '../telemetry/logger.ts';
import { propagateLayer } from './propagate-layer.ts';
import { ContextRuntime } from './runtime.ts';

function runtime() {
  const config = validateConfig({
    context: { headers: ['x-app', 'x-plan'], trust: { signature: { hmacSecret: 'a-secret-of-16-chars' } } },
    services: {},
  });
  return new ContextRuntime(config.context, config.authorization, {
    clock: fakeClock(),
    logger: silentLogger,
  });
}

const HEADERS = {
  'x-app': 'travelz',
  'x-plan': 'partner',
  'x-meshwork-context-token': 'e.y.j',
  baggage: 'k=v',
  traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  'x-meshwork-deadline': '900',
  'x-other': 'kept',
};

function sent(cfg: Record<string, unknown>): Record<string, unknown> | undefined {
  const svc = testService(cfg);
  const req = testRequest(svc);
  Object.assign(req.opts.headers, HEADERS);
  let seen: MeshRequest | undefined;
  propagateLayer(runtime())((r) => {
    seen = r;
  })(req, recorder());
  return seen?.opts.headers;
}

describe('propagate layer (services.<name>.context.propagate)', () => {
  it('a service of this mesh gets every gateway context header by default', () => {
    expect(sent({})).toMatchObject(HEADERS);
  });

  it('propagate: false strips the gateway context (headers, token, baggage), never the trace or the deadline', () => {
    const h = sent({ context: { propagate: false } });
    for (const k of ['x-app', 'x-plan', 'x-meshwork-context-token', 'baggage'])
      expect(h?.[k]).toBeUndefined();
    expect(h).toMatchObject({
      traceparent: HEADERS.traceparent,
      'x-meshwork-deadline': '900',
      'x-other': 'kept',
    });
  });

  it('a list carries only the headers it names', () => {
    const h = sent({ context: { propagate: ['X-Plan'] } });
    expect(h?.['x-plan']).toBe('partner');
    expect(h?.['x-app']).toBeUndefined();
    expect(h?.baggage).toBeUndefined();
  });
});
