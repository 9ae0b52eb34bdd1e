// Training recipes: every hyper-parameter of a run, the presets (the LLaMA-Adapter paper's, and
// the Alpaca and Alpaca-LoRA baselines it is compared with), and validation naming the field.

import { GATE_MODES, type GateMode } from './adapter.js';
import type { LlamaConfig } from './config.js';
import { PROMPT_TEMPLATES, type PromptTemplate } from './data.js';
import { EngineError } from './errors.js';
import type { ImageFeatureChoice } from './image-prompt.js';
import { type LoraTarget, validateLoraSpec } from './lora.js';

export const METHODS = ['adapter', 'lora', 'full'] as const;

export interface VisionRecipe {
  feature: ImageFeatureChoice;
  projectionHidden: number; // H of the projection fc1 [F -> H] -> GELU -> fc2 [H -> dim]
}

/** The paper's image term: CLIP's projected global feature; H = 128 gives its ~0.6M extra parameters at 7B. */
export const DEFAULT_VISION_RECIPE: VisionRecipe = { feature: { kind: 'projected' }, projectionHidden: 128 };
export type Method = (typeof METHODS)[number];

export interface Recipe {
  method: Method;
  // adapter (LLaMA-Adapter)
  adapterLen: number; // K prompt vectors per layer
  adapterLayers: number; // L: the top L layers are adapted
  gateMode: GateMode;
  /** The multi-modal adapter (image-prompt.ts): which tower feature, projected through an MLP of this width.
   *  Absent: text only. The tower itself is an input of the run, like the base model. */
  vision?: VisionRecipe;
  // lora (Alpaca-LoRA)
  loraRank: number;
  loraAlpha: number;
  loraDropout: number;
  loraTargets: LoraTarget[];
  // every method
  epochs: number;
  warmupEpochs: number;
  blr: number; // base lr; the peak lr is blr * effective batch / 256 (the official scaling rule)
  lr: number | null; // absolute peak lr; overrides blr when set
  minLr: number;
  weightDecay: number;
  betas: [number, number];
  eps: number;
  batchSize: number; // examples per forward pass
  accumSteps: number; // forward passes per optimizer step
  maxSeqLen: number;
  seed: number;
  checkpointEvery: number; // optimizer steps between checkpoints; 0 = only at the end
  maxSteps: number | null; // stop early after this many optimizer steps (quick trials, tests)
  // how each reference trains (the presets set these as their code does)
  schedule: Schedule; // after warm-up: half-cycle cosine (the official adapter, Alpaca) or linear decay (HF Trainer's default, Alpaca-LoRA)
  warmupSteps: number | null; // warm-up as optimizer steps (Alpaca-LoRA's 100); null: warmupEpochs
  maxGradNorm: number | null; // clip the gradients' global L2 norm (HF Trainer's 1.0); null: no clipping (the official adapter)
  trainOnInputs: boolean; // loss on the prompt too (Alpaca-LoRA's default); false: response tokens only
  dropLast: boolean; // drop each epoch's last partial batch (the official DataLoader's drop_last=True)
  promptTemplate: PromptTemplate; // Stanford Alpaca's (the adapter, the full fine-tune) or Alpaca-LoRA's (a newline after "### Response:")
  init: AdapterInit; // the adapter's gates: zero (the paper's zero-init attention) or random, N(0, 1) (its ablation)
  valSetSize: number; // examples held out for validation (Alpaca-LoRA's val_set_size 2000); 0: none
  evalSteps: number; // with a validation set: its loss every N optimizer steps, the best kept (load_best_model_at_end)
}

export const SCHEDULES = ['cosine', 'linear'] as const;
export type Schedule = (typeof SCHEDULES)[number];

/** What a recipe stored before these fields existed trained with. */
export const ADAPTER_INITS = ['zero', 'random'] as const;
export type AdapterInit = (typeof ADAPTER_INITS)[number];

export const RECIPE_FIELD_DEFAULTS = { schedule: 'cosine', warmupSteps: null, maxGradNorm: null, trainOnInputs: false, dropLast: false, promptTemplate: 'alpaca', init: 'zero', valSetSize: 0, evalSteps: 200 } as const satisfies Partial<Recipe>;

/** A recipe from storage or a file, with the fields it may predate filled as it trained. */
export function withRecipeDefaults(r: Recipe): Recipe {
  return { ...RECIPE_FIELD_DEFAULTS, ...r };
}

/** Micro-batches and optimizer steps per epoch of `examples` examples. */
export function epochShape(examples: number, r: Pick<Recipe, 'batchSize' | 'accumSteps' | 'dropLast'>): { microPerEpoch: number; stepsPerEpoch: number } {
  const microPerEpoch = r.dropLast ? Math.floor(examples / r.batchSize) : Math.ceil(examples / r.batchSize);
  return { microPerEpoch, stepsPerEpoch: Math.ceil(microPerEpoch / r.accumSteps) };
}

/**
 * The official alpaca_finetuning_v1 settings: K=10 on all layers but the first two (30 of 32 at 7B),
 * blr 9e-3 at effective batch 32 (lr 1.125e-3), 5 epochs with 2 of warmup, AdamW(0.9, 0.95), wd 0.02.
 */
export function paperRecipe(c: LlamaConfig): Recipe {
  return {
    method: 'adapter',
    adapterLen: 10,
    adapterLayers: Math.max(1, c.nLayers - 2),
    gateMode: 'per-head-tanh',
    ...LORA_DEFAULTS,
    epochs: 5,
    warmupEpochs: 2,
    blr: 9e-3,
    lr: null,
    minLr: 0,
    weightDecay: 0.02,
    betas: [0.9, 0.95],
    eps: 1e-8,
    batchSize: 4,
    accumSteps: 8,
    maxSeqLen: Math.min(512, c.maxPositions), // the paper's 512, or less for short-context models
    seed: 0,
    checkpointEvery: 0,
    maxSteps: null,
    // main_finetune.py: cosine after warm-up, no clipping, loss on the response only, DataLoader(drop_last=True)
    schedule: 'cosine',
    warmupSteps: null,
    maxGradNorm: null,
    trainOnInputs: false,
    dropLast: true,
    promptTemplate: 'alpaca',
    init: 'zero',
    valSetSize: 0,
    evalSteps: 200,
  };
}

// Alpaca-LoRA's defaults (tloen/alpaca-lora finetune.py): r 8, alpha 16, dropout 0.05 on q and v.
const LORA_DEFAULTS = { loraRank: 8, loraAlpha: 16, loraDropout: 0.05, loraTargets: ['q', 'v'] as LoraTarget[] };

/**
 * Alpaca-LoRA (tloen/alpaca-lora finetune.py on HF Trainer): lr 3e-4, 3 epochs, effective batch 128
 * (micro-batch 4), cutoff 256 tokens, AdamW without weight decay, 100 warm-up steps then HF's default linear
 * decay, gradient clipping at 1.0 (Trainer's max_grad_norm), loss on the prompt too (train_on_inputs=True), no
 * batch dropped.
 */
export function alpacaLoraRecipe(c: LlamaConfig): Recipe {
  return {
    ...paperRecipe(c),
    method: 'lora',
    epochs: 3,
    warmupEpochs: 0,
    warmupSteps: 100,
    schedule: 'linear',
    maxGradNorm: 1,
    trainOnInputs: true,
    dropLast: false,
    promptTemplate: 'alpaca-lora',
    init: 'zero',
    // finetune.py: train_test_split(test_size=2000, seed=42), eval and save every 200 steps, load_best_model_at_end.
    valSetSize: 2000,
    evalSteps: 200,
    blr: 3e-4 * (256 / 128),
    weightDecay: 0,
    betas: [0.9, 0.999],
    batchSize: 4,
    accumSteps: 32,
    maxSeqLen: Math.min(256, c.maxPositions),
  };
}

/**
 * Stanford Alpaca (full fine-tune of every weight): lr 2e-5, 3 epochs, cosine with warmup ratio
 * 0.03, weight decay 0, effective batch 128, max length 512, HF Trainer's AdamW betas.
 */
export function alpacaFullRecipe(c: LlamaConfig): Recipe {
  return {
    ...paperRecipe(c),
    method: 'full',
    epochs: 3,
    warmupEpochs: 0.03 * 3,
    maxGradNorm: 1, // HF Trainer's default
    dropLast: false,
    promptTemplate: 'alpaca',
    init: 'zero',
    valSetSize: 0,
    evalSteps: 200,
    blr: 2e-5 * (256 / 128),
    weightDecay: 0,
    betas: [0.9, 0.999],
    batchSize: 4,
    accumSteps: 32,
  };
}

export const PRESETS = { paper: paperRecipe, 'alpaca-lora': alpacaLoraRecipe, alpaca: alpacaFullRecipe } as const;
export type PresetName = keyof typeof PRESETS;

/** The preset that goes with a method: what the Train page and `--method` start from. */
export function presetFor(method: Method, c: LlamaConfig): Recipe {
  return method === 'adapter' ? paperRecipe(c) : method === 'lora' ? alpacaLoraRecipe(c) : alpacaFullRecipe(c);
}

/**
 * The paper's recipe scaled to a small model and a few thousand examples, so it runs in minutes on
 * two CPU cores: K = 10 prompt vectors (as in the paper), tanh gates, AdamW(0.9, 0.95) with wd 0.02,
 * warmup then cosine, 3 epochs at batch 8. Two changes, both measured on the starter model
 * (4 layers) and its demo set: every layer is adapted (the paper's "all but the first two" leaves
 * only 2 of 4), and the peak lr is fixed at 2e-2 (the paper's blr scaling gives 2.8e-4 at batch 8;
 * held-out ROUGE-L after 3 epochs: 42% at 1e-2, 51% at 2e-2).
 */
export function starterRecipe(c: LlamaConfig): Recipe {
  return {
    ...paperRecipe(c),
    adapterLayers: c.nLayers,
    epochs: 3,
    warmupEpochs: 0.5,
    lr: 2e-2,
    batchSize: 8,
    accumSteps: 1,
    maxSeqLen: Math.min(128, c.maxPositions),
  };
}

/**
 * What the Train page starts from on the starter model, per method: the same 3 epochs at batch 8 and
 * 128 tokens as starterRecipe, each method keeping its own preset's optimizer settings and a peak lr that
 * suits a 4M-parameter model (the 7B presets' learning rates barely move it in 3 epochs). These are
 * the recipes behind docs/EVALUATION.md's starter table (bench/method-table-starter.sh).
 */
export function starterPreset(method: Method, c: LlamaConfig): Recipe {
  if (method === 'adapter') return starterRecipe(c);
  const shape = { epochs: 3, warmupEpochs: 0.5, batchSize: 8, accumSteps: 1, maxSeqLen: Math.min(128, c.maxPositions), seed: 0 };
  // No validation split on the starter: every method trains on the same examples, as the comparison needs.
  if (method === 'lora') return { ...alpacaLoraRecipe(c), ...shape, loraRank: 8, lr: 2e-3, valSetSize: 0 };
  return { ...alpacaFullRecipe(c), ...shape, lr: 2e-4, weightDecay: 0 };
}

/**
 * How many examples train and how many are held out for validation: `valSetSize` when the data has more than that
 * many (as HF's train_test_split needs), else none.
 */
export function validationSplit(examples: number, r: Pick<Recipe, 'valSetSize'>): { train: number; val: number } {
  const val = r.valSetSize > 0 && examples > r.valSetSize ? r.valSetSize : 0;
  return { train: examples - val, val };
}

export function effectiveBatch(r: Recipe): number {
  return r.batchSize * r.accumSteps;
}

export function peakLearningRate(r: Recipe): number {
  return r.lr ?? (r.blr * effectiveBatch(r)) / 256;
}

/** Check every field; the error names the field and what it should be. */
export function validateRecipe(r: Recipe, c: LlamaConfig): Recipe {
  const fail = (field: string, want: string, got: unknown) => {
    throw new EngineError(`recipe field "${field}" must be ${want}, got ${JSON.stringify(got)}`);
  };
  const posInt = (f: keyof Recipe) => {
    if (!Number.isInteger(r[f]) || (r[f] as number) < 1) fail(f, 'a positive integer', r[f]);
  };
  const nonNeg = (f: keyof Recipe) => {
    if (typeof r[f] !== 'number' || !Number.isFinite(r[f]) || (r[f] as number) < 0) fail(f, 'a number >= 0', r[f]);
  };
  if (!METHODS.includes(r.method)) fail('method', `one of ${METHODS.join(', ')}`, r.method);
  (['adapterLen', 'batchSize', 'accumSteps', 'maxSeqLen'] as const).forEach(posInt);
  if (r.method === 'lora') validateLoraSpec({ rank: r.loraRank, alpha: r.loraAlpha, dropout: r.loraDropout, targets: r.loraTargets });
  if (r.method === 'lora' && c.plainMlp && r.loraTargets.includes('gate')) fail('loraTargets', `projections this model has (${c.family}'s MLP has no gate: q, k, v, o, up, down)`, r.loraTargets);
  // GPT-2's dropouts act while training and this engine trains without: refused, never silently dropped.
  if (c.trainingDropouts?.length) {
    throw new EngineError(`config.json sets ${c.trainingDropouts.join(', ')}: ${c.family} trains with dropout there, and this engine trains without; set them to 0 in config.json to train without dropout (inference is unaffected)`);
  }
  (['epochs', 'warmupEpochs', 'blr', 'minLr', 'weightDecay', 'eps', 'seed', 'checkpointEvery'] as const).forEach(nonNeg);
  if (!Number.isInteger(r.adapterLayers) || r.adapterLayers < 1 || r.adapterLayers > c.nLayers) {
    fail('adapterLayers', `an integer from 1 to ${c.nLayers} (the model's layers)`, r.adapterLayers);
  }
  if (!GATE_MODES.includes(r.gateMode)) fail('gateMode', `one of ${GATE_MODES.join(', ')}`, r.gateMode);
  if (r.vision !== undefined) {
    if (r.method !== 'adapter') fail('vision', 'absent: image features go into the adapter\'s prompts, so only the adapter method reads images', r.vision);
    const v = r.vision;
    if (typeof v !== 'object' || v === null) fail('vision', 'an object {feature, projectionHidden}', v);
    if (!Number.isInteger(v.projectionHidden) || v.projectionHidden < 1 || v.projectionHidden > 65536) fail('vision.projectionHidden', 'an integer from 1 to 65536', v.projectionHidden);
    const f = v.feature as { kind?: unknown; layers?: unknown } | null;
    const okFeature = typeof f === 'object' && f !== null && (f.kind === 'projected' || (f.kind === 'class-tokens' && Array.isArray(f.layers) && f.layers.length > 0 && f.layers.every((l) => Number.isInteger(l) && l >= 1)));
    if (!okFeature) fail('vision.feature', '{kind: "projected"} or {kind: "class-tokens", layers: [1-based tower layers]}', v.feature);
  }
  if (!(r.epochs > 0)) fail('epochs', 'greater than 0', r.epochs);
  if (r.warmupEpochs > r.epochs) fail('warmupEpochs', `at most epochs (${r.epochs})`, r.warmupEpochs);
  if (r.lr !== null && !(typeof r.lr === 'number' && r.lr > 0)) fail('lr', 'a positive number or null', r.lr);
  if (r.minLr > peakLearningRate(r)) fail('minLr', `at most the peak lr (${peakLearningRate(r)})`, r.minLr);
  if (!Number.isInteger(r.seed)) fail('seed', 'an integer', r.seed);
  if (!Array.isArray(r.betas) || r.betas.length !== 2 || r.betas.some((b) => !(b >= 0 && b < 1))) fail('betas', 'two numbers in [0, 1)', r.betas);
  if (r.maxSteps !== null && !(Number.isInteger(r.maxSteps) && r.maxSteps > 0)) fail('maxSteps', 'a positive integer or null', r.maxSteps);
  if (r.maxSeqLen > c.maxPositions) fail('maxSeqLen', `at most the model's max_position_embeddings (${c.maxPositions})`, r.maxSeqLen);
  if (!SCHEDULES.includes(r.schedule)) fail('schedule', `one of ${SCHEDULES.join(', ')}`, r.schedule);
  if (r.warmupSteps !== null && !(Number.isInteger(r.warmupSteps) && r.warmupSteps >= 0)) fail('warmupSteps', 'an integer >= 0 or null', r.warmupSteps);
  if (r.maxGradNorm !== null && !(typeof r.maxGradNorm === 'number' && r.maxGradNorm > 0 && Number.isFinite(r.maxGradNorm))) fail('maxGradNorm', 'a positive number or null', r.maxGradNorm);
  if (typeof r.trainOnInputs !== 'boolean') fail('trainOnInputs', 'true or false', r.trainOnInputs);
  if (!(PROMPT_TEMPLATES as readonly string[]).includes(r.promptTemplate)) fail('promptTemplate', `one of ${PROMPT_TEMPLATES.join(', ')}`, r.promptTemplate);
  if (!(ADAPTER_INITS as readonly string[]).includes(r.init)) fail('init', `one of ${ADAPTER_INITS.join(', ')}`, r.init);
  if (!Number.isInteger(r.valSetSize) || r.valSetSize < 0) fail('valSetSize', 'an integer >= 0', r.valSetSize);
  if (r.valSetSize > 0 && r.method === 'full') fail('valSetSize', '0 for a full fine-tune (keeping its best weights is not implemented)', r.valSetSize);
  posInt('evalSteps');
  if (typeof r.dropLast !== 'boolean') fail('dropLast', 'true or false', r.dropLast);
  return r;
}
