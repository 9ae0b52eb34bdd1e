// Training and decoding on the webgpu backend (lavapipe on CI) follow the CPU backend step for step: the
// same adapter run gives the same losses, and the trained adapter generates the same text with the KV cache.

import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disposeAdapter } from '../src-main/engine/adapter.js';
import { loadAdapter } from '../src-main/engine/adapter-io.js';
import { initBackend } from '../src-main/engine/backend.js';
import { shutdownWebgpu } from '../src-main/engine/backends/webgpu.js';
import { formatAlpacaPrompt, type Instruction } from '../src-main/engine/data.js';
import { loadModel } from '../src-main/engine/load.js';
import { disposeModel } from '../src-main/engine/model.js';
import { paperRecipe, type Recipe } from '../src-main/engine/recipe.js';
import { Rng } from '../src-main/engine/rng.js';
import { generate } from '../src-main/engine/sample.js';
import { loadTokenizer, type TextTokenizer } from '../src-main/engine/tokenizer.js';
import { train } from '../src-main/engine/train.js';
import { writeTinyLlama } from './helpers/tiny-model.js';
import { makeTempDir } from './helpers/tmp.js';

const COLORS: Record<string, string> = { sky: 'blue', grass: 'green', snow: 'white', coal: 'black', blood: 'red', sun: 'yellow' };
const DATA: Instruction[] = Object.entries(COLORS).map(([thing, color]) => ({ instruction: `What color is ${thing}?`, input: '', output: color }));
const STEPS = 10;

let dir: string;
let tokenizer: TextTokenizer;

interface Run {
  losses: number[];
  answers: string[];
  numTensorsLeaked: number;
}

/** Trains on the active backend, then answers every question greedily with the trained adapter. */
async function trainAndAnswer(outDir: string): Promise<Run> {
  const model = loadModel(join(dir, 'model'));
  const recipe: Recipe = { ...paperRecipe(model.config), adapterLen: 4, adapterLayers: 2, epochs: STEPS, warmupEpochs: 1, lr: 3e-2, batchSize: 3, accumSteps: 2, maxSeqLen: 128 };
  const before = tf.memory().numTensors;
  const result = await train({ model, tokenizer, data: DATA, recipe, outDir });
  const numTensorsLeaked = tf.memory().numTensors - before;
  expect(result.status).toBe('completed');
  const adapter = loadAdapter(outDir, model);
  const answers: string[] = [];
  for (const thing of Object.keys(COLORS)) {
    const out = await generate({
      model,
      adapter,
      promptIds: tokenizer.encode(formatAlpacaPrompt(`What color is ${thing}?`), { bos: true }),
      sampling: { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, maxNewTokens: 6, stop: [] },
      rng: new Rng(0),
      eosIds: model.config.eosIds,
      tokenizer,
    });
    answers.push(out.text);
  }
  disposeAdapter(adapter);
  disposeModel(model);
  return { losses: result.losses, answers, numTensorsLeaked };
}

let cpu: Run;

beforeAll(async () => {
  dir = makeTempDir('webgpu-train');
  writeTinyLlama(join(dir, 'model'), { seed: 3 });
  const config = JSON.parse((await import('node:fs')).readFileSync(join(dir, 'model', 'config.json'), 'utf8'));
  tokenizer = await loadTokenizer(join(dir, 'model'), { bosId: config.bos_token_id, eosIds: [config.eos_token_id].flat() });
  // The reference run on the CPU backend first: tensors move from cpu to webgpu, not back (webgpu has no sync read).
  await initBackend('cpu');
  cpu = await trainAndAnswer(join(dir, 'cpu-run'));
  await initBackend('webgpu');
});

afterAll(() => shutdownWebgpu());

describe('training on webgpu', () => {
  let gpu: Run;

  it('an adapter run gives the CPU backend\'s losses step for step, and the loss falls', async () => {
    gpu = await trainAndAnswer(join(dir, 'webgpu-run'));
    expect(tf.getBackend()).toBe('webgpu');
    expect(gpu.losses.length).toBe(STEPS);
    const worst = Math.max(...gpu.losses.map((l, i) => Math.abs(l - cpu.losses[i])));
    expect(worst).toBeLessThan(1e-4 * Math.max(1, ...cpu.losses));
    expect(gpu.losses.at(-1)!).toBeLessThan(gpu.losses[0] - 0.05); // a tiny random model learns slowly at first
    expect(gpu.numTensorsLeaked).toBe(0);
  });

  it('the trained adapter decodes (KV cache) the same answers as on the CPU', () => {
    expect(gpu.answers).toEqual(cpu.answers);
    expect(new Set(gpu.answers).size).toBeGreaterThan(1); // not one fixed string for every question
  });
});
