// bench/peers: meshwork against what people use today, in one run, on the same upstreams.
// Three upstream replicas, each its own process. Groups: "healthy" (three fast replicas) and
// "slow replica" (two fast, one answering after SLOW_MS). Systems, all in this process except
// the HAProxy sidecar:
//   undici Pool          one Pool per replica, the client picks them round-robin (the physical limit)
//   undici BalancedPool  undici's own balancer over the replicas
//   undici fetch         undici's fetch over the same round-robin Pools
//   mesh.dispatcher      undici.request through the mesh (static discovery, peak-EWMA P2C)
//   mesh.fetch           the mesh's fetch
//   cockatiel + undici   retry (1 retry) + consecutive-failure circuit breaker around undici.request
//   opossum + p-retry    p-retry (1 retry) around an opossum breaker around undici.request
//   haproxy sidecar      client Pool -> haproxy on 127.0.0.1 (roundrobin, keep-alive) -> replicas
// Reports throughput, p50/p99/p99.9 and requests per CPU-second (client process CPU, plus
// haproxy's own CPU for the sidecar), medians over interleaved rounds, ratios to undici Pool.
import { ConsecutiveBreaker, circuitBreaker, ExponentialBackoff, handleAll, retry, wrap } from 'cockatiel';
import CircuitBreaker from 'opossum';
import pRetry from 'p-retry';
import { BalancedPool, Pool, request, fetch as undiciFetch } from 'undici';
import { createMesh } from '../../src/index.ts';
import { ensureHaproxy, type Haproxy, startHaproxy } from '../support/haproxy.ts';
import {
  fmt,
  interleave,
  parseArgs,
  type RunResult,
  ratioTable,
  type ScenarioOptions,
  type ScenarioOutput,
  type System,
  startUpstreams,
  type Target,
  targetTable,
} from '../support/harness.ts';
import { groupResults, scenarioSvg } from '../support/svg.ts';

const BASELINE = 'undici Pool';
/** Delay of the slow replica in the "slow replica" group. */
const SLOW_MS = 10;
/** Client-side idle keep-alive for every pool, so no system reconnects between rounds. */
const KEEP_ALIVE_MS = 60_000;

interface Setup {
  systems: System[];
  notes: string[];
  close(): Promise<void>;
}

/** Throws on a 5xx so retry/breaker libraries see a failure, as users wire them. */
async function checked(url: string, dispatcher: Pool | BalancedPool): Promise<void> {
  const r = await request(url, { dispatcher });
  await r.body.dump();
  if (r.statusCode >= 500) throw new Error(`upstream answered ${r.statusCode}`);
}

async function setup(addresses: string[], withHaproxy: boolean): Promise<Setup> {
  const notes: string[] = [];
  const urls = addresses.map((a) => `http://${a}/`);
  const pools = addresses.map(
    (a) => new Pool(`http://${a}`, { connections: 1024, keepAliveTimeout: KEEP_ALIVE_MS }),
  );
  let next = 0;
  /** Round-robin over the per-replica pools. */
  const pick = (): number => {
    next = (next + 1) % pools.length;
    return next;
  };
  const balanced = new BalancedPool(
    addresses.map((a) => `http://${a}`),
    { connections: 1024, keepAliveTimeout: KEEP_ALIVE_MS } as ConstructorParameters<typeof BalancedPool>[1],
  );
  const mesh = createMesh({
    env: {},
    services: {
      upstream: {
        discovery: { static: addresses },
        trafficPolicy: { connectionPool: { http: { idleTimeout: KEEP_ALIVE_MS } } },
      },
    },
  });

  // What users write today with cockatiel: retry on any failure (2 attempts, exponential
  // backoff) outside a circuit breaker that opens after 5 consecutive failures.
  const cockatielPolicy = wrap(
    retry(handleAll, {
      maxAttempts: 1,
      backoff: new ExponentialBackoff({ initialDelay: 10, maxDelay: 200 }),
    }),
    circuitBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) }),
  );

  // And with opossum + p-retry: an opossum breaker (its defaults: 10 s timeout, opens at 50%
  // errors over a rolling 10 s window) fired inside p-retry (1 retry).
  const breaker = new CircuitBreaker(
    async () => {
      const i = pick();
      await checked(urls[i] as string, pools[i] as Pool);
    },
    { timeout: 10_000, errorThresholdPercentage: 50, resetTimeout: 10_000 },
  );

  let haproxy: Haproxy | undefined;
  let haproxyPool: Pool | undefined;
  if (withHaproxy) {
    try {
      haproxy = await startHaproxy(addresses);
      haproxyPool = new Pool(`http://${haproxy.address}`, {
        connections: 1024,
        keepAliveTimeout: KEEP_ALIVE_MS,
      });
    } catch (err) {
      notes.push(`haproxy sidecar skipped: ${(err as Error).message}`);
    }
  }

  const systems: System[] = [
    {
      name: BASELINE,
      call: async () => {
        const i = pick();
        const r = await request(urls[i] as string, { dispatcher: pools[i] as Pool });
        await r.body.dump();
      },
    },
    {
      name: 'undici BalancedPool',
      call: async () => {
        const r = await request(urls[0] as string, { dispatcher: balanced });
        await r.body.dump();
      },
    },
    {
      name: 'undici fetch',
      call: async () => {
        const i = pick();
        const r = await undiciFetch(urls[i] as string, { dispatcher: pools[i] as Pool });
        await r.arrayBuffer();
      },
    },
    {
      name: 'mesh.dispatcher',
      call: async () => {
        const r = await request('http://upstream/', { dispatcher: mesh.dispatcher });
        await r.body.dump();
      },
    },
    {
      name: 'mesh.fetch',
      call: async () => {
        const r = await mesh.fetch('http://upstream/');
        await r.arrayBuffer();
      },
    },
    {
      name: 'cockatiel + undici',
      call: () =>
        cockatielPolicy.execute(() => {
          const i = pick();
          return checked(urls[i] as string, pools[i] as Pool);
        }),
    },
    {
      name: 'opossum + p-retry',
      call: () => pRetry(() => breaker.fire(), { retries: 1, minTimeout: 10, maxTimeout: 200 }),
    },
  ];
  // cockatiel's maxAttempts counts retries (1 retry = 2 attempts), p-retry's retries too.
  if (haproxy && haproxyPool) {
    const hp = haproxy;
    const hpPool = haproxyPool;
    const url = `http://${hp.address}/`;
    systems.push({
      name: 'haproxy sidecar',
      call: async () => {
        const r = await request(url, { dispatcher: hpPool });
        await r.body.dump();
      },
      sidecarCpu: () => hp.cpuSeconds(),
    });
  }

  return {
    systems,
    notes,
    close: async () => {
      breaker.shutdown();
      await mesh.close();
      await Promise.all([...pools.map((p) => p.close()), balanced.close(), haproxyPool?.close()]);
      await haproxy?.stop();
    },
  };
}

function verdicts(results: RunResult[]): Target[] {
  const out: Target[] = [];
  const keys = [...new Set(results.map((r) => `${r.group}\u0000${r.concurrency}`))];
  for (const key of keys) {
    const [group = '', c] = key.split('\u0000');
    const concurrency = Number(c);
    const at = (s: string) =>
      results.find((r) => r.group === group && r.concurrency === concurrency && r.system === s);
    const mesh = at('mesh.dispatcher');
    const raw = at(BASELINE);
    const hp = at('haproxy sidecar');
    if (!mesh) continue;
    const where = `${group}, concurrency ${concurrency}`;
    if (raw) {
      const x = mesh.rps / raw.rps;
      out.push({
        where,
        check: 'mesh.dispatcher ≥ 0.9× undici Pool req/s',
        value: `${fmt(x)}×`,
        pass: x >= 0.9,
      });
    }
    if (hp) {
      out.push({
        where,
        check: 'mesh.dispatcher p50 < haproxy p50',
        value: `${fmt(mesh.p50Ms, 3)} vs ${fmt(hp.p50Ms, 3)} ms`,
        pass: mesh.p50Ms < hp.p50Ms,
      });
      out.push({
        where,
        check: 'mesh.dispatcher p99 < haproxy p99',
        value: `${fmt(mesh.p99Ms, 3)} vs ${fmt(hp.p99Ms, 3)} ms`,
        pass: mesh.p99Ms < hp.p99Ms,
      });
      out.push({
        where,
        check: 'mesh.dispatcher req/CPU-s > haproxy (client + haproxy CPU)',
        value: `${fmt(mesh.reqPerCpuSecond, 0)} vs ${fmt(hp.reqPerCpuSecond, 0)}`,
        pass: mesh.reqPerCpuSecond > hp.reqPerCpuSecond,
      });
    }
  }
  return out;
}

export async function peers(opts: ScenarioOptions): Promise<ScenarioOutput> {
  const seconds = opts.quick ? 0.8 : 2;
  const rounds = opts.quick ? 4 : 5;
  const notes: string[] = [];
  const hp = ensureHaproxy();
  if (hp.ok)
    notes.push(
      `sidecar: ${hp.version}, nbthread 1, balance roundrobin, option http-keep-alive, http-reuse always`,
    );
  else notes.push(`haproxy sidecar skipped: ${hp.note}`);

  const [a, b, c, slow] = await startUpstreams([0, 0, 0, SLOW_MS]);
  const ups = [a, b, c, slow].filter((u) => u !== undefined);
  const sets = [
    {
      group: 'healthy',
      addresses: [a, b, c].map((u) => u?.address as string),
      concurrencies: opts.quick ? [32] : [1, 32, 128],
    },
    {
      group: `slow replica (1 of 3 answers after ${SLOW_MS} ms)`,
      addresses: [a, b, slow].map((u) => u?.address as string),
      concurrencies: [32],
    },
  ];
  const results: RunResult[] = [];
  try {
    for (const set of sets) {
      const s = await setup(set.addresses, hp.ok);
      notes.push(...s.notes.map((n) => `${set.group}: ${n}`));
      try {
        for (const conc of set.concurrencies) {
          console.log(
            `   peers: ${set.group}, concurrency ${conc}: ${s.systems.length} systems × ${rounds} rounds × ${seconds}s`,
          );
          results.push(...(await interleave(s.systems, conc, { rounds, seconds, group: set.group })));
        }
      } finally {
        await s.close();
      }
    }
  } finally {
    for (const u of ups) u.stop();
  }

  const checks = verdicts(results);
  const groups = groupResults(results, BASELINE);
  let table = '';
  for (const g of groups) {
    table += `### ${g.title}\n\n${ratioTable(g.results, BASELINE)}\n\n`;
  }
  table += `### Targets (issue 9)\n\n${targetTable(checks)}`;
  notes.push(
    `medians over ${rounds} interleaved rounds of ${seconds}s per system; undici Pool = one Pool per replica, picked round-robin by the client`,
    'req/CPU-s = requests / (bench process CPU + haproxy CPU for the sidecar); upstream CPU not counted',
  );
  const svg = scenarioSvg(
    'peers: meshwork vs undici, cockatiel, opossum and an HAProxy sidecar',
    groups,
    `3 upstream processes on 127.0.0.1; medians of ${rounds} interleaved rounds × ${seconds}s; ratios against undici Pool`,
  );
  return { results, table, svg, notes, targets: checks };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { table, notes } = await peers(parseArgs(process.argv.slice(2)));
  console.log(table);
  for (const n of notes ?? []) console.log(`- ${n}`);
}
