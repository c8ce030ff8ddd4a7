/**
 * A real Prometheus (Debian's `prometheus` package: the vitest global setup installs it) scrapes
 * meshwork's metrics through the OpenTelemetry Prometheus exporter every second, and the PromQL
 * p99 per service of docs/telemetry.md agrees with the latencies the callers measured. The test
 * starts its own Prometheus on a free loopback port, with a config and a storage dir of its own
 * in a temp dir, and stops it (by its pid) at the end.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { metrics } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMesh, type Mesh } from '../src/index.ts';
import { HTTP_DURATION_BUCKETS } from '../src/telemetry/metrics.ts';
import { startServer, type TestServer } from './support/servers.ts';
import { testServices } from './support/services.ts';

const PROMETHEUS = testServices().prometheus ?? '/usr/bin/prometheus';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let dir: string;
let prometheus: ChildProcess | undefined;
let promUrl: string;
let exporterServer: Server;
let meterProvider: MeterProvider;
let mesh: Mesh;
let fast: TestServer;
let slow: TestServer;

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

/** A PromQL instant query; the vector's samples by the label given. */
async function query(promql: string, by: string): Promise<Map<string, number>> {
  const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(promql)}`, {
    signal: AbortSignal.timeout(5_000),
  });
  const body = (await res.json()) as {
    status: string;
    data: { result: { metric: Record<string, string>; value: [number, string] }[] };
  };
  expect(body.status).toBe('success');
  return new Map(body.data.result.map((r) => [r.metric[by] ?? '', Number(r.value[1])]));
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

beforeAll(async () => {
  expect(
    existsSync(PROMETHEUS),
    `${PROMETHEUS} is missing: the test setup installs Debian's prometheus`,
  ).toBe(true);
  // The SDK as docs/telemetry.md sets it up, with the exporter's handler on a port of our own.
  const exporter = new PrometheusExporter({ preventServerStart: true });
  meterProvider = new MeterProvider({ readers: [exporter] });
  metrics.setGlobalMeterProvider(meterProvider);
  exporterServer = createServer((req, res) => exporter.getMetricsRequestHandler(req, res));
  exporterServer.listen(0, '127.0.0.1');
  await once(exporterServer, 'listening');
  const target = `127.0.0.1:${(exporterServer.address() as AddressInfo).port}`;

  fast = await startServer((_req, res) => {
    res.end('fast');
  });
  // Nine answers in ten after 20 ms, the tenth after 550 ms: p99 sits in the (0.5 s, 0.75 s] bucket.
  let n = 0;
  slow = await startServer((_req, res) => {
    setTimeout(() => res.end('slow'), n++ % 10 === 9 ? 550 : 20);
  });
  mesh = createMesh({
    env: {},
    services: {
      fast: { discovery: { static: [fast.address] } },
      slow: { discovery: { static: [slow.address] } },
    },
  });

  dir = mkdtempSync(join(tmpdir(), 'meshwork-prometheus-'));
  writeFileSync(
    join(dir, 'prometheus.yml'),
    [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      '  - job_name: meshwork',
      '    static_configs:',
      `      - targets: ['${target}']`,
      '',
    ].join('\n'),
  );
  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  prometheus = spawn(
    PROMETHEUS,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  prometheus.stderr?.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString()).slice(-4_000);
  });
  await until('prometheus to be ready', async () => {
    if (prometheus?.exitCode !== null) throw new Error(`prometheus exited: ${stderr}`);
    const r = await fetch(`${promUrl}/-/ready`, { signal: AbortSignal.timeout(1_000) });
    return r.ok ? true : undefined;
  });
}, 60_000);

afterAll(async () => {
  if (prometheus?.pid !== undefined && prometheus.exitCode === null) {
    prometheus.kill('SIGTERM');
    await Promise.race([once(prometheus, 'exit'), sleep(10_000)]);
    if (prometheus.exitCode === null) prometheus.kill('SIGKILL');
  }
  await mesh?.close();
  await fast?.close();
  await slow?.close();
  exporterServer?.closeAllConnections();
  await new Promise((r) => exporterServer?.close(r));
  await meterProvider?.shutdown();
  metrics.disable();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The upper bound of the semantic-convention bucket a duration (s) falls in. */
function bucketOf(seconds: number): number {
  return HTTP_DURATION_BUCKETS.find((b) => seconds <= b) ?? Number.POSITIVE_INFINITY;
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number;
}

describe('Prometheus scraping meshwork through the OpenTelemetry Prometheus exporter', () => {
  it('the PromQL p99 per service of the docs agrees with what the callers measured', {
    timeout: 120_000,
  }, async () => {
    // One request each, then wait for a scrape that has the series: rate() sees the whole load.
    for (const svc of ['fast', 'slow']) await (await mesh.fetch(`http://${svc}/`)).text();
    await until('the first scrape', async () => {
      const r = await query(
        'sum by (meshwork_service) (meshwork_request_duration_count)',
        'meshwork_service',
      );
      return r.size === 2 ? true : undefined;
    });

    // Load: four closed loops per service for 6 s.
    const measured: Record<string, number[]> = { fast: [], slow: [] };
    const stop = Date.now() + 6_000;
    await Promise.all(
      ['fast', 'slow'].flatMap((svc) =>
        Array.from({ length: 4 }, async () => {
          while (Date.now() < stop) {
            const t0 = performance.now();
            const res = await mesh.fetch(`http://${svc}/`);
            await res.text();
            measured[svc]?.push((performance.now() - t0) / 1000);
          }
        }),
      ),
    );
    const sent = { fast: measured.fast!.length + 1, slow: measured.slow!.length + 1 };
    expect(sent.slow).toBeGreaterThan(40);

    // Wait until Prometheus has scraped every request.
    await until('a scrape after the load', async () => {
      const r = await query(
        'sum by (meshwork_service) (meshwork_request_duration_count)',
        'meshwork_service',
      );
      return r.get('fast') === sent.fast && r.get('slow') === sent.slow ? true : undefined;
    });
    // Two more scrapes, so the rate's last samples are the final counts.
    await sleep(2_500);

    const p99 = await query(
      'histogram_quantile(0.99, sum by (le, meshwork_service) (rate(meshwork_request_duration_bucket[1m])))',
      'meshwork_service',
    );
    const p50 = await query(
      'histogram_quantile(0.5, sum by (le, meshwork_service) (rate(meshwork_request_duration_bucket[1m])))',
      'meshwork_service',
    );
    const truth = {
      fast: quantile(
        [...measured.fast!].sort((a, b) => a - b),
        0.99,
      ),
      slow: quantile(
        [...measured.slow!].sort((a, b) => a - b),
        0.99,
      ),
      slowP50: quantile(
        [...measured.slow!].sort((a, b) => a - b),
        0.5,
      ),
    };
    const report = JSON.stringify({ p99: [...p99], p50: [...p50], truth });
    // slow: one answer in ten takes 550 ms, so the p99 is in the (0.5, 0.75] bucket (or the next,
    // on a machine slow enough to push those answers past 750 ms), and the p50 near 20 ms.
    expect(p99.get('slow'), report).toBeGreaterThan(0.5);
    expect(p99.get('slow'), report).toBeLessThanOrEqual(1);
    expect(bucketOf(p99.get('slow') as number), report).toBe(bucketOf(truth.slow));
    expect(p50.get('slow'), report).toBeGreaterThan(0.01);
    expect(p50.get('slow'), report).toBeLessThanOrEqual(0.1);
    // fast: well under the slow one's, within a bucket of what the callers saw.
    const fastP99 = p99.get('fast') as number;
    expect(fastP99, report).toBeLessThan(0.25);
    const i = HTTP_DURATION_BUCKETS.indexOf(bucketOf(fastP99));
    const j = HTTP_DURATION_BUCKETS.indexOf(bucketOf(truth.fast));
    expect(Math.abs(i - j), report).toBeLessThanOrEqual(1);

    // Each attempt once in http.client.request.duration, by service too.
    const attempts = await query(
      'sum by (meshwork_service) (http_client_request_duration_count)',
      'meshwork_service',
    );
    expect(attempts.get('slow')).toBe(sent.slow);
  });
});
