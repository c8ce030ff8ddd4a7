import { describe, expect, it } from 'vitest';
import { RetryBudget } from './budget.ts';

describe('RetryBudget', () => {
  it('allows minRetriesPerSecond × ttl plus retryPercent of requests', () => {
    let now = 0;
    const b = new RetryBudget({ retryPercent: 20, minRetriesPerSecond: 10, ttlMs: 10_000 }, () => now);
    for (let i = 0; i < 100; i++) b.deposit();
    let allowed = 0;
    for (let i = 0; i < 1000; i++) if (b.tryWithdraw()) allowed++;
    expect(allowed).toBe(100 + 20);
    const s = b.snapshot();
    expect(s.exhausted).toBe(true);
    expect(s.exhaustedCount).toBe(880);
    now = 5_000;
    expect(b.tryWithdraw()).toBe(false);
  });

  it('slides: the window forgets after ttl', () => {
    let now = 0;
    const b = new RetryBudget({ retryPercent: 0, minRetriesPerSecond: 1, ttlMs: 10_000 }, () => now);
    let n = 0;
    while (b.tryWithdraw()) n++;
    expect(n).toBe(10);
    now = 5_000;
    expect(b.tryWithdraw()).toBe(false);
    now = 10_500;
    expect(b.tryWithdraw()).toBe(true);
    expect(b.snapshot().exhausted).toBe(false);
    now = 100_000;
    expect(b.snapshot().retries).toBe(0);
  });

  it('reports exhaustion once per episode', () => {
    let now = 0;
    let calls = 0;
    const b = new RetryBudget(
      { retryPercent: 0, minRetriesPerSecond: 0.1, ttlMs: 10_000 },
      () => now,
      () => calls++,
    );
    expect(b.tryWithdraw()).toBe(true);
    expect(b.tryWithdraw()).toBe(false);
    expect(b.tryWithdraw()).toBe(false);
    expect(calls).toBe(1);
    now = 20_000;
    expect(b.tryWithdraw()).toBe(true);
    expect(b.tryWithdraw()).toBe(false);
    expect(calls).toBe(2);
  });

  it('with no free retries, the percentage alone bounds retries', () => {
    const b = new RetryBudget({ retryPercent: 20, minRetriesPerSecond: 0, ttlMs: 10_000 }, () => 0);
    expect(b.tryWithdraw()).toBe(false);
    for (let i = 0; i < 10; i++) b.deposit();
    expect(b.tryWithdraw()).toBe(true);
    expect(b.tryWithdraw()).toBe(true);
    expect(b.tryWithdraw()).toBe(false);
  });
});

describe('RetryBudget.deposit(now)', () => {
  it('counts the request in the window of the time given, without reading the clock', () => {
    let reads = 0;
    const b = new RetryBudget({ retryPercent: 100, minRetriesPerSecond: 0, ttlMs: 10_000 }, () => {
      reads++;
      return 0;
    });
    const before = reads;
    for (let i = 0; i < 5; i++) b.deposit(0);
    expect(reads).toBe(before);
    expect(b.snapshot().requests).toBe(5);
  });
});
