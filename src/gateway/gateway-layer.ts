import type { EndpointLayer } from '../pipeline.ts';

/**
 * For a service behind another mesh's gateway in AUTO_PASSTHROUGH mode: the attempt's TLS server
 * name becomes the route through that gateway, `outbound_.<port>_.<subset>_.<host>`, which the
 * gateway reads to pass the connection, still encrypted, to a workload of that subset. The
 * endpoint is the gateway's address; the TLS connector (src/tls/client.ts) sends the name and
 * verifies the remote workload's identity; the endpoint keeps a pool per name. Other services,
 * and TERMINATE gateways (TLS to the gateway, the Host header routes), pass straight through.
 */
export function gatewayLayer(): EndpointLayer {
  return (next) => (ep, req, handler) => {
    const gw = req.service.gateway;
    if (gw !== undefined && gw.mode === 'AUTO_PASSTHROUGH') req.opts.servername = gw.sni(req);
    next(ep, req, handler);
  };
}
