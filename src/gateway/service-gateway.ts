import type { MeshRequest } from '../pipeline.ts';
import { wantsTls } from '../tls/scheme.ts';
import { passthroughSni } from './config.ts';
import type { GatewayConfig } from './schema.ts';

/** Most SNI names one service keeps made (subset x port pairs; a config names few). */
const SNI_CACHE_MAX = 256;

/**
 * A service's gateway (`services.<name>.gateway`), as the layers see it: its mode, and for
 * AUTO_PASSTHROUGH the SNI of each request's route through the remote gateway.
 */
export class ServiceGateway {
  readonly mode: GatewayConfig['mode'];
  /** The service's host name in the remote mesh (the SNI's last part). */
  readonly host: string;
  readonly #port: number | undefined;
  readonly #names = new Map<string, string>();

  constructor(service: string, config: GatewayConfig) {
    this.mode = config.mode;
    this.host = config.host ?? service;
    this.#port = config.port;
  }

  /**
   * `outbound_.<port>_.<subset>_.<host>`: the port is the route's `destination.port.number`, else
   * `gateway.port`, else the URL's port (80, or 443 for https://); the subset is routing's.
   */
  sni(req: MeshRequest): string {
    const port = req.port ?? this.#port ?? urlPort(req);
    const key = `${port}|${req.subset ?? ''}`;
    let name = this.#names.get(key);
    if (name === undefined) {
      name = passthroughSni(port, req.subset, this.host);
      if (this.#names.size >= SNI_CACHE_MAX) this.#names.clear();
      this.#names.set(key, name);
    }
    return name;
  }
}

function urlPort(req: MeshRequest): number {
  const m = /:(\d+)$/.exec(req.authority);
  if (m) return Number(m[1]);
  return wantsTls(req.opts.origin) ? 443 : 80;
}
