// The before/after demonstration behind `adapter-studio demo`: score a base model on held-out
// instructions, train a LLaMA-Adapter on the training instructions, score again with the adapter.
// The base model was only pre-trained on plain text, so before training it merely continues the
// prompt; the adapter teaches it to answer.

import { disposeAdapter } from './adapter.js';
import { loadAdapter } from './adapter-io.js';
import type { Instruction } from './data.js';
import { type EvalExample, type EvalReport, evaluateAnswers, type ScoredAnswer } from './eval.js';
import { EngineError } from './errors.js';
import type { LoadedModel } from './load.js';
import { type Recipe, starterRecipe } from './recipe.js';
import type { TextTokenizer } from './tokenizer.js';
import { train, type TrainEvent, type TrainResult } from './train.js';

export interface DemoOptions {
  model: LoadedModel;
  tokenizer: TextTokenizer;
  train: Instruction[];
  test: EvalExample[];
  outDir: string; // the trained adapter is written here
  recipe?: Recipe; // default starterRecipe(model.config)
  maxNewTokens?: number; // per answer; default 48
  signal?: AbortSignal;
  onTrainEvent?: (e: TrainEvent) => void;
  onAnswer?: (phase: 'base' | 'adapter', a: ScoredAnswer) => void;
}

export interface DemoRow {
  task: string | null;
  instruction: string;
  input: string;
  reference: string;
  base: string;
  adapter: string;
}

export interface DemoResult {
  base: EvalReport;
  adapted: EvalReport;
  training: TrainResult;
  trainSeconds: number;
  recipe: Recipe;
  adapterDir: string;
  rows: DemoRow[];
}

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const recipe = o.recipe ?? starterRecipe(o.model.config);
  const base = await evaluateAnswers({
    model: o.model,
    tokenizer: o.tokenizer,
    examples: o.test,
    maxNewTokens: o.maxNewTokens,
    signal: o.signal,
    onAnswer: (a) => o.onAnswer?.('base', a),
  });
  const started = performance.now();
  const training = await train({
    model: o.model,
    tokenizer: o.tokenizer,
    data: o.train,
    recipe,
    outDir: o.outDir,
    signal: o.signal,
    onAbort: 'cancel',
    onEvent: o.onTrainEvent,
  });
  const trainSeconds = (performance.now() - started) / 1000;
  if (training.status !== 'completed' || training.adapterDir === null) {
    throw new EngineError(`the demo's adapter training ended early (${training.status})`);
  }
  const adapter = loadAdapter(training.adapterDir, o.model);
  try {
    const adapted = await evaluateAnswers({
      model: o.model,
      adapter,
      tokenizer: o.tokenizer,
      examples: o.test,
      maxNewTokens: o.maxNewTokens,
      signal: o.signal,
      onAnswer: (a) => o.onAnswer?.('adapter', a),
    });
    const rows = o.test.map((ex, i) => ({
      task: ex.task ?? null,
      instruction: ex.instruction,
      input: ex.input,
      reference: ex.output,
      base: base.answers[i].prediction,
      adapter: adapted.answers[i].prediction,
    }));
    return { base, adapted, training, trainSeconds, recipe, adapterDir: training.adapterDir, rows };
  } finally {
    disposeAdapter(adapter);
  }
}

function clip(text: string, width: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= width ? flat.padEnd(width) : `${flat.slice(0, width - 1)}…`;
}

/** A plain-text before/after table of the first `limit` rows and the score summary, for a terminal. */
export function formatDemoTable(r: DemoResult, limit = 10, width = 28): string {
  const lines: string[] = [];
  const header = ['prompt', 'base model', 'adapter', 'reference'].map((h) => clip(h, width)).join(' | ');
  lines.push(header, '-'.repeat(header.length));
  for (const row of r.rows.slice(0, limit)) {
    const prompt = row.input ? `${row.instruction} ${row.input}` : row.instruction;
    lines.push([prompt, row.base, row.adapter, row.reference].map((t) => clip(t, width)).join(' | '));
  }
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  lines.push('', `held-out examples: ${r.base.count}`);
  lines.push(`${'score'.padEnd(12)} ${'base'.padStart(8)} ${'adapter'.padStart(8)}`);
  lines.push(`${'exact match'.padEnd(12)} ${pct(r.base.exactMatch).padStart(8)} ${pct(r.adapted.exactMatch).padStart(8)}`);
  lines.push(`${'ROUGE-L'.padEnd(12)} ${pct(r.base.rougeL).padStart(8)} ${pct(r.adapted.rougeL).padStart(8)}`);
  for (const task of Object.keys(r.adapted.byTask)) {
    const b = r.base.byTask[task];
    const a = r.adapted.byTask[task];
    lines.push(`  ${task.padEnd(10)} EM ${pct(b.exactMatch)} -> ${pct(a.exactMatch)}, ROUGE-L ${pct(b.rougeL)} -> ${pct(a.rougeL)}`);
  }
  return lines.join('\n');
}
