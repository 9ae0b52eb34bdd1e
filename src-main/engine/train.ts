// The training loop, shared by the three methods (trainable.ts): for the adapter and LoRA only
// their small tensors are variables and the base model stays frozen tensors, so tfjs builds no
// gradients or optimizer state for it; `full` makes every weight a variable.
//
// A step: variableGrads over the method's variables -> accumulate over micro-batches -> AdamW.
// Checkpoints hold the trainable values, the optimizer moments and the step; the data order of
// every epoch is a function of (seed, epoch), so resuming from step N replays exactly what an
// uninterrupted run would have done.

import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { type Encoder, epochOrder, type Instruction, makeBatch, tokenizeExample } from './data.js';
import { EngineError } from './errors.js';
import { yieldToEventLoop } from './cancel.js';
import { batchImages, disposeBatchImages, type ImagePromptSpec } from './image-prompt.js';
import type { LoadedModel } from './load.js';
import { nextTokenLoss, shiftedTargets } from './loss.js';
import { type AdamWState, adamWStep, clipGradNorm, disposeAdamWState, learningRate, newAdamWState } from './optimizer.js';
import { epochShape, peakLearningRate, type Recipe, validateRecipe, validationSplit, withRecipeDefaults } from './recipe.js';
import { Rng } from './rng.js';
import { SafetensorsFile, writeAtomically, writeSafetensors } from './safetensors.js';
import { createTrainable, type SavedValues, type Trainable } from './trainable.js';

/**
 * One optimizer step as a checkpoint remembers it. Every checkpoint carries the whole history up to its step,
 * so whoever records the run (the app's database) can fill in steps it missed, say because it was killed
 * after the engine wrote the checkpoint but before it heard about it.
 */
export interface StepRecord {
  step: number;
  loss: number;
  lr: number;
  tokensPerSec: number;
  rssBytes: number;
  /** Training time up to this step, summed over the sessions of a resumed run. */
  elapsedMs: number;
}

export type TrainEvent =
  | {
      type: 'start';
      totalSteps: number;
      stepsPerEpoch: number;
      examples: number;
      trainableParams: number;
      lr: number;
      resumedFrom: number | null;
      /** The checkpoint folder resumed from, and the steps it remembers (empty on a fresh start). */
      resumedFromPath: string | null;
      history: StepRecord[];
      notes?: string[];
    }
  | {
      type: 'step';
      step: number;
      totalSteps: number;
      epoch: number; // fractional
      loss: number;
      lr: number;
      tokensPerSec: number;
      etaSec: number;
      rssBytes: number;
      peakRssBytes: number; // the process's high-water mark
      tensorBytes: number;
    }
  | { type: 'checkpoint'; step: number; path: string }
  /** The validation loss (recipe.valSetSize > 0), every evalSteps steps; `best`: the lowest so far, whose weights are kept. */
  | { type: 'eval'; step: number; valLoss: number; best: boolean }
  | { type: 'done'; step: number; status: 'completed' | 'paused' | 'cancelled'; adapterDir: string | null };

export interface TrainOptions {
  model: LoadedModel;
  tokenizer: Encoder & { hash?: string; eosIds: number[] };
  data: Instruction[];
  recipe: Recipe;
  /** A multi-modal run (recipe.vision): the projection's spec and each example's image feature (null: no
   *  image), aligned with `data`, computed once by the frozen tower (vision-features.ts). */
  vision?: { spec: ImagePromptSpec; features: (Float32Array | null)[] };
  outDir: string;
  resume?: boolean;
  signal?: AbortSignal;
  /** On abort: 'pause' writes a checkpoint to resume from; 'cancel' just stops. */
  onAbort?: 'pause' | 'cancel';
  onEvent?: (e: TrainEvent) => void;
}

export interface TrainResult {
  status: 'completed' | 'paused' | 'cancelled';
  steps: number;
  losses: number[]; // per optimizer step, from the first step of this process
  adapterDir: string | null;
}

const STATE_FILE = 'trainer_state.json';
const OPTIMIZER_FILE = 'optimizer.safetensors';
const VALUES_FILE = 'trainable.safetensors';

function dataHash(data: Instruction[]): string {
  const h = createHash('sha256');
  for (const ex of data) h.update(JSON.stringify([ex.instruction, ex.input, ex.output]));
  return h.digest('hex').slice(0, 32);
}

export function trainableParameterCount(t: Trainable): number {
  return t.named.reduce((n, [, v]) => n + v.size, 0);
}

function checkpointDirs(outDir: string): { step: number; path: string }[] {
  const root = join(outDir, 'checkpoints');
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .map((name) => ({ name, m: /^step-(\d+)$/.exec(name) }))
    .filter((x) => x.m && existsSync(join(root, x.name, STATE_FILE)))
    .map((x) => ({ step: Number(x.m![1]), path: join(root, x.name) }))
    .sort((a, b) => a.step - b.step);
}

export function latestCheckpoint(outDir: string): { step: number; path: string } | null {
  return checkpointDirs(outDir).at(-1) ?? null;
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  const { model, tokenizer, data, outDir } = opts;
  const c = model.config;
  const recipe = validateRecipe(withRecipeDefaults(opts.recipe), c);
  if (data.length === 0) throw new EngineError('the training dataset has no examples');
  if (tokenizer.eosIds.length === 0) throw new EngineError(`${model.dir}: config.json names no eos_token_id; training needs one to end responses`);
  const padId = tokenizer.eosIds[0];
  const vision = opts.vision ?? null;
  if (vision && vision.features.length !== data.length) throw new EngineError(`image features for ${vision.features.length} examples, but the dataset has ${data.length}`);
  const tokenized = data.map((ex) => tokenizeExample(tokenizer, ex, recipe.maxSeqLen, { trainOnInputs: recipe.trainOnInputs, template: recipe.promptTemplate }));
  // Alpaca-LoRA's validation split (val_set_size): a seeded draw held out, the rest trains in its own order.
  const held = validationIndices(tokenized.length, validationSplit(tokenized.length, recipe).val);
  const examples = held.train.map((i) => tokenized[i]!);
  const valExamples = held.val.map((i) => tokenized[i]!);
  const trainFeatures = vision ? held.train.map((i) => vision.features[i]!) : null;
  const valFeatures = vision ? held.val.map((i) => vision.features[i]!) : null;
  if (!examples.some((e) => e.ids.length > e.promptLength)) throw new EngineError(`every example's prompt fills maxSeqLen (${recipe.maxSeqLen}); nothing is left to learn from`);

  const { microPerEpoch, stepsPerEpoch } = epochShape(examples.length, recipe);
  if (microPerEpoch === 0) throw new EngineError(`${examples.length} examples make no whole batch of ${recipe.batchSize}, and the recipe drops the last partial batch (dropLast); use a smaller batch or dropLast: false`);
  // Warm-up given in optimizer steps (Alpaca-LoRA's 100) becomes epochs here; the schedule runs on epochs.
  const warmupEpochs = recipe.warmupSteps !== null ? Math.min(recipe.epochs, recipe.warmupSteps / stepsPerEpoch) : recipe.warmupEpochs;
  const plannedSteps = Math.ceil(stepsPerEpoch * recipe.epochs);
  const totalSteps = recipe.maxSteps === null ? plannedSteps : Math.min(plannedSteps, recipe.maxSteps);
  const peakLr = peakLearningRate(recipe);
  const hashOfData = dataHash(data);

  // Fresh start or resume.
  let trainable: Trainable;
  let optState: AdamWState;
  let step = 0;
  let resumedFrom: number | null = null;
  const rng = new Rng(recipe.seed);
  // Resume from the newest checkpoint that reads whole; a damaged one (a crash mid-write on a disk without
  // ordered writes, another tool) is skipped for the one before it, which is kept for exactly this, and said so.
  const notes: string[] = [];
  if (recipe.valSetSize > 0) {
    notes.push(
      valExamples.length
        ? `${valExamples.length} examples held out for validation (val_set_size): its loss every ${recipe.evalSteps} steps, the best weights kept`
        : `val_set_size ${recipe.valSetSize} needs more than ${recipe.valSetSize} examples; all ${tokenized.length} train, without a validation set`,
    );
  }
  let best: BestWeights | null = null;
  let loaded: { trainable: Trainable; optState: AdamWState; step: number; path: string; history: StepRecord[]; best: BestWeights | null } | null = null;
  const candidates = opts.resume ? checkpointDirs(outDir).reverse() : [];
  if (opts.resume && candidates.length === 0) throw new EngineError(`${outDir}: --resume was given but there is no checkpoint to resume from`);
  for (const checkpoint of candidates) {
    let state: CheckpointState;
    let values: SavedValues;
    let optimizer: Map<string, Float32Array>;
    try {
      state = readCheckpointState(join(checkpoint.path, STATE_FILE));
      values = readValues(join(checkpoint.path, VALUES_FILE));
      optimizer = readValues(join(checkpoint.path, OPTIMIZER_FILE));
    } catch (e) {
      notes.push(`checkpoint ${checkpoint.path} is damaged (${(e as Error).message}); resuming from the one before it`);
      continue;
    }
    // A different dataset or recipe is the user's change, not damage: an older checkpoint would differ the same way.
    if (state.dataHash !== hashOfData) throw new EngineError(`${checkpoint.path}: the dataset differs from the one this run was trained on; resume needs the same data`);
    const { maxSteps: _a, checkpointEvery: _b, ...savedCore } = withRecipeDefaults(state.recipe);
    const { maxSteps: _c, checkpointEvery: _d, ...nowCore } = recipe;
    if (canonicalJson(savedCore) !== canonicalJson(nowCore)) {
      throw new EngineError(`${checkpoint.path}: the recipe differs from the checkpoint's (${JSON.stringify(savedCore)}); resume needs the same recipe`);
    }
    const restored = createTrainable(model, recipe, rng, values, vision?.spec ?? null);
    try {
      const bestSaved = state.best ? { ...state.best, values: readValues(join(checkpoint.path, BEST_FILE)) } : null;
      loaded = { trainable: restored, optState: optimizerStateFrom(optimizer, join(checkpoint.path, OPTIMIZER_FILE), restored, state.optimizerStep), step: state.step, path: checkpoint.path, history: state.log_history ?? [], best: bestSaved };
      break;
    } catch (e) {
      restored.dispose();
      notes.push(`checkpoint ${checkpoint.path} is damaged (${(e as Error).message}); resuming from the one before it`);
    }
  }
  if (opts.resume && !loaded) throw new EngineError(`${outDir}: no checkpoint could be read, so the run cannot resume:\n  ${notes.join('\n  ')}`);
  let history: StepRecord[] = [];
  if (loaded) {
    ({ trainable, optState, step, history, best } = loaded);
    resumedFrom = step;
  } else {
    trainable = createTrainable(model, recipe, rng, null, vision?.spec ?? null);
    optState = newAdamWState(trainable.named.map(([, v]) => v));
  }
  const vars = trainable.named.map(([, v]) => v);
  const meta = { baseFingerprint: model.fingerprint, baseModelPath: model.dir, tokenizerHash: tokenizer.hash ?? null, recipe };
  opts.onEvent?.({
    type: 'start',
    totalSteps,
    stepsPerEpoch,
    examples: examples.length,
    trainableParams: trainableParameterCount(trainable),
    lr: peakLr,
    resumedFrom,
    resumedFromPath: loaded?.path ?? null,
    history: [...history],
    ...(notes.length ? { notes } : {}),
  });
  const elapsedBeforeMs = history.at(-1)?.elapsedMs ?? 0;

  const saveCheckpoint = async () => {
    const root = join(outDir, 'checkpoints');
    const final = join(root, `step-${String(step).padStart(6, '0')}`);
    const tmp = `${final}.tmp`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    await writeValues(join(tmp, VALUES_FILE), trainable);
    await writeOptimizerState(join(tmp, OPTIMIZER_FILE), trainable, optState);
    if (best) writeSafetensors(join(tmp, BEST_FILE), [...best.values].map(([name, data]) => ({ name, shape: [data.length], data })));
    const bestState = best ? { best: { step: best.step, valLoss: best.valLoss } } : {};
    const state = Buffer.from(JSON.stringify({ step, optimizerStep: optState.step, recipe, dataHash: hashOfData, rng: rng.state(), log_history: history, ...bestState }, null, 2));
    writeAtomically(join(tmp, STATE_FILE), (fd) => writeSync(fd, state)); // fsynced: on disk before the rename below
    rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final); // a checkpoint folder exists whole or not at all
    syncDir(root);
    // Keep the two newest: enough to survive a crash during the next write.
    for (const old of checkpointDirs(outDir).slice(0, -2)) rmSync(old.path, { recursive: true, force: true });
    opts.onEvent?.({ type: 'checkpoint', step, path: final });
  };

  /** The mean loss over the validation set (batch-weighted, as HF's eval_loss), without dropout or gradients. */
  const validationLoss = async (): Promise<number> => {
    trainable.endTraining(); // LoRA's dropout off; the next micro-step turns it on again
    let sum = 0;
    for (let s = 0; s < valExamples.length; s += recipe.batchSize) {
      await yieldToEventLoop();
      const picked = valExamples.slice(s, s + recipe.batchSize);
      const batch = makeBatch(picked, padId);
      const targets = shiftedTargets(batch.labels, batch.B, batch.T);
      const ids = tf.tensor2d(batch.ids, [batch.B, batch.T], 'int32');
      const images = valFeatures ? batchImages(valFeatures.slice(s, s + recipe.batchSize), vision!.spec.featureDim) : null;
      const options = images ? { ...trainable.options, images } : trainable.options;
      const loss = nextTokenLoss(trainable.model, ids, targets, options);
      sum += (await loss.data())[0]! * batch.B;
      tf.dispose([loss, ids, targets.labels, targets.mask]);
      if (images) disposeBatchImages(images);
    }
    return sum / valExamples.length;
  };

  const losses: number[] = [];
  const started = performance.now();
  let tokensSeen = 0;
  let status: TrainResult['status'] = 'completed';
  try {
    while (step < totalSteps) {
      if (opts.signal?.aborted) {
        status = opts.onAbort === 'pause' ? 'paused' : 'cancelled';
        break;
      }
      const epoch = Math.floor(step / stepsPerEpoch);
      const groupInEpoch = step % stepsPerEpoch;
      const order = epochOrder(examples.length, recipe.seed, epoch);
      const firstMicro = groupInEpoch * recipe.accumSteps;
      const micros = Math.min(recipe.accumSteps, microPerEpoch - firstMicro);
      const lr = learningRate(epoch + firstMicro / microPerEpoch, { lr: peakLr, minLr: recipe.minLr, warmupEpochs, epochs: recipe.epochs, schedule: recipe.schedule });

      let summed: Record<string, tf.Tensor> | null = null;
      let lossSum = 0;
      for (let m = 0; m < micros; m++) {
        await yieldToEventLoop(); // lets cancel/pause messages and progress I/O through between micro-steps
        const start = (firstMicro + m) * recipe.batchSize;
        const picked = order.slice(start, start + recipe.batchSize);
        const batch = makeBatch(picked.map((i) => examples[i]), padId);
        const targets = shiftedTargets(batch.labels, batch.B, batch.T);
        const ids = tf.tensor2d(batch.ids, [batch.B, batch.T], 'int32');
        const images = vision ? batchImages(picked.map((i) => trainFeatures![i]!), vision.spec.featureDim) : null;
        const options = images ? { ...trainable.options, images } : trainable.options;
        trainable.beginMicroStep(recipe.seed * 1_000_003 + (step * recipe.accumSteps + m));
        const { value, grads } = trainable.withGradients(() =>
          tf.variableGrads(() => nextTokenLoss(trainable.model, ids, targets, options), vars),
        );
        tf.dispose([ids, targets.labels, targets.mask]);
        if (images) disposeBatchImages(images);
        const loss = (await value.data())[0];
        value.dispose();
        if (!Number.isFinite(loss)) {
          tf.dispose(Object.values(grads));
          throw new EngineError(`training diverged: the loss is ${loss} at step ${step + 1} (epoch ${epoch + 1}); lower the learning rate or check the data`);
        }
        lossSum += loss;
        tokensSeen += batch.tokens;
        if (summed === null) summed = grads;
        else {
          const prev: Record<string, tf.Tensor> = summed;
          summed = Object.fromEntries(Object.keys(grads).map((k) => [k, tf.add(prev[k], grads[k])]));
          tf.dispose([...Object.values(prev), ...Object.values(grads)]);
        }
      }
      let meanGrads = tf.tidy(() => Object.fromEntries(Object.entries(summed!).map(([k, g]) => [k, tf.div(g, micros)])));
      tf.dispose(Object.values(summed!));
      // HF Trainer clips the accumulated gradient (max_grad_norm) before the optimizer step; the official adapter does not.
      if (recipe.maxGradNorm !== null) meanGrads = clipGradNorm(meanGrads, recipe.maxGradNorm).grads;
      adamWStep(vars, meanGrads, optState, lr, { betas: recipe.betas, eps: recipe.eps, weightDecay: recipe.weightDecay });
      tf.dispose(Object.values(meanGrads));
      step += 1;
      const loss = lossSum / micros;
      losses.push(loss);

      const elapsed = (performance.now() - started) / 1000;
      const stepsDone = step - (resumedFrom ?? 0);
      const rssBytes = process.memoryUsage().rss;
      const tokensPerSec = tokensSeen / Math.max(elapsed, 1e-9);
      history.push({ step, loss, lr, tokensPerSec, rssBytes, elapsedMs: Math.round(elapsedBeforeMs + elapsed * 1000) });
      opts.onEvent?.({
        type: 'step',
        step,
        totalSteps,
        epoch: step / stepsPerEpoch,
        loss,
        lr,
        tokensPerSec,
        etaSec: (elapsed / stepsDone) * (totalSteps - step),
        rssBytes,
        peakRssBytes: process.resourceUsage().maxRSS * 1024,
        tensorBytes: tf.memory().numBytes,
      });
      if (valExamples.length && step % recipe.evalSteps === 0) {
        const valLoss = await validationLoss();
        const isBest = !best || valLoss < best.valLoss;
        if (isBest) best = { step, valLoss, values: new Map(await Promise.all(trainable.named.map(async ([key, v]) => [key, new Float32Array(await v.data())] as const))) };
        opts.onEvent?.({ type: 'eval', step, valLoss, best: isBest });
      }
      if (recipe.checkpointEvery > 0 && step % recipe.checkpointEvery === 0 && step < totalSteps) await saveCheckpoint();
    }
    trainable.endTraining();
    if (status === 'paused') await saveCheckpoint();
    let adapterDir: string | null = null;
    if (status === 'completed') {
      // HF's load_best_model_at_end: what is saved is the evaluated step with the lowest validation loss.
      if (best && best.step !== step) {
        for (const [key, v] of trainable.named) v.assign(tf.tensor(best.values.get(key)!, v.shape));
      }
      const validation = best ? { examples: valExamples.length, evalSteps: recipe.evalSteps, bestStep: best.step, bestValLoss: best.valLoss } : undefined;
      await trainable.save(outDir, validation ? { ...meta, validation } : meta);
      adapterDir = outDir;
    }
    opts.onEvent?.({ type: 'done', step, status, adapterDir });
    return { status, steps: step, losses, adapterDir };
  } finally {
    trainable.dispose();
    disposeAdamWState(optState);
  }
}

// Values and moments are stored under stable keys (layers.{i}.prompt, m.layers.{i}.prompt, ...),
// never tfjs variable names, which differ from process to process.
async function writeValues(path: string, t: Trainable): Promise<void> {
  const tensors = [];
  for (const [key, v] of t.named) tensors.push({ name: key, shape: v.shape, data: new Float32Array(await v.data()) });
  writeSafetensors(path, tensors);
}

function readValues(path: string): Map<string, Float32Array> {
  const file = SafetensorsFile.open(path);
  try {
    return new Map(file.tensors().map((t) => [t.name, file.readF32(t.name)]));
  } finally {
    file.close();
  }
}

async function writeOptimizerState(path: string, t: Trainable, state: AdamWState): Promise<void> {
  const tensors = [];
  for (const [key, v] of t.named) {
    tensors.push({ name: `m.${key}`, shape: v.shape, data: new Float32Array(await state.m.get(v.name)!.data()) });
    tensors.push({ name: `v.${key}`, shape: v.shape, data: new Float32Array(await state.v.get(v.name)!.data()) });
  }
  writeSafetensors(path, tensors, { step: String(state.step) });
}

/** AdamW's moments for `t`'s variables from an optimizer file's tensors, each checked by name and size. */
function optimizerStateFrom(tensors: Map<string, Float32Array>, path: string, t: Trainable, step: number): AdamWState {
  const state: AdamWState = { step, m: new Map(), v: new Map() };
  for (const [key, v] of t.named) {
    for (const kind of ['m', 'v'] as const) {
      const name = `${kind}.${key}`;
      const values = tensors.get(name);
      if (!values) throw new EngineError(`${path}: optimizer state "${name}" is missing`);
      if (values.length !== v.size) throw new EngineError(`${path}: optimizer state "${name}" has ${values.length} values; the variable has ${v.size}`);
    }
  }
  for (const [key, v] of t.named) for (const kind of ['m', 'v'] as const) state[kind].set(v.name, tf.tensor(tensors.get(`${kind}.${key}`)!, v.shape));
  return state;
}

interface CheckpointState {
  step: number;
  optimizerStep: number;
  recipe: Recipe;
  dataHash: string;
  /** Absent in checkpoints written before histories were kept. */
  log_history?: StepRecord[];
  /** With a validation set: the best evaluated step so far (its weights in BEST_FILE). */
  best?: { step: number; valLoss: number };
}

/** The weights of the evaluated step with the lowest validation loss, by trainable key. */
interface BestWeights {
  step: number;
  valLoss: number;
  values: Map<string, Float32Array>;
}

const BEST_FILE = 'best.safetensors';

/** Which examples train and which are held out: `val` drawn by a fixed seed (Alpaca-LoRA's 42), the rest in order. */
export function validationIndices(n: number, val: number): { train: number[]; val: number[] } {
  if (val === 0) return { train: [...Array(n).keys()], val: [] };
  const order = new Rng(42).shuffle([...Array(n).keys()]);
  const held = new Set(order.slice(0, val));
  return { train: [...Array(n).keys()].filter((i) => !held.has(i)), val: order.slice(0, val).sort((a, b) => a - b) };
}

const STEP_RECORD_FIELDS = ['loss', 'lr', 'tokensPerSec', 'rssBytes', 'elapsedMs'] as const;

/** A checkpoint's history: steps 1..step in order, each with finite numbers; anything else is damage. */
function checkHistory(value: unknown, step: number, file: string): StepRecord[] {
  if (!Array.isArray(value)) throw new EngineError(`${file}: field "log_history" must be a list`);
  return value.map((r: Partial<StepRecord> | null, i) => {
    const where = `${file}: log_history[${i}]`;
    if (typeof r !== 'object' || r === null) throw new EngineError(`${where} is not an object`);
    if (!Number.isInteger(r.step) || r.step! < 1 || r.step! > step || (i > 0 && r.step! <= (value[i - 1] as StepRecord).step)) {
      throw new EngineError(`${where}: "step" must be a whole number rising from 1 to the checkpoint's step ${step}, got ${String(r.step)}`);
    }
    for (const f of STEP_RECORD_FIELDS) if (typeof r[f] !== 'number' || !Number.isFinite(r[f])) throw new EngineError(`${where}: "${f}" must be a finite number`);
    return { step: r.step!, loss: r.loss!, lr: r.lr!, tokensPerSec: r.tokensPerSec!, rssBytes: r.rssBytes!, elapsedMs: r.elapsedMs! };
  });
}

/** trainer_state.json, checked field by field: an empty or garbled file is damage, named as such. */
function readCheckpointState(path: string): CheckpointState {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new EngineError(`${basename(path)} is not valid JSON: ${(e as Error).message}`);
  }
  const s = raw as Partial<CheckpointState> | null;
  if (typeof s !== 'object' || s === null) throw new EngineError(`${basename(path)} is not an object`);
  if (!Number.isInteger(s.step) || s.step! < 0) throw new EngineError(`${basename(path)}: field "step" must be an integer >= 0`);
  if (!Number.isInteger(s.optimizerStep) || s.optimizerStep! < 0) throw new EngineError(`${basename(path)}: field "optimizerStep" must be an integer >= 0`);
  if (typeof s.dataHash !== 'string') throw new EngineError(`${basename(path)}: field "dataHash" is missing`);
  if (typeof s.recipe !== 'object' || s.recipe === null) throw new EngineError(`${basename(path)}: field "recipe" is missing`);
  const history = s.log_history === undefined ? undefined : checkHistory(s.log_history, s.step!, basename(path));
  const best = s.best as { step?: unknown; valLoss?: unknown } | undefined;
  if (best !== undefined && (!Number.isInteger(best.step) || typeof best.valLoss !== 'number' || !Number.isFinite(best.valLoss))) {
    throw new EngineError(`${basename(path)}: field "best" must hold the step and a finite validation loss`);
  }
  return { ...(s as CheckpointState), log_history: history };
}

/** Makes a rename in `dir` durable (best effort: not every platform can open a folder). */
function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* best effort */
  }
}

/** JSON with object keys sorted at every level, so two recipes compare by content, not by key order. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}
