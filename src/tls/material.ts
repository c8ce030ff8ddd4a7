import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { dirname } from 'node:path';
import { createSecureContext } from 'node:tls';
import { MeshworkConfigError } from '../errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import { certificatesOfPem, pemOfSpiffeBundle } from './bundle.ts';

/** How long file events are gathered before the files are re-read (an editor or a Kubernetes
 * secret update writes several files; the cert and the key must be read as a pair). */
export const RELOAD_DEBOUNCE_MS = 100;
/** Files are also re-checked on this period, for filesystems where change events are not
 * delivered (NFS, some container mounts). */
export const RELOAD_POLL_MS = 30_000;

export interface MaterialField {
  /** Config path, for errors: `services.travels.trafficPolicy.tls.caCertificates`. */
  path: string;
  /** A PEM string or a path to a PEM file (with `format: 'spiffe-bundle'`: JSON or a path to it). */
  value: string;
  /**
   * A trust bundle, checked when read: `pem-bundle` must hold certificates that parse;
   * `spiffe-bundle` is a SPIFFE bundle (JWKS) whose X.509 authorities become the PEM.
   */
  format?: 'pem-bundle' | 'spiffe-bundle' | undefined;
}

/** `crl`: certificate revocation lists (PEM), checked against the peer's chain. */
export type Pem = { ca?: string; cert?: string; key?: string; crl?: string };

export function isPem(v: string): boolean {
  return v.includes('-----BEGIN');
}

/** True when a field's value is the material itself rather than a path. */
function inline(field: MaterialField): boolean {
  return field.format === 'spiffe-bundle' ? field.value.trimStart().startsWith('{') : isPem(field.value);
}

/** The value as an error shows it: a path whole, inline material shortened. */
function shown(field: MaterialField): string {
  const v = inline(field) && field.value.length > 60 ? `${field.value.slice(0, 57)}...` : field.value;
  return JSON.stringify(v);
}

function read(field: MaterialField): string {
  let text: string;
  if (inline(field)) text = field.value;
  else {
    try {
      text = readFileSync(field.value, 'utf8');
    } catch (err) {
      throw new MeshworkConfigError([
        { path: field.path, message: `${shown(field)} cannot be read (${(err as Error).message})` },
      ]);
    }
  }
  if (field.format === undefined) return text;
  try {
    if (field.format === 'spiffe-bundle') return pemOfSpiffeBundle(text);
    certificatesOfPem(text);
    return text;
  } catch (err) {
    throw new MeshworkConfigError([
      { path: field.path, message: `${shown(field)} ${(err as Error).message}` },
    ]);
  }
}

/**
 * A set of TLS files (ca, cert, key), each a PEM string or a watched file. A change is taken
 * only once the new set is valid as a whole (the key matches the cert, every PEM parses), so a
 * rotation caught half-written keeps the previous material until the next file event.
 */
export class TlsMaterial {
  readonly #fields: Partial<Record<keyof Pem, MaterialField>>;
  readonly #logger: Logger;
  readonly #listeners = new Set<(pem: Pem) => void>();
  readonly #watchers: FSWatcher[] = [];
  #timer: NodeJS.Timeout | undefined;
  #poll: NodeJS.Timeout | undefined;
  #current: Pem;
  /** Times new material was taken from the files. */
  rotations = 0;
  /** Reloads refused because the files were unreadable or invalid. */
  reloadErrors = 0;

  constructor(fields: Partial<Record<keyof Pem, MaterialField>>, logger: Logger) {
    this.#fields = fields;
    this.#logger = logger;
    this.#current = this.#load();
    const dirs = new Set<string>();
    for (const f of Object.values(fields)) if (f && !inline(f)) dirs.add(dirname(f.value));
    // Watch directories, not files: an atomic rename (or Kubernetes' `..data` symlink swap)
    // replaces the inode a file watch would follow.
    for (const dir of dirs) {
      try {
        const w = watch(dir, { persistent: false }, () => this.#schedule());
        w.on('error', () => {});
        this.#watchers.push(w);
      } catch (err) {
        this.#logger.warn({ dir, err: (err as Error).message }, 'cannot watch TLS files; polling only');
      }
    }
    if (dirs.size > 0) {
      this.#poll = setInterval(() => this.reload(), RELOAD_POLL_MS);
      this.#poll.unref();
    }
  }

  get pem(): Pem {
    return this.#current;
  }

  get watched(): boolean {
    return this.#watchers.length > 0 || this.#poll !== undefined;
  }

  onChange(fn: (pem: Pem) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  #schedule(): void {
    if (this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.reload();
    }, RELOAD_DEBOUNCE_MS);
    this.#timer.unref();
  }

  /** Re-reads the files now; returns true when new material was taken. */
  reload(): boolean {
    let next: Pem;
    try {
      next = this.#load();
    } catch (err) {
      this.reloadErrors++;
      const paths = Object.values(this.#fields).flatMap((f) => (f && !inline(f) ? [f.value] : []));
      this.#logger.warn(
        { err: (err as Error).message, files: paths },
        'TLS files changed but are not valid yet; keeping the previous ones',
      );
      return false;
    }
    if (
      next.ca === this.#current.ca &&
      next.cert === this.#current.cert &&
      next.key === this.#current.key &&
      next.crl === this.#current.crl
    )
      return false;
    this.#current = next;
    this.rotations++;
    this.#logger.info({ rotations: this.rotations }, 'TLS material rotated');
    for (const fn of this.#listeners) fn(next);
    return true;
  }

  #load(): Pem {
    const out: Pem = {};
    for (const k of ['ca', 'cert', 'key', 'crl'] as const) {
      const f = this.#fields[k];
      if (f) out[k] = read(f);
    }
    try {
      createSecureContext({ ca: out.ca, cert: out.cert, key: out.key, crl: out.crl });
    } catch (err) {
      const f = this.#fields.key ?? this.#fields.cert ?? this.#fields.ca ?? this.#fields.crl;
      throw new MeshworkConfigError([
        { path: f?.path ?? 'tls', message: `is not valid TLS material (${(err as Error).message})` },
      ]);
    }
    return out;
  }

  close(): void {
    clearTimeout(this.#timer);
    clearInterval(this.#poll);
    for (const w of this.#watchers) w.close();
    this.#watchers.length = 0;
    this.#listeners.clear();
  }
}
