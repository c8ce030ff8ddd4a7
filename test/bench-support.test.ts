// The bench's own machinery (bench/support): medians, tables, charts, CPU accounting, the
// open-loop generator and the HAProxy sidecar. No speed is asserted here.
import { createServer, type Server } from 'node:http';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureHaproxy, haproxyConfig, startHaproxy } from '../bench/support/haproxy.ts';
import {
  loadAtRate,
  median,
  processCpuSeconds,
  type RunResult,
  ratioTable,
  targetTable,
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

  const available = ensureHaproxy(() => {}).ok && process.env.MESHWORK_BENCH_NO_INSTALL !== '1';
  let server: Server;
  let port = 0;
  beforeAll(async () => {
    server = createServer((_req, res) => res.end('hi'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it.skipIf(!available)('proxies to a real upstream and reports its own CPU', async () => {
    const hp = await startHaproxy([`127.0.0.1:${port}`]);
    try {
      const r = await request(`http://${hp.address}/`);
      expect(r.statusCode).toBe(200);
      expect(await r.body.text()).toBe('hi');
      expect(hp.cpuSeconds()).toBeGreaterThanOrEqual(0);
    } finally {
      await hp.stop();
    }
  });
});
