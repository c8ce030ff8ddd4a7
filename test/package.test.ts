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

  it('error checks survive duplicate copies of the package (brand, not instanceof)', async () => {
    const cjs = require(PACKAGE);
    const fromCjs = new cjs.UnknownServiceError('x', []);
    // A different copy of the class: instanceof fails, the brand does not.
    const { UnknownServiceError } = await import('../src/index.ts');
    expect(fromCjs instanceof UnknownServiceError).toBe(false);
    expect(srcIsMeshworkError(fromCjs, 'MESHWORK_ERR_UNKNOWN_SERVICE')).toBe(true);
    expect(cjs.isMeshworkError(new UnknownServiceError('y', []))).toBe(true);
    expect(srcIsMeshworkError(new Error('plain'))).toBe(false);
    expect(srcIsMeshworkError({ code: 'MESHWORK_ERR_UNKNOWN_SERVICE' })).toBe(false);
  });
});
