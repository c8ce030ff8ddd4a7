/**
 * Starts every watching provider, lets it work briefly, closes it, and then does nothing: the
 * process must exit by itself (test/discovery-close.test.ts checks that it does).
 * argv: <consul port> <dns server or ""> <etcd url or ""> <file path>
 */
import { ConsulDiscovery } from '../../src/discovery/consul.ts';
import { DnsDiscovery } from '../../src/discovery/dns.ts';
import { EtcdDiscovery } from '../../src/discovery/etcd.ts';
import { FileDiscovery } from '../../src/discovery/file.ts';
import type { DiscoveryProvider } from '../../src/discovery/types.ts';
import { RecordingSink } from './recording-sink.ts';

const [consulPort, dns, etcd, file] = process.argv.slice(2) as [string, string, string, string];
const ctx = { service: 'api', env: {} };
const providers: DiscoveryProvider[] = [
  new ConsulDiscovery({ host: '127.0.0.1', port: Number(consulPort) }, ctx),
  new FileDiscovery({ path: file }),
  new DnsDiscovery({ host: 'api-1.meshwork.test', port: 80, servers: dns ? [dns] : ['127.0.0.1:1'] }),
  new EtcdDiscovery({ hosts: [etcd || 'http://127.0.0.1:1'], prefix: '/meshwork-close/' }, ctx),
];
const sink = new RecordingSink();
for (const p of providers) p.start(sink);
await new Promise((r) => setTimeout(r, 500));
await Promise.all(providers.map((p) => p.close()));
console.log(`closed ready=${sink.readyCount}`);
