// Recipe flags shared by `train` and `export-job`: one flag per numeric recipe field.

import type { Recipe } from '../engine/recipe.js';
import { EngineError } from '../engine/errors.js';
import { type Flags, flag, numberFlag } from './flags.js';

export const RECIPE_FLAGS = {
  'adapter-len': ['adapterLen', 'int'],
  'adapter-layers': ['adapterLayers', 'int'],
  epochs: ['epochs', 'number'],
  'warmup-epochs': ['warmupEpochs', 'number'],
  blr: ['blr', 'number'],
  lr: ['lr', 'number'],
  'min-lr': ['minLr', 'number'],
  'weight-decay': ['weightDecay', 'number'],
  'batch-size': ['batchSize', 'int'],
  'accum-steps': ['accumSteps', 'int'],
  'max-seq-len': ['maxSeqLen', 'int'],
  seed: ['seed', 'int'],
  'checkpoint-every': ['checkpointEvery', 'int'],
  'max-steps': ['maxSteps', 'int'],
  'lora-rank': ['loraRank', 'int'],
  'lora-alpha': ['loraAlpha', 'number'],
  'lora-dropout': ['loraDropout', 'number'],
  'warmup-steps': ['warmupSteps', 'int'],
  'max-grad-norm': ['maxGradNorm', 'number'],
  'val-set-size': ['valSetSize', 'int'],
  'eval-steps': ['evalSteps', 'int'],
} as const;

/**
 * Recipe fields set by a word: --schedule cosine|linear, --prompt-template alpaca|alpaca-lora,
 * --train-on-inputs true|false, --drop-last true|false.
 */
const WORD_FLAGS = { schedule: 'schedule', 'prompt-template': 'promptTemplate', init: 'init', 'train-on-inputs': 'trainOnInputs', 'drop-last': 'dropLast' } as const;

/** parseFlags spec entries for every recipe flag (all parsed as strings, then checked as numbers). */
export function recipeFlagSpec(): Record<string, 'string'> {
  return Object.fromEntries([...Object.keys(RECIPE_FLAGS), ...Object.keys(WORD_FLAGS), 'gate-mode'].map((name) => [name, 'string']));
}

/** Apply the recipe flags that were given to `recipe`, in place. */
export function applyRecipeFlags(flags: Flags, recipe: Recipe): Recipe {
  for (const [name, [key, kind]] of Object.entries(RECIPE_FLAGS)) {
    const v = numberFlag(flags, name, kind);
    if (v !== undefined) (recipe as unknown as Record<string, number>)[key] = v;
  }
  const gateMode = flag(flags, 'gate-mode');
  if (gateMode) recipe.gateMode = gateMode as Recipe['gateMode'];
  for (const [name, key] of Object.entries(WORD_FLAGS)) {
    const v = flag(flags, name);
    if (v === undefined) continue;
    // validateRecipe names a bad value of these
    if (key === 'schedule') recipe.schedule = v as Recipe['schedule'];
    else if (key === 'promptTemplate') recipe.promptTemplate = v as Recipe['promptTemplate'];
    else if (key === 'init') recipe.init = v as Recipe['init'];
    else if (v === 'true' || v === 'false') recipe[key] = v === 'true';
    else throw new EngineError(`--${name} must be true or false, got "${v}"`);
  }
  return recipe;
}
