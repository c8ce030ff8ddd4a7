import { redactError } from '../telemetry/url.ts';
import type { DiscoveryChange, DiscoverySink, DiscoveryStatus, EndpointSpec } from './types.ts';
import { diffEndpoints } from './types.ts';

/**
 * The bookkeeping every watching provider shares: the last known endpoint set, the status the
 * snapshot shows, and the rules "diff a full listing into changes", "an error keeps the last
 * known endpoints" and "ready() once".
 */
export class ProviderTracker {
  readonly #kind: string;
  #sink: DiscoverySink | undefined;
  #current = new Map<string, EndpointSpec>();
  #ready = false;
  #status: DiscoveryStatus;
  /** Skip reasons reported since the last full listing, and during the one before it. */
  #skippedNow = new Set<string>();
  #skippedBefore = new Set<string>();

  constructor(kind: string) {
    this.#kind = kind;
    this.#status = { provider: kind, state: 'starting', updates: 0, errors: 0, skipped: 0 };
  }

  get kind(): string {
    return this.#kind;
  }

  attach(sink: DiscoverySink): void {
    this.#sink = sink;
  }

  get current(): ReadonlyMap<string, EndpointSpec> {
    return this.#current;
  }

  /** Replaces the whole set with a complete listing; emits only the difference. */
  publish(next: readonly EndpointSpec[]): DiscoveryChange[] {
    const unique = new Map<string, EndpointSpec>();
    for (const ep of next) unique.set(ep.address, ep);
    const changes = diffEndpoints(this.#current, [...unique.values()]);
    this.#current = unique;
    this.#skippedBefore = this.#skippedNow;
    this.#skippedNow = new Set();
    if (changes.length > 0) {
      this.#status.updates++;
      this.#status.lastUpdateAt = new Date().toISOString();
      this.#sink?.apply(changes);
    }
    if (this.#status.state !== 'closed') this.#status.state = 'ready';
    if (!this.#ready) {
      this.#ready = true;
      this.#sink?.ready();
    }
    return changes;
  }

  /** Applies incremental changes (etcd watch events). */
  applyChanges(changes: readonly DiscoveryChange[]): void {
    // Incremental events are each news: none of their skips is a repeat.
    this.#skippedBefore.clear();
    const effective: DiscoveryChange[] = [];
    for (const c of changes) {
      if (c.type === 'remove') {
        if (this.#current.delete(c.address)) effective.push(c);
      } else if (c.type === 'health') {
        if (this.#current.has(c.address)) effective.push(c);
      } else {
        const merged = diffEndpoints(new Map(this.#current), [c.endpoint]).filter((x) => x.type === 'insert');
        this.#current.set(c.endpoint.address, c.endpoint);
        effective.push(...merged);
      }
    }
    if (effective.length > 0) {
      this.#status.updates++;
      this.#status.lastUpdateAt = new Date().toISOString();
      this.#sink?.apply(effective);
    }
  }

  /**
   * The registry could not be read: report it, keep the last known endpoints. A URL quoted in the
   * message (a client's error about its registry address) has its userinfo redacted.
   */
  error(err: unknown): void {
    const e = redactError(err instanceof Error ? err : new Error(String(err)));
    this.#status.errors++;
    this.#status.lastError = e.message;
    if (this.#status.state !== 'closed') this.#status.state = this.#ready ? 'degraded' : 'starting';
    this.#sink?.error(e);
  }

  /** A registry read worked again after errors. */
  recovered(): void {
    if (this.#status.state === 'degraded') this.#status.state = 'ready';
  }

  /**
   * A malformed record. A polling provider re-reads the same bad record every round: a reason
   * already reported in the previous full listing is not reported (nor counted) again.
   */
  skipped(reason: string, record: unknown): void {
    this.#skippedNow.add(reason);
    if (this.#skippedBefore.has(reason)) return;
    this.#status.skipped++;
    this.#sink?.skipped(reason, record);
  }

  close(): void {
    this.#status.state = 'closed';
  }

  status(): DiscoveryStatus {
    return { ...this.#status };
  }
}

/**
 * A retry delay with "equal jitter": half fixed, half random, doubling per attempt up to `cap`.
 * attempt 0 is the first retry.
 */
export function backoffDelay(attempt: number, base: number, cap: number, random = Math.random): number {
  const exp = Math.min(cap, base * 2 ** Math.min(attempt, 30));
  return exp / 2 + random() * (exp / 2);
}
