import { isReplayable } from '../http/body-layer.ts';
import {
  type Dispatch,
  type DispatchController,
  type DispatchHandler,
  type Layer,
  type MeshRequest,
  newMeshRequest,
  type ServiceView,
} from '../pipeline.ts';
import { compileRetryPolicy } from '../retry/policy.ts';
import { wantsTls } from '../tls/scheme.ts';
import type { Random } from './destination.ts';
import { MirrorGate, shadowAuthority, shouldMirror, startMirror } from './mirror.ts';
import type { Destination } from './schema.ts';

/**
 * Mirroring (`mirror` + `mirrorPercentage`, or several `mirrors`): after the main request has been handed on, a copy
 * goes fire-and-forget to the mirror service (Host gets "-shadow", as Envoy does). The copy takes
 * a slot of a bounded gate or is dropped; it is aborted after a bound; its answer is discarded;
 * it never delays or fails the main request. Only bodies that can be sent twice are mirrored
 * (none, string, Buffer/Uint8Array): a stream is read once, by the main request. An https://
 * request is not copied to a mirror service without TLS.
 */
export function mirrorLayer(
  services: ReadonlyMap<string, ServiceView>,
  gate: MirrorGate = new MirrorGate(),
  random: Random = Math.random,
): Layer {
  return (next) => (req, handler) => {
    const cfg = req.route?.route.config;
    if (
      cfg === undefined ||
      (cfg.mirror === undefined && cfg.mirrors === undefined) ||
      !isReplayable(req.opts.body)
    ) {
      return next(req, handler);
    }
    // `mirror` + `mirrorPercentage`, or several `mirrors`, each with its own percentage (Istio).
    const copies: MeshRequest[] = [];
    const consider = (dest: Destination, percentage: number | undefined) => {
      if (!shouldMirror(percentage, random)) return;
      const target = (req.services ?? services).get(dest.host ?? req.service.name) as ServiceView;
      // An https:// request is never copied in cleartext.
      if (target.tls === undefined && wantsTls(req.opts.origin)) return;
      copies.push(mirrorRequest(req, target, dest.subset, dest.port?.number));
    };
    if (cfg.mirror !== undefined) consider(cfg.mirror, cfg.mirrorPercentage?.value);
    for (const m of cfg.mirrors ?? []) consider(m.destination, m.percentage?.value);
    next(req, handler);
    for (const copy of copies) startMirror(gate, (signal) => sendDiscarding(next, copy, signal));
  };
}

/** Copies are never retried (and never hedged): a shadow gets one try. */
const NO_RETRY = compileRetryPolicy({ retries: { attempts: 0 } });

function mirrorRequest(
  req: MeshRequest,
  service: ServiceView,
  subset: string | undefined,
  port: number | undefined,
): MeshRequest {
  const headers = { ...req.opts.headers };
  // The copy is bounded by the mirror's own signal, never by the caller's.
  const { signal: _callerSignal, ...opts } = req.opts as typeof req.opts & { signal?: unknown };
  headers.host = shadowAuthority(typeof headers.host === 'string' ? headers.host : req.authority);
  return newMeshRequest(service, { ...opts, headers }, req.authority, req.startedAt, {
    retryPolicy: NO_RETRY,
    subset,
    services: req.services,
    port,
  });
}

/** Sends a request through the rest of the stack and throws its answer away. */
function sendDiscarding(next: Dispatch, req: MeshRequest, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let controller: DispatchController | undefined;
    const onAbort = () => controller?.abort(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    const done = (err?: Error) => {
      signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    };
    const handler: DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (signal.aborted) c.abort(signal.reason as Error);
      },
      onResponseStart() {},
      onResponseData() {},
      onResponseEnd() {
        done();
      },
      onResponseError(_c, err) {
        done(err);
      },
    };
    next(req, handler);
  });
}
