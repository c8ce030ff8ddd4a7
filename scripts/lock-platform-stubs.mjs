// The npm registry reachable here lacks some other-platform builds of native optional
// dependencies (biome, rollup for darwin/win32/musl...). `npm install` then leaves them out of
// package-lock.json and `npm ci` refuses the lock as "out of sync". This script adds a lock
// entry for each missing optional platform package, with the os/cpu/libc its name states, so
// `npm ci` sees a complete lock and skips them on this platform as it would anyway.
// It runs before every `npm test` (pretest) and as `npm run lock:stubs`; it writes the lock only
// when an entry is missing (after an `npm install` that changed dependencies: commit the result).
// Not an install script: meshwork's package.json has none, so consumers' installs run nothing.
import { readFileSync, writeFileSync } from 'node:fs';

const file = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(file, 'utf8'));
const pkgs = lock.packages;
const OS = [
  'android',
  'darwin',
  'freebsd',
  'linux',
  'openbsd',
  'openharmony',
  'sunos',
  'win32',
  'aix',
  'netbsd',
];
const CPU = {
  x64: 'x64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: 'ia32',
  loong64: 'loong64',
  ppc64: 'ppc64',
  riscv64: 'riscv64',
  s390x: 's390x',
};
let added = 0;

for (const [path, meta] of Object.entries(pkgs)) {
  for (const [name, range] of Object.entries(meta.optionalDependencies ?? {})) {
    const key = `node_modules/${name}`;
    if (pkgs[key] || pkgs[`${path}/node_modules/${name}`]) continue;
    const parts = name.split('/').pop().split('-');
    const os = parts.find((p) => OS.includes(p));
    const cpu = parts.map((p) => CPU[p]).find(Boolean);
    if (!os || !cpu) {
      console.warn(`skipped ${name}: cannot tell its platform from its name`);
      continue;
    }
    const entry = {
      version: String(range).replace(/^[\^~=]/, ''),
      dev: meta.dev || undefined,
      optional: true,
      os: [os],
      cpu: [cpu],
    };
    if (os === 'linux') entry.libc = [parts.some((p) => p.startsWith('musl')) ? 'musl' : 'glibc'];
    pkgs[key] = entry;
    added++;
  }
}
if (added > 0) {
  writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
  console.log(`lock-platform-stubs: added ${added} platform entries to package-lock.json (commit them)`);
}
