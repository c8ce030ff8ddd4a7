/**
 * Live configuration (docs/live-config.md):
 *
 *   1. mesh.update under load: closed loops at concurrency 64 against two upstream processes (a
 *      split over subsets v1/v2, in a config of 100 services). Every 2 s, half-way through a second,
 *      an update: "route change" edits a request header of the route (traffic stays 50/50: what the
 *      update itself costs), "canary flip" moves the split 90/10 <-> 10/90 (80% of the load changes
 *      upstream process). Latency is kept per second of completion; each update's second is
 *      compared with the second before (p99 ratio). Targets: no failed request; p99 of the update's
 *      second <= 1.2x the second before (median over the updates; every pair is listed).
 *   2. Time to apply an update for 10, 100 and 1,000 services, each with subsets and two routes:
 *      every service changed, one service changed, nothing changed (validation and hash only).
 *   3. Propagation from one etcd write to 10 mesh processes (`liveConfig.etcd`, each its own
 *      process and etcd client): per replica, and until the last of the 10 has applied it.
 *      Target: the last replica within 1 s (p99). etcd: MESHWORK_TEST_ETCD (or the .ci env file),
 *      else a private etcd started here from Debian's etcd-server, stopped at the end.
 *
 * `node bench/live/run.ts [--quick]` prints the tables; `npm run bench -- --only live` records them.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import hdr from 'hdr-histogram-js';
import { request } from 'undici';
import { createMesh } from '../../src/index.ts';
import { testServices } from '../../test/support/services.ts';
import {
  fmt,
  parseArgs,
  type ScenarioOptions,
  type ScenarioOutput,
  startUpstreams,
  type Target,
  trackChild,
  type Upstream,
} from '../support/harness.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pct(samples: number[], p: number): number {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? Number.NaN;
}

// ---- 1. mesh.update under load -------------------------------------------------------------

function canary(ups: Upstream[], w: [number, number], services: number, tag = 0): Record<string, unknown> {
  const svc: Record<string, unknown> = {
    reviews: {
      discovery: {
        static: [
          { address: ups[0]?.address, labels: { version: 'v1' } },
          { address: ups[1]?.address, labels: { version: 'v2' } },
        ],
      },
      trafficPolicy: { connectionPool: { http: { idleTimeout: '60s' } } },
      subsets: [
        { name: 'v1', labels: { version: 'v1' } },
        { name: 'v2', labels: { version: 'v2' } },
      ],
      http: [
        {
          headers: { request: { set: { 'x-config-tag': String(tag) } } },
          route: [
            { destination: { subset: 'v1' }, weight: w[0] },
            { destination: { subset: 'v2' }, weight: w[1] },
          ],
        },
      ],
    },
  };
  for (let i = 1; i < services; i++)
    svc[`svc-${i}`] = {
      discovery: { static: [ups[0]?.address] },
      http: [{ match: [{ uri: { prefix: '/a' } }], route: [{ destination: {} }] }],
    };
  return { services: svc };
}

interface UpdatePair {
  atSecond: number;
  p99BeforeMs: number;
  p99DuringMs: number;
  ratio: number;
  applyMs: number;
}

/** What each update changes: the route only (traffic stays 50/50), or the split (90/10 <-> 10/90). */
type UpdateKind = 'route change' | 'canary flip';

async function updateUnderLoad(kind: UpdateKind, quick: boolean) {
  const ups = await startUpstreams([0, 0]);
  const weights = (n: number): [number, number] =>
    kind === 'route change' ? [50, 50] : n % 2 === 1 ? [10, 90] : [90, 10];
  const mesh = createMesh({ env: {}, ...canary(ups, weights(0), 100) });
  const concurrency = 64;
  const seconds = quick ? 9 : 25;
  const warmupSeconds = quick ? 1 : 3;
  const windows: ReturnType<typeof hdr.build>[] = [];
  let errors = 0;
  let requests = 0;
  const send = async () => {
    const res = await request('http://reviews/', { dispatcher: mesh.dispatcher });
    await res.body.dump();
    if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
  };
  try {
    // Warm-up (not recorded): V8 tiers the paths up, both pools fill (a flip there and back).
    const warmEnd = performance.now() + warmupSeconds * 1000;
    const warm = Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < warmEnd) await send().catch(() => {});
      }),
    );
    await sleep((warmupSeconds * 1000) / 3);
    await mesh.update(canary(ups, weights(1), 100, -1));
    await sleep((warmupSeconds * 1000) / 3);
    await mesh.update(canary(ups, weights(0), 100, -2));
    await warm;
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    const updates: { atSecond: number; applyMs: number }[] = [];
    const updater = (async () => {
      // Every 2 s, half-way through a second: seconds 2, 4, 6... carry an update; 1, 3, 5... are the "before".
      for (let s = 2, n = 1; s < seconds; s += 2, n++) {
        await sleep(Math.max(0, t0 + (s + 0.5) * 1000 - performance.now()));
        const a = performance.now();
        await mesh.update(canary(ups, weights(n), 100, n));
        updates.push({ atSecond: Math.floor((a - t0) / 1000), applyMs: performance.now() - a });
      }
    })();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < end) {
          const start = performance.now();
          try {
            await send();
            const done = performance.now();
            const w = Math.floor((done - t0) / 1000);
            windows[w] ??= hdr.build({
              lowestDiscernibleValue: 1,
              highestTrackableValue: 120_000_000,
              numberOfSignificantValueDigits: 3,
            });
            windows[w].recordValue(Math.max(1, Math.round((done - start) * 1000)));
            requests++;
          } catch {
            errors++;
          }
        }
      }),
    );
    await updater;
    const p99 = (w: number) => (windows[w] ? windows[w].getValueAtPercentile(99) / 1000 : Number.NaN);
    const pairs: UpdatePair[] = updates.map((u) => ({
      atSecond: u.atSecond,
      p99BeforeMs: p99(u.atSecond - 1),
      p99DuringMs: p99(u.atSecond),
      ratio: p99(u.atSecond) / p99(u.atSecond - 1),
      applyMs: u.applyMs,
    }));
    for (const h of windows) h?.destroy();
    return { kind, concurrency, seconds, requests, errors, pairs };
  } finally {
    await mesh.close();
    for (const u of ups) u.stop();
  }
}

// ---- 2. time to apply ----------------------------------------------------------------------

function fleet(n: number, address: string, variant: number, changedOnly?: number): Record<string, unknown> {
  const services: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    const v = changedOnly === undefined || changedOnly === i ? variant : 0;
    const w = 10 + (v % 80);
    services[`svc-${i}`] = {
      discovery: {
        static: [
          { address, labels: { version: 'v1' } },
          { address: address.replace('127.0.0.1', '127.0.0.2'), labels: { version: 'v2' } },
        ],
      },
      subsets: [
        { name: 'v1', labels: { version: 'v1' } },
        { name: 'v2', labels: { version: 'v2' } },
      ],
      retries: { attempts: 2, perTryTimeout: '500ms' },
      http: [
        {
          name: 'canary-header',
          match: [{ headers: { 'x-canary': { exact: 'true' } } }],
          route: [{ destination: { subset: 'v2' } }],
          timeout: '2s',
        },
        {
          name: 'split',
          route: [
            { destination: { subset: 'v1' }, weight: 100 - w },
            { destination: { subset: 'v2' }, weight: w },
          ],
        },
      ],
    };
  }
  return { services };
}

interface ApplyRow {
  services: number;
  createMeshMs: number;
  allChangedMs: { median: number; max: number };
  oneChangedMs: { median: number; max: number };
  unchangedMs: { median: number; max: number };
}

async function applyTimes(quick: boolean): Promise<ApplyRow[]> {
  const rows: ApplyRow[] = [];
  const reps = quick ? 3 : 7;
  for (const n of [10, 100, 1000]) {
    const c0 = performance.now();
    const mesh = createMesh({ env: {}, ...fleet(n, '127.0.0.1:9', 0) });
    const createMeshMs = performance.now() - c0;
    const time = async (cfg: () => Record<string, unknown>) => {
      const xs: number[] = [];
      for (let r = 0; r < reps; r++) {
        const c = cfg();
        const a = performance.now();
        await mesh.update(c);
        xs.push(performance.now() - a);
        await sleep(20);
      }
      return { median: pct(xs, 50), max: Math.max(...xs) };
    };
    let variant = 0;
    try {
      const allChangedMs = await time(() => fleet(n, '127.0.0.1:9', ++variant));
      const oneChangedMs = await time(() => fleet(n, '127.0.0.1:9', ++variant, 0));
      const last = fleet(n, '127.0.0.1:9', variant, 0);
      const unchangedMs = await time(() => last);
      rows.push({ services: n, createMeshMs, allChangedMs, oneChangedMs, unchangedMs });
    } finally {
      await mesh.close();
    }
  }
  return rows;
}

// ---- 3. etcd write -> 10 mesh processes ----------------------------------------------------

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function etcdHealthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
    return res.ok;
  } catch {
    return false;
  }
}

/** A private etcd (Debian's etcd-server) in a temp dir; stopped and removed by `stop`. */
async function privateEtcd(): Promise<{ url: string; stop: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'meshwork-bench-etcd-'));
  const [client, peer] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const child = spawn(
    'etcd',
    [
      '--name',
      'bench',
      '--data-dir',
      join(dir, 'data'),
      '--listen-client-urls',
      url,
      '--advertise-client-urls',
      url,
      '--listen-peer-urls',
      peerUrl,
      '--initial-advertise-peer-urls',
      peerUrl,
      '--initial-cluster',
      `bench=${peerUrl}`,
      '--log-level',
      'warn',
      '--logger',
      'zap',
    ],
    { stdio: 'ignore' },
  );
  trackChild(child);
  const stop = () => {
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (await etcdHealthy(url)) return { url, stop };
    if (Date.now() > deadline || child.exitCode !== null) {
      stop();
      throw new Error('the private etcd did not start');
    }
    await sleep(100);
  }
}

function roundConfig(round: number): string {
  return JSON.stringify({
    services: {
      api: {
        discovery: { static: ['127.0.0.1:9'] },
        http: [{ headers: { request: { set: { 'x-round': String(round) } } }, route: [{ destination: {} }] }],
      },
    },
  });
}

async function etcdPropagation(quick: boolean) {
  let given = testServices().etcd;
  if (given && !(await etcdHealthy(given))) given = undefined;
  const own = given ? undefined : await privateEtcd();
  const url = given ?? (own as { url: string }).url;
  const client = new Etcd3({ hosts: [url] });
  const key = `/meshwork-bench/live-${process.pid}-${Date.now()}`;
  const replicas = 10;
  const rounds = quick ? 10 : 40;
  const children: ChildProcess[] = [];
  const seen = new Map<number, Map<ChildProcess, number>>();
  try {
    await client.put(key).value(roundConfig(0));
    const script = fileURLToPath(new URL('./replica.ts', import.meta.url));
    for (let i = 0; i < replicas; i++) {
      const child = fork(script, [url, key], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
      trackChild(child);
      children.push(child);
      child.on('message', (m: { round?: number; at?: number }) => {
        if (m.round === undefined || m.at === undefined) return;
        const r = seen.get(m.round) ?? new Map<ChildProcess, number>();
        seen.set(m.round, r);
        r.set(child, m.at);
      });
    }
    const waitRound = async (r: number, what: string, ms = 20_000) => {
      const deadline = Date.now() + ms;
      while ((seen.get(r)?.size ?? 0) < replicas) {
        if (Date.now() > deadline) throw new Error(`${what}: ${seen.get(r)?.size ?? 0}/${replicas} replicas`);
        await sleep(5);
      }
    };
    // Ten Node processes loading TypeScript sources and etcd3 (gRPC) on a shared 2-core machine: slow to start.
    await waitRound(0, 'the replicas to start', 180_000);
    const perReplica: number[] = [];
    const lastReplica: number[] = [];
    for (let r = 1; r <= rounds; r++) {
      await sleep(100 + Math.random() * 200);
      const t0 = performance.timeOrigin + performance.now();
      await client.put(key).value(roundConfig(r));
      await waitRound(r, `round ${r}`);
      const ats = [...(seen.get(r)?.values() ?? [])].map((at) => at - t0);
      perReplica.push(...ats);
      lastReplica.push(Math.max(...ats));
    }
    return {
      replicas,
      rounds,
      etcd: given ? 'MESHWORK_TEST_ETCD' : 'private etcd started by the bench',
      perReplicaMs: { p50: pct(perReplica, 50), p99: pct(perReplica, 99), max: Math.max(...perReplica) },
      allReplicasMs: { p50: pct(lastReplica, 50), p99: pct(lastReplica, 99), max: Math.max(...lastReplica) },
    };
  } finally {
    for (const c of children) c.send({ stop: true });
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            const t = setTimeout(() => {
              c.kill('SIGKILL');
              resolve();
            }, 5000);
            c.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
          }),
      ),
    );
    await client
      .delete()
      .key(key)
      .catch(() => {});
    client.close();
    own?.stop();
  }
}

// ---- the scenario --------------------------------------------------------------------------

export async function live(opts: ScenarioOptions): Promise<ScenarioOutput> {
  const underLoad = [
    await updateUnderLoad('route change', opts.quick),
    await updateUnderLoad('canary flip', opts.quick),
  ];
  const apply = await applyTimes(opts.quick);
  const propagation = await etcdPropagation(opts.quick);
  const targets: Target[] = [];
  for (const u of underLoad) {
    const ratios = u.pairs.map((p) => p.ratio);
    targets.push(
      {
        where: `mesh.update under load (${u.kind}), closed loop c=${u.concurrency}`,
        check: 'no failed request',
        value: `${u.errors} failed of ${u.requests}`,
        pass: u.errors === 0,
      },
      {
        where: `mesh.update under load (${u.kind}), closed loop c=${u.concurrency}`,
        check: 'p99 of the second with the update <= 1.2x the second before (median over updates)',
        value: `${fmt(pct(ratios, 50))}x (range ${fmt(Math.min(...ratios))}-${fmt(Math.max(...ratios))}x, ${ratios.length} updates)`,
        pass: pct(ratios, 50) <= 1.2,
      },
    );
  }
  targets.push({
    where: `etcd write -> ${propagation.replicas} mesh processes`,
    check: 'the last replica applies it within 1 s (p99)',
    value: `${fmt(propagation.allReplicasMs.p99, 1)} ms`,
    pass: propagation.allReplicasMs.p99 <= 1000,
  });
  let table = '';
  for (const u of underLoad) {
    table += `### mesh.update under load: ${u.kind} (${u.kind === 'route change' ? 'a header edit, traffic stays 50/50' : '90/10 <-> 10/90 between two upstream processes'}; 100 services in the config)\n\n`;
    table +=
      '| update in second | p99 second before (ms) | p99 second with the update (ms) | ratio | mesh.update took (ms) |\n';
    table += '| ---: | ---: | ---: | ---: | ---: |\n';
    for (const p of u.pairs)
      table += `| ${p.atSecond} | ${fmt(p.p99BeforeMs)} | ${fmt(p.p99DuringMs)} | ${fmt(p.ratio)}x | ${fmt(p.applyMs)} |\n`;
    table += `\n${u.requests} requests, ${u.errors} failed, concurrency ${u.concurrency}, ${u.seconds} s measured; median ratio ${fmt(
      pct(
        u.pairs.map((p) => p.ratio),
        50,
      ),
    )}x.\n\n`;
  }
  table += '\n### Time to apply an update (services with subsets and two routes each)\n\n';
  table +=
    '| services | createMesh (ms) | every service changed: median / max (ms) | one service changed (ms) | nothing changed (ms) |\n';
  table += '| ---: | ---: | ---: | ---: | ---: |\n';
  for (const r of apply)
    table += `| ${r.services} | ${fmt(r.createMeshMs)} | ${fmt(r.allChangedMs.median)} / ${fmt(r.allChangedMs.max)} | ${fmt(r.oneChangedMs.median)} / ${fmt(r.oneChangedMs.max)} | ${fmt(r.unchangedMs.median)} / ${fmt(r.unchangedMs.max)} |\n`;
  table += `\n### One etcd write -> ${propagation.replicas} mesh processes (${propagation.rounds} writes; ${propagation.etcd})\n\n`;
  table += '| | p50 (ms) | p99 (ms) | max (ms) |\n| --- | ---: | ---: | ---: |\n';
  table += `| each replica | ${fmt(propagation.perReplicaMs.p50, 1)} | ${fmt(propagation.perReplicaMs.p99, 1)} | ${fmt(propagation.perReplicaMs.max, 1)} |\n`;
  table += `| all ${propagation.replicas} replicas | ${fmt(propagation.allReplicasMs.p50, 1)} | ${fmt(propagation.allReplicasMs.p99, 1)} | ${fmt(propagation.allReplicasMs.max, 1)} |\n`;
  return {
    results: { underLoad, apply, propagation },
    table,
    targets,
    notes: [
      'Under load: latency recorded per second of completion; an update lands half-way through every other second, so each "second with the update" is compared with the second just before it, which had none.',
      'Propagation: wall-clock time (performance.timeOrigin + now, same machine) from just before the etcd put to the replica publishing `applied` on meshwork:config:update; each replica is its own Node process with its own etcd watch.',
    ],
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = parseArgs(process.argv.slice(2));
  const out = await live({ quick: args.quick });
  console.log(out.table);
  for (const t of out.targets ?? [])
    console.log(`- ${t.pass ? 'PASS' : 'FAIL'} ${t.where}: ${t.check}: ${t.value}`);
}
