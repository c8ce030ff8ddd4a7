// bench/overhead: what the mesh costs on the request path. One healthy upstream in its own
// process; raw undici Pool (our physical limit), raw undici again (an A/A control that shows the
// noise floor), undici fetch, mesh.dispatcher and mesh.fetch, each in a process of its own, at
// concurrency 1, 16 and 64, in one run, in alternating blocks (interleaveBlocks). Prints ratios
// to raw undici.
import { fileURLToPath } from 'node:url';
import {
  fmt,
  interleaveBlocks,
  medianOf,
  type Paired,
  pairedTable,
  parseArgs,
  type RunResult,
  ratioTable,
  type ScenarioOptions,
  type ScenarioOutput,
  startSystems,
  startUpstream,
  stopSystems,
  type Target,
  targetTable,
  WARMUP,
} from '../support/harness.ts';
import { groupResults, scenarioSvg } from '../support/svg.ts';
import { OVERHEAD_SYSTEMS } from './systems.ts';

export async function overhead(opts: ScenarioOptions): Promise<ScenarioOutput> {
  const seconds = opts.quick ? 2 : 10;
  const concurrencies = [1, 16, 64];
  const up = await startUpstream();
  const module = fileURLToPath(new URL('./systems.ts', import.meta.url));
  const systems = await startSystems(
    OVERHEAD_SYSTEMS.map((name) => ({
      name,
      module,
      export: 'overheadSystem',
      args: { name, address: up.address },
    })),
  );
  const all: RunResult[] = [];
  const paired: Paired[] = [];
  try {
    for (const c of concurrencies) {
      const r = await interleaveBlocks(systems, c, { seconds, quick: opts.quick, baseline: 'undici Pool' });
      all.push(...r.results);
      paired.push(...r.paired);
    }
  } finally {
    await stopSystems(systems);
    up.stop();
  }
  // Targets on the ratios paired within each slice (see interleaveBlocks); the ratios of the
  // whole runs are in the main table too.
  const targets: Target[] = [];
  for (const c of concurrencies) {
    const p = paired.find((x) => x.concurrency === c && x.system === 'mesh.dispatcher');
    if (!p) continue;
    const where = `concurrency ${c}`;
    const x = medianOf(p.rps);
    const y = medianOf(p.p99);
    targets.push({
      where,
      check: 'mesh.dispatcher ≥ 0.9× undici Pool req/s (paired median)',
      value: `${fmt(x)}×`,
      pass: x >= 0.9,
    });
    targets.push({
      where,
      check: 'mesh.dispatcher p99 ≤ 1.1× undici Pool (paired median)',
      value: `${fmt(y)}×`,
      pass: y <= 1.1,
    });
  }
  return {
    results: { runs: all, paired },
    svg: scenarioSvg(
      'overhead',
      groupResults(all, 'undici Pool'),
      'alternating blocks; ratios against undici Pool',
    ),
    table: `${ratioTable(all, 'undici Pool')}\n\n${pairedTable(paired, 'undici Pool')}\n\n${targetTable(targets)}`,
    targets,
    notes: [
      `one upstream process; every system in its own process, warmed up (at least ${opts.quick ? WARMUP.quick.minRequests : WARMUP.full.minRequests} requests), then all of them in alternating blocks of max(1000, 40 × concurrency) requests, about ${seconds} s of blocks each; paired ratios per slice of about ${opts.quick ? 0.3 : 1} s of each system`,
      'undici Pool (A/A control) is raw undici again, in its own process: its distance from 1.00× is the noise floor of the run',
    ],
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { table } = await overhead(parseArgs(process.argv.slice(2)));
  console.log(table);
}
