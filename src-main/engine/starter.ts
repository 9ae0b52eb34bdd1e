// The starter workspace shipped in assets/starter/: a small LLaMA pre-trained from scratch on
// WordNet text (built by tools/build-starter.mjs), its held-out text, and the demo instructions.
// Paths are relative to the package root (findPackageRoot); `starterPath` resolves them.

import path from 'node:path';
import { findPackageRoot } from './backends/package-root.js';
import type { Encoder } from './data.js';
import { evaluateLoss, packDocuments, tokenizeDocuments } from './full-train.js';
import type { LlamaModel } from './model.js';

export const STARTER = {
  dir: 'assets/starter',
  modelDir: 'assets/starter/model', // an HF LLaMA folder: config.json, model.safetensors, tokenizer.json, ...
  demoTrain: 'assets/starter/demo-train.json', // Alpaca JSON (+ "task"), the adapter demo's training set
  demoTest: 'assets/starter/demo-test.json', // held-out questions with known answers
  demoResults: 'assets/starter/demo-results.json', // the build's before/after answers, per test question
  heldOut: 'assets/starter/heldout.txt', // one never-trained-on document per line: the loss check's text
  tokenizerCheck: 'assets/starter/tokenizer-check.json', // texts and the ids Python's tokenizers gives them
  report: 'assets/starter/build-report.json', // every number the build measured
  modelCard: 'assets/starter/MODEL_CARD.md',
  licence: 'assets/starter/LICENSE-WordNet.txt',
  visionDir: 'assets/starter/vision', // an HF CLIP folder (CLIPModel), trained contrastively on synthetic pictures
  scienceQaDemo: 'assets/starter/scienceqa-demo', // ScienceQA's layout: problems.json, pid_splits.json, images/
} as const;

/** Absolute path of a starter file, e.g. starterPath(STARTER.modelDir). */
export function starterPath(relative: string): string {
  return path.join(findPackageRoot(), relative);
}

/** Window length of the held-out loss: the model's training context. */
export const HELD_OUT_SEQ_LEN = 128;

/**
 * Mean next-token loss (nats per token) on held-out text (one document per line), packed into
 * 128-token windows exactly as pre-training packed its corpus. The model card reports this number.
 */
export async function heldOutLoss(model: LlamaModel, tok: Encoder, text: string): Promise<{ loss: number; tokens: number }> {
  const docs = tokenizeDocuments(tok, text.split('\n').filter((line) => line.trim() !== ''));
  const { windows, count } = packDocuments(docs, HELD_OUT_SEQ_LEN);
  const loss = await evaluateLoss(model, windows, HELD_OUT_SEQ_LEN);
  return { loss, tokens: count * (HELD_OUT_SEQ_LEN - 1) };
}
