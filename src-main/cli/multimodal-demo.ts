// The paper's multi-modal experiment in miniature (behind `adapter-studio demo --multimodal`): on a ScienceQA-layout
// folder, train a text-only LLaMA-Adapter and a multi-modal one (the frozen vision tower's image feature added to
// every adaption prompt) on the train split, answer the test split greedily with the base model and both
// adapters, and score each as ScienceQA's tools/evaluate_acc.py does.

import { join } from 'node:path';
import { disposeAdapter } from '../engine/adapter.js';
import { loadAdapter } from '../engine/adapter-io.js';
import type { Instruction } from '../engine/data.js';
import { type EvalExample, evaluateAnswers } from '../engine/eval.js';
import { EngineError } from '../engine/errors.js';
import type { ImagePromptSpec } from '../engine/image-prompt.js';
import type { LoadedModel } from '../engine/load.js';
import { DEFAULT_VISION_RECIPE, type Recipe, type VisionRecipe } from '../engine/recipe.js';
import type { TextTokenizer } from '../engine/tokenizer.js';
import { train, type TrainEvent } from '../engine/train.js';
import { type ImageEncoder, imageFeatures } from '../engine/vision-features.js';
import { SCIENCEQA_TABLE_COLUMNS } from '../../src-shared/scienceqa-table.js';
import { DEFAULT_MULTIPLE_CHOICE_TEMPLATE } from '../datasets/multiple-choice.js';
import { readScienceQaFolder, scienceQaRecordToExample } from '../datasets/scienceqa.js';
import { readProblemsFile, SCIENCEQA_KEYS, type ScienceQaScores, scienceQaPredictions, scoreScienceQa } from '../evaluation/scienceqa.js';

export const DEMO_COLUMNS = ['base', 'text_only', 'multimodal'] as const;
export type DemoColumn = (typeof DEMO_COLUMNS)[number];

export interface MultimodalDemoOptions {
  model: LoadedModel;
  tokenizer: TextTokenizer;
  encoder: ImageEncoder;
  /** A ScienceQA-layout folder: problems.json, pid_splits.json, images/<split>/<pid>/image.png. */
  folder: string;
  outDir: string;
  /** Both adapters train with this recipe; the multi-modal one adds `vision`. */
  recipe: Recipe;
  vision?: VisionRecipe;
  /** Answer at most this many test problems (quick runs). */
  testLimit?: number;
  maxNewTokens?: number;
  signal?: AbortSignal;
  onTrainEvent?: (which: 'text_only' | 'multimodal', e: TrainEvent) => void;
  onProgress?: (line: string) => void;
}

export interface DemoAnswerRow {
  pid: string;
  question: string;
  choices: string[];
  answer: number;
  hasImage: boolean;
  /** The generator's description of the picture (problems.json's `caption`), when it has one. */
  caption: string | null;
  outputs: Record<DemoColumn, string>;
}

export interface MultimodalDemoResult {
  scores: Record<DemoColumn, ScienceQaScores>;
  unparseable: Record<DemoColumn, number>;
  trainableParameters: { text_only: number; multimodal: number };
  trainSeconds: { text_only: number; multimodal: number };
  featureSeconds: number;
  adapterDirs: { text_only: string; multimodal: string };
  rows: DemoAnswerRow[];
  counts: { train: number; test: number; trainImages: number; testImages: number };
}

interface Problem {
  pid: string;
  example: Instruction;
  value: Record<string, unknown>;
  imageFile: string | null;
}

export async function runMultimodalDemo(o: MultimodalDemoOptions): Promise<MultimodalDemoResult> {
  const log = o.onProgress ?? (() => {});
  const folder = await readScienceQaFolder(o.folder);
  const bySplit = { train: [] as Problem[], test: [] as Problem[] };
  for (const record of folder.problems) {
    if (record.split !== 'train' && record.split !== 'test') continue;
    const { examples, problems } = scienceQaRecordToExample(record.value, DEFAULT_MULTIPLE_CHOICE_TEMPLATE);
    if (problems.length) throw new EngineError(`${join(o.folder, 'problems.json')}: line ${record.line}: problem ${record.pid}: field "${problems[0]!.field}": ${problems[0]!.message}`);
    const { instruction, input, output } = examples[0]!;
    bySplit[record.split].push({ pid: record.pid, example: { instruction, input, output }, value: record.value, imageFile: record.imagePath ? join(o.folder, record.imagePath) : null });
  }
  const test = bySplit.test.slice(0, o.testLimit ?? undefined);
  if (bySplit.train.length === 0 || test.length === 0) throw new EngineError(`${o.folder}: the demo needs problems in both the train and the test split`);

  const vision = o.vision ?? DEFAULT_VISION_RECIPE;
  const featureStarted = performance.now();
  log(`image features of ${new Set([...bySplit.train, ...test].map((p) => p.imageFile).filter(Boolean)).size} images with ${o.encoder.record.name}`);
  const features = await imageFeatures(o.encoder, [...bySplit.train, ...test].map((p) => p.imageFile), vision.feature, { cacheDir: join(o.outDir, 'image-features'), signal: o.signal });
  const featureSeconds = (performance.now() - featureStarted) / 1000;
  const trainFeatures = features.slice(0, bySplit.train.length);
  const testFeatures = features.slice(bySplit.train.length);
  const spec: ImagePromptSpec = { tower: o.encoder.record, feature: vision.feature, featureDim: o.encoder.featureDim(vision.feature), hidden: vision.projectionHidden };

  const data = bySplit.train.map((p) => p.example);
  const { vision: _ignored, ...textRecipe } = o.recipe;
  const runs = {
    text_only: { recipe: textRecipe as Recipe, vision: undefined },
    multimodal: { recipe: { ...textRecipe, vision } as Recipe, vision: { spec, features: trainFeatures } },
  };
  const trainSeconds = { text_only: 0, multimodal: 0 };
  const trainableParameters = { text_only: 0, multimodal: 0 };
  const adapterDirs = { text_only: join(o.outDir, 'text-only'), multimodal: join(o.outDir, 'multimodal') };
  for (const which of ['text_only', 'multimodal'] as const) {
    log(`training the ${which === 'text_only' ? 'text-only' : 'multi-modal'} adapter on ${data.length} problems`);
    const started = performance.now();
    const result = await train({
      model: o.model, tokenizer: o.tokenizer, data, recipe: runs[which].recipe, vision: runs[which].vision, outDir: adapterDirs[which],
      signal: o.signal, onAbort: 'cancel',
      onEvent: (e) => {
        if (e.type === 'start') trainableParameters[which] = e.trainableParams;
        o.onTrainEvent?.(which, e);
      },
    });
    trainSeconds[which] = (performance.now() - started) / 1000;
    if (result.status !== 'completed') throw new EngineError(`the demo's ${which} training ended early (${result.status})`);
  }

  const outputs = {} as Record<DemoColumn, string[]>;
  for (const column of DEMO_COLUMNS) {
    log(`answering ${test.length} test problems with ${column === 'base' ? 'the base model' : column === 'text_only' ? 'the text-only adapter' : 'the multi-modal adapter'}`);
    const adapter = column === 'base' ? null : loadAdapter(adapterDirs[column], o.model);
    try {
      const examples: EvalExample[] = test.map((p, i) => ({ ...p.example, image: testFeatures[i] }));
      const report = await evaluateAnswers({ model: o.model, adapter, tokenizer: o.tokenizer, examples, maxNewTokens: o.maxNewTokens ?? 16, signal: o.signal });
      outputs[column] = report.answers.map((a) => a.prediction);
    } finally {
      if (adapter) disposeAdapter(adapter);
    }
  }

  // Scored over the problems answered (all of the test split unless testLimit cut it).
  const all = readProblemsFile(join(o.folder, 'problems.json'));
  const problems = Object.fromEntries(test.map((p) => [p.pid, all[p.pid]!]));
  const scores = {} as Record<DemoColumn, ScienceQaScores>;
  const unparseable = {} as Record<DemoColumn, number>;
  for (const column of DEMO_COLUMNS) {
    const predictions = scienceQaPredictions(test.map((p, i) => ({ pid: p.pid, output: outputs[column][i]!, choices: (p.value.choices as unknown[]).length })));
    scores[column] = scoreScienceQa(problems, predictions.results, { split: 'test' });
    unparseable[column] = predictions.unparseable.length;
  }
  const rows: DemoAnswerRow[] = test.map((p, i) => ({
    pid: p.pid,
    question: String(p.value.question),
    choices: p.value.choices as string[],
    answer: p.value.answer as number,
    hasImage: p.imageFile !== null,
    caption: typeof p.value.caption === 'string' ? p.value.caption : null,
    outputs: { base: outputs.base[i]!, text_only: outputs.text_only[i]!, multimodal: outputs.multimodal[i]! },
  }));
  return {
    scores, unparseable, trainableParameters, trainSeconds, featureSeconds, adapterDirs, rows,
    counts: { train: data.length, test: test.length, trainImages: trainFeatures.filter(Boolean).length, testImages: testFeatures.filter(Boolean).length },
  };
}

const COLUMN_LABELS: Record<DemoColumn, string> = { base: 'base', text_only: 'text-only', multimodal: 'multi-modal' };
const KEY_LABELS: Record<string, string> = Object.fromEntries(SCIENCEQA_TABLE_COLUMNS);

/** ScienceQA's accuracy table, one row per model, plus a few answers side by side; plain text for a terminal. */
export function formatMultimodalDemo(r: MultimodalDemoResult, examples = 6): string {
  const keys = SCIENCEQA_KEYS.filter((k) => k in KEY_LABELS);
  const lines = [
    `ScienceQA accuracy (%) on ${r.counts.test} test problems (${r.counts.testImages} with an image); trained on ${r.counts.train}`,
    ['model'.padEnd(12), ...keys.map((k) => KEY_LABELS[k]!.padStart(6)), 'unparsed'.padStart(9)].join(' '),
  ];
  for (const column of DEMO_COLUMNS) {
    const printed = r.scores[column].printed;
    lines.push([COLUMN_LABELS[column].padEnd(12), ...keys.map((k) => (printed[k] ?? 'n/a').padStart(6)), String(r.unparseable[column]).padStart(9)].join(' '));
  }
  lines.push(
    '',
    `trainable parameters: text-only ${r.trainableParameters.text_only}, multi-modal ${r.trainableParameters.multimodal} (projection included)`,
    `training: text-only ${r.trainSeconds.text_only.toFixed(0)} s, multi-modal ${r.trainSeconds.multimodal.toFixed(0)} s; image features ${r.featureSeconds.toFixed(1)} s`,
    '',
  );
  const picked = [...r.rows.filter((x) => x.hasImage).slice(0, Math.ceil(examples / 2)), ...r.rows.filter((x) => !x.hasImage).slice(0, Math.floor(examples / 2))];
  for (const row of picked) {
    const letters = row.choices.map((c, i) => `(${String.fromCharCode(65 + i)}) ${c}`).join(' ');
    lines.push(`${row.pid}: ${row.question} ${letters}  [right: (${String.fromCharCode(65 + row.answer)})]`);
    lines.push(`  image: ${row.hasImage ? (row.caption ?? 'yes') : 'none'}`);
    for (const column of DEMO_COLUMNS) lines.push(`  ${COLUMN_LABELS[column].padEnd(11)} ${row.outputs[column].replace(/\s+/g, ' ').slice(0, 80)}`);
  }
  return lines.join('\n');
}

/** The `--json` line: official key names per model, two decimals, as eval-scienceqa prints them. */
export function multimodalDemoJson(r: MultimodalDemoResult): Record<string, unknown> {
  const pick = (s: ScienceQaScores) => ({ ...s.scores, questions: s.questions, correct: s.correct, topics: s.topics });
  return {
    base: pick(r.scores.base),
    text_only: pick(r.scores.text_only),
    multimodal: pick(r.scores.multimodal),
    unparseable: r.unparseable,
    trainable_parameters: r.trainableParameters,
    train_seconds: r.trainSeconds,
    counts: r.counts,
  };
}
