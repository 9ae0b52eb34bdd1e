// The engine's fused kernels (backends/fused.ts names them and defines their gradients; engine/kernels.ts wraps
// them as ops) for the webgpu backend, in WGSL: same names, inputs, attributes and outputs as the native
// backend's, so the same ops and gradients run on either. The math is in layers.ts, attention.ts and xent.ts.
//
// The linear layer needs no WGSL of its own: tfjs-backend-webgpu's BatchMatMul is the product; the kernel only
// reshapes around it. lmHeadCrossEntropy forms the logits (the native kernel avoids holding them; GPU memory is
// less scarce than a laptop's RAM for the vocabulary x tokens matrix) and reuses the cross-entropy kernels.

import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import {
  BatchMatMul,
  getKernel,
  type KernelFunc,
  type NamedTensorInfoMap,
  registerKernel,
  Reshape,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { FUSED_KERNELS, registerFusedGradients } from '../fused.js';
import { attention, attentionGrad, type AttentionDims, type GateMode } from './attention.js';
import { rmsNorm, rmsNormGrad, rmsNormWeightGrad, rope, swiglu, swigluGrad } from './layers.js';
import { MAX_HEAD_DIM } from './program.js';
import { crossEntropy, crossEntropyGrad, type RowLayout, scaleRows } from './xent.js';

/** Storage buffers the largest fused kernel binds (the attention gradient: 11 inputs and its output). */
export const FUSED_STORAGE_BUFFERS = 12;
const BACKEND = 'webgpu';

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

function checkTargets(kernel: string, inputs: NamedTensorInfoMap): { labels: TensorInfo; mask: TensorInfo } {
  const { labels, mask } = inputs;
  if (labels == null || mask == null) throw new Error(`${kernel}: labels and mask are required`);
  if (labels.dtype !== 'int32') throw new Error(`${kernel}: labels must be int32, got ${labels.dtype}`);
  if (mask.dtype !== 'float32') throw new Error(`${kernel}: mask must be float32, got ${mask.dtype}`);
  if (labels.shape.length !== 1) throw new Error(`${kernel}: labels must be 1-D, got [${labels.shape}]`);
  requireShape(kernel, 'mask', mask, labels.shape);
  return { labels, mask };
}

const gpu = (backend: unknown) => backend as WebGPUBackend;

// ---------------------------------------------------------------------------------------------
// Products through tfjs's own kernels

function reshape(backend: WebGPUBackend, x: TensorInfo, shape: number[]): TensorInfo {
  return getKernel(Reshape, BACKEND)!.kernelFunc({ inputs: { x }, backend, attrs: { shape } }) as TensorInfo;
}

/** a [rows, m] @ b with the given transposes, through tfjs-backend-webgpu's BatchMatMul. */
function product(backend: WebGPUBackend, a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean): TensorInfo {
  return getKernel(BatchMatMul, BACKEND)!.kernelFunc({ inputs: { a, b }, backend, attrs: { transposeA, transposeB } }) as TensorInfo;
}

/** x [..., in] @ w [in, out] (or w [out, in] with transposeW) -> [..., out]. */
function linear(backend: WebGPUBackend, x: TensorInfo, w: TensorInfo, transposeW: boolean, kernel: string): TensorInfo {
  if (w.shape.length !== 2) throw new Error(`${kernel}: weight must be 2-D, got [${w.shape}]`);
  const [inDim, outDim] = transposeW ? [w.shape[1], w.shape[0]] : [w.shape[0], w.shape[1]];
  if (x.shape[x.shape.length - 1] !== inDim) throw new Error(`${kernel}: x [${x.shape}] does not fit weight [${w.shape}] (transposeW=${transposeW})`);
  const flat = reshape(backend, x, [size(x.shape) / Math.max(inDim, 1), inDim]);
  const y = product(backend, flat, w, false, transposeW); // [rows, out]
  backend.disposeData(flat.dataId);
  const shaped = reshape(backend, y, [...x.shape.slice(0, -1), outDim]);
  backend.disposeData(y.dataId);
  return shaped;
}

const linearKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const [x, w] = requireFloat32(FUSED_KERNELS.linear, inputs, 'x', 'w');
  return linear(gpu(backend), x, w, (attrs as { transposeW: boolean }).transposeW, FUSED_KERNELS.linear);
};

/** dW = x^T dy [in, out], or dy^T x [out, in] with transposeW: a sum over every row of the batch. */
const linearWeightGradKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const [x, dy] = requireFloat32(FUSED_KERNELS.linearWeightGrad, inputs, 'x', 'dy');
  const b = gpu(backend);
  const inDim = x.shape[x.shape.length - 1];
  const outDim = dy.shape[dy.shape.length - 1];
  const rows = size(x.shape) / Math.max(inDim, 1);
  const x2 = reshape(b, x, [rows, inDim]);
  const dy2 = reshape(b, dy, [rows, outDim]);
  const dw = (attrs as { transposeW: boolean }).transposeW ? product(b, dy2, x2, true, false) : product(b, x2, dy2, true, false);
  b.disposeData(x2.dataId);
  b.disposeData(dy2.dataId);
  return dw;
};

// ---------------------------------------------------------------------------------------------
// Layers

const rmsNormKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const [x, weight] = requireFloat32(FUSED_KERNELS.rmsNorm, inputs, 'x', 'weight');
  requireShape(FUSED_KERNELS.rmsNorm, 'weight', weight, [x.shape[x.shape.length - 1]]);
  return rmsNorm(gpu(backend), x, weight, (attrs as { eps: number }).eps);
};

const rmsNormGradKernel: KernelFunc = ({ inputs, backend }) => {
  const [dy, x, weight, rstd] = requireFloat32(FUSED_KERNELS.rmsNormGrad, inputs, 'dy', 'x', 'weight', 'rstd');
  return rmsNormGrad(gpu(backend), dy, x, weight, rstd);
};

const rmsNormWeightGradKernel: KernelFunc = ({ inputs, backend }) => {
  const [dy, x, rstd] = requireFloat32(FUSED_KERNELS.rmsNormWeightGrad, inputs, 'dy', 'x', 'rstd');
  return rmsNormWeightGrad(gpu(backend), dy, x, rstd);
};

const ropeKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const k = FUSED_KERNELS.rope;
  const [x, cos, sin] = requireFloat32(k, inputs, 'x', 'cos', 'sin');
  const { headDim, backward } = attrs as { headDim: number; backward: boolean };
  let T: number;
  let inner: number;
  if (x.shape.length === 3) {
    T = x.shape[1];
    inner = x.shape[2] / headDim;
    if (!Number.isInteger(inner)) throw new Error(`${k}: last dimension ${x.shape[2]} is not a multiple of headDim ${headDim}`);
  } else if (x.shape.length === 4) {
    if (x.shape[3] !== headDim) throw new Error(`${k}: x [B, H, T, hd] has hd ${x.shape[3]}, expected ${headDim}`);
    [T, inner] = [x.shape[2], 1];
  } else {
    throw new Error(`${k}: x must be [B, T, heads * hd] or [B, H, T, hd], got [${x.shape}]`);
  }
  if (headDim % 2 !== 0) throw new Error(`${k}: headDim ${headDim} must be even`);
  requireShape(k, 'cos', cos, [T, headDim]);
  requireShape(k, 'sin', sin, [T, headDim]);
  return rope(gpu(backend), x, cos, sin, T, inner, headDim, backward);
};

const swigluKernel: KernelFunc = ({ inputs, backend }) => {
  const [gate, up] = requireFloat32(FUSED_KERNELS.swiglu, inputs, 'gate', 'up');
  requireShape(FUSED_KERNELS.swiglu, 'up', up, gate.shape);
  return swiglu(gpu(backend), gate, up);
};

const swigluGradKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const [dy, gate, up] = requireFloat32(FUSED_KERNELS.swigluGrad, inputs, 'dy', 'gate', 'up');
  return swigluGrad(gpu(backend), dy, gate, up, (attrs as { which: 'gate' | 'up' }).which);
};

// ---------------------------------------------------------------------------------------------
// Attention

interface AttentionAttrs {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  past: number;
  gateMode: GateMode | 'none';
}

function attentionDims(kernel: string, a: AttentionAttrs, q: TensorInfo, k: TensorInfo, v: TensorInfo, prompt?: { kp: TensorInfo; vp: TensorInfo; gate: TensorInfo }): AttentionDims {
  const { nHeads: H, nKvHeads: Hkv, headDim: hd, past } = a;
  if (q.shape.length !== 3 || k.shape.length !== 3) throw new Error(`${kernel}: q and k must be [B, T, heads * hd], got [${q.shape}] and [${k.shape}]`);
  if (H % Hkv !== 0) throw new Error(`${kernel}: nHeads ${H} is not a multiple of nKvHeads ${Hkv}`);
  if (hd > MAX_HEAD_DIM) throw new Error(`${kernel}: head size ${hd} is over the webgpu kernel's ${MAX_HEAD_DIM}`);
  const [B, T] = q.shape;
  const S = k.shape[1];
  requireShape(kernel, 'q', q, [B, T, H * hd]);
  requireShape(kernel, 'k', k, [B, S, Hkv * hd]);
  requireShape(kernel, 'v', v, [B, S, Hkv * hd]);
  if (past + T !== S) throw new Error(`${kernel}: past (${past}) + T (${T}) must equal the keys S (${S})`);
  let K = 0;
  let Bp = 1;
  if (prompt) {
    const kp = prompt.kp.shape;
    [Bp, K] = kp.length === 2 ? [1, kp[0]] : [kp[0], kp[1]];
    requireShape(kernel, 'kp', prompt.kp, kp.length === 2 ? [K, Hkv * hd] : [Bp, K, Hkv * hd]);
    requireShape(kernel, 'vp', prompt.vp, prompt.kp.shape);
    if (Bp !== 1 && Bp !== B) throw new Error(`${kernel}: the prompt's batch ${Bp} is neither 1 nor B (${B})`);
    if (a.gateMode === 'none') throw new Error(`${kernel}: a prompt needs a gate mode`);
    requireShape(kernel, 'gate', prompt.gate, [a.gateMode === 'per-layer' ? 1 : H]);
  }
  return { B, T, S, H, Hkv, hd, past, K, Bp };
}

function attentionKernel(withPrompt: boolean): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const kernel = withPrompt ? FUSED_KERNELS.attentionAdapter : FUSED_KERNELS.attention;
    const a = attrs as unknown as AttentionAttrs;
    const [q, k, v] = requireFloat32(kernel, inputs, 'q', 'k', 'v');
    const prompt = withPrompt ? (([kp, vp, gate]) => ({ kp, vp, gate }))(requireFloat32(kernel, inputs, 'kp', 'vp', 'gate')) : undefined;
    const dims = attentionDims(kernel, a, q, k, v, prompt);
    return attention(gpu(backend), { q, k, v, prompt: prompt && { ...prompt, mode: a.gateMode as GateMode } }, dims);
  };
}

const attentionGradKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const kernel = FUSED_KERNELS.attentionGrad;
  const a = attrs as unknown as AttentionAttrs;
  const [dout, q, k, v, lse] = requireFloat32(kernel, inputs, 'dout', 'q', 'k', 'v', 'lse');
  const withPrompt = inputs.kp != null;
  const prompt = withPrompt ? (([kp, vp, gate, lseP]) => ({ kp, vp, gate, lseP }))(requireFloat32(kernel, inputs, 'kp', 'vp', 'gate', 'lseP')) : undefined;
  const dims = attentionDims(kernel, a, q, k, v, prompt);
  return attentionGrad(
    gpu(backend),
    { dout, q, k, v, lse, lseP: prompt?.lseP, prompt: prompt && { kp: prompt.kp, vp: prompt.vp, gate: prompt.gate, mode: a.gateMode as GateMode } },
    dims,
  );
};

// ---------------------------------------------------------------------------------------------
// Cross-entropy

const crossEntropyKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const kernel = FUSED_KERNELS.crossEntropy;
  const [logits] = requireFloat32(kernel, inputs, 'logits');
  const { labels, mask } = checkTargets(kernel, inputs);
  return crossEntropy(gpu(backend), logits, labels, mask, attrs as unknown as RowLayout);
};

const crossEntropyGradKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const kernel = FUSED_KERNELS.crossEntropyGrad;
  const [dnll, logits, lse] = requireFloat32(kernel, inputs, 'dnll', 'logits', 'lse');
  const { labels, mask } = checkTargets(kernel, inputs);
  return crossEntropyGrad(gpu(backend), dnll, logits, labels, mask, lse, attrs as unknown as RowLayout);
};

/** hidden [..., dim], w -> [nll [N], dunit] with dunit = (mask * (softmax - onehot)) W^T when withGrad, else [0]. */
const lmHeadCrossEntropyKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const kernel = FUSED_KERNELS.lmHeadCrossEntropy;
  const [hidden, w] = requireFloat32(kernel, inputs, 'hidden', 'w');
  const { labels, mask } = checkTargets(kernel, inputs);
  const { transposeW, withGrad, ...layout } = attrs as unknown as RowLayout & { transposeW: boolean; withGrad: boolean };
  const b = gpu(backend);
  const logits = linear(b, hidden, w, transposeW, kernel); // [..., V]
  const [nll, lse] = crossEntropy(b, logits, labels, mask, layout);
  let dunit: TensorInfo;
  if (withGrad) {
    const ones = b.makeTensorInfo([labels.shape[0]], 'float32', new Float32Array(labels.shape[0]).fill(1));
    const dlogits = crossEntropyGrad(b, ones, logits, labels, mask, lse, layout);
    dunit = linear(b, dlogits, w, !transposeW, kernel); // [..., dim]
    b.disposeData(ones.dataId);
    b.disposeData(dlogits.dataId);
  } else {
    dunit = b.makeTensorInfo([0], 'float32', new Float32Array(0));
  }
  b.disposeData(logits.dataId);
  b.disposeData(lse.dataId);
  return [nll, dunit];
};

const scaleRowsKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const [x, dnll] = requireFloat32(FUSED_KERNELS.scaleRows, inputs, 'x', 'dnll');
  return scaleRows(gpu(backend), x, dnll, attrs as unknown as RowLayout);
};

// ---------------------------------------------------------------------------------------------

let registered = false;

/**
 * Registers the fused kernels for the webgpu backend, once per process, and their gradients (shared with the
 * native backend: backends/fused.ts defines them by kernel name, for any backend).
 */
export function registerFusedWebgpuKernels(): void {
  if (registered) return;
  registered = true;
  const kernels: [string, KernelFunc][] = [
    [FUSED_KERNELS.rmsNorm, rmsNormKernel],
    [FUSED_KERNELS.rmsNormGrad, rmsNormGradKernel],
    [FUSED_KERNELS.rmsNormWeightGrad, rmsNormWeightGradKernel],
    [FUSED_KERNELS.rope, ropeKernel],
    [FUSED_KERNELS.swiglu, swigluKernel],
    [FUSED_KERNELS.swigluGrad, swigluGradKernel],
    [FUSED_KERNELS.linear, linearKernel],
    [FUSED_KERNELS.linearFrozenWeight, linearKernel], // same product; only the gradient bookkeeping differs
    [FUSED_KERNELS.linearWeightGrad, linearWeightGradKernel],
    [FUSED_KERNELS.attention, attentionKernel(false)],
    [FUSED_KERNELS.attentionAdapter, attentionKernel(true)],
    [FUSED_KERNELS.attentionGrad, attentionGradKernel],
    [FUSED_KERNELS.crossEntropy, crossEntropyKernel],
    [FUSED_KERNELS.crossEntropyGrad, crossEntropyGradKernel],
    [FUSED_KERNELS.lmHeadCrossEntropy, lmHeadCrossEntropyKernel],
    [FUSED_KERNELS.scaleRows, scaleRowsKernel],
  ];
  for (const [kernelName, kernelFunc] of kernels) {
    if (getKernel(kernelName, BACKEND) == null) registerKernel({ kernelName, backendName: BACKEND, kernelFunc });
  }
  // tfjs keys gradients by kernel name: fused.ts's serve the webgpu kernels too, with or without the addon.
  registerFusedGradients();
}
