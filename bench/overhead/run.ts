// bench/overhead: what the mesh costs on the request path. One healthy upstream in its own
// process; raw undici Pool (our physical limit), undici fetch, mesh.dispatcher and mesh.fetch,
// at concurrency 1, 16 and 64, in one run, interleaved over rounds. Prints ratios to raw undici.
import { Pool, request, fetch as undiciFetch } from 'undici';
import { createMesh } from '../../src/index.ts';
import { load, median, parseArgs, type RunResult, ratioTable, startUpstream } from '../support/harness.ts';

export async function overhead(opts: { quick: boolean }): Promise<{ results: RunResult[]; table: string }> {
  const seconds = opts.quick ? 1 : 3;
  const rounds = opts.quick ? 2 : 3;
  const concurrencies = [1, 16, 64];
  const up = await startUpstream();
  const pool = new Pool(`http://${up.address}`, { connections: 1024, keepAliveTimeout: 4000 });
  const mesh = createMesh({ env: {}, services: { upstream: { discovery: { static: [up.address] } } } });
  const rawUrl = `http://${up.address}/`;

  const systems: Record<string, () => Promise<void>> = {
    'undici Pool': async () => {
      const r = await request(rawUrl, { dispatcher: pool });
      await r.body.dump();
    },
    'mesh.dispatcher': async () => {
      const r = await request('http://upstream/', { dispatcher: mesh.dispatcher });
      await r.body.dump();
    },
    'undici fetch': async () => {
      const r = await undiciFetch(rawUrl, { dispatcher: pool });
      await r.arrayBuffer();
    },
    'mesh.fetch': async () => {
      const r = await mesh.fetch('http://upstream/');
      await r.arrayBuffer();
    },
  };

  const all: RunResult[] = [];
  for (const c of concurrencies) {
    // Warm up every system (JIT, connections) before measuring.
    for (const [name, fn] of Object.entries(systems)) await load(name, c, 0.3, fn);
    const byName = new Map<string, RunResult[]>();
    for (let round = 0; round < rounds; round++) {
      const names = Object.keys(systems);
      if (round % 2 === 1) names.reverse();
      for (const name of names) {
        const r = await load(name, c, seconds, systems[name] as () => Promise<void>);
        byName.set(name, [...(byName.get(name) ?? []), r]);
      }
    }
    for (const name of Object.keys(systems)) all.push(median(byName.get(name) ?? []));
  }
  await mesh.close();
  await pool.close();
  up.stop();
  return { results: all, table: ratioTable(all, 'undici Pool') };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { table } = await overhead(parseArgs(process.argv.slice(2)));
  console.log(table);
}
