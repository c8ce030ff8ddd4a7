import { describe, expect, it } from 'vitest';
import { MeshTimeoutError, MeshworkConfigError, MeshworkError } from './errors.ts';

describe('MeshworkError across copies of the package', () => {
  it('instanceof works for errors made by another copy of the module', async () => {
    // A second instance of the module, as two versions of meshwork in one tree would load.
    // @ts-expect-error: the query gives a second instance of the module, which tsc cannot name
    const other = (await import('./errors.ts?copy')) as typeof import('./errors.ts');
    expect(other.MeshworkError).not.toBe(MeshworkError);
    const timeout = new other.MeshTimeoutError('svc', 5, 'per-try');
    expect(timeout).toBeInstanceOf(MeshworkError);
    expect(timeout).toBeInstanceOf(MeshTimeoutError);
    expect(timeout).not.toBeInstanceOf(MeshworkConfigError);
    expect(new MeshTimeoutError('svc', 5, 'request')).toBeInstanceOf(other.MeshTimeoutError);
    expect(new Error('plain')).not.toBeInstanceOf(MeshworkError);
    expect(Object.assign(new Error('x'), { name: 'MeshTimeoutError' })).not.toBeInstanceOf(MeshTimeoutError);
  });
});
