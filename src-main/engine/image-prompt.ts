// The multi-modal half of LLaMA-Adapter v1 (Zhang et al. 2023, arXiv:2303.16199, section 4.3): a frozen image
// encoder (CLIP) gives a global feature I [F] per image, a small trainable projection maps it to the model width,
// and the result is added to every prompt vector of every adapted layer:
//
//     P_l^v = P_l + Repeat_K(proj(I))        for each adapted layer l
//
// The paper does not give the projection's shape. Ours is a bottleneck MLP, fc1 [F -> H] -> GELU -> fc2
// [H -> dim], each with a bias; at H = 128 on ViT-L/14 features (F = 768) and a 7B model (dim 4096) it has 0.62M
// parameters, the paper's 1.8M - 1.2M for the image term. It is initialised as PyTorch's nn.Linear is. The
// gates still start at zero, so with or without an image the model starts as the base model. An example without
// an image gets no image term (its row is masked out), so text-only examples train and answer as before.

import * as tf from '@tensorflow/tfjs-core';
import { EngineError } from './errors.js';
import type { Rng } from './rng.js';

/** Which feature of the frozen tower feeds the projection. */
export type ImageFeatureChoice =
  | { kind: 'projected' } // CLIP's image_embeds: post_layernorm(class token) @ visual_projection
  | { kind: 'class-tokens'; layers: number[] }; // the paper's multi-scale option: class tokens of these layers, concatenated

/** What an adapter file records about the tower its projection was trained on. */
export interface VisionTowerRecord {
  name: string; // the folder's name, for messages
  fingerprint: string; // hash of config + weights: a different tower is refused
  modelType: string; // config.json's model_type ("clip" | "clip_vision_model")
  imageSize: number;
  patchSize: number;
  hiddenSize: number;
  layers: number;
  projectionDim: number | null;
}

export interface ImagePromptSpec {
  tower: VisionTowerRecord;
  feature: ImageFeatureChoice;
  featureDim: number; // F: the feature's length
  hidden: number; // H: the projection's bottleneck width
}

/** Trainable tensors of the projection, in the engine's [in, out] orientation. */
export interface ImageProjection {
  spec: ImagePromptSpec;
  fc1Weight: tf.Variable; // [F, H]
  fc1Bias: tf.Variable; // [H]
  fc2Weight: tf.Variable; // [H, dim]
  fc2Bias: tf.Variable; // [dim]
}

/** Image features of a batch: one row per example, and which rows hold an image. */
export interface BatchImages {
  features: tf.Tensor2D; // [B, F]; rows without an image are ignored (any values)
  present: tf.Tensor2D; // [B, 1]: 1 where the example has an image, else 0
}

export const PROJECTION_KEYS = ['image_projection.fc1.weight', 'image_projection.fc1.bias', 'image_projection.fc2.weight', 'image_projection.fc2.bias'] as const;

let projectionInstances = 0;

export function projectionShapes(spec: ImagePromptSpec, dim: number): Record<(typeof PROJECTION_KEYS)[number], number[]> {
  return {
    'image_projection.fc1.weight': [spec.featureDim, spec.hidden],
    'image_projection.fc1.bias': [spec.hidden],
    'image_projection.fc2.weight': [spec.hidden, dim],
    'image_projection.fc2.bias': [dim],
  };
}

/** Variables from initial values, keyed as in files (`image_projection.fc1.weight`, ...). */
export function makeImageProjection(spec: ImagePromptSpec, dim: number, values: (key: (typeof PROJECTION_KEYS)[number], shape: number[]) => tf.Tensor): ImageProjection {
  validateImagePromptSpec(spec);
  const id = projectionInstances++;
  const shapes = projectionShapes(spec, dim);
  const v = (key: (typeof PROJECTION_KEYS)[number]) => {
    const initial = values(key, shapes[key]);
    if (initial.shape.join() !== shapes[key].join()) throw new EngineError(`image projection "${key}" has shape [${initial.shape}], expected [${shapes[key]}]`);
    const variable = tf.variable(initial, true, `imageProjection${id}.${key}`);
    initial.dispose();
    return variable;
  };
  return {
    spec,
    fc1Weight: v('image_projection.fc1.weight'),
    fc1Bias: v('image_projection.fc1.bias'),
    fc2Weight: v('image_projection.fc2.weight'),
    fc2Bias: v('image_projection.fc2.bias'),
  };
}

/** PyTorch's nn.Linear initialisation: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)). */
export function initImageProjection(spec: ImagePromptSpec, dim: number, rng: Rng): ImageProjection {
  return makeImageProjection(spec, dim, (key, shape) => {
    const fanIn = key.startsWith('image_projection.fc1') ? spec.featureDim : spec.hidden;
    const bound = 1 / Math.sqrt(fanIn);
    const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < values.length; i++) values[i] = (rng.next() * 2 - 1) * bound;
    return tf.tensor(values, shape);
  });
}

export function validateImagePromptSpec(spec: ImagePromptSpec): void {
  if (!Number.isInteger(spec.featureDim) || spec.featureDim < 1) throw new EngineError(`image projection: featureDim must be a positive integer, got ${spec.featureDim}`);
  if (!Number.isInteger(spec.hidden) || spec.hidden < 1 || spec.hidden > 65536) {
    throw new EngineError(`image projection: the hidden size must be an integer from 1 to 65536, got ${spec.hidden}`);
  }
  if (spec.feature.kind === 'class-tokens') {
    const layers = spec.feature.layers;
    if (layers.length === 0 || layers.some((l) => !Number.isInteger(l) || l < 1 || l > spec.tower.layers) || new Set(layers).size !== layers.length) {
      throw new EngineError(`image feature "class-tokens": layers must be distinct integers from 1 to ${spec.tower.layers} (the tower's layers), got ${layers.join(', ')}`);
    }
  }
}

export function namedImageProjectionVariables(p: ImageProjection): [string, tf.Variable][] {
  return [
    ['image_projection.fc1.weight', p.fc1Weight],
    ['image_projection.fc1.bias', p.fc1Bias],
    ['image_projection.fc2.weight', p.fc2Weight],
    ['image_projection.fc2.bias', p.fc2Bias],
  ];
}

export function disposeImageProjection(p: ImageProjection): void {
  tf.dispose([p.fc1Weight, p.fc1Bias, p.fc2Weight, p.fc2Bias]);
}

/** Exact GELU (PyTorch's default): x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)). */
export function gelu(x: tf.Tensor): tf.Tensor {
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
}

/**
 * The image term of a batch, Repeat_K(proj(I)) as [B, 1, dim] (it broadcasts over the K prompt vectors), zero for
 * examples without an image. Differentiable with respect to the projection.
 */
export function imagePromptBias(p: ImageProjection, images: BatchImages): tf.Tensor3D {
  const { featureDim } = p.spec;
  if (images.features.shape[1] !== featureDim) {
    throw new EngineError(`image features have ${images.features.shape[1]} values per image; this adapter's projection takes ${featureDim}`);
  }
  return tf.tidy(() => {
    const h = gelu(tf.add(tf.matMul(images.features, p.fc1Weight as tf.Tensor2D), p.fc1Bias)); // [B, H]
    const projected = tf.add(tf.matMul(h as tf.Tensor2D, p.fc2Weight as tf.Tensor2D), p.fc2Bias); // [B, dim]
    const masked = tf.mul(projected, images.present); // [B, dim]
    return tf.expandDims(masked, 1) as tf.Tensor3D; // [B, 1, dim]
  });
}

/** Batch tensors from per-example features (null: no image); `featureDim` is checked for every row. */
export function batchImages(rows: (Float32Array | null)[], featureDim: number): BatchImages {
  const B = rows.length;
  const features = new Float32Array(B * featureDim);
  const present = new Float32Array(B);
  rows.forEach((row, b) => {
    if (row === null) return;
    if (row.length !== featureDim) throw new EngineError(`an image feature has ${row.length} values; expected ${featureDim}`);
    features.set(row, b * featureDim);
    present[b] = 1;
  });
  return { features: tf.tensor2d(features, [B, featureDim]), present: tf.tensor2d(present, [B, 1]) };
}

export function disposeBatchImages(images: BatchImages): void {
  tf.dispose([images.features, images.present]);
}

export function describeFeature(feature: ImageFeatureChoice): string {
  return feature.kind === 'projected' ? 'projected' : `class-tokens:${feature.layers.join(',')}`;
}

/** "projected" or "class-tokens:L1,L2,..." (the CLI's and recipe's spelling). */
export function parseFeatureChoice(text: string, where: string): ImageFeatureChoice {
  if (text === 'projected') return { kind: 'projected' };
  const m = /^class-tokens:(\d+(?:,\d+)*)$/.exec(text);
  if (m) return { kind: 'class-tokens', layers: m[1].split(',').map(Number) };
  throw new EngineError(`${where}: image feature must be "projected" or "class-tokens:L1,L2,..." (tower layers, 1-based), got ${JSON.stringify(text)}`);
}

/**
 * Refuses a tower other than the one the adapter's projection was trained on: its features would be a different
 * space, and the answers silently wrong.
 */
export function checkVisionTower(adapter: { image: ImageProjection | null }, tower: VisionTowerRecord): void {
  const trained = adapter.image?.spec.tower;
  if (!trained) throw new EngineError('this adapter takes no images (it was trained without a vision tower)');
  if (trained.fingerprint !== tower.fingerprint) {
    throw new EngineError(
      `this adapter was trained with the vision tower ${trained.name} (fingerprint ${trained.fingerprint}); ` +
        `${tower.name} is a different tower (fingerprint ${tower.fingerprint}): use the one it was trained with`,
    );
  }
}
