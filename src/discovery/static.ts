import { parseHostPort } from '../config/address.ts';
import type { DiscoveryProvider, DiscoverySink, EndpointSpec } from './types.ts';

export type StaticEntry =
  | string
  | { address: string; labels?: Record<string, string>; weight?: number; zone?: string };

/** Turns one static entry (already validated by the schema) into an EndpointSpec. */
export function staticSpec(entry: StaticEntry): EndpointSpec {
  const e = typeof entry === 'string' ? { address: entry } : entry;
  const hp = parseHostPort(e.address);
  if (!hp) throw new Error(`invalid address ${JSON.stringify(e.address)}`);
  return {
    address: e.address,
    host: hp.host,
    port: hp.port,
    labels: { ...(e.labels ?? {}) },
    weight: e.weight ?? 1,
    zone: e.zone,
  };
}

/** The static provider: a fixed list from config, inserted once. */
export class StaticDiscovery implements DiscoveryProvider {
  readonly kind = 'static';
  readonly #specs: EndpointSpec[];

  constructor(entries: readonly StaticEntry[]) {
    this.#specs = entries.map(staticSpec);
  }

  start(sink: DiscoverySink): void {
    sink.apply(this.#specs.map((endpoint) => ({ type: 'insert', endpoint })));
    sink.ready();
  }

  async close(): Promise<void> {}
}
