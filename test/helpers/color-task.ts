// A tiny instruction task and a tiny random model for training tests: "What color is sky?" -> "blue".

import { join } from 'node:path';
import type { Instruction } from '../../src-main/engine/data.js';
import { type LoadedModel, loadModel } from '../../src-main/engine/load.js';
import { paperRecipe, type Recipe } from '../../src-main/engine/recipe.js';
import { loadTokenizer, type TextTokenizer } from '../../src-main/engine/tokenizer.js';
import { writeTinyLlama } from './tiny-model.js';

export const COLORS: Record<string, string> = { sky: 'blue', grass: 'green', snow: 'white', coal: 'black', blood: 'red', sun: 'yellow' };
export const COLOR_DATA: Instruction[] = Object.entries(COLORS).map(([thing, color]) => ({ instruction: `What color is ${thing}?`, input: '', output: color }));

export interface TinyTrainer {
  model: LoadedModel;
  tokenizer: TextTokenizer;
  /** 6 examples, batch 3 x 2 accumulation steps: one optimizer step per epoch. */
  recipe: (overrides?: Partial<Recipe>) => Recipe;
}

export async function tinyTrainer(dir: string): Promise<TinyTrainer> {
  writeTinyLlama(join(dir, 'model'), { seed: 3, finalNormScale: 3 });
  const model = loadModel(join(dir, 'model'));
  const tokenizer = await loadTokenizer(join(dir, 'model'), { bosId: model.config.bosId, eosIds: model.config.eosIds });
  // A high lr: the tiny random model needs big moves, and the tests must stay short.
  const recipe = (overrides: Partial<Recipe> = {}): Recipe => ({
    ...paperRecipe(model.config),
    adapterLen: 10, adapterLayers: 2, epochs: 120, warmupEpochs: 1, lr: 0.3, batchSize: 3, accumSteps: 2, maxSeqLen: 256,
    ...overrides,
  });
  return { model, tokenizer, recipe };
}
