// bench/protocols: what the client side and the upstream protocol cost, per request.
//  - node:http clients: `http.request` with node:http's own keep-alive Agent straight to the
//    upstream, and through `mesh.agent` (in-memory connection, Node's server parser, then
//    mesh.dispatcher): what mesh.agent costs beside mesh.dispatcher and beside plain node:http;
//  - HTTP/2: raw undici Pool and mesh.dispatcher over h2c (prior knowledge) and over TLS (ALPN h2),
//    against an HTTP/2 upstream process, next to the HTTP/1.1 pair.
// Every system in its own process, alternating blocks (interleaveBlocks), paired ratios.
// `node bench/protocols/run.ts [--quick]`.
import { type ChildProcess, spawn } from 'node:child_process';
import os from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createPki } from '../../test/support/certs.ts';
import {
  interleaveBlocks,
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
  trackChild,
  WARMUP,
} from '../support/harness.ts';
import { groupResults, scenarioSvg } from '../support/svg.ts';
import { PROTOCOL_SYSTEMS, upstreamOf } from './systems.ts';

const BASE = 'undici Pool';

async function startH2Upstream(args: string[]): Promise<{ address: string; child: ChildProcess }> {
  const script = fileURLToPath(new URL('./upstream-h2.ts', import.meta.url));
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  trackChild(child);
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  try {
    for await (const line of createInterface({ input: child.stdout as NodeJS.ReadableStream })) {
      const { port } = JSON.parse(line) as { port: number };
      return { address: `127.0.0.1:${port}`, child };
    }
  } finally {
    clearTimeout(timer);
  }
  throw new Error('h2 upstream exited before listening');
}

/** Paired ratios of `system` against `baseline`, per concurrency. */
function pairs(slicesByConcurrency: RunResult[][][], baseline: string, systems: string[]): Paired[] {
  return slicesByConcurrency.flatMap((slices) =>
    pairedRatios(
      slices.map((round) => round.filter((r) => r.system === baseline || systems.includes(r.system))),
      baseline,
    ),
  );
}

export async function protocols(opts: ScenarioOptions): Promise<ScenarioOutput> {
  const seconds = opts.quick ? 1 : 5;
  const concurrencies = opts.quick ? [16] : [1, 32];
  const pki = createPki('bench-protocols-ca');
  const cert = pki.issue('bench-upstream', ['DNS:upstream']);
  const h1 = await startUpstream();
  const h2c = await startH2Upstream([]);
  const h2 = await startH2Upstream([cert.certPath, cert.keyPath]);
  const address = { h1: h1.address, h2c: h2c.address, h2: h2.address };
  const module = fileURLToPath(new URL('./systems.ts', import.meta.url));
  const systems = await startSystems(
    PROTOCOL_SYSTEMS.map((name) => ({
      name,
      module,
      export: 'protocolSystem',
      args: { name, address: address[upstreamOf(name)], ca: pki.ca },
    })),
  );
  const pinned =
    os.cpus().length >= 2 &&
    [h1.child.pid, h2c.child.pid, h2.child.pid].every((pid) => pinToCpu(pid ?? 0, 0)) &&
    [process.pid, ...systems.map((s) => s.pid)].every((pid) => pinToCpu(pid, 1));
  const all: RunResult[] = [];
  const slices: RunResult[][][] = [];
  try {
    for (const c of concurrencies) {
      const r = await interleaveBlocks(systems, c, { seconds, quick: opts.quick, baseline: BASE });
      all.push(...r.results);
      slices.push(r.slices);
    }
  } finally {
    await stopSystems(systems);
    h1.stop();
    h2c.child.kill('SIGTERM');
    h2.child.kill('SIGTERM');
    pki.cleanup();
    if (pinned) pinToCpu(process.pid, `0-${os.cpus().length - 1}`);
  }
  const tables = [
    ratioTable(all, BASE),
    pairedTable(pairs(slices, BASE, ['mesh.dispatcher', 'node:http Agent', 'mesh.agent']), BASE),
    pairedTable(pairs(slices, 'mesh.dispatcher', ['mesh.agent']), 'mesh.dispatcher'),
    pairedTable(pairs(slices, 'node:http Agent', ['mesh.agent']), 'node:http Agent'),
    pairedTable(pairs(slices, 'undici Pool h2c', ['mesh.dispatcher h2c']), 'undici Pool h2c'),
    pairedTable(pairs(slices, 'undici Pool h2 (TLS)', ['mesh.dispatcher h2 (TLS)']), 'undici Pool h2 (TLS)'),
  ];
  return {
    results: { runs: all },
    svg: scenarioSvg(
      'protocols',
      groupResults(all, BASE),
      'alternating blocks; ratios against undici Pool (HTTP/1.1)',
    ),
    table: tables.join('\n\n'),
    notes: [
      `every system in its own process, warmed up (at least ${opts.quick ? WARMUP.quick.minRequests : WARMUP.full.minRequests} requests), then alternating blocks, about ${seconds} s of blocks each per concurrency`,
      'upstreams: bench/support/upstream.ts (HTTP/1.1), bench/protocols/upstream-h2.ts in h2c and in TLS (ALPN h2 only) mode, each in its own process, the same small JSON body',
      'mesh.agent is node:http’s client writing into an in-memory connection, parsed by Node’s HTTP server parser, then mesh.dispatcher: compare it with node:http Agent (the same client straight to the upstream) and with mesh.dispatcher',
      pinned
        ? 'CPU pinning (taskset): the upstreams on CPU 0; every system process and the bench process on CPU 1'
        : 'no CPU pinning (taskset missing or one CPU): clients and upstreams share the cores',
    ],
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { table, notes } = await protocols(parseArgs(process.argv.slice(2)));
  console.log(table);
  console.log(notes?.join('\n'));
}
