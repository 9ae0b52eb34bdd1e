// Scoring generated answers against references: exact match and ROUGE-L, and a loop that answers
// held-out Alpaca prompts greedily with a model (and optionally an adapter) and scores each answer.

import type { Adapter } from './adapter.js';
import { formatAlpacaPrompt, type Instruction } from './data.js';
import { EngineError } from './errors.js';
import type { LlamaModel } from './model.js';
import { Rng } from './rng.js';
import { DEFAULT_SAMPLING, generate } from './sample.js';
import type { TextTokenizer } from './tokenizer.js';
import { throwIfAborted } from './train.js';
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

/** An Alpaca example to answer; `task` (optional) groups the scores. */
export interface EvalExample extends Instruction {
  task?: string;
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
