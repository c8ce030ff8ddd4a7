// Hand-written SVG charts for bench results (no chart library). One SVG per scenario: a legend,
// then one row per group (sub-scenario × concurrency) with three panels:
//   1. latency percentiles p50..p99.9, one line per system; x on a "nines" scale
//      (-log10(1 - p), so p90, p99, p99.9 are equally spaced), y on a log scale;
//   2. throughput (req/s) bars with the ratio to the baseline;
//   3. requests per CPU-second bars with the ratio to the baseline.
import { cellTitle, type RunResult } from './harness.ts';

const PALETTE = [
  '#1f77b4', // blue
  '#d62728', // red
  '#2ca02c', // green
  '#ff7f0e', // orange
  '#9467bd', // purple
  '#8c564b', // brown
  '#e377c2', // pink
  '#17becf', // cyan
  '#7f7f7f', // grey
  '#bcbd22', // olive
];

/** Fixed colours for the systems the suite knows, so a system has the same colour in every chart. */
const KNOWN = [
  'undici Pool',
  'mesh.dispatcher',
  'undici BalancedPool',
  'haproxy sidecar',
  'mesh.fetch',
  'undici fetch',
  'cockatiel + undici',
  'opossum + p-retry',
];

function colorOf(system: string, order: string[]): string {
  const k = KNOWN.indexOf(system);
  if (k >= 0) return PALETTE[k] as string;
  const i = order.indexOf(system);
  return PALETTE[(KNOWN.length + Math.max(0, i)) % PALETTE.length] as string;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function num(n: number, digits = 1): string {
  return Number.isFinite(n) ? Number(n.toFixed(digits)).toString() : '0';
}

function compact(n: number): string {
  if (!Number.isFinite(n)) return '-';
  if (n >= 10_000) return `${(n / 1000).toFixed(1)}k`;
  return n.toFixed(0);
}

function msLabel(v: number): string {
  if (v >= 1) return `${Number(v.toPrecision(3))}`;
  return `${Number(v.toPrecision(2))}`;
}

const nines = (p: number) => -Math.log10(1 - p / 100);

/** 1-2-5 ticks covering [lo, hi] (both > 0). */
function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)) - 1; e <= Math.ceil(Math.log10(hi)) + 1; e++) {
    for (const m of [1, 2, 5]) out.push(m * 10 ** e);
  }
  const below = out.filter((t) => t <= lo).pop() ?? lo;
  const above = out.find((t) => t >= hi) ?? hi;
  return out.filter((t) => t >= below && t <= above);
}

export interface ChartGroup {
  title: string;
  baseline: string | undefined;
  results: RunResult[];
}

const PANEL_H = 300;
const ROW_GAP = 40;
const LAT_W = 560;
const BAR_W = 420;
const GAP = 30;
const WIDTH = LAT_W + 2 * BAR_W + 2 * GAP + 40;

function latencyPanel(x0: number, y0: number, g: ChartGroup, order: string[]): string {
  const m = { l: 58, r: 12, t: 28, b: 42 };
  const w = LAT_W - m.l - m.r;
  const h = PANEL_H - m.t - m.b;
  const pts = g.results.map((r) => ({
    system: r.system,
    points: Object.entries(r.percentilesMs ?? {})
      .map(([k, v]) => [Number(k.slice(1)), v] as [number, number])
      .filter(([, v]) => Number.isFinite(v) && v > 0)
      .sort((a, b) => a[0] - b[0]),
  }));
  const all = pts.flatMap((s) => s.points.map(([, v]) => v));
  const parts: string[] = [];
  parts.push(`<text x="${x0 + m.l}" y="${y0 + 16}" class="pt">Latency percentiles (ms, log scale)</text>`);
  if (all.length === 0) {
    parts.push(`<text x="${x0 + m.l}" y="${y0 + m.t + 20}">no data</text>`);
    return parts.join('\n');
  }
  const ticks = logTicks(Math.min(...all), Math.max(...all));
  const lyLo = Math.log10(ticks[0] as number);
  const lyHi = Math.log10(ticks[ticks.length - 1] as number);
  const xLo = nines(50);
  const xHi = nines(99.9);
  const X = (p: number) => x0 + m.l + ((nines(p) - xLo) / (xHi - xLo)) * w;
  const Y = (v: number) => y0 + m.t + h - ((Math.log10(v) - lyLo) / (lyHi - lyLo || 1)) * h;
  parts.push(`<rect x="${x0 + m.l}" y="${y0 + m.t}" width="${w}" height="${h}" class="frame"/>`);
  for (const t of ticks) {
    const y = num(Y(t));
    parts.push(`<line x1="${x0 + m.l}" x2="${x0 + m.l + w}" y1="${y}" y2="${y}" class="grid"/>`);
    parts.push(`<text x="${x0 + m.l - 6}" y="${y}" class="yl">${msLabel(t)}</text>`);
  }
  for (const p of [50, 75, 90, 95, 99, 99.5, 99.9]) {
    const x = num(X(p));
    const major = p === 50 || p === 90 || p === 99 || p === 99.9;
    parts.push(
      `<line x1="${x}" x2="${x}" y1="${y0 + m.t}" y2="${y0 + m.t + h}" class="${major ? 'grid' : 'grid minor'}"/>`,
    );
    parts.push(`<text x="${x}" y="${y0 + m.t + h + 16}" class="xl">p${p}</text>`);
  }
  parts.push(`<text x="${x0 + m.l + w / 2}" y="${y0 + PANEL_H - 6}" class="xl">percentile</text>`);
  for (const s of pts) {
    if (s.points.length === 0) continue;
    const c = colorOf(s.system, order);
    const d = s.points.map(([p, v], i) => `${i === 0 ? 'M' : 'L'}${num(X(p))},${num(Y(v))}`).join(' ');
    const dash = s.system.startsWith('mesh')
      ? ''
      : s.system === 'haproxy sidecar'
        ? ' stroke-dasharray="7 4"'
        : '';
    parts.push(
      `<path d="${d}" fill="none" stroke="${c}" stroke-width="2"${dash}><title>${esc(s.system)}</title></path>`,
    );
    for (const [p, v] of s.points) {
      parts.push(
        `<circle cx="${num(X(p))}" cy="${num(Y(v))}" r="2.6" fill="${c}"><title>${esc(s.system)} p${p}: ${v.toFixed(3)} ms</title></circle>`,
      );
    }
  }
  return parts.join('\n');
}

function barPanel(
  x0: number,
  y0: number,
  g: ChartGroup,
  order: string[],
  title: string,
  value: (r: RunResult) => number,
): string {
  const m = { l: 150, r: 12, t: 28, b: 12 };
  const w = BAR_W - m.l - m.r;
  const h = PANEL_H - m.t - m.b;
  const parts: string[] = [`<text x="${x0 + 8}" y="${y0 + 16}" class="pt">${esc(title)}</text>`];
  const rows = g.results;
  const base = rows.find((r) => r.system === g.baseline);
  const max = Math.max(1, ...rows.map(value).filter(Number.isFinite));
  const scale = (w - 96) / max; // room on the right for the value label
  const slot = h / Math.max(rows.length, 1);
  const bh = Math.min(22, slot * 0.7);
  parts.push(`<line x1="${x0 + m.l}" x2="${x0 + m.l}" y1="${y0 + m.t}" y2="${y0 + m.t + h}" class="axis"/>`);
  rows.forEach((r, i) => {
    const v = value(r);
    const y = y0 + m.t + i * slot + (slot - bh) / 2;
    const bw = Number.isFinite(v) ? Math.max(1, v * scale) : 0;
    const c = colorOf(r.system, order);
    const rel = base && Number.isFinite(v) ? ` (${(v / value(base)).toFixed(2)}×)` : '';
    parts.push(`<text x="${x0 + m.l - 6}" y="${num(y + bh / 2)}" class="yl">${esc(r.system)}</text>`);
    parts.push(
      `<rect x="${x0 + m.l}" y="${num(y)}" width="${num(bw)}" height="${num(bh)}" fill="${c}"><title>${esc(r.system)}: ${v.toFixed(0)}</title></rect>`,
    );
    parts.push(
      `<text x="${num(x0 + m.l + bw + 5)}" y="${num(y + bh / 2)}" class="vl">${compact(v)}${rel}</text>`,
    );
  });
  return parts.join('\n');
}

/** Groups RunResult[] by (group, concurrency), in first-seen order. */
export function groupResults(results: RunResult[], baseline: string | undefined): ChartGroup[] {
  const groups = new Map<string, ChartGroup>();
  for (const r of results) {
    const key = `${r.group ?? ''}\u0000${r.concurrency}\u0000${r.rate ?? ''}`;
    let g = groups.get(key);
    if (!g) {
      g = { title: cellTitle(r), baseline, results: [] };
      groups.set(key, g);
    }
    g.results.push(r);
  }
  return [...groups.values()];
}

/** The SVG for one scenario. */
export function scenarioSvg(title: string, groups: ChartGroup[], subtitle = ''): string {
  const order = [...new Set(groups.flatMap((g) => g.results.map((r) => r.system)))];
  // Legend: up to 4 entries a line.
  const perLine = 4;
  const legendLines = Math.ceil(order.length / perLine);
  const legendTop = subtitle ? 70 : 50;
  const top = legendTop + legendLines * 20 + 14;
  const height = top + groups.length * (PANEL_H + ROW_GAP) + 10;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`,
    '<style>',
    '.t{font-size:18px;font-weight:bold}.st{font-size:12px;fill:#555}.pt{font-size:13px;font-weight:bold;fill:#333}',
    '.gt{font-size:15px;font-weight:bold}.frame{fill:none;stroke:#999}.axis{stroke:#999}',
    '.grid{stroke:#ddd}.minor{stroke-dasharray:2 3}',
    '.yl{text-anchor:end;dominant-baseline:middle;fill:#333}.xl{text-anchor:middle;fill:#333}',
    '.vl{dominant-baseline:middle;fill:#333}.lg{dominant-baseline:middle}',
    '</style>',
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    `<text x="20" y="28" class="t">${esc(title)}</text>`,
  ];
  if (subtitle) parts.push(`<text x="20" y="46" class="st">${esc(subtitle)}</text>`);
  order.forEach((s, i) => {
    const x = 20 + (i % perLine) * 260;
    const y = legendTop + Math.floor(i / perLine) * 20;
    const c = colorOf(s, order);
    const dash = s.startsWith('mesh') ? '' : s === 'haproxy sidecar' ? ' stroke-dasharray="7 4"' : '';
    parts.push(`<line x1="${x}" x2="${x + 26}" y1="${y}" y2="${y}" stroke="${c}" stroke-width="3"${dash}/>`);
    parts.push(`<text x="${x + 32}" y="${y}" class="lg">${esc(s)}</text>`);
  });
  groups.forEach((g, i) => {
    const y0 = top + i * (PANEL_H + ROW_GAP);
    parts.push(`<text x="20" y="${y0 + 4}" class="gt">${esc(g.title)}</text>`);
    const py = y0 + 10;
    parts.push(latencyPanel(20, py, g, order));
    parts.push(barPanel(20 + LAT_W + GAP, py, g, order, 'Throughput (req/s)', (r) => r.rps));
    parts.push(
      barPanel(
        20 + LAT_W + GAP + BAR_W + GAP,
        py,
        g,
        order,
        'Requests per CPU-second',
        (r) => r.reqPerCpuSecond,
      ),
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** True when `x` looks like RunResult[] with percentiles (what the runner can draw by itself). */
export function isRunResults(x: unknown): x is RunResult[] {
  return (
    Array.isArray(x) &&
    x.length > 0 &&
    x.every((r) => typeof r === 'object' && r !== null && 'system' in r && 'rps' in r && 'percentilesMs' in r)
  );
}
