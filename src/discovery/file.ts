/**
 * File discovery: a JSON or YAML file listing endpoints, re-read when it changes.
 *
 * Content: a list, or `{ endpoints: [...] }`; each entry is "host:port" or
 * `{ address, labels, weight, zone }` (the same shape as `static`). An invalid entry is skipped,
 * the rest applies. A file that is missing, empty or does not parse is an error: the last
 * endpoints stay (write `[]` to say "no endpoints").
 *
 * Watching: fs.watch on the parent directory (so an atomic rename-over, as editors and
 * ConfigMap/`mv` updates do, is seen), debounced 50ms, plus a poll every `pollInterval` (2s) for
 * file systems where fs.watch misses events (NFS, some container mounts). Both are unref'd.
 */
import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { FileConfig } from './schema.ts';
import { staticEndpoint } from './schema.ts';
import { staticSpec } from './static.ts';
import { ProviderTracker } from './tracker.ts';
import type { DiscoveryProvider, DiscoverySink, DiscoveryStatus, EndpointSpec } from './types.ts';

export const FILE_DEFAULTS = { pollInterval: 2_000, debounce: 50 } as const;

export class FileDiscovery implements DiscoveryProvider {
  readonly kind = 'file';
  readonly path: string;
  readonly #pollInterval: number;
  readonly #tracker = new ProviderTracker('file');
  #watcher: FSWatcher | undefined;
  #poll: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #closed = false;
  #lastText: string | undefined;
  #lastError: string | undefined;
  #reading: Promise<void> = Promise.resolve();

  constructor(cfg: FileConfig) {
    this.path = resolve(cfg.path);
    this.#pollInterval = cfg.pollInterval ?? FILE_DEFAULTS.pollInterval;
  }

  start(sink: DiscoverySink): void {
    this.#tracker.attach(sink);
    try {
      const name = basename(this.path);
      this.#watcher = watch(dirname(this.path), { persistent: false }, (_event, file) => {
        if (file === null || file === name || String(file) === name) this.#schedule();
      });
      this.#watcher.on('error', () => {
        // The directory went away or cannot be watched: the poll still covers it.
        this.#watcher?.close();
        this.#watcher = undefined;
      });
    } catch {
      // No fs.watch here (or no directory yet): polling alone.
    }
    this.#poll = setInterval(() => this.#read(), this.#pollInterval);
    this.#poll.unref();
    this.#read();
  }

  status(): DiscoveryStatus {
    return this.#tracker.status();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#tracker.close();
    this.#watcher?.close();
    this.#watcher = undefined;
    if (this.#poll) clearInterval(this.#poll);
    if (this.#debounce) clearTimeout(this.#debounce);
    await this.#reading;
  }

  #schedule(): void {
    if (this.#closed) return;
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => this.#read(), FILE_DEFAULTS.debounce);
    this.#debounce.unref();
  }

  #read(): void {
    this.#reading = this.#reading.then(() => this.#readOnce());
  }

  async #readOnce(): Promise<void> {
    if (this.#closed) return;
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      return this.#error(`cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (this.#closed || text === this.#lastText) return;
    if (text.trim() === '') return this.#error('the file is empty (write [] for no endpoints)');
    let doc: unknown;
    try {
      doc = parseYaml(text);
    } catch (err) {
      return this.#error(`does not parse as JSON or YAML: ${(err as Error).message.split('\n')[0]}`);
    }
    const list = Array.isArray(doc)
      ? doc
      : typeof doc === 'object' && doc !== null && Array.isArray((doc as { endpoints?: unknown }).endpoints)
        ? (doc as { endpoints: unknown[] }).endpoints
        : undefined;
    if (!list) return this.#error('expected a list of endpoints or { endpoints: [...] }');
    this.#lastText = text;
    this.#lastError = undefined;
    const specs: EndpointSpec[] = [];
    list.forEach((entry, i) => {
      const r = staticEndpoint.safeParse(entry);
      if (!r.success) {
        const issue = r.error.issues[0];
        this.#tracker.skipped(
          `file ${this.path}: entry ${i} ${issue?.path.length ? issue.path.join('.') + ' ' : ''}${issue?.message ?? 'is invalid'}`,
          entry,
        );
      } else specs.push(staticSpec(r.data));
    });
    this.#tracker.publish(specs);
  }

  #error(message: string): void {
    // The poll would repeat the same error every interval: report a problem once until it changes.
    if (message === this.#lastError) return;
    this.#lastError = message;
    this.#lastText = undefined;
    this.#tracker.error(new Error(`file ${this.path}: ${message}`));
  }
}
