/**
 * Vitest global setup: brings up what the tests need on this machine, so `npm test` works on a
 * fresh Debian machine with nothing else done.
 *
 *   - binaries: dnsmasq (dnsmasq-base), etcd (etcd-server), redis-server, haproxy, chromium
 *     (+ fonts-liberation for the admin page screenshot), prometheus (the tests that scrape the
 *     mesh's metrics start their own, on a random port). Missing ones are installed with apt-get
 *     when running as root (a policy-rc.d keeps the packages' own services from starting);
 *     otherwise the run stops with the one command to run.
 *   - services, on 127.0.0.1, random free ports (another port is tried when one is taken):
 *       MESHWORK_TEST_DNS=127.0.0.1:<port>          dnsmasq (UDP and TCP), SRV fixtures below
 *       MESHWORK_TEST_DNS_HOSTSDIR=<dir>            hosts files dropped here are served within ~1 s
 *       MESHWORK_TEST_ETCD=http://127.0.0.1:<port>  etcd client URL
 *       MESHWORK_TEST_REDIS=redis://127.0.0.1:<port> redis-server, no persistence
 *       MESHWORK_TEST_PROMETHEUS=<path>             the prometheus binary (not started here)
 *     started in parallel, set in process.env (test workers and the processes they spawn inherit
 *     it) and given to tests through `provide('meshworkServices')`.
 *     A variable that is already set and points at a service that answers is reused as is.
 *
 * Processes started here are recorded in pid files under <tmpdir>/meshwork-vitest-services/run-*
 * and stopped, by pid, at teardown. A run that died without teardown is cleaned up by the next
 * one (only pids whose command line names that run's directory are stopped).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { delimiter, join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { SRV_FIXTURES, type TestServices } from '../support/services.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    meshworkServices: TestServices;
  }
}

const STATE_ROOT = join(tmpdir(), 'meshwork-vitest-services');
const log = (line: string): void => console.log(`[services] ${line}`);

// ---- binaries and Debian packages ----------------------------------------------------------------

interface Tool {
  /** Executable name, looked up on PATH and in /usr/sbin, /usr/bin, /sbin. */
  bin: string;
  /** Debian package(s) that provide it. */
  packages: string[];
  /** A fixed path the tests use instead of a PATH lookup (chromium). */
  path?: string;
}

const TOOLS = {
  dnsmasq: { bin: 'dnsmasq', packages: ['dnsmasq-base'] },
  etcd: { bin: 'etcd', packages: ['etcd-server'] },
  redis: { bin: 'redis-server', packages: ['redis-server'] },
  haproxy: { bin: 'haproxy', packages: ['haproxy'] },
  chromium: { bin: 'chromium', packages: ['chromium', 'fonts-liberation'], path: '/usr/bin/chromium' },
  prometheus: { bin: 'prometheus', packages: ['prometheus'] },
} satisfies Record<string, Tool>;
type ToolName = keyof typeof TOOLS;

function findBinary(tool: Tool): string | undefined {
  if (tool.path) return existsSync(tool.path) ? tool.path : undefined;
  const dirs = [
    ...(process.env.PATH ?? '').split(delimiter),
    '/usr/local/sbin',
    '/usr/sbin',
    '/usr/bin',
    '/sbin',
  ];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, tool.bin);
    if (existsSync(p)) return p;
  }
  return undefined;
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

function run(cmd: string, args: string[], logFile: string, timeoutMs: number): number | null {
  const fd = openSync(logFile, 'a');
  try {
    const r = spawnSync(cmd, args, {
      stdio: ['ignore', fd, fd],
      timeout: timeoutMs,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    return r.error ? null : r.status;
  } finally {
    closeSync(fd);
  }
}

/** Installs the packages of the missing tools (root), or throws with the command to run. */
function ensureTools(names: ToolName[], runDir: string): Record<ToolName, string | undefined> {
  const found = {} as Record<ToolName, string | undefined>;
  const missing: ToolName[] = [];
  for (const n of names) {
    found[n] = findBinary(TOOLS[n]);
    if (!found[n]) missing.push(n);
  }
  // fonts-liberation only matters where dpkg can tell (the screenshot's fonts).
  const packages = missing.flatMap((n) => TOOLS[n].packages);
  if (names.includes('chromium') && !packages.includes('fonts-liberation') && hasDpkg()) {
    if (spawnSync('dpkg', ['-s', 'fonts-liberation'], { stdio: 'ignore' }).status !== 0)
      packages.push('fonts-liberation');
  }
  if (packages.length === 0) return found;

  const what = missing.map((n) => TOOLS[n].bin).join(', ') || 'fonts';
  const hasApt = findBinary({ bin: 'apt-get', packages: [] }) !== undefined;
  if (!hasApt)
    throw new Error(
      `meshwork's tests need ${what}, which this machine lacks, and apt-get is not available to install ` +
        `them. Install the Debian packages ${packages.join(' ')} or their equivalents, or point ` +
        `MESHWORK_TEST_DNS/_DNS_HOSTSDIR/_ETCD/_REDIS at running services.`,
    );
  if (!isRoot())
    throw new Error(
      `meshwork's tests need ${what}. Install them once, then run npm test again:\n\n` +
        `  sudo apt-get install -y --no-install-recommends ${packages.join(' ')}\n`,
    );

  const aptLog = join(runDir, 'apt.log');
  log(`installing ${packages.join(' ')} with apt-get (log: ${aptLog})`);
  const started = Date.now();
  // Packaged services (etcd, redis) must not start on their default ports during the install.
  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = !existsSync(policy);
  if (ownPolicy) writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  try {
    const lock = ['-o', 'DPkg::Lock::Timeout=300'];
    const upd = run('apt-get', [...lock, 'update', '-qq'], aptLog, 300_000);
    const inst = run(
      'apt-get',
      [...lock, 'install', '-y', '-qq', '--no-install-recommends', ...packages],
      aptLog,
      900_000,
    );
    if (inst !== 0) {
      const tail = readFileSync(aptLog, 'utf8').split('\n').slice(-15).join('\n');
      throw new Error(
        `apt-get install ${packages.join(' ')} failed (update exit ${upd}, install exit ${inst}):\n${tail}`,
      );
    }
  } finally {
    if (ownPolicy) rmSync(policy, { force: true });
  }
  log(`installed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  for (const n of names) {
    found[n] = findBinary(TOOLS[n]);
    if (!found[n]) throw new Error(`${TOOLS[n].bin} is still missing after installing ${packages.join(' ')}`);
  }
  return found;
}

function hasDpkg(): boolean {
  return findBinary({ bin: 'dpkg', packages: [] }) !== undefined;
}

// ---- ports and readiness --------------------------------------------------------------------------

/** A port free for TCP (and UDP, when asked) on 127.0.0.1, chosen by the kernel. */
async function freePort(udp = false): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    if (!udp) return port;
    const ok = await new Promise<boolean>((resolve) => {
      const u = createSocket('udp4');
      u.once('error', () => resolve(false));
      u.bind(port, '127.0.0.1', () => u.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free TCP+UDP port found on 127.0.0.1');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(
  what: string,
  child: ChildProcess | undefined,
  probe: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode}`);
    if (child?.signalCode) throw new Error(`${what} was killed by ${child.signalCode}`);
    if (await probe().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`${what} did not answer within ${timeoutMs / 1000} s`);
}

async function dnsAnswers(server: string): Promise<boolean> {
  const r = new Resolver({ timeout: 500, tries: 1 });
  r.setServers([server]);
  const srv = await r.resolveSrv(SRV_FIXTURES.api.name);
  return srv.length > 0;
}

async function etcdHealthy(url: string): Promise<boolean> {
  const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1_000) });
  const body = (await res.json()) as { health?: unknown };
  return body.health === 'true' || body.health === true;
}

/** Sends PING over a raw TCP socket; true on +PONG. */
export function redisPing(url: string, timeoutMs = 1_000): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const sock = connect({ host: hostname, port: Number(port) });
    let got = '';
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('error', () => done(false));
    sock.on('data', (d) => {
      got += d.toString('latin1');
      if (got.includes('\r\n')) done(got.startsWith('+PONG'));
    });
    sock.write('*1\r\n$4\r\nPING\r\n');
  });
}

// ---- processes ----------------------------------------------------------------------------------

interface Started {
  name: string;
  child: ChildProcess;
  pidFile: string;
}

/**
 * Starts a service in the foreground of a child process; its pid file holds the pid and, on the
 * second line, a string its command line contains (how a later run recognises it as ours).
 */
function startProcess(
  runDir: string,
  name: string,
  bin: string,
  args: string[],
  marker: string,
  env: NodeJS.ProcessEnv = {},
): Started {
  const out = openSync(join(runDir, `${name}.out`), 'a');
  const child = spawn(bin, args, { stdio: ['ignore', out, out], env: { ...process.env, ...env } });
  closeSync(out);
  child.unref();
  child.on('error', () => {}); // reported through exitCode / the readiness probe
  const pidFile = join(runDir, `${name}.pid`);
  if (child.pid) writeFileSync(pidFile, `${child.pid}\n${marker}\n`);
  return { name, child, pidFile };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function stopPid(pid: number): Promise<void> {
  if (!alive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let i = 0; i < 50 && alive(pid); i++) await sleep(100);
  if (alive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
}

async function stop(s: Started): Promise<void> {
  if (s.child.pid && s.child.exitCode === null && s.child.signalCode === null) await stopPid(s.child.pid);
  rmSync(s.pidFile, { force: true });
}

/** Stops the processes of earlier runs whose vitest died without teardown, and removes their dirs. */
async function cleanStaleRuns(): Promise<void> {
  if (!existsSync(STATE_ROOT)) return;
  for (const entry of readdirSync(STATE_ROOT)) {
    if (!entry.startsWith('run-')) continue;
    const dir = join(STATE_ROOT, entry);
    const owner = Number(readFileSafe(join(dir, 'owner.pid')));
    if (owner && alive(owner)) continue; // another vitest run, still going
    const stops: Promise<void>[] = [];
    for (const f of readdirSync(dir)) {
      if (!f.endsWith('.pid') || f === 'owner.pid') continue;
      const [pidLine, marker] = readFileSafe(join(dir, f)).split('\n');
      const pid = Number(pidLine);
      // Only a process whose command line still holds its marker is the one that run started.
      if (pid && marker && alive(pid) && readFileSafe(`/proc/${pid}/cmdline`).includes(marker)) {
        log(`stopping ${f.replace(/\.pid$/, '')} (pid ${pid}) left over by an earlier run`);
        stops.push(stopPid(pid));
      }
    }
    await Promise.all(stops);
    rmSync(dir, { recursive: true, force: true });
  }
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Tries `attempts` fresh ports: spawn, wait until ready; a failed try is stopped before the next. */
async function startWithRetry(
  name: string,
  attempts: number,
  tryOnce: () => Promise<{ started: Started; value: string }>,
): Promise<{ started: Started; value: string }> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      return await tryOnce();
    } catch (err) {
      last = err;
      log(`${name}: ${(err as Error).message}; trying another port`);
    }
  }
  throw new Error(`${name} failed to start: ${(last as Error)?.message}`);
}

async function startDnsmasq(
  bin: string,
  runDir: string,
): Promise<{ started: Started; dns: string; hostsDir: string }> {
  const hostsDir = join(runDir, 'hosts.d');
  const confDir = join(runDir, 'dnsmasq.d');
  mkdirSync(hostsDir, { recursive: true });
  mkdirSync(confDir, { recursive: true });
  chmodSync(hostsDir, 0o777);
  // SRV records cannot be reloaded at run time; their targets' addresses can, through the hostsdir.
  const api = SRV_FIXTURES.api;
  const bench = SRV_FIXTURES.bench;
  writeFileSync(
    join(confDir, 'meshwork-test.conf'),
    [
      'local=/meshwork.test/',
      ...api.records.map((r) => `srv-host=${api.name},${r.target},${r.port},${r.priority},${r.weight}`),
      `srv-host=${bench.name},${bench.target},${bench.port},${bench.priority},${bench.weight}`,
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(hostsDir, 'srv-targets'),
    [...api.records.map((r) => `${r.ip} ${r.target}`), `${bench.ip} ${bench.target}`, ''].join('\n'),
  );
  const user = userInfo().username;
  const group = spawnSync('id', ['-gn'], { encoding: 'utf8' }).stdout.trim() || user;
  const { started, value } = await startWithRetry('dnsmasq', 5, async () => {
    const port = await freePort(true);
    const started = startProcess(
      runDir,
      'dnsmasq',
      bin,
      [
        '--keep-in-foreground',
        '--no-resolv',
        '--no-hosts',
        '--no-poll',
        '--listen-address=127.0.0.1',
        '--bind-interfaces',
        `--port=${port}`,
        `--user=${user}`,
        `--group=${group}`,
        `--hostsdir=${hostsDir}`,
        `--conf-dir=${confDir}`,
        '--local-ttl=1',
        '--pid-file=',
        `--log-facility=${join(runDir, 'dnsmasq.log')}`,
      ],
      hostsDir,
    );
    const server = `127.0.0.1:${port}`;
    try {
      await waitUntil('dnsmasq', started.child, () => dnsAnswers(server), 10_000);
    } catch (err) {
      await stop(started);
      throw err;
    }
    return { started, value: server };
  });
  return { started, dns: value, hostsDir };
}

async function startEtcd(bin: string, runDir: string): Promise<{ started: Started; url: string }> {
  // etcd 3.4 refuses to start on arm64 without ETCD_UNSUPPORTED_ARCH (amd64 needs nothing).
  const archEnv = process.arch === 'x64' ? {} : { ETCD_UNSUPPORTED_ARCH: process.arch };
  const { started, value } = await startWithRetry('etcd', 5, async () => {
    const client = await freePort();
    let peer = await freePort();
    while (peer === client) peer = await freePort();
    const dataDir = join(runDir, 'etcd-data');
    rmSync(dataDir, { recursive: true, force: true });
    const url = `http://127.0.0.1:${client}`;
    const peerUrl = `http://127.0.0.1:${peer}`;
    const started = startProcess(
      runDir,
      'etcd',
      bin,
      [
        '--name',
        'meshwork-test',
        '--data-dir',
        dataDir,
        '--listen-client-urls',
        url,
        '--advertise-client-urls',
        url,
        '--listen-peer-urls',
        peerUrl,
        '--initial-advertise-peer-urls',
        peerUrl,
        '--initial-cluster',
        `meshwork-test=${peerUrl}`,
        '--initial-cluster-state',
        'new',
        '--log-level',
        'warn',
        '--logger',
        'zap',
      ],
      dataDir,
      archEnv,
    );
    try {
      await waitUntil('etcd', started.child, () => etcdHealthy(url), 30_000);
    } catch (err) {
      await stop(started);
      throw err;
    }
    return { started, value: url };
  });
  return { started, url: value };
}

async function startRedis(bin: string, runDir: string): Promise<{ started: Started; url: string }> {
  const { started, value } = await startWithRetry('redis-server', 5, async () => {
    const port = await freePort();
    const started = startProcess(
      runDir,
      'redis',
      bin,
      [
        '--bind',
        '127.0.0.1',
        '--port',
        String(port),
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        runDir,
        '--daemonize',
        'no',
        '--protected-mode',
        'yes',
        '--logfile',
        join(runDir, 'redis.log'),
      ],
      `127.0.0.1:${port}`,
    ); // redis-server sets its process title to "<bin> <addr>:<port>"
    const url = `redis://127.0.0.1:${port}`;
    try {
      await waitUntil('redis-server', started.child, () => redisPing(url, 500), 10_000);
    } catch (err) {
      await stop(started);
      throw err;
    }
    return { started, value: url };
  });
  return { started, url: value };
}

// ---- reuse of services given by the environment ----------------------------------------------------

async function reusable(
  name: string,
  value: string | undefined,
  probe: () => Promise<boolean>,
): Promise<boolean> {
  if (!value) return false;
  if (await probe().catch(() => false)) {
    log(`${name}: reusing ${value} from the environment`);
    return true;
  }
  log(`${name}: ${value} (from the environment) does not answer; starting one`);
  return false;
}

// ---- setup / teardown -----------------------------------------------------------------------------

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const t0 = Date.now();
  const env = process.env;
  const [reuseDns, reuseEtcd, reuseRedis] = await Promise.all([
    env.MESHWORK_TEST_DNS_HOSTSDIR && existsSync(env.MESHWORK_TEST_DNS_HOSTSDIR)
      ? reusable('dnsmasq', env.MESHWORK_TEST_DNS, () => dnsAnswers(env.MESHWORK_TEST_DNS as string))
      : false,
    reusable('etcd', env.MESHWORK_TEST_ETCD, () => etcdHealthy(env.MESHWORK_TEST_ETCD as string)),
    reusable('redis', env.MESHWORK_TEST_REDIS, () => redisPing(env.MESHWORK_TEST_REDIS as string)),
  ]);

  await cleanStaleRuns();
  mkdirSync(STATE_ROOT, { recursive: true, mode: 0o755 });
  chmodSync(STATE_ROOT, 0o755);
  const runDir = mkdtempSync(join(STATE_ROOT, 'run-'));
  chmodSync(runDir, 0o755);
  writeFileSync(join(runDir, 'owner.pid'), String(process.pid));

  const needed: ToolName[] = ['haproxy', 'chromium', 'prometheus'];
  if (!reuseDns) needed.push('dnsmasq');
  if (!reuseEtcd) needed.push('etcd');
  if (!reuseRedis) needed.push('redis');
  let bins: Record<ToolName, string | undefined>;
  try {
    bins = ensureTools(needed, runDir);
  } catch (err) {
    rmSync(runDir, { recursive: true, force: true });
    throw err;
  }

  const started: Started[] = [];
  const results = await Promise.allSettled([
    reuseDns ? undefined : startDnsmasq(bins.dnsmasq as string, runDir),
    reuseEtcd ? undefined : startEtcd(bins.etcd as string, runDir),
    reuseRedis ? undefined : startRedis(bins.redis as string, runDir),
  ]);
  const [dns, etcd, redis] = results;
  for (const r of results) if (r.status === 'fulfilled' && r.value) started.push(r.value.started);

  const teardown = async () => {
    await Promise.all(started.map(stop));
    rmSync(runDir, { recursive: true, force: true });
  };
  const failed = results.filter((r) => r.status === 'rejected');
  if (failed.length) {
    await teardown();
    throw new Error(
      `test services failed to start:\n  ${failed.map((r) => String((r as PromiseRejectedResult).reason?.message)).join('\n  ')}`,
    );
  }

  const value = <T>(r: PromiseSettledResult<T>): T | undefined =>
    r.status === 'fulfilled' ? r.value : undefined;
  const d = value(dns);
  if (d) {
    env.MESHWORK_TEST_DNS = d.dns;
    env.MESHWORK_TEST_DNS_HOSTSDIR = d.hostsDir;
  }
  const e = value(etcd);
  if (e) env.MESHWORK_TEST_ETCD = e.url;
  const r = value(redis);
  if (r) env.MESHWORK_TEST_REDIS = r.url;
  env.MESHWORK_TEST_PROMETHEUS = bins.prometheus;
  const services: TestServices = {
    dns: env.MESHWORK_TEST_DNS,
    dnsHostsDir: env.MESHWORK_TEST_DNS_HOSTSDIR,
    etcd: env.MESHWORK_TEST_ETCD,
    redis: env.MESHWORK_TEST_REDIS,
    prometheus: env.MESHWORK_TEST_PROMETHEUS,
  };
  project.provide('meshworkServices', services);
  log(
    `ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: dns ${services.dns}, etcd ${services.etcd}, ` +
      `redis ${services.redis}` +
      (started.length ? ` (pids ${started.map((s) => `${s.name} ${s.child.pid}`).join(', ')})` : ''),
  );
  return teardown;
}
