// bench/telemetry: what telemetry costs on the request path. One upstream in its own process;
// the same mesh.dispatcher request through four meshes:
//   no telemetry code   createMesh({ telemetry: false }): the telemetry layers are not in the stack
//   no SDK              the default: layers present, no OpenTelemetry provider, no subscriber
//   SDK, no-op export   a real tracer + meter provider (batch span processor, periodic metric
//                       reader) whose exporters drop everything: the full recording cost
//   channel subscriber  no SDK, one subscriber on meshwork:request:end
//   admin window        no SDK, the admin page's rolling minute kept (as once mesh.adminHandler() exists)
//   A/A control         a second mesh without telemetry code: the noise floor of the run
// Interleaved rounds (order rotates), medians reported, ratios against "no telemetry code".
// Also, without network: ns per request through the telemetry layer, with nothing observing, with
// the admin window and with the SDK.
// Target: no SDK ≥ 0.98× the throughput of no telemetry code.
// Best run as `node --expose-gc bench/telemetry/run.ts` (a GC between runs).
import dc from 'node:diagnostics_channel';
import { metrics, trace } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import {
  MeterProvider,
  PeriodicExportingMetricReader,
  type PushMetricExporter,
} from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { request } from 'undici';
import type { Endpoint } from '../../src/balancer/endpoint.ts';
import { validateConfig } from '../../src/config/load.ts';
import { createMesh } from '../../src/index.ts';
import {
  type Dispatch,
  type DispatchController,
  type DispatchHandler,
  type EndpointDispatch,
  newMeshRequest,
} from '../../src/pipeline.ts';
import { ServiceRuntime } from '../../src/service.ts';
import { attemptLayer } from '../../src/telemetry/attempt-layer.ts';
import { CHANNELS } from '../../src/telemetry/channels.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { enableStats } from '../../src/telemetry/stats.ts';
import { telemetryLayer } from '../../src/telemetry/telemetry-layer.ts';
import {
  fmt,
  load,
  median,
  parseArgs,
  type RunResult,
  ratioTable,
  startUpstream,
  WARMUP,
  warmUp,
} from '../support/harness.ts';

const noopSpanExporter: SpanExporter = {
  export: (_spans, done) => done({ code: ExportResultCode.SUCCESS }),
  shutdown: async () => {},
};
const noopMetricExporter: PushMetricExporter = {
  export: (_m, done) => done({ code: ExportResultCode.SUCCESS }),
  forceFlush: async () => {},
  shutdown: async () => {},
};

function sdk() {
  const tracerProvider = new BasicTracerProvider({
    spanProcessors: [new BatchSpanProcessor(noopSpanExporter)],
  });
  const meterProvider = new MeterProvider({
    readers: [
      new PeriodicExportingMetricReader({ exporter: noopMetricExporter, exportIntervalMillis: 1000 }),
    ],
  });
  return {
    on() {
      trace.setGlobalTracerProvider(tracerProvider);
      metrics.setGlobalMeterProvider(meterProvider);
    },
    off() {
      trace.disable();
      metrics.disable();
    },
    shutdown: () => Promise.all([tracerProvider.shutdown(), meterProvider.shutdown()]),
  };
}

/**
 * Without network: ns per request through the telemetry layer around a next layer that
 * answers at once (start, 200, end), with nothing observing and with the SDK on.
 */
function inProcess(otel: ReturnType<typeof sdk>): {
  direct: number;
  noSdk: number;
  stats: number;
  sdk: number;
} {
  const clock = () => performance.now();
  const config = validateConfig({ services: { s: { discovery: { static: ['127.0.0.1:9'] } } } });
  const svc = new ServiceRuntime('s', config.services.s as never, {
    clock,
    logger: silentLogger,
    zone: undefined,
    env: {},
  });
  svc.start();
  const ep = [...svc.endpoints.endpoints()][0] as Endpoint;
  const ctrl = {} as DispatchController;
  const respond: EndpointDispatch = (_ep, _req, h) => {
    h.onRequestStart?.(ctrl, {});
    h.onResponseStart?.(ctrl, 200, {}, 'OK');
    h.onResponseEnd?.(ctrl, {});
  };
  // One attempt, through the attempt layer (which traces and measures it when observed).
  const viaAttempt = attemptLayer()(respond);
  const answer: Dispatch = (req, h) => viaAttempt(ep, req, h);
  const layered = telemetryLayer(clock)(answer);
  const handler: DispatchHandler = { onResponseStart() {}, onResponseEnd() {}, onResponseError() {} };
  const time = (fn: Dispatch, n: number) => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      const req = newMeshRequest(
        svc,
        { method: 'GET', path: '/x?y=1', origin: 'http://s', headers: {} },
        's',
        clock(),
      );
      fn(req, handler);
    }
    return Number(process.hrtime.bigint() - t0) / n;
  };
  const d: number[] = [];
  const l: number[] = [];
  const k: number[] = [];
  const w: number[] = [];
  for (let r = 0; r < 5; r++) {
    d.push(time(answer, 2_000_000));
    l.push(time(layered, 2_000_000));
    enableStats(true);
    w.push(time(layered, 1_000_000));
    enableStats(false);
    otel.on();
    k.push(time(layered, 100_000));
    otel.off();
  }
  svc.close(0);
  const mid = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  return { direct: mid(d), noSdk: mid(l), stats: mid(w), sdk: mid(k) };
}

const gc = (globalThis as { gc?: () => void }).gc;

export async function telemetryBench(opts: {
  quick: boolean;
}): Promise<{ results: RunResult[]; table: string }> {
  const seconds = opts.quick ? 0.5 : 1;
  const rounds = opts.quick ? 5 : 11;
  const concurrencies = opts.quick ? [16] : [1, 16];
  const up = await startUpstream();
  const services = { upstream: { discovery: { static: [up.address] } } };
  const bare = createMesh({ env: {}, telemetry: false, services });
  const bare2 = createMesh({ env: {}, telemetry: false, services });
  const mesh = createMesh({ env: {}, services });
  const otel = sdk();
  const onEnd = () => {};

  const call = (m: typeof mesh) => async () => {
    const r = await request('http://upstream/', { dispatcher: m.dispatcher });
    await r.body.dump();
  };
  const systems: Record<string, { run: () => Promise<void>; before?: () => void; after?: () => void }> = {
    'no telemetry code': { run: call(bare) },
    // A second mesh without telemetry code: its ratio to the first is the noise floor of this run.
    'A/A control': { run: call(bare2) },
    'no SDK': { run: call(mesh) },
    'SDK, no-op export': { run: call(mesh), before: otel.on, after: otel.off },
    'channel subscriber': {
      run: call(mesh),
      before: () => dc.subscribe(CHANNELS.requestEnd, onEnd),
      after: () => dc.unsubscribe(CHANNELS.requestEnd, onEnd),
    },
    'admin window': { run: call(mesh), before: () => enableStats(true), after: () => enableStats(false) },
  };

  const all: RunResult[] = [];
  const paired: string[] = [
    '| system | conc | rps ratio: median | min | max | CPU µs/request | CPU ratio: median |',
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  const cpuPerReq = (r: RunResult) => (r.cpuSeconds * 1e6) / Math.max(1, r.requests);
  const mid = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? Number.NaN;
  for (const c of concurrencies) {
    for (const s of Object.values(systems)) {
      s.before?.();
      await warmUp(s.run, c, opts.quick ? WARMUP.quick : WARMUP.full);
      s.after?.();
    }
    const byName = new Map<string, RunResult[]>();
    const names = Object.keys(systems);
    for (let round = 0; round < rounds; round++) {
      const order = [...names.slice(round % names.length), ...names.slice(0, round % names.length)];
      for (const name of order) {
        const s = systems[name]!;
        gc?.(); // with --expose-gc: no system pays for the previous one's garbage
        s.before?.();
        const r = await load(name, c, seconds, s.run);
        s.after?.();
        byName.set(name, [...(byName.get(name) ?? []), r]);
      }
    }
    for (const name of names) all.push(median(byName.get(name) ?? []));
    // Each round runs every system back to back, so a per-round ratio cancels much of the load
    // other processes put on the machine at that moment. CPU time per request (this process
    // only) is steadier still on a shared machine.
    const base = byName.get('no telemetry code') ?? [];
    paired.push(`| no telemetry code | ${c} | 1 | - | - | ${fmt(mid(base.map(cpuPerReq)), 1)} | 1 |`);
    for (const name of names.slice(1)) {
      const runs = byName.get(name) ?? [];
      const ratios = runs.map((r, i) => r.rps / (base[i]?.rps ?? Number.NaN)).sort((x, y) => x - y);
      const cpuRatios = runs.map((r, i) => cpuPerReq(r) / (base[i] ? cpuPerReq(base[i]) : Number.NaN));
      paired.push(
        `| ${name} | ${c} | ${fmt(mid(ratios), 3)} | ${fmt(ratios[0] ?? Number.NaN, 3)} | ${fmt(ratios[ratios.length - 1] ?? Number.NaN, 3)} | ${fmt(mid(runs.map(cpuPerReq)), 1)} | ${fmt(mid(cpuRatios), 3)} |`,
      );
    }
  }
  await bare.close();
  await bare2.close();
  await mesh.close();
  up.stop();

  const ns = inProcess(otel);
  await otel.shutdown();
  const base = [...all].reverse().find((r) => r.system === 'no telemetry code');
  const perReqNs = base ? 1e9 / base.rps : Number.NaN;
  const table =
    ratioTable(all, 'no telemetry code') +
    `\n\nPaired per round (ratio to "no telemetry code" in the same round, ${rounds} rounds):\n\n${paired.join('\n')}` +
    `\n\nWithout network (a next layer that answers at once), ns per request: direct ${fmt(ns.direct, 0)},` +
    ` through the telemetry layer with nothing observing ${fmt(ns.noSdk, 0)} (+${fmt(ns.noSdk - ns.direct, 0)} ns,` +
    ` ${fmt(((ns.noSdk - ns.direct) / perReqNs) * 100, 3)}% of one request at the "no telemetry code" rate of the` +
    ` last concurrency, ${fmt(perReqNs / 1000, 1)} µs/request), with the admin window ${fmt(ns.stats, 0)}` +
    ` (+${fmt(ns.stats - ns.direct, 0)} ns), with the SDK ${fmt(ns.sdk, 0)} (+${fmt((ns.sdk - ns.direct) / 1000, 2)} µs).`;
  return { results: all, table };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { table } = await telemetryBench(parseArgs(process.argv.slice(2)));
  console.log(table);
}
