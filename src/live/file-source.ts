/**
 * Watched config on disk: one config file (YAML or JSON), or a directory of Istio YAML.
 *
 * Both watch the DIRECTORY (fs.watch), not the file: an editor's or `mv`'s atomic rename
 * replaces the file's inode, and a Kubernetes ConfigMap volume swaps a `..data` symlink to a
 * new timestamped directory, so events arrive for `..data_tmp`/`..data`, never for the file name.
 * Any event in the directory schedules a check (debounced 50 ms); a poll every `pollInterval`
 * (500 ms) covers file systems where fs.watch misses events. A check stats the path (following
 * symlinks: a swapped ConfigMap shows a new inode) and reads it only when it changed. Timers are
 * unref'd; close() stops everything.
 */
import { type FSWatcher, readdirSync, readFileSync, statSync, watch } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parseConfigText } from '../config/load.ts';
import { fromIstio } from '../index.ts';
import type { IstioDirConfig } from './schema.ts';
import type { ConfigSource, SourceSink } from './source.ts';

export const WATCH_DEFAULTS = { pollInterval: 500, debounce: 50 } as const;

/** fs.watch on a directory plus a poll, calling one serialized check. */
class DirWatch {
  readonly #dir: string;
  readonly #pollMs: number;
  readonly #check: () => Promise<void>;
  #watcher: FSWatcher | undefined;
  #poll: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #running: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(dir: string, pollMs: number, check: () => Promise<void>) {
    this.#dir = dir;
    this.#pollMs = pollMs;
    this.#check = check;
  }

  start(): void {
    try {
      this.#watcher = watch(this.#dir, { persistent: false }, () => this.#schedule());
      this.#watcher.on('error', () => {
        // The directory went away or cannot be watched: the poll still covers it.
        this.#watcher?.close();
        this.#watcher = undefined;
      });
    } catch {
      // No fs.watch here (or no directory yet): polling alone.
    }
    this.#poll = setInterval(() => this.run(), this.#pollMs);
    this.#poll.unref();
  }

  #schedule(): void {
    if (this.#closed) return;
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => this.run(), WATCH_DEFAULTS.debounce);
    this.#debounce.unref();
  }

  run(): Promise<void> {
    this.#running = this.#running.then(() => (this.#closed ? undefined : this.#check())).catch(() => {});
    return this.#running;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#watcher?.close();
    this.#watcher = undefined;
    if (this.#poll) clearInterval(this.#poll);
    if (this.#debounce) clearTimeout(this.#debounce);
    await this.#running;
  }
}

/** What tells a file apart from its previous version without reading it (stat follows symlinks). */
async function signature(path: string): Promise<string> {
  const s = await stat(path);
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
}

function errorText(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}

/** The watched config file: MESHWORK_CONFIG or `liveConfig.file`. */
export class FileSource implements ConfigSource {
  readonly layer = 'file' as const;
  readonly label: string;
  readonly loaded: boolean;
  readonly path: string;
  readonly #watch: DirWatch;
  #sink: SourceSink | undefined;
  #signature: string | undefined;
  #text: string | undefined;

  /** `initialText`: what createMesh read, so the first check does not apply it again. */
  constructor(
    path: string,
    opts: { pollInterval?: number | undefined; initialText?: string | undefined } = {},
  ) {
    this.path = resolve(path);
    this.label = `file ${this.path}`;
    this.#text = opts.initialText;
    this.loaded = opts.initialText !== undefined;
    this.#watch = new DirWatch(dirname(this.path), opts.pollInterval ?? WATCH_DEFAULTS.pollInterval, () =>
      this.#check(),
    );
  }

  start(sink: SourceSink): void {
    this.#sink = sink;
    this.#watch.start();
    void this.#watch.run();
  }

  /** Checks the file now (tests and benches; the watcher does it by itself). */
  check(): Promise<void> {
    return this.#watch.run();
  }

  async #check(): Promise<void> {
    const sink = this.#sink;
    if (!sink) return;
    let sig: string;
    let text: string;
    try {
      sig = await signature(this.path);
      if (sig === this.#signature) return;
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      this.#signature = undefined;
      sink.unavailable(
        new Error(`${this.label} cannot be read (${errorText(err)}): the last good config keeps running`),
      );
      return;
    }
    this.#signature = sig;
    if (text === this.#text) return sink.recovered();
    this.#text = text;
    let doc: unknown;
    try {
      doc = parseConfigText(text, this.path, 'liveConfig.file');
    } catch (err) {
      sink.invalid(err as Error);
      return;
    }
    sink.doc(doc);
  }

  close(): Promise<void> {
    return this.#watch.close();
  }
}

const ISTIO_FILE = /\.(ya?ml|json)$/i;

/** Reads a directory of Istio YAML (sorted by name; dot files, as ConfigMap's `..data`, skipped). */
async function readIstioDir(dir: string): Promise<{ signature: string; read: () => Promise<string[]> }> {
  const names = (await readdir(dir)).filter((n) => !n.startsWith('.') && ISTIO_FILE.test(n)).sort();
  const sigs: string[] = [];
  const files: string[] = [];
  for (const n of names) {
    const p = join(dir, n);
    try {
      const s = await stat(p);
      if (!s.isFile()) continue;
      sigs.push(`${n}=${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`);
      files.push(p);
    } catch {
      // Gone between readdir and stat: the next check sees the directory as it is then.
    }
  }
  return { signature: sigs.join('\n'), read: () => Promise.all(files.map((f) => readFile(f, 'utf8'))) };
}

/** Converts the texts of an Istio directory (fromIstio), with the directory's options. */
export function convertIstio(
  texts: readonly string[],
  cfg: IstioDirConfig,
  warn: (m: string) => void,
): unknown {
  const result = fromIstio(texts, {
    strict: cfg.strict ?? true,
    ...(cfg.namespace !== undefined ? { namespace: cfg.namespace } : {}),
    ...(cfg.fqdn !== undefined ? { fqdn: cfg.fqdn } : {}),
    ...(cfg.workloadLabels !== undefined ? { workloadLabels: { ...cfg.workloadLabels } } : {}),
    warn,
  });
  return {
    services: result.services,
    ...(result.authorization ? { authorization: result.authorization } : {}),
  };
}

/** The watched directory of Istio YAML (`liveConfig.istio`). */
export class IstioDirSource implements ConfigSource {
  readonly layer = 'istio' as const;
  readonly label: string;
  readonly loaded: boolean;
  readonly dir: string;
  readonly #cfg: IstioDirConfig;
  readonly #watch: DirWatch;
  #sink: SourceSink | undefined;
  #signature: string | undefined;
  #texts: string | undefined;
  /** fromIstio's warnings for the last document (non-strict mode). */
  warnings: string[] = [];

  constructor(
    cfg: IstioDirConfig,
    opts: { pollInterval?: number | undefined; initialTexts?: readonly string[] } = {},
  ) {
    this.#cfg = cfg;
    this.dir = resolve(cfg.dir);
    this.label = `istio ${this.dir}`;
    this.#texts = opts.initialTexts?.join('\n---\n');
    this.loaded = opts.initialTexts !== undefined;
    this.#watch = new DirWatch(this.dir, opts.pollInterval ?? WATCH_DEFAULTS.pollInterval, () =>
      this.#check(),
    );
  }

  start(sink: SourceSink): void {
    this.#sink = sink;
    this.#watch.start();
    void this.#watch.run();
  }

  check(): Promise<void> {
    return this.#watch.run();
  }

  async #check(): Promise<void> {
    const sink = this.#sink;
    if (!sink) return;
    let texts: string[];
    try {
      const listing = await readIstioDir(this.dir);
      if (listing.signature === this.#signature) return;
      texts = await listing.read();
      this.#signature = listing.signature;
    } catch (err) {
      this.#signature = undefined;
      sink.unavailable(
        new Error(`${this.label} cannot be read (${errorText(err)}): the last good config keeps running`),
      );
      return;
    }
    const joined = texts.join('\n---\n');
    if (joined === this.#texts) return sink.recovered();
    this.#texts = joined;
    const warnings: string[] = [];
    let doc: unknown;
    try {
      doc = convertIstio(texts, this.#cfg, (m) => warnings.push(m));
    } catch (err) {
      sink.invalid(err as Error);
      return;
    }
    this.warnings = warnings;
    sink.doc(doc);
  }

  close(): Promise<void> {
    return this.#watch.close();
  }
}

/** createMesh's synchronous first read of an Istio directory (same rules as the watcher). */
export function readIstioDirSync(cfg: IstioDirConfig): string[] {
  const dir = resolve(cfg.dir);
  const names = readdirSync(dir)
    .filter((n) => !n.startsWith('.') && ISTIO_FILE.test(n))
    .sort();
  return names
    .map((n) => join(dir, n))
    .filter((p) => statSync(p).isFile())
    .map((p) => readFileSync(p, 'utf8'));
}
