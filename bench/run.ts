// `npm run bench [-- --quick] [-- --only a,b]`: runs every scenario in one process, one after
// another, and writes bench/results/<date>.json (all scenarios), <date>.md (ratio tables against
// raw undici, target checks) and <date>-<scenario>.svg (charts). See bench/README.md.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  parseArgs,
  type Scenario,
  type ScenarioOutput,
  type Target,
  targetTable,
} from './support/harness.ts';
import { groupResults, isRunResults, scenarioSvg } from './support/svg.ts';

/**
 * The scenarios, in run order. Adding one is one line: its name. The module is
 * bench/<name>/run.ts and exports the Scenario as a function named after the scenario
 * (camelCase of the name), `scenario`, default, or its only exported function.
 * Contract: bench/README.md.
 */
const SCENARIOS = [
  'overhead', // mesh cost on one upstream vs raw undici
  'overhead/layers', // script: the mesh's own CPU per request with no network (stubbed pools)
  'peers', // vs BalancedPool, fetch, cockatiel, opossum + p-retry, an HAProxy sidecar
  'balancing/latency', // five upstreams, one 40 ms slower: every algorithm and BalancedPool
  'routing/match-cost', // matching against 100 routes vs none (module function)
  'telemetry', // request-path cost: no telemetry code, no SDK, no-op SDK
  'mtls', // mTLS vs plaintext: steady state and new connections
  'protocols', // node:http clients (plain, mesh.agent) and HTTP/2 (h2c, TLS h2) vs HTTP/1.1
  'balancing/pick-cost', // script: cost of one pick, memory per endpoint (10, 1k, 10k)
  'balancing/fleet', // script: 10,000 endpoints with 1%/s churn: heap per endpoint, pick, update time
  'resilience/run', // script: success rate with bad replicas, outage attempts, hedging
  'discovery/propagation', // script: registry change -> provider update; idle Consul requests
  'ratelimit', // rate limits: decision cost, accuracy shared by 4 processes vs Kong-style sync, Redis killed
  'live', // mesh.update under load, time to apply (10-1000 services), etcd write -> 10 mesh processes
  'xds/propagation', // script: control-plane push -> traffic moved (vs grpc-js-xds); 1,000 clusters
  'soak/run', // script, only when named (`npm run bench -- soak`): 10 minutes with faults, churn, rotation
];

/** Scenarios that run only when named (positional or --only): too long for every run. */
const OPT_IN = new Set(['soak/run']);

/** Short names accepted on the command line. */
const ALIASES: Record<string, string> = { soak: 'soak/run', resilience: 'resilience/run' };

/** Scenarios `--quick` runs (the quick suite stays around two minutes). */
const QUICK = new Set(['overhead', 'overhead/layers', 'peers', 'balancing/latency', 'routing/match-cost']);

/** Scenarios that are standalone scripts (no exported function): run as a child process. */
const SCRIPTS = new Set([
  'overhead/layers',
  'balancing/pick-cost',
  'balancing/fleet',
  'resilience/run',
  'discovery/propagation',
  'xds/propagation',
  'soak/run',
]);

const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

async function loadScenario(name: string): Promise<Scenario> {
  if (SCRIPTS.has(name)) return scriptScenario(name);
  const file = name.includes('/') ? `./${name}.ts` : `./${name}/run.ts`;
  const mod = (await import(file)) as Record<string, unknown>;
  const key = camel(name.split('/').pop() as string);
  const only = Object.values(mod).filter((v) => typeof v === 'function');
  const fn =
    mod[camel(name)] ?? mod[key] ?? mod.scenario ?? mod.default ?? (only.length === 1 ? only[0] : undefined);
  if (typeof fn !== 'function') throw new Error(`bench/${file} exports no scenario function`);
  return fn as Scenario;
}

/** A script scenario: `node bench/<name>.ts [--quick]` in a child process; its output is the table. */
function scriptScenario(name: string): Scenario {
  return ({ quick }) =>
    new Promise((resolve, reject) => {
      const script = fileURLToPath(new URL(`./${name}.ts`, import.meta.url));
      const child = spawn(process.execPath, [script, ...(quick ? ['--quick'] : [])], {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: process.env,
      });
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        if (code === 0) resolve({ results: { output: out }, table: `\`\`\`\n${out.trim()}\n\`\`\`` });
        else reject(new Error(`bench/${name}.ts exited with ${code}`));
      });
    });
}

const args = parseArgs(process.argv.slice(2));
const wanted = args.only?.map((n) => ALIASES[n] ?? n);
const names = wanted
  ? SCENARIOS.filter((n) => wanted.includes(n))
  : SCENARIOS.filter((n) => !OPT_IN.has(n) && (!args.quick || QUICK.has(n)));
const started = new Date();
// A quick or partial run gets a name of its own, so it never overwrites a full run's results.
const stamp = `${started.toISOString().slice(0, 10)}${args.quick ? '-quick' : ''}${
  wanted ? `-only-${wanted.map((n) => n.replaceAll('/', '-')).join('+')}` : ''
}`;
const dir = new URL('./results/', import.meta.url);
mkdirSync(dir, { recursive: true });

const report = {
  date: started.toISOString(),
  quick: args.quick,
  node: process.version,
  platform: `${os.type()} ${os.release()} ${os.arch()}`,
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model,
  loadAverageAtStart: os.loadavg(),
  scenarios: {} as Record<string, unknown>,
  durationsSeconds: {} as Record<string, number>,
  targets: [] as (Target & { scenario: string })[],
  failed: [] as { scenario: string; error: string }[],
};
let body = '';
for (const name of names) {
  console.log(`\n== ${name}`);
  const t0 = performance.now();
  let out: ScenarioOutput;
  try {
    out = await (await loadScenario(name))({ quick: args.quick });
  } catch (err) {
    const error = (err as Error)?.stack ?? String(err);
    console.error(`scenario ${name} failed: ${error}`);
    report.failed.push({ scenario: name, error });
    body += `\n## ${name}\n\n**failed**: \`${String((err as Error)?.message ?? err)}\`\n`;
    continue;
  }
  report.durationsSeconds[name] = Math.round((performance.now() - t0) / 100) / 10;
  console.log(out.table);
  for (const n of out.notes ?? []) console.log(`- ${n}`);
  report.scenarios[name] = out.results;
  for (const t of out.targets ?? []) report.targets.push({ scenario: name, ...t });
  const svg =
    out.svg ??
    (isRunResults(out.results)
      ? scenarioSvg(
          `${name}`,
          groupResults(out.results, 'undici Pool'),
          'medians over interleaved rounds; ratios against undici Pool',
        )
      : undefined);
  body += `\n## ${name}\n\n${out.table.trim()}\n`;
  if (out.notes?.length) body += `\n${out.notes.map((n) => `- ${n}`).join('\n')}\n`;
  if (svg) {
    const file = `${stamp}-${name.replaceAll('/', '-')}.svg`;
    writeFileSync(new URL(file, dir), svg);
    body += `\n![${name}](${file})\n`;
  }
}

let md = `# meshwork bench, ${started.toISOString()}${args.quick ? ' (quick)' : ''}\n\n`;
md += `Node ${process.version}, ${report.platform}, ${report.cpus} CPUs (${report.cpuModel}), load average at start ${report.loadAverageAtStart.map((l) => l.toFixed(2)).join(' ')}.\n`;
md +=
  'Loopback only; client, upstreams and any sidecar share the same cores. Ratios are against raw undici `Pool` in the same run.\n';
if (report.targets.length) {
  md += `\n## Targets\n\n${targetTable(report.targets.map((t) => ({ ...t, where: `${t.scenario}: ${t.where}` })))}`;
}
if (report.failed.length) md += `\nFailed scenarios: ${report.failed.map((f) => f.scenario).join(', ')}\n`;
md += body;
writeFileSync(new URL(`${stamp}.json`, dir), `${JSON.stringify(report, null, 2)}\n`);
writeFileSync(new URL(`${stamp}.md`, dir), md);
const total = Object.values(report.durationsSeconds).reduce((a, b) => a + b, 0);
console.log(`\nwrote bench/results/${stamp}.json, .md and .svg charts (${total.toFixed(0)} s)`);
if (report.failed.length) process.exitCode = 1;
