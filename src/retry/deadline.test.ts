import { describe, expect, it } from 'vitest';
import { DEADLINE_HEADER, deadlineFromHeaders, setDeadlineHeader } from './deadline.ts';

describe('deadline header', () => {
  it('round-trips the time left', () => {
    const h: Record<string, string> = {};
    setDeadlineHeader(h, 1234.7);
    expect(h[DEADLINE_HEADER]).toBe('1234');
    expect(deadlineFromHeaders(h, 10_000)).toBe(11_234);
    setDeadlineHeader(h, -5);
    expect(h[DEADLINE_HEADER]).toBe('0');
  });

  it('ignores absent, malformed or absurd values', () => {
    expect(deadlineFromHeaders({}, 0)).toBeUndefined();
    expect(deadlineFromHeaders({ [DEADLINE_HEADER]: 'soon' }, 0)).toBeUndefined();
    expect(deadlineFromHeaders({ [DEADLINE_HEADER]: '-1' }, 0)).toBeUndefined();
    expect(deadlineFromHeaders({ [DEADLINE_HEADER]: '999999999' }, 0)).toBeUndefined();
    expect(deadlineFromHeaders({ [DEADLINE_HEADER]: ['50', '70'] }, 1)).toBe(51);
  });
});

describe('deadline header: the edges', () => {
  it('takes surrounding spaces and up to a day; more than a day, or a number glued to text, is absent', () => {
    expect(deadlineFromHeaders({ [DEADLINE_HEADER]: ' 250 ' }, 0)).toBe(250);
    expect(deadlineFromHeaders({ [DEADLINE_HEADER]: '86400000' }, 0)).toBe(86_400_000);
    expect(deadlineFromHeaders({ [DEADLINE_HEADER]: '86400001' }, 0)).toBeUndefined();
    expect(deadlineFromHeaders({ [DEADLINE_HEADER]: '12ms' }, 0)).toBeUndefined();
    expect(deadlineFromHeaders({ [DEADLINE_HEADER]: 'x12' }, 0)).toBeUndefined();
    expect(deadlineFromHeaders({ [DEADLINE_HEADER]: '1234567890' }, 0)).toBeUndefined();
    expect(deadlineFromHeaders({ [DEADLINE_HEADER]: '' }, 0)).toBeUndefined();
    expect(deadlineFromHeaders({ [DEADLINE_HEADER]: [] as string[] }, 0)).toBeUndefined();
  });
});
