// The bench's own machinery (bench/support): medians, tables, charts, CPU accounting, the
// open-loop generator and the HAProxy sidecar. No speed is asserted here.
import { createServer, type Server } from 'node:http';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureHaproxy, haproxyConfig, startHaproxy } from '../bench/support/haproxy.ts';
import {
  interleaveBlocks,
  loadAtRate,
  median,
  pairedRatios,
  processCpuSeconds,
  type RunResult,
  ratioTable,
  startSystems,
  stopSystems,
  targetTable,
  warmUp,
} from '../bench/support/harness.ts';
import { groupResults, isRunResults, scenarioSvg } from '../bench/support/svg.ts';

function result(system: string, rps: number, p50: number, extra: Partial<RunResult> = {}): RunResult {
  return {
    system,
    concurrency: 8,
    requests: rps,
    errors: 0,
    seconds: 1,
    rps,
    p50Ms: p50,
    p90Ms: p50 * 2,
    p99Ms: p50 * 4,
    p999Ms: p50 * 8,
    percentilesMs: { p50: p50, p90: p50 * 2, p99: p50 * 4, 'p99.9': p50 * 8 },
    cpuSeconds: 0.5,
    sidecarCpuSeconds: 0,
    reqPerCpuSecond: rps * 2,
    rounds: 1,
    ...extra,
  };
}

describe('median', () => {
  it('takes the middle of an odd count and the mean of the two middles of an even count', () => {
    const odd = median([result('a', 10, 1), result('a', 30, 3), result('a', 20, 2)]);
    expect(odd.rps).toBe(20);
    expect(odd.percentilesMs.p50).toBe(2);
    expect(odd.rounds).toBe(3);
    expect(odd.requests).toBe(60);
    const even = median([result('a', 10, 1), result('a', 20, 2)]);
    expect(even.rps).toBe(15);
    expect(even.p50Ms).toBe(1.5);
  });

  it('takes medians of the scenario-specific numbers too', () => {
    const m = median([
      result('a', 1, 1, { extra: { share: 0.1 } }),
      result('a', 1, 1, { extra: { share: 0.5 } }),
      result('a', 1, 1, { extra: { share: 0.2 } }),
    ]);
    expect(m.extra).toEqual({ share: 0.2 });
  });
});

describe('tables', () => {
  it('gives ratios against the baseline in the same group and cell only', () => {
    const rows = [
      result('undici Pool', 100, 1),
      result('mesh.dispatcher', 90, 1.1),
      result('undici Pool', 50, 1, { group: 'slow' }),
      result('mesh.dispatcher', 100, 1, { group: 'slow' }),
    ];
    const table = ratioTable(rows, 'undici Pool');
    expect(table).toContain('| mesh.dispatcher | 8 | 90 | 0.90× |');
    expect(table).toContain('| mesh.dispatcher | 8 | 100 | 2.00× |');
    expect(targetTable([{ where: 'x', check: 'c', value: 'v', pass: false }])).toContain('**miss**');
  });
});

describe('charts', () => {
  it('draws one row per group with every system, and no NaN coordinates', () => {
    const rows = [
      result('undici Pool', 100, 1),
      result('mesh.dispatcher', 90, 1.1),
      result('a & <b>', 80, 0.2),
      result('undici Pool', 40, 1, { rate: 40, concurrency: 100 }),
      result('mesh.dispatcher', 40, 1.1, { rate: 40, concurrency: 100 }),
    ];
    expect(isRunResults(rows)).toBe(true);
    const groups = groupResults(rows, 'undici Pool');
    expect(groups.map((g) => g.title)).toEqual(['concurrency 8', 'fixed rate 40 req/s']);
    const svg = scenarioSvg('t', groups, 'sub');
    expect(svg.startsWith('<svg ')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect(svg).not.toContain('NaN');
    expect(svg).not.toContain('Infinity');
    expect(svg).toContain('a &amp; &lt;b&gt;');
    expect(svg).toContain('0.90×');
    // Every opened element is closed (a cheap well-formedness check).
    const opened = svg.match(/<(svg|text|path|circle|rect|title|style)(\s[^>]*[^/])?>/g)?.length ?? 0;
    const closed = svg.match(/<\/(svg|text|path|circle|rect|title|style)>/g)?.length ?? 0;
    expect(opened).toBe(closed);
  });
});

describe('CPU and open loop', () => {
  it('reads a live process CPU from /proc and it only grows', () => {
    const a = processCpuSeconds(process.pid);
    let x = 0;
    for (let i = 0; i < 2e7; i++) x += i;
    expect(x).toBeGreaterThan(0);
    expect(processCpuSeconds(process.pid)).toBeGreaterThanOrEqual(a);
  });

  it('starts rate × seconds requests and drops what exceeds the in-flight bound', async () => {
    const ok = await loadAtRate('ok', 200, 0.1, async () => {});
    expect(ok.requests + ok.errors).toBe(20);
    expect(ok.errors).toBe(0);
    expect(ok.rate).toBe(200);
    const stuck = await loadAtRate('slow', 200, 0.1, () => new Promise((r) => setTimeout(r, 150)), {
      maxInflight: 2,
    });
    expect(stuck.requests).toBe(2);
    expect(stuck.errors).toBe(18);
  });
});

describe('haproxy sidecar', () => {
  it('generates a keep-alive round-robin config over the given backends', () => {
    const cfg = haproxyConfig(8080, ['127.0.0.1:1', '127.0.0.1:2']);
    expect(cfg).toContain('bind 127.0.0.1:8080');
    expect(cfg).toContain('option http-keep-alive');
    expect(cfg).toContain('balance roundrobin');
    expect(cfg).toContain('server u0 127.0.0.1:1');
    expect(cfg).toContain('server u1 127.0.0.1:2');
  });

  // The global setup installs haproxy; MESHWORK_BENCH_NO_INSTALL=1 is the only way to skip this.
  const noInstall = process.env.MESHWORK_BENCH_NO_INSTALL === '1';
  const haproxy = noInstall ? undefined : ensureHaproxy(() => {});
  const skipReason = noInstall
    ? 'MESHWORK_BENCH_NO_INSTALL=1'
    : haproxy && !haproxy.ok
      ? haproxy.note
      : undefined;
  if (skipReason) console.warn(`[skip] the haproxy sidecar test is SKIPPED: ${skipReason}`);
  let server: Server;
  let port = 0;
  beforeAll(async () => {
    server = createServer((_req, res) => res.end('hi'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it.skipIf(skipReason !== undefined)(
    `proxies to a real upstream and reports its own CPU${skipReason ? ` (SKIPPED: ${skipReason})` : ''}`,
    async () => {
      const hp = await startHaproxy([`127.0.0.1:${port}`]);
      try {
        const r = await request(`http://${hp.address}/`);
        expect(r.statusCode).toBe(200);
        expect(await r.body.text()).toBe('hi');
        expect(hp.cpuSeconds()).toBeGreaterThanOrEqual(0);
      } finally {
        await hp.stop();
      }
    },
  );
});

describe('pairedRatios', () => {
  it('divides each system by the baseline of the same round, round by round', () => {
    const rounds = [
      [result('raw', 100, 1), result('mesh', 90, 1.2)],
      [result('mesh', 50, 2), result('raw', 40, 2.5)],
    ];
    const [p] = pairedRatios(rounds, 'raw');
    expect(p?.system).toBe('mesh');
    expect(p?.rps).toEqual([0.9, 1.25]);
    expect(p?.p50.map((x) => Number(x.toFixed(2)))).toEqual([1.2, 0.8]);
    expect(p?.p99.map((x) => Number(x.toFixed(2)))).toEqual([1.2, 0.8]);
  });

  it('skips a round without the baseline', () => {
    expect(pairedRatios([[result('mesh', 1, 1)]], 'raw')).toEqual([]);
  });
});

describe('warmUp', () => {
  it('runs until both the minimum time and the minimum requests are reached', async () => {
    const t0 = performance.now();
    const n = await warmUp(() => Promise.resolve(), 4, { minSeconds: 0.05, minRequests: 500, maxSeconds: 5 });
    expect(n).toBeGreaterThanOrEqual(500);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(45);
  });

  it('stops at maxSeconds however few requests ran, and failures count as requests', async () => {
    const t0 = performance.now();
    const slowFail = () => new Promise<void>((_, reject) => setTimeout(() => reject(new Error('x')), 20));
    const n = await warmUp(slowFail, 2, { minSeconds: 0, minRequests: 1_000_000, maxSeconds: 0.2 });
    const ms = performance.now() - t0;
    expect(n).toBeGreaterThan(2);
    expect(ms).toBeLessThan(2000);
  });
});

describe('interleaveBlocks', () => {
  it('runs each system in its own process, block by block, and pairs ratios per slice', async () => {
    const module = new URL('./fixtures/bench-system.ts', import.meta.url).pathname;
    const systems = await startSystems([
      { name: 'base', module, export: 'fixtureSystem', args: {} },
      { name: 'flaky', module, export: 'fixtureSystem', args: { failEvery: 2 } },
    ]);
    try {
      expect(new Set(systems.map((s) => s.pid)).size).toBe(2);
      expect(systems.every((s) => s.pid !== process.pid)).toBe(true);
      const { results, slices } = await interleaveBlocks(systems, 2, {
        seconds: 0.7,
        quick: true,
        baseline: 'base',
      });
      const base = results.find((r) => r.system === 'base');
      const flaky = results.find((r) => r.system === 'flaky');
      expect(base?.requests).toBeGreaterThan(0);
      expect(base?.errors).toBe(0);
      expect(base?.cpuSeconds).toBeGreaterThan(0);
      expect(Number.isFinite(base?.p99Ms)).toBe(true);
      // Half of the flaky system's calls fail: counted as errors, no latency recorded.
      expect(flaky?.errors).toBeGreaterThan(0);
      expect(Math.abs((flaky?.errors ?? 0) - (flaky?.requests ?? 0))).toBeLessThanOrEqual(1000);
      expect(slices.length).toBeGreaterThan(0);
      const paired = pairedRatios(slices, 'base');
      expect(paired.map((p) => p.system)).toEqual(['flaky']);
      expect(paired[0]?.rps.length).toBeGreaterThan(0);
    } finally {
      await stopSystems(systems);
    }
  }, 30_000);

  it('fails at once for a module without the named export (its process exits)', async () => {
    const module = new URL('./fixtures/bench-system.ts', import.meta.url).pathname;
    await expect(startSystems([{ name: 'x', module, export: 'nope', args: {} }])).rejects.toThrow(
      /exited|nope/,
    );
  }, 30_000);
});
