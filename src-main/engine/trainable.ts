// What a training run updates, per method, behind one interface for the trainer:
// - adapter: the zero-init attention prompts and gates (the base model stays frozen tensors);
// - lora:    low-rank A, B pairs on chosen projections (base frozen);
// - full:    every weight, as variables initialised from the base model (Alpaca's recipe).
// Each exposes its variables under stable keys (checkpoints, optimizer state), the model and
// options forward runs with, and how its result is saved.

import * as tf from '@tensorflow/tfjs-core';
import { type Adapter, disposeAdapter, initAdapter, makeAdapter, namedAdapterVariables, randomizeGates, topLayers, gateSize } from './adapter.js';
import { type AdapterMeta, saveAdapter, saveLora } from './adapter-io.js';
import { EngineError } from './errors.js';
import { type ImageProjection, type ImagePromptSpec, initImageProjection, makeImageProjection, PROJECTION_KEYS, projectionShapes } from './image-prompt.js';
import { withOneHotGatherGradient, writeModelFolder } from './full-train.js';
import type { LoadedModel } from './load.js';
import { disposeLora, initLora, type Lora, makeLora, namedLoraVariables } from './lora.js';
import type { ForwardOptions, LayerWeights, LlamaModel, LlamaWeights } from './model.js';
import type { Recipe } from './recipe.js';
import type { Rng } from './rng.js';

export interface Trainable {
  named: [string, tf.Variable][];
  model: LlamaModel; // what forward runs on
  options: ForwardOptions; // the adapter or LoRA attached to it
  /** A multi-modal adapter's image projection: the trainer passes each batch's image features to forward. */
  imageSpec: ImagePromptSpec | null;
  /** Runs a gradient computation (full training needs gather's gradient on every backend). */
  withGradients<T>(fn: () => T): T;
  /** Seeds the randomness of the next micro-step (LoRA dropout), so resume stays exact. */
  beginMicroStep(seed: number): void;
  endTraining(): void;
  save(dir: string, meta: AdapterMeta): Promise<void>;
  dispose(): void;
}

/** Saved values by stable key, for resuming (null: start fresh). */
export type SavedValues = Map<string, Float32Array> | null;

function fromSaved(saved: SavedValues, key: string, shape: number[]): tf.Tensor | null {
  if (!saved) return null;
  const v = saved.get(key);
  if (!v) throw new EngineError(`checkpoint has no value for "${key}"`);
  if (v.length !== shape.reduce((a, b) => a * b, 1)) throw new EngineError(`checkpoint value "${key}" does not have shape [${shape}]`);
  return tf.tensor(v, shape);
}

function adapterTrainable(base: LoadedModel, recipe: Recipe, rng: Rng, saved: SavedValues, imageSpec: ImagePromptSpec | null): Trainable {
  const c = base.config;
  const spec = { adapterLen: recipe.adapterLen, layers: topLayers(c.nLayers, recipe.adapterLayers), gateMode: recipe.gateMode };
  const savedProjection = (): ImageProjection | null => {
    if (!imageSpec) return null;
    const shapes = projectionShapes(imageSpec, c.dim);
    for (const key of PROJECTION_KEYS) fromSaved(saved, key, shapes[key])?.dispose(); // all present and shaped first
    return makeImageProjection(imageSpec, c.dim, (key, shape) => fromSaved(saved, key, shape)!);
  };
  const adapter: Adapter = saved
    ? makeAdapter(spec, (layer) => ({
        prompt: fromSaved(saved, `layers.${layer}.prompt`, [spec.adapterLen, c.dim]) as tf.Tensor2D,
        gate: fromSaved(saved, `layers.${layer}.gate`, [gateSize(c, spec.gateMode)]) as tf.Tensor1D,
      }), savedProjection())
    : initAdapter(c, spec, rng);
  // Drawn after the prompts, so a text-only run's prompts are the same with or without a tower.
  if (!saved && imageSpec) adapter.image = initImageProjection(imageSpec, c.dim, rng);
  if (!saved && recipe.init === 'random') randomizeGates(adapter, rng);
  return {
    named: namedAdapterVariables(adapter),
    model: base,
    options: { adapter },
    imageSpec,
    withGradients: (fn) => fn(),
    beginMicroStep: () => {},
    endTraining: () => {},
    save: (dir, meta) => saveAdapter(dir, adapter, c, meta),
    dispose: () => disposeAdapter(adapter),
  };
}

function loraTrainable(base: LoadedModel, recipe: Recipe, rng: Rng, saved: SavedValues): Trainable {
  const c = base.config;
  const spec = { rank: recipe.loraRank, alpha: recipe.loraAlpha, dropout: recipe.loraDropout, targets: recipe.loraTargets };
  const lora: Lora = saved
    ? makeLora(c, base.weights.layers, spec, (layer, target, inDim, outDim) => ({
        a: fromSaved(saved, `layers.${layer}.${target}.a`, [inDim, spec.rank]) as tf.Tensor2D,
        b: fromSaved(saved, `layers.${layer}.${target}.b`, [spec.rank, outDim]) as tf.Tensor2D,
      }))
    : initLora(c, base.weights.layers, spec, rng);
  return {
    named: namedLoraVariables(lora),
    model: base,
    options: { lora },
    imageSpec: null,
    withGradients: (fn) => fn(),
    beginMicroStep: (seed) => void (lora.dropoutSeed = seed),
    endTraining: () => void (lora.dropoutSeed = null),
    save: (dir, meta) => saveLora(dir, lora, c, meta),
    dispose: () => disposeLora(lora),
  };
}

let fullInstances = 0;

function fullTrainable(base: LoadedModel, saved: SavedValues): Trainable {
  const id = fullInstances++;
  const named: [string, tf.Variable][] = [];
  // Variables start as the base weights (sharing their data until the first update).
  const v = <T extends tf.Tensor>(key: string, t: T): T => {
    const initial = fromSaved(saved, key, t.shape);
    const variable = tf.variable(initial ?? t, true, `full${id}.${key}`);
    initial?.dispose();
    named.push([key, variable]);
    return variable as unknown as T;
  };
  const w = base.weights;
  const layers: LayerWeights[] = w.layers.map((l, i) => {
    const entries = Object.entries(l).map(([name, t]) => [name, v(`layers.${i}.${name}`, t)]);
    return Object.fromEntries(entries) as LayerWeights;
  });
  const weights: LlamaWeights = {
    embed: v('embed', w.embed),
    ...(w.positions ? { positions: v('positions', w.positions) } : {}),
    layers,
    norm: v('norm', w.norm),
    ...(w.normBias ? { normBias: v('normBias', w.normBias) } : {}),
    lmHead: w.lmHead ? v('lmHead', w.lmHead) : null,
  };
  const model: LlamaModel = { config: base.config, weights };
  return {
    named,
    model,
    options: {},
    imageSpec: null,
    withGradients: withOneHotGatherGradient,
    beginMicroStep: () => {},
    endTraining: () => {},
    save: (dir, meta) => writeModelFolder(dir, model, { tokenizerDir: base.dir, dtype: 'F32', metadata: { base_fingerprint: meta.baseFingerprint } }),
    dispose: () => tf.dispose(named.map(([, t]) => t)),
  };
}

/** `imageSpec`: the multi-modal adapter's projection (recipe.vision plus the tower it reads). */
export function createTrainable(base: LoadedModel, recipe: Recipe, rng: Rng, saved: SavedValues = null, imageSpec: ImagePromptSpec | null = null): Trainable {
  if ((recipe.vision !== undefined) !== (imageSpec !== null)) {
    throw new EngineError(recipe.vision ? 'the recipe trains an image projection but no vision tower was given' : 'a vision tower was given but the recipe has no "vision" settings');
  }
  switch (recipe.method) {
    case 'adapter':
      return adapterTrainable(base, recipe, rng, saved, imageSpec);
    case 'lora':
      return loraTrainable(base, recipe, rng, saved);
    case 'full':
      return fullTrainable(base, saved);
  }
}
