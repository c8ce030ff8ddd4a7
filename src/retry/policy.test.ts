import { describe, expect, it } from 'vitest';
import { fakeClock } from '../../test/support/layers.ts';
import type { BudgetSnapshot } from './budget.ts';
import { compileRetryPolicy, RETRY_DEFAULTS, ServiceRetry } from './policy.ts';
import { DEFAULT_RETRY_ON, parseRetryOn, type RetryOn } from './retry-on.ts';

const on = (s: string) => parseRetryOn(s) as RetryOn;

describe('compileRetryPolicy', () => {
  it('without configuration: Istio’s 2 retries on its default retryOn, Envoy’s backoff, no timeouts', () => {
    expect(compileRetryPolicy({})).toEqual({
      attempts: 2,
      retryOn: on(DEFAULT_RETRY_ON),
      perTryTimeoutMs: undefined,
      timeoutMs: undefined,
      retryNonIdempotent: false,
      retryAfterMaxMs: 2_000,
      backoffBaseMs: 25,
      backoffMaxMs: 250,
      avoidTried: true,
      hedge: undefined,
    });
    expect(RETRY_DEFAULTS).toEqual({ attempts: 2, retryAfterMaxMs: 2_000, hedgeMaxExtraLoad: 0.05 });
  });

  it('takes every retries field; the backoff cap is 10 × the base; a hedge gets the default extra load', () => {
    expect(
      compileRetryPolicy({
        retries: {
          attempts: 4,
          perTryTimeout: 150,
          retryOn: on('5xx'),
          retryNonIdempotent: true,
          retryAfterMax: 7_000,
          backoff: 40,
          retryIgnorePreviousHosts: false,
          hedge: { delay: 30 },
        },
        timeout: 900,
      }),
    ).toEqual({
      attempts: 4,
      retryOn: on('5xx'),
      perTryTimeoutMs: 150,
      timeoutMs: 900,
      retryNonIdempotent: true,
      retryAfterMaxMs: 7_000,
      backoffBaseMs: 40,
      backoffMaxMs: 400,
      avoidTried: false,
      hedge: { delayMs: 30, maxExtraLoad: 0.05 },
    });
    expect(compileRetryPolicy({ retries: { hedge: { delay: 30, maxExtraLoad: 0.2 } } }).hedge).toEqual({
      delayMs: 30,
      maxExtraLoad: 0.2,
    });
    expect(compileRetryPolicy({ retries: { retryIgnorePreviousHosts: true } }).avoidTried).toBe(true);
  });

  it('a zero timeout or perTryTimeout means none (Istio)', () => {
    const p = compileRetryPolicy({ retries: { perTryTimeout: 0 }, timeout: 0 });
    expect(p.perTryTimeoutMs).toBeUndefined();
    expect(p.timeoutMs).toBeUndefined();
  });
});

describe('ServiceRetry', () => {
  it('maxRetries is connectionPool.http.maxRetries, unbounded by default, and is the cap without a retryBudget', () => {
    const clock = fakeClock();
    expect(new ServiceRetry({}, clock).maxRetries).toBe(Number.POSITIVE_INFINITY);
    const s = new ServiceRetry({ trafficPolicy: { connectionPool: { http: { maxRetries: 7 } } } }, clock);
    expect(s.maxRetries).toBe(7);
    expect(s.retryCap()).toBe(7);
  });

  it('trafficPolicy.retryBudget (Envoy): percent of active requests, at least minRetryConcurrency, at most maxRetries', () => {
    const clock = fakeClock();
    const s = new ServiceRetry({ trafficPolicy: { retryBudget: {} } }, clock);
    s.active = 100;
    expect(s.retryCap()).toBe(20); // 20% by default
    s.active = 10;
    expect(s.retryCap()).toBe(3); // minRetryConcurrency 3 by default
    const t = new ServiceRetry(
      {
        trafficPolicy: {
          retryBudget: { percent: 50, minRetryConcurrency: 1 },
          connectionPool: { http: { maxRetries: 30 } },
        },
      },
      clock,
    );
    t.active = 5;
    expect(t.retryCap()).toBe(2);
    t.active = 1;
    expect(t.retryCap()).toBe(1);
    t.active = 100;
    expect(t.retryCap()).toBe(30);
  });

  it('with budgetInterval, the requests are those started over the last interval (a sliding estimate)', () => {
    const clock = fakeClock(0);
    const s = new ServiceRetry({ trafficPolicy: { retryBudget: { budgetInterval: 1_000 } } }, clock);
    for (let i = 0; i < 50; i++) s.noteStarted();
    clock.now = 500;
    expect(s.retryCap()).toBe(10); // 20% of 50
    clock.now = 1_000; // a new interval: the previous one's 50 weigh fully at its start
    expect(s.retryCap()).toBe(10);
    clock.now = 1_500; // half of them
    expect(s.retryCap()).toBe(5);
    for (let i = 0; i < 40; i++) s.noteStarted();
    expect(s.retryCap()).toBe(13); // 40 + 25
    clock.now = 3_600; // more than two intervals later: nothing left of either
    expect(s.retryCap()).toBe(3);
    s.active = 40;
    expect(s.retryCap()).toBe(8); // the requests active now count when more
  });

  it('without budgetInterval, or without a retryBudget, starting a request counts nothing', () => {
    const clock = fakeClock(0);
    const s = new ServiceRetry(
      { trafficPolicy: { retryBudget: { percent: 100, minRetryConcurrency: 0 } } },
      clock,
    );
    for (let i = 0; i < 10; i++) s.noteStarted();
    expect(s.retryCap()).toBe(0);
    const t = new ServiceRetry({}, clock);
    t.noteStarted();
    expect(t.retryCap()).toBe(Number.POSITIVE_INFINITY);
  });

  it('active is shared through reuse.counter', () => {
    const counter = { active: 4 };
    const s = new ServiceRetry({}, fakeClock(), undefined, { counter });
    expect(s.active).toBe(4);
    s.active++;
    expect(counter.active).toBe(5);
  });

  it('the retry budget: Linkerd’s defaults, configurable, off with enabled: false, and it reports exhaustion', () => {
    const clock = fakeClock();
    const dflt = new ServiceRetry({}, clock).budget?.snapshot();
    expect(dflt).toMatchObject({ retryPercent: 20, minRetriesPerSecond: 10, ttlMs: 10_000 });
    expect(new ServiceRetry({ retryBudget: { enabled: false } }, clock).budget).toBeUndefined();
    const reports: BudgetSnapshot[] = [];
    const s = new ServiceRetry(
      { retryBudget: { retryPercent: 0, minRetriesPerSecond: 0.1, ttl: 20_000 } },
      clock,
      (snap) => reports.push(snap),
    );
    expect(s.budget?.snapshot()).toMatchObject({ retryPercent: 0, minRetriesPerSecond: 0.1, ttlMs: 20_000 });
    expect(s.budget?.tryWithdraw()).toBe(true);
    expect(s.budget?.tryWithdraw()).toBe(true);
    expect(s.budget?.tryWithdraw()).toBe(false);
    expect(reports).toHaveLength(1);
    expect(reports[0]?.exhaustedCount).toBe(0);
  });

  it('a live update keeps the budget and hedge budget (with their history) only when their settings did not change', () => {
    const clock = fakeClock();
    const cfg = { retryBudget: { retryPercent: 10 }, retries: { hedge: { delay: 10, maxExtraLoad: 0.1 } } };
    const a = new ServiceRetry(cfg, clock);
    const same = new ServiceRetry({ ...cfg }, clock, undefined, { previous: a });
    expect(same.budget).toBe(a.budget);
    expect(same.hedgeBudget).toBe(a.hedgeBudget);
    const changed = new ServiceRetry(
      { retryBudget: { retryPercent: 11 }, retries: { hedge: { delay: 10, maxExtraLoad: 0.2 } } },
      clock,
      undefined,
      { previous: a },
    );
    expect(changed.budget).not.toBe(a.budget);
    expect(changed.budget).toBeDefined();
    expect(changed.hedgeBudget).not.toBe(a.hedgeBudget);
    expect(changed.hedgeBudget).toBeDefined();
    expect(
      new ServiceRetry({ retryBudget: { enabled: false } }, clock, undefined, { previous: a }).budget,
    ).toBe(undefined);
  });

  it('one hedge budget, sized by the service’s hedge or else the first route’s; none without a hedge', () => {
    const clock = fakeClock();
    expect(new ServiceRetry({}, clock).hedgeBudget).toBeUndefined();
    const own = new ServiceRetry({ retries: { hedge: { delay: 10, maxExtraLoad: 0.5 } } }, clock);
    expect(own.hedgeBudget?.snapshot()).toMatchObject({ retryPercent: 50, minRetriesPerSecond: 0.1 });
    const route = new ServiceRetry(
      { http: [{}, { retries: { hedge: { delay: 10, maxExtraLoad: 0.3 } } }] },
      clock,
    );
    expect(route.hedgeBudget?.snapshot()).toMatchObject({ retryPercent: 30 });
  });

  it('each http route has its policy: the route’s retries and timeout, else the service’s', () => {
    const s = new ServiceRetry(
      {
        retries: { attempts: 5 },
        timeout: 1_000,
        http: [{}, { retries: { attempts: 1 } }, { timeout: 50 }],
      },
      fakeClock(),
    );
    expect(s.routes.map((p) => [p.attempts, p.timeoutMs])).toEqual([
      [5, 1_000],
      [1, 1_000],
      [5, 50],
    ]);
    expect(new ServiceRetry({}, fakeClock()).routes).toEqual([]);
  });
});
