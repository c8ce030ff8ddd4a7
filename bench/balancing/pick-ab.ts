/**
 * PEAK_EWMA pick cost at 10, 1,000 and 10,000 endpoints, this tree against another copy of the
 * sources (before a change), both in one process, in alternating blocks; the paired ratio per
 * pair of blocks, then medians.
 * Run: node bench/balancing/pick-ab.ts --before <dir with a src/ tree> [--seconds 3]
 *   (e.g. `git archive <commit> src | tar -x -C .scratch/before`; the directory must sit inside
 *   the repository so the copy finds node_modules.)
 * Each copy: an EndpointSet fed by discovery (as in fleet.ts), random loads, picks at a moving
 * clock (read every 1,024 picks), as the balance layer makes them.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};

const before = arg('--before');
if (!before) throw new Error('--before <dir>: the directory holding the other copy of src/ is required');
const seconds = Number(arg('--seconds') ?? 3);
const here = resolve(import.meta.dirname, '../..');
const SIZES = [10, 1_000, 10_000];
// Both copies in this one process, fed the same endpoints, measured in alternating blocks of
// 20,000 picks; each block's time is the process's CPU time (getrusage), so the time this
// process spends descheduled by other work on the machine is not counted (its cache pollution is).
const impls = { before: await load(resolve(before)), after: await load(here) };
type Picker = { ns: (picks: number) => { cpu: number; wall: number } };
const rows: string[] = [];
for (const n of SIZES) {
  const sets: Record<string, Picker> = {
    before: await impls.before(n),
    after: await impls.after(n),
  };
  for (const k of ['before', 'after']) (sets[k] as Picker).ns(200_000); // warm-up
  const cpu: Record<string, number[]> = { before: [], after: [] };
  const wall: Record<string, number[]> = { before: [], after: [] };
  const ratios: number[] = [];
  const t0 = performance.now();
  let flip = false;
  while (performance.now() - t0 < seconds * 1000) {
    const order = flip ? ['after', 'before'] : ['before', 'after'];
    flip = !flip;
    const got: Record<string, number> = {};
    for (const k of order) {
      const r = (sets[k] as Picker).ns(20_000);
      cpu[k]?.push(r.cpu);
      wall[k]?.push(r.wall);
      got[k] = r.cpu;
    }
    ratios.push((got.after as number) / (got.before as number));
  }
  const m = (xs: number[]) => median(xs).toFixed(0);
  rows.push(
    `${String(n).padStart(9)}  ${m(cpu.before as number[]).padStart(10)}  ${m(cpu.after as number[]).padStart(9)}  ${median(ratios).toFixed(2).padStart(12)}  ${m(wall.before as number[]).padStart(11)}  ${m(wall.after as number[]).padStart(10)}  ${String(ratios.length).padStart(6)}`,
  );
}
console.log(`PEAK_EWMA pick, ns per pick, both copies in one process, alternating blocks of 20,000 picks`);
console.log(
  `(Node ${process.versions.node}; load average ${(await import('node:os'))
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')})`,
);
console.log('endpoints  before CPU  after CPU  after/before  before wall  after wall  blocks');
for (const r of rows) console.log(r);
process.exit(0);

function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
}

/** A loader of one copy of the sources: builds an EndpointSet of n endpoints and times picks. */
async function load(root: string): Promise<(n: number) => Promise<Picker>> {
  const src = (p: string) => pathToFileURL(resolve(root, 'src', p)).href;
  const { EndpointSet } = await import(src('balancer/endpoint-set.ts'));
  const { createBalancer } = await import(src('balancer/index.ts'));
  const { loadBalancerSchema } = await import(src('balancer/schema.ts'));
  const { silentLogger } = await import(src('telemetry/logger.ts'));
  return async (n: number) => {
    const set = new EndpointSet({
      service: 'svc',
      provider: 'bench',
      balancer: createBalancer(loadBalancerSchema.parse({ simple: 'PEAK_EWMA' })),
      clock: () => performance.now(),
      logger: silentLogger,
      drainTimeoutMs: 0,
    });
    const changes = [];
    for (let i = 0; i < n; i++) {
      const host = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      changes.push({
        type: 'insert',
        endpoint: {
          address: `${host}:8080`,
          host,
          port: 8080,
          labels: { app: 'svc' },
          weight: 1,
          zone: undefined,
        },
      });
    }
    set.apply(changes);
    const group = set.all;
    for (const ep of group.endpoints) {
      ep.ewma.observe(5 + Math.random() * 50, performance.now());
      ep.inflight = Math.floor(Math.random() * 4);
    }
    let sink = 0;
    return {
      ns(picks: number) {
        const c0 = process.cpuUsage();
        const w0 = performance.now();
        let now = w0;
        for (let i = 0; i < picks; i++) {
          if ((i & 1023) === 0) now = performance.now();
          if (group.balancer.pick(group.endpoints, { now })) sink++;
        }
        const wall = performance.now() - w0;
        const c = process.cpuUsage(c0);
        if (sink === 0) throw new Error('no pick');
        return { cpu: ((c.user + c.system) * 1e3) / picks, wall: (wall * 1e6) / picks };
      },
    };
  };
}
