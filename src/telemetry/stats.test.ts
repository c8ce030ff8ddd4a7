import { describe, expect, it } from 'vitest';
import { bucketUpperMs, RollingWindow, ServiceStats } from './stats.ts';

describe('the admin page’s rolling minute', () => {
  it('counts requests, failures and retries, per second over the window', () => {
    const w = new RollingWindow(0);
    for (let i = 0; i < 100; i++) w.record(i * 100, 20, i % 10 === 0); // 10 s, 10 per second, 10% failed
    w.retry(5_000);
    w.retry(9_000);
    const s = w.summary(10_000);
    expect(s.requests).toBe(100);
    expect(s.failures).toBe(10);
    expect(s.successRate).toBe(0.9);
    expect(s.retries).toBe(2);
    expect(s.rps).toBe(10); // over the 10 s the window has existed
    expect(s.seconds).toBe(10);
  });

  it('forgets what is older than a minute, slot by slot', () => {
    const w = new RollingWindow(0);
    w.record(500, 10, true);
    w.record(30_500, 10, false);
    expect(w.summary(59_900).requests).toBe(2);
    expect(w.summary(60_500).requests).toBe(1); // second 0 has left the window
    // A slot is reused when its second comes round again: the old counts go.
    w.record(60_700, 10, false);
    const s = w.summary(61_000);
    expect(s.requests).toBe(2);
    expect(s.failures).toBe(0);
    expect(s.rps).toBeCloseTo(2 / 60, 2);
    expect(w.summary(200_000).requests).toBe(0);
    expect(w.summary(200_000).p99Ms).toBeUndefined();
    expect(w.summary(200_000).successRate).toBeUndefined();
  });

  it('p50 and p99 within a bucket (±25%) of the true quantiles', () => {
    const w = new RollingWindow(0);
    // 98 answers at 20 ms, 2 at 600 ms: p50 ≈ 20 ms, p99 ≈ 600 ms.
    for (let i = 0; i < 100; i++) w.record(1_000, i < 98 ? 20 : 600, false);
    const s = w.summary(1_000);
    expect(s.p50Ms).toBeGreaterThan(20 / 1.5);
    expect(s.p50Ms).toBeLessThanOrEqual(20 * 1.5);
    expect(s.p99Ms).toBeGreaterThan(600 / 1.5);
    expect(s.p99Ms).toBeLessThanOrEqual(600 * 1.5);
  });

  it('buckets grow by 1.5× from 0.5 ms; the last one is open-ended', () => {
    expect(bucketUpperMs(0)).toBe(0.5);
    expect(bucketUpperMs(1)).toBe(0.75);
    expect(bucketUpperMs(30)).toBe(Number.POSITIVE_INFINITY);
    const w = new RollingWindow(0);
    w.record(0, 10 * 60_000, false); // ten minutes: past the last bound
    expect(w.summary(0).p99Ms).toBe(Math.round(bucketUpperMs(29) * 100) / 100);
    w.record(0, 0, false);
    expect(w.summary(0).p50Ms).toBeLessThanOrEqual(0.5);
  });

  it('keeps the current run of failures', () => {
    const w = new RollingWindow(0);
    w.record(0, 1, true);
    w.record(0, 1, false);
    w.record(0, 1, true);
    w.record(0, 1, true);
    expect(w.summary(0).consecutiveFailures).toBe(2);
    w.record(0, 1, false);
    expect(w.summary(0).consecutiveFailures).toBe(0);
  });

  it('per service: requests, endpoints and each route’s split', () => {
    const stats = new ServiceStats();
    const ep1 = {};
    const ep2 = {};
    const route = {};
    expect(stats.requests(0)).toBeUndefined();
    for (let i = 0; i < 10; i++) stats.request(1_000, 5, false, route, i < 8 ? 0 : 1);
    stats.attempt(ep1, 1_000, 5, false);
    stats.attempt(ep2, 1_000, 5, true);
    stats.retry(1_000);
    expect(stats.requests(1_000)).toMatchObject({ requests: 10, retries: 1 });
    expect(stats.endpoint(ep1, 1_000)).toMatchObject({ requests: 1, successRate: 1 });
    expect(stats.endpoint(ep2, 1_000)).toMatchObject({ requests: 1, successRate: 0, consecutiveFailures: 1 });
    expect(stats.endpoint({}, 1_000)).toBeUndefined();
    expect(stats.route(route, 3, 1_000)).toEqual([8, 2, 0]);
    expect(stats.route({}, 2, 1_000)).toBeUndefined();
  });
});
