import { describe, expect, it } from 'vitest';
import { Endpoint } from '../balancer/endpoint.ts';
import {
  ejectionTimeMs,
  failurePercentageOutliers,
  OUTLIER_DEFAULTS,
  OutlierDetector,
  type OutlierSettings,
  outlierSettings,
  successRateOutliers,
} from './outlier.ts';

function endpoints(n: number): Endpoint[] {
  return Array.from(
    { length: n },
    (_, i) =>
      new Endpoint(
        { address: `10.0.0.${i}:80`, host: `10.0.0.${i}`, port: 80, labels: {}, weight: 1 },
        { now: 0 },
      ),
  );
}

describe('outlier math', () => {
  it('success rate: below mean − 1.9 stdev', () => {
    const stats = [
      { ok: 100, failed: 0 },
      { ok: 100, failed: 0 },
      { ok: 99, failed: 1 },
      { ok: 100, failed: 0 },
      { ok: 0, failed: 100 },
    ];
    expect(successRateOutliers(stats, 5, 100, 1900)).toEqual([4]);
    expect(successRateOutliers(stats, 6, 100, 1900)).toEqual([]);
    expect(successRateOutliers(stats, 5, 101, 1900)).toEqual([]);
  });

  it('failure percentage: above the threshold', () => {
    const stats = [
      { ok: 50, failed: 0 },
      { ok: 5, failed: 45 },
      { ok: 49, failed: 1 },
    ];
    expect(failurePercentageOutliers(stats, 3, 50, 85)).toEqual([1]);
    expect(failurePercentageOutliers(stats, 3, 50, 95)).toEqual([]);
    expect(failurePercentageOutliers(stats, 4, 50, 85)).toEqual([]);
  });

  it('ejection time is base × n, capped at max', () => {
    expect(ejectionTimeMs(30_000, 300_000, 1)).toBe(30_000);
    expect(ejectionTimeMs(30_000, 300_000, 3)).toBe(90_000);
    expect(ejectionTimeMs(30_000, 300_000, 50)).toBe(300_000);
  });
});

describe('OutlierDetector', () => {
  it('ejects after 5 consecutive 5xx, at least one host despite 10%, and brings it back', () => {
    const eps = endpoints(5);
    const d = new OutlierDetector(outlierSettings({ interval: 3_600_000 })!, 0);
    const bad = eps[0]!;
    for (let i = 0; i < 4; i++) d.observe(bad, 'gateway', eps, 1);
    expect(bad.isEjected(1)).toBe(false);
    d.observe(bad, 'gateway', eps, 1);
    expect(bad.isEjected(1)).toBe(true);
    expect(bad.ejectedUntil).toBe(30_001);
    // A second host cannot be ejected: 2/5 > 10%.
    for (let i = 0; i < 5; i++) d.observe(eps[1]!, '5xx', eps, 2);
    expect(eps[1]!.isEjected(2)).toBe(false);
    // Back after its ejection time; the second ejection lasts twice as long.
    expect(bad.isEjected(30_002)).toBe(false);
    for (let i = 0; i < 5; i++) d.observe(bad, '5xx', eps, 30_002);
    expect(bad.ejectedUntil).toBe(30_002 + 60_000);
  });

  it('a success resets the count; 0 disables; local-origin failures count as 5xx unless split', () => {
    const eps = endpoints(5);
    const d = new OutlierDetector(outlierSettings({ consecutive5xxErrors: 3 })!, 0);
    d.observe(eps[0]!, '5xx', eps, 1);
    d.observe(eps[0]!, '5xx', eps, 1);
    d.observe(eps[0]!, 'success', eps, 1);
    d.observe(eps[0]!, '5xx', eps, 1);
    d.observe(eps[0]!, 'local', eps, 1);
    expect(eps[0]!.isEjected(1)).toBe(false);
    d.observe(eps[0]!, 'local', eps, 1);
    expect(eps[0]!.isEjected(1)).toBe(true);

    const off = new OutlierDetector(outlierSettings({ consecutive5xxErrors: 0 })!, 0);
    for (let i = 0; i < 50; i++) off.observe(eps[1]!, '5xx', eps, 1);
    expect(eps[1]!.isEjected(1)).toBe(false);

    const split = new OutlierDetector(outlierSettings({ consecutiveLocalOriginFailures: 2 })!, 0);
    split.observe(eps[2]!, 'local', eps, 2);
    split.observe(eps[2]!, 'local', eps, 2);
    expect(eps[2]!.isEjected(2)).toBe(false); // eps[0] is ejected and 2/5 > 10%
    expect(outlierSettings({ enabled: false })).toBeUndefined();
  });

  it('never ejects the last available endpoint', () => {
    const eps = endpoints(1);
    const d = new OutlierDetector(outlierSettings({ consecutive5xxErrors: 1 })!, 0);
    d.observe(eps[0]!, '5xx', eps, 1);
    expect(eps[0]!.isEjected(1)).toBe(false);
  });

  it('success-rate ejection runs at the interval', () => {
    const eps = endpoints(5);
    const d = new OutlierDetector(
      outlierSettings({ consecutive5xxErrors: 0, maxEjectionPercent: 100 })!,
      0,
      () => 0,
    );
    for (const ep of eps)
      for (let i = 0; i < 100; i++) d.observe(ep, ep === eps[3] ? '5xx' : 'success', eps, 5);
    expect(eps[3]!.isEjected(5)).toBe(false);
    d.observe(eps[0]!, 'success', eps, 10_001);
    expect(eps[3]!.isEjected(10_001)).toBe(true);
    expect(eps[0]!.isEjected(10_001)).toBe(false);
  });
});

describe('the ejection reason names the setting whose counter tripped', () => {
  function reasons(
    cfg: Parameters<typeof outlierSettings>[0],
    outcome: 'gateway' | '5xx' | 'local',
    n: number,
  ) {
    const eps = endpoints(5);
    const d = new OutlierDetector(outlierSettings({ interval: 3_600_000, ...cfg })!, 0);
    const seen: string[] = [];
    d.onEject = (_ep, _ms, reason) => seen.push(reason);
    for (let i = 0; i < n; i++) d.observe(eps[0]!, outcome, eps, 1);
    return seen;
  }

  it('consecutive5xxErrors, consecutiveGatewayErrors, consecutiveLocalOriginFailures', () => {
    expect(reasons({}, '5xx', 5)).toEqual(['consecutive5xxErrors']);
    expect(reasons({}, 'gateway', 5)).toEqual(['consecutive5xxErrors']);
    expect(reasons({ consecutiveGatewayErrors: 3 }, 'gateway', 3)).toEqual(['consecutiveGatewayErrors']);
    expect(reasons({ consecutiveLocalOriginFailures: 2 }, 'local', 2)).toEqual([
      'consecutiveLocalOriginFailures',
    ]);
    // Without the split, a local-origin failure counts as a 5xx (Envoy).
    expect(reasons({}, 'local', 5)).toEqual(['consecutive5xxErrors']);
  });

  it('successRate and failurePercentage, at the interval', () => {
    for (const [cfg, expected] of [
      [{ successRateMinimumHosts: 5, successRateRequestVolume: 10 }, 'successRate'],
      [
        { enforcingSuccessRate: 0, enforcingFailurePercentage: 100, failurePercentageRequestVolume: 10 },
        'failurePercentage',
      ],
    ] as const) {
      const eps = endpoints(5);
      const d = new OutlierDetector(
        outlierSettings({ interval: 1_000, consecutive5xxErrors: 0, ...cfg })!,
        0,
        () => 0,
      );
      const seen: string[] = [];
      d.onEject = (_ep, _ms, reason) => seen.push(reason);
      for (const ep of eps)
        for (let i = 0; i < 20; i++) d.observe(ep, ep === eps[0] ? '5xx' : 'success', eps, 1);
      d.observe(eps[1]!, 'success', eps, 1_001);
      expect(seen).toEqual([expected]);
    }
  });
});

describe('outlier settings', () => {
  it('are Istio’s, Envoy’s and gRPC A50’s defaults when nothing is configured', () => {
    expect(outlierSettings(undefined)).toEqual({
      ...OUTLIER_DEFAULTS,
      splitLocalOrigin: false,
      errorCodes: undefined,
    });
    expect(outlierSettings({})).toEqual(outlierSettings(undefined));
  });

  it('take every configured field', () => {
    const s = outlierSettings({
      consecutive5xxErrors: 1,
      consecutiveGatewayErrors: 2,
      consecutiveLocalOriginFailures: 3,
      outlierDetectionHttpErrorCodes: [500, 429],
      interval: 4,
      baseEjectionTime: 5,
      maxEjectionTime: 6,
      maxEjectionPercent: 7,
      minHealthPercent: 8,
      successRateMinimumHosts: 9,
      successRateRequestVolume: 10,
      successRateStdevFactor: 11,
      enforcingSuccessRate: 12,
      failurePercentageThreshold: 13,
      failurePercentageMinimumHosts: 14,
      failurePercentageRequestVolume: 15,
      enforcingFailurePercentage: 16,
    });
    expect(s).toEqual({
      consecutive5xxErrors: 1,
      consecutiveGatewayErrors: 2,
      consecutiveLocalOriginFailures: 3,
      splitLocalOrigin: true,
      errorCodes: new Set([500, 429]),
      intervalMs: 4,
      baseEjectionTimeMs: 5,
      maxEjectionTimeMs: 6,
      maxEjectionPercent: 7,
      minHealthPercent: 8,
      successRateMinimumHosts: 9,
      successRateRequestVolume: 10,
      successRateStdevFactor: 11,
      enforcingSuccessRate: 12,
      failurePercentageThreshold: 13,
      failurePercentageMinimumHosts: 14,
      failurePercentageRequestVolume: 15,
      enforcingFailurePercentage: 16,
    });
    expect(outlierSettings({ enabled: true })?.consecutive5xxErrors).toBe(5);
  });
});

describe('outlier math: the edges', () => {
  // Rates 1, 1, 0.5, 0.5: mean 0.75, stdev 0.25, all exact in binary floating point.
  const stats = [
    { ok: 100, failed: 0 },
    { ok: 100, failed: 0 },
    { ok: 50, failed: 50 },
    { ok: 50, failed: 50 },
  ];

  it('success rate: strictly below mean − (factor / 1000) × stdev', () => {
    expect(successRateOutliers(stats, 4, 100, 1000)).toEqual([]); // threshold 0.5: not below
    expect(successRateOutliers(stats, 4, 100, 999)).toEqual([2, 3]);
    expect(successRateOutliers(stats, 4, 100, 500)).toEqual([2, 3]); // threshold 0.625
    expect(successRateOutliers(stats, 4, 100, 4000)).toEqual([]);
  });

  it('success rate: only hosts with the request volume count, for the minimum too', () => {
    const s = [...stats, { ok: 0, failed: 99 }];
    // The fifth host (99 requests) is left out: it is neither an outlier nor counted as a host.
    expect(successRateOutliers(s, 4, 100, 999)).toEqual([2, 3]);
    expect(successRateOutliers(s, 5, 100, 999)).toEqual([]);
    expect(successRateOutliers(s, 5, 99, 999)).toEqual([4]);
  });

  it('failure percentage: strictly above the threshold, with the request volume', () => {
    const s = [
      { ok: 15, failed: 85 },
      { ok: 14, failed: 86 },
      { ok: 100, failed: 0 },
      { ok: 0, failed: 99 },
    ];
    expect(failurePercentageOutliers(s, 3, 100, 85)).toEqual([1]);
    expect(failurePercentageOutliers(s, 3, 99, 85)).toEqual([1, 3]);
    expect(failurePercentageOutliers(s, 4, 100, 85)).toEqual([]);
    expect(failurePercentageOutliers(s, 4, 99, 85)).toEqual([1, 3]);
    expect(failurePercentageOutliers(s, 3, 100, 84)).toEqual([0, 1]);
  });

  it('ejection time is at least the base, even when the max is below it', () => {
    expect(ejectionTimeMs(30_000, 10_000, 1)).toBe(30_000);
    expect(ejectionTimeMs(30_000, 10_000, 5)).toBe(30_000);
    expect(ejectionTimeMs(10_000, 25_000, 2)).toBe(20_000);
    expect(ejectionTimeMs(10_000, 25_000, 3)).toBe(25_000);
  });
});

describe('OutlierDetector: consecutive errors', () => {
  function detector(cfg: Parameters<typeof outlierSettings>[0], n = 5) {
    const eps = endpoints(n);
    const d = new OutlierDetector(
      outlierSettings({ interval: 3_600_000, maxEjectionPercent: 100, ...cfg }) as OutlierSettings,
      0,
    );
    const seen: [string, number, string][] = [];
    d.onEject = (ep, ms, reason) => seen.push([ep.address, ms, reason]);
    return { eps, d, seen };
  }

  it('a success resets the gateway-error count and the local-origin count too', () => {
    const g = detector({ consecutive5xxErrors: 0, consecutiveGatewayErrors: 3 });
    const [a] = g.eps as [Endpoint];
    for (const o of ['gateway', 'gateway', 'success', 'gateway', 'gateway'] as const)
      g.d.observe(a, o, g.eps, 1);
    expect(a.isEjected(1)).toBe(false);
    g.d.observe(a, 'gateway', g.eps, 1);
    expect(g.seen).toEqual([['10.0.0.0:80', 30_000, 'consecutiveGatewayErrors']]);

    const l = detector({ consecutive5xxErrors: 0, consecutiveLocalOriginFailures: 3 });
    const [b] = l.eps as [Endpoint];
    for (const o of ['local', 'local', 'success', 'local', 'local'] as const) l.d.observe(b, o, l.eps, 1);
    expect(b.isEjected(1)).toBe(false);
    l.d.observe(b, 'local', l.eps, 1);
    expect(l.seen.map((s) => s[2])).toEqual(['consecutiveLocalOriginFailures']);
  });

  it('a 5xx (not a gateway error) does not count towards consecutiveGatewayErrors', () => {
    const { eps, d } = detector({ consecutive5xxErrors: 0, consecutiveGatewayErrors: 2 });
    for (let i = 0; i < 10; i++) d.observe(eps[0] as Endpoint, '5xx', eps, 1);
    expect(eps[0]?.isEjected(1)).toBe(false);
  });

  it('with the split, local-origin failures are not 5xx; consecutiveLocalOriginFailures 0 turns them off', () => {
    const a = detector({ consecutive5xxErrors: 2, consecutiveLocalOriginFailures: 10 });
    for (let i = 0; i < 5; i++) a.d.observe(a.eps[0] as Endpoint, 'local', a.eps, 1);
    expect(a.seen).toEqual([]);
    const b = detector({ consecutive5xxErrors: 2, consecutiveLocalOriginFailures: 0 });
    for (let i = 0; i < 50; i++) b.d.observe(b.eps[0] as Endpoint, 'local', b.eps, 1);
    expect(b.seen).toEqual([]);
  });

  it('without the split, a local-origin failure is a gateway error too', () => {
    const { eps, d, seen } = detector({ consecutive5xxErrors: 0, consecutiveGatewayErrors: 2 });
    d.observe(eps[0] as Endpoint, 'local', eps, 1);
    d.observe(eps[0] as Endpoint, 'local', eps, 1);
    expect(seen.map((s) => s[2])).toEqual(['consecutiveGatewayErrors']);
  });

  it('when both trip at once, the gateway-error setting names the ejection', () => {
    const { eps, d, seen } = detector({ consecutive5xxErrors: 2, consecutiveGatewayErrors: 2 });
    d.observe(eps[0] as Endpoint, 'gateway', eps, 1);
    d.observe(eps[0] as Endpoint, 'gateway', eps, 1);
    expect(seen.map((s) => s[2])).toEqual(['consecutiveGatewayErrors']);
  });

  it('an ejected host is not ejected again (its time is not extended); counts start over after', () => {
    const { eps, d, seen } = detector({ consecutive5xxErrors: 2 });
    const a = eps[0] as Endpoint;
    d.observe(a, '5xx', eps, 1);
    d.observe(a, '5xx', eps, 1);
    expect(a.ejectedUntil).toBe(30_001);
    for (let i = 0; i < 4; i++) d.observe(a, '5xx', eps, 100);
    expect(a.ejectedUntil).toBe(30_001);
    expect(d.ejectionsTotal).toBe(1);
    // Back: one more 5xx is not enough, the count started over at the ejection.
    const b = eps[1] as Endpoint;
    d.observe(b, '5xx', eps, 2);
    d.observe(b, '5xx', eps, 2);
    d.observe(b, '5xx', eps, 2);
    expect(seen).toHaveLength(2);
    expect(d.ejectionsTotal).toBe(2);
  });

  it('counts start over at an ejection (5xx, gateway and local counters)', () => {
    for (const [cfg, outcome] of [
      [{ consecutive5xxErrors: 2 }, '5xx'],
      [{ consecutive5xxErrors: 0, consecutiveGatewayErrors: 2 }, 'gateway'],
      [{ consecutive5xxErrors: 0, consecutiveLocalOriginFailures: 2 }, 'local'],
    ] as const) {
      const { eps, d, seen } = detector(cfg);
      const a = eps[0] as Endpoint;
      d.observe(a, outcome, eps, 1);
      d.observe(a, outcome, eps, 1);
      expect(seen).toHaveLength(1);
      d.observe(a, outcome, eps, 40_000); // back
      expect(a.isEjected(40_000)).toBe(false);
      d.observe(a, outcome, eps, 40_000);
      expect(a.isEjected(40_000)).toBe(true);
      expect(seen[1]?.[1]).toBe(60_000); // second ejection: twice the base
    }
  });
});

describe('OutlierDetector: how many may be ejected', () => {
  function eject(eps: Endpoint[], cfg: Parameters<typeof outlierSettings>[0]): number {
    const d = new OutlierDetector(
      outlierSettings({ interval: 3_600_000, consecutive5xxErrors: 1, ...cfg }) as OutlierSettings,
      0,
    );
    for (const ep of eps) d.observe(ep, '5xx', eps, 1);
    return eps.filter((e) => e.isEjected(1)).length;
  }

  it('maxEjectionPercent: ejected share after this ejection may reach, not pass, the limit', () => {
    expect(eject(endpoints(10), { maxEjectionPercent: 20 })).toBe(2);
    expect(eject(endpoints(10), { maxEjectionPercent: 19 })).toBe(1);
    expect(eject(endpoints(10), { maxEjectionPercent: 30 })).toBe(3);
    // At least one host, even when one is more than the percentage.
    expect(eject(endpoints(10), { maxEjectionPercent: 0 })).toBe(1);
  });

  it('never the last available endpoint; unhealthy endpoints are not available', () => {
    expect(eject(endpoints(2), { maxEjectionPercent: 100 })).toBe(1);
    const eps = endpoints(3);
    (eps[2] as Endpoint).healthy = false;
    expect(eject(eps.slice(0, 2).concat(eps[2] as Endpoint), { maxEjectionPercent: 100 })).toBe(1);
  });

  it('minHealthPercent: no ejection while the healthy share is below it', () => {
    expect(eject(endpoints(4), { maxEjectionPercent: 100, minHealthPercent: 50 })).toBe(3);
    expect(eject(endpoints(4), { maxEjectionPercent: 100, minHealthPercent: 51 })).toBe(2);
    expect(eject(endpoints(4), { maxEjectionPercent: 100 })).toBe(3);
  });

  it('an empty endpoint list ejects nothing', () => {
    const [a] = endpoints(1) as [Endpoint];
    const d = new OutlierDetector(outlierSettings({ consecutive5xxErrors: 1 }) as OutlierSettings, 0);
    d.observe(a, '5xx', [], 1);
    expect(a.isEjected(1)).toBe(false);
  });
});

describe('OutlierDetector: the interval', () => {
  function rateDetector(cfg: Parameters<typeof outlierSettings>[0], random = () => 0) {
    const eps = endpoints(5);
    const d = new OutlierDetector(
      outlierSettings({
        interval: 1_000,
        consecutive5xxErrors: 0,
        maxEjectionPercent: 100,
        successRateRequestVolume: 10,
        failurePercentageRequestVolume: 10,
        ...cfg,
      }) as OutlierSettings,
      0,
      random,
    );
    const seen: string[] = [];
    d.onEject = (ep, _ms, reason) => seen.push(`${ep.address} ${reason}`);
    /** Each host gets `n` answers; host 0 fails them all. */
    const traffic = (n: number, now: number) => {
      for (const ep of eps)
        for (let i = 0; i < n; i++) d.observe(ep, ep === eps[0] ? '5xx' : 'success', eps, now);
    };
    return { eps, d, seen, traffic };
  }

  it('runs when the interval has passed exactly, not before', () => {
    const { d, eps, seen, traffic } = rateDetector({});
    traffic(10, 1);
    d.observe(eps[1] as Endpoint, 'success', eps, 999);
    expect(seen).toEqual([]);
    d.observe(eps[1] as Endpoint, 'success', eps, 1_000);
    expect(seen).toEqual(['10.0.0.0:80 successRate']);
  });

  it('the next interval starts when one runs; counts start over each interval', () => {
    const { d, eps, seen, traffic } = rateDetector({});
    traffic(5, 1); // below the request volume
    traffic(5, 1_000); // runs the interval (nothing), then counts 5 more
    d.observe(eps[1] as Endpoint, 'success', eps, 1_999);
    expect(seen).toEqual([]);
    d.observe(eps[1] as Endpoint, 'success', eps, 2_000);
    expect(seen).toEqual([]); // 5 per host in this interval: still below the volume
  });

  it('enforcingSuccessRate is the chance of enforcing; 0 turns success-rate ejection off', () => {
    const half = () => 0.5;
    const a = rateDetector({ enforcingSuccessRate: 50 }, half);
    a.traffic(10, 1);
    a.d.observe(a.eps[1] as Endpoint, 'success', a.eps, 1_000);
    expect(a.seen).toEqual([]);
    const b = rateDetector({ enforcingSuccessRate: 51 }, half);
    b.traffic(10, 1);
    b.d.observe(b.eps[1] as Endpoint, 'success', b.eps, 1_000);
    expect(b.seen).toEqual(['10.0.0.0:80 successRate']);
    const c = rateDetector({ enforcingSuccessRate: 0 });
    c.traffic(10, 1);
    c.d.observe(c.eps[1] as Endpoint, 'success', c.eps, 1_000);
    expect(c.seen).toEqual([]);
  });

  it('failure percentage is off by default, enforced by chance, and success rate names a host both flag', () => {
    const off = rateDetector({ enforcingSuccessRate: 0 });
    off.traffic(10, 1);
    off.d.observe(off.eps[1] as Endpoint, 'success', off.eps, 1_000);
    expect(off.seen).toEqual([]);
    const half = () => 0.5;
    const a = rateDetector({ enforcingSuccessRate: 0, enforcingFailurePercentage: 50 }, half);
    a.traffic(10, 1);
    a.d.observe(a.eps[1] as Endpoint, 'success', a.eps, 1_000);
    expect(a.seen).toEqual([]);
    const b = rateDetector({ enforcingSuccessRate: 0, enforcingFailurePercentage: 51 }, half);
    b.traffic(10, 1);
    b.d.observe(b.eps[1] as Endpoint, 'success', b.eps, 1_000);
    expect(b.seen).toEqual(['10.0.0.0:80 failurePercentage']);
    const both = rateDetector({ enforcingFailurePercentage: 100 });
    both.traffic(10, 1);
    both.d.observe(both.eps[1] as Endpoint, 'success', both.eps, 1_000);
    expect(both.seen).toEqual(['10.0.0.0:80 successRate']);
  });

  it('the ejection multiplier decays by one per interval spent not ejected, never below zero', () => {
    const eps = endpoints(5);
    const d = new OutlierDetector(
      outlierSettings({
        interval: 10_000,
        consecutive5xxErrors: 1,
        maxEjectionPercent: 100,
      }) as OutlierSettings,
      0,
    );
    const a = eps[0] as Endpoint;
    const b = eps[1] as Endpoint;
    d.observe(a, '5xx', eps, 1); // ejected until 30_001 (1st)
    d.observe(b, 'success', eps, 29_000); // intervals while ejected: no decay
    d.observe(a, '5xx', eps, 30_001); // 2nd: 60 s
    expect(a.ejectedUntil).toBe(90_001);
    // Two intervals not ejected: 2 → 0; a third would go below zero.
    d.observe(b, 'success', eps, 100_000);
    d.observe(b, 'success', eps, 110_000);
    d.observe(b, 'success', eps, 120_000);
    d.observe(a, '5xx', eps, 120_000);
    expect(a.ejectedUntil).toBe(150_000); // 1st again: 30 s
  });
});
