import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConsulDiscovery, consulEntrySpec, consulSettings } from '../src/discovery/consul.ts';
import type { ConsulConfig } from '../src/discovery/schema.ts';
import { ConsulDouble } from './support/consul-double.ts';
import { RecordingSink, until } from './support/recording-sink.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('consul discovery against the Consul HTTP API double', () => {
  let consul: ConsulDouble;
  let provider: ConsulDiscovery | undefined;

  beforeEach(async () => {
    consul = await new ConsulDouble().start();
  });
  afterEach(async () => {
    await provider?.close();
    provider = undefined;
    await consul.stop();
  });

  function startProvider(cfg: Partial<ConsulConfig> = {}): RecordingSink {
    const sink = new RecordingSink();
    provider = new ConsulDiscovery(
      { service: 'api', host: '127.0.0.1', port: consul.port, wait: 30_000, minInterval: 50, ...cfg },
      { service: 'api', env: {} },
    );
    provider.start(sink);
    return sink;
  }

  it('reads passing instances, falls back to Node.Address, maps weights, tags and meta', async () => {
    consul.register({
      id: 'a',
      service: 'api',
      address: '127.0.0.2',
      port: 8080,
      weights: { Passing: 5, Warning: 1 },
    });
    consul.register({
      id: 'b',
      service: 'api',
      port: 8081,
      nodeAddress: '127.0.0.3',
      tags: ['primary', 'version=v2'],
      meta: { zone: 'eu-1', team: 'core' },
    });
    consul.register({ id: 'other', service: 'web', address: '127.0.0.9', port: 1 });
    const sink = startProvider();
    await sink.waitFor(() => sink.readyCount === 1 && sink.endpoints.size === 2);
    expect(sink.addresses()).toEqual(['127.0.0.2:8080', '127.0.0.3:8081']);
    expect(sink.endpoints.get('127.0.0.2:8080')?.weight).toBe(5);
    const b = sink.endpoints.get('127.0.0.3:8081')!;
    expect(b.weight).toBe(1);
    expect(b.zone).toBe('eu-1');
    expect(b.labels).toMatchObject({
      'consul.tag.primary': 'true',
      'consul.tag.version=v2': 'true',
      version: 'v2',
      team: 'core',
      zone: 'eu-1',
      'consul.id': 'b',
    });
    expect(sink.errors).toEqual([]);
  });

  it('blocks rather than polls while idle', async () => {
    consul.register({ id: 'a', service: 'api', address: '127.0.0.2', port: 8080 });
    const sink = startProvider({ wait: 60_000, minInterval: 10 });
    await sink.waitFor(() => sink.endpoints.size === 1);
    await until(() => consul.blockedQueries === 1, 5_000, 'a parked query');
    const before = consul.requestCount();
    await sleep(3_000);
    // One blocking query is parked at the double the whole time; no new request was sent.
    expect(consul.requestCount()).toBe(before);
    expect(consul.blockedQueries).toBe(1);
    // ...and a change wakes it at once.
    consul.register({ id: 'b', service: 'api', address: '127.0.0.3', port: 8080 });
    await sink.waitFor(() => sink.endpoints.size === 2);
    const queries = consul.requests().map((r) => r.query);
    expect(queries[0]).not.toContain('index=');
    const blocking = queries.slice(1);
    expect(blocking.length).toBeGreaterThanOrEqual(1);
    for (const q of blocking) expect(q).toMatch(/index=\d+&wait=60s/);
  });

  it('removes an instance whose check turns critical or warning, or whose node fails', async () => {
    consul.register({ id: 'a', service: 'api', address: '127.0.0.2', port: 8080 });
    consul.register({ id: 'b', service: 'api', address: '127.0.0.3', port: 8080 });
    consul.register({ id: 'c', service: 'api', address: '127.0.0.4', port: 8080, node: 'n3' });
    const sink = startProvider();
    await sink.waitFor(() => sink.endpoints.size === 3);
    consul.setCheck('a', 'service:a', 'critical');
    await sink.waitFor(() => !sink.endpoints.has('127.0.0.2:8080'), 5_000, 'critical removes a');
    consul.setCheck('b', 'service:b', 'warning');
    await sink.waitFor(() => !sink.endpoints.has('127.0.0.3:8080'), 5_000, 'warning removes b');
    consul.setNodeHealth('n3', 'critical');
    await sink.waitFor(() => sink.endpoints.size === 0, 5_000, 'serfHealth removes c');
    consul.setCheck('a', 'service:a', 'passing');
    await sink.waitFor(() => sink.addresses().join() === '127.0.0.2:8080', 5_000, 'a comes back');
  });

  it('deregistration removes and re-registration inserts', async () => {
    consul.register({ id: 'a', service: 'api', address: '127.0.0.2', port: 8080 });
    const sink = startProvider();
    await sink.waitFor(() => sink.endpoints.size === 1);
    consul.deregister('a');
    await sink.waitFor(() => sink.endpoints.size === 0);
    consul.register({
      id: 'a',
      service: 'api',
      address: '127.0.0.2',
      port: 9090,
      weights: { Passing: 3, Warning: 1 },
    });
    await sink.waitFor(() => sink.endpoints.get('127.0.0.2:9090')?.weight === 3);
  });

  it('resets the index when it goes backwards', async () => {
    consul.register({ id: 'a', service: 'api', address: '127.0.0.2', port: 8080 });
    const sink = startProvider();
    await sink.waitFor(() => sink.endpoints.size === 1);
    await sleep(100);
    const before = provider!.status().index;
    expect(before).toBeGreaterThan(1);
    consul.rewindIndex('api', 1);
    // The blocked query returns index 1 < requested: the provider resets to 0, reads in full,
    // then blocks on the new (low) index.
    await until(() => consul.requests().some((r) => /index=1(&|$)/.test(r.query)), 5_000, 'block on index 1');
    const queries = consul.requests().map((r) => r.query);
    const low = queries.findIndex((q) => /index=1(&|$)/.test(q));
    // Right before blocking on index 1, a full non-blocking read (no index) was made.
    expect(queries[low - 1]).not.toContain('index=');
    expect(provider!.status().index).toBe(1);
    consul.register({ id: 'b', service: 'api', address: '127.0.0.3', port: 8080 });
    await sink.waitFor(() => sink.endpoints.size === 2);
    expect(sink.removes()).toBe(0);
  });

  it('keeps the last endpoints through an outage, reports errors, then recovers', async () => {
    consul.register({ id: 'a', service: 'api', address: '127.0.0.2', port: 8080 });
    const sink = startProvider();
    await sink.waitFor(() => sink.endpoints.size === 1);
    await consul.stop();
    await sink.waitFor(() => sink.errors.length >= 2, 8_000, 'errors during outage');
    expect(sink.addresses()).toEqual(['127.0.0.2:8080']);
    expect(sink.removes()).toBe(0);
    expect(provider!.status().state).toBe('degraded');
    consul.register({ id: 'b', service: 'api', address: '127.0.0.3', port: 8080 });
    await consul.start();
    await sink.waitFor(() => sink.endpoints.size === 2, 10_000, 'recovery');
    expect(provider!.status().state).toBe('ready');
  });

  it('500 "No cluster leader" is an error that keeps the endpoints', async () => {
    consul.register({ id: 'a', service: 'api', address: '127.0.0.2', port: 8080 });
    const sink = startProvider();
    await sink.waitFor(() => sink.endpoints.size === 1);
    consul.fail(500);
    await sink.waitFor(() => sink.errors.length >= 1);
    expect(sink.errors[0]?.message).toMatch(/500|leader/);
    expect(sink.addresses()).toEqual(['127.0.0.2:8080']);
    consul.fail(undefined);
    consul.register({ id: 'b', service: 'api', address: '127.0.0.3', port: 8080 });
    await sink.waitFor(() => sink.endpoints.size === 2, 10_000);
  });

  it('makes a periodic full (non-blocking) refresh', async () => {
    consul.register({ id: 'a', service: 'api', address: '127.0.0.2', port: 8080 });
    const sink = startProvider({ wait: 1_000, refreshInterval: 1_500 });
    await sink.waitFor(() => sink.endpoints.size === 1);
    await until(
      () => consul.requests().filter((r) => !r.query.includes('index=')).length >= 2,
      8_000,
      'a second non-blocking read',
    );
    const queries = consul.requests().map((r) => r.query);
    expect(queries.filter((q) => q.includes('index=')).length).toBeGreaterThanOrEqual(1);
    expect(sink.removes()).toBe(0);
  });

  it('rate-limits itself when the index churns', async () => {
    consul.register({ id: 'a', service: 'api', address: '127.0.0.2', port: 8080 });
    const sink = startProvider({ minInterval: 500 });
    await sink.waitFor(() => sink.endpoints.size === 1);
    consul.resetRequests();
    const churn = setInterval(() => consul.touch('api'), 10);
    await sleep(2_000);
    clearInterval(churn);
    // 2s at >= 500ms between requests: at most ~5, where an unlimited client would send ~200.
    expect(consul.requestCount()).toBeLessThanOrEqual(6);
  });

  it('sends tag, dc, filter and token; a malformed entry is skipped, the rest stays', async () => {
    await consul.stop();
    consul = await new ConsulDouble({ token: 's3cret' }).start();
    consul.register({
      id: 'a',
      service: 'api',
      address: '127.0.0.2',
      port: 8080,
      tags: ['blue', 'x'],
      meta: { v: '1' },
    });
    consul.register({
      id: 'b',
      service: 'api',
      address: '127.0.0.3',
      port: 8080,
      tags: ['blue'],
      meta: { v: '2' },
    });
    consul.register({ id: 'c', service: 'api', address: '127.0.0.4', port: 8080, tags: ['green'] });
    consul.register({
      id: 'd',
      service: 'api',
      address: 'not a host!',
      port: 8080,
      tags: ['blue', 'x'],
      meta: { v: '1' },
    });
    // Has "blue" but not "x": filtered out by the second tag.
    consul.register({
      id: 'e',
      service: 'api',
      address: '127.0.0.5',
      port: 8080,
      tags: ['blue'],
      meta: { v: '1' },
    });
    const sink = startProvider({
      tag: ['blue', 'x'],
      dc: 'dc1',
      filter: 'Service.Meta.v == "1"',
      token: 's3cret',
    });
    await sink.waitFor(() => sink.readyCount === 1);
    expect(sink.addresses()).toEqual(['127.0.0.2:8080']);
    expect(sink.skips.length).toBe(1);
    expect(sink.skips[0]?.reason).toMatch(/not a valid host:port/);
    const q = consul.requests()[0]?.query ?? '';
    expect(q).toContain('tag=blue&tag=x');
    expect(q).toContain('dc=dc1');
    expect(q).toContain('passing=true');
  });

  it('an unknown service is ready and empty; close() leaves nothing blocked', async () => {
    const sink = startProvider({ service: 'nope' });
    await sink.waitFor(() => sink.readyCount === 1);
    expect(sink.endpoints.size).toBe(0);
    await sleep(100);
    expect(consul.blockedQueries).toBe(1);
    await provider!.close();
    await sleep(100);
    expect(consul.blockedQueries).toBe(0);
    expect(provider!.status().state).toBe('closed');
  });
});

describe('consul settings and entries', () => {
  it('falls back to CONSUL_HTTP_ADDR and CONSUL_HTTP_TOKEN, service defaults to the mesh name', () => {
    const s = consulSettings({}, 'orders', {
      CONSUL_HTTP_ADDR: 'https://consul.internal:8501',
      CONSUL_HTTP_TOKEN: 'tok',
    });
    expect(s).toMatchObject({
      service: 'orders',
      host: 'consul.internal',
      port: 8501,
      secure: true,
      token: 'tok',
    });
    expect(
      consulSettings({ host: 'x', port: 1, token: 't2' }, 'o', { CONSUL_HTTP_ADDR: '10.0.0.1:8500' }),
    ).toMatchObject({ host: 'x', port: 1, token: 't2', secure: false });
    expect(consulSettings({}, 'o', { CONSUL_HTTP_ADDR: '10.0.0.1:9500' })).toMatchObject({
      host: '10.0.0.1',
      port: 9500,
    });
    expect(consulSettings({}, 'o', {})).toMatchObject({ host: '127.0.0.1', port: 8500, wait: 60_000 });
  });

  it('rejects bad ports and weights, formats IPv6', () => {
    const base = {
      Node: { Node: 'n', Address: '::1', Datacenter: 'dc1' },
      Service: { ID: 'x', Tags: [], Address: '', Port: 80 },
    };
    expect(consulEntrySpec(base)).toMatchObject({ address: '[::1]:80', host: '::1', port: 80 });
    expect(consulEntrySpec({ ...base, Service: { ...base.Service, Port: 0 } })).toMatch(/not a port/);
    expect(consulEntrySpec({ ...base, Service: { ...base.Service, Weights: { Passing: 0 } } })).toMatch(
      /Weights/,
    );
    expect(consulEntrySpec(null)).toMatch(/object/);
  });
});

describe('the Consul double follows the HTTP API', () => {
  it('answers errors, unknown services, passing and blocking like Consul', async () => {
    const consul = await new ConsulDouble().start();
    const base = `http://127.0.0.1:${consul.port}/v1/health/service`;
    try {
      const bad = async (q: string) => {
        const r = await fetch(`${base}/api?${q}`);
        return `${r.status} ${await r.text()}`;
      };
      expect(await bad('wait=soon&index=1')).toBe('400 Invalid wait time');
      expect(await bad('index=x')).toBe('400 Invalid index');
      expect(await bad('passing=maybe')).toBe('400 Invalid value for ?passing');
      expect(await bad('filter=Service.Bogus%20%3D%3D%20%22x%22')).toMatch(/^400/);
      expect(await bad('dc=elsewhere')).toMatch(/^500 No path to datacenter/);

      const unknown = await fetch(`${base}/nope`);
      expect(unknown.status).toBe(200);
      expect(await unknown.json()).toEqual([]);
      expect(Number(unknown.headers.get('x-consul-index'))).toBeGreaterThanOrEqual(1);
      expect(unknown.headers.get('x-consul-knownleader')).toBe('true');
      expect(unknown.headers.get('x-consul-lastcontact')).toBe('0');

      consul.register({ id: 'a', service: 'api', port: 80, nodeAddress: '10.1.1.1' });
      consul.register({ id: 'b', service: 'api', port: 81 });
      consul.setCheck('b', 'service:b', 'warning');
      const all = (await (await fetch(`${base}/api`)).json()) as any[];
      expect(all).toHaveLength(2);
      expect(all[0].Service.Address).toBe('');
      expect(all[0].Node.Address).toBe('10.1.1.1');
      expect(all[0].Checks[0]).toMatchObject({ CheckID: 'serfHealth', ServiceID: '' });
      for (const q of ['passing', 'passing=1', 'passing=T']) {
        const body = (await (await fetch(`${base}/api?${q}`)).json()) as any[];
        expect(body.map((e) => e.Service.ID)).toEqual(['a']);
      }

      // A blocking query with the current index returns after `wait` (plus up to wait/16) with
      // the same index.
      const idx = consul.indexOf('api');
      const t0 = Date.now();
      const r = await fetch(`${base}/api?index=${idx}&wait=300ms`);
      const took = Date.now() - t0;
      expect(r.headers.get('x-consul-index')).toBe(String(idx));
      expect(took).toBeGreaterThanOrEqual(290);
      await r.arrayBuffer();
    } finally {
      await consul.stop();
    }
  });
});
