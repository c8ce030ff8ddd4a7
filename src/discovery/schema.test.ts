import { describe, expect, it } from 'vitest';
import { ConsulDiscovery } from './consul.ts';
import { DnsDiscovery } from './dns.ts';
import { EtcdDiscovery } from './etcd.ts';
import { FileDiscovery } from './file.ts';
import { createDiscovery } from './index.ts';
import { discoverySchema } from './schema.ts';
import { StaticDiscovery } from './static.ts';
import { backoffDelay } from './tracker.ts';

function issues(input: unknown): string[] {
  const r = discoverySchema.safeParse(input);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('discovery schema', () => {
  it('accepts each provider with its fields, durations parsed to ms', () => {
    const dns = discoverySchema.parse({
      dns: { host: 'api.svc', port: 80, servers: ['127.0.0.1:5353'], minRefresh: '500ms', maxRefresh: '1m' },
    });
    expect(dns.dns).toMatchObject({ minRefresh: 500, maxRefresh: 60_000 });
    expect(issues({ dns: { srv: '_http._tcp.api', servers: ['[::1]:53', '10.0.0.1'] } })).toEqual([]);
    expect(issues({ consul: {} })).toEqual([]);
    expect(
      issues({
        consul: {
          service: 's',
          host: 'c',
          port: 8500,
          secure: true,
          token: 't',
          dc: 'd',
          tag: 'x',
          filter: 'Service.Meta.v == "1"',
          wait: '30s',
        },
      }),
    ).toEqual([]);
    expect(issues({ etcd: { hosts: ['http://127.0.0.1:2379'], prefix: '/svc/' } })).toEqual([]);
    expect(issues({ file: { path: './eps.yaml' } })).toEqual([]);
    const lc = discoverySchema.parse({
      static: ['127.0.0.1:80'],
      initialTimeout: '2s',
      drainTimeout: '10s',
      healthCheck: {
        path: '/healthz',
        interval: '5s',
        timeout: '1s',
        healthyThreshold: 2,
        unhealthyThreshold: 3,
      },
    });
    expect(lc).toMatchObject({ initialTimeout: 2000, drainTimeout: 10_000, healthCheck: { interval: 5000 } });
  });

  it('needs exactly one provider', () => {
    expect(issues({})).toEqual([': needs exactly one provider (static, dns, consul, etcd, file, xds)']);
    expect(issues({ static: [], file: { path: 'x' } })[0]).toMatch(/exactly one provider/);
    expect(issues({ initialTimeout: '1s' })[0]).toMatch(/exactly one provider/);
  });

  it('names the bad field', () => {
    expect(issues({ dns: { host: 'a' } })).toEqual(['dns.port: is required with "host"']);
    expect(issues({ dns: { srv: 'x', port: 1 } })).toEqual(['dns.port: cannot be used with "srv"']);
    expect(issues({ dns: { host: 'a', port: 1, servers: ['dns.google'] } })[0]).toMatch(
      /^dns\.servers\.0: is not a DNS server/,
    );
    expect(issues({ dns: { host: 'a', port: 1, minRefresh: '1m', maxRefresh: '1s' } })[0]).toMatch(
      /^dns\.minRefresh/,
    );
    expect(issues({ consul: { wait: 'soon' } })[0]).toMatch(/^consul\.wait: is not a duration/);
    expect(issues({ consul: { bogus: 1 } })[0]).toMatch(/bogus/);
    expect(issues({ file: {} })[0]).toMatch(/^file\.path/);
    expect(issues({ static: [], healthCheck: { path: 'healthz' } })[0]).toMatch(/^healthCheck\.path/);
  });

  it('createDiscovery builds each provider', async () => {
    const ctx = { service: 'api', env: {} };
    const make = (c: unknown) => createDiscovery(discoverySchema.parse(c), ctx);
    const ps = [
      make({ static: ['127.0.0.1:80'] }),
      make({ dns: { host: 'localhost', port: 80 } }),
      make({ consul: {} }),
      make({ etcd: {} }),
      make({ file: { path: '/nonexistent/x.json' } }),
    ];
    expect(ps.map((p) => p.constructor)).toEqual([
      StaticDiscovery,
      DnsDiscovery,
      ConsulDiscovery,
      EtcdDiscovery,
      FileDiscovery,
    ]);
    expect((ps[2] as ConsulDiscovery).settings.service).toBe('api');
    expect((ps[3] as EtcdDiscovery).prefix).toBe('/meshwork/services/api/');
    for (const p of ps) await p.close();
  });

  it('backoff has equal jitter and a cap', () => {
    expect(backoffDelay(0, 100, 1000, () => 0)).toBe(50);
    expect(backoffDelay(0, 100, 1000, () => 1)).toBe(100);
    expect(backoffDelay(10, 100, 1000, () => 1)).toBe(1000);
    expect(backoffDelay(10, 100, 1000, () => 0)).toBe(500);
  });
});

describe('ProviderTracker', () => {
  it('reports a skip repeated by the next full listing only once, a new one again', async () => {
    const { ProviderTracker } = await import('./tracker.ts');
    const skips: string[] = [];
    const t = new ProviderTracker('x');
    t.attach({ apply() {}, ready() {}, error() {}, skipped: (r) => skips.push(r) });
    t.skipped('bad a', 1);
    t.publish([]);
    t.skipped('bad a', 1);
    t.skipped('bad b', 2);
    t.publish([]);
    t.publish([]);
    t.skipped('bad a', 1);
    expect(skips).toEqual(['bad a', 'bad b', 'bad a']);
    expect(t.status().skipped).toBe(3);
  });
});
