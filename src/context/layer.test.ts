import { describe, expect, it } from 'vitest';
import { fakeClock, recorder, testRequest, testService } from '../../test/support/layers.ts';
import { validateConfig } from '../config/load.ts';
import type { MeshRequest } from '../pipeline.ts';
import { silentLogger } from '../telemetry/logger.ts';
import { contextLayer } from './layer.ts';
import { ContextRuntime } from './runtime.ts';

function runtime() {
  const config = validateConfig({ services: {} });
  return new ContextRuntime(config.context, config.authorization, {
    clock: fakeClock(),
    logger: silentLogger,
  });
}

describe('context layer', () => {
  it("adds the current context's headers to the outbound request; the caller's own header wins", () => {
    const rt = runtime();
    const svc = testService();
    const req = testRequest(svc);
    req.opts.headers['x-api-plan'] = 'set-by-caller';
    let seen: MeshRequest | undefined;
    const ctx = rt.fromInit({ headers: { 'x-api-app': 'travelz', 'x-api-plan': 'partner' } });
    rt.run(ctx, () =>
      contextLayer(rt)((r) => {
        seen = r;
      })(req, recorder()),
    );
    expect(seen?.opts.headers['x-api-app']).toBe('travelz');
    expect(seen?.opts.headers['x-api-plan']).toBe('set-by-caller');
  });

  it('without any context adds nothing', () => {
    const rt = runtime();
    const svc = testService();
    const req = testRequest(svc);
    const before = { ...req.opts.headers };
    contextLayer(rt)(() => {})(req, recorder());
    expect(req.opts.headers).toEqual(before);
  });
});
