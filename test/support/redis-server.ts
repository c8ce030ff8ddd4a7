/**
 * A private redis-server (Debian's, as the test setup installs it) on 127.0.0.1, for the tests
 * and benches that kill and restart Redis: the shared one of the vitest setup must stay up.
 * No persistence; the process is killed when this process exits.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PrivateRedis {
  url: string;
  port: number;
  /** SIGKILL (as a crash), resolved once the process is gone. */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT: a Redis that accepts connections and answers nothing. */
  pause(): void;
  resume(): void;
  /** Starts it again on the same port. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export function redisBinary(): string | undefined {
  for (const p of ['/usr/bin/redis-server', '/usr/local/bin/redis-server', '/usr/sbin/redis-server'])
    if (existsSync(p)) return p;
  return undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1', () => sock.write('PING\r\n'));
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(false);
    }, 300);
    sock.on('data', (d) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    sock.on('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

export async function startPrivateRedis(extraArgs: string[] = [], cwd?: string): Promise<PrivateRedis> {
  const bin = redisBinary();
  if (!bin) throw new Error('redis-server is not installed (apt-get install redis-server)');
  const port = await freePort();
  let child: ChildProcess | undefined;
  const launch = async () => {
    const c = spawn(
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
        '--protected-mode',
        'yes',
        ...extraArgs,
      ],
      { stdio: 'ignore', ...(cwd ? { cwd } : {}) },
    );
    children.add(c);
    c.on('exit', () => children.delete(c));
    child = c;
    for (let i = 0; i < 100; i++) {
      if (await ping(port)) return;
      await new Promise((r) => setTimeout(r, 30));
    }
    throw new Error(`redis-server on ${port} did not start`);
  };
  const kill = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGCONT');
    c.kill('SIGKILL');
    await gone;
  };
  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    kill,
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    restart: async () => {
      await kill();
      await launch();
    },
    stop: kill,
  };
}

/**
 * A three-node Redis Cluster (no replicas) on 127.0.0.1, slots assigned with `redis-cli --cluster
 * create` (Debian's redis-tools, installed with redis-server). Resolves once the cluster is ok.
 */
export async function startPrivateCluster(): Promise<{
  nodes: PrivateRedis[];
  url: string;
  stop(): Promise<void>;
}> {
  const dir = mkdtempSync(join(tmpdir(), 'meshwork-redis-cluster-'));
  const nodes: PrivateRedis[] = [];
  for (let i = 0; i < 3; i++) {
    const d = join(dir, String(i));
    mkdirSync(d);
    nodes.push(
      await startPrivateRedis(
        ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--dir', d],
        d,
      ),
    );
  }
  execFileSync(
    'redis-cli',
    [
      '--cluster',
      'create',
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ],
    { stdio: 'ignore', timeout: 20_000 },
  );
  for (let i = 0; i < 100; i++) {
    const info = execFileSync('redis-cli', ['-p', String(nodes[0]?.port), 'cluster', 'info'], {
      encoding: 'utf8',
    });
    if (info.includes('cluster_state:ok')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    nodes,
    url: (nodes[0] as PrivateRedis).url,
    stop: async () => {
      await Promise.all(nodes.map((n) => n.stop()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
