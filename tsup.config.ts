import { cpSync } from 'node:fs';
import { defineConfig, type Options } from 'tsup';

type Plugin = NonNullable<Options['esbuildPlugins']>[number];

/**
 * The xDS client (src/xds/client.ts) is an entry of its own, loaded by `import('./client.ts')` in
 * src/xds/index.ts only when a config has `xds`: that import is kept as a real dynamic import of
 * dist/xds-client.{js,cjs}, so that neither build (CJS does not split) carries the client's code
 * when xDS is not used.
 */
const xdsClientApart: Plugin = {
  name: 'xds-client-apart',
  setup(build) {
    const ext = build.initialOptions.format === 'cjs' ? '.cjs' : '.js';
    build.onResolve({ filter: /^\.\/client\.ts$/ }, (args) =>
      args.importer.endsWith('src/xds/index.ts') ? { path: `./xds-client${ext}`, external: true } : undefined,
    );
  },
};

export default defineConfig({
  // node-version is an entry of its own so that, with ESM code splitting (tsup: ESM only), dist/index.js imports
  // it (first) instead of inlining it: ESM evaluates a module's imports before its body, so an
  // inlined check would run after undici. The CJS build inlines it first, before any require().
  entry: { index: 'src/index.ts', 'node-version': 'src/node-version.ts', 'xds-client': 'src/xds/client.ts' },
  esbuildPlugins: [xdsClientApart],
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
