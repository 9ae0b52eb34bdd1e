// The method table (the paper's Table 3, measured on the user's own runs) as CSV and Markdown: one place
// for the columns and their units, shared by the UI's export buttons and `adapter-studio compare`.

import type { MethodRow } from './api.js';

interface Column {
  header: string;
  /** The raw value for CSV (machine-readable units). */
  raw: (r: MethodRow) => string | number | null;
  /** What a person reads in Markdown. */
  shown: (r: MethodRow) => string;
}

const percent = (v: number | null) => (v === null ? '—' : `${(v * 100).toFixed(1)}%`);
const fixed = (digits: number) => (v: number | null) => (v === null ? '—' : v.toFixed(digits));

export function formatCount(n: number | null): string {
  if (n === null) return '—';
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

export function formatBytes(n: number | null): string {
  if (n === null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

export const METHOD_TABLE_COLUMNS: Column[] = [
  { header: 'column', raw: (r) => r.label, shown: (r) => r.label },
  { header: 'method', raw: (r) => r.kind, shown: (r) => r.kind },
  { header: 'trainable_params', raw: (r) => r.trainableParameters, shown: (r) => formatCount(r.trainableParameters) },
  { header: 'storage_bytes', raw: (r) => r.storageBytes, shown: (r) => formatBytes(r.storageBytes) },
  { header: 'train_seconds', raw: (r) => r.trainingSeconds, shown: (r) => fixed(1)(r.trainingSeconds) },
  { header: 'peak_memory_bytes', raw: (r) => r.peakMemoryBytes, shown: (r) => formatBytes(r.peakMemoryBytes) },
  { header: 'train_tokens_per_sec', raw: (r) => r.tokensPerSec, shown: (r) => fixed(0)(r.tokensPerSec) },
  { header: 'examples', raw: (r) => r.metrics.count, shown: (r) => String(r.metrics.count) },
  { header: 'exact_match', raw: (r) => r.metrics.exactMatch, shown: (r) => percent(r.metrics.exactMatch) },
  { header: 'rouge_l', raw: (r) => r.metrics.rougeL, shown: (r) => percent(r.metrics.rougeL) },
  { header: 'token_f1', raw: (r) => r.metrics.tokenF1, shown: (r) => percent(r.metrics.tokenF1) },
  { header: 'ref_perplexity', raw: (r) => r.metrics.perplexity, shown: (r) => fixed(2)(r.metrics.perplexity) },
  { header: 'judge_win_rate', raw: (r) => r.judgeWinRate, shown: (r) => percent(r.judgeWinRate) },
  { header: 'trained_on_items', raw: (r) => r.seenItems, shown: (r) => (r.seenItems === null ? '—' : r.seenItems > 0 ? `${r.seenItems} of ${r.metrics.count} (seen in training)` : '0') },
];

/** What a person reads as each column's title (the Markdown table's header and the UI's). */
export const MARKDOWN_HEADERS = [
  'Column',
  'Method',
  'Trainable params',
  'Storage',
  'Train time (s)',
  'Peak memory',
  'Train tokens/s',
  'Examples',
  'Exact match',
  'ROUGE-L',
  'Token F1',
  'Ref. perplexity',
  'LLM-judge wins',
  'Trained on items',
];

/** RFC 4180: quote a field holding a comma, quote or line break; double the quotes inside. */
export function csvField(v: string | number | null): string {
  if (v === null) return '';
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function methodTableCsv(rows: MethodRow[]): string {
  const lines = [METHOD_TABLE_COLUMNS.map((c) => c.header).join(',')];
  for (const r of rows) lines.push(METHOD_TABLE_COLUMNS.map((c) => csvField(c.raw(r))).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

export function methodTableMarkdown(rows: MethodRow[]): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
  const lines = [`| ${MARKDOWN_HEADERS.join(' | ')} |`, `|${MARKDOWN_HEADERS.map((_, i) => (i < 2 ? ' --- ' : ' ---: ')).join('|')}|`];
  for (const r of rows) lines.push(`| ${METHOD_TABLE_COLUMNS.map((c) => cell(c.shown(r))).join(' | ')} |`);
  return `${lines.join('\n')}\n`;
}
