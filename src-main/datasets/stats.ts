// Token-length statistics for a dataset: what the training template makes of each example, counted with
// the selected model's tokenizer, as histogram data and the number of examples max_seq_len would cut.
//
// The tokenizer and the template come from the caller (the engine owns both): `countTokens` counts a text,
// `formatExample` builds the full training text; by default the engine's own Alpaca template.

import type { ExampleText, Split } from '../store/datasets.js';
import type { DatasetId } from '../store/ids.js';
import type { Workspace } from '../store/workspace.js';
import { formatAlpacaPrompt } from '../engine/data.js';

export type CountTokens = (text: string) => number;

/** Stanford Alpaca's prompt followed by the output. */
export function alpacaTrainingText(ex: ExampleText): string {
  return formatAlpacaPrompt(ex.instruction, ex.input) + ex.output; // exactly what training tokenises
}

export interface TokenStatsOptions {
  countTokens: CountTokens;
  formatExample?: (ex: ExampleText) => string;
  /** Examples longer than this many tokens would be truncated in training. */
  maxSeqLen: number;
  /** Number of histogram bins (default 20). */
  bins?: number;
}

export interface TokenStats {
  count: number;
  min: number;
  max: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  maxSeqLen: number;
  /** Examples longer than maxSeqLen tokens. */
  overMaxSeqLen: number;
  /** Equal-width bins from 0 covering the longest example and maxSeqLen: [start, end) and count. */
  histogram: { start: number; end: number; count: number }[];
}

/** A bin width of 1, 2 or 5 times a power of ten, so that chart labels read well. */
function niceWidth(span: number, bins: number): number {
  const raw = Math.max(1, span / bins);
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

function percentile(sorted: Int32Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? sorted[0]!;
}

export function tokenLengthStats(examples: Iterable<ExampleText>, options: TokenStatsOptions): TokenStats {
  if (!Number.isInteger(options.maxSeqLen) || options.maxSeqLen <= 0) throw new RangeError(`maxSeqLen must be a positive whole number, got ${options.maxSeqLen}`);
  const format = options.formatExample ?? alpacaTrainingText;
  const lengths: number[] = [];
  for (const ex of examples) lengths.push(options.countTokens(format(ex)));
  const sorted = Int32Array.from(lengths).sort();
  const count = sorted.length;
  const max = count ? sorted[count - 1]! : 0;
  const bins = options.bins ?? 20;
  const top = Math.max(max, options.maxSeqLen);
  const width = niceWidth(top + 1, bins);
  const nBins = Math.floor(top / width) + 1;
  const histogram = Array.from({ length: nBins }, (_, k) => ({ start: k * width, end: (k + 1) * width, count: 0 }));
  let over = 0;
  let sum = 0;
  for (const n of sorted) {
    histogram[Math.floor(n / width)]!.count++;
    if (n > options.maxSeqLen) over++;
    sum += n;
  }
  return {
    count,
    min: count ? sorted[0]! : 0,
    max,
    mean: count ? sum / count : 0,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    maxSeqLen: options.maxSeqLen,
    overMaxSeqLen: over,
    histogram,
  };
}

/** Token statistics of a dataset's current examples (or one split of them). */
export function datasetTokenStats(ws: Workspace, datasetId: DatasetId, options: TokenStatsOptions & { split?: Split }): TokenStats {
  ws.datasets.get(datasetId);
  return tokenLengthStats(ws.datasets.iterate(datasetId, options.split), options);
}
