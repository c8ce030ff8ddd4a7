/**
 * meshwork service names for xDS resources. A listener (`reviews.default.svc.cluster.local:9080`)
 * and a cluster (`outbound|9080||reviews.default.svc.cluster.local`) become lowercase DNS-style
 * names (`reviews.default.svc.cluster.local-9080`, `outbound-9080-reviews.default.svc.cluster.local`)
 * that the snapshot and telemetry show. A name is stable while its resource is in use; one that
 * would collide with a configured service or another xDS name gets a short hash suffix.
 * Listener services are found by URL authority, never by host name (src/dispatcher.ts).
 */

export function sanitize(name: string): string {
  const labels = name
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, '-')
    .split('.')
    .map((l) => l.replace(/-+/g, '-').replace(/^-|-$/g, ''))
    .filter((l) => l.length > 0);
  return labels.length > 0 ? labels.join('.') : 'xds';
}

/** FNV-1a, 32 bits, as 6 hex digits (for suffixes). */
export function shortHash(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0').slice(0, 6);
}

export class ServiceNames {
  readonly #byKey = new Map<string, string>();
  readonly #taken = new Set<string>();

  /** `reserved`: the configured (static) services, whose names xDS never takes. */
  constructor(reserved: Iterable<string>) {
    for (const n of reserved) this.#taken.add(n);
  }

  listener(authority: string): string {
    return this.#name(`l:${authority}`, authority);
  }

  cluster(name: string): string {
    return this.#name(`c:${name}`, name);
  }

  /** Forgets the names of resources no longer in use (their services are gone). */
  retain(keep: ReadonlySet<string>): void {
    for (const [key, name] of this.#byKey)
      if (!keep.has(name)) {
        this.#byKey.delete(key);
        this.#taken.delete(name);
      }
  }

  #name(key: string, raw: string): string {
    const known = this.#byKey.get(key);
    if (known !== undefined) return known;
    const base = sanitize(raw);
    let name = base;
    for (let i = 0; this.#taken.has(name); i++) name = `${base}-${shortHash(`${key}#${i}`)}`;
    this.#byKey.set(key, name);
    this.#taken.add(name);
    return name;
  }
}
