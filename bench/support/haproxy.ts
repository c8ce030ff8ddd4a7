// HAProxy as a sidecar hop for the bench: client -> haproxy on 127.0.0.1 -> upstreams.
// Installs Debian's `haproxy` with apt when it is missing (root only), generates the config in a
// temp dir, runs haproxy in the foreground as a child process and reports its CPU from /proc.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processCpuSeconds, trackChild } from './harness.ts';

export type HaproxyAvailability = { ok: true; version: string } | { ok: false; note: string };

let availability: HaproxyAvailability | undefined;

function version(): string | undefined {
  const r = spawnSync('haproxy', ['-v'], { encoding: 'utf8', timeout: 5000 });
  return r.status === 0 ? r.stdout.split('\n')[0]?.trim() : undefined;
}

/**
 * Finds haproxy, installing it with apt when it is missing and we are root (bounded: 3 min for
 * `apt-get update`, 7 min for the install, which waits up to 5 min for a dpkg lock held by
 * someone else). Set MESHWORK_BENCH_NO_INSTALL=1 to never install. Never throws.
 */
export function ensureHaproxy(log: (line: string) => void = console.log): HaproxyAvailability {
  if (availability) return availability;
  let v = version();
  if (!v && process.env.MESHWORK_BENCH_NO_INSTALL !== '1') {
    if (process.getuid?.() !== 0) {
      availability = {
        ok: false,
        note: 'haproxy is not installed and the bench is not root: `apt-get install haproxy`',
      };
      return availability;
    }
    log(
      'haproxy is missing: apt-get update && apt-get install -y haproxy (bounded, waits for the dpkg lock)',
    );
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const upd = spawnSync('apt-get', ['update'], { stdio: 'ignore', timeout: 180_000, env });
    const inst = spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'install', '-y', 'haproxy'], {
      stdio: 'ignore',
      timeout: 420_000,
      env,
    });
    v = version();
    if (!v) {
      availability = {
        ok: false,
        note: `could not install haproxy (apt-get update exit ${upd.status ?? upd.error?.message}, install exit ${inst.status ?? inst.error?.message})`,
      };
      return availability;
    }
  }
  availability = v
    ? { ok: true, version: v }
    : { ok: false, note: 'haproxy is not installed (MESHWORK_BENCH_NO_INSTALL=1)' };
  return availability;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    sock.setTimeout(500);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
    sock.once('timeout', () => {
      sock.destroy();
      resolve(false);
    });
  });
}

export interface HaproxyOptions {
  /** haproxy threads (`nbthread`). Default 1: a sidecar gets a slice of a node, not the node. */
  threads?: number;
  /** `balance` algorithm. Default roundrobin. */
  balance?: 'roundrobin' | 'leastconn';
}

export interface Haproxy {
  /** host:port the client sends to. */
  address: string;
  pid: number;
  config: string;
  /** CPU seconds haproxy has used so far (user + system, all threads). */
  cpuSeconds(): number;
  stop(): Promise<void>;
}

export function haproxyConfig(port: number, backends: string[], opts: HaproxyOptions = {}): string {
  return [
    'global',
    `  nbthread ${opts.threads ?? 1}`,
    '  maxconn 4096',
    '',
    'defaults',
    '  mode http',
    '  option http-keep-alive',
    '  http-reuse always',
    '  timeout connect 5s',
    '  timeout client 65s',
    '  timeout server 65s',
    '  timeout http-keep-alive 65s',
    '  timeout http-request 10s',
    '',
    'frontend bench_in',
    `  bind 127.0.0.1:${port}`,
    '  default_backend bench_upstreams',
    '',
    'backend bench_upstreams',
    `  balance ${opts.balance ?? 'roundrobin'}`,
    ...backends.map((b, i) => `  server u${i} ${b}`),
    '',
  ].join('\n');
}

/** Starts haproxy in the foreground (`-db`) in front of `backends`; ready when its port accepts. Bounded: 10 s. */
export function startHaproxy(backends: string[], opts: HaproxyOptions = {}): Promise<Haproxy> {
  return runHaproxy((port) => haproxyConfig(port, backends, opts));
}

/**
 * Starts haproxy in the foreground (`-db`) with the config `configFor` writes for a free loopback
 * port, checked first (`-c`); ready when the port accepts. Bounded: 10 s.
 */
export async function runHaproxy(configFor: (port: number) => string): Promise<Haproxy> {
  const dir = mkdtempSync(join(tmpdir(), 'meshwork-haproxy-'));
  const port = await freePort();
  const config = configFor(port);
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, config);
  const check = spawnSync('haproxy', ['-c', '-q', '-f', file], { encoding: 'utf8', timeout: 10_000 });
  if (check.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`haproxy rejected its config: ${check.stderr || check.stdout}`);
  }
  const child = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  trackChild(child);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 4000) stderr += d.toString();
  });
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      resolve();
    }),
  );
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exit;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const until = performance.now() + 10_000;
  while (!(await canConnect(port))) {
    if (exited || performance.now() > until) {
      await stop();
      const alerts = stderr.split('\n').filter((l) => l.includes('ALERT'));
      throw new Error(
        `haproxy did not start: ${(alerts.length ? alerts.join(' ') : stderr).trim() || 'no output'}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const pid = child.pid as number;
  return { address: `127.0.0.1:${port}`, pid, config, cpuSeconds: () => processCpuSeconds(pid), stop };
}
