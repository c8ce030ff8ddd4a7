import { cpSync } from 'node:fs';
import { defineConfig } from 'tsup';

export default defineConfig({
  // node-version is an entry of its own so that, with ESM code splitting (tsup: ESM only), dist/index.js imports
  // it (first) instead of inlining it: ESM evaluates a module's imports before its body, so an
  // inlined check would run after undici. The CJS build inlines it first, before any require().
  entry: { index: 'src/index.ts', 'node-version': 'src/node-version.ts' },
  format: ['esm', 'cjs'],
  dts: { entry: { index: 'src/index.ts' } },
  sourcemap: true,
  clean: true,
  target: 'node22',
  platform: 'node',
  // import.meta.url in the CJS build (optional packages are loaded lazily with createRequire).
  shims: true,
  // The Envoy API descriptor of the xDS client, with its sources' notices: read at runtime from
  // dist/xds/ when `xds` is configured (src/xds/codec.ts).
  onSuccess: async () => {
    cpSync('src/xds/proto', 'dist/xds', { recursive: true });
  },
});
