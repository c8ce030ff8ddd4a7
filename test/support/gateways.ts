/**
 * The gateways between two meshes, for the cross-mesh tests: HAProxy (Debian's) in TCP mode,
 * passing TLS through on the SNI as Istio's east-west gateway does (AUTO_PASSTHROUGH), and a small
 * node TLS-terminating proxy that forwards by Host (TERMINATE).
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { runHaproxy } from '../../bench/support/haproxy.ts';

export interface RunningGateway {
  address: string;
  stop(): Promise<void>;
}

/** Why haproxy cannot run here, or undefined when it can. */
export function haproxyMissing(): string | undefined {
  const r = spawnSync('haproxy', ['-v'], { encoding: 'utf8', timeout: 5000 });
  return r.status === 0 ? undefined : `haproxy is not installed (${r.error?.message ?? `exit ${r.status}`})`;
}

/**
 * The HAProxy config of an SNI-routing passthrough gateway: TLS is never terminated; the
 * ClientHello's SNI (`req.ssl_sni`) picks the backend; an SNI it does not know gets no backend,
 * so the connection is closed.
 */
export function sniPassthroughConfig(port: number, routes: Record<string, string>): string {
  const names = Object.keys(routes);
  return [
    'global',
    '  maxconn 1024',
    '',
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 30s',
    '  timeout server 30s',
    '',
    'frontend eastwest',
    `  bind 127.0.0.1:${port}`,
    '  tcp-request inspect-delay 5s',
    '  tcp-request content accept if { req_ssl_hello_type 1 }',
    ...names.map((sni, i) => `  use_backend route${i} if { req.ssl_sni -i ${sni} }`),
    '',
    ...names.flatMap((sni, i) => [`backend route${i}`, `  server s${i} ${routes[sni]}`, '']),
  ].join('\n');
}

/** Starts haproxy in the foreground as an SNI passthrough gateway. Bounded: 10 s to accept. */
export async function startSniGateway(routes: Record<string, string>): Promise<RunningGateway> {
  const haproxy = await runHaproxy((port) => sniPassthroughConfig(port, routes));
  return { address: haproxy.address, stop: haproxy.stop };
}

export interface Terminated {
  host: string | undefined;
  sni: string | false | null | undefined;
  /** The URI SAN of the client certificate the gateway verified, or null. */
  client: string | null;
}

/**
 * A TLS-terminating gateway: takes TLS (its own certificate; client certificates when
 * `requestCert`), then forwards the request in cleartext to the backend its Host names, Host
 * unchanged; a Host it does not know gets 404.
 */
export async function startTerminatingGateway(
  tls: ServerOptions,
  routes: Record<string, string>,
): Promise<RunningGateway & { seen: Terminated[] }> {
  const seen: Terminated[] = [];
  const server = createHttpsServer(tls, (req, res) => {
    const socket = req.socket as TLSSocket;
    const cert = socket.getPeerCertificate?.();
    const uri = cert?.subjectaltname?.split(/,\s*/).find((s) => s.startsWith('URI:'));
    const host = req.headers.host;
    seen.push({ host, sni: socket.servername, client: uri ? uri.slice(4) : null });
    const backend = routes[(host ?? '').replace(/:\d+$/, '')];
    if (backend === undefined) {
      res.statusCode = 404;
      res.end(`no route for host ${host}`);
      return;
    }
    const [bhost, bport] = backend.split(':');
    const out = httpRequest(
      { host: bhost, port: Number(bport), method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    out.on('error', () => {
      if (!res.headersSent) res.statusCode = 502;
      res.end();
    });
    req.pipe(out);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    seen,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
