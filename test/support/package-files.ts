import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

let cached: string[] | undefined;

/** The files `npm pack` puts in the tarball (`--ignore-scripts`: nothing is built or changed). */
export function packagedFiles(): string[] {
  cached ??=
    (
      JSON.parse(
        execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
          cwd: ROOT,
          encoding: 'utf8',
          maxBuffer: 16 * 1024 * 1024,
          stdio: ['ignore', 'pipe', 'ignore'],
        }),
      ) as { files: { path: string }[] }[]
    )[0]?.files.map((f) => f.path) ?? [];
  return cached;
}

/** README.md and docs/**.md as they ship. */
export function packagedDocs(): string[] {
  return packagedFiles().filter((f) => f === 'README.md' || (f.startsWith('docs/') && f.endsWith('.md')));
}
