// The systems of bench/protocols, each built in its own process (bench/support/system-process.ts):
// `protocolSystem({ name, address, ca? })`.
import http from 'node:http';
import { Pool, request } from 'undici';
import { createMesh, type Mesh } from '../../src/index.ts';

export const PROTOCOL_SYSTEMS = [
  'undici Pool',
  'mesh.dispatcher',
  'node:http Agent',
  'mesh.agent',
  'undici Pool h2c',
  'mesh.dispatcher h2c',
  'undici Pool h2 (TLS)',
  'mesh.dispatcher h2 (TLS)',
] as const;

export type ProtocolSystem = (typeof PROTOCOL_SYSTEMS)[number];

/** Which upstream each system talks to. */
export function upstreamOf(name: ProtocolSystem): 'h1' | 'h2c' | 'h2' {
  return name.endsWith('h2c') ? 'h2c' : name.endsWith('(TLS)') ? 'h2' : 'h1';
}

/** One GET with the whole body read, through node:http with `agent`. */
function httpGet(url: string, agent: http.Agent): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent }, (res) => {
      res.on('error', reject);
      res.on('end', () =>
        res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`)),
      );
      res.resume();
    });
    req.on('error', reject);
  });
}

export async function protocolSystem(args: Record<string, unknown>): Promise<{
  call: () => Promise<void>;
  close: () => Promise<void>;
}> {
  const name = String(args.name) as ProtocolSystem;
  const address = String(args.address);
  const ca = args.ca === undefined ? undefined : String(args.ca);
  const undiciCall = (dispatcher: Pool | Mesh['dispatcher'], url: string) => async () => {
    const r = await request(url, { dispatcher });
    await r.body.dump();
  };
  switch (name) {
    case 'undici Pool':
    case 'undici Pool h2c':
    case 'undici Pool h2 (TLS)': {
      const tls = name === 'undici Pool h2 (TLS)';
      const pool = new Pool(`${tls ? 'https' : 'http'}://${address}`, {
        connections: 1024,
        keepAliveTimeout: 60_000,
        ...(name === 'undici Pool' ? { allowH2: false } : { allowH2: true }),
        ...(name === 'undici Pool h2c' ? { useH2c: true } : {}),
        ...(tls ? { connect: { ca, servername: 'upstream', ALPNProtocols: ['h2'] } } : {}),
      } as Pool.Options);
      return { call: undiciCall(pool, `${tls ? 'https' : 'http'}://${address}/`), close: () => pool.close() };
    }
    case 'node:http Agent': {
      const agent = new http.Agent({ keepAlive: true, keepAliveMsecs: 60_000 });
      return {
        call: () => httpGet(`http://${address}/`, agent),
        close: async () => agent.destroy(),
      };
    }
    default: {
      const h2 = name === 'mesh.dispatcher h2c' || name === 'mesh.dispatcher h2 (TLS)';
      const mesh = createMesh({
        env: {},
        services: {
          upstream: {
            discovery: { static: [address] },
            trafficPolicy: {
              connectionPool: {
                http: { idleTimeout: 60_000, ...(h2 ? { h2UpgradePolicy: 'UPGRADE' } : {}) },
              },
              ...(name === 'mesh.dispatcher h2 (TLS)' ? { tls: { mode: 'SIMPLE', caCertificates: ca } } : {}),
            },
          },
        },
      });
      const call =
        name === 'mesh.agent'
          ? () => httpGet('http://upstream/', mesh.agent)
          : undiciCall(mesh.dispatcher, 'http://upstream/');
      return { call, close: () => mesh.close() };
    }
  }
}
