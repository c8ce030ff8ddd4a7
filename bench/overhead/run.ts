// bench/overhead: what the mesh costs on the request path. One healthy upstream in its own
// process; raw undici Pool (our physical limit), raw undici again (an A/A control that shows the
// noise floor), undici fetch, mesh.dispatcher and mesh.fetch, each in a process of its own, at
// concurrency 1, 16 and 64, in one run, in alternating blocks (interleaveBlocks). Prints ratios
// to raw undici.
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  fmt,
  interleaveBlocks,
  medianOf,
  type Paired,
  pairedRatios,
  pairedTable,
  parseArgs,
  pinToCpu,
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

const BASE = 'undici Pool';
const CONTROL = 'undici Pool (A/A control)';

export async function overhead(opts: ScenarioOptions): Promise<ScenarioOutput> {
  const seconds = opts.quick ? 1 : 10;
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
  // The upstream on one CPU, every system (and this process, idle while a block runs) on the
  // other: the client under test never competes with the upstream for a core, which on this
  // 2-core machine was the largest source of difference between two identical raw undici runs.
  const pinned =
    os.cpus().length >= 2 &&
    pinToCpu(up.child.pid ?? 0, 0) &&
    [process.pid, ...systems.map((s) => s.pid)].every((pid) => pinToCpu(pid, 1));
  const all: RunResult[] = [];
  const paired: Paired[] = [];
  const pairedAA: Paired[] = [];
  try {
    for (const c of concurrencies) {
      const r = await interleaveBlocks(systems, c, { seconds, quick: opts.quick, baseline: BASE });
      all.push(...r.results);
      paired.push(...pairedRatios(r.slices, BASE));
      pairedAA.push(...pairedRatios(r.slices, CONTROL));
    }
  } finally {
    await stopSystems(systems);
    up.stop();
    // The next scenarios run in this process on every CPU again.
    if (pinned) pinToCpu(process.pid, `0-${os.cpus().length - 1}`);
  }
  // Targets on the ratios paired within each slice (see interleaveBlocks), against both runs of
  // raw undici: the stricter of the two ratios decides. Two identical raw undici processes do not
  // land on the same numbers (at concurrency 64 one of them has had 3× the other's p99 in several
  // runs, from major GCs of what undici's request API keeps alive), so judging against only one of
  // them could pass the mesh on the baseline's bad luck.
  const targets: Target[] = [];
  for (const c of concurrencies) {
    const find = (list: Paired[]) => list.find((x) => x.concurrency === c && x.system === 'mesh.dispatcher');
    const p = find(paired);
    const q = find(pairedAA);
    if (!p || !q) continue;
    const where = `concurrency ${c}`;
    const rps = [medianOf(p.rps), medianOf(q.rps)] as const;
    const p99 = [medianOf(p.p99), medianOf(q.p99)] as const;
    const x = Math.min(...rps);
    const y = Math.max(...p99);
    targets.push({
      where,
      check: 'mesh.dispatcher ≥ 0.9× undici Pool req/s (paired median, stricter of the two raw runs)',
      value: `${fmt(x)}× (${fmt(rps[0])}× / ${fmt(rps[1])}× against the A/A control)`,
      pass: x >= 0.9,
    });
    targets.push({
      where,
      check: 'mesh.dispatcher p99 ≤ 1.1× undici Pool (paired median, stricter of the two raw runs)',
      value: `${fmt(y)}× (${fmt(p99[0])}× / ${fmt(p99[1])}× against the A/A control)`,
      pass: y <= 1.1,
    });
  }
  return {
    results: { runs: all, paired, pairedWithControl: pairedAA },
    svg: scenarioSvg('overhead', groupResults(all, BASE), 'alternating blocks; ratios against undici Pool'),
    table: `${ratioTable(all, BASE)}\n\n${pairedTable(paired, BASE)}\n\n${pairedTable(
      pairedAA.filter((p) => p.system !== BASE),
      CONTROL,
    )}\n\n${targetTable(targets)}`,
    targets,
    notes: [
      `one upstream process; every system in its own process, warmed up (at least ${opts.quick ? WARMUP.quick.minRequests : WARMUP.full.minRequests} requests), then all of them in alternating blocks of max(1000, 40 × concurrency) requests, about ${seconds} s of blocks each; paired ratios per slice of about ${opts.quick ? 0.3 : 1} s of each system`,
      'undici Pool (A/A control) is raw undici again, in its own process: its distance from 1.00× is the noise floor of the run',
      pinned
        ? 'CPU pinning (taskset): the upstream on CPU 0; every system process and the bench process on CPU 1'
        : 'no CPU pinning (taskset missing or one CPU): client and upstream share the cores',
    ],
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { table } = await overhead(parseArgs(process.argv.slice(2)));
  console.log(table);
}
