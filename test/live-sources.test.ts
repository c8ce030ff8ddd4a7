import { randomUUID } from 'node:crypto';
import dc from 'node:diagnostics_channel';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CHANNELS,
  type ConfigUpdateMessage,
  createMesh,
  isMeshworkError,
  type Logger,
  type Mesh,
} from '../src/index.ts';
import { ConsulDouble } from './support/consul-double.ts';
import { listen } from './support/inbound.ts';
import { named, startServer, type TestServer } from './support/servers.ts';
import { requireService, suiteName, testServices } from './support/services.ts';

let v1: TestServer;
let v2: TestServer;
let dir: string;
const meshes: Mesh[] = [];
const events: ConfigUpdateMessage[] = [];
const onEvent = (m: unknown) => events.push(m as ConfigUpdateMessage);

beforeAll(async () => {
  v1 = await startServer(named('v1'));
  v2 = await startServer(named('v2'));
  dc.subscribe(CHANNELS.configUpdate, onEvent);
});
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
  events.length = 0;
  if (dir) rmSync(dir, { recursive: true, force: true });
});
afterAll(async () => {
  dc.unsubscribe(CHANNELS.configUpdate, onEvent);
  await Promise.all([v1, v2].map((s) => s.close()));
});

function recordingLogger(): Logger & { lines: { level: string; obj: object; msg?: string | undefined }[] } {
  const lines: { level: string; obj: object; msg?: string | undefined }[] = [];
  const at = (level: string) => (obj: object, msg?: string) => lines.push({ level, obj, msg });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

function mesh(config: Parameters<typeof createMesh>[0]): Mesh {
  const m = createMesh({ env: {}, ...config });
  meshes.push(m);
  return m;
}

async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const body = async (m: Mesh, url = 'http://reviews/') => (await m.fetch(url)).text();

/** A meshwork config (YAML) sending everything to one version of reviews. */
function meshYaml(version: 'v1' | 'v2', extra = ''): string {
  return `services:
  reviews:
    discovery:
      static:
        - { address: "${v1.address}", labels: { version: v1 } }
        - { address: "${v2.address}", labels: { version: v2 } }
    subsets:
      - { name: v1, labels: { version: v1 } }
      - { name: v2, labels: { version: v2 } }
    http:
      - route:
          - destination: { subset: ${version} }
${extra}`;
}

/** Replaces a file the way editors and `kubectl cp`/`mv` do: write beside it, rename over it. */
function atomicWrite(path: string, text: string): void {
  const tmp = `${path}.${randomUUID()}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

describe('a watched config file', () => {
  it('applies MESHWORK_CONFIG changes live; an invalid file is refused and the last good config keeps running', async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshwork-live-'));
    const file = join(dir, 'mesh.yaml');
    writeFileSync(file, meshYaml('v1'));
    const logger = recordingLogger();
    const m = mesh({ env: { MESHWORK_CONFIG: file }, logger });
    expect(await body(m)).toBe('v1');
    expect(m.snapshot().config?.sources).toMatchObject([{ source: `file ${file}`, state: 'watching' }]);

    atomicWrite(file, meshYaml('v2'));
    await waitFor(async () => (await body(m)) === 'v2', 'the file change');
    expect(m.snapshot().config).toMatchObject({ version: 2, source: `file ${file}` });

    // Not YAML: refused, logged, published, shown; v2 keeps running.
    atomicWrite(file, 'services: [oops');
    await waitFor(() => m.snapshot().config?.lastRefused !== undefined, 'the refusal');
    expect(m.snapshot().config?.lastRefused).toMatchObject({
      source: `file ${file}`,
      code: 'MESHWORK_ERR_CONFIG',
    });
    expect(m.snapshot().config?.lastRefused?.error).toContain('is not valid YAML/JSON');
    expect(logger.lines.some((l) => l.level === 'error' && l.msg?.includes('refused'))).toBe(true);
    expect(events.some((e) => e.result === 'refused' && e.source === `file ${file}`)).toBe(true);
    expect(await body(m)).toBe('v2');

    // A parse error never quotes the file (it may hold a secret) in the log or the snapshot.
    atomicWrite(
      file,
      `context:\n  trust: { signature: { hmacSecret: "s3cr3t-hmac-key" } } ]\n${meshYaml('v2')}`,
    );
    await waitFor(
      () => m.snapshot().config?.updates.refused === 2,
      'the refusal of the file holding a secret',
    );
    expect(JSON.stringify(m.snapshot())).not.toContain('s3cr3t');
    expect(JSON.stringify(logger.lines)).not.toContain('s3cr3t');

    // Valid YAML, invalid config: refused with the path and value.
    atomicWrite(file, meshYaml('v1', '    timeout: soon\n'));
    await waitFor(
      () => m.snapshot().config?.lastRefused?.error.includes('timeout') === true,
      'the second refusal',
    );
    expect(m.snapshot().config?.lastRefused?.issues?.[0]?.path).toBe('services.reviews.timeout');
    expect(await body(m)).toBe('v2');

    // Gone: the source is unavailable, the last good config stays.
    unlinkSync(file);
    await waitFor(() => m.snapshot().config?.sources[0]?.state === 'unavailable', 'the missing file');
    expect(await body(m)).toBe('v2');
    writeFileSync(file, meshYaml('v1'));
    await waitFor(async () => (await body(m)) === 'v1', 'the file back');
    expect(m.snapshot().config).toMatchObject({ version: 3, updates: { applied: 2, refused: 3 } });
  });

  it('follows a Kubernetes ConfigMap volume: the ..data symlink swapped to a new directory', async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshwork-cm-'));
    // The layout kubelet makes: mesh.yaml -> ..data/mesh.yaml, ..data -> ..<timestamp>/
    mkdirSync(join(dir, '..2026_01_01_00_00_00.1'));
    writeFileSync(join(dir, '..2026_01_01_00_00_00.1', 'mesh.yaml'), meshYaml('v1'));
    symlinkSync('..2026_01_01_00_00_00.1', join(dir, '..data'));
    symlinkSync('..data/mesh.yaml', join(dir, 'mesh.yaml'));
    const m = mesh({ liveConfig: { file: join(dir, 'mesh.yaml') } });
    expect(await body(m)).toBe('v1');
    // An update, as kubelet does it: a new directory, a new symlink renamed over ..data, the old directory removed.
    mkdirSync(join(dir, '..2026_01_01_00_01_00.2'));
    writeFileSync(join(dir, '..2026_01_01_00_01_00.2', 'mesh.yaml'), meshYaml('v2'));
    symlinkSync('..2026_01_01_00_01_00.2', join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    rmSync(join(dir, '..2026_01_01_00_00_00.1'), { recursive: true });
    await waitFor(async () => (await body(m)) === 'v2', 'the ConfigMap swap');
  });

  it('liveConfig.file and MESHWORK_CONFIG naming two files is refused; file: false reads without watching', () => {
    dir = mkdtempSync(join(tmpdir(), 'meshwork-live-'));
    writeFileSync(join(dir, 'a.yaml'), meshYaml('v1'));
    writeFileSync(join(dir, 'b.yaml'), meshYaml('v2'));
    const err = (() => {
      try {
        createMesh({
          env: { MESHWORK_CONFIG: join(dir, 'a.yaml') },
          liveConfig: { file: join(dir, 'b.yaml') },
        });
      } catch (e) {
        return e;
      }
    })();
    expect(isMeshworkError(err, 'MESHWORK_ERR_CONFIG')).toBe(true);
    expect((err as Error).message).toContain('liveConfig.file');
    const m = mesh({ env: { MESHWORK_CONFIG: join(dir, 'a.yaml') }, liveConfig: { file: false } });
    expect(m.snapshot().config?.sources).toEqual([]);
  });
});

describe('a watched directory of Istio YAML', () => {
  const vs = (w1: number, w2: number) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http:
    - route:
        - destination: { host: reviews, subset: v1 }
          weight: ${w1}
        - destination: { host: reviews, subset: v2 }
          weight: ${w2}
`;
  const dr = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews }
spec:
  host: reviews
  subsets:
    - { name: v1, labels: { version: v1 } }
    - { name: v2, labels: { version: v2 } }
`;

  it('converts VirtualService and DestinationRule with fromIstio and applies their changes', async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshwork-istio-'));
    writeFileSync(join(dir, 'reviews-vs.yaml'), vs(100, 0));
    writeFileSync(join(dir, 'reviews-dr.yaml'), dr);
    const logger = recordingLogger();
    const m = mesh({
      logger,
      liveConfig: { istio: { dir } },
      services: {
        reviews: {
          discovery: {
            static: [
              { address: v1.address, labels: { version: 'v1' } },
              { address: v2.address, labels: { version: 'v2' } },
            ],
          },
        },
      },
    });
    expect(await body(m)).toBe('v1');
    atomicWrite(join(dir, 'reviews-vs.yaml'), vs(0, 100));
    await waitFor(async () => (await body(m)) === 'v2', 'the VirtualService change');
    expect(m.snapshot().config?.source).toBe(`istio ${dir}`);

    // Resources for a host no layer gives discovery to are left out, with a warning.
    writeFileSync(join(dir, 'ratings-vs.yaml'), vs(0, 100).replaceAll('reviews', 'ratings'));
    await waitFor(() => m.snapshot().config?.updates.unchanged === 1, 'the ratings file');
    expect(logger.lines.some((l) => l.msg?.includes('service "ratings" is not configured'))).toBe(true);
    unlinkSync(join(dir, 'ratings-vs.yaml'));

    // Unsupported Istio (strict by default): the whole directory is refused; v2 keeps running.
    // (A TCP route: Istio applies it to TCP traffic, which meshwork does not carry.)
    writeFileSync(
      join(dir, 'bad.yaml'),
      vs(50, 50).replace('http:', 'tcp:\n    - route: [{ destination: { host: reviews } }]\n  http:'),
    );
    await waitFor(() => m.snapshot().config?.lastRefused !== undefined, 'the refusal');
    expect(m.snapshot().config?.lastRefused?.code).toBe('MESHWORK_ERR_ISTIO_UNSUPPORTED');
    expect(await body(m)).toBe('v2');
    // An AuthorizationPolicy dropped in is enforced by mesh.inbound() from then on.
    const server = createServer((req, res) => m.inbound()(req, res, () => res.end('ok')));
    const site = await listen(server);
    try {
      expect((await fetch(`${site.url}/admin`)).status).toBe(200);
      unlinkSync(join(dir, 'bad.yaml'));
      writeFileSync(
        join(dir, 'deny-admin.yaml'),
        `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-admin, namespace: default }
spec:
  action: DENY
  rules:
    - to: [{ operation: { paths: ["/admin"] } }]
`,
      );
      await waitFor(async () => (await fetch(`${site.url}/admin`)).status === 403, 'the policy');
      expect((await fetch(`${site.url}/trips`)).status).toBe(200);
      unlinkSync(join(dir, 'deny-admin.yaml'));
      await waitFor(async () => (await fetch(`${site.url}/admin`)).status === 200, 'the policy to go');
    } finally {
      await site.close();
    }

    // Removing a file removes what it said.
    unlinkSync(join(dir, 'reviews-vs.yaml'));
    await waitFor(() => m.snapshot().services.reviews?.routes === undefined, 'the routes to go');
  });
});

const svc = testServices();
const ETCD = 'etcd (MESHWORK_TEST_ETCD)';
const runEtcd = requireService(ETCD, !!svc.etcd);

describe.runIf(runEtcd)(suiteName('config from an etcd key', runEtcd, ETCD), () => {
  let client: Etcd3;
  beforeAll(() => {
    client = new Etcd3({ hosts: [svc.etcd as string] });
  });
  afterAll(() => client.close());

  it('every replica applies a put; a bad value is refused and a deleted key keeps the last config', async () => {
    const key = `/meshwork-test/${randomUUID()}/config`;
    try {
      const base = { liveConfig: { etcd: { hosts: [svc.etcd as string], key } } };
      const replicas = [mesh(base), mesh(base), mesh(base)];
      await waitFor(
        () => replicas.every((r) => r.snapshot().config?.sources[0]?.state === 'unavailable'),
        'the absent key to be seen',
      );
      await client.put(key).value(meshYaml('v1'));
      await waitFor(
        async () =>
          (await Promise.all(replicas.map((r) => body(r).catch(() => '')))).every((b) => b === 'v1'),
        'every replica',
      );
      const hashes = new Set(replicas.map((r) => r.snapshot().config?.hash));
      expect(hashes.size).toBe(1);
      expect(replicas[0]?.snapshot().config?.source).toBe(`etcd ${key}`);

      await client.put(key).value(meshYaml('v2'));
      await waitFor(
        async () => (await Promise.all(replicas.map((r) => body(r)))).every((b) => b === 'v2'),
        'the second put',
      );

      await client.put(key).value('services: { reviews: { discovery: {} } }');
      await waitFor(
        () => replicas.every((r) => r.snapshot().config?.lastRefused !== undefined),
        'the refusal',
      );
      expect(replicas[0]?.snapshot().config?.lastRefused?.issues?.[0]?.path).toBe(
        'services.reviews.discovery',
      );
      expect(await body(replicas[0] as Mesh)).toBe('v2');

      await client.delete().key(key);
      await waitFor(
        () => replicas.every((r) => r.snapshot().config?.sources[0]?.state === 'unavailable'),
        'delete',
      );
      expect(await body(replicas[1] as Mesh)).toBe('v2');
    } finally {
      await client.delete().key(key);
    }
  });
});

describe('config from a Consul KV key (the Consul double)', () => {
  it('every replica applies a write through its blocking query; bad values and deletes keep the last config', async () => {
    const consul = await new ConsulDouble().start();
    try {
      const key = 'meshwork/config';
      const base = { liveConfig: { consul: { host: '127.0.0.1', port: consul.port, key } } };
      const replicas = [mesh(base), mesh(base)];
      await waitFor(() => consul.blockedQueries === 2, 'both replicas to block on the absent key');
      consul.putKey(key, meshYaml('v1'));
      await waitFor(
        async () =>
          (await Promise.all(replicas.map((r) => body(r).catch(() => '')))).every((b) => b === 'v1'),
        'every replica',
      );
      expect(replicas[0]?.snapshot().config?.source).toBe(`consul ${key}`);
      consul.putKey(key, meshYaml('v2'));
      await waitFor(
        async () => (await Promise.all(replicas.map((r) => body(r)))).every((b) => b === 'v2'),
        'v2',
      );
      // Blocking queries, not polling: a few requests per change, none while nothing changes.
      await waitFor(() => consul.blockedQueries === 2, 'both replicas to block again');
      consul.resetRequests();
      await new Promise((r) => setTimeout(r, 500));
      expect(consul.requestCount()).toBe(0);

      consul.putKey(key, '{ not yaml');
      await waitFor(
        () => replicas.every((r) => r.snapshot().config?.lastRefused !== undefined),
        'the refusal',
      );
      consul.deleteKey(key);
      await waitFor(
        () => replicas.every((r) => r.snapshot().config?.sources[0]?.state === 'unavailable'),
        'delete',
      );
      expect(await body(replicas[0] as Mesh)).toBe('v2');
      // Consul down: the last config keeps serving.
      await consul.stop();
      expect(await body(replicas[1] as Mesh)).toBe('v2');
    } finally {
      await consul.stop();
    }
  });

  it('a remote document may not set liveConfig', async () => {
    const consul = await new ConsulDouble().start();
    try {
      const m = mesh({ liveConfig: { consul: { host: '127.0.0.1', port: consul.port, key: 'k' } } });
      consul.putKey('k', `liveConfig: { file: /etc/x.yaml }\n${meshYaml('v1')}`);
      await waitFor(() => m.snapshot().config?.lastRefused !== undefined, 'the refusal');
      expect(m.snapshot().config?.lastRefused?.error).toContain(
        'liveConfig: is set in code or MESHWORK_CONFIG only',
      );
    } finally {
      await consul.stop();
    }
  });
});
