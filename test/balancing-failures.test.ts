/**
 * Failure-aware balancing on real servers: a replica that fails fast must not attract traffic
 * (a fast 503 looks fast to a latency-only balancer).
 */
import { describe, expect, it } from 'vitest';
import { useFixture } from './support/fixture.ts';
import { seededRandom } from './support/seeded-random.ts';

const { server, mesh } = useFixture();

async function shareOfBad(failShare: number, cfg: Record<string, unknown>): Promise<number> {
  const random = seededRandom(17);
  const good = await Promise.all([1, 2, 3, 4].map(() => server()));
  const bad = await server((_req, res) => {
    if (random() < failShare) {
      res.statusCode = 503;
      res.end('down');
    } else res.end('ok');
  });
  const m = mesh(cfg, [...good.map((g) => g.address), bad.address]);
  const run = async (n: number) => {
    let next = 0;
    const worker = async () => {
      while (next++ < n) await (await m.fetch('http://svc/x')).text();
    };
    await Promise.all(Array.from({ length: 8 }, worker));
  };
  // Steady state: after a warm-up in which the balancer learns (as the bench measures it).
  await run(200);
  const before = [...good, bad].map((s) => s.hits.length);
  await run(800);
  const after = [...good, bad].map((s) => s.hits.length);
  const sent = after.map((n, i) => n - (before[i] as number));
  const share = (sent[4] as number) / sent.reduce((a, b) => a + b, 0);
  return share;
}

describe('a replica that fails fast (PEAK_EWMA, the default)', () => {
  it('failing 30% of requests at once, it gets at most 15% of attempts (defaults)', async () => {
    expect(await shareOfBad(0.3, {})).toBeLessThanOrEqual(0.15);
  });

  it('failing every request at once, it gets under 2% of attempts even with outlier detection off', async () => {
    const share = await shareOfBad(1, { trafficPolicy: { outlierDetection: { enabled: false } } });
    expect(share).toBeLessThan(0.02);
  });
});
