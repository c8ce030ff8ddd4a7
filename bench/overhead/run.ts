// bench/overhead: what the mesh costs on the request path. One healthy upstream in its own
// process; raw undici Pool (our physical limit), raw undici again on its own pool (an A/A control
// that shows the noise floor), undici fetch, mesh.dispatcher and mesh.fetch, at concurrency 1, 16
// and 64, in one run, interleaved over rounds. Prints ratios to raw undici.
import { Pool, request, fetch as undiciFetch } from 'undici';
import { createMesh } from '../../src/index.ts';
import {
  fmt,
  interleave,
  parseArgs,
  type RunResult,
  ratioTable,
  type ScenarioOptions,
  type ScenarioOutput,
  startUpstream,
  type Target,
  targetTable,
} from '../support/harness.ts';

export async function overhead(opts: ScenarioOptions): Promise<ScenarioOutput> {
  const seconds = opts.quick ? 0.7 : 3;
  const rounds = 3;
  const concurrencies = [1, 16, 64];
  const up = await startUpstream();
  const pool = new Pool(`http://${up.address}`, { connections: 1024, keepAliveTimeout: 60_000 });
  // An A/A control: raw undici again, on its own pool. How far its ratio lands from 1.00× is the
  // noise of this machine and run, the yardstick for every other ratio.
  const control = new Pool(`http://${up.address}`, { connections: 1024, keepAliveTimeout: 60_000 });
  const mesh = createMesh({
    env: {},
    services: {
      upstream: {
        discovery: { static: [up.address] },
        trafficPolicy: { connectionPool: { http: { idleTimeout: 60_000 } } },
      },
    },
  });
  const rawUrl = `http://${up.address}/`;

  const systems: Record<string, () => Promise<void>> = {
    'undici Pool': async () => {
      const r = await request(rawUrl, { dispatcher: pool });
      await r.body.dump();
    },
    'undici Pool (A/A control)': async () => {
      const r = await request(rawUrl, { dispatcher: control });
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

  const list = Object.entries(systems).map(([name, call]) => ({ name, call }));
  const all: RunResult[] = [];
  for (const c of concurrencies) all.push(...(await interleave(list, c, { rounds, seconds })));
  await mesh.close();
  await pool.close();
  await control.close();
  up.stop();
  const targets: Target[] = [];
  for (const c of concurrencies) {
    const raw = all.find((r) => r.concurrency === c && r.system === 'undici Pool');
    const mesh = all.find((r) => r.concurrency === c && r.system === 'mesh.dispatcher');
    if (!raw || !mesh) continue;
    const where = `concurrency ${c}`;
    const x = mesh.rps / raw.rps;
    const y = mesh.p99Ms / raw.p99Ms;
    targets.push({
      where,
      check: 'mesh.dispatcher ≥ 0.9× undici Pool req/s',
      value: `${fmt(x)}×`,
      pass: x >= 0.9,
    });
    targets.push({
      where,
      check: 'mesh.dispatcher p99 ≤ 1.1× undici Pool',
      value: `${fmt(y)}×`,
      pass: y <= 1.1,
    });
  }
  return {
    results: all,
    table: `${ratioTable(all, 'undici Pool')}\n\n${targetTable(targets)}`,
    targets,
    notes: [
      `one upstream process; medians over ${rounds} interleaved rounds of ${seconds}s per system`,
      'undici Pool (A/A control) is raw undici again: its distance from 1.00× is the noise floor of the run',
    ],
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { table } = await overhead(parseArgs(process.argv.slice(2)));
  console.log(table);
}
