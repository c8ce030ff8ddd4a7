import { randomUUID } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EtcdDiscovery, etcdValueSpec } from '../src/discovery/etcd.ts';
import { TcpProxy } from './support/proxy.ts';
import { RecordingSink } from './support/recording-sink.ts';
import { requireService, suiteName, testServices } from './support/services.ts';

const svc = testServices();
const NEEDS = 'etcd (MESHWORK_TEST_ETCD)';
const run = requireService(NEEDS, !!svc.etcd);

describe.runIf(run)(suiteName('etcd discovery against a real etcd', run, NEEDS), () => {
  let client: Etcd3;
  let provider: EtcdDiscovery | undefined;
  let prefix: string;

  beforeAll(() => {
    client = new Etcd3({ hosts: [svc.etcd as string] });
  });
  afterAll(() => client.close());
  afterEach(async () => {
    await provider?.close();
    provider = undefined;
    await client.delete().prefix(prefix);
  });

  function startProvider(): RecordingSink {
    prefix = `/meshwork-test/${randomUUID()}/`;
    const sink = new RecordingSink();
    provider = new EtcdDiscovery({ hosts: [svc.etcd as string], prefix }, { service: 'api', env: {} });
    return sink;
  }

  it('lists the prefix, then follows put and delete', async () => {
    const sink = startProvider();
    await client
      .put(`${prefix}a`)
      .value(JSON.stringify({ address: '127.0.0.2:8080', labels: { version: 'v1' }, weight: 3, zone: 'z1' }));
    await client
      .put(`${prefix}b`)
      .value(JSON.stringify({ Addr: '127.0.0.3:8080', Metadata: { version: 'v2', canary: true } }));
    await client.put(`/meshwork-test/elsewhere`).value(JSON.stringify({ address: '127.0.0.9:1' }));
    provider!.start(sink);
    await sink.waitFor(() => sink.readyCount === 1 && sink.endpoints.size === 2);
    expect(sink.endpoints.get('127.0.0.2:8080')).toMatchObject({
      weight: 3,
      zone: 'z1',
      labels: { version: 'v1' },
    });
    expect(sink.endpoints.get('127.0.0.3:8080')).toMatchObject({
      weight: 1,
      labels: { version: 'v2', canary: 'true' },
    });

    await client.put(`${prefix}c`).value(JSON.stringify({ address: '127.0.0.4:8080' }));
    await sink.waitFor(() => sink.endpoints.has('127.0.0.4:8080'), 5_000, 'put c');
    await client.delete().key(`${prefix}a`);
    await sink.waitFor(() => !sink.endpoints.has('127.0.0.2:8080'), 5_000, 'delete a');
    await client
      .put(`${prefix}b`)
      .value(JSON.stringify({ Addr: '127.0.0.3:8080', Metadata: { version: 'v3' } }));
    await sink.waitFor(
      () => sink.endpoints.get('127.0.0.3:8080')?.labels.version === 'v3',
      5_000,
      'update b',
    );
    expect(sink.addresses()).toEqual(['127.0.0.3:8080', '127.0.0.4:8080']);
    await client.delete().key('/meshwork-test/elsewhere');
  });

  it('skips a malformed value and keeps the rest', async () => {
    const sink = startProvider();
    await client.put(`${prefix}good`).value(JSON.stringify({ address: '127.0.0.2:8080' }));
    await client.put(`${prefix}bad`).value('{not json');
    provider!.start(sink);
    await sink.waitFor(() => sink.readyCount === 1);
    expect(sink.addresses()).toEqual(['127.0.0.2:8080']);
    expect(sink.skips).toHaveLength(1);
    expect(sink.skips[0]?.reason).toMatch(/bad: value is not JSON/);

    await client.put(`${prefix}bad2`).value(JSON.stringify({ address: 'nope' }));
    await sink.waitFor(() => sink.skips.length === 2, 5_000, 'second skip');
    expect(sink.addresses()).toEqual(['127.0.0.2:8080']);
    // A good key that turns malformed is removed.
    await client.put(`${prefix}good`).value(JSON.stringify({ address: '127.0.0.2:8080', weight: -1 }));
    await sink.waitFor(() => sink.endpoints.size === 0, 5_000, 'good turned bad');
    expect(sink.errors).toEqual([]);
  });

  it('an etcd outage keeps the last endpoints; the watch resumes and catches up', async () => {
    prefix = `/meshwork-test/${randomUUID()}/`;
    const url = new URL(svc.etcd as string);
    const proxy = await new TcpProxy({ host: url.hostname, port: Number(url.port) }).up();
    try {
      await client.put(`${prefix}a`).value(JSON.stringify({ address: '127.0.0.2:8080' }));
      const sink = new RecordingSink();
      provider = new EtcdDiscovery(
        { hosts: [`http://127.0.0.1:${proxy.port}`], prefix },
        { service: 'api', env: {} },
      );
      provider.start(sink);
      await sink.waitFor(() => sink.endpoints.size === 1);
      await new Promise((r) => setTimeout(r, 200)); // let the watch be established
      await proxy.down();
      await sink.waitFor(() => sink.errors.length >= 1, 8_000, 'an error during the outage');
      expect(sink.addresses()).toEqual(['127.0.0.2:8080']);
      expect(sink.removes()).toBe(0);
      // Changes made while we cannot see etcd arrive after it comes back.
      await client.put(`${prefix}b`).value(JSON.stringify({ address: '127.0.0.3:8080' }));
      await client.delete().key(`${prefix}a`);
      await proxy.up();
      await sink.waitFor(
        () => sink.addresses().join() === '127.0.0.3:8080',
        20_000,
        'catch-up after the outage',
      );
    } finally {
      await provider?.close();
      provider = undefined;
      await proxy.down();
    }
  });

  it('an unreachable etcd reports errors and emits nothing', async () => {
    prefix = `/meshwork-test/${randomUUID()}/`;
    const sink = new RecordingSink();
    provider = new EtcdDiscovery({ hosts: ['http://127.0.0.1:1'], prefix }, { service: 'api', env: {} });
    provider.start(sink);
    await sink.waitFor(() => sink.errors.length >= 1, 15_000, 'an error');
    expect(sink.batches).toEqual([]);
    expect(sink.readyCount).toBe(0);
    expect(provider.status().errors).toBeGreaterThan(0);
  });
});

describe('etcd values', () => {
  it('parses both formats and rejects bad ones', () => {
    expect(etcdValueSpec('{"address":"[::1]:80","zone":"z"}')).toMatchObject({
      host: '::1',
      port: 80,
      zone: 'z',
    });
    expect(etcdValueSpec('{"Addr":"10.0.0.1:9000","Op":1}')).toBeUndefined();
    expect(etcdValueSpec('[]')).toMatch(/object/);
    expect(etcdValueSpec('{"address":"a:1","labels":{"x":1}}')).toMatch(/strings/);
    expect(etcdValueSpec('{"address":"a:1","weight":0}')).toMatch(/weight/);
  });
});
