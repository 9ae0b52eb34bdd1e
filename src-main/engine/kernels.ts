// The engine's fused ops: one kernel each for RMSNorm, linear layers, RoPE, SwiGLU, the whole attention (with the
// adapter's gated prompt) and cross-entropy, with hand-written gradients (backends/fused.ts, native/src).
//
// They exist on the `native` backend only. `fusedKernels()` returns them when that backend is active (and they are
// not switched off), else null; model.ts and loss.ts then run their composite tfjs versions, which stay the
// reference every fused op is tested against (test/kernels.test.ts).
//
// Layout: the fused path keeps activations as the projections make them, [B, T, heads * headDim], where the
// composite path splits heads to [B, heads, T, headDim]; `rope` accepts both.

import * as tf from '@tensorflow/tfjs-core';
import { FUSED_KERNELS, type FusedGateMode, releaseAfterUse } from './backends/fused.js';

export interface AttentionShape {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  /** Tokens before these queries (the KV cache length): query i sits at position past + i. */
  past: number;
}

export interface PromptAttention {
  kp: tf.Tensor; // [K, nKv * hd] or [B, K, nKv * hd]: the prompt through the layer's wk
  vp: tf.Tensor; // same, through wv
  gate: tf.Tensor1D; // [nHeads] or [1]
  gateMode: FusedGateMode;
}

/** How logical loss rows map onto logits rows: row n reads (n / rowsPerSeq) * seqStride + n % rowsPerSeq. */
export interface RowLayout {
  rowsPerSeq: number;
  seqStride: number;
}

export interface FusedOps {
  /** x [..., D] * rsqrt(mean(x^2) + eps) * weight */
  rmsNorm(x: tf.Tensor, weight: tf.Tensor1D, eps: number): tf.Tensor;
  /** x [..., in] @ w [in, out], or @ w^T for w [out, in] (a tied embedding) with transposeW. */
  linear(x: tf.Tensor, w: tf.Tensor2D, transposeW?: boolean): tf.Tensor;
  /** Rotate-half RoPE of x [B, T, n * hd] or [B, H, T, hd] with tables [T, hd]. */
  rope(x: tf.Tensor, cos: tf.Tensor2D, sin: tf.Tensor2D, headDim: number): tf.Tensor;
  /** silu(gate) * up */
  swiglu(gate: tf.Tensor, up: tf.Tensor): tf.Tensor;
  /** a + b of equal shapes (the residual stream), keeping nothing for backward (tf.add keeps both inputs). */
  residualAdd(a: tf.Tensor, b: tf.Tensor): tf.Tensor;
  /**
   * Causal attention of q [B, T, H * hd] over k, v [B, past + T, Hkv * hd] (GQA: head h reads kv head
   * h / (H / Hkv)), plus, with `prompt`, the adapter's separately-softmaxed, gated prompt attention.
   * Returns [B, T, H * hd], heads merged, ready for wo.
   */
  attention(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, shape: AttentionShape, prompt?: PromptAttention): tf.Tensor3D;
  /** mask[n] * -log softmax(logits[row(n)])[labels[n]] for each of the N = labels.size rows: [N]. */
  crossEntropy(logits: tf.Tensor, labels: tf.Tensor1D, mask: tf.Tensor1D, layout: RowLayout): tf.Tensor1D;
  /**
   * The same [N] losses from the final hidden states [..., dim] and the head's weight, without ever holding the
   * batch's logits (a tile of vocabulary columns at a time, online softmax). Its gradient reaches `hidden` only.
   */
  lmHeadCrossEntropy(hidden: tf.Tensor, w: tf.Tensor2D, transposeW: boolean, labels: tf.Tensor1D, mask: tf.Tensor1D, layout: RowLayout): tf.Tensor1D;
}

let enabled = true;

/** Switch the fused ops off (true by default) to run the composite ops on the native backend, e.g. to compare. */
export function setFusedKernelsEnabled(on: boolean): void {
  enabled = on;
}

/** The fused ops when the active backend runs them, else null (use the composite ops). */
export function fusedKernels(): FusedOps | null {
  // Any backend that registered every fused kernel (native's C kernels, webgpu's WGSL ones) uses
  // them; a backend missing one runs the composite ops rather than failing mid-forward.
  if (!enabled) return null;
  const backend = tf.getBackend();
  if (!Object.values(FUSED_KERNELS).every((name) => tf.getKernel(name, backend) != null)) return null;
  return ops;
}

function run(name: string, inputs: tf.NamedTensorMap, attrs: Record<string, unknown> = {}): tf.Tensor[] {
  const out = tf.engine().runKernel(name, inputs, attrs as tf.NamedAttrMap) as tf.Tensor | tf.Tensor[];
  return Array.isArray(out) ? out : [out];
}

/** Keeps the first output; the others (saved statistics) live on in the gradient's saved copies, if any. */
function first(outputs: tf.Tensor[]): tf.Tensor {
  for (const extra of outputs.slice(1)) extra.dispose();
  return outputs[0];
}

/** Whether ops now run are being recorded for a gradient (tfjs keeps this on its engine, untyped). */
function recordingGradients(): boolean {
  const engine = tf.engine() as unknown as { isTapeOn?: () => boolean };
  return engine.isTapeOn?.() ?? true;
}

/** True when `w` is being trained: then its gradient needs the layer's input, which must be kept for backward. */
function trainable(w: tf.Tensor): boolean {
  return w instanceof tf.Variable && w.trainable;
}

/** The residual add's gradient passes dy to both inputs; tfjs's own Add would keep both inputs to reduce shapes. */
const residualAdd = tf.customGrad(((a: tf.Tensor, b: tf.Tensor) => {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(`residualAdd: shapes [${a.shape}] and [${b.shape}] differ`);
  }
  return {
    value: tf.add(a, b),
    gradFunc: (dy: tf.Tensor) => {
      releaseAfterUse([dy], []);
      return [dy.clone(), dy.clone()]; // clones share dy's buffer; each input's gradient is its own tensor
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor; // tfjs types the (...inputs, save) form loosely

const ops: FusedOps = {
  rmsNorm: (x, weight, eps) => first(run(FUSED_KERNELS.rmsNorm, { x, weight }, { eps })),
  linear: (x, w, transposeW = false) =>
    first(run(trainable(w) ? FUSED_KERNELS.linear : FUSED_KERNELS.linearFrozenWeight, { x, w }, { transposeW })),
  residualAdd: (a, b) => residualAdd(a, b),
  rope: (x, cos, sin, headDim) => first(run(FUSED_KERNELS.rope, { x, cos, sin }, { headDim, backward: false })),
  swiglu: (gate, up) => first(run(FUSED_KERNELS.swiglu, { gate, up })),
  attention: (q, k, v, shape, prompt) => {
    const attrs = { ...shape, gateMode: prompt?.gateMode ?? 'none' };
    if (!prompt) return first(run(FUSED_KERNELS.attention, { q, k, v }, attrs)) as tf.Tensor3D;
    const { kp, vp, gate } = prompt;
    return first(run(FUSED_KERNELS.attentionAdapter, { q, k, v, kp, vp, gate }, attrs)) as tf.Tensor3D;
  },
  crossEntropy: (logits, labels, mask, layout) =>
    first(run(FUSED_KERNELS.crossEntropy, { logits, labels, mask }, { ...layout })) as tf.Tensor1D,
  lmHeadCrossEntropy: (hidden, w, transposeW, labels, mask, layout) =>
    first(
      run(FUSED_KERNELS.lmHeadCrossEntropy, { hidden, w, labels, mask }, { ...layout, transposeW, withGrad: recordingGradients() }),
    ) as tf.Tensor1D,
};
