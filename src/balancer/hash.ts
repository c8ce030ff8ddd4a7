/**
 * A fast 32-bit string hash for consistent hashing: FNV-1a over UTF-16 code units, then
 * MurmurHash3's fmix32 finaliser for avalanche (FNV alone clusters close strings such as
 * "10.0.0.1:80_1" and "10.0.0.1:80_2"). `seed` gives independent hash functions (Maglev needs two).
 * Not for anything adversarial.
 */
export function hash32(s: string, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
