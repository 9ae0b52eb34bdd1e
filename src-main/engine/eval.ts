// Scoring generated answers against references: exact match, ROUGE-L, token F1 and the reference's
// likelihood under a model (perplexity), and a loop that answers held-out Alpaca prompts greedily with a
// model (and optionally an adapter) and scores each answer.

import * as tf from '@tensorflow/tfjs-core';
import type { Adapter } from './adapter.js';
import { formatAlpacaPrompt, type Instruction, makeBatch, type PromptTemplate, tokenizeExample } from './data.js';
import { EngineError } from './errors.js';
import { batchImages } from './image-prompt.js';
import { nextTokenLoss, shiftedTargets } from './loss.js';
import type { Lora } from './lora.js';
import type { LlamaModel } from './model.js';
import { Rng } from './rng.js';
import { DEFAULT_SAMPLING, generate } from './sample.js';
import type { TextTokenizer } from './tokenizer.js';
import { throwIfAborted } from './cancel.js';
import { rougeLTokens } from '../../src-shared/rouge.js';

export { lcsLength } from '../../src-shared/rouge.js';

/** Lowercase, collapse whitespace, and drop quotes and final punctuation around the answer. */
export function normalizeAnswer(text: string): string {
  return text
    .toLowerCase()
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/^["'`]+|["'`.!?,;:]+$/g, '')
    .trim();
}

/** True when prediction and reference are the same answer after normalizeAnswer. */
export function exactMatch(prediction: string, reference: string): boolean {
  return normalizeAnswer(prediction) === normalizeAnswer(reference);
}

/**
 * ROUGE's tokens: lowercased, every character other than a-z and 0-9 turned into a space, split on
 * whitespace (the default tokenizer of Google's rouge-score package, without stemming).
 */
export function rougeTokens(text: string): string[] {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, ' ').trim().split(' ').filter((t) => t !== '');
}

/**
 * ROUGE-L F-measure (Lin 2004, with beta = 1) on rougeTokens: precision = LCS / |prediction|,
 * recall = LCS / |reference|, F = 2PR / (P + R). 0 when either side has no tokens.
 */
export function rougeL(prediction: string, reference: string): number {
  return rougeLTokens(rougeTokens(prediction), rougeTokens(reference));
}

/**
 * Token-level F1 as in SQuAD's evaluation: the multiset overlap of rougeTokens between prediction and
 * reference, F = 2PR / (P + R). 1 when both are empty, 0 when only one is.
 */
export function tokenF1(prediction: string, reference: string): number {
  const p = rougeTokens(prediction);
  const r = rougeTokens(reference);
  if (p.length === 0 || r.length === 0) return p.length === r.length ? 1 : 0;
  const left = new Map<string, number>();
  for (const t of r) left.set(t, (left.get(t) ?? 0) + 1);
  let overlap = 0;
  for (const t of p) {
    const n = left.get(t) ?? 0;
    if (n > 0) {
      overlap++;
      left.set(t, n - 1);
    }
  }
  if (overlap === 0) return 0;
  const precision = overlap / p.length;
  const recall = overlap / r.length;
  return (2 * precision * recall) / (precision + recall);
}

/** Every reference-based score of one answer. */
export function scoreAnswer(prediction: string, reference: string): { exactMatch: number; rougeL: number; tokenF1: number } {
  return { exactMatch: exactMatch(prediction, reference) ? 1 : 0, rougeL: rougeL(prediction, reference), tokenF1: tokenF1(prediction, reference) };
}

/**
 * The reference answer's negative log-likelihood under the model, summed over its tokens: exactly the
 * training loss's terms (BOS + Alpaca prompt + response + EOS, prompt masked), so exp(nll / tokens) over a
 * set is the reference perplexity. Truncated to the model's context like training.
 */
export function referenceNll(
  model: LlamaModel,
  tokenizer: TextTokenizer,
  example: Instruction,
  fineTune: { adapter?: Adapter | null; lora?: Lora | null; image?: Float32Array | null; template?: PromptTemplate } = {},
): { nll: number; tokens: number } {
  const tokenized = tokenizeExample(tokenizer, example, model.config.maxPositions, { template: fineTune.template });
  const batch = makeBatch([tokenized], 0);
  const targets = shiftedTargets(batch.labels, batch.B, batch.T);
  try {
    if (targets.count === 0) return { nll: 0, tokens: 0 };
    const { image, template: _template, ...attached } = fineTune;
    const mean = tf.tidy(() => {
      const images = image && attached.adapter?.image ? batchImages([image], image.length) : null;
      return nextTokenLoss(model, tf.tensor2d(batch.ids, [batch.B, batch.T], 'int32'), targets, { ...attached, images });
    });
    const value = mean.dataSync()[0];
    mean.dispose();
    return { nll: value * targets.count, tokens: targets.count };
  } finally {
    tf.dispose([targets.labels, targets.mask]);
  }
}

/** An Alpaca example to answer; `task` (optional) groups the scores; `image`: its feature for a multi-modal adapter. */
export interface EvalExample extends Instruction {
  task?: string;
  image?: Float32Array | null;
}

export interface ScoredAnswer {
  index: number;
  task: string | null;
  instruction: string;
  input: string;
  reference: string;
  prediction: string;
  exactMatch: boolean;
  rougeL: number;
  finishReason: 'eos' | 'stop' | 'length';
}

export interface ScoreSummary {
  count: number;
  exactMatch: number; // fraction in [0, 1]
  rougeL: number; // mean in [0, 1]
}

export interface EvalReport extends ScoreSummary {
  answers: ScoredAnswer[];
  byTask: Record<string, ScoreSummary>;
  seconds: number;
}

export interface EvaluateOptions {
  model: LlamaModel;
  adapter?: Adapter | null;
  tokenizer: TextTokenizer;
  examples: EvalExample[];
  maxNewTokens?: number; // per answer; default 48
  signal?: AbortSignal;
  onAnswer?: (a: ScoredAnswer) => void;
}

export function summarize(answers: ScoredAnswer[]): ScoreSummary {
  const count = answers.length;
  if (count === 0) return { count, exactMatch: 0, rougeL: 0 };
  return {
    count,
    exactMatch: answers.filter((a) => a.exactMatch).length / count,
    rougeL: answers.reduce((s, a) => s + a.rougeL, 0) / count,
  };
}

/**
 * Answer every example with greedy decoding from its Alpaca prompt (BOS + prompt, as in training)
 * and score the answer against the example's output. Generation ends at EOS or maxNewTokens.
 */
export async function evaluateAnswers(o: EvaluateOptions): Promise<EvalReport> {
  if (o.examples.length === 0) throw new EngineError('the evaluation set has no examples');
  const sampling = { ...DEFAULT_SAMPLING, temperature: 0, maxNewTokens: o.maxNewTokens ?? 48 };
  const started = performance.now();
  const answers: ScoredAnswer[] = [];
  for (const [index, ex] of o.examples.entries()) {
    throwIfAborted(o.signal, 'evaluation');
    const promptIds = o.tokenizer.encode(formatAlpacaPrompt(ex.instruction, ex.input), { bos: true });
    const result = await generate({
      model: o.model,
      adapter: o.adapter,
      image: o.adapter?.image ? (ex.image ?? null) : null,
      promptIds,
      sampling,
      rng: new Rng(0), // unused at temperature 0
      eosIds: o.tokenizer.eosIds,
      tokenizer: o.tokenizer,
      signal: o.signal,
    });
    const prediction = result.text.trim();
    const answer: ScoredAnswer = {
      index,
      task: ex.task ?? null,
      instruction: ex.instruction,
      input: ex.input,
      reference: ex.output,
      prediction,
      exactMatch: exactMatch(prediction, ex.output),
      rougeL: rougeL(prediction, ex.output),
      finishReason: result.finishReason,
    };
    answers.push(answer);
    o.onAnswer?.(answer);
  }
  const byTask: Record<string, ScoreSummary> = {};
  for (const task of new Set(answers.map((a) => a.task).filter((t): t is string => t !== null))) {
    byTask[task] = summarize(answers.filter((a) => a.task === task));
  }
  return { ...summarize(answers), answers, byTask, seconds: (performance.now() - started) / 1000 };
}
