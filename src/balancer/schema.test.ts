import { describe, expect, it } from 'vitest';
import { loadBalancerSchema } from './schema.ts';

function issues(input: unknown): string[] {
  const r = loadBalancerSchema.safeParse(input);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('loadBalancerSchema', () => {
  it('accepts every simple algorithm, with LEAST_CONN as an alias', () => {
    for (const simple of [
      'PEAK_EWMA',
      'LEAST_REQUEST',
      'LEAST_CONN',
      'ROUND_ROBIN',
      'RANDOM',
      'UNSPECIFIED',
    ]) {
      expect(issues({ simple })).toEqual([]);
    }
    expect(issues({ simple: 'PASSTHROUGH' })[0]).toMatch(/^simple:/);
  });

  it('parses durations and the full shape', () => {
    const v = loadBalancerSchema.parse({
      consistentHash: {
        httpCookie: { name: 'sid', path: '/', ttl: '30m' },
        ringHash: { minimumRingSize: 4096 },
      },
      localityLbSetting: { enabled: true, failoverThreshold: 60 },
      warmupDurationSecs: '45s',
      panicThreshold: 30,
    });
    expect(v.consistentHash?.httpCookie?.ttl).toBe(1_800_000);
    expect(v.warmupDurationSecs).toBe(45_000);
  });

  it('names the field of each mistake', () => {
    expect(issues({ simple: 'RANDOM', consistentHash: { httpHeaderName: 'x' } })).toEqual([
      'consistentHash: cannot be set together with simple (Istio: one of simple or consistentHash)',
    ]);
    expect(issues({ consistentHash: {} })[0]).toMatch(/^consistentHash: needs one hash key/);
    expect(issues({ consistentHash: { httpHeaderName: 'x', useSourceIp: true } })[0]).toMatch(
      /several hash keys/,
    );
    expect(issues({ consistentHash: { httpHeaderName: 'x', maglev: { tableSize: 1000 } } })).toEqual([
      'consistentHash.maglev.tableSize: must be a prime number (e.g. 65537)',
    ]);
    expect(issues({ consistentHash: { httpHeaderName: 'x', ringHash: {}, maglev: {} } })).toEqual([
      'consistentHash.maglev: cannot be set together with ringHash',
    ]);
    expect(issues({ panicThreshold: 101 })[0]).toMatch(/^panicThreshold:/);
    expect(issues({ localityLbSetting: { failoverThreshold: -1 } })[0]).toMatch(
      /^localityLbSetting.failoverThreshold:/,
    );
    expect(issues({ warmupDurationSecs: 'soon' })[0]).toMatch(/^warmupDurationSecs: is not a duration/);
    expect(issues({ warmupDurationSecs: '1s', warmup: { duration: '1s' } })[0]).toMatch(/^warmup:/);
    expect(issues({ consistentHash: { httpCookie: { name: 'a b', ttl: 0 } } })[0]).toMatch(
      /^consistentHash.httpCookie.name/,
    );
    expect(issues({ bogus: 1 })).toHaveLength(1);
  });
});
