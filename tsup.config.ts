import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node22',
  platform: 'node',
  // import.meta.url in the CJS build (src/discovery/etcd.ts loads etcd3 lazily with createRequire).
  shims: true,
});
