import { execFile, execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMeshworkError as srcIsMeshworkError } from '../src/index.ts';
import { NODE_MIN, nodeVersionSupported } from '../src/node-version.ts';

// `npm test` builds dist/ with tsup before running vitest; these tests load the built
// package through its own name and exports map, as a user would.
const require = createRequire(import.meta.url);
// Through a variable, so `tsc --noEmit` does not need dist/ to exist.
const PACKAGE = 'meshwork';
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  engines: { node: string };
  scripts: Record<string, string>;
};
const run = promisify(execFile);
const INSTALL_SCRIPTS = ['preinstall', 'install', 'postinstall', 'prepare'];
const OPTIONAL = ['etcd3', 'consul', 'opossum'];
/** The xDS client's optional packages (etcd3 brings @grpc/grpc-js along, so they are checked apart). */
const XDS_OPTIONAL = ['@grpc/grpc-js', 'protobufjs'];

describe('the built package', () => {
  it('loads as ESM and as CommonJS through the exports map', async () => {
    const esm = await import(PACKAGE);
    const cjs = require(PACKAGE);
    for (const mod of [esm, cjs]) {
      expect(typeof mod.createMesh).toBe('function');
      expect(typeof mod.isMeshworkError).toBe('function');
      expect(mod.ErrorCodes.UNKNOWN_SERVICE).toBe('MESHWORK_ERR_UNKNOWN_SERVICE');
    }
    expect(require.resolve(PACKAGE)).toMatch(/dist[/\\]index\.cjs$/);
  });

  it('error checks survive duplicate copies of the package (brand and instanceof)', async () => {
    const cjs = require(PACKAGE);
    const fromCjs = new cjs.UnknownServiceError('x', []);
    // A different copy of the class: instanceof still works (Symbol.hasInstance reads the brand).
    const { UnknownServiceError, MeshTimeoutError } = await import('../src/index.ts');
    expect(cjs.UnknownServiceError).not.toBe(UnknownServiceError);
    expect(fromCjs instanceof UnknownServiceError).toBe(true);
    expect(fromCjs instanceof MeshTimeoutError).toBe(false);
    expect(srcIsMeshworkError(fromCjs, 'MESHWORK_ERR_UNKNOWN_SERVICE')).toBe(true);
    expect(cjs.isMeshworkError(new UnknownServiceError('y', []))).toBe(true);
    expect(srcIsMeshworkError(new Error('plain'))).toBe(false);
    expect(srcIsMeshworkError({ code: 'MESHWORK_ERR_UNKNOWN_SERVICE' })).toBe(false);
  });

  it('loads no optional package (etcd3, consul, opossum) until a config needs it', () => {
    const script = `
      const loaded = () => ${JSON.stringify(OPTIONAL)}.filter((p) =>
        Object.keys(require.cache).some((k) => k.includes('/node_modules/' + p + '/')));
      const { createMesh } = require('meshwork');
      const atImport = loaded();
      const s = createMesh({ env: {}, services: { a: { discovery: { static: ['127.0.0.1:1'] } } } });
      const withStatic = loaded();
      const e = createMesh({ env: {}, services: { a: { discovery: { etcd: { hosts: ['127.0.0.1:1'] } } } } });
      const withEtcd = loaded();
      const b = createMesh({ env: {}, services: { a: { discovery: { consul: {} }, trafficPolicy: { circuitBreaker: {} } } } });
      console.log(JSON.stringify({ atImport, withStatic, withEtcd, withAll: loaded() }));
      Promise.all([s.close(), e.close(), b.close()]).then(() => process.exit(0));
    `;
    const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(JSON.parse(out.trim().split('\n').pop() as string)).toEqual({
      atImport: [],
      withStatic: [],
      withEtcd: ['etcd3'],
      withAll: ['etcd3', 'consul', 'opossum'],
    });
  });

  it('loads no xDS package (@grpc/grpc-js, protobufjs, the client, the Envoy descriptor) until a config has xds', () => {
    const script = `
      const fs = require('node:fs');
      const read = fs.readFileSync;
      const files = [];
      fs.readFileSync = function (p, ...rest) { files.push(String(p)); return read.call(this, p, ...rest); };
      const loaded = () => ${JSON.stringify(XDS_OPTIONAL)}.filter((p) =>
        Object.keys(require.cache).some((k) => k.includes('/node_modules/' + p + '/')));
      const { createMesh } = require('meshwork');
      const atImport = loaded();
      const s = createMesh({ env: {}, services: { a: { discovery: { static: ['127.0.0.1:1'] } } } });
      const withStatic = loaded();
      const descriptorBefore = files.some((f) => f.includes('envoy-v3.json'));
      const x = createMesh({ env: {}, xds: { bootstrap: { xds_servers: [{ server_uri: '127.0.0.1:1', channel_creds: [{ type: 'insecure' }] }] } } });
      const withXds = loaded();
      x.snapshot();
      setTimeout(() => {
        console.log(JSON.stringify({ atImport, withStatic, descriptorBefore, withXds, descriptor: files.some((f) => f.includes('envoy-v3.json')) }));
        Promise.all([s.close(), x.close()]).then(() => process.exit(0));
      }, 300);
    `;
    const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(JSON.parse(out.trim().split('\n').pop() as string)).toEqual({
      atImport: [],
      withStatic: [],
      descriptorBefore: false,
      withXds: XDS_OPTIONAL,
      descriptor: true,
    });
  });

  it('keeps the optional packages out of the bundles: no static import or require of them', () => {
    for (const f of readdirSync(join(ROOT, 'dist')).filter((f) => /\.(c?js)$/.test(f))) {
      const code = readFileSync(join(ROOT, 'dist', f), 'utf8');
      for (const p of [...OPTIONAL, ...XDS_OPTIONAL]) {
        expect(code, `${f} imports ${p}`).not.toMatch(new RegExp(`from\\s*["']${p}["']`));
        expect(code, `${f} requires ${p}`).not.toMatch(new RegExp(`require\\(\\s*["']${p}["']\\s*\\)`));
        expect(code, `${f} imports ${p}`).not.toMatch(new RegExp(`import\\(\\s*["']${p}["']\\s*\\)`));
      }
    }
  });

  it('the Node.js check agrees with package.json engines', () => {
    expect(pkg.engines.node).toBe(`>=${NODE_MIN.major}.${NODE_MIN.minor}`);
    expect(nodeVersionSupported(process.versions.node)).toBe(true);
    expect(nodeVersionSupported('22.19.0')).toBe(true);
    expect(nodeVersionSupported('22.18.9')).toBe(false);
    expect(nodeVersionSupported('20.20.2')).toBe(false);
    expect(nodeVersionSupported('23.0.0')).toBe(true);
  });
});

/** A `node` on PATH other than the one npm puts first (node_modules/.bin): the machine's own. */
function systemNode(): { path: string; version: string } | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir || dir.includes('node_modules')) continue;
    const p = join(dir, 'node');
    if (!existsSync(p)) continue;
    try {
      const version = execFileSync(p, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim();
      return { path: p, version };
    } catch {}
  }
  return undefined;
}

const sys = systemNode();
const oldNodeSkip = !sys
  ? 'no node on PATH besides node_modules/.bin'
  : nodeVersionSupported(sys.version)
    ? `the machine's node (${sys.path}) is ${sys.version}, not older than ${pkg.engines.node}`
    : undefined;
if (oldNodeSkip) console.warn(`[skip] the old-Node test is SKIPPED: ${oldNodeSkip}`);

describe.skipIf(oldNodeSkip !== undefined)(
  `on a Node.js older than engines${oldNodeSkip ? ` (SKIPPED: ${oldNodeSkip})` : ''}`,
  () => {
    const probe = (load: string) => `
      ${load}.then(() => console.log(JSON.stringify({ loaded: true })), (e) => console.log(JSON.stringify({
        name: e.name, code: e.code, message: e.message, brand: e[Symbol.for('meshwork.error')] === true,
        found: e.found, required: e.required,
        // Evaluated (loaded), not only pre-parsed for its export names (ESM importing CommonJS).
        undici: Object.entries(require.cache).some(([k, m]) => k.includes('/undici/') && m.loaded),
      })));`;
    for (const [format, load] of [
      ['ESM (dist/index.js)', `import(${JSON.stringify(join(ROOT, 'dist/index.js'))})`],
      [
        'CommonJS (dist/index.cjs)',
        `new Promise((r) => r(require(${JSON.stringify(join(ROOT, 'dist/index.cjs'))})))`,
      ],
    ] as const) {
      it(`refuses to load as ${format} with a MeshworkError naming both versions, before undici`, () => {
        const node = sys as { path: string; version: string };
        const out = execFileSync(node.path, ['-e', probe(load)], { encoding: 'utf8', timeout: 20_000 });
        const r = JSON.parse(out.trim().split('\n').pop() as string);
        expect(r).toMatchObject({
          name: 'NodeVersionError',
          code: 'MESHWORK_ERR_NODE_VERSION',
          brand: true,
          found: node.version,
          required: pkg.engines.node,
          undici: false,
        });
        expect(r.message).toContain(`Node.js ${node.version}`);
        expect(r.message).toContain(`Node.js ${pkg.engines.node}`);
      });
    }
  },
);

/**
 * `npm pack` as a publisher would, then an install of the tarball into a throwaway project as a
 * user would (from the npm registry, through the npm cache), without the optional packages.
 * `--ignore-scripts` on pack: `npm test` built dist/ just before (prepack would rebuild it while
 * other test files load it); the prepack script itself is checked below.
 */
describe('the npm tarball, installed in a throwaway project', { timeout: 120_000 }, () => {
  let dir: string;
  let tarball: string;
  let files: string[];
  let manifest: {
    scripts?: Record<string, string>;
    dependencies?: Record<string, string>;
    peerDependencies?: Record<string, string>;
    peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  };
  let project: string;
  let installed: { ok: boolean; output: string };

  beforeAll(async () => {
    expect(existsSync(join(ROOT, 'dist/index.js')), 'dist/ is missing: run `npm run build` first').toBe(true);
    dir = mkdtempSync(join(tmpdir(), 'meshwork-pack-'));
    const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
      cwd: ROOT,
      maxBuffer: 16 * 1024 * 1024,
    });
    const packed = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
    tarball = join(dir, (packed[0] as { filename: string }).filename);
    files = (packed[0] as { files: { path: string }[] }).files.map((f) => f.path);
    manifest = JSON.parse(
      execFileSync('tar', ['-xzOf', tarball, 'package/package.json'], { encoding: 'utf8' }),
    );

    project = join(dir, 'consumer');
    mkdirSync(project);
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }),
    );
    try {
      const r = await run(
        'npm',
        ['install', tarball, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'],
        { cwd: project, timeout: 90_000, maxBuffer: 16 * 1024 * 1024 },
      );
      installed = { ok: true, output: r.stdout + r.stderr };
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      installed = { ok: false, output: `${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}` };
    }
  }, 150_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('holds dist (ESM, CJS, types), README and docs, and nothing of src, test, bench or examples', () => {
    for (const f of ['dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts', 'README.md'])
      expect(files).toContain(f);
    expect(files.filter((f) => f.startsWith('docs/')).length).toBeGreaterThan(5);
    expect(files.filter((f) => /^(src|test|bench|examples|scripts|\.ci)\//.test(f))).toEqual([]);
    expect(files.filter((f) => /node_modules/.test(f))).toEqual([]);
  });

  it('has no install scripts, builds in prepack, and lists etcd3, consul, opossum as optional peers', () => {
    for (const s of INSTALL_SCRIPTS) expect(manifest.scripts?.[s], `scripts.${s}`).toBeUndefined();
    expect(pkg.scripts.prepack).toMatch(/\b(npm run build|tsup)\b/);
    for (const p of OPTIONAL) {
      expect(manifest.dependencies?.[p], `dependencies.${p}`).toBeUndefined();
      expect(manifest.peerDependencies?.[p], `peerDependencies.${p}`).toBeDefined();
      expect(manifest.peerDependenciesMeta?.[p]?.optional, `peerDependenciesMeta.${p}`).toBe(true);
    }
  });

  it('installs without the optional packages', () => {
    expect(installed.ok, installed.output).toBe(true);
    const nm = join(project, 'node_modules');
    expect(existsSync(join(nm, 'meshwork/dist/index.js'))).toBe(true);
    for (const p of [...OPTIONAL, '@grpc/grpc-js', 'protobufjs'])
      expect(existsSync(join(nm, p)), `${p} installed`).toBe(false);
  });

  const consumer = (ext: 'mjs' | 'cjs') => {
    const load = ext === 'mjs' ? "await import('meshwork')" : "require('meshwork')";
    const body = `
      const { createServer } = require('node:http');
      const server = createServer((req, res) => res.end('hello from ' + req.url));
      await new Promise((r) => server.listen(0, '127.0.0.1', r));
      const { createMesh, isMeshworkError } = ${load};
      const mesh = createMesh({ env: {}, services: { travels: { discovery: { static: ['127.0.0.1:' + server.address().port] } } } });
      const res = await mesh.fetch('http://travels/trips/42');
      const out = { status: res.status, body: await res.text() };
      await mesh.close();
      server.close();
      try {
        createMesh({ env: {}, services: { a: { discovery: { etcd: { hosts: ['127.0.0.1:1'] } } } } });
      } catch (e) {
        out.missing = { code: e.code, brand: isMeshworkError(e, 'MESHWORK_ERR_MISSING_DEPENDENCY'), message: e.message };
      }
      try {
        createMesh({ env: {}, xds: { bootstrap: { xds_servers: [{ server_uri: 'istiod:15010', channel_creds: [{ type: 'insecure' }] }] } } });
      } catch (e) {
        out.xds = { code: e.code, message: e.message };
      }
      console.log(JSON.stringify(out));`;
    return ext === 'mjs'
      ? `import { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\n${body}`
      : `(async () => {${body}\n})().catch((e) => { console.error(e); process.exit(1); });`;
  };

  for (const ext of ['mjs', 'cjs'] as const) {
    it(`works for a user: ${ext === 'mjs' ? "import('meshwork')" : "require('meshwork')"}, a static service, the missing-package error`, async () => {
      expect(installed.ok, installed.output).toBe(true);
      const file = join(project, `use.${ext}`);
      writeFileSync(file, consumer(ext));
      const { stdout } = await run(process.execPath, [file], { cwd: project, timeout: 20_000 });
      expect(JSON.parse(stdout.trim().split('\n').pop() as string)).toEqual({
        status: 200,
        body: 'hello from /trips/42',
        missing: {
          code: 'MESHWORK_ERR_MISSING_DEPENDENCY',
          brand: true,
          message: expect.stringContaining('npm install etcd3'),
        },
        xds: {
          code: 'MESHWORK_ERR_MISSING_DEPENDENCY',
          message: expect.stringContaining('npm install @grpc/grpc-js'),
        },
      });
    });
  }

  it('type-checks a TypeScript user (ESM and CJS) against the shipped .d.ts files', async () => {
    expect(installed.ok, installed.output).toBe(true);
    writeFileSync(
      join(project, 'use.ts'),
      `import { createMesh, isMeshworkError, type Mesh, type MeshSnapshot } from 'meshwork';
const mesh: Mesh = createMesh({
  services: { travels: { discovery: { static: ['127.0.0.1:8081'] }, trafficPolicy: { loadBalancer: { simple: 'PEAK_EWMA' } } } },
});
const res: Response = await mesh.fetch('http://travels/trips/42');
const snap: MeshSnapshot = mesh.snapshot();
export const ok: boolean = res.ok && Object.keys(snap.services).length > 0 && !isMeshworkError(null);
// @ts-expect-error: not a load balancer meshwork knows
createMesh({ services: { a: { discovery: { static: [] }, trafficPolicy: { loadBalancer: { simple: 'NOPE' } } } } });
await mesh.close();
`,
    );
    writeFileSync(
      join(project, 'use-cjs.cts'),
      `import { createMesh, type Mesh } from 'meshwork';
export const mesh: Mesh = createMesh({ services: { a: { discovery: { static: ['127.0.0.1:8081'] } } } });
`,
    );
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'nodenext',
          moduleResolution: 'nodenext',
          strict: true,
          noEmit: true,
          // As most projects have it; the .d.ts files are still what every use is checked against.
          skipLibCheck: true,
          // @types/node from the repository (a real user has their own).
          typeRoots: [join(ROOT, 'node_modules/@types')],
          types: ['node'],
        },
        files: ['use.ts', 'use-cjs.cts'],
      }),
    );
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
    const r = await run(process.execPath, [tsc, '-p', project], { cwd: project, timeout: 60_000 }).catch(
      (e: { stdout?: string; stderr?: string }) => ({
        stdout: `${e.stdout ?? ''}${e.stderr ?? ''}`,
        failed: true,
      }),
    );
    expect('failed' in r ? r.stdout : '').toBe('');
  });

  it('is small: the tarball is under 1 MB', () => {
    expect(statSync(tarball).size).toBeLessThan(1024 * 1024);
    expect(readdirSync(dir)).toContain(tarball.split('/').pop());
  });
});
