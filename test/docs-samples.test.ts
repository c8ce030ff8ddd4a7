// Every ```ts / ```js code sample in README.md and docs/ (as they ship in the package) is checked
// against the built package, the way a user would meet it (docs/conventions.md, "Code samples"):
//   - a plain ```ts block is a complete module: it is type-checked against dist/*.d.ts, then run
//     against dist/ with every static discovery address pointed at a local HTTP server;
//   - a ```ts no-run block (it needs a real cluster, certificates, a config file, a port...) is
//     type-checked only, with PRELUDE declaring the names a fragment takes from the program
//     around it (`mesh`, `app`, `req`...).
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CodeBlock, codeBlocks } from './support/markdown.ts';
import { packagedDocs, ROOT } from './support/package-files.ts';

const exec = promisify(execFile);
const LANGS: Record<string, 'ts' | 'mjs'> = { ts: 'ts', typescript: 'ts', js: 'mjs', javascript: 'mjs' };

interface Sample extends CodeBlock {
  doc: string;
  id: string;
  run: boolean;
  ext: 'ts' | 'mjs';
}

const samples: Sample[] = packagedDocs().flatMap((doc) =>
  codeBlocks(readFileSync(join(ROOT, doc), 'utf8'))
    .filter((b) => LANGS[b.lang] !== undefined)
    .map((b) => ({
      ...b,
      doc,
      id: `${doc.replace(/[^a-z0-9]+/gi, '_')}_L${b.line}`,
      run: !b.tags.includes('no-run'),
      ext: LANGS[b.lang] as 'ts' | 'mjs',
    })),
);

/** What a no-run fragment may use without declaring it: the program around the fragment. */
const PRELUDE = `// Global declarations for the docs' no-run fragments (a script, not a module).
declare const mesh: import('meshwork').Mesh;
declare const createMesh: typeof import('meshwork').createMesh;
declare const fromIstio: typeof import('meshwork').fromIstio;
declare const meshHandler: typeof import('meshwork').meshHandler;
declare const meshFastify: typeof import('meshwork').meshFastify;
declare const signJws: typeof import('meshwork').signJws;
declare const startServerSpan: typeof import('meshwork').startServerSpan;
declare const isMeshworkError: typeof import('meshwork').isMeshworkError;
declare const http: typeof import('node:http');
declare const https: typeof import('node:https');
declare const readFileSync: typeof import('node:fs').readFileSync;
declare const context: typeof import('@opentelemetry/api').context;
declare const app: import('express').Express;
declare const fastify: import('fastify').FastifyInstance;
declare const req: import('node:http').IncomingMessage;
declare const res: import('node:http').ServerResponse;
declare function handler(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void;
declare const queue: { send(message: unknown): void };
declare const body: unknown;
declare const msg: { ctx: Record<string, string> | undefined };
declare function handle(message: unknown): Promise<void>;
declare const identity: NonNullable<import('meshwork').MeshConfigInput['identity']>;
declare const istio: import('meshwork').FromIstioResult;
declare const yaml: string;
declare const logger: { warn(message: string): void }; // the application's own (pino...)
declare const headers: Record<string, string>;
declare function config(v1Weight: number, v2Weight: number): import('meshwork').CreateMeshInput;
`;

/** Loaded with --import before a sample: 'meshwork' resolves to WRAPPER. */
const RUNNER = `import { registerHooks } from 'node:module';
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
const [sample, wrapper] = process.argv.slice(2);
const servers = await Promise.all(Array.from({ length: 8 }, () => new Promise((resolve) => {
  const s = createServer((req, res) => {
    req.resume();
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ ok: true, method: req.method, path: req.url }));
  });
  s.listen(0, '127.0.0.1', () => resolve(s));
})));
globalThis.__meshworkDocSamples = { upstreams: servers.map((s) => '127.0.0.1:' + s.address().port), meshes: [] };
registerHooks({
  resolve: (specifier, context, next) =>
    specifier === 'meshwork' ? { url: wrapper, shortCircuit: true } : next(specifier, context),
});
let code = 0;
try {
  await import(pathToFileURL(sample).href);
} catch (err) {
  console.error(err);
  code = 1;
}
await Promise.all(globalThis.__meshworkDocSamples.meshes.map((m) => m.close()));
for (const s of servers) { s.closeAllConnections(); s.close(); }
process.exit(code);
`;

/** The built package, with createMesh sending static discovery to the runner's local servers. */
const WRAPPER = (dist: string) => `import * as real from ${JSON.stringify(dist)};
export * from ${JSON.stringify(dist)};
const state = globalThis.__meshworkDocSamples;
const local = new Map();
const to = (address) => {
  if (!local.has(address)) local.set(address, state.upstreams[local.size % state.upstreams.length]);
  return local.get(address);
};
function remap(input) {
  if (!input || typeof input !== 'object' || !input.services) return input;
  const services = {};
  for (const [name, svc] of Object.entries(input.services)) {
    const list = svc?.discovery?.static;
    services[name] = Array.isArray(list)
      ? { ...svc, discovery: { ...svc.discovery, static: list.map((e) => typeof e === 'string' ? to(e) : { ...e, address: to(e.address) }) } }
      : svc;
  }
  return { ...input, services };
}
export function createMesh(input) {
  const mesh = real.createMesh(remap(input));
  state.meshes.push(mesh);
  const update = mesh.update.bind(mesh);
  mesh.update = (config) => update(remap(config));
  return mesh;
}
`;

const TSCONFIG = (files: string[]) =>
  JSON.stringify({
    compilerOptions: {
      target: 'ES2023',
      module: 'nodenext',
      moduleResolution: 'nodenext',
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      types: ['node'],
      allowJs: true,
      checkJs: false,
    },
    files,
  });

let dir: string;
const diagnostics = new Map<string, string[]>();
/** tsc skips its semantic checks when a program has a syntax error: every sample of it fails then. */
const syntaxErrors = new Map<string, string[]>();

async function typecheck(project: string): Promise<void> {
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
  const out = await exec(process.execPath, [tsc, '-p', project, '--pretty', 'false'], {
    cwd: ROOT,
    maxBuffer: 16 * 1024 * 1024,
    timeout: 120_000,
  }).then(
    () => '',
    (e: { stdout?: string; stderr?: string }) => `${e.stdout ?? ''}${e.stderr ?? ''}`,
  );
  for (const line of out.split('\n')) {
    const m = /^(.*?)\((\d+),\d+\): (error .*)$/.exec(line.trim());
    if (!m) continue;
    const file = join(project, '..', m[1] as string);
    const sample = samples.find((s) => file.endsWith(`${s.id}.${s.ext}`));
    const key = sample?.id ?? 'other';
    const where = sample ? `${sample.doc}:${sample.line + Number(m[2])}` : m[1];
    diagnostics.set(key, [...(diagnostics.get(key) ?? []), `${where}: ${m[3]}`]);
    if (/^error TS1\d{3}:/.test(m[3] as string))
      syntaxErrors.set(project, [...(syntaxErrors.get(project) ?? []), `${where}: ${m[3]}`]);
  }
}

beforeAll(async () => {
  // Inside the repository so that 'meshwork' resolves to this package (self-reference through
  // its exports map: dist/) and express, fastify, undici to its node_modules. .scratch/ is ignored
  // by git, Biome and tsc.
  mkdirSync(join(ROOT, '.scratch'), { recursive: true });
  dir = mkdtempSync(join(ROOT, '.scratch', 'doc-samples-'));
  for (const kind of ['run', 'no-run']) mkdirSync(join(dir, kind));
  for (const s of samples)
    writeFileSync(join(dir, s.run ? 'run' : 'no-run', `${s.id}.${s.ext}`), `${s.code}\nexport {};\n`);
  writeFileSync(join(dir, 'no-run', 'prelude.d.ts'), PRELUDE);
  writeFileSync(join(dir, 'runner.mjs'), RUNNER);
  writeFileSync(join(dir, 'wrapper.mjs'), WRAPPER(pathToFileURL(join(ROOT, 'dist/index.js')).href));
  for (const kind of ['run', 'no-run']) {
    const files = samples.filter((s) => s.run === (kind === 'run')).map((s) => `${s.id}.${s.ext}`);
    if (kind === 'no-run') files.push('prelude.d.ts');
    writeFileSync(join(dir, kind, 'tsconfig.json'), TSCONFIG(files));
  }
  // One after the other: two tsc at once would take both cores from the timing-sensitive tests.
  for (const k of ['run', 'no-run']) await typecheck(join(dir, k, 'tsconfig.json'));
}, 180_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('code samples in the docs', () => {
  it('are found (README.md and docs/)', () => {
    expect(samples.filter((s) => s.doc === 'README.md').length).toBeGreaterThan(0);
    expect(samples.length).toBeGreaterThan(20);
    expect(diagnostics.get('other') ?? []).toEqual([]);
  });

  for (const s of samples) {
    it(`${s.doc}:${s.line} type-checks${s.run ? '' : ' (no-run)'}`, () => {
      expect(diagnostics.get(s.id) ?? []).toEqual([]);
      const blocked = syntaxErrors.get(join(dir, s.run ? 'run' : 'no-run', 'tsconfig.json'));
      expect(blocked ?? [], 'not type-checked: a syntax error in another sample stops tsc').toEqual([]);
    });
    if (s.run)
      it(`${s.doc}:${s.line} runs against the built package`, async () => {
        const file = join(dir, 'run', `${s.id}.${s.ext}`);
        const env: NodeJS.ProcessEnv = { ...process.env };
        delete env.MESHWORK_CONFIG;
        delete env.MESHWORK_ZONE;
        const r = await exec(
          process.execPath,
          [join(dir, 'runner.mjs'), file, pathToFileURL(join(dir, 'wrapper.mjs')).href],
          { cwd: join(dir, 'run'), env, timeout: 30_000 },
        ).then(
          (o) => ({ code: 0, out: o.stdout + o.stderr }),
          (e: { code?: number; stdout?: string; stderr?: string; message: string }) => ({
            code: e.code ?? 1,
            out: `${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`,
          }),
        );
        expect(r.code, `${relative(ROOT, file)}\n${r.out}`).toBe(0);
      });
  }
});
