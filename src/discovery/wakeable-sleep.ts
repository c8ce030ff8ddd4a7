/**
 * A wait a watch loop can be woken from: `sleep(ms)` resolves after `ms`, or at once when
 * `wake()` is called (the loop's owner is closing). The timer never holds the process open.
 */
export class WakeableSleep {
  #timer: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = () => {
        this.#wake = undefined;
        resolve();
      };
      this.#timer = setTimeout(() => this.#wake?.(), ms);
      this.#timer.unref();
    });
  }

  wake(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#wake?.();
  }
}
