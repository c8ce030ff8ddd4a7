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
// Each group runs closed loops at a fixed concurrency (throughput) and, for latency at equal
// offered load, an open loop at a fixed rate (RATE req/s).
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
  type Probe,
  parseArgs,
  type RunResult,
  ratioTable,
  type ScenarioOptions,
  type ScenarioOutput,
  type System,
  startUpstreams,
  type Target,
  targetTable,
  upstreamCount,
} from '../support/harness.ts';
import { type ChartGroup, groupResults, scenarioSvg } from '../support/svg.ts';

const BASELINE = 'undici Pool';
/** Delay of the slow replica in the "slow replica" group. */
const SLOW_MS = 10;
/** Offered load of the open-loop cells (req/s), well under every system's closed-loop throughput here. */
const RATE = 2000;
/** Bound on requests in flight in the open-loop cells (past it a request is dropped, counted as an error). */
const MAX_INFLIGHT = 512;
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

/** Share of the requests of each run that each replica served (from the upstreams' own counters). */
function replicaShares(addresses: string[]): Probe<number[]> {
  const counts = () => Promise.all(addresses.map((a) => upstreamCount(a)));
  return {
    start: counts,
    end: async (before) => {
      const after = await counts();
      const diff = after.map((n, i) => n - (before[i] ?? 0));
      const total = diff.reduce((a, b) => a + b, 0) || 1;
      return Object.fromEntries(diff.map((d, i) => [`replica${i + 1}Share`, d / total]));
    },
  };
}

function sharesTable(results: RunResult[], labels: string[]): string {
  const rows = [
    `| system | ${labels.join(' | ')} |`,
    `|---|${labels.map(() => '---:').join('|')}|`,
    ...results.map(
      (r) =>
        `| ${r.system} | ${labels.map((_, i) => `${fmt(100 * (r.extra?.[`replica${i + 1}Share`] ?? Number.NaN), 1)}%`).join(' | ')} |`,
    ),
  ];
  return rows.join('\n');
}

function verdicts(groups: ChartGroup[]): Target[] {
  const out: Target[] = [];
  for (const g of groups) {
    const at = (name: string) => g.results.find((r) => r.system === name);
    const mesh = at('mesh.dispatcher');
    const raw = at(BASELINE);
    const hp = at('haproxy sidecar');
    if (!mesh) continue;
    const where = g.title;
    // At a fixed rate every system serves the offered rate: throughput is not a test there.
    if (raw && mesh.rate === undefined) {
      const x = mesh.rps / raw.rps;
      out.push({
        where,
        check: 'mesh.dispatcher ≥ 0.9× undici Pool req/s',
        value: `${fmt(x)}×`,
        pass: x >= 0.9,
      });
    }
    if (hp) {
      // In a closed loop a system that serves far more requests also loads the shared cores far
      // more, so its latency is not measured under the same load: said next to the numbers
      // (the verdict stands; the fixed-rate cell is the like-for-like latency comparison).
      const load = mesh.rps / hp.rps;
      const unlike =
        mesh.rate === undefined && load > 1.5
          ? ` (at ${fmt(load)}× HAProxy's req/s in a closed loop; same load: the fixed-rate cell)`
          : '';
      out.push({
        where,
        check: 'mesh.dispatcher p50 < haproxy p50',
        value: `${fmt(mesh.p50Ms, 3)} vs ${fmt(hp.p50Ms, 3)} ms${unlike}`,
        pass: mesh.p50Ms < hp.p50Ms,
      });
      out.push({
        where,
        check: 'mesh.dispatcher p99 < haproxy p99',
        value: `${fmt(mesh.p99Ms, 3)} vs ${fmt(hp.p99Ms, 3)} ms${unlike}`,
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
  const seconds = opts.quick ? 0.6 : 2;
  const rounds = opts.quick ? 2 : 5;
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
      cells: opts.quick
        ? [{ concurrency: 32 }, { concurrency: MAX_INFLIGHT, rate: RATE }]
        : [
            { concurrency: 1 },
            { concurrency: 32 },
            { concurrency: 128 },
            { concurrency: MAX_INFLIGHT, rate: RATE },
          ],
    },
    {
      group: `slow replica (1 of 3 answers after ${SLOW_MS} ms)`,
      addresses: [a, b, slow].map((u) => u?.address as string),
      cells: opts.quick
        ? [{ concurrency: 32 }]
        : [{ concurrency: 32 }, { concurrency: MAX_INFLIGHT, rate: RATE }],
    },
  ];
  const results: RunResult[] = [];
  try {
    for (const set of sets) {
      const s = await setup(set.addresses, hp.ok);
      notes.push(...s.notes.map((n) => `${set.group}: ${n}`));
      try {
        for (const cell of set.cells) {
          const load =
            cell.rate === undefined ? `concurrency ${cell.concurrency}` : `fixed rate ${cell.rate} req/s`;
          console.log(
            `   peers: ${set.group}, ${load}: ${s.systems.length} systems × ${rounds} rounds × ${seconds}s`,
          );
          const probe = replicaShares(set.addresses);
          results.push(
            ...(await interleave(s.systems, cell.concurrency, {
              rounds,
              seconds,
              quick: opts.quick,
              group: set.group,
              probe,
              ...(cell.rate === undefined ? {} : { rate: cell.rate }),
            })),
          );
        }
      } finally {
        await s.close();
      }
    }
  } finally {
    for (const u of ups) u.stop();
  }

  const groups = groupResults(results, BASELINE);
  const checks = verdicts(groups);
  let table = '';
  for (const g of groups) {
    const slow = g.title.startsWith('slow');
    const labels = ['replica 1', 'replica 2', slow ? `replica 3 (slow)` : 'replica 3'];
    table += `### ${g.title}\n\n${ratioTable(g.results, BASELINE)}\n\n`;
    table += `Where the requests went (share per replica, from the upstreams' counters, median of rounds):\n\n${sharesTable(g.results, labels)}\n\n`;
  }
  table += `### Targets\n\n${targetTable(checks)}`;
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
