// The `native` tfjs backend: the wasm backend with its matrix products handed to BLAS through our N-API addon.
//
// Why this shape: tfjs's wasm backend keeps every tensor in the wasm heap and has fast SIMD elementwise kernels,
// but its BatchMatMul runs at ~1 GFLOP/s for transposed or batched products, which is what backprop produces.
// OpenBLAS reaches ~95 GFLOP/s on the same data when it reads and writes the heap in place. So `native` is a
// second BackendWasm instance (its own heap) running every wasm kernel unchanged, except BatchMatMul and
// _FusedMatMul, which call cblas_sgemm on Float32Array views of that heap: no copies in or out.
//
// Gradients need nothing here: tfjs-core defines BatchMatMul's gradient with matMul ops, which land on these
// kernels again. On top of that, ./fused.ts registers the engine's fused transformer kernels on this backend.

import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import '@tensorflow/tfjs-backend-wasm'; // registers the `wasm` backend and its kernels, which `native` copies
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  BatchMatMul,
  _FusedMatMul,
  findBackendFactory,
  getKernel,
  getKernelsForBackend,
  Identity,
  registerBackend,
  registerKernel,
  type BatchMatMulAttrs,
  type BatchMatMulInputs,
  type KernelFunc,
  type TensorInfo,
  type _FusedMatMulAttrs,
  type _FusedMatMulInputs,
} from '@tensorflow/tfjs-core';
import { registerFusedKernels } from './fused.js';
import { matrixIndex, planBroadcast, planMatMul, type BatchMap, type BroadcastPlan } from './matmul-plan.js';
import { findPackageRoot } from './package-root.js';
import { useInstalledWasmBinaries } from './wasm-paths.js';

export const NATIVE_BACKEND = 'native';

/** Relative to the package root; written by tools/build-native.mjs (node-gyp). */
export const ADDON_RELATIVE_PATH = path.join('native', 'build', 'Release', 'adapter_native.node');

/** tfjs's fusable activations (tfjs-core ops/fused_types.ts). */
export type FusedActivation = _FusedMatMulAttrs['activation'];

/**
 * The addon's functions (native/src). All are synchronous, work in place on Float32Arrays (row-major), check
 * every bound and throw a RangeError/TypeError naming the argument rather than touch memory outside the arrays.
 */
export interface NativeAddon {
  /** C = alpha * op(A) @ op(B) + beta * C, op(A): [M, K], op(B): [K, N]; lda/ldb/ldc are stored row lengths. */
  sgemm(
    transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number,
    a: Float32Array, lda: number, b: Float32Array, ldb: number, beta: number, c: Float32Array, ldc: number,
  ): void;
  /** `batch` products, matrix i at offset i * stride of each array; a stride of 0 reuses one matrix throughout. */
  sgemmStridedBatched(
    transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number,
    a: Float32Array, lda: number, strideA: number, b: Float32Array, ldb: number, strideB: number,
    beta: number, c: Float32Array, ldc: number, strideC: number, batch: number,
  ): void;
  /**
   * out[b, r, c] = activation(out[b, r, c] + bias[b * sb + r * sr + c * sc]) in place over out viewed as
   * [batch, rows, cols]; bias and prelu weights may be null, and broadcast through zero strides.
   */
  biasActivation(
    out: Float32Array, batch: number, rows: number, cols: number,
    bias: Float32Array | null, biasStrideBatch: number, biasStrideRow: number, biasStrideCol: number,
    activation: number, leakyreluAlpha: number,
    prelu: Float32Array | null, preluStrideBatch: number, preluStrideRow: number, preluStrideCol: number,
  ): void;
  /**
   * Threads for the fused kernels and large products (1..64; default: the online cores). The addon's own pool
   * runs everything and gives each thread blocks of a product with single-threaded BLAS; the blocks depend on the
   * problem only, so results do not depend on the thread count.
   */
  setThreads(threads: number): void;
  getThreads(): number;
  /** Points file descriptor 2 at `path` (appending); returns the saved descriptor for restoreStderr, or -1. */
  redirectStderr(path: string): number;
  restoreStderr(saved: number): void;
  /** e.g. "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64". */
  blasInfo(): string;
  /** Activation name -> the code biasActivation takes. */
  activations: Readonly<Record<FusedActivation, number>>;
  /** The fused transformer kernels (native/src/kernels.h); their math and callers are in ./fused.ts. */
  rmsNorm(x: Float32Array, weight: Float32Array, eps: number, rows: number, cols: number, y: Float32Array, rstd: Float32Array): void;
  rmsNormBackward(dy: Float32Array, x: Float32Array, weight: Float32Array, rstd: Float32Array, rows: number, cols: number, dx: Float32Array): void;
  rmsNormWeightGrad(dy: Float32Array, x: Float32Array, rstd: Float32Array, rows: number, cols: number, dw: Float32Array): void;
  rope(x: Float32Array, cos: Float32Array, sin: Float32Array, outer: number, T: number, inner: number, headDim: number, backward: boolean, y: Float32Array): void;
  swiglu(gate: Float32Array, up: Float32Array, size: number, y: Float32Array): void;
  swigluBackward(dy: Float32Array, gate: Float32Array, up: Float32Array, size: number, dgate: Float32Array | null, dup: Float32Array | null): void;
  crossEntropy(
    logits: Float32Array, labels: Int32Array, mask: Float32Array, rows: number, vocab: number, rowsPerSeq: number,
    seqStride: number, nll: Float32Array, lse: Float32Array,
  ): void;
  crossEntropyBackward(
    dnll: Float32Array, logits: Float32Array, labels: Int32Array, mask: Float32Array, lse: Float32Array, rows: number,
    vocab: number, rowsPerSeq: number, seqStride: number, physRows: number, dlogits: Float32Array,
  ): void;
  lmHeadCrossEntropy(
    hidden: Float32Array, weight: Float32Array, transposeW: boolean, labels: Int32Array, mask: Float32Array,
    rows: number, dim: number, vocab: number, rowsPerSeq: number, seqStride: number, physRows: number,
    nll: Float32Array, dunit: Float32Array | null,
  ): void;
  scaleRows(
    x: Float32Array, dnll: Float32Array, rows: number, cols: number, rowsPerSeq: number, seqStride: number,
    physRows: number, y: Float32Array,
  ): void;
  /** dims: [B, T, S, H, Hkv, hd, past, K, Bp, gateMode, causal] */
  attention(
    q: Float32Array, k: Float32Array, v: Float32Array, kp: Float32Array | null, vp: Float32Array | null,
    gate: Float32Array | null, dims: number[], scale: number, out: Float32Array, lse: Float32Array,
    lseP: Float32Array | null,
  ): void;
  attentionBackward(
    dout: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, kp: Float32Array | null,
    vp: Float32Array | null, gate: Float32Array | null, lse: Float32Array, lseP: Float32Array | null, dims: number[],
    scale: number, dq: Float32Array, dk: Float32Array, dv: Float32Array, dkp: Float32Array | null,
    dvp: Float32Array | null, dgate: Float32Array | null,
  ): void;
}

export type NativeBackendStatus =
  | { ok: true; threads: number; blas: string }
  | { ok: false; reason: string };

let loadedAddon: NativeAddon | null = null;

/** Loads the compiled addon; throws an Error whose message says why it is unavailable. */
export function loadNativeAddon(): NativeAddon {
  if (loadedAddon !== null) return loadedAddon;
  const root = findPackageRoot();
  const file = path.join(root, ADDON_RELATIVE_PATH);
  if (!fs.existsSync(file)) {
    throw new Error(`the native addon is not built (${file} is missing; run \`node tools/build-native.mjs\`)`);
  }
  const require = createRequire(pathToFileURL(path.join(root, 'package.json')));
  try {
    loadedAddon = require(file) as NativeAddon;
  } catch (error) {
    throw new Error(`the native addon at ${file} failed to load: ${(error as Error).message}`);
  }
  return loadedAddon;
}

let initialization: Promise<NativeBackendStatus> | null = null;

/**
 * Loads the addon and registers the `native` backend (once; later calls return the first result). It does not
 * switch to it: the caller runs `await tf.setBackend('native')`, which instantiates the backend's wasm module.
 */
export function initNativeBackend(): Promise<NativeBackendStatus> {
  initialization ??= initialize();
  return initialization;
}

async function initialize(): Promise<NativeBackendStatus> {
  let addon: NativeAddon;
  try {
    addon = loadNativeAddon();
    useInstalledWasmBinaries();
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
  registerNativeBackend(addon);
  return { ok: true, threads: addon.getThreads(), blas: addon.blasInfo() };
}

function registerNativeBackend(addon: NativeAddon): void {
  // Registered already in this process (another copy of this module, e.g. a second bundle): nothing to add.
  if (findBackendFactory(NATIVE_BACKEND) != null) return;
  const wasmFactory = findBackendFactory('wasm');
  // Each call of the wasm backend's factory instantiates a fresh wasm module, so `native` gets its own heap and
  // tensor-id space, and `wasm` stays usable beside it.
  registerBackend(NATIVE_BACKEND, async () => await wasmFactory(), 1);

  // The wasm kernels' setupFuncs bind wasm exports of whichever backend is active; tfjs reruns them on every
  // setBackend, so sharing the configs between `wasm` and `native` is safe.
  const replaced: string[] = [BatchMatMul, _FusedMatMul, Identity];
  for (const config of getKernelsForBackend('wasm')) {
    if (replaced.includes(config.kernelName)) continue;
    registerKernel({ ...config, backendName: NATIVE_BACKEND });
  }
  registerKernel({ kernelName: BatchMatMul, backendName: NATIVE_BACKEND, kernelFunc: batchMatMulKernel(addon) });
  registerKernel({ kernelName: _FusedMatMul, backendName: NATIVE_BACKEND, kernelFunc: fusedMatMulKernel(addon) });
  registerKernel({ kernelName: Identity, backendName: NATIVE_BACKEND, kernelFunc: sharedIdentity(getKernel(Identity, 'wasm')!.kernelFunc) });
  // The engine's own fused kernels (RMSNorm, RoPE, SwiGLU, attention, cross-entropy) and their gradients.
  registerFusedKernels(addon, NATIVE_BACKEND);
}

/**
 * Identity (tensor.clone) shares the input's heap buffer, as the cpu backend's does, instead of the wasm kernel's
 * copy. tfjs clones every tensor a gradient saves, so the copy doubled the memory of everything kept for backward
 * (weights included) and cost a pass over it; heap data is never written after it is made, so sharing is safe.
 */
function sharedIdentity(copyingIdentity: KernelFunc): KernelFunc {
  return (args) => {
    const x = (args.inputs as { x: TensorInfo }).x;
    if (x.dtype === 'string') return copyingIdentity(args); // strings live outside the heap
    (args.backend as BackendWasm).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
}

function requireFloat32(kernel: string, ...tensors: (TensorInfo | undefined)[]): void {
  for (const t of tensors) {
    if (t != null && t.dtype !== 'float32') {
      throw new Error(`${kernel} on the native backend needs float32 tensors, got ${t.dtype} of shape [${t.shape}]`);
    }
  }
}

/** Float offset between consecutive matrices for a strided call; null when the map needs one call per matrix. */
function batchStride(map: BatchMap, matrixSize: number): number | null {
  return map.kind === 'identity' ? matrixSize : map.kind === 'broadcast' ? 0 : null;
}

/**
 * Allocates C and fills it with op(A) @ op(B). Heap views are taken only after makeOutput, because allocating
 * may grow the wasm memory and detach every earlier view. `extra` tensors get views in the same pass.
 */
function product(
  addon: NativeAddon,
  backend: BackendWasm,
  a: TensorInfo,
  b: TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
  extra: (TensorInfo | undefined)[] = [],
): { out: TensorInfo; outView: Float32Array; extraViews: (Float32Array | null)[] } {
  const plan = planMatMul(a.shape, b.shape, transposeA, transposeB);
  const out = backend.makeOutput(plan.outShape, 'float32');
  const view = (t: TensorInfo) => backend.typedArrayFromHeap(t) as Float32Array;
  const aView = view(a);
  const bView = view(b);
  const outView = view(out);
  const extraViews = extra.map((t) => (t == null ? null : view(t)));

  const { m, n, k, lda, ldb, batch } = plan;
  const outSize = m * n;
  const strideA = batchStride(plan.aBatch, plan.aMatrixSize);
  const strideB = batchStride(plan.bBatch, plan.bMatrixSize);
  if (strideA !== null && strideB !== null) {
    addon.sgemmStridedBatched(
      transposeA, transposeB, m, n, k, 1, aView, Math.max(1, lda), strideA, bView, Math.max(1, ldb), strideB,
      0, outView, Math.max(1, n), outSize, batch,
    );
  } else {
    // Partial broadcasting of batch dims ([2, 1] against [2, 3]): one product per output matrix.
    for (let i = 0; i < batch; i++) {
      const ai = matrixIndex(plan.aBatch, i) * plan.aMatrixSize;
      const bi = matrixIndex(plan.bBatch, i) * plan.bMatrixSize;
      addon.sgemm(
        transposeA, transposeB, m, n, k, 1,
        aView.subarray(ai, ai + plan.aMatrixSize), Math.max(1, lda),
        bView.subarray(bi, bi + plan.bMatrixSize), Math.max(1, ldb),
        0, outView.subarray(i * outSize, (i + 1) * outSize), Math.max(1, n),
      );
    }
  }
  return { out, outView, extraViews };
}

function batchMatMulKernel(addon: NativeAddon): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const { a, b } = inputs as BatchMatMulInputs;
    const { transposeA, transposeB } = attrs as unknown as BatchMatMulAttrs;
    if (a == null || b == null) throw new Error('BatchMatMul: inputs a and b are required');
    requireFloat32(BatchMatMul, a, b);
    return product(addon, backend as BackendWasm, a, b, transposeA, transposeB).out;
  };
}

function fusedMatMulKernel(addon: NativeAddon): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const { a, b, bias, preluActivationWeights: prelu } = inputs as _FusedMatMulInputs;
    const { transposeA, transposeB, activation = 'linear', leakyreluAlpha = 0.2 } =
      attrs as unknown as _FusedMatMulAttrs;
    requireFloat32(_FusedMatMul, a, b, bias, prelu);
    const code = addon.activations[activation];
    if (code === undefined) throw new Error(`_FusedMatMul: activation "${activation}" is not supported`);
    if (activation === 'prelu' && prelu == null) throw new Error('_FusedMatMul: prelu activation without weights');

    const { out, outView, extraViews } = product(
      addon, backend as BackendWasm, a, b, transposeA, transposeB, [bias, prelu],
    );
    if (bias == null && activation === 'linear') return out;
    const [biasView, preluView] = extraViews;
    applyEpilogue(addon, outView, out.shape, code, leakyreluAlpha, {
      bias: bias == null ? null : { view: biasView!, plan: planBroadcast('_FusedMatMul bias', bias.shape, out.shape) },
      // Only prelu reads its weights; tfjs passes them through unused for other activations.
      prelu:
        activation !== 'prelu' || prelu == null
          ? null
          : { view: preluView!, plan: planBroadcast('_FusedMatMul prelu weights', prelu.shape, out.shape) },
    });
    return out;
  };
}

interface Broadcast {
  view: Float32Array;
  plan: BroadcastPlan;
}

/** out = activation(out + bias) over out [...batch, rows, cols], in one addon call when the batch is strided. */
function applyEpilogue(
  addon: NativeAddon,
  out: Float32Array,
  outShape: number[],
  activation: number,
  leakyreluAlpha: number,
  operands: { bias: Broadcast | null; prelu: Broadcast | null },
): void {
  const rows = outShape[outShape.length - 2];
  const cols = outShape[outShape.length - 1];
  const batch = outShape.slice(0, -2).reduce((p, d) => p * d, 1);
  if (batch * rows * cols === 0) return;
  const { bias, prelu } = operands;
  const strideOf = (x: Broadcast | null) => (x == null ? 0 : batchStride(x.plan.batch, x.plan.matrixSize));
  const biasStride = strideOf(bias);
  const preluStride = strideOf(prelu);
  const args = (x: Broadcast | null, view: Float32Array | null, stride: number) =>
    [view, stride, x?.plan.strideRow ?? 0, x?.plan.strideCol ?? 0] as const;

  if (biasStride !== null && preluStride !== null) {
    addon.biasActivation(
      out, batch, rows, cols, ...args(bias, bias?.view ?? null, biasStride), activation, leakyreluAlpha,
      ...args(prelu, prelu?.view ?? null, preluStride),
    );
    return;
  }
  const size = rows * cols;
  const matrixOf = (x: Broadcast | null, i: number) =>
    x == null ? null : x.view.subarray(matrixIndex(x.plan.batch, i) * x.plan.matrixSize);
  for (let i = 0; i < batch; i++) {
    addon.biasActivation(
      out.subarray(i * size, (i + 1) * size), 1, rows, cols, ...args(bias, matrixOf(bias, i), 0),
      activation, leakyreluAlpha, ...args(prelu, matrixOf(prelu, i), 0),
    );
  }
}
