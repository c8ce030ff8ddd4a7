import { describe, expect, it } from 'vitest';
import { LiveSet } from './live-set.ts';

const members = <T>(s: LiveSet<T>) => {
  const out: T[] = [];
  s.forEach((x) => {
    out.push(x);
  });
  return out;
};

describe('LiveSet', () => {
  it('behaves as a set with one member inline and the rest spilled', () => {
    const s = new LiveSet<string>();
    expect(s.size).toBe(0);
    s.add('a');
    s.add('a');
    expect(s.size).toBe(1);
    expect(s.has('a')).toBe(true);
    s.add('b');
    s.add('c');
    s.add('b');
    expect(s.size).toBe(3);
    expect(members(s)).toEqual(['a', 'b', 'c']);
    expect(s.delete('a')).toBe(true);
    expect(s.delete('a')).toBe(false);
    expect(s.has('a')).toBe(false);
    expect(s.size).toBe(2);
    // The inline slot is free again: a new member takes it, without duplicating spilled ones.
    s.add('b');
    expect(s.size).toBe(2);
    s.add('d');
    expect(s.size).toBe(3);
    expect(new Set(members(s))).toEqual(new Set(['b', 'c', 'd']));
    s.clear();
    expect(s.size).toBe(0);
    expect(members(s)).toEqual([]);
  });

  it('lets the forEach callback delete and add members', () => {
    const s = new LiveSet<number>();
    for (const n of [1, 2, 3]) s.add(n);
    const seen: number[] = [];
    s.forEach((n) => {
      seen.push(n);
      s.delete(n);
      if (n === 1) s.add(9);
    });
    expect(seen).toEqual([1, 2, 3]);
    expect(members(s)).toEqual([9]);
  });
});
