import type { DiscoveryChange, DiscoverySink, EndpointSpec } from '../../src/discovery/types.ts';

/** A DiscoverySink that records everything and keeps the resulting endpoint set. */
export class RecordingSink implements DiscoverySink {
  readonly batches: DiscoveryChange[][] = [];
  readonly errors: Error[] = [];
  readonly skips: { reason: string; record: unknown }[] = [];
  readonly endpoints = new Map<string, EndpointSpec>();
  /** Addresses marked unhealthy by a `health` change (and not removed since). */
  readonly unhealthy = new Set<string>();
  readyCount = 0;
  #listeners = new Set<() => void>();

  apply(changes: readonly DiscoveryChange[]): void {
    this.batches.push([...changes]);
    for (const c of changes) {
      if (c.type === 'insert') this.endpoints.set(c.endpoint.address, c.endpoint);
      else if (c.type === 'health') {
        if (c.healthy) this.unhealthy.delete(c.address);
        else this.unhealthy.add(c.address);
      } else {
        this.endpoints.delete(c.address);
        this.unhealthy.delete(c.address);
      }
    }
    this.#notify();
  }
  ready(): void {
    this.readyCount++;
    this.#notify();
  }
  error(err: Error): void {
    this.errors.push(err);
    this.#notify();
  }
  skipped(reason: string, record: unknown): void {
    this.skips.push({ reason, record });
    this.#notify();
  }

  addresses(): string[] {
    return [...this.endpoints.keys()].sort();
  }

  removes(): number {
    return this.batches.flat().filter((c) => c.type === 'remove').length;
  }

  /** Resolves when `predicate` holds (checked after every event), or rejects after `timeoutMs`. */
  waitFor(predicate: () => boolean, timeoutMs = 8_000, what = 'condition'): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!predicate()) return;
        cleanup();
        resolve();
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new Error(
            `timed out after ${timeoutMs}ms waiting for ${what}; endpoints=${JSON.stringify(this.addresses())} errors=${this.errors.map((e) => e.message).join(' | ')}`,
          ),
        );
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.#listeners.delete(check);
      };
      this.#listeners.add(check);
    });
  }

  #notify(): void {
    for (const l of [...this.#listeners]) l();
  }
}

/** Polls `predicate` every 20ms until it holds, or rejects after `timeoutMs`. */
export async function until(predicate: () => boolean, timeoutMs = 8_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
