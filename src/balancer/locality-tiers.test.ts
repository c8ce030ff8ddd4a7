import { afterEach, describe, expect, it } from 'vitest';
import type { Endpoint } from './endpoint.ts';
import { createBalancer } from './index.ts';
import { localityMatches, parseLocality, tierOf } from './locality-tiers.ts';
import { closeAll, makeEndpoint, seeded, tally } from './test-support.ts';

const made: Endpoint[] = [];
afterEach(async () => {
  await closeAll(made.splice(0));
});

function ep(i: number, zone: string, labels: Record<string, string> = {}): Endpoint {
  const e = makeEndpoint(i, { zone });
  e.labels = labels;
  made.push(e);
  return e;
}

describe('Istio localities', () => {
  it('patterns cover a region, a zone or a subzone; * covers the rest', () => {
    const l = parseLocality('us-west/zone1/a');
    expect(localityMatches('us-west/zone1/*', l)).toBe(true);
    expect(localityMatches('us-west/*', l)).toBe(true);
    expect(localityMatches('us-west', l)).toBe(true);
    expect(localityMatches('*', l)).toBe(true);
    expect(localityMatches('us-west/zone2/*', l)).toBe(false);
    expect(localityMatches('us-east', l)).toBe(false);
  });

  it('tiers: same subzone, zone, region, the failover region, the rest; failoverPriority labels first', () => {
    const client = { locality: parseLocality('us-west/z1/a'), labels: { network: 'n1', rack: 'r1' } };
    const failover = [{ from: 'us-west', to: 'us-east' }];
    const t = (zone: string, labels: Record<string, string> = {}) =>
      tierOf({ zone, labels }, client, failover, undefined);
    expect([
      t('us-west/z1/a'),
      t('us-west/z1/b'),
      t('us-west/z2/a'),
      t('us-east/z1/a'),
      t('eu/z1/a'),
    ]).toEqual([0, 1, 2, 3, 4]);
    const p = (labels: Record<string, string>) =>
      tierOf({ zone: 'eu/x/y', labels }, client, undefined, ['network', 'rack']);
    expect([p({ network: 'n1', rack: 'r1' }), p({ network: 'n1', rack: 'r2' }), p({})]).toEqual([4, 9, 14]);
  });
});

describe('localityLbSetting distribute, failover, failoverPriority (balancer)', () => {
  const now = 1_000;

  it('distribute: 80/20 between two zones, nothing to a zone not listed', () => {
    const a = ep(1, 'us-west/z1/a');
    const b = ep(2, 'us-west/z2/a');
    const c = ep(3, 'eu/z1/a');
    const balancer = createBalancer(
      {
        simple: 'RANDOM',
        localityLbSetting: {
          distribute: [{ from: 'us-west/z1/*', to: { 'us-west/z1/*': 80, 'us-west/z2/*': 20 } }],
        },
      },
      { zone: 'us-west/z1/a', random: seeded(3) },
    );
    const list = [a, b, c];
    const n = 20_000;
    const t = tally(n, () => balancer.pick(list, { now }));
    expect(Math.abs(t.of(a) / n - 0.8)).toBeLessThan(0.02);
    expect(Math.abs(t.of(b) / n - 0.2)).toBeLessThan(0.02);
    expect(t.of(c)).toBe(0);
  });

  it('failover: when the local region fails, the failover region takes the traffic, not the others', () => {
    const local = [ep(1, 'us-west/z1/a'), ep(2, 'us-west/z1/a')];
    const east = ep(3, 'us-east/z1/a');
    const eu = ep(4, 'eu/z1/a');
    const balancer = createBalancer(
      { simple: 'RANDOM', localityLbSetting: { failover: [{ from: 'us-west', to: 'us-east' }] } },
      { zone: 'us-west/z1/a', random: seeded(5) },
    );
    const list = [...local, east, eu];
    let t = tally(1_000, () => balancer.pick(list, { now }));
    expect(t.of(local[0]) + t.of(local[1])).toBe(1_000);
    for (const l of local) l.healthy = false;
    balancer.update?.(list);
    t = tally(1_000, () => balancer.pick(list, { now: now + 1_000 }));
    expect(t.of(east)).toBe(1_000);
    expect(t.of(eu)).toBe(0);
  });

  it("failoverPriority: endpoints sharing the client's labels first; half of them down spills in proportion", () => {
    const same = [ep(1, 'z', { network: 'n1' }), ep(2, 'z', { network: 'n1' })];
    const other = ep(3, 'z', { network: 'n2' });
    const balancer = createBalancer(
      { simple: 'RANDOM', localityLbSetting: { failoverPriority: ['network'] } },
      { zone: 'z', labels: { network: 'n1' }, random: seeded(7) },
    );
    const list = [...same, other];
    let t = tally(1_000, () => balancer.pick(list, { now }));
    expect(t.of(other)).toBe(0);
    (same[0] as Endpoint).healthy = false;
    balancer.update?.(list);
    // Health of the first tier: 1.4 × 50% = 70%; the other tier takes the remaining 30%.
    const n = 10_000;
    t = tally(n, () => balancer.pick(list, { now: now + 1_000 }));
    expect(Math.abs(t.of(other) / n - 0.3)).toBeLessThan(0.03);
  });
});
