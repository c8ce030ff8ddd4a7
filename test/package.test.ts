import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { isMeshworkError as srcIsMeshworkError } from '../src/index.ts';

// `npm test` builds dist/ with tsup before running vitest; these tests load the built
// package through its own name and exports map, as a user would.
const require = createRequire(import.meta.url);
// Through a variable, so `tsc --noEmit` does not need dist/ to exist.
const PACKAGE = 'meshwork';

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

  it('does not load etcd3 (gRPC, protobuf) until a service uses etcd discovery', () => {
    const script = `
      const { createRequire } = require('node:module');
      const loaded = () => Object.keys(require.cache).some((k) => k.includes('/node_modules/etcd3/'));
      const { createMesh } = require('meshwork');
      const before = loaded();
      const mesh = createMesh({ env: {}, services: { a: { discovery: { etcd: { hosts: ['127.0.0.1:1'] } } } } });
      console.log(JSON.stringify({ before, after: loaded() }));
      mesh.close();
    `;
    const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(JSON.parse(out.trim().split('\n').pop() as string)).toEqual({ before: false, after: true });
  });
});
