/**
 * A set for the attempts of one request that are still running: almost always one, two or
 * three only with hedging or while a retried answer is discarded. The first member lives in a
 * field and a Set is made only for more, because a Set costs ~150 bytes and the retry layer
 * holds one per request (see bench/README.md on what each request allocates).
 * Iteration order: the inline member first, then the others in insertion order.
 */
export class LiveSet<T> {
  #one: T | undefined;
  #more: Set<T> | undefined;

  get size(): number {
    return (this.#one === undefined ? 0 : 1) + (this.#more?.size ?? 0);
  }

  has(x: T): boolean {
    return this.#one === x || (this.#more?.has(x) ?? false);
  }

  add(x: T): void {
    if (this.has(x)) return;
    if (this.#one === undefined) {
      this.#one = x;
      return;
    }
    this.#more ??= new Set<T>();
    this.#more.add(x);
  }

  delete(x: T): boolean {
    if (this.#one === x) {
      this.#one = undefined;
      return true;
    }
    return this.#more?.delete(x) ?? false;
  }

  clear(): void {
    this.#one = undefined;
    this.#more?.clear();
  }

  /** A copy of the members, so the callback may change the set. */
  forEach(fn: (x: T) => void): void {
    const one = this.#one;
    const more = this.#more && this.#more.size > 0 ? [...this.#more] : undefined;
    if (one !== undefined) fn(one);
    if (more) for (const x of more) fn(x);
  }
}
