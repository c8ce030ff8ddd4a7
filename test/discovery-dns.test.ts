import { randomUUID } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DnsDiscovery } from '../src/discovery/dns.ts';
import type { DnsConfig } from '../src/discovery/schema.ts';
import { UdpProxy } from './support/proxy.ts';
import { RecordingSink } from './support/recording-sink.ts';
import { requireService, SRV_FIXTURES, suiteName, testServices } from './support/services.ts';

const svc = testServices();
const NEEDS = 'dnsmasq (MESHWORK_TEST_DNS, MESHWORK_TEST_DNS_HOSTSDIR)';
const run = requireService(NEEDS, !!(svc.dns && svc.dnsHostsDir));

describe.runIf(run)(suiteName('dns discovery against dnsmasq', run, NEEDS), () => {
  const files: string[] = [];
  let provider: DnsDiscovery | undefined;

  afterEach(async () => {
    await provider?.close();
    provider = undefined;
    for (const f of files.splice(0)) rmSync(f, { force: true });
  });

  /** Writes a hosts file into dnsmasq's hostsdir (dnsmasq re-reads it by itself, via inotify). */
  function hosts(name: string, lines: string[]): string {
    const path = join(svc.dnsHostsDir as string, name);
    writeFileSync(path, lines.join('\n') + '\n');
    if (!files.includes(path)) files.push(path);
    return path;
  }

  function startProvider(cfg: Partial<DnsConfig>): RecordingSink {
    const sink = new RecordingSink();
    provider = new DnsDiscovery({ servers: [svc.dns as string], minRefresh: 200, maxRefresh: 1_000, ...cfg });
    provider.start(sink);
    return sink;
  }

  it('resolves A and AAAA and follows hostsdir edits', async () => {
    const name = `h-${randomUUID().slice(0, 8)}.meshwork.test`;
    hosts(name, [`127.0.1.1 ${name}`, `127.0.1.2 ${name}`, `::1 ${name}`]);
    const sink = startProvider({ host: name, port: 8080 });
    await sink.waitFor(() => sink.endpoints.size === 3, 8_000, 'first resolution');
    expect(sink.readyCount).toBe(1);
    expect(sink.addresses()).toEqual(['127.0.1.1:8080', '127.0.1.2:8080', '[::1]:8080']);
    expect(sink.endpoints.get('[::1]:8080')).toMatchObject({ host: '::1', port: 8080, weight: 1 });

    hosts(name, [`127.0.1.2 ${name}`, `127.0.1.3 ${name}`]);
    await sink.waitFor(
      () => sink.addresses().join() === '127.0.1.2:8080,127.0.1.3:8080',
      8_000,
      'the edit to show',
    );
    expect(sink.errors).toEqual([]);
  });

  it('family ipv4 reads only A records', async () => {
    const name = `f-${randomUUID().slice(0, 8)}.meshwork.test`;
    hosts(name, [`127.0.2.1 ${name}`, `::1 ${name}`]);
    const sink = startProvider({ host: name, port: 80, family: 'ipv4' });
    await sink.waitFor(() => sink.readyCount === 1);
    expect(sink.addresses()).toEqual(['127.0.2.1:80']);
  });

  it('a name that does not exist is ready and empty (NXDOMAIN is an answer)', async () => {
    const sink = startProvider({ host: `missing-${randomUUID().slice(0, 8)}.meshwork.test`, port: 80 });
    await sink.waitFor(() => sink.readyCount === 1);
    expect(sink.endpoints.size).toBe(0);
    expect(sink.errors).toEqual([]);
  });

  it('resolves SRV records: targets, ports, weights and priority', async () => {
    const sink = startProvider({ srv: SRV_FIXTURES.api.name });
    await sink.waitFor(() => sink.endpoints.size >= 3);
    for (const r of SRV_FIXTURES.api.records) {
      const ep = sink.endpoints.get(`${r.ip}:${r.port}`);
      expect(ep).toMatchObject({
        weight: r.weight,
        labels: { priority: String(r.priority), 'srv.target': r.target },
      });
    }
  });

  it('follows an SRV target whose addresses change in the hostsdir', async () => {
    const sink = startProvider({ srv: SRV_FIXTURES.api.name });
    await sink.waitFor(() => sink.endpoints.size === 3);
    hosts('srv-extra', ['127.0.0.42 api-2.meshwork.test']);
    await sink.waitFor(() => sink.endpoints.has('127.0.0.42:18082'), 8_000, 'extra api-2 address');
    expect(sink.endpoints.size).toBe(4);
    rmSync(join(svc.dnsHostsDir as string, 'srv-extra'));
    await sink.waitFor(() => !sink.endpoints.has('127.0.0.42:18082'), 8_000, 'extra address gone');
  });

  it('a DNS outage keeps the last endpoints, reports errors, then recovers', async () => {
    const name = `d-${randomUUID().slice(0, 8)}.meshwork.test`;
    hosts(name, [`127.0.4.1 ${name}`]);
    const [host, port] = (svc.dns as string).split(':') as [string, string];
    const proxy = await new UdpProxy({ host, port: Number(port) }).start();
    try {
      const sink = new RecordingSink();
      provider = new DnsDiscovery({
        host: name,
        port: 80,
        servers: [`127.0.0.1:${proxy.port}`],
        timeout: 200,
        minRefresh: 100,
        maxRefresh: 500,
      });
      provider.start(sink);
      await sink.waitFor(() => sink.endpoints.size === 1);
      proxy.dropping = true;
      await sink.waitFor(() => sink.errors.length >= 2, 8_000, 'errors during the outage');
      expect(sink.addresses()).toEqual(['127.0.4.1:80']);
      expect(sink.removes()).toBe(0);
      expect(provider.status().state).toBe('degraded');
      hosts(name, [`127.0.4.2 ${name}`]);
      proxy.dropping = false;
      await sink.waitFor(() => sink.addresses().join() === '127.0.4.2:80', 8_000, 'recovery');
      expect(provider.status().state).toBe('ready');
    } finally {
      await provider?.close();
      await proxy.close();
    }
  });

  it('a server that does not answer is an outage: errors, not ready, nothing emitted', async () => {
    const name = `o-${randomUUID().slice(0, 8)}.meshwork.test`;
    const dead = new RecordingSink();
    const p2 = new DnsDiscovery({
      host: name,
      port: 80,
      servers: ['127.0.0.1:1'],
      timeout: 200,
      minRefresh: 100,
    });
    p2.start(dead);
    await dead.waitFor(() => dead.errors.length >= 1, 8_000);
    expect(dead.readyCount).toBe(0);
    expect(p2.status().state).toBe('starting');
    expect(dead.batches).toEqual([]);
    await p2.close();
  });
});
