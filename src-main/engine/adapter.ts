// Zero-init attention: the LLaMA-Adapter.
//
// Zhang et al., "LLaMA-Adapter: Efficient Fine-tuning of Language Models with Zero-init Attention"
// (arXiv:2303.16199), eq. 6-8, and the official alpaca_finetuning_v1 code.
//
// Each of the top L layers learns K prompt vectors P_l [K, dim] and a gate. The prompt goes through
// that layer's frozen wk / wv (no RoPE: the prompt has no position), the queries attend to it with a
// softmax of its own, and the result is scaled by the gate and added to the ordinary attention
// output before wo. Gates start at zero, so at step 0 the adapted model IS the base model.

import * as tf from '@tensorflow/tfjs-core';
import type { LlamaConfig } from './config.js';
import { EngineError } from './errors.js';
import { disposeImageProjection, type ImageProjection, namedImageProjectionVariables } from './image-prompt.js';
import { headNorm } from './norm.js';
import type { Rng } from './rng.js';

/**
 * How the gate scales the prompt attention.
 * - per-head-tanh: one gate per head, g = tanh(gate). The official training form; the default.
 * - per-head:      one gate per head, g = gate. The official inference code.
 * - per-layer:     one scalar per layer, g = gate. PEFT's adaption prompt.
 */
export type GateMode = 'per-head-tanh' | 'per-head' | 'per-layer';
export const GATE_MODES: readonly GateMode[] = ['per-head-tanh', 'per-head', 'per-layer'];

export interface AdapterSpec {
  adapterLen: number; // K prompt vectors per adapted layer
  layers: number[]; // indices of adapted layers, ascending (the top L)
  gateMode: GateMode;
}

/** Trainable tensors of one adapted layer. */
export interface AdapterLayer {
  prompt: tf.Variable; // [K, dim]
  gate: tf.Variable; // [nHeads] or [1] (per-layer)
}

export interface Adapter {
  spec: AdapterSpec;
  byLayer: Map<number, AdapterLayer>;
  /** The multi-modal adapter's image projection (image-prompt.ts); null for a text-only adapter. */
  image: ImageProjection | null;
}

/** The top `count` layers of an n-layer model, as the paper adapts them. */
export function topLayers(nLayers: number, count: number): number[] {
  if (!Number.isInteger(count) || count < 1 || count > nLayers) {
    throw new EngineError(`adapter layers must be between 1 and ${nLayers} (the model's layer count), got ${count}`);
  }
  return Array.from({ length: count }, (_, i) => nLayers - count + i);
}

export function gateSize(c: LlamaConfig, mode: GateMode): number {
  return mode === 'per-layer' ? 1 : c.nHeads;
}

let adapterInstances = 0;

/**
 * Trainable variables from initial values. tfjs variable names are global, so each adapter gets
 * its own prefix; files and optimizer state use the stable keys of `namedAdapterVariables`.
 */
export function makeAdapter(
  spec: AdapterSpec,
  values: (layer: number) => { prompt: tf.Tensor2D; gate: tf.Tensor1D },
  image: ImageProjection | null = null,
): Adapter {
  const id = adapterInstances++;
  const byLayer = new Map<number, AdapterLayer>();
  for (const layer of spec.layers) {
    const v = values(layer);
    byLayer.set(layer, {
      prompt: tf.variable(v.prompt, true, `adapter${id}.layers.${layer}.prompt`),
      gate: tf.variable(v.gate, true, `adapter${id}.layers.${layer}.gate`),
    });
    tf.dispose([v.prompt, v.gate]); // the variables hold their own references to the data
  }
  return { spec, byLayer, image };
}

/** Prompts ~ N(0, 1) as in the reference code (nn.Embedding's init); gates exactly 0. */
export function initAdapter(c: LlamaConfig, spec: AdapterSpec, rng: Rng, image: ImageProjection | null = null): Adapter {
  return makeAdapter(spec, () => {
    const values = new Float32Array(spec.adapterLen * c.dim);
    for (let i = 0; i < values.length; i++) values[i] = rng.normal();
    return { prompt: tf.tensor2d(values, [spec.adapterLen, c.dim]), gate: tf.zeros([gateSize(c, spec.gateMode)]) };
  }, image);
}

/**
 * The zero-init ablation (the paper's Table 5: random-init gates lose 43 points on ScienceQA): every gate
 * drawn from N(0, 1) instead of 0, so the prompts disturb the frozen model from the first step. Drawn after
 * everything else, so the prompts are the same values as the zero-init run with the same seed.
 */
export function randomizeGates(adapter: Adapter, rng: Rng): void {
  for (const l of adapter.byLayer.values()) {
    const values = new Float32Array(l.gate.size);
    for (let i = 0; i < values.length; i++) values[i] = rng.normal();
    l.gate.assign(tf.tensor1d(values));
  }
}

/**
 * The adapter's trainable tensors under stable keys (`layers.{i}.prompt`, `layers.{i}.gate`, and the image
 * projection's `image_projection.*` for a multi-modal adapter): what trains, what files and checkpoints hold.
 */
export function namedAdapterVariables(adapter: Adapter): [string, tf.Variable][] {
  const layers = [...adapter.byLayer].flatMap(([layer, l]): [string, tf.Variable][] => [
    [`layers.${layer}.prompt`, l.prompt],
    [`layers.${layer}.gate`, l.gate],
  ]);
  return adapter.image ? [...layers, ...namedImageProjectionVariables(adapter.image)] : layers;
}

export function adapterVariables(adapter: Adapter): tf.Variable[] {
  return namedAdapterVariables(adapter).map(([, v]) => v);
}

export function disposeAdapter(adapter: Adapter): void {
  for (const l of adapter.byLayer.values()) {
    l.prompt.dispose();
    l.gate.dispose();
  }
  if (adapter.image) disposeImageProjection(adapter.image);
}

/**
 * The prompt's keys and values through the layer's frozen projections, laid out like the token
 * keys after GQA repetition. `promptBias` [B, 1 | K, dim] is the multi-modal term (image features
 * projected per example, image-prompt.ts) added to the prompt; without it the result has batch 1 and broadcasts.
 */
export function promptKeysValues(
  c: LlamaConfig,
  prompt: tf.Tensor2D, // [K, dim]
  // The layer's key/value path: wk, wv [dim, nKvHeads * headDim] and their biases where the family has them
  // (Qwen2, LLaMA with attention_bias), as PEFT's k_proj(prompt) applies them, and Qwen3's k_norm [hd] (its
  // queries are normed: prompt keys left unnormed would be on another scale than the token keys). Never RoPE.
  w: { wk: tf.Tensor2D; wv: tf.Tensor2D; bk?: tf.Tensor1D; bv?: tf.Tensor1D; kNorm?: tf.Tensor1D },
  promptBias?: tf.Tensor3D,
): { kp: tf.Tensor4D; vp: tf.Tensor4D } {
  const K = prompt.shape[0];
  const p = promptBias ? tf.add(prompt, promptBias) : tf.expandDims(prompt, 0); // [B | 1, K, dim]
  const B = p.shape[0];
  const flat = tf.reshape(p, [B * K, c.dim]);
  const toHeads = (x: tf.Tensor) => {
    const perKvHead = tf.transpose(tf.reshape(x, [B, K, c.nKvHeads, c.headDim]), [0, 2, 1, 3]) as tf.Tensor4D; // [B, nKv, K, hd]
    return repeatKvHeads(perKvHead, c.nHeads / c.nKvHeads); // [B, nHeads, K, hd]
  };
  const project = (weight: tf.Tensor2D, bias?: tf.Tensor1D) => (bias ? tf.add(tf.matMul(flat, weight), bias) : tf.matMul(flat, weight));
  return { kp: toHeads(headNorm(project(w.wk, w.bk), w.kNorm, c.normEps)), vp: toHeads(project(w.wv, w.bv)) };
}

/** [B, nKv, S, hd] -> [B, nKv * rep, S, hd]; query head h reads kv head floor(h / rep), as HF's repeat_kv. */
export function repeatKvHeads(x: tf.Tensor4D, rep: number): tf.Tensor4D {
  if (rep === 1) return x;
  const [B, nKv, S, hd] = x.shape;
  // Rank 4 keeps tile differentiable in tfjs (its rank-5 gradient is missing).
  const tiled = tf.tile(tf.reshape(x, [B, nKv, 1, S * hd]), [1, 1, rep, 1]); // [B, nKv, rep, S * hd]
  return tf.reshape(tiled, [B, nKv * rep, S, hd]);
}

/** The gate as a factor that broadcasts over [B, nHeads, T, hd]. */
export function gateFactor(gate: tf.Tensor1D, mode: GateMode): tf.Tensor {
  const g = mode === 'per-head-tanh' ? tf.tanh(gate) : gate;
  return mode === 'per-layer' ? g : tf.reshape(g, [1, -1, 1, 1]); // [1] or [1, nHeads, 1, 1]
}

/**
 * g * softmax(q kp^T / sqrt(hd)) vp: the prompt's share of the attention output, with a softmax of
 * its own (no causal mask: every token may read every prompt vector).
 */
/** How attention turns q·k into logits: times `scale` (1/sqrt(hd) unless the family says otherwise), then, for
 * Gemma 2, soft-capped as softcap * tanh(x / softcap). */
export interface AttentionScoring {
  scale: number;
  softcap?: number;
}

/** Attention logits q kᵀ [B, H, T, S] under `scoring` (default: 1/sqrt(hd), no cap). */
export function attentionLogits(q: tf.Tensor4D, k: tf.Tensor4D, scoring?: AttentionScoring): tf.Tensor4D {
  const scaled = tf.mul(tf.matMul(q, k, false, true), scoring?.scale ?? 1 / Math.sqrt(q.shape[3])) as tf.Tensor4D;
  const cap = scoring?.softcap;
  return cap === undefined ? scaled : (tf.mul(tf.tanh(tf.div(scaled, cap)), cap) as tf.Tensor4D);
}

export function gatedPromptAttention(
  q: tf.Tensor4D, // [B, nHeads, T, hd], already rotated
  kp: tf.Tensor4D, // [B|1, nHeads, K, hd]
  vp: tf.Tensor4D, // [B|1, nHeads, K, hd]
  gate: tf.Tensor1D,
  mode: GateMode,
  scoring?: AttentionScoring, // the layer's own scoring: the prompt's softmax sees logits as the tokens' does
): tf.Tensor4D {
  const B = q.shape[0];
  const [kB, vB] = [kp, vp].map((t) => (t.shape[0] === B ? t : tf.tile(t, [B, 1, 1, 1]))) as tf.Tensor4D[];
  const scores = attentionLogits(q, kB, scoring); // [B, nHeads, T, K]
  const weights = tf.mul(tf.softmax(scores), gateFactor(gate, mode)); // [B, nHeads, T, K]
  return tf.matMul(weights, vB) as tf.Tensor4D; // [B, nHeads, T, hd]
}
