import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../config/load.ts';
import type { MeshConfig } from '../config/schema.ts';
import type { ServiceCore } from '../service.ts';
import { silentLogger } from '../telemetry/logger.ts';
import { type BuildContext, type Generation, type Plan, plan } from './generation.ts';

const ctx: BuildContext = {
  clock: () => 1_000,
  logger: silentLogger,
  env: {},
  identity: undefined,
  fallbacks: undefined,
};
const open: Plan[] = [];
afterEach(async () => {
  const cores = new Set<ServiceCore>();
  for (const p of open.splice(0)) {
    for (const v of p.generation.services.values()) {
      cores.add(v.core);
      v.breaker?.shutdown();
    }
    for (const c of p.handovers.values()) cores.add(c);
  }
  await Promise.all([...cores].map((c) => c.close(0)));
});

function config(svc: Record<string, unknown>, top: Record<string, unknown> = {}): MeshConfig {
  return validateConfig({
    ...top,
    services: { api: { discovery: { static: ['10.0.0.1:80', '10.0.0.2:80'] }, ...svc } },
  });
}

function next(prev: Generation | undefined, c: MeshConfig, pending = new Map<string, ServiceCore>()): Plan {
  const p = plan(prev, c, ctx, pending);
  open.push(p);
  for (const v of p.generation.services.values()) {
    v.core.activate(v);
    v.start();
  }
  return p;
}

const subsets = [
  { name: 'a', labels: { v: '1' } },
  { name: 'b', labels: { v: '2' } },
];

describe('plan: what a new generation keeps', () => {
  it('an unchanged service is the same object; a changed one keeps its core, budget, outlier detector and breaker', () => {
    const base = { trafficPolicy: { circuitBreaker: { volumeThreshold: 5 } } };
    const g1 = next(undefined, config(base)).generation;
    const same = next(g1, config(base)).generation;
    expect(same.services.get('api')).toBe(g1.services.get('api'));
    expect(same.version).toBe(2);
    expect(same.hash).toBe(g1.hash);

    const g2 = next(g1, config({ ...base, timeout: '2s' })).generation;
    const [before, after] = [g1.services.get('api'), g2.services.get('api')];
    expect(after).not.toBe(before);
    expect(after?.core).toBe(before?.core);
    expect(after?.endpoints).toBe(before?.endpoints);
    expect(after?.retry.budget).toBe(before?.retry.budget);
    expect(after?.outlier).toBe(before?.outlier);
    expect(after?.breaker).toBe(before?.breaker);
    expect(after?.retry.policy.timeoutMs).toBe(2000);
    expect(g2.hash).not.toBe(g1.hash);
  });

  it('changed settings get new state: budget, outlier detection, breaker, balancer', () => {
    const g1 = next(undefined, config({})).generation;
    const g2 = next(
      g1,
      config({
        retryBudget: { retryPercent: 50 },
        trafficPolicy: {
          outlierDetection: { consecutive5xxErrors: 9 },
          loadBalancer: { simple: 'ROUND_ROBIN' },
          circuitBreaker: { volumeThreshold: 5 },
        },
      }),
    ).generation;
    const [before, after] = [g1.services.get('api'), g2.services.get('api')];
    expect(after?.core).toBe(before?.core);
    expect(after?.retry.budget).not.toBe(before?.retry.budget);
    expect(after?.outlier).not.toBe(before?.outlier);
    expect(before?.breaker).toBeUndefined();
    expect(after?.breaker).toBeDefined();
    expect(after?.endpoints.all.balancer).not.toBe(g1.services.get('api')?.layout.balancer);
    expect(after?.endpoints.all.balancer.name).toBe('ROUND_ROBIN');
  });

  it('subsets regroup over the same endpoints; a removed subset stays findable for the drain timeout', async () => {
    const g1 = next(
      undefined,
      config({
        subsets,
        discovery: {
          static: [
            { address: '10.0.0.1:80', labels: { v: '1' } },
            { address: '10.0.0.2:80', labels: { v: '2' } },
          ],
          drainTimeout: '50ms',
        },
      }),
    ).generation;
    const set = g1.services.get('api')?.endpoints;
    const eps = [...(set?.endpoints() ?? [])];
    const balancerA = set?.group('a')?.balancer;
    const g2 = next(
      g1,
      config({
        subsets: [{ name: 'a', labels: { v: '2' } }],
        discovery: {
          static: [
            { address: '10.0.0.1:80', labels: { v: '1' } },
            { address: '10.0.0.2:80', labels: { v: '2' } },
          ],
          drainTimeout: '50ms',
        },
      }),
    ).generation;
    expect(g2.services.get('api')?.endpoints).toBe(set);
    expect([...(set?.endpoints() ?? [])]).toEqual(eps);
    expect(set?.group('a')?.endpoints.map((e) => e.address)).toEqual(['10.0.0.2:80']);
    // Same balancing settings: the subset keeps its balancer.
    expect(set?.group('a')?.balancer).toBe(balancerA);
    // "b" is gone from the config, but a request that chose it before the update still finds it.
    expect(set?.group('b')?.endpoints.map((e) => e.address)).toEqual(['10.0.0.2:80']);
    await new Promise((r) => setTimeout(r, 120));
    expect(set?.group('b')).toBeUndefined();
  });

  it('another discovery source: handed over when the old one has endpoints, at once when it has none', () => {
    const g1 = next(undefined, config({})).generation;
    const p = next(g1, config({ discovery: { static: ['10.0.0.9:80'] } }));
    const v = p.generation.services.get('api');
    // Still the old core (the new one is starting beside it).
    expect(v?.core).toBe(g1.services.get('api')?.core);
    const newCore = p.handovers.get('api');
    expect(newCore).toBeDefined();
    expect(newCore?.key).not.toBe(v?.core.key);
    // The same change again while the handover runs reuses the starting core.
    const p2 = next(
      p.generation,
      config({ discovery: { static: ['10.0.0.9:80'] }, timeout: '1s' }),
      new Map([['api', newCore as ServiceCore]]),
    );
    expect(p2.handovers.get('api')).toBe(newCore);
    expect(p2.created).toEqual([]);
    // An update that leaves the service alone lets its handover go on.
    const p2b = next(
      p2.generation,
      config(
        { discovery: { static: ['10.0.0.9:80'] }, timeout: '1s' },
        { zone: undefined, closeTimeout: '1s' },
      ),
      new Map([['api', newCore as ServiceCore]]),
    );
    expect(p2b.generation.services.get('api')).toBe(p2.generation.services.get('api'));
    expect(p2b.handovers.get('api')).toBe(newCore);

    const empty = next(undefined, config({ discovery: { static: [] } })).generation;
    const p3 = next(empty, config({}));
    expect(p3.handovers.size).toBe(0);
    expect(p3.generation.services.get('api')?.core).not.toBe(empty.services.get('api')?.core);
  });

  it('a zone change rebuilds the service versions (balancers are zone-aware)', () => {
    const g1 = next(undefined, config({}, { zone: 'a' })).generation;
    const g2 = next(g1, config({}, { zone: 'b' })).generation;
    expect(g2.services.get('api')).not.toBe(g1.services.get('api'));
    expect(g2.services.get('api')?.core).toBe(g1.services.get('api')?.core);
  });

  it('a failure while building disposes of what was built and leaves the running generation alone', () => {
    const g1 = next(undefined, config({})).generation;
    const bad = validateConfig({
      services: {
        api: { discovery: { static: ['10.0.0.1:80'] } },
        mtls: { discovery: { static: ['10.0.0.3:443'] }, trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL' } } },
      },
    });
    expect(() => plan(g1, bad, ctx, new Map())).toThrow(/ISTIO_MUTUAL/);
    expect(g1.services.get('api')?.endpoints.size).toBe(2);
  });
});
