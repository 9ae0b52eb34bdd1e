// The LLaMA decoder: RMSNorm -> attention (+ the adapter's gated prompt attention) -> SwiGLU MLP,
// repeated, then a final norm and the vocabulary projection. Plain functions over tensors.
//
// Linear weights are held as [in, out] (transposed from HF's [out, in] once, at load) so that every
// forward product is a plain x @ W: the fastest form on every tfjs backend.

import * as tf from '@tensorflow/tfjs-core';
import type { LlamaConfig } from './config.js';
import { type Adapter, gatedPromptAttention, promptKeysValues, repeatKvHeads } from './adapter.js';
import { type Lora, loraDelta, type LoraTarget } from './lora.js';
import { applyRope, ropeTables } from './rope.js';

export interface LayerWeights {
  attnNorm: tf.Tensor1D; // [dim]
  wq: tf.Tensor2D; // [dim, nHeads * hd]
  wk: tf.Tensor2D; // [dim, nKv * hd]
  wv: tf.Tensor2D; // [dim, nKv * hd]
  wo: tf.Tensor2D; // [nHeads * hd, dim]
  mlpNorm: tf.Tensor1D; // [dim]
  wGate: tf.Tensor2D; // [dim, ffn]
  wUp: tf.Tensor2D; // [dim, ffn]
  wDown: tf.Tensor2D; // [ffn, dim]
}

export interface LlamaWeights {
  embed: tf.Tensor2D; // [vocab, dim]
  layers: LayerWeights[];
  norm: tf.Tensor1D; // [dim]
  lmHead: tf.Tensor2D | null; // [dim, vocab]; null when tied to `embed`
}

export interface LlamaModel {
  config: LlamaConfig;
  weights: LlamaWeights;
}

/**
 * Keys and values of every token seen so far, per layer, before GQA repetition, plus each adapted
 * layer's prompt keys/values, computed once per generation.
 */
export interface KVCache {
  length: number; // tokens cached
  keys: (tf.Tensor4D | null)[]; // per layer [B, nKv, length, hd]
  values: (tf.Tensor4D | null)[];
  prompt: Map<number, { kp: tf.Tensor4D; vp: tf.Tensor4D }>;
}

export interface ForwardOptions {
  adapter?: Adapter | null;
  lora?: Lora | null; // the LoRA baseline: low-rank updates on chosen projections
  cache?: KVCache; // read and extended in place (decoding)
  promptBias?: tf.Tensor3D; // [B, K, dim] multi-modal term added to every adapted layer's prompt
}

export function newKVCache(c: LlamaConfig): KVCache {
  return { length: 0, keys: new Array(c.nLayers).fill(null), values: new Array(c.nLayers).fill(null), prompt: new Map() };
}

export function disposeKVCache(cache: KVCache): void {
  for (const t of [...cache.keys, ...cache.values]) t?.dispose();
  for (const { kp, vp } of cache.prompt.values()) tf.dispose([kp, vp]);
  cache.keys.fill(null);
  cache.values.fill(null);
  cache.prompt.clear();
  cache.length = 0;
}

export function rmsNorm(x: tf.Tensor, weight: tf.Tensor1D, eps: number): tf.Tensor {
  const variance = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), weight);
}

/** Additive causal mask [T, past + T]: query i (at position past + i) sees keys 0 .. past + i. */
export function causalMask(T: number, past: number): tf.Tensor2D {
  const S = past + T;
  const m = new Float32Array(T * S);
  for (let i = 0; i < T; i++) for (let j = past + i + 1; j < S; j++) m[i * S + j] = -1e9;
  return tf.tensor2d(m, [T, S]);
}

/** A LoRA-able projection: which layer, which weight. */
type Site = { lora?: Lora | null; layer: number; target: LoraTarget };

/** Linear layer on [..., in] activations with [in, out] weights, plus a LoRA update at `site`. */
function linear(x: tf.Tensor, w: tf.Tensor2D, site?: Site): tf.Tensor {
  const lead = x.shape.slice(0, -1);
  const flat = tf.reshape(x, [-1, w.shape[0]]) as tf.Tensor2D; // [N, in]
  let y = tf.matMul(flat, w); // [N, out]
  const delta = site ? loraDelta(site.lora, site.layer, site.target, flat) : null;
  if (delta) y = tf.add(y, delta);
  return tf.reshape(y, [...lead, w.shape[1]]);
}

/** [B, T, n * hd] -> [B, n, T, hd] */
function splitHeads(x: tf.Tensor, n: number, hd: number): tf.Tensor4D {
  const [B, T] = x.shape;
  return tf.transpose(tf.reshape(x, [B, T, n, hd]), [0, 2, 1, 3]);
}

/** Softmax attention over token keys: the step the adapter extends. */
export function attend(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor2D): tf.Tensor4D {
  const scores = tf.add(tf.div(tf.matMul(q, k, false, true), Math.sqrt(q.shape[3])), mask); // [B, H, T, S]
  return tf.matMul(tf.softmax(scores), v) as tf.Tensor4D; // [B, H, T, hd]
}

function attention(
  model: LlamaModel,
  layer: number,
  x: tf.Tensor3D, // [B, T, dim], normed
  rope: { cos: tf.Tensor2D; sin: tf.Tensor2D },
  mask: tf.Tensor2D,
  opts: ForwardOptions,
): tf.Tensor3D {
  const c = model.config;
  const w = model.weights.layers[layer];
  const [B, T] = x.shape;
  const at = (target: LoraTarget): Site => ({ lora: opts.lora, layer, target });
  const q = applyRope(splitHeads(linear(x, w.wq, at('q')), c.nHeads, c.headDim), rope.cos, rope.sin); // [B, H, T, hd]
  let k = applyRope(splitHeads(linear(x, w.wk, at('k')), c.nKvHeads, c.headDim), rope.cos, rope.sin); // [B, nKv, T, hd]
  let v = splitHeads(linear(x, w.wv, at('v')), c.nKvHeads, c.headDim); // [B, nKv, T, hd]

  const cache = opts.cache;
  if (cache) {
    const pastK = cache.keys[layer];
    const pastV = cache.values[layer];
    if (pastK && pastV) {
      k = tf.concat([pastK, k], 2); // [B, nKv, past + T, hd]
      v = tf.concat([pastV, v], 2);
    }
    // The cache outlives this forward's tidy scope.
    cache.keys[layer] = tf.keep(k);
    cache.values[layer] = tf.keep(v);
    pastK?.dispose();
    pastV?.dispose();
  }
  const rep = c.nHeads / c.nKvHeads;
  let out = attend(q, repeatKvHeads(k, rep), repeatKvHeads(v, rep), mask); // [B, H, T, hd]

  const adapted = opts.adapter?.byLayer.get(layer);
  if (adapted) {
    let promptKV = cache?.prompt.get(layer);
    if (!promptKV) {
      promptKV = promptKeysValues(c, adapted.prompt as tf.Tensor2D, w.wk, w.wv, opts.promptBias);
      if (cache) cache.prompt.set(layer, { kp: tf.keep(promptKV.kp), vp: tf.keep(promptKV.vp) });
    }
    const gated = gatedPromptAttention(q, promptKV.kp, promptKV.vp, adapted.gate as tf.Tensor1D, opts.adapter!.spec.gateMode);
    out = tf.add(out, gated) as tf.Tensor4D; // summed before wo, as in the paper
  }
  const merged = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [B, T, c.nHeads * c.headDim]);
  return linear(merged, w.wo, at('o')) as tf.Tensor3D;
}

function mlp(w: LayerWeights, x: tf.Tensor, layer: number, lora?: Lora | null): tf.Tensor {
  const at = (target: LoraTarget): Site => ({ lora, layer, target });
  const gate = linear(x, w.wGate, at('gate')); // [B, T, ffn]
  const up = linear(x, w.wUp, at('up'));
  return linear(tf.mul(tf.mul(gate, tf.sigmoid(gate)), up), w.wDown, at('down')); // SwiGLU: silu(gate) * up
}

/**
 * Logits [B, T, vocab] for token ids [B, T] (int32). With a cache, the ids continue the cached
 * sequence and the cache is extended.
 */
export function forward(model: LlamaModel, ids: tf.Tensor2D, opts: ForwardOptions = {}): tf.Tensor3D {
  const c = model.config;
  const w = model.weights;
  const [, T] = ids.shape;
  const past = opts.cache?.length ?? 0;
  const logits = tf.tidy(() => {
    const rope = ropeTables(c, past, T);
    const mask = causalMask(T, past);
    let h = tf.gather(w.embed, ids) as tf.Tensor as tf.Tensor3D; // [B, T, dim]
    for (let i = 0; i < c.nLayers; i++) {
      const lw = w.layers[i];
      h = tf.add(h, attention(model, i, rmsNorm(h, lw.attnNorm, c.normEps) as tf.Tensor3D, rope, mask, opts)) as tf.Tensor3D;
      h = tf.add(h, mlp(lw, rmsNorm(h, lw.mlpNorm, c.normEps), i, opts.lora));
    }
    const normed = rmsNorm(h, w.norm, c.normEps);
    const flat = tf.reshape(normed, [-1, c.dim]); // [B * T, dim]
    const out = w.lmHead ? tf.matMul(flat, w.lmHead) : tf.matMul(flat, w.embed, false, true); // [B * T, vocab]
    return tf.reshape(out, [ids.shape[0], T, c.vocabSize]) as tf.Tensor3D;
  });
  if (opts.cache) opts.cache.length = past + T;
  return logits;
}

export function disposeModel(model: LlamaModel): void {
  const w = model.weights;
  tf.dispose([w.embed, w.norm, ...(w.lmHead ? [w.lmHead] : [])]);
  for (const l of w.layers) tf.dispose(Object.values(l));
}
