// The LLaMA decoder: RMSNorm -> attention (+ the adapter's gated prompt attention) -> SwiGLU MLP,
// repeated, then a final norm and the vocabulary projection. Plain functions over tensors. GPT-2 is the same
// block with LayerNorm, learned positions in place of RoPE and an ungated MLP (config.ts's flags).
//
// Linear weights are held as [in, out] (transposed from HF's [out, in] once, at load) so that every
// forward product is a plain x @ W: the fastest form on every tfjs backend.
//
// On the native backend, RMSNorm, linear layers, SwiGLU and the whole attention run as fused kernels
// (kernels.ts); the composite tfjs ops below are the reference they are tested against, and what every
// other backend runs.

import * as tf from '@tensorflow/tfjs-core';
import { layerWindow, type LlamaConfig, usesLocalRope } from './config.js';
import { EngineError } from './errors.js';
import { type Adapter, type AttentionScoring, attentionLogits, type GateMode, gatedPromptAttention, promptKeysValues, repeatKvHeads } from './adapter.js';
import { type BatchImages, imagePromptBias } from './image-prompt.js';
import { type FusedOps, fusedKernels } from './kernels.js';
import { type Lora, loraDelta, type LoraTarget } from './lora.js';
import { headNorm, layerNorm, rmsNorm } from './norm.js';
import { applyRope, ropeTables } from './rope.js';

export { rmsNorm } from './norm.js';

export interface LayerWeights {
  attnNorm: tf.Tensor1D; // [dim]
  wq: tf.Tensor2D; // [dim, nHeads * hd]
  wk: tf.Tensor2D; // [dim, nKv * hd]
  wv: tf.Tensor2D; // [dim, nKv * hd]
  wo: tf.Tensor2D; // [nHeads * hd, dim]
  // Projection biases where the family has them (config.attentionBias): Qwen2's q/k/v, LLaMA's attention_bias.
  bq?: tf.Tensor1D; // [nHeads * hd]
  bk?: tf.Tensor1D; // [nKv * hd]
  bv?: tf.Tensor1D; // [nKv * hd]
  bo?: tf.Tensor1D; // [dim]
  // Qwen3's per-head RMSNorm of queries and keys (config.qkNorm), before RoPE; the prompt's keys take kNorm too.
  qNorm?: tf.Tensor1D; // [hd]
  kNorm?: tf.Tensor1D; // [hd]
  // Gemma 2's norms after attention and after the MLP, before each residual add (config.sandwichNorms).
  postAttnNorm?: tf.Tensor1D; // [dim]
  postMlpNorm?: tf.Tensor1D; // [dim]
  mlpNorm: tf.Tensor1D; // [dim]
  // GPT-2's LayerNorm biases (config.layerNorm).
  attnNormBias?: tf.Tensor1D; // [dim]
  mlpNormBias?: tf.Tensor1D; // [dim]
  wGate?: tf.Tensor2D; // [dim, ffn]; absent in GPT-2's ungated MLP (config.plainMlp)
  wUp: tf.Tensor2D; // [dim, ffn]
  wDown: tf.Tensor2D; // [ffn, dim]
  // GPT-2's MLP biases (config.plainMlp).
  bUp?: tf.Tensor1D; // [ffn]
  bDown?: tf.Tensor1D; // [dim]
}

export interface LlamaWeights {
  embed: tf.Tensor2D; // [vocab, dim]
  /** GPT-2's learned position embeddings (config.learnedPositions). */
  positions?: tf.Tensor2D; // [maxPositions, dim]
  layers: LayerWeights[];
  norm: tf.Tensor1D; // [dim]
  normBias?: tf.Tensor1D; // [dim], GPT-2's final LayerNorm
  lmHead: tf.Tensor2D | null; // [dim, vocab]; null when tied to `embed`
}

export interface LlamaModel {
  config: LlamaConfig;
  weights: LlamaWeights;
}

/**
 * Keys and values of every token seen so far, per layer, before GQA repetition, plus each adapted
 * layer's prompt keys/values, computed once per generation. Layouts follow the path that made them:
 * composite [B, nKv, length, hd] (prompt [B|1, nHeads, K, hd]); fused [B, length, nKv * hd]
 * (prompt [K, nKv * hd] or [B, K, nKv * hd]).
 */
export interface KVCache {
  length: number; // tokens cached
  keys: (tf.Tensor | null)[]; // per layer
  values: (tf.Tensor | null)[];
  prompt: Map<number, { kp: tf.Tensor; vp: tf.Tensor }>;
  /** The ids cached so far, per row: kept only under LongRoPE, which recomputes the cache when a sequence crosses
   *  its original context (the cached keys were rotated with the short factors). */
  tokens?: number[][];
}

export interface ForwardOptions {
  adapter?: Adapter | null;
  lora?: Lora | null; // the LoRA baseline: low-rank updates on chosen projections
  cache?: KVCache; // read and extended in place (decoding)
  /** Image features per example for a multi-modal adapter (adapter.image); their projection is added to every
   *  adapted layer's prompt. Rows without an image get no image term. */
  images?: BatchImages | null;
}

/** ForwardOptions as the attention sees them: the image term already projected, [B, 1, dim]. */
type LayerOptions = ForwardOptions & { promptBias?: tf.Tensor3D };

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

/**
 * Additive causal mask [T, past + T]: query i (at position past + i) sees keys 0 .. past + i; within a sliding
 * `window`, only the last `window` of them (keys past + i - window + 1 .. past + i, as transformers' sliding window).
 */
export function causalMask(T: number, past: number, window: number | null = null): tf.Tensor2D {
  const S = past + T;
  const m = new Float32Array(T * S);
  for (let i = 0; i < T; i++) {
    const first = window === null ? 0 : Math.max(0, past + i - window + 1);
    for (let j = 0; j < S; j++) if (j < first || j > past + i) m[i * S + j] = -1e9;
  }
  return tf.tensor2d(m, [T, S]);
}

/**
 * The window that bites in layer `layer` over `length` tokens (cached and new), or null: a window at least as long
 * as the sequence masks nothing, and the layer runs as full attention (on the fused kernel where there is one).
 */
function activeWindow(c: LlamaConfig, layer: number, length: number): number | null {
  const window = layerWindow(c, layer);
  return window !== null && length > window ? window : null;
}

/**
 * Returns `result` after disposing `used`, intermediates nothing reads any more. Within a layer's scope they would
 * otherwise all live until the layer ends, the step's peak would carry them, and the holes they leave at once
 * fragment the heap (the wasm heap never shrinks, so its high-water mark is what the process keeps). Safe while
 * gradients are recorded: tfjs saves its own references (clones) of whatever a gradient needs, so disposing a
 * tensor here frees its buffer only when no gradient kept it.
 */
function consume<T extends tf.Tensor>(result: T, ...used: tf.Tensor[]): T {
  tf.dispose(used);
  return result;
}

/** A LoRA-able projection: which layer, which weight. */
type Site = { lora?: Lora | null; layer: number; target: LoraTarget };

/** Linear layer on [..., in] activations with [in, out] weights and an optional [out] bias, plus a LoRA update at `site`. */
export function linear(x: tf.Tensor, w: tf.Tensor2D, site?: Site, bias?: tf.Tensor1D): tf.Tensor {
  const fused = fusedKernels();
  if (fused) {
    let y = fused.linear(x, w); // [..., out], no reshapes
    const delta = site?.lora ? loraDelta(site.lora, site.layer, site.target, tf.reshape(x, [-1, w.shape[0]]) as tf.Tensor2D) : null;
    if (delta) y = tf.add(y, tf.reshape(delta, y.shape));
    return bias ? consume(tf.add(y, bias), y) : y; // the bias is a composite add: no fused kernel needed
  }
  const lead = x.shape.slice(0, -1);
  const flat = tf.reshape(x, [-1, w.shape[0]]) as tf.Tensor2D; // [N, in]
  let y = tf.matMul(flat, w); // [N, out]
  const delta = site ? loraDelta(site.lora, site.layer, site.target, flat) : null;
  if (delta) y = tf.add(y, delta);
  if (bias) y = tf.add(y, bias);
  return tf.reshape(y, [...lead, w.shape[1]]);
}

/** [B, T, n * hd] -> [B, n, T, hd] */
function splitHeads(x: tf.Tensor, n: number, hd: number): tf.Tensor4D {
  const [B, T] = x.shape;
  return tf.transpose(tf.reshape(x, [B, T, n, hd]), [0, 2, 1, 3]);
}

/** Softmax attention over token keys: the step the adapter extends. */
export function attend(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor2D, scoring?: AttentionScoring): tf.Tensor4D {
  const scores = tf.add(attentionLogits(q, k, scoring), mask); // [B, H, T, S]
  return tf.matMul(tf.softmax(scores), v) as tf.Tensor4D; // [B, H, T, hd]
}

/** The layer's q_norm / k_norm as they multiply (Gemma 3's by 1 + w); undefined where the family has none. */
function qkNorms(c: LlamaConfig, w: LayerWeights): { qNorm?: tf.Tensor1D; kNorm?: tf.Tensor1D } {
  if (!w.qNorm || !w.kNorm) return {};
  return { qNorm: normWeight(c, w.qNorm), kNorm: normWeight(c, w.kNorm) };
}

/** The family's attention scoring, or undefined for the plain 1/sqrt(hd). */
function scoringOf(c: LlamaConfig): AttentionScoring | undefined {
  if (c.attnScale === undefined && c.attnSoftcap === undefined) return undefined;
  return { scale: c.attnScale ?? 1 / Math.sqrt(c.headDim), ...(c.attnSoftcap !== undefined ? { softcap: c.attnSoftcap } : {}) };
}

/**
 * Whether attention runs as composite ops even on a backend with the fused kernel: the kernel scores by 1/sqrt(hd)
 * without a cap, so Gemma 2's soft-capped logits take the composite path.
 */
export function compositeAttention(c: LlamaConfig): boolean {
  return c.attnSoftcap !== undefined;
}

function attention(
  model: LlamaModel,
  layer: number,
  x: tf.Tensor3D, // [B, T, dim], normed
  rope: { cos: tf.Tensor2D; sin: tf.Tensor2D },
  mask: tf.Tensor2D | null, // [T, past + T]; null on the fused kernel, which masks as it goes (no window biting)
  opts: LayerOptions,
): tf.Tensor3D {
  const fused = fusedKernels();
  if (fused && !compositeAttention(model.config)) return fusedAttention(fused, model, layer, x, rope, mask, opts);
  const c = model.config;
  const w = model.weights.layers[layer];
  const [B, T] = x.shape;
  const at = (target: LoraTarget): Site => ({ lora: opts.lora, layer, target });
  const { qNorm, kNorm } = qkNorms(c, w);
  // GPT-2's positions are in the embeddings: no rotation.
  const rotate = (t: tf.Tensor4D) => (c.learnedPositions ? t : applyRope(t, rope.cos, rope.sin));
  const q = rotate(splitHeads(headNorm(linear(x, w.wq, at('q'), w.bq), qNorm, c.normEps), c.nHeads, c.headDim)); // [B, H, T, hd]
  let k = rotate(splitHeads(headNorm(linear(x, w.wk, at('k'), w.bk), kNorm, c.normEps), c.nKvHeads, c.headDim)); // [B, nKv, T, hd]
  let v = splitHeads(linear(x, w.wv, at('v'), w.bv), c.nKvHeads, c.headDim); // [B, nKv, T, hd]

  const cache = opts.cache;
  if (cache) {
    const pastK = cache.keys[layer];
    const pastV = cache.values[layer];
    if (pastK && pastV) {
      k = tf.concat([pastK as tf.Tensor4D, k], 2); // [B, nKv, past + T, hd]
      v = tf.concat([pastV as tf.Tensor4D, v], 2);
    }
    // The cache outlives this forward's tidy scope.
    cache.keys[layer] = tf.keep(k);
    cache.values[layer] = tf.keep(v);
    pastK?.dispose();
    pastV?.dispose();
  }
  const rep = c.nHeads / c.nKvHeads;
  const scoring = scoringOf(c);
  let out = attend(q, repeatKvHeads(k, rep), repeatKvHeads(v, rep), mask!, scoring); // [B, H, T, hd]

  const adapted = opts.adapter?.byLayer.get(layer);
  if (adapted) {
    let promptKV = cache?.prompt.get(layer);
    if (!promptKV) {
      promptKV = promptKeysValues(c, adapted.prompt as tf.Tensor2D, { ...w, kNorm }, opts.promptBias);
      if (cache) cache.prompt.set(layer, { kp: tf.keep(promptKV.kp), vp: tf.keep(promptKV.vp) });
    }
    const [kp, vp] = [promptKV.kp, promptKV.vp] as tf.Tensor4D[];
    const gated = gatedPromptAttention(q, kp, vp, adapted.gate as tf.Tensor1D, opts.adapter!.spec.gateMode, scoring);
    out = tf.add(out, gated) as tf.Tensor4D; // summed before wo, as in the paper
  }
  const merged = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [B, T, c.nHeads * c.headDim]);
  return linear(merged, w.wo, at('o'), w.bo) as tf.Tensor3D;
}

/**
 * `attention` on the fused kernels: the same steps in the projections' layout [B, T, heads * hd], so
 * heads are never split, repeated or merged; one kernel does both softmaxes, the gate and the sum. A sliding window
 * that bites (`mask` given) runs as composite ops over the same layout, so the cache keeps one layout throughout.
 */
function fusedAttention(
  fused: FusedOps,
  model: LlamaModel,
  layer: number,
  x: tf.Tensor3D, // [B, T, dim], normed
  rope: { cos: tf.Tensor2D; sin: tf.Tensor2D },
  windowMask: tf.Tensor2D | null, // [T, past + T], only where the layer's sliding window masks something
  opts: LayerOptions,
): tf.Tensor3D {
  const c = model.config;
  const w = model.weights.layers[layer];
  const at = (target: LoraTarget): Site => ({ lora: opts.lora, layer, target });
  const rotate = (t: tf.Tensor) =>
    c.learnedPositions ? t : consume(c.rotaryDim !== undefined ? ropeInFusedLayout(t as tf.Tensor3D, rope, c.headDim) : fused.rope(t, rope.cos, rope.sin, c.headDim), t);
  const normed = (t: tf.Tensor, weight?: tf.Tensor1D) => (weight ? consume(headNorm(t, weight, c.normEps), t) : t);
  const { qNorm, kNorm } = qkNorms(c, w);
  const q = rotate(normed(linear(x, w.wq, at('q'), w.bq), qNorm)) as tf.Tensor3D; // [B, T, H * hd]
  let k = rotate(normed(linear(x, w.wk, at('k'), w.bk), kNorm)) as tf.Tensor3D; // [B, T, nKv * hd]
  let v = linear(x, w.wv, at('v'), w.bv) as tf.Tensor3D; // [B, T, nKv * hd]

  const cache = opts.cache;
  const past = cache?.length ?? 0;
  if (cache) {
    const pastK = cache.keys[layer];
    const pastV = cache.values[layer];
    if (pastK && pastV) {
      k = tf.concat([pastK as tf.Tensor3D, k], 1); // [B, past + T, nKv * hd]
      v = tf.concat([pastV as tf.Tensor3D, v], 1);
    }
    cache.keys[layer] = tf.keep(k);
    cache.values[layer] = tf.keep(v);
    pastK?.dispose();
    pastV?.dispose();
  }

  const adapted = opts.adapter?.byLayer.get(layer);
  let prompt;
  if (adapted) {
    let promptKV = cache?.prompt.get(layer);
    if (!promptKV) {
      // The prompt [K, dim] (plus the per-example image term [B, 1, dim]) through the frozen k / v projections
      // (their biases included) and Qwen3's k_norm, no RoPE.
      const p = opts.promptBias ? tf.add(adapted.prompt, opts.promptBias) : adapted.prompt;
      promptKV = { kp: normed(linear(p, w.wk, undefined, w.bk), kNorm), vp: linear(p, w.wv, undefined, w.bv) }; // [B|-, K, nKv * hd]
      if (cache) cache.prompt.set(layer, { kp: tf.keep(promptKV.kp), vp: tf.keep(promptKV.vp) });
    }
    prompt = { ...promptKV, gate: adapted.gate as tf.Tensor1D, gateMode: opts.adapter!.spec.gateMode };
  }
  if (windowMask) {
    const out = windowedAttention(c, q, k, v, windowMask, prompt); // [B, T, H * hd]
    return consume(linear(out, w.wo, at('o'), w.bo), out) as tf.Tensor3D;
  }
  const shape = { nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.headDim, past };
  // The kernel scores by 1/sqrt(hd): another scale (Gemma 2's query_pre_attn_scalar) is folded into the queries.
  const qScaled = c.attnScale === undefined ? q : consume(tf.mul(q, c.attnScale * Math.sqrt(c.headDim)) as tf.Tensor3D, q);
  const out = fused.attention(qScaled, k as tf.Tensor3D, v as tf.Tensor3D, shape, prompt); // [B, T, H * hd]
  return consume(linear(out, w.wo, at('o'), w.bo), out) as tf.Tensor3D;
}

/**
 * RoPE in the fused layout [B, T, heads * hd] as composite ops, for tables narrower than the head (Phi-3's partial
 * rotary: the fused kernel rotates whole heads): split into heads, rotate the first features, merge back.
 */
function ropeInFusedLayout(t: tf.Tensor3D, rope: { cos: tf.Tensor2D; sin: tf.Tensor2D }, hd: number): tf.Tensor3D {
  const [B, T, width] = t.shape;
  return tf.tidy(() => {
    const heads = tf.transpose(tf.reshape(t, [B, T, width / hd, hd]), [0, 2, 1, 3]) as tf.Tensor4D; // [B, H, T, hd]
    const rotated = applyRope(heads, rope.cos, rope.sin);
    return tf.reshape(tf.transpose(rotated, [0, 2, 1, 3]), [B, T, width]) as tf.Tensor3D;
  });
}

/**
 * The fused layout's attention as composite ops, under a sliding-window mask the fused kernel does not take:
 * heads split and repeated, both softmaxes as in `attention`, merged back to [B, T, H * hd].
 */
function windowedAttention(
  c: LlamaConfig,
  q: tf.Tensor3D, // [B, T, H * hd], rotated
  k: tf.Tensor3D, // [B, S, nKv * hd], rotated, the cache included
  v: tf.Tensor3D, // [B, S, nKv * hd]
  mask: tf.Tensor2D, // [T, S]
  prompt?: { kp: tf.Tensor; vp: tf.Tensor; gate: tf.Tensor1D; gateMode: GateMode },
): tf.Tensor3D {
  const [B, T] = q.shape;
  const rep = c.nHeads / c.nKvHeads;
  const qh = splitHeads(q, c.nHeads, c.headDim); // [B, H, T, hd]
  const scoring = scoringOf(c);
  let out = attend(qh, repeatKvHeads(splitHeads(k, c.nKvHeads, c.headDim), rep), repeatKvHeads(splitHeads(v, c.nKvHeads, c.headDim), rep), mask, scoring);
  if (prompt) {
    // [K, nKv * hd] or [B, K, nKv * hd] -> [B|1, H, K, hd]
    const heads = (t: tf.Tensor) => repeatKvHeads(splitHeads(t.rank === 2 ? tf.expandDims(t, 0) : t, c.nKvHeads, c.headDim), rep);
    out = tf.add(out, gatedPromptAttention(qh, heads(prompt.kp), heads(prompt.vp), prompt.gate, prompt.gateMode, scoring)) as tf.Tensor4D;
  }
  return tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [B, T, c.nHeads * c.headDim]) as tf.Tensor3D;
}

/** GELU in PyTorch's tanh approximation (gelu_pytorch_tanh), as composite ops: every backend differentiates them. */
function geluTanh(x: tf.Tensor): tf.Tensor {
  const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.mul(tf.mul(x, x), x))));
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
}

function mlp(c: LlamaConfig, w: LayerWeights, x: tf.Tensor, layer: number, lora?: Lora | null): tf.Tensor {
  const at = (target: LoraTarget): Site => ({ lora, layer, target });
  if (!w.wGate) {
    // GPT-2: down(gelu(up(x) + b)) + b, ungated.
    const up = linear(x, w.wUp, at('up'), w.bUp); // [B, T, ffn]
    const act = consume(geluTanh(up), up);
    return consume(linear(act, w.wDown, at('down'), w.bDown), act);
  }
  const gate = linear(x, w.wGate, at('gate')); // [B, T, ffn]
  const up = linear(x, w.wUp, at('up'));
  const fused = fusedKernels();
  // SwiGLU: silu(gate) * up, fused where registered; Gemma's GeGLU: gelu(gate) * up (composite ops on every backend).
  const act =
    (c.mlpActivation ?? 'silu') === 'silu'
      ? consume(fused ? fused.swiglu(gate, up) : tf.mul(tf.mul(gate, tf.sigmoid(gate)), up), gate, up)
      : consume(tf.mul(geluTanh(gate), up), gate, up);
  return consume(linear(act, w.wDown, at('down')), act);
}

/** A block's norm: GPT-2's LayerNorm (with its bias), else RMSNorm. */
function norm(c: LlamaConfig, x: tf.Tensor, weight: tf.Tensor1D, bias: tf.Tensor1D | undefined): tf.Tensor {
  if (c.layerNorm) {
    if (!bias) throw new EngineError('a LayerNorm without its bias');
    return layerNorm(x, weight, bias, c.normEps);
  }
  return rmsNorm(x, normWeight(c, weight), c.normEps);
}

/** The weight an RMSNorm multiplies by: Gemma stores it as the offset from 1. */
function normWeight(c: LlamaConfig, weight: tf.Tensor1D): tf.Tensor1D {
  return c.normPlusOne ? tf.add(weight, 1) : weight;
}

/**
 * Logits [B, T, vocab] for token ids [B, T] (int32). With a cache, the ids continue the cached
 * sequence and the cache is extended.
 */
export function forward(model: LlamaModel, ids: tf.Tensor2D, opts: ForwardOptions = {}): tf.Tensor3D {
  return tf.tidy(() => {
    const normed = forwardHidden(model, ids, opts); // [B, T, dim]
    const w = model.weights;
    const fused = fusedKernels();
    const logits = fused
      ? (fused.linear(normed, w.lmHead ?? w.embed, w.lmHead === null) as tf.Tensor3D)
      : (tf.reshape(
          w.lmHead ? tf.matMul(tf.reshape(normed, [-1, model.config.dim]), w.lmHead) : tf.matMul(tf.reshape(normed, [-1, model.config.dim]), w.embed, false, true),
          [ids.shape[0], ids.shape[1], model.config.vocabSize],
        ) as tf.Tensor3D); // [B, T, vocab]
    const cap = model.config.finalSoftcap;
    return cap === undefined ? logits : (tf.mul(tf.tanh(tf.div(logits, cap)), cap) as tf.Tensor3D); // Gemma 2's final soft cap
  });
}

/**
 * The final normed hidden states [B, T, dim]: everything before the vocabulary projection (the loss
 * can fuse that projection with the softmax; see loss.ts nextTokenLoss). Extends the cache like forward.
 */
export function forwardHidden(model: LlamaModel, ids: tf.Tensor2D, opts: ForwardOptions = {}): tf.Tensor3D {
  const long = model.config.ropeScaling?.type === 'longrope' ? model.config.ropeScaling : null;
  const cache = opts.cache;
  if (!long || !cache) return hiddenStates(model, ids, opts);
  // LongRoPE: past the original context every position rotates by the long factors, so a cache made with the short
  // ones is recomputed over the whole sequence once it is crossed (as transformers' Phi-3 generation does).
  const past = cache.length;
  const [B, T] = ids.shape;
  const rows = ids.arraySync() as number[][];
  const tokens = (cache.tokens ??= rows.map(() => []));
  rows.forEach((row, b) => tokens[b]!.push(...row));
  if (past === 0 || past > long.originalMaxPositions || past + T <= long.originalMaxPositions) return hiddenStates(model, ids, opts);
  tf.dispose([...cache.keys, ...cache.values].filter((t): t is tf.Tensor => t !== null));
  cache.keys.fill(null);
  cache.values.fill(null);
  cache.length = 0;
  const all = tf.tensor2d(tokens, [B, past + T], 'int32');
  const hidden = hiddenStates(model, all, opts); // [B, past + T, dim]
  const last = tf.slice(hidden, [0, past, 0], [B, T, model.config.dim]) as tf.Tensor3D;
  tf.dispose([all, hidden]);
  return last;
}

function hiddenStates(model: LlamaModel, ids: tf.Tensor2D, opts: ForwardOptions): tf.Tensor3D {
  const c = model.config;
  const w = model.weights;
  const [, T] = ids.shape;
  const past = opts.cache?.length ?? 0;
  const hidden = tf.tidy(() => {
    const fused = fusedKernels();
    const layerOpts: LayerOptions = { ...opts, promptBias: imageTerm(opts, ids.shape[0]) };
    const rope = ropeTables(c, past, T);
    const localRope = c.localRopeTheta !== undefined ? ropeTables(c, past, T, true) : null; // Gemma 3's sliding layers
    // Masks by window (null: plain causal), made before the layers' scopes; the fused attention masks as it goes
    // and needs one only where a sliding window bites.
    const fusedPath = fused !== null && !compositeAttention(c);
    const windows = Array.from({ length: c.nLayers }, (_, i) => activeWindow(c, i, past + T));
    const masks = new Map<number | null, tf.Tensor2D>();
    for (const window of windows) {
      if ((!fusedPath || window !== null) && !masks.has(window)) masks.set(window, causalMask(T, past, window));
    }
    const residual = (a: tf.Tensor, b: tf.Tensor) => (fused ? fused.residualAdd(a, b) : tf.add(a, b)) as tf.Tensor3D;
    let h = tf.gather(w.embed, ids) as tf.Tensor as tf.Tensor3D; // [B, T, dim]
    if (w.positions) {
      // GPT-2: positions past .. past + T - 1 of the learned table, the same for every row.
      if (past + T > c.maxPositions) throw new EngineError(`${past + T} tokens; this model has learned positions for ${c.maxPositions}`);
      h = consume(tf.add(h, tf.slice(w.positions, [past, 0], [T, c.dim])), h);
    }
    if (c.embedScale !== undefined) h = consume(tf.mul(h, c.embedScale), h); // Gemma: times sqrt(dim)
    for (let i = 0; i < c.nLayers; i++) {
      const lw = w.layers[i];
      const input = h;
      // A scope per layer: what backward does not keep (it holds its own references) is freed as each layer
      // ends, rather than when the whole forward pass does.
      h = tf.tidy(() => {
        const normed = norm(c, input, lw.attnNorm, lw.attnNormBias) as tf.Tensor3D;
        const layerRope = localRope && usesLocalRope(c, i) ? localRope : rope;
        const window = windows[i]!;
        const mask = fusedPath && window === null ? null : masks.get(window)!;
        let attended = consume(attention(model, i, normed, layerRope, mask, layerOpts), normed);
        if (lw.postAttnNorm) attended = consume(rmsNorm(attended, normWeight(c, lw.postAttnNorm), c.normEps) as tf.Tensor3D, attended);
        const mid = consume(residual(input, attended), attended);
        const normed2 = norm(c, mid, lw.mlpNorm, lw.mlpNormBias);
        let mlpOut = consume(mlp(c, lw, normed2, i, opts.lora), normed2);
        if (lw.postMlpNorm) mlpOut = consume(rmsNorm(mlpOut, normWeight(c, lw.postMlpNorm), c.normEps), mlpOut);
        return consume(residual(mid, mlpOut), mid);
      });
    }
    return norm(c, h, w.norm, w.normBias) as tf.Tensor3D;
  });
  if (opts.cache) opts.cache.length = past + T;
  return hidden;
}

/**
 * The multi-modal adapter's image term [B, 1, dim], or undefined: text only, or a cache that already holds the
 * prompt's keys and values (they were made with the image term at prefill).
 */
function imageTerm(opts: ForwardOptions, B: number): tf.Tensor3D | undefined {
  if (!opts.images) return undefined;
  const projection = opts.adapter?.image;
  if (!projection) throw new EngineError('images were given but this model takes none: only a multi-modal adapter (one trained with a vision tower) reads images');
  if (opts.images.features.shape[0] !== B) throw new EngineError(`image features for ${opts.images.features.shape[0]} examples, but the batch has ${B}`);
  if (opts.cache && opts.cache.prompt.size > 0) return undefined;
  return imagePromptBias(projection, opts.images);
}

/**
 * What of this model runs as composite tfjs ops even where the backend has fused kernels (nothing, for a plain
 * LLaMA): said by `info`, so a slower family is not a mystery.
 */
export function compositeSteps(c: LlamaConfig): string[] {
  const steps: string[] = [];
  if (c.attentionBias.qkv || c.attentionBias.o) steps.push('projection biases (an add after each fused product)');
  if (c.layerNorm) steps.push('LayerNorm (mean-centred, with a bias)');
  if (c.rotaryDim !== undefined) steps.push(`RoPE on ${c.rotaryDim} of each head's ${c.headDim} features (partial rotary)`);
  if (c.learnedPositions) steps.push('the learned position embeddings (an add)');
  if (c.plainMlp) steps.push("the ungated MLP's tanh GELU and biases");
  if (c.mlpActivation === 'gelu_tanh' && !c.plainMlp) steps.push("the MLP's tanh GELU (GeGLU)");
  if (c.normPlusOne) steps.push('norm weights as 1 + w (an add per norm)');
  if (c.embedScale !== undefined) steps.push('the embedding scale');
  if (compositeAttention(c)) steps.push('soft-capped attention (all of it: the fused kernel has no cap)');
  else if (c.slidingWindow) steps.push(`attention in sliding-window layers once a sequence passes the window (${c.slidingWindow} tokens)`);
  if (c.qkNorm && c.normPlusOne) steps.push('q/k norm weights as 1 + w');
  if (c.finalSoftcap !== undefined) steps.push('the final logit soft cap (and the loss over it)');
  return steps;
}

export function disposeModel(model: LlamaModel): void {
  const w = model.weights;
  tf.dispose([w.embed, w.norm, ...(w.lmHead ? [w.lmHead] : []), ...(w.positions ? [w.positions] : []), ...(w.normBias ? [w.normBias] : [])]);
  for (const l of w.layers) tf.dispose(Object.values(l));
}
