// Shared bench machinery: upstream processes, closed-loop load at a fixed concurrency,
// hdr histograms, CPU accounting, interleaved rounds and ratio tables. Loopback only,
// bounded in time.
import { type ChildProcess, execFileSync, fork, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import hdr from 'hdr-histogram-js';
import type { SystemCommand, SystemReply } from './system-process.ts';

/** Options every scenario receives from the runner. */
export interface ScenarioOptions {
  /** Short run (the whole quick suite stays around two minutes). */
  quick: boolean;
}

/** What a scenario hands back to the runner (bench/run.ts). */
export interface ScenarioOutput {
  /** JSON-serialisable; goes under scenarios.<name> in bench/results/<date>.json. Usually RunResult[]. */
  results: unknown;
  /** Markdown (tables, verdicts); goes to bench/results/<date>.md and the console. */
  table: string;
  /** An SVG chart; when absent and `results` is RunResult[], the runner draws one (bench/support/svg.ts). */
  svg?: string;
  /** Free-form notes (skipped systems, how something was measured), listed under the table. */
  notes?: string[];
  /** Target checks; the runner lists them all in a summary at the top of the .md. */
  targets?: Target[];
}

export interface Target {
  /** Where it was checked, e.g. "healthy, concurrency 32". */
  where: string;
  check: string;
  value: string;
  pass: boolean;
}

export type Scenario = (opts: ScenarioOptions) => Promise<ScenarioOutput>;

// ---------------------------------------------------------------------------------------------
// Upstreams

export interface Upstream {
  address: string;
  port: number;
  child: ChildProcess;
  stop(): void;
}

const children = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Child processes started by the bench are killed when the bench process exits, however it exits. */
export function trackChild(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of children) c.kill('SIGKILL');
    });
  }
}

/** Starts one upstream process (bench/support/upstream.ts), answering after `delayMs`. Bounded: 10 s. */
export async function startUpstream(delayMs = 0): Promise<Upstream> {
  const script = fileURLToPath(new URL('./upstream.ts', import.meta.url));
  const child = spawn(process.execPath, [script, String(delayMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  trackChild(child);
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  try {
    for await (const line of lines) {
      const { port } = JSON.parse(line) as { port: number };
      return { address: `127.0.0.1:${port}`, port, child, stop: () => child.kill('SIGTERM') };
    }
  } finally {
    clearTimeout(timer);
  }
  throw new Error('upstream exited before listening');
}

/** One upstream process per entry of `delaysMs`, started in parallel. */
export async function startUpstreams(delaysMs: number[]): Promise<Upstream[]> {
  const settled = await Promise.allSettled(delaysMs.map((d) => startUpstream(d)));
  const ups = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) {
    for (const u of ups) u.stop();
    throw (failed as PromiseRejectedResult).reason;
  }
  return ups;
}

/**
 * Pins a process (all its threads) to CPUs (`1`, `0-1`) with util-linux `taskset`; false when it
 * cannot (no taskset, no such CPU, not Linux). Threads created later inherit it from their creator.
 */
export function pinToCpu(pid: number, cpu: number | string): boolean {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// CPU of other processes (sidecars): /proc/<pid>/stat utime + stime, all threads.

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks =
        Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 2000 }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** CPU seconds (user + system, all threads) a live process has used so far, from /proc. Linux only. */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces; the fields after its closing paren start at field 3.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[14 - 3]);
  const stime = Number(rest[15 - 3]);
  return (utime + stime) / ticksPerSecond();
}

// ---------------------------------------------------------------------------------------------
// Load

/** Percentiles recorded for every run (keys of RunResult.percentilesMs are `p${p}`). */
export const PERCENTILES = [50, 75, 90, 95, 99, 99.5, 99.9] as const;

export interface RunResult {
  system: string;
  /** Sub-scenario (e.g. "healthy", "slow replica"); absent when a scenario has just one. */
  group?: string;
  /** Closed loop: the number of loops. Open loop: the bound on requests in flight. */
  concurrency: number;
  /** Open loop only: the fixed arrival rate (req/s) the run offered. */
  rate?: number;
  requests: number;
  errors: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  /** Every percentile of PERCENTILES, in ms, keyed `p50`, `p75`, ..., `p99.9`. */
  percentilesMs: Record<string, number>;
  /** CPU of the bench (client) process during the run: process.cpuUsage(), user + system, all threads. */
  cpuSeconds: number;
  /** CPU of a sidecar process the requests went through (from /proc/<pid>/stat), 0 when none. */
  sidecarCpuSeconds: number;
  /** requests / (cpuSeconds + sidecarCpuSeconds). Upstream CPU is not counted (same work for all). */
  reqPerCpuSecond: number;
  /** How many rounds a median was taken over (1 for a single run). */
  rounds: number;
  /** Scenario-specific numbers measured around each run (see interleave's `probe`), medians. */
  extra?: Record<string, number>;
}

/** Measures something around each measured run (not warm-ups), e.g. where requests went. */
export interface Probe<T = unknown> {
  start(): Promise<T>;
  end(state: T): Promise<Record<string, number>>;
}

/** Reads how many requests an upstream process has served (bench/support/upstream.ts). */
export async function upstreamCount(address: string): Promise<number> {
  const res = await fetch(`http://${address}/__bench/count`, { signal: AbortSignal.timeout(5000) });
  return ((await res.json()) as { count: number }).count;
}

export interface LoadOptions {
  /** Sub-scenario label copied into the result. */
  group?: string;
  /** CPU seconds used so far by a process outside this one (a sidecar); sampled before and after. */
  sidecarCpu?: () => number;
  /** Extra time allowed past `seconds` for in-flight requests to finish before the run fails. Default 15 s. */
  graceSeconds?: number;
}

type Histogram = ReturnType<typeof hdr.build>;

/** The latency histogram of one run: microseconds, 1 µs to 120 s, 3 significant digits. */
function newHistogram(): Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 120_000_000,
    numberOfSignificantValueDigits: 3,
  });
}

/** A RunResult from a run's histogram and counts: req/s, percentiles (ms) and req/CPU-s derived. */
function runResult(
  h: Histogram,
  r: Omit<RunResult, 'rps' | 'p50Ms' | 'p90Ms' | 'p99Ms' | 'p999Ms' | 'percentilesMs' | 'reqPerCpuSecond'>,
): RunResult {
  const pct = (p: number) => (r.requests > 0 ? h.getValueAtPercentile(p) / 1000 : Number.NaN);
  const percentilesMs: Record<string, number> = {};
  for (const p of PERCENTILES) percentilesMs[`p${p}`] = pct(p);
  return {
    ...r,
    rps: r.requests / r.seconds,
    p50Ms: pct(50),
    p90Ms: pct(90),
    p99Ms: pct(99),
    p999Ms: pct(99.9),
    percentilesMs,
    reqPerCpuSecond: r.requests / (r.cpuSeconds + r.sidecarCpuSeconds),
  };
}

/**
 * Runs `fn` in `concurrency` closed loops for `seconds`; latency in an hdr histogram (µs).
 * A failed call counts as an error (its latency is not recorded). Bounded: when in-flight
 * calls have not finished `graceSeconds` after the deadline, the run rejects.
 */
export async function load(
  system: string,
  concurrency: number,
  seconds: number,
  fn: () => Promise<void>,
  opts: LoadOptions = {},
): Promise<RunResult> {
  const h = newHistogram();
  let requests = 0;
  let errors = 0;
  const deadline = performance.now() + seconds * 1000;
  const side0 = opts.sidecarCpu?.() ?? 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let guard: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      Promise.all(
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
      ),
      new Promise<never>((_, reject) => {
        guard = setTimeout(
          () =>
            reject(
              new Error(`${system}: requests still in flight ${opts.graceSeconds ?? 15}s after the deadline`),
            ),
          (seconds + (opts.graceSeconds ?? 15)) * 1000,
        );
      }),
    ]);
  } finally {
    clearTimeout(guard);
  }
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const sidecarCpuSeconds = opts.sidecarCpu ? Math.max(0, opts.sidecarCpu() - side0) : 0;
  const result = runResult(h, {
    system,
    ...(opts.group === undefined ? {} : { group: opts.group }),
    concurrency,
    requests,
    errors,
    seconds: elapsed,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    sidecarCpuSeconds,
    rounds: 1,
  });
  h.destroy();
  return result;
}

/**
 * Open loop: starts `rate` requests per second for `seconds`, whether or not earlier ones have
 * answered (a 1 ms timer fires the requests that are due), so a slow system faces the same
 * offered load instead of slowing its own load down. Latency is measured from each request's
 * actual start. More than `maxInflight` requests in flight: the new one is dropped and counted
 * as an error. Bounded like load().
 */
export async function loadAtRate(
  system: string,
  rate: number,
  seconds: number,
  fn: () => Promise<void>,
  opts: LoadOptions & { maxInflight?: number } = {},
): Promise<RunResult> {
  const h = newHistogram();
  const maxInflight = opts.maxInflight ?? 1000;
  const total = Math.max(1, Math.floor(rate * seconds));
  const interval = 1000 / rate;
  let sent = 0;
  let inflight = 0;
  let requests = 0;
  let errors = 0;
  const side0 = opts.sidecarCpu?.() ?? 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let guard: NodeJS.Timeout | undefined;
  let tickTimer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      guard = setTimeout(
        () =>
          reject(
            new Error(`${system}: requests still in flight ${opts.graceSeconds ?? 15}s after the deadline`),
          ),
        (seconds + (opts.graceSeconds ?? 15)) * 1000,
      );
      const finish = () => {
        if (sent >= total && inflight === 0) resolve();
      };
      const one = () => {
        const start = performance.now();
        inflight++;
        fn().then(
          () => {
            h.recordValue(Math.max(1, Math.round((performance.now() - start) * 1000)));
            requests++;
            inflight--;
            finish();
          },
          () => {
            errors++;
            inflight--;
            finish();
          },
        );
      };
      const tick = () => {
        const due = Math.min(total, Math.floor((performance.now() - t0) / interval) + 1);
        while (sent < due) {
          sent++;
          if (inflight >= maxInflight) errors++;
          else one();
        }
        if (sent < total) tickTimer = setTimeout(tick, 1);
        else finish();
      };
      tick();
    });
  } finally {
    clearTimeout(guard);
    clearTimeout(tickTimer);
  }
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const sidecarCpuSeconds = opts.sidecarCpu ? Math.max(0, opts.sidecarCpu() - side0) : 0;
  const result = runResult(h, {
    system,
    ...(opts.group === undefined ? {} : { group: opts.group }),
    concurrency: maxInflight,
    rate,
    requests,
    errors,
    seconds: elapsed,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    sidecarCpuSeconds,
    rounds: 1,
  });
  h.destroy();
  return result;
}

/** Same group, same concurrency, same rate: results that can be compared. */
export function sameCell(a: RunResult, b: RunResult): boolean {
  return a.group === b.group && a.concurrency === b.concurrency && a.rate === b.rate;
}

/** "healthy, concurrency 32" or "healthy, fixed rate 2000 req/s". */
export function cellTitle(r: RunResult): string {
  const load = r.rate === undefined ? `concurrency ${r.concurrency}` : `fixed rate ${r.rate} req/s`;
  return `${r.group ? `${r.group}, ` : ''}${load}`;
}

function mid(xs: number[]): number {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function medianExtra(results: RunResult[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const key of Object.keys(results[0]?.extra ?? {}))
    out[key] = mid(results.map((r) => r.extra?.[key] ?? Number.NaN));
  return out;
}

/**
 * The median of several results for the same system and concurrency: rps, every percentile
 * and req/CPU-s each by its own median; requests, errors, seconds and CPU summed.
 */
export function median(results: RunResult[]): RunResult {
  const first = results[0] as RunResult;
  const percentilesMs: Record<string, number> = {};
  for (const key of Object.keys(first.percentilesMs ?? {})) {
    percentilesMs[key] = mid(results.map((r) => r.percentilesMs[key] as number));
  }
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
    percentilesMs,
    cpuSeconds: results.reduce((a, r) => a + r.cpuSeconds, 0),
    sidecarCpuSeconds: results.reduce((a, r) => a + (r.sidecarCpuSeconds ?? 0), 0),
    reqPerCpuSecond: mid(results.map((r) => r.reqPerCpuSecond)),
    rounds: results.length,
    ...(first.extra ? { extra: medianExtra(results) } : {}),
  };
}

export interface System {
  name: string;
  /** One request, body consumed; throws on failure. */
  call: () => Promise<void>;
  /** CPU seconds of a sidecar this system goes through (see LoadOptions.sidecarCpu). */
  sidecarCpu?: () => number;
}

/** A small seeded PRNG (mulberry32): reruns shuffle the same way. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffle<T>(xs: T[], rand: () => number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

let gcFn: (() => void) | undefined | null = null;
/**
 * A full GC (through V8's --expose-gc, turned on at runtime) and a 25 ms pause. Returns what the
 * GC itself took (CPU and wall seconds), so that interleave() can bill it to the run whose
 * garbage it collected.
 */
export async function settle(): Promise<{ cpuSeconds: number; wallSeconds: number }> {
  if (gcFn === null) {
    try {
      v8.setFlagsFromString('--expose-gc');
      gcFn = runInNewContext('gc') as () => void;
    } catch {
      gcFn = undefined;
    }
  }
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  gcFn?.();
  const wallSeconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await new Promise((r) => setTimeout(r, 25));
  return { cpuSeconds: (cpu.user + cpu.system) / 1e6, wallSeconds };
}

/**
 * Bills a full GC to the run before it: the garbage a run leaves behind is its own cost. Without
 * this, a system that leaves much garbage for the old generation would get its major GCs done
 * for free between runs (or bill them to whichever system runs next).
 */
function billGc(r: RunResult, gc: { cpuSeconds: number; wallSeconds: number }): RunResult {
  const seconds = r.seconds + gc.wallSeconds;
  const cpuSeconds = r.cpuSeconds + gc.cpuSeconds;
  return {
    ...r,
    seconds,
    rps: r.rate === undefined ? r.requests / seconds : r.rps,
    cpuSeconds,
    reqPerCpuSecond: r.requests / (cpuSeconds + r.sidecarCpuSeconds),
  };
}

/**
 * How long each system warms up before it is measured. A system's p99 only settles once V8 has
 * tiered its hot paths up: about 15-20 thousand requests here, 3 s at concurrency 1 (measured
 * on this 2-core machine for raw undici and for the mesh alike, in 0.5 s windows; see
 * bench/README.md). A warm-up of a fixed 0.3 s left the system with more code still compiling
 * through its first measured round. Quick runs use a shorter one (their numbers are not claims).
 */
export const WARMUP = {
  full: { minSeconds: 1, minRequests: 20_000, maxSeconds: 5 },
  quick: { minSeconds: 0.3, minRequests: 2_000, maxSeconds: 0.75 },
} as const;

/**
 * Warms one system up: closed loops at `concurrency` until it has run `minSeconds` and
 * `minRequests` requests, or `maxSeconds` have passed, whichever comes first. Failures count as
 * requests (a system that fails fast is warm too). Bounded like load().
 */
export async function warmUp(
  call: () => Promise<void>,
  concurrency: number,
  w: { minSeconds: number; minRequests: number; maxSeconds: number },
): Promise<number> {
  const t0 = performance.now();
  const hardStop = t0 + w.maxSeconds * 1000;
  const minEnd = t0 + w.minSeconds * 1000;
  let n = 0;
  const more = () => {
    const now = performance.now();
    return now < hardStop && (now < minEnd || n < w.minRequests);
  };
  let guard: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (more()) {
            n++;
            await call().catch(() => {});
          }
        }),
      ),
      new Promise<never>((_, reject) => {
        guard = setTimeout(
          () => reject(new Error('warm-up: requests still in flight 15s after its end')),
          (w.maxSeconds + 15) * 1000,
        );
      }),
    ]);
  } finally {
    clearTimeout(guard);
  }
  return n;
}

export interface InterleaveOptions {
  /** Open loop at this many req/s (loadAtRate, `concurrency` = bound on in flight) instead of closed loops. */
  rate?: number;
  rounds: number;
  seconds: number;
  /** The quick run's shorter warm-up (WARMUP.quick). */
  quick?: boolean;
  group?: string;
  /** Measured around every measured run; its numbers land in RunResult.extra (medians). */
  probe?: Probe<unknown>;
}

/**
 * Measures every system at one concurrency: a warm-up each (WARMUP: JIT tiers, connections),
 * then `rounds` rounds in which every system runs `seconds`, in a new pseudo-random order each round
 * (seeded, so reruns use the same orders) so no system always runs first or right after the
 * same neighbour. Each run starts from a clean heap and pays for its own garbage: after every
 * run, a full GC (when available) whose CPU and wall time are added to that run (billGc), then a
 * short pause. Returns the median per system, in the order given.
 */
export async function interleave(
  systems: System[],
  concurrency: number,
  { rounds, seconds, quick = false, group, probe, rate }: InterleaveOptions,
): Promise<RunResult[]> {
  const base = group === undefined ? {} : { group };
  const run = (name: string, secs: number, call: () => Promise<void>, o: LoadOptions) =>
    rate === undefined
      ? load(name, concurrency, secs, call, o)
      : loadAtRate(name, rate, secs, call, { ...o, maxInflight: concurrency });
  // Open-loop runs warm up in closed loops too, at a concurrency that does not flood a slow system.
  const warmConcurrency = rate === undefined ? concurrency : Math.min(concurrency, 16);
  for (const s of systems) await warmUp(s.call, warmConcurrency, quick ? WARMUP.quick : WARMUP.full);
  const runs = new Map<string, RunResult[]>(systems.map((s) => [s.name, []]));
  const rand = mulberry32(systems.length * 1000 + concurrency + (rate ?? 0));
  await settle(); // the warm-ups' garbage: nobody's
  for (let round = 0; round < rounds; round++) {
    const order = shuffle(systems, rand);
    for (const s of order) {
      const state = await probe?.start();
      const r = await run(s.name, seconds, s.call, {
        ...base,
        ...(s.sidecarCpu ? { sidecarCpu: s.sidecarCpu } : {}),
      });
      if (probe) r.extra = await probe.end(state);
      runs.get(s.name)?.push(billGc(r, await settle()));
    }
  }
  return systems.map((s) => median(runs.get(s.name) ?? []));
}

/** Per-round ratios of one system to the baseline, each round's two runs side by side. */
export interface Paired {
  system: string;
  concurrency: number;
  rate?: number;
  group?: string;
  /** rps(system) / rps(baseline), one per round. */
  rps: number[];
  /** p50(system) / p50(baseline), one per round. */
  p50: number[];
  /** p99(system) / p99(baseline), one per round. */
  p99: number[];
}

/**
 * Ratios paired within each slice of interleaveBlocks() (or each round of runs): the two sides
 * of a pair ran close together in time, so drift in what the rest of the machine does (the A/A
 * control shows how much) mostly cancels, where a ratio of two totals or medians keeps it.
 */
export function pairedRatios(rounds: RunResult[][], baseline: string): Paired[] {
  const out = new Map<string, Paired>();
  for (const round of rounds) {
    const base = round.find((r) => r.system === baseline);
    if (!base) continue;
    for (const r of round) {
      if (r.system === baseline) continue;
      let p = out.get(r.system);
      if (!p) {
        p = {
          system: r.system,
          concurrency: r.concurrency,
          ...(r.rate === undefined ? {} : { rate: r.rate }),
          ...(r.group === undefined ? {} : { group: r.group }),
          rps: [],
          p50: [],
          p99: [],
        };
        out.set(r.system, p);
      }
      p.rps.push(r.rps / base.rps);
      p.p50.push(r.p50Ms / base.p50Ms);
      p.p99.push(r.p99Ms / base.p99Ms);
    }
  }
  return [...out.values()];
}

/** The median of a list (NaN when empty). */
export function medianOf(xs: number[]): number {
  return mid(xs);
}

/** A markdown table of paired ratios: median and range over the rounds. */
export function pairedTable(paired: Paired[], baseline: string): string {
  const range = (xs: number[]) => `${fmt(medianOf(xs))}× | ${fmt(Math.min(...xs))}-${fmt(Math.max(...xs))}`;
  const rows = [
    `Paired with ${baseline} within each round (median, then the range over rounds):`,
    '',
    '| system | conc / rate | req/s ratio | range | p50 ratio | range | p99 ratio | range |',
    '|---|---:|---:|---|---:|---|---:|---|',
  ];
  for (const p of paired)
    rows.push(
      `| ${p.system} | ${p.rate === undefined ? p.concurrency : `${p.rate}/s`} | ${range(p.rps)} | ${range(p.p50)} | ${range(p.p99)} |`,
    );
  return rows.join('\n');
}

/** A system that runs in its own process (bench/support/system-process.ts). */
export interface ProcessSystem {
  name: string;
  /** Path of the module whose export builds the system. */
  module: string;
  /** Name of that export: `(args) => Promise<{ call, close }>`. */
  export: string;
  /** JSON-serialisable arguments for it. */
  args: Record<string, unknown>;
}

export interface SystemHandle {
  name: string;
  pid: number;
  send(cmd: SystemCommand, timeoutMs: number): Promise<SystemReply>;
}

/** Starts one process per system and waits until each has built its system. Bounded: 20 s. */
export async function startSystems(specs: ProcessSystem[]): Promise<SystemHandle[]> {
  const script = fileURLToPath(new URL('./system-process.ts', import.meta.url));
  const handles = specs.map((spec) => {
    const child = fork(script, [spec.module, spec.export, JSON.stringify(spec.args)], {
      serialization: 'advanced',
      // A plain Node: not the flags of whatever runs the bench (a test runner's, --expose-gc).
      execArgv: [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    trackChild(child);
    const waiting: ((m: SystemReply | Error) => void)[] = [];
    child.on('message', (m: SystemReply) => waiting.shift()?.(m));
    child.once('exit', (code) => {
      for (const w of waiting.splice(0)) w(new Error(`${spec.name}: system process exited (${code})`));
    });
    const next = (timeoutMs: number) =>
      new Promise<SystemReply>((resolve, reject) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`${spec.name}: no answer within ${timeoutMs} ms`));
        }, timeoutMs);
        waiting.push((m) => {
          clearTimeout(timer);
          if (m instanceof Error) reject(m);
          else if (m.op === 'error') reject(new Error(`${spec.name}: ${m.message}`));
          else resolve(m);
        });
      });
    // Five processes load the mesh on one pinned core at once: on a machine busy with other work
    // that took more than 20 s.
    const ready = next(60_000);
    const handle: SystemHandle = {
      name: spec.name,
      pid: child.pid ?? 0,
      send(cmd, timeoutMs) {
        if (!child.connected) return Promise.reject(new Error(`${spec.name}: system process is gone`));
        const reply = next(timeoutMs);
        // A failed send (the process died in between) fails the reply through 'exit'.
        child.send(cmd, (err) => {
          if (err) child.kill('SIGKILL');
        });
        return reply;
      },
    };
    return { handle, ready };
  });
  const settled = await Promise.allSettled(handles.map((h) => h.ready));
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) {
    await stopSystems(handles.map((h) => h.handle));
    throw (failed as PromiseRejectedResult).reason;
  }
  return handles.map((h) => h.handle);
}

/** Closes every system and lets its process exit. Bounded: 10 s each, then killed. */
export async function stopSystems(handles: SystemHandle[]): Promise<void> {
  await Promise.all(
    handles.map((h) =>
      h.send({ op: 'close' }, 10_000).catch(() => {
        try {
          process.kill(h.pid, 'SIGKILL');
        } catch {}
      }),
    ),
  );
}

/**
 * Measures systems that each run in their own process (startSystems) at one concurrency, in
 * short alternating blocks instead of runs of seconds each. A block is `concurrency` closed loops
 * in one system's process sharing a fixed number of requests; the systems take turns block by
 * block, in a new seeded pseudo-random order each cycle, until each has had about `seconds` of
 * blocks. Each system's latencies go to its own histogram, its req/s is its requests over the
 * wall time of its own blocks, its CPU is its own process's over its blocks.
 *
 * Why: blocks last tens of milliseconds, so when the machine's other tenants slow it down, every
 * system feels it alike (with runs of seconds each, the A/A control moved 0.7-1.35× between
 * runs). Own processes: no system pays for another's garbage collections (raw undici's request
 * API promotes ~2.5 KB a request), and none runs on JIT code made polymorphic by the others'
 * handlers (undici's client code sees one kind of handler per process, as in a service).
 * Every slice's results (about 1 s of the `baseline`'s blocks, every system's blocks of the same
 * cycles) come back too, for pairedRatios().
 */
export async function interleaveBlocks(
  systems: SystemHandle[],
  concurrency: number,
  { seconds, quick = false, baseline }: { seconds: number; quick?: boolean; baseline: string },
): Promise<{ results: RunResult[]; slices: RunResult[][] }> {
  const w = quick ? WARMUP.quick : WARMUP.full;
  for (const s of systems) await s.send({ op: 'warm', concurrency, w }, (w.maxSeconds + 20) * 1000);
  const blockRequests = Math.max(1000, 40 * concurrency);
  const sliceMs = quick ? 300 : 1000;
  interface Acc {
    hist: Histogram;
    requests: number;
    errors: number;
    wallMs: number;
    cpuUs: number;
  }
  const fresh = (): Acc => ({ hist: newHistogram(), requests: 0, errors: 0, wallMs: 0, cpuUs: 0 });
  const total = new Map<string, Acc>(systems.map((s) => [s.name, fresh()]));
  const slices: Map<string, Acc>[] = [];
  let slice = new Map<string, Acc>(systems.map((s) => [s.name, fresh()]));
  const rand = mulberry32(systems.length * 7919 + concurrency);
  // The warm-ups ran one system after the other, so the first sat idle longest before the
  // measurement. A few unrecorded cycles of blocks first put every system in the same rhythm.
  const lead = 3;
  for (let i = 0; i < lead; i++)
    for (const s of shuffle(systems, rand))
      await s.send({ op: 'block', concurrency, requests: blockRequests }, 60_000);
  const budgetMs = seconds * 1000 * systems.length;
  const t0 = performance.now();
  while (performance.now() - t0 < budgetMs) {
    for (const s of shuffle(systems, rand)) {
      const r = await s.send({ op: 'block', concurrency, requests: blockRequests }, 60_000);
      if (r.op !== 'block') throw new Error(`${s.name}: unexpected reply ${r.op}`);
      for (const a of [total.get(s.name), slice.get(s.name)] as Acc[]) {
        for (const us of r.latUs) a.hist.recordValue(us);
        a.requests += r.latUs.length;
        a.errors += r.errors;
        a.wallMs += r.wallMs;
        a.cpuUs += r.cpuUs;
      }
    }
    if ((slice.get(baseline)?.wallMs ?? 0) >= sliceMs) {
      slices.push(slice);
      slice = new Map<string, Acc>(systems.map((s) => [s.name, fresh()]));
    }
  }
  const result = (name: string, a: Acc): RunResult =>
    runResult(a.hist, {
      system: name,
      concurrency,
      requests: a.requests,
      errors: a.errors,
      seconds: a.wallMs / 1000,
      cpuSeconds: a.cpuUs / 1e6,
      sidecarCpuSeconds: 0,
      rounds: slices.length,
    });
  const results = systems.map((s) => result(s.name, total.get(s.name) as Acc));
  const sliceResults = slices.map((sl) => systems.map((s) => result(s.name, sl.get(s.name) as Acc)));
  for (const a of total.values()) a.hist.destroy();
  for (const sl of [...slices, slice]) for (const a of sl.values()) a.hist.destroy();
  return { results, slices: sliceResults };
}

// ---------------------------------------------------------------------------------------------
// Tables

export function fmt(n: number, digits = 2): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

function ratio(a: number, b: number | undefined): string {
  return b && Number.isFinite(a) && Number.isFinite(b) ? `${fmt(a / b)}×` : '-';
}

/**
 * A markdown table of results with ratios against `baseline` in the same group and at the
 * same concurrency: throughput, p50, p99, p99.9 and requests per CPU-second.
 */
export function ratioTable(results: RunResult[], baseline: string): string {
  const rows = [
    '| system | conc / rate | req/s | × base | p50 ms | × base | p99 ms | × base | p99.9 ms | req/CPU-s | × base | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    const base = results.find((b) => b.system === baseline && sameCell(b, r));
    rows.push(
      `| ${r.system} | ${r.rate === undefined ? r.concurrency : `${r.rate}/s`} | ${fmt(r.rps, 0)} | ${ratio(r.rps, base?.rps)} | ${fmt(r.p50Ms, 3)} | ${ratio(r.p50Ms, base?.p50Ms)} | ${fmt(r.p99Ms, 3)} | ${ratio(r.p99Ms, base?.p99Ms)} | ${fmt(r.p999Ms, 3)} | ${fmt(r.reqPerCpuSecond, 0)} | ${ratio(r.reqPerCpuSecond, base?.reqPerCpuSecond)} | ${r.errors} |`,
    );
  }
  return rows.join('\n');
}

/** A markdown table of target checks. */
export function targetTable(targets: Target[]): string {
  const rows = ['| where | check | value | |', '|---|---|---|---|'];
  for (const t of targets)
    rows.push(`| ${t.where} | ${t.check} | ${t.value} | ${t.pass ? 'pass' : '**miss**'} |`);
  return `${rows.join('\n')}\n`;
}

export interface BenchArgs extends ScenarioOptions {
  /** `--only a,b`: run just these scenarios. */
  only: string[] | undefined;
}

export function parseArgs(argv: string[]): BenchArgs {
  const i = argv.indexOf('--only');
  const listed = i >= 0 ? (argv[i + 1]?.split(',').filter(Boolean) ?? []) : [];
  // Scenario names may also be given as they are: `npm run bench -- soak`.
  const positional = argv.filter((a, j) => !a.startsWith('--') && (i < 0 || j !== i + 1));
  const only = [...listed, ...positional];
  return { quick: argv.includes('--quick'), only: only.length > 0 ? only : undefined };
}
