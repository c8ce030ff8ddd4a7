/**
 * Usage: what each application used, per metric and calendar window (minute, hour, day, month,
 * UTC), as 3scale reports it. This process counts as requests are admitted; with a Redis store
 * the counts are reported in batches (one script call per interval, never per request) and the
 * answer carries the totals over every process, shown next to this process's own counts in
 * mesh.snapshot() and on the admin page.
 */
import { encodeKeyPart } from './keys.ts';
import type { UsagePeriod } from './lua.ts';
import type { UsageReply } from './redis-store.ts';

/** Rows kept; beyond, new applications are counted under `(other)`. */
export const MAX_USAGE_ROWS = 1_000;
const OTHER = '(other)';
const PERIODS: readonly UsagePeriod[] = ['minute', 'hour', 'day', 'month'];

export interface UsageCounts {
  minute: number;
  hour: number;
  day: number;
  month: number;
}

export interface UsageSnapshot {
  /** `inbound` (mesh.inbound()) or the service called. */
  scope: string;
  application: string;
  /** The plan last seen for the application (plans only). */
  plan?: string | undefined;
  /** A plan metric (`hits`…), or `policy:<name>` for a policy's key. */
  metric: string;
  /** This process, current windows. */
  used: UsageCounts;
  /** Requests this process refused for this row (since it started). */
  refused: number;
  /** Every process sharing the store, as of the last report (Redis store only). */
  total?: UsageCounts | undefined;
}

/** One usage row (application × metric in a scope); counters keep theirs to skip the lookup. */
export interface UsageRow {
  scope: string;
  app: string;
  plan: string | undefined;
  metric: string;
  field: string;
  starts: number[];
  counts: number[];
  refused: number;
  /** Counted and not reported yet. */
  pending: number;
  total: number[] | undefined;
  totalStarts: number[] | undefined;
  /** Wall ms when the minute window ends (the rows' windows roll then). */
  rollAt: number;
  /** Wall ms of the last report that carried this row. */
  reportedAt: number;
  /** OpenTelemetry attributes of this row (plans only). */
  attrs: Record<string, string> | undefined;
}
type Row = UsageRow;

function startOf(p: number, wall: number): number {
  if (p === 0) return wall - (wall % 60_000);
  if (p === 1) return wall - (wall % 3_600_000);
  if (p === 2) return wall - (wall % 86_400_000);
  const d = new Date(wall);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

export class UsageBook {
  readonly #rows = new Map<string, Row>();
  readonly #wall: () => number;

  constructor(wall: () => number) {
    this.#wall = wall;
  }

  get size(): number {
    return this.#rows.size;
  }

  /** The row of `app` × `metric` in `scope` (created on first use; `(other)` beyond the bound). */
  row(scope: string, app: string, metric: string, plan: string | undefined): Row {
    return this.#row(scope, app, metric, plan);
  }

  #row(scope: string, app: string, metric: string, plan: string | undefined): Row {
    const id = `${scope}\u0000${app}\u0000${metric}`;
    let r = this.#rows.get(id);
    if (r === undefined) {
      if (this.#rows.size >= MAX_USAGE_ROWS && app !== OTHER)
        return this.#row(scope, OTHER, metric, undefined);
      r = {
        scope,
        app,
        plan,
        metric,
        field: `${encodeKeyPart(scope)}|${app === OTHER ? '#other' : encodeKeyPart(app)}|${metric}`,
        starts: [0, 0, 0, 0],
        counts: [0, 0, 0, 0],
        refused: 0,
        pending: 0,
        total: undefined,
        totalStarts: undefined,
        rollAt: 0,
        reportedAt: 0,
        attrs:
          plan === undefined
            ? undefined
            : {
                'meshwork.ratelimit.scope': scope,
                'meshwork.ratelimit.application': app,
                'meshwork.ratelimit.metric': metric,
              },
      };
      this.#rows.set(id, r);
    } else if (plan !== undefined && r.plan !== plan) r.plan = plan;
    return r;
  }

  #roll(r: Row, wall: number): void {
    if (wall < r.rollAt) return;
    r.rollAt = startOf(0, wall) + 60_000;
    for (let p = 0; p < 4; p++) {
      const s = startOf(p, wall);
      if (r.starts[p] !== s) {
        r.starts[p] = s;
        r.counts[p] = 0;
      }
    }
  }

  add(scope: string, app: string, metric: string, delta: number, plan?: string): void {
    this.addTo(this.#row(scope, app, metric, plan), delta, this.#wall());
  }

  /** The hot path: `delta` more for a row already in hand. */
  addTo(r: Row, delta: number, wall: number): void {
    if (wall >= r.rollAt) this.#roll(r, wall);
    r.counts[0] = (r.counts[0] as number) + delta;
    r.counts[1] = (r.counts[1] as number) + delta;
    r.counts[2] = (r.counts[2] as number) + delta;
    r.counts[3] = (r.counts[3] as number) + delta;
    r.pending += delta;
  }

  refused(scope: string, app: string, metric: string, plan?: string): void {
    this.#row(scope, app, metric, plan).refused++;
  }

  /** Rows kept for a counter must follow a plan change (the row names the plan last seen). */
  notePlan(r: Row, plan: string | undefined): void {
    if (plan !== undefined && r.plan !== plan) r.plan = plan;
  }

  /**
   * Rows to report: those with counts not reported yet, and, every 2 s, the others used this
   * month (their totals move with the other processes' reports).
   */
  pending(): { rows: Row[]; fields: string[]; deltas: number[] } {
    const rows: Row[] = [];
    const wall = this.#wall();
    for (const r of this.#rows.values()) {
      this.#roll(r, wall);
      if (r.pending > 0 || ((r.counts[3] as number) > 0 && wall - r.reportedAt >= 2_000)) rows.push(r);
    }
    return { rows, fields: rows.map((r) => r.field), deltas: rows.map((r) => r.pending) };
  }

  /** The store took `deltas` of `rows` and answered the totals. */
  reported(batch: { rows: Row[]; deltas: number[] }, reply: UsageReply): void {
    const wall = this.#wall();
    batch.rows.forEach((r, i) => {
      r.pending -= batch.deltas[i] as number;
      r.reportedAt = wall;
      r.total = reply.totals[i];
      r.totalStarts = reply.windows;
    });
  }

  snapshot(): UsageSnapshot[] {
    const wall = this.#wall();
    const out: UsageSnapshot[] = [];
    for (const r of this.#rows.values()) {
      this.#roll(r, wall);
      const s: UsageSnapshot = {
        scope: r.scope,
        application: r.app,
        metric: r.metric,
        used: counts(r.counts),
        refused: r.refused,
      };
      if (r.plan !== undefined) s.plan = r.plan;
      if (r.total && r.totalStarts) {
        // A total from an earlier window than this process's current one is stale: 0 for that window.
        const t = r.total.map((v, p) =>
          (r.totalStarts?.[p] as number) >= (r.starts[p] as number) - 1_000 ? v : 0,
        );
        s.total = counts(t);
      }
      out.push(s);
    }
    out.sort(
      (a, b) =>
        a.scope.localeCompare(b.scope) ||
        a.application.localeCompare(b.application) ||
        a.metric.localeCompare(b.metric),
    );
    return out;
  }
}

function counts(c: readonly number[]): UsageCounts {
  return { minute: c[0] ?? 0, hour: c[1] ?? 0, day: c[2] ?? 0, month: c[3] ?? 0 };
}

export { PERIODS as USAGE_WINDOWS };
