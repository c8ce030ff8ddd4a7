// A mesh assembled by hand from the real parts (ServiceRuntime, MeshDispatcher, telemetry,
// balance, attempt and load layers), with extra request layers slotted in where retry
// goes. Lets telemetry tests drive the event API the way those layers do.
import { balance } from '../../src/balancer/balance-layer.ts';
import { validateConfig } from '../../src/config/load.ts';
import { MeshDispatcher } from '../../src/dispatcher.ts';
import { loadLayer } from '../../src/endpoint/load-layer.ts';
import type { DispatchHandler, Layer } from '../../src/pipeline.ts';
import { ServiceRuntime } from '../../src/service.ts';
import { sendToPool } from '../../src/stack.ts';
import { attemptLayer } from '../../src/telemetry/attempt-layer.ts';
import { type Logger, silentLogger } from '../../src/telemetry/logger.ts';
import { telemetryLayer } from '../../src/telemetry/telemetry-layer.ts';

export interface MiniMesh {
  svc: ServiceRuntime;
  dispatcher: MeshDispatcher;
  close(): Promise<void>;
}

export function miniMesh(
  name: string,
  addresses: string[],
  opts: { layers?: Layer[]; logger?: Logger } = {},
): MiniMesh {
  const clock = () => performance.now();
  const config = validateConfig({ services: { [name]: { discovery: { static: addresses } } } });
  const svc = new ServiceRuntime(name, config.services[name] as never, {
    clock,
    logger: opts.logger ?? silentLogger,
    zone: undefined,
    env: {},
  });
  svc.start();
  let dispatch = balance(attemptLayer()(loadLayer(clock)(sendToPool)), clock);
  for (const layer of [...(opts.layers ?? [])].reverse()) dispatch = layer(dispatch);
  dispatch = telemetryLayer(clock)(dispatch);
  const dispatcher = new MeshDispatcher({
    services: new Map([[name, svc]]),
    stack: dispatch,
    clock,
    unknownServices: 'reject',
    onClose: async () => {},
  });
  return {
    svc,
    dispatcher,
    async close() {
      await dispatcher.shutdownOwn(true);
      await svc.close(0);
    },
  };
}

/**
 * A minimal retry layer that behaves toward telemetry as the real one does: on a 503 from the first
 * attempt it drops that response, reports the retry through `req.service.telemetry.retry`,
 * and sends attempt 1.
 */
export const retryOn503: Layer = (next) => (req, handler) => {
  const send = (n: number) => {
    req.attempt = n;
    let swallow = false;
    const h: DispatchHandler = {
      onRequestStart: (c, ctx) => {
        if (n === 0) handler.onRequestStart?.(c, ctx);
      },
      onResponseStart: (c, status, headers, msg) => {
        if (status === 503 && n === 0) swallow = true;
        else handler.onResponseStart?.(c, status, headers, msg);
      },
      onResponseData: (c, chunk) => {
        if (!swallow) handler.onResponseData?.(c, chunk);
      },
      onResponseEnd: (c, trailers) => {
        if (!swallow) {
          handler.onResponseEnd?.(c, trailers);
          return;
        }
        req.service.telemetry.retry({ req, attempt: 1, reason: '5xx', delayMs: 0 });
        send(1);
      },
      onResponseError: (c, err) => handler.onResponseError?.(c, err),
    };
    next(req, h);
  };
  send(0);
};
