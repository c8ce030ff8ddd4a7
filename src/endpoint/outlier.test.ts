import { describe, expect, it } from 'vitest';
import { Endpoint } from '../balancer/endpoint.ts';
import {
  ejectionTimeMs,
  failurePercentageOutliers,
  OutlierDetector,
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
