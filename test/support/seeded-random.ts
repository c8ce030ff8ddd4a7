/** A small seeded PRNG (mulberry32) returning numbers in [0, 1), for reproducible statistical tests. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A tolerance for a binomial proportion: `k` standard deviations of the observed share
 * around `p` after `n` draws (k = 5 keeps a seeded test far from flaky yet still tight).
 */
export function binomialTolerance(p: number, n: number, k = 5): number {
  return k * Math.sqrt((p * (1 - p)) / n);
}
