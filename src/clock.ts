/** A monotonic clock in milliseconds (performance.now() or a fake clock in tests). */
export type Clock = () => number;
