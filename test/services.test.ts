// The services the global setup (test/setup/services.ts) starts. Redis has no user yet (a future
// rate-limit feature will): this smoke test keeps it honest until then.
import { connect } from 'node:net';
import { describe, expect, inject, it } from 'vitest';
import { testServices } from './support/services.ts';

function send(url: string, command: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = connect({ host: hostname, port: Number(port) });
    let got = '';
    sock.setTimeout(5_000, () => sock.destroy(new Error(`no answer from ${url} in 5 s`)));
    sock.once('error', reject);
    sock.on('data', (d) => {
      got += d.toString('latin1');
      if (got.endsWith('\r\n')) {
        sock.end();
        resolve(got);
      }
    });
    sock.write(command);
  });
}

describe('test services', () => {
  it('redis-server answers PING over a raw TCP socket (RESP)', async () => {
    const redis = testServices().redis;
    expect(redis, 'MESHWORK_TEST_REDIS').toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/);
    expect(await send(redis as string, '*1\r\n$4\r\nPING\r\n')).toBe('+PONG\r\n');
  });

  it('reaches the workers both as env vars and through provide/inject', () => {
    const provided = inject('meshworkServices');
    expect(provided.redis).toBe(process.env.MESHWORK_TEST_REDIS);
    expect(provided.etcd).toBe(process.env.MESHWORK_TEST_ETCD);
    expect(provided.dns).toBe(process.env.MESHWORK_TEST_DNS);
    expect(provided.dnsHostsDir).toBe(process.env.MESHWORK_TEST_DNS_HOSTSDIR);
  });
});
