// A sweep's results as the table (CSV, Markdown) and the plots (SVG): one place for the columns, the units and
// the drawing, shared by the Sweeps page's export buttons and `adapter-studio sweep --out`. The SVG is plain
// markup (no fonts beyond a generic family, no scripts), so a browser canvas and sharp both rasterise it to PNG.

import type { SweepMetrics, SweepResults, SweepSettings } from './api.js';
import { csvField, formatBytes, formatCount } from './method-table.js';

type MetricKey = keyof SweepMetrics;

interface MetricColumn {
  key: MetricKey;
  header: string;
  title: string;
  shown: (v: number | null) => string;
}

const percent = (v: number | null) => (v === null ? '—' : `${(v * 100).toFixed(1)}%`);
const fixed = (digits: number) => (v: number | null) => (v === null ? '—' : v.toFixed(digits));

export const SWEEP_METRIC_COLUMNS: MetricColumn[] = [
  { key: 'examples', header: 'train_examples', title: 'Train examples', shown: (v) => (v === null ? '—' : String(v)) },
  { key: 'exactMatch', header: 'exact_match', title: 'Exact match', shown: percent },
  { key: 'rougeL', header: 'rouge_l', title: 'ROUGE-L', shown: percent },
  { key: 'tokenF1', header: 'token_f1', title: 'Token F1', shown: percent },
  { key: 'scienceqaAccuracy', header: 'scienceqa_acc', title: 'ScienceQA acc.', shown: (v) => (v === null ? '—' : `${v.toFixed(2)}%`) },
  { key: 'perplexity', header: 'ref_perplexity', title: 'Ref. perplexity', shown: fixed(2) },
  { key: 'trainableParameters', header: 'trainable_params', title: 'Trainable params', shown: formatCount },
  { key: 'trainingSeconds', header: 'train_seconds', title: 'Train time (s)', shown: fixed(1) },
  { key: 'peakMemoryBytes', header: 'peak_memory_bytes', title: 'Peak memory', shown: formatBytes },
  { key: 'tokensPerSec', header: 'train_tokens_per_sec', title: 'Train tokens/s', shown: fixed(0) },
  { key: 'finalLoss', header: 'final_loss', title: 'Final loss', shown: fixed(4) },
];

/** "adapterLayers=2, init=random" */
export function settingsLabel(settings: SweepSettings): string {
  return Object.entries(settings)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}

function settingCell(v: SweepSettings[string] | undefined): string {
  return csvField(v === undefined || v === null ? null : typeof v === 'boolean' ? String(v) : v);
}

export function sweepCsv(results: SweepResults): string {
  const fields = results.sweep.fields;
  const lines = [[...fields, 'state', ...SWEEP_METRIC_COLUMNS.map((c) => c.header)].join(',')];
  for (const r of results.rows) {
    lines.push([...fields.map((f) => settingCell(r.settings[f])), r.state, ...SWEEP_METRIC_COLUMNS.map((c) => csvField(r.metrics[c.key]))].join(','));
  }
  return `${lines.join('\r\n')}\r\n`;
}

export function sweepMarkdown(results: SweepResults): string {
  const fields = results.sweep.fields;
  const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
  const headers = [...fields, 'State', ...SWEEP_METRIC_COLUMNS.map((c) => c.title)];
  const lines = [`| ${headers.join(' | ')} |`, `|${headers.map((_, i) => (i <= fields.length ? ' --- ' : ' ---: ')).join('|')}|`];
  for (const r of results.rows) lines.push(`| ${[...fields.map((f) => String(r.settings[f])), r.state, ...SWEEP_METRIC_COLUMNS.map((c) => c.shown(r.metrics[c.key]))].map(cell).join(' | ')} |`);
  return `${lines.join('\n')}\n`;
}

// --- plots --------------------------------------------------------------------------------------------------------

const W = 760;
const H = 400;
const M = { left: 64, right: 250, top: 40, bottom: 56 };
const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function num(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-2) return v.toExponential(1);
  return Number(v.toPrecision(3)).toString();
}

interface Series {
  label: string;
  points: { x: number; y: number }[];
}

interface Axes {
  title: string;
  xLabel: string;
  yLabel: string;
  logX: boolean;
  /** Categorical x: these labels at x = 0, 1, 2, ... */
  categories?: string[];
}

/** Line chart with axes, ticks, a legend at the right, one line per series. */
export function lineChartSvg(series: Series[], axes: Axes): string {
  const all = series.flatMap((s) => s.points);
  const tx = (x: number) => (axes.logX ? Math.log10(x) : x);
  const xs = all.map((p) => tx(p.x));
  const ys = all.map((p) => p.y);
  let [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  let [y0, y1] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  if (x0 === x1) [x0, x1] = [x0 - 0.5, x1 + 0.5];
  const xPad = (x1 - x0) * 0.06;
  [x0, x1] = [x0 - xPad, x1 + xPad];
  if (y0 === y1) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const pad = (y1 - y0) * 0.08;
  [y0, y1] = [y0 - pad, y1 + pad];
  if (ys.length && Math.min(...ys) >= 0 && y0 < 0) y0 = 0; // scores and losses are not negative
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const px = (x: number) => M.left + ((tx(x) - x0) / (x1 - x0)) * pw;
  const py = (y: number) => M.top + (1 - (y - y0) / (y1 - y0)) * ph;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${M.left}" y="24" font-size="15" font-weight="bold" fill="#222">${esc(axes.title)}</text>`,
    `<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`,
  ];
  // y ticks: five evenly spaced values
  for (let i = 0; i <= 4; i++) {
    const v = y0 + ((y1 - y0) * i) / 4;
    const y = py(v);
    out.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${y}" y2="${y}" stroke="#eee"/>`, `<text x="${M.left - 6}" y="${y + 4}" text-anchor="end" fill="#444">${num(v)}</text>`);
  }
  // x ticks: the categories, the data's own x values (few), or powers of ten on a log axis
  const xTicks: { x: number; label: string }[] = axes.categories
    ? axes.categories.map((label, i) => ({ x: i, label }))
    : [...new Set(all.map((p) => p.x))].sort((a, b) => a - b).map((x) => ({ x, label: num(x) }));
  for (const t of xTicks.length > 12 ? xTicks.filter((_, i) => i % Math.ceil(xTicks.length / 12) === 0) : xTicks) {
    const x = px(t.x);
    out.push(`<line x1="${x}" x2="${x}" y1="${M.top + ph}" y2="${M.top + ph + 5}" stroke="#999"/>`, `<text x="${x}" y="${M.top + ph + 18}" text-anchor="middle" fill="#444">${esc(t.label)}</text>`);
  }
  out.push(
    `<text x="${M.left + pw / 2}" y="${H - 14}" text-anchor="middle" fill="#222">${esc(axes.xLabel)}${axes.logX ? ' (log scale)' : ''}</text>`,
    `<text transform="translate(16 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle" fill="#222">${esc(axes.yLabel)}</text>`,
  );
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    const pts = [...s.points].sort((a, b) => a.x - b.x);
    if (pts.length > 1) out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(' ')}"/>`);
    if (pts.length <= 40) for (const p of pts) out.push(`<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="3.5" fill="${color}"/>`);
    const ly = M.top + 8 + i * 18;
    out.push(`<rect x="${W - M.right + 14}" y="${ly - 8}" width="14" height="4" fill="${color}"/>`, `<text x="${W - M.right + 34}" y="${ly - 2}" fill="#222">${esc(s.label.length > 34 ? `${s.label.slice(0, 33)}…` : s.label)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

const DATA_AMOUNT = new Set(['data.fraction', 'data.count']);

/**
 * `metric` against the first varied setting, one line per value of the second. A data-amount sweep puts the
 * number of training examples on a log axis; a numeric setting is placed by value, any other by order.
 */
export function metricPlotSvg(results: SweepResults, metric: MetricKey): string {
  const column = SWEEP_METRIC_COLUMNS.find((c) => c.key === metric)!;
  const [first, second] = results.sweep.fields;
  const rows = results.rows.filter((r) => r.metrics[metric] !== null);
  const byExamples = first !== undefined && DATA_AMOUNT.has(first);
  const values = [...new Set(results.rows.map((r) => r.settings[first!]))];
  const numeric = values.every((v) => typeof v === 'number');
  const xOf = (r: SweepResults['rows'][number]): number =>
    byExamples ? (r.metrics.examples ?? 0) : numeric ? (r.settings[first!] as number) : values.indexOf(r.settings[first!]);
  const groups = second === undefined ? [undefined] : [...new Set(results.rows.map((r) => r.settings[second]))];
  const scale = column.shown === percent ? 100 : 1;
  const series: Series[] = groups.map((g) => ({
    label: second === undefined ? column.title : `${second}=${g}`,
    points: rows.filter((r) => second === undefined || r.settings[second] === g).map((r) => ({ x: xOf(r), y: (r.metrics[metric] as number) * scale })),
  }));
  return lineChartSvg(series, {
    title: `${column.title} by ${byExamples ? 'training examples' : first}`,
    xLabel: byExamples ? 'training examples' : first!,
    yLabel: `${column.title}${scale === 100 ? ' (%)' : ''}`,
    logX: byExamples && rows.every((r) => (r.metrics.examples ?? 0) > 0),
    categories: byExamples || numeric ? undefined : values.map(String),
  });
}

/** Every point's training loss, overlaid. */
export function lossCurvesSvg(results: SweepResults): string {
  const settingsAt = new Map(results.rows.map((r) => [r.position, r.settings]));
  return lineChartSvg(
    results.curves.filter((c) => c.points.length > 0).map((c) => ({ label: settingsLabel(settingsAt.get(c.position) ?? {}), points: c.points.map((p) => ({ x: p.step, y: p.loss })) })),
    { title: 'Training loss', xLabel: 'optimizer step', yLabel: 'loss', logX: false },
  );
}

/** The plots a sweep exports: each quality metric that has values, and the loss curves. */
export function sweepPlots(results: SweepResults): { name: string; svg: string }[] {
  const quality: MetricKey[] = ['exactMatch', 'rougeL', 'tokenF1', 'scienceqaAccuracy', 'perplexity'];
  const plots = quality.filter((m) => results.rows.some((r) => r.metrics[m] !== null)).map((m) => ({ name: `${SWEEP_METRIC_COLUMNS.find((c) => c.key === m)!.header}`, svg: metricPlotSvg(results, m) }));
  plots.push({ name: 'loss_curves', svg: lossCurvesSvg(results) });
  return plots;
}
