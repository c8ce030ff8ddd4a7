/**
 * Discovery propagation bench: time from a registry change to the provider emitting the change,
 * for the Consul HTTP API double, a real etcd and a real dnsmasq (hostsdir edit), each with the
 * provider's DEFAULT timing settings; plus requests sent to Consul per minute while idle.
 *
 *   node bench/discovery/propagation.ts [--rounds 20] [--idle-seconds 65]
 *
 * etcd and dnsmasq come from .ci/services.sh (MESHWORK_TEST_* or /tmp/meshwork-services.env);
 * a missing one is reported as skipped. Prints a JSON summary. The process exits by itself, which
 * also shows that close() leaves nothing open.
 */
import { randomUUID } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Etcd3 } from 'etcd3';
import { ConsulDiscovery } from '../../src/discovery/consul.ts';
import { DnsDiscovery } from '../../src/discovery/dns.ts';
import { EtcdDiscovery } from '../../src/discovery/etcd.ts';
import type { DiscoveryProvider } from '../../src/discovery/types.ts';
import { ConsulDouble } from '../../test/support/consul-double.ts';
import { RecordingSink } from '../../test/support/recording-sink.ts';
import { testServices } from '../../test/support/services.ts';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '20' }, 'idle-seconds': { type: 'string', default: '65' } },
});
const ROUNDS = Number(values.rounds);
const IDLE_SECONDS = Number(values['idle-seconds']);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Stats {
  rounds: number;
  p50: number;
  p95: number;
  max: number;
  mean: number;
}

function stats(samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    rounds: s.length,
    p50: r(at(0.5)),
    p95: r(at(0.95)),
    max: r(s[s.length - 1] as number),
    mean: r(s.reduce((a, b) => a + b, 0) / s.length),
  };
}

/** Runs `rounds` changes; each round makes a change and times until the sink shows it. */
async function measure(
  provider: DiscoveryProvider,
  change: (i: number) => Promise<void> | void,
  shows: (sink: RecordingSink, i: number) => boolean,
  gapMs: number,
): Promise<Stats> {
  const sink = new RecordingSink();
  provider.start(sink);
  await sink.waitFor(() => sink.readyCount === 1, 15_000, 'first resolution');
  const samples: number[] = [];
  try {
    for (let i = 1; i <= ROUNDS; i++) {
      // A random gap, so changes land at random points of the provider's cycle.
      await sleep(gapMs * (0.5 + Math.random()));
      const t0 = performance.now();
      await change(i);
      await sink.waitFor(() => shows(sink, i), 15_000, `change ${i}`);
      samples.push(performance.now() - t0);
    }
  } finally {
    await provider.close();
  }
  return stats(samples);
}

async function consulPropagation(): Promise<Stats> {
  const consul = await new ConsulDouble().start();
  try {
    consul.register({ id: 'i0', service: 'api', address: '127.0.0.2', port: 8000 });
    const provider = new ConsulDiscovery(
      { port: consul.port, host: '127.0.0.1' },
      { service: 'api', env: {} },
    );
    return await measure(
      provider,
      (i) => consul.register({ id: `i${i}`, service: 'api', address: '127.0.0.2', port: 8000 + i }),
      (sink, i) => sink.endpoints.has(`127.0.0.2:${8000 + i}`),
      400,
    );
  } finally {
    await consul.stop();
  }
}

async function consulIdle(): Promise<{ seconds: number; requests: number; perMinute: number }> {
  const consul = await new ConsulDouble().start();
  consul.register({ id: 'i0', service: 'api', address: '127.0.0.2', port: 8000 });
  const provider = new ConsulDiscovery({ port: consul.port, host: '127.0.0.1' }, { service: 'api', env: {} });
  const sink = new RecordingSink();
  provider.start(sink);
  await sink.waitFor(() => sink.readyCount === 1);
  // Count from the moment the first blocking query is parked (it is counted: it is the idle cost).
  while (consul.blockedQueries === 0) await sleep(10);
  consul.resetRequests();
  const parked = 1;
  await sleep(IDLE_SECONDS * 1000);
  const requests = consul.requestCount() + parked;
  await provider.close();
  await consul.stop();
  return {
    seconds: IDLE_SECONDS,
    requests,
    perMinute: Math.round((requests / IDLE_SECONDS) * 60 * 100) / 100,
  };
}

async function etcdPropagation(url: string): Promise<Stats> {
  const client = new Etcd3({ hosts: [url] });
  const prefix = `/meshwork-bench/${randomUUID()}/`;
  try {
    const provider = new EtcdDiscovery({ hosts: [url], prefix }, { service: 'api', env: {} });
    return await measure(
      provider,
      async (i) => {
        await client.put(`${prefix}${i}`).value(JSON.stringify({ address: `127.0.0.3:${9000 + i}` }));
      },
      (sink, i) => sink.endpoints.has(`127.0.0.3:${9000 + i}`),
      200,
    );
  } finally {
    await client.delete().prefix(prefix);
    client.close();
  }
}

async function dnsPropagation(server: string, hostsDir: string): Promise<Stats> {
  const name = `bench-${randomUUID().slice(0, 8)}.meshwork.test`;
  const file = join(hostsDir, name);
  writeFileSync(file, `127.0.5.0 ${name}\n`);
  try {
    const provider = new DnsDiscovery({ host: name, port: 80, servers: [server] });
    return await measure(
      provider,
      (i) => writeFileSync(file, `127.0.5.${i} ${name}\n`),
      (sink, i) => sink.endpoints.has(`127.0.5.${i}:80`),
      300,
    );
  } finally {
    rmSync(file, { force: true });
  }
}

const svc = testServices();
const result: Record<string, unknown> = { node: process.version, rounds: ROUNDS };
result.consulDouble = await consulPropagation();
result.etcd = svc.etcd ? await etcdPropagation(svc.etcd) : 'skipped: MESHWORK_TEST_ETCD unset';
result.dnsmasq =
  svc.dns && svc.dnsHostsDir
    ? await dnsPropagation(svc.dns, svc.dnsHostsDir)
    : 'skipped: MESHWORK_TEST_DNS unset';
result.consulIdle = await consulIdle();
console.log(JSON.stringify(result, null, 2));
