// Shared bench machinery: upstream processes, closed-loop load at a fixed concurrency,
// hdr histograms, and ratio tables. Loopback only, bounded in time.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import hdr from 'hdr-histogram-js';

export interface Upstream {
  address: string;
  port: number;
  child: ChildProcess;
  stop(): void;
}

export async function startUpstream(delayMs = 0): Promise<Upstream> {
  const script = fileURLToPath(new URL('./upstream.ts', import.meta.url));
  const child = spawn(process.execPath, [script, String(delayMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  for await (const line of lines) {
    const { port } = JSON.parse(line) as { port: number };
    return { address: `127.0.0.1:${port}`, port, child, stop: () => child.kill('SIGTERM') };
  }
  throw new Error('upstream exited before listening');
}

export interface RunResult {
  system: string;
  concurrency: number;
  requests: number;
  errors: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  cpuSeconds: number;
}

/** Runs `fn` in `concurrency` closed loops for `seconds`; latency in an hdr histogram (µs). */
export async function load(
  system: string,
  concurrency: number,
  seconds: number,
  fn: () => Promise<void>,
): Promise<RunResult> {
  const h = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 120_000_000,
    numberOfSignificantValueDigits: 3,
  });
  let requests = 0;
  let errors = 0;
  const deadline = performance.now() + seconds * 1000;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const start = performance.now();
        try {
          await fn();
          h.recordValue(Math.max(1, Math.round((performance.now() - start) * 1000)));
          requests++;
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const pct = (p: number) => h.getValueAtPercentile(p) / 1000;
  const result: RunResult = {
    system,
    concurrency,
    requests,
    errors,
    seconds: elapsed,
    rps: requests / elapsed,
    p50Ms: pct(50),
    p90Ms: pct(90),
    p99Ms: pct(99),
    p999Ms: pct(99.9),
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
  h.destroy();
  return result;
}

/** The median of several results for the same system and concurrency (by rps; percentiles by median too). */
export function median(results: RunResult[]): RunResult {
  const mid = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.floor(s.length / 2)] as number;
  };
  const first = results[0] as RunResult;
  return {
    ...first,
    requests: results.reduce((a, r) => a + r.requests, 0),
    errors: results.reduce((a, r) => a + r.errors, 0),
    seconds: results.reduce((a, r) => a + r.seconds, 0),
    rps: mid(results.map((r) => r.rps)),
    p50Ms: mid(results.map((r) => r.p50Ms)),
    p90Ms: mid(results.map((r) => r.p90Ms)),
    p99Ms: mid(results.map((r) => r.p99Ms)),
    p999Ms: mid(results.map((r) => r.p999Ms)),
    cpuSeconds: results.reduce((a, r) => a + r.cpuSeconds, 0),
  };
}

export function fmt(n: number, digits = 2): string {
  return n.toFixed(digits);
}

/** A markdown table of results with ratios against `baseline` at the same concurrency. */
export function ratioTable(results: RunResult[], baseline: string): string {
  const rows = [
    '| system | conc | req/s | × baseline rps | p50 ms | p99 ms | × baseline p99 | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    const base = results.find((b) => b.system === baseline && b.concurrency === r.concurrency);
    rows.push(
      `| ${r.system} | ${r.concurrency} | ${fmt(r.rps, 0)} | ${base ? fmt(r.rps / base.rps) : '-'} | ${fmt(r.p50Ms, 3)} | ${fmt(r.p99Ms, 3)} | ${base ? fmt(r.p99Ms / base.p99Ms) : '-'} | ${r.errors} |`,
    );
  }
  return rows.join('\n');
}

export function parseArgs(argv: string[]): { quick: boolean } {
  return { quick: argv.includes('--quick') };
}
