// The fused transformer kernels of the `native` backend: tfjs kernels whose work is one call into the addon
// (native/src) on views of the wasm heap, each with a hand-written gradient registered beside it.
//
// Engine code does not call these by name: src-main/engine/kernels.ts wraps them as ops (and model.ts / loss.ts
// pick those on the native backend). Shapes use the layout the projections produce, [B, T, heads * hd], so the
// attention path has no transposes at all.
//
// Memory: tfjs keeps every tensor a gradient saved, and every intermediate gradient, until the whole backward pass
// ends. The gradients here instead release what the previous fused node's backward used (its saved activations
// and its upstream gradient) as soon as the next fused node's backward starts, so the backward pass frees layer by
// layer. See `releaseAfterUse`.

import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  engine,
  registerGradient,
  registerKernel,
  type GradConfig,
  type KernelFunc,
  type NamedAttrMap,
  type NamedTensorInfoMap,
  type Tensor,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import type { NativeAddon } from './native.js';

export const FUSED_KERNELS = {
  rmsNorm: 'AsRmsNorm',
  rmsNormGrad: 'AsRmsNormGrad',
  rmsNormWeightGrad: 'AsRmsNormWeightGrad',
  rope: 'AsRope',
  swiglu: 'AsSwiGlu',
  swigluGrad: 'AsSwiGluGrad',
  linear: 'AsLinear',
  linearFrozenWeight: 'AsLinearFrozenWeight',
  linearWeightGrad: 'AsLinearWeightGrad',
  attention: 'AsAttention',
  attentionAdapter: 'AsAttentionAdapter',
  attentionGrad: 'AsAttentionGrad',
  crossEntropy: 'AsCrossEntropy',
  crossEntropyGrad: 'AsCrossEntropyGrad',
  lmHeadCrossEntropy: 'AsLmHeadCrossEntropy',
  scaleRows: 'AsScaleRows',
} as const;

/** How the adapter's gate scales the prompt attention; the codes native/src/attention.c takes. */
export const GATE_MODE_CODES = { 'per-head-tanh': 1, 'per-head': 2, 'per-layer': 3 } as const;
export type FusedGateMode = keyof typeof GATE_MODE_CODES;

export interface AttentionAttrs {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  past: number; // query row i is at position past + i
  gateMode: FusedGateMode | 'none';
}

const size = (shape: readonly number[]) => shape.reduce((p, d) => p * d, 1);

function requireFloat32(kernel: string, inputs: NamedTensorInfoMap, ...names: string[]): TensorInfo[] {
  return names.map((name) => {
    const t = inputs[name];
    if (t == null) throw new Error(`${kernel}: input "${name}" is missing`);
    if (t.dtype !== 'float32') throw new Error(`${kernel}: input "${name}" must be float32, got ${t.dtype}`);
    return t;
  });
}

function requireShape(kernel: string, name: string, t: TensorInfo, expected: readonly number[]): void {
  if (t.shape.length !== expected.length || t.shape.some((d, i) => d !== expected[i])) {
    throw new Error(`${kernel}: ${name} has shape [${t.shape}], expected [${expected}]`);
  }
}

/** Outputs first (allocating may grow the wasm memory and detach older views), then views of everything. */
function allocate(backend: BackendWasm, shapes: number[][]): TensorInfo[] {
  return shapes.map((shape) => backend.makeOutput(shape, 'float32'));
}
function view(backend: BackendWasm, t: TensorInfo): Float32Array {
  return backend.typedArrayFromHeap(t) as Float32Array;
}
function viewInt(backend: BackendWasm, t: TensorInfo): Int32Array {
  if (t.dtype !== 'int32') throw new Error(`labels must be int32, got ${t.dtype}`);
  return backend.typedArrayFromHeap(t) as Int32Array;
}

/** Runs one of this file's kernels from a gradient (the tape is off there, so nothing is recorded). */
function run(name: string, inputs: Record<string, Tensor>, attrs: NamedAttrMap = {}): Tensor | Tensor[] {
  return engine().runKernel(name, inputs, attrs) as Tensor | Tensor[];
}
const one = (x: Tensor | Tensor[]): Tensor => (Array.isArray(x) ? x[0] : x);

// ---------------------------------------------------------------------------------------------
// Freeing activations during backward

let releasable: Tensor[] = [];

/**
 * Called first in every fused gradient. tfjs walks the tape in reverse and finishes one node's input gradients
 * before the next node's gradient function runs, so by now the previous fused node's backward is complete: its
 * saved tensors and its upstream gradient are released here. This node's are queued for the next one.
 *
 * An upstream gradient is released only when tfjs made it inside this backward pass (its scope is the active one):
 * a dy the caller passed to tf.grad() stays the caller's.
 */
export function releaseAfterUse(dys: (Tensor | null)[], saved: Tensor[]): void {
  const state = engine().state as unknown as { activeScope?: { id: number }; gradientDepth: number };
  if (state.gradientDepth > 0) return; // inside another gradient's forward (higher order): tfjs may need them again
  for (const t of releasable) t.dispose();
  releasable = [...saved];
  const scope = state.activeScope?.id;
  if (scope === undefined) return;
  for (const dy of dys) {
    if (dy != null && (dy as unknown as { scopeId?: number }).scopeId === scope) releasable.push(dy);
  }
}

/**
 * Gradients of a kernel whose backward computes every input's gradient in one addon call. The call runs at once,
 * in the backward pass's own scope (so tfjs disposes its outputs when the pass ends); each input asked for gets a
 * clone, and the originals are released with this node's other tensors, which frees the unused ones early.
 */
function sharedGradients(names: string[], all: Tensor[]): Record<string, () => Tensor> {
  releasable.push(...all);
  return Object.fromEntries(names.map((name, i) => [name, () => all[i].clone()]));
}

const notDifferentiable = (kernel: string, input: string) => () => {
  throw new Error(`${kernel}: no gradient with respect to ${input}`);
};

// ---------------------------------------------------------------------------------------------
// RMSNorm: x [..., D], weight [D] -> y [..., D], rstd [...]

function rmsNormKernel(addon: NativeAddon): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const k = FUSED_KERNELS.rmsNorm;
    const [x, weight] = requireFloat32(k, inputs, 'x', 'weight');
    const cols = x.shape[x.shape.length - 1];
    requireShape(k, 'weight', weight, [cols]);
    const b = backend as BackendWasm;
    const [y, rstd] = allocate(b, [x.shape, x.shape.slice(0, -1)]);
    addon.rmsNorm(view(b, x), view(b, weight), (attrs as { eps: number }).eps, size(x.shape) / cols, cols, view(b, y), view(b, rstd));
    return [y, rstd];
  };
}

function rmsNormGradKernel(addon: NativeAddon): KernelFunc {
  return ({ inputs, backend }) => {
    const [dy, x, weight, rstd] = requireFloat32(FUSED_KERNELS.rmsNormGrad, inputs, 'dy', 'x', 'weight', 'rstd');
    const b = backend as BackendWasm;
    const cols = x.shape[x.shape.length - 1];
    const [dx] = allocate(b, [x.shape]);
    addon.rmsNormBackward(view(b, dy), view(b, x), view(b, weight), view(b, rstd), size(x.shape) / cols, cols, view(b, dx));
    return dx;
  };
}

function rmsNormWeightGradKernel(addon: NativeAddon): KernelFunc {
  return ({ inputs, backend }) => {
    const [dy, x, rstd] = requireFloat32(FUSED_KERNELS.rmsNormWeightGrad, inputs, 'dy', 'x', 'rstd');
    const b = backend as BackendWasm;
    const cols = x.shape[x.shape.length - 1];
    const [dw] = allocate(b, [[cols]]);
    addon.rmsNormWeightGrad(view(b, dy), view(b, x), view(b, rstd), size(x.shape) / cols, cols, view(b, dw));
    return dw;
  };
}

const rmsNormGradient: GradConfig = {
  kernelName: FUSED_KERNELS.rmsNorm,
  inputsToSave: ['x', 'weight'],
  outputsToSave: [false, true],
  gradFunc: (dys, saved) => {
    const [dy] = dys as Tensor[];
    const [x, weight, rstd] = saved;
    releaseAfterUse(dys as Tensor[], saved);
    return {
      x: () => one(run(FUSED_KERNELS.rmsNormGrad, { dy, x, weight, rstd })),
      weight: () => one(run(FUSED_KERNELS.rmsNormWeightGrad, { dy, x, rstd })),
    };
  },
};

// ---------------------------------------------------------------------------------------------
// RoPE: x [B, T, n * hd] (attr headDim) or [B, H, T, hd]; cos, sin [T, hd]

function ropeKernel(addon: NativeAddon): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const k = FUSED_KERNELS.rope;
    const [x, cos, sin] = requireFloat32(k, inputs, 'x', 'cos', 'sin');
    const { headDim, backward } = attrs as { headDim: number; backward: boolean };
    let outer: number, T: number, inner: number;
    if (x.shape.length === 3) {
      [outer, T] = x.shape;
      inner = x.shape[2] / headDim;
      if (!Number.isInteger(inner)) throw new Error(`${k}: last dimension ${x.shape[2]} is not a multiple of headDim ${headDim}`);
    } else if (x.shape.length === 4) {
      if (x.shape[3] !== headDim) throw new Error(`${k}: x [B, H, T, hd] has hd ${x.shape[3]}, expected ${headDim}`);
      [outer, T, inner] = [x.shape[0] * x.shape[1], x.shape[2], 1];
    } else {
      throw new Error(`${k}: x must be [B, T, heads * hd] or [B, H, T, hd], got [${x.shape}]`);
    }
    requireShape(k, 'cos', cos, [T, headDim]);
    requireShape(k, 'sin', sin, [T, headDim]);
    const b = backend as BackendWasm;
    const [y] = allocate(b, [x.shape]);
    addon.rope(view(b, x), view(b, cos), view(b, sin), outer, T, inner, headDim, backward, view(b, y));
    return y;
  };
}

const ropeGradient: GradConfig = {
  kernelName: FUSED_KERNELS.rope,
  inputsToSave: ['cos', 'sin'],
  gradFunc: (dy, saved, attrs) => {
    const [cos, sin] = saved;
    releaseAfterUse([dy as Tensor], []);
    return {
      // The rotation is orthogonal: its gradient is the inverse rotation, the same kernel run backward.
      x: () => one(run(FUSED_KERNELS.rope, { x: dy as Tensor, cos, sin }, { ...attrs, backward: true })),
      cos: notDifferentiable(FUSED_KERNELS.rope, 'the cos table (a constant)'),
      sin: notDifferentiable(FUSED_KERNELS.rope, 'the sin table (a constant)'),
    };
  },
};

// ---------------------------------------------------------------------------------------------
// SwiGLU: silu(gate) * up

function swigluKernel(addon: NativeAddon): KernelFunc {
  return ({ inputs, backend }) => {
    const k = FUSED_KERNELS.swiglu;
    const [gate, up] = requireFloat32(k, inputs, 'gate', 'up');
    requireShape(k, 'up', up, gate.shape);
    const b = backend as BackendWasm;
    const [y] = allocate(b, [gate.shape]);
    addon.swiglu(view(b, gate), view(b, up), size(gate.shape), view(b, y));
    return y;
  };
}

function swigluGradKernel(addon: NativeAddon): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const [dy, gate, up] = requireFloat32(FUSED_KERNELS.swigluGrad, inputs, 'dy', 'gate', 'up');
    const which = (attrs as { which: 'gate' | 'up' }).which;
    const b = backend as BackendWasm;
    const [d] = allocate(b, [gate.shape]);
    const out = view(b, d);
    addon.swigluBackward(view(b, dy), view(b, gate), view(b, up), size(gate.shape), which === 'gate' ? out : null, which === 'up' ? out : null);
    return d;
  };
}

const swigluGradient: GradConfig = {
  kernelName: FUSED_KERNELS.swiglu,
  inputsToSave: ['gate', 'up'],
  gradFunc: (dy, saved) => {
    const [gate, up] = saved;
    releaseAfterUse([dy as Tensor], saved);
    const grad = (which: 'gate' | 'up') => () => one(run(FUSED_KERNELS.swigluGrad, { dy: dy as Tensor, gate, up }, { which }));
    return { gate: grad('gate'), up: grad('up') };
  },
};

// ---------------------------------------------------------------------------------------------
// Linear: x [..., in] @ w, w [in, out] (or [out, in] with transposeW, a tied embedding) -> [..., out]

function linearDims(kernel: string, x: TensorInfo, w: TensorInfo, transposeW: boolean) {
  if (w.shape.length !== 2) throw new Error(`${kernel}: weight must be 2-D, got [${w.shape}]`);
  const [inDim, outDim] = transposeW ? [w.shape[1], w.shape[0]] : [w.shape[0], w.shape[1]];
  const xIn = x.shape[x.shape.length - 1];
  if (xIn !== inDim) throw new Error(`${kernel}: x [${x.shape}] does not fit weight [${w.shape}] (transposeW=${transposeW})`);
  return { inDim, outDim, rows: size(x.shape) / Math.max(inDim, 1) };
}

function linearKernel(addon: NativeAddon): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const k = FUSED_KERNELS.linear;
    const [x, w] = requireFloat32(k, inputs, 'x', 'w');
    const transposeW = (attrs as { transposeW: boolean }).transposeW;
    const { inDim, outDim, rows } = linearDims(k, x, w, transposeW);
    const b = backend as BackendWasm;
    const [y] = allocate(b, [[...x.shape.slice(0, -1), outDim]]);
    const yv = view(b, y);
    if (inDim === 0) yv.fill(0);
    else addon.sgemm(false, transposeW, rows, outDim, inDim, 1, view(b, x), inDim, view(b, w), Math.max(1, w.shape[1]), 0, yv, Math.max(1, outDim));
    return y;
  };
}

function linearWeightGradKernel(addon: NativeAddon): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const k = FUSED_KERNELS.linearWeightGrad;
    const [x, dy] = requireFloat32(k, inputs, 'x', 'dy');
    const transposeW = (attrs as { transposeW: boolean }).transposeW;
    const inDim = x.shape[x.shape.length - 1];
    const outDim = dy.shape[dy.shape.length - 1];
    const rows = size(x.shape) / Math.max(inDim, 1);
    const b = backend as BackendWasm;
    const [dw] = allocate(b, [transposeW ? [outDim, inDim] : [inDim, outDim]]);
    const [xv, dyv, dwv] = [view(b, x), view(b, dy), view(b, dw)];
    // dW = x^T dy  [in, out], or dy^T x  [out, in]: a sum over every row of the batch.
    if (transposeW) addon.sgemm(true, false, outDim, inDim, rows, 1, dyv, Math.max(1, outDim), xv, Math.max(1, inDim), 0, dwv, Math.max(1, inDim));
    else addon.sgemm(true, false, inDim, outDim, rows, 1, xv, Math.max(1, inDim), dyv, Math.max(1, outDim), 0, dwv, Math.max(1, outDim));
    return dw;
  };
}

const linearGradient: GradConfig = {
  kernelName: FUSED_KERNELS.linear,
  inputsToSave: ['x', 'w'],
  gradFunc: (dy, saved, attrs) => {
    const [x, w] = saved;
    const transposeW = (attrs as unknown as { transposeW: boolean }).transposeW;
    releaseAfterUse([dy as Tensor], saved);
    return {
      // dx = dy @ w^T: the same kernel with the weight read the other way.
      x: () => one(run(FUSED_KERNELS.linear, { x: dy as Tensor, w }, { transposeW: !transposeW })),
      w: () => one(run(FUSED_KERNELS.linearWeightGrad, { x, dy: dy as Tensor }, { transposeW })),
    };
  },
};

/**
 * The same product for a weight that is not trained (a frozen base model): its gradient needs only the weight,
 * so the input activation is not kept for backward (the largest saving of adapter training: every projection's
 * input). Asking for the weight's gradient is an error that says so.
 */
const linearFrozenWeightGradient: GradConfig = {
  kernelName: FUSED_KERNELS.linearFrozenWeight,
  inputsToSave: ['w'],
  gradFunc: (dy, saved, attrs) => {
    const [w] = saved;
    const transposeW = (attrs as unknown as { transposeW: boolean }).transposeW;
    releaseAfterUse([dy as Tensor], saved);
    return {
      x: () => one(run(FUSED_KERNELS.linear, { x: dy as Tensor, w }, { transposeW: !transposeW })),
      w: notDifferentiable(FUSED_KERNELS.linearFrozenWeight, 'the weight: it was not a trainable variable when the op ran (make it a tf.Variable to train it)'),
    };
  },
};

// ---------------------------------------------------------------------------------------------
// Attention: q [B, T, H * hd], k, v [B, S, Hkv * hd]; adapter: kp, vp [Bp, K, Hkv * hd] or [K, Hkv * hd], gate [G]

interface AttentionShapes {
  dims: number[]; // [B, T, S, H, Hkv, hd, past, K, Bp, gateMode, causal]
  B: number;
  T: number;
  H: number;
}

function attentionShapes(kernel: string, attrs: AttentionAttrs, q: TensorInfo, k: TensorInfo, v: TensorInfo, prompt?: { kp: TensorInfo; vp: TensorInfo; gate: TensorInfo }): AttentionShapes {
  const { nHeads: H, nKvHeads: Hkv, headDim: hd, past, gateMode } = attrs;
  if (q.shape.length !== 3 || k.shape.length !== 3) throw new Error(`${kernel}: q and k must be [B, T, heads * hd], got [${q.shape}] and [${k.shape}]`);
  const [B, T] = q.shape;
  const S = k.shape[1];
  requireShape(kernel, 'q', q, [B, T, H * hd]);
  requireShape(kernel, 'k', k, [B, S, Hkv * hd]);
  requireShape(kernel, 'v', v, [B, S, Hkv * hd]);
  if (past + T !== S) throw new Error(`${kernel}: past (${past}) + T (${T}) must equal the keys S (${S})`);
  let K = 0;
  let Bp = 1;
  let mode = 0;
  if (prompt) {
    const kp = prompt.kp.shape;
    [Bp, K] = kp.length === 2 ? [1, kp[0]] : [kp[0], kp[1]];
    requireShape(kernel, 'kp', prompt.kp, kp.length === 2 ? [K, Hkv * hd] : [Bp, K, Hkv * hd]);
    requireShape(kernel, 'vp', prompt.vp, prompt.kp.shape);
    if (Bp !== 1 && Bp !== B) throw new Error(`${kernel}: the prompt's batch ${Bp} is neither 1 nor B (${B})`);
    if (gateMode === 'none') throw new Error(`${kernel}: a prompt needs a gate mode`);
    mode = GATE_MODE_CODES[gateMode];
    requireShape(kernel, 'gate', prompt.gate, [gateMode === 'per-layer' ? 1 : H]);
  }
  return { dims: [B, T, S, H, Hkv, hd, past, K, Bp, mode, 1], B, T, H };
}

function attentionKernel(addon: NativeAddon, withPrompt: boolean): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const kernel = withPrompt ? FUSED_KERNELS.attentionAdapter : FUSED_KERNELS.attention;
    const a = attrs as unknown as AttentionAttrs;
    const [q, k, v] = requireFloat32(kernel, inputs, 'q', 'k', 'v');
    const prompt = withPrompt ? (([kp, vp, gate]) => ({ kp, vp, gate }))(requireFloat32(kernel, inputs, 'kp', 'vp', 'gate')) : undefined;
    const { dims, B, T, H } = attentionShapes(kernel, a, q, k, v, prompt);
    const b = backend as BackendWasm;
    const outputs = allocate(b, [q.shape, [B, H, T], ...(withPrompt ? [[B, H, T]] : [])]);
    const [out, lse, lseP] = outputs;
    addon.attention(
      view(b, q), view(b, k), view(b, v),
      prompt ? view(b, prompt.kp) : null, prompt ? view(b, prompt.vp) : null, prompt ? view(b, prompt.gate) : null,
      dims, 1 / Math.sqrt(a.headDim), view(b, out), view(b, lse), lseP ? view(b, lseP) : null,
    );
    return outputs;
  };
}

function attentionGradKernel(addon: NativeAddon): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const kernel = FUSED_KERNELS.attentionGrad;
    const a = attrs as unknown as AttentionAttrs;
    const [dout, q, k, v, lse] = requireFloat32(kernel, inputs, 'dout', 'q', 'k', 'v', 'lse');
    const withPrompt = inputs.kp != null;
    const prompt = withPrompt ? (([kp, vp, gate, lseP]) => ({ kp, vp, gate, lseP }))(requireFloat32(kernel, inputs, 'kp', 'vp', 'gate', 'lseP')) : undefined;
    const { dims } = attentionShapes(kernel, a, q, k, v, prompt);
    const b = backend as BackendWasm;
    const outputs = allocate(b, [q.shape, k.shape, v.shape, ...(prompt ? [prompt.kp.shape, prompt.vp.shape, prompt.gate.shape] : [])]);
    const [dq, dk, dv, dkp, dvp, dgate] = outputs;
    const maybe = (t: TensorInfo | undefined) => (t == null ? null : view(b, t));
    addon.attentionBackward(
      view(b, dout), view(b, q), view(b, k), view(b, v), maybe(prompt?.kp), maybe(prompt?.vp), maybe(prompt?.gate),
      view(b, lse), maybe(prompt?.lseP), dims, 1 / Math.sqrt(a.headDim),
      view(b, dq), view(b, dk), view(b, dv), maybe(dkp), maybe(dvp), maybe(dgate),
    );
    return outputs;
  };
}

const attentionGradient: GradConfig = {
  kernelName: FUSED_KERNELS.attention,
  inputsToSave: ['q', 'k', 'v'],
  outputsToSave: [false, true],
  gradFunc: (dys, saved, attrs) => {
    const [dout] = dys as Tensor[];
    const [q, k, v, lse] = saved;
    releaseAfterUse(dys as Tensor[], saved);
    return sharedGradients(['q', 'k', 'v'], run(FUSED_KERNELS.attentionGrad, { dout, q, k, v, lse }, attrs) as Tensor[]);
  },
};

const attentionAdapterGradient: GradConfig = {
  kernelName: FUSED_KERNELS.attentionAdapter,
  inputsToSave: ['q', 'k', 'v', 'kp', 'vp', 'gate'],
  outputsToSave: [false, true, true],
  gradFunc: (dys, saved, attrs) => {
    const [dout] = dys as Tensor[];
    const [q, k, v, kp, vp, gate, lse, lseP] = saved;
    releaseAfterUse(dys as Tensor[], saved);
    return sharedGradients(
      ['q', 'k', 'v', 'kp', 'vp', 'gate'],
      run(FUSED_KERNELS.attentionGrad, { dout, q, k, v, lse, kp, vp, gate, lseP }, attrs) as Tensor[],
    );
  },
};

// ---------------------------------------------------------------------------------------------
// Cross-entropy. Logical row n reads physical row (n / rowsPerSeq) * seqStride + n % rowsPerSeq (xent.c).

interface RowLayout {
  rowsPerSeq: number;
  seqStride: number;
}

function checkTargets(kernel: string, labels: TensorInfo, mask: TensorInfo): number {
  if (labels.dtype !== 'int32') throw new Error(`${kernel}: labels must be int32, got ${labels.dtype}`);
  if (mask.dtype !== 'float32') throw new Error(`${kernel}: mask must be float32, got ${mask.dtype}`);
  if (labels.shape.length !== 1) throw new Error(`${kernel}: labels must be 1-D, got [${labels.shape}]`);
  requireShape(kernel, 'mask', mask, labels.shape);
  return labels.shape[0];
}

function crossEntropyKernel(addon: NativeAddon): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const kernel = FUSED_KERNELS.crossEntropy;
    const [logits] = requireFloat32(kernel, inputs, 'logits');
    const { labels, mask } = inputs as { labels: TensorInfo; mask: TensorInfo };
    const N = checkTargets(kernel, labels, mask);
    const { rowsPerSeq, seqStride } = attrs as unknown as RowLayout;
    const V = logits.shape[logits.shape.length - 1];
    const b = backend as BackendWasm;
    const [nll, lse] = allocate(b, [[N], [N]]);
    addon.crossEntropy(view(b, logits), viewInt(b, labels), view(b, mask), N, V, rowsPerSeq, seqStride, view(b, nll), view(b, lse));
    return [nll, lse];
  };
}

function crossEntropyGradKernel(addon: NativeAddon): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const kernel = FUSED_KERNELS.crossEntropyGrad;
    const [dnll, logits, lse] = requireFloat32(kernel, inputs, 'dnll', 'logits', 'lse');
    const { labels, mask } = inputs as { labels: TensorInfo; mask: TensorInfo };
    const N = checkTargets(kernel, labels, mask);
    const { rowsPerSeq, seqStride } = attrs as unknown as RowLayout;
    const V = logits.shape[logits.shape.length - 1];
    const b = backend as BackendWasm;
    const [dlogits] = allocate(b, [logits.shape]);
    addon.crossEntropyBackward(
      view(b, dnll), view(b, logits), viewInt(b, labels), view(b, mask), view(b, lse), N, V, rowsPerSeq, seqStride,
      size(logits.shape) / V, view(b, dlogits),
    );
    return dlogits;
  };
}

const crossEntropyGradient: GradConfig = {
  kernelName: FUSED_KERNELS.crossEntropy,
  inputsToSave: ['logits', 'labels', 'mask'],
  outputsToSave: [false, true],
  gradFunc: (dys, saved, attrs) => {
    const [dnll] = dys as Tensor[];
    const [logits, labels, mask, lse] = saved;
    releaseAfterUse(dys as Tensor[], saved);
    return {
      logits: () => one(run(FUSED_KERNELS.crossEntropyGrad, { dnll, logits, labels, mask, lse }, attrs)),
      labels: notDifferentiable(FUSED_KERNELS.crossEntropy, 'the labels (integers)'),
      mask: notDifferentiable(FUSED_KERNELS.crossEntropy, 'the mask (a constant)'),
    };
  },
};

/** hidden [..., dim], w [dim, V] (or [V, dim] with transposeW) -> nll [N] and, with withGrad, dunit [..., dim]. */
function lmHeadCrossEntropyKernel(addon: NativeAddon): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const kernel = FUSED_KERNELS.lmHeadCrossEntropy;
    const [hidden, w] = requireFloat32(kernel, inputs, 'hidden', 'w');
    const { labels, mask } = inputs as { labels: TensorInfo; mask: TensorInfo };
    const N = checkTargets(kernel, labels, mask);
    const { rowsPerSeq, seqStride, transposeW, withGrad } = attrs as unknown as RowLayout & { transposeW: boolean; withGrad: boolean };
    const { inDim, outDim, rows } = linearDims(kernel, hidden, w, transposeW);
    const b = backend as BackendWasm;
    const [nll, dunit] = allocate(b, [[N], withGrad ? hidden.shape : [0]]);
    addon.lmHeadCrossEntropy(
      view(b, hidden), view(b, w), transposeW, viewInt(b, labels), view(b, mask), N, inDim, outDim, rowsPerSeq,
      seqStride, rows, view(b, nll), withGrad ? view(b, dunit) : null,
    );
    return [nll, dunit];
  };
}

function scaleRowsKernel(addon: NativeAddon): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const [x, dnll] = requireFloat32(FUSED_KERNELS.scaleRows, inputs, 'x', 'dnll');
    const { rowsPerSeq, seqStride } = attrs as unknown as RowLayout;
    const cols = x.shape[x.shape.length - 1];
    const b = backend as BackendWasm;
    const [y] = allocate(b, [x.shape]);
    addon.scaleRows(view(b, x), view(b, dnll), dnll.shape[0], cols, rowsPerSeq, seqStride, size(x.shape) / cols, view(b, y));
    return y;
  };
}

const lmHeadCrossEntropyGradient: GradConfig = {
  kernelName: FUSED_KERNELS.lmHeadCrossEntropy,
  outputsToSave: [false, true],
  gradFunc: (dys, saved, attrs) => {
    const [dnll] = dys as Tensor[];
    const [dunit] = saved;
    releaseAfterUse(dys as Tensor[], saved);
    if (!(attrs as unknown as { withGrad: boolean }).withGrad) {
      throw new Error(`${FUSED_KERNELS.lmHeadCrossEntropy}: it ran without withGrad, so it has no gradient`);
    }
    return {
      // The forward already formed d nll / d hidden for a unit upstream gradient; scale each row by its dnll.
      hidden: () => one(run(FUSED_KERNELS.scaleRows, { x: dunit, dnll }, attrs)),
      w: notDifferentiable(FUSED_KERNELS.lmHeadCrossEntropy, 'the head weight (train it through crossEntropy(logits))'),
      labels: notDifferentiable(FUSED_KERNELS.lmHeadCrossEntropy, 'the labels (integers)'),
      mask: notDifferentiable(FUSED_KERNELS.lmHeadCrossEntropy, 'the mask (a constant)'),
    };
  },
};

// ---------------------------------------------------------------------------------------------

let gradientsRegistered = false;

/**
 * Registers the fused kernels' gradients. tfjs keys gradients by kernel name alone, so these serve any backend that
 * registers kernels under FUSED_KERNELS' names; safe to call more than once.
 */
export function registerFusedGradients(): void {
  if (gradientsRegistered) return;
  gradientsRegistered = true;
  for (const config of [
    rmsNormGradient, ropeGradient, swigluGradient, linearGradient, linearFrozenWeightGradient, attentionGradient,
    attentionAdapterGradient,
    crossEntropyGradient, lmHeadCrossEntropyGradient,
  ]) {
    registerGradient(config);
  }
}

/** Registers every fused kernel for `backendName` (on the addon), and their gradients. */
export function registerFusedKernels(addon: NativeAddon, backendName: string): void {
  const kernels: [string, KernelFunc][] = [
    [FUSED_KERNELS.rmsNorm, rmsNormKernel(addon)],
    [FUSED_KERNELS.rmsNormGrad, rmsNormGradKernel(addon)],
    [FUSED_KERNELS.rmsNormWeightGrad, rmsNormWeightGradKernel(addon)],
    [FUSED_KERNELS.rope, ropeKernel(addon)],
    [FUSED_KERNELS.swiglu, swigluKernel(addon)],
    [FUSED_KERNELS.swigluGrad, swigluGradKernel(addon)],
    [FUSED_KERNELS.linear, linearKernel(addon)],
    [FUSED_KERNELS.linearFrozenWeight, linearKernel(addon)],
    [FUSED_KERNELS.linearWeightGrad, linearWeightGradKernel(addon)],
    [FUSED_KERNELS.attention, attentionKernel(addon, false)],
    [FUSED_KERNELS.attentionAdapter, attentionKernel(addon, true)],
    [FUSED_KERNELS.attentionGrad, attentionGradKernel(addon)],
    [FUSED_KERNELS.crossEntropy, crossEntropyKernel(addon)],
    [FUSED_KERNELS.crossEntropyGrad, crossEntropyGradKernel(addon)],
    [FUSED_KERNELS.lmHeadCrossEntropy, lmHeadCrossEntropyKernel(addon)],
    [FUSED_KERNELS.scaleRows, scaleRowsKernel(addon)],
  ];
  for (const [kernelName, kernelFunc] of kernels) registerKernel({ kernelName, backendName, kernelFunc });
  registerFusedGradients();
}
