// The systems of bench/overhead, each built in its own process (bench/support/system-process.ts):
// `overheadSystem({ name, address })`.
import { Pool, request, fetch as undiciFetch } from 'undici';
import { createMesh } from '../../src/index.ts';
import type { BuiltSystem } from '../support/system-process.ts';

export const OVERHEAD_SYSTEMS = [
  'undici Pool',
  // An A/A control: raw undici again, in a process of its own. How far its ratio lands from 1.00×
  // is the noise of this machine and run, the yardstick for every other ratio.
  'undici Pool (A/A control)',
  'mesh.dispatcher',
  'undici fetch',
  'mesh.fetch',
] as const;

export async function overheadSystem(args: Record<string, unknown>): Promise<BuiltSystem> {
  const name = String(args.name);
  const address = String(args.address);
  const rawUrl = `http://${address}/`;
  if (name === 'undici Pool' || name === 'undici Pool (A/A control)' || name === 'undici fetch') {
    const pool = new Pool(`http://${address}`, { connections: 1024, keepAliveTimeout: 60_000 });
    const call =
      name === 'undici fetch'
        ? async () => {
            const r = await undiciFetch(rawUrl, { dispatcher: pool });
            await r.arrayBuffer();
          }
        : async () => {
            const r = await request(rawUrl, { dispatcher: pool });
            await r.body.dump();
          };
    return { call, close: () => pool.close() };
  }
  const mesh = createMesh({
    env: {},
    services: {
      upstream: {
        discovery: { static: [address] },
        trafficPolicy: { connectionPool: { http: { idleTimeout: 60_000 } } },
      },
    },
  });
  const call =
    name === 'mesh.fetch'
      ? async () => {
          const r = await mesh.fetch('http://upstream/');
          await r.arrayBuffer();
        }
      : async () => {
          const r = await request('http://upstream/', { dispatcher: mesh.dispatcher });
          await r.body.dump();
        };
  if (name !== 'mesh.fetch' && name !== 'mesh.dispatcher') throw new Error(`unknown system ${name}`);
  return { call, close: () => mesh.close() };
}
