/**
 * DNS discovery with node:dns's Resolver (c-ares), optionally against given `servers`.
 *
 * - `{ host, port }`: A and/or AAAA records of `host`, each an endpoint on `port`.
 * - `{ srv }`: SRV records; each target is resolved to its A/AAAA addresses (a target that is
 *   already an IP is used as is). SRV weight becomes the endpoint weight (0 -> 1), and the SRV
 *   priority is the label `priority` (lower is preferred, as RFC 2782 says; the balancer or a
 *   subset may act on it). Labels `srv.target` name the target.
 *
 * Re-resolution follows the smallest TTL seen, clamped to [minRefresh, maxRefresh] (SRV answers
 * carry no TTL in node:dns, so their targets' TTLs and the bounds decide). NXDOMAIN/NODATA is an
 * answer ("no endpoints"); any other failure (timeout, SERVFAIL, REFUSED) is an outage: the last
 * endpoints stay and the next try backs off with jitter up to maxRefresh.
 */
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { formatHostPort } from '../config/address.ts';
import type { DnsConfig } from './schema.ts';
import { backoffDelay, ProviderTracker } from './tracker.ts';
import type { DiscoveryProvider, DiscoverySink, DiscoveryStatus, EndpointSpec } from './types.ts';

export const DNS_DEFAULTS = { minRefresh: 1_000, maxRefresh: 30_000, timeout: 2_000, tries: 2 } as const;

const EMPTY_CODES = new Set(['ENOTFOUND', 'ENODATA']);

interface Resolved {
  addresses: string[];
  ttl: number;
}

export class DnsDiscovery implements DiscoveryProvider {
  readonly kind = 'dns';
  readonly #cfg: DnsConfig;
  readonly #tracker = new ProviderTracker('dns');
  readonly #resolver: Resolver;
  readonly #min: number;
  readonly #max: number;
  readonly #random: () => number;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #failures = 0;
  #running: Promise<void> | undefined;

  constructor(cfg: DnsConfig, opts: { random?: () => number } = {}) {
    this.#cfg = cfg;
    this.#min = cfg.minRefresh ?? DNS_DEFAULTS.minRefresh;
    this.#max = Math.max(this.#min, cfg.maxRefresh ?? DNS_DEFAULTS.maxRefresh);
    this.#random = opts.random ?? Math.random;
    this.#resolver = new Resolver({
      timeout: cfg.timeout ?? DNS_DEFAULTS.timeout,
      tries: DNS_DEFAULTS.tries,
    });
    if (cfg.servers) this.#resolver.setServers(cfg.servers);
  }

  start(sink: DiscoverySink): void {
    this.#tracker.attach(sink);
    this.#tick();
  }

  status(): DiscoveryStatus {
    return this.#tracker.status();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#tracker.close();
    if (this.#timer) clearTimeout(this.#timer);
    this.#resolver.cancel();
    await this.#running?.catch(() => {});
  }

  #tick(): void {
    if (this.#closed) return;
    this.#running = this.#resolveOnce().then((delay) => {
      if (this.#closed) return;
      this.#timer = setTimeout(() => this.#tick(), delay);
      this.#timer.unref();
    });
  }

  /** One full resolution; returns the delay until the next. */
  async #resolveOnce(): Promise<number> {
    try {
      const { specs, ttl } = this.#cfg.srv
        ? await this.#resolveSrv(this.#cfg.srv)
        : await this.#resolveHost();
      if (this.#closed) return 0;
      this.#failures = 0;
      this.#tracker.publish(specs);
      return Math.min(this.#max, Math.max(this.#min, ttl * 1000));
    } catch (err) {
      if (this.#closed) return 0;
      const name = this.#cfg.srv ?? this.#cfg.host;
      const e = err as NodeJS.ErrnoException;
      this.#tracker.error(new Error(`dns ${name}: ${e.code ?? ''} ${e.message}`.trim()));
      return Math.min(this.#max, backoffDelay(this.#failures++, this.#min, this.#max, this.#random));
    }
  }

  async #resolveHost(): Promise<{ specs: EndpointSpec[]; ttl: number }> {
    const host = this.#cfg.host as string;
    const port = this.#cfg.port as number;
    const r = await this.#addresses(host, this.#cfg.family ?? 'any');
    return { specs: r.addresses.map((ip) => spec(ip, port, 1, {})), ttl: r.ttl };
  }

  async #resolveSrv(name: string): Promise<{ specs: EndpointSpec[]; ttl: number }> {
    let records: Awaited<ReturnType<Resolver['resolveSrv']>>;
    try {
      records = await this.#resolver.resolveSrv(name);
    } catch (err) {
      if (EMPTY_CODES.has((err as NodeJS.ErrnoException).code ?? ''))
        return { specs: [], ttl: this.#min / 1000 };
      throw err;
    }
    let ttl = this.#max / 1000;
    const specs: EndpointSpec[] = [];
    const targets = await Promise.all(
      records.map(async (rec) => {
        if (!rec.name || !Number.isInteger(rec.port) || rec.port < 1 || rec.port > 65535) {
          this.#tracker.skipped(
            `dns: SRV record ${JSON.stringify(rec.name)} port ${rec.port} is not usable`,
            rec,
          );
          return undefined;
        }
        if (rec.name === '.') return undefined; // "service not available here" (RFC 2782)
        return { rec, resolved: await this.#addresses(rec.name, 'any') };
      }),
    );
    for (const t of targets) {
      if (!t) continue;
      ttl = Math.min(ttl, t.resolved.ttl);
      if (t.resolved.addresses.length === 0) {
        this.#tracker.skipped(`dns: SRV target ${t.rec.name} has no address`, t.rec);
        continue;
      }
      for (const ip of t.resolved.addresses)
        specs.push(
          spec(ip, t.rec.port, t.rec.weight > 0 ? t.rec.weight : 1, {
            priority: String(t.rec.priority),
            'srv.target': t.rec.name,
          }),
        );
    }
    return { specs, ttl };
  }

  /** A and/or AAAA of a name (an IP literal resolves to itself). NXDOMAIN/NODATA -> []. */
  async #addresses(name: string, family: 'any' | 'ipv4' | 'ipv6'): Promise<Resolved> {
    if (isIP(name)) return { addresses: [name], ttl: this.#max / 1000 };
    const host = name.endsWith('.') ? name.slice(0, -1) : name;
    const lookups: Promise<{ address: string; ttl: number }[]>[] = [];
    const empty = (err: unknown) => {
      if (EMPTY_CODES.has((err as NodeJS.ErrnoException).code ?? '')) return [];
      throw err;
    };
    if (family !== 'ipv6') lookups.push(this.#resolver.resolve4(host, { ttl: true }).catch(empty));
    if (family !== 'ipv4') lookups.push(this.#resolver.resolve6(host, { ttl: true }).catch(empty));
    const all = (await Promise.all(lookups)).flat();
    const ttl = all.length ? Math.min(...all.map((a) => a.ttl)) : this.#min / 1000;
    return { addresses: [...new Set(all.map((a) => a.address))], ttl };
  }
}

function spec(ip: string, port: number, weight: number, labels: Record<string, string>): EndpointSpec {
  return { address: formatHostPort(ip, port), host: ip, port, labels, weight };
}
