// The `native` backend's BatchMatMul and _FusedMatMul (BLAS through the N-API addon, on wasm heap views) against
// tfjs's `cpu` backend, on random shapes covering transposes, odd sizes, batches and broadcasting. The addon must
// be built (`node tools/build-native.mjs`): without it these tests fail rather than skip.

import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import '@tensorflow/tfjs-backend-cpu';
import { initNativeBackend, loadNativeAddon, NATIVE_BACKEND } from '../src-main/engine/backends/native.js';
import { batchMap, planBroadcast, planMatMul } from '../src-main/engine/backends/matmul-plan.js';
import { FUSED_KERNELS } from '../src-main/engine/backends/fused.js';

/** Deterministic uniform [-1, 1) values (mulberry32), so a failure reproduces. */
function randomValues(size: number, seed: number): Float32Array {
  let state = seed >>> 0;
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

const size = (shape: number[]) => shape.reduce((p, d) => p * d, 1);

/** Runs `compute` on `backend` with fresh tensors made from `inputs`; returns shape and values, leaking nothing. */
async function runOn(
  backend: string,
  inputs: { shape: number[]; values: Float32Array }[],
  compute: (...xs: tf.Tensor[]) => tf.Tensor,
): Promise<{ shape: number[]; values: Float32Array }> {
  await tf.setBackend(backend);
  const before = tf.memory().numTensors;
  const result = tf.tidy(() => compute(...inputs.map((x) => tf.tensor(x.values, x.shape, 'float32'))));
  const values = (await result.data()) as Float32Array;
  const shape = result.shape;
  result.dispose();
  expect(tf.memory().numTensors).toBe(before);
  return { shape, values };
}

/** max |x - y| / max(1, max |y|): relative to the result's scale, so it means the same for every shape. */
function relativeError(x: Float32Array, y: Float32Array): number {
  expect(x.length).toBe(y.length);
  let worst = 0;
  let scale = 1;
  for (let i = 0; i < y.length; i++) {
    worst = Math.max(worst, Math.abs(x[i] - y[i]));
    scale = Math.max(scale, Math.abs(y[i]));
  }
  return worst / scale;
}

async function expectSameOnCpu(
  inputShapes: number[][],
  compute: (...xs: tf.Tensor[]) => tf.Tensor,
  seed: number,
): Promise<void> {
  const inputs = inputShapes.map((shape, i) => ({ shape, values: randomValues(size(shape), seed * 31 + i) }));
  const native = await runOn(NATIVE_BACKEND, inputs, compute);
  const cpu = await runOn('cpu', inputs, compute);
  expect(native.shape).toEqual(cpu.shape);
  expect(relativeError(native.values, cpu.values)).toBeLessThan(1e-4);
}

/** Plain-JS reference for C = op(A) @ op(B) with numpy batch broadcasting (in float64). */
function referenceMatMul(
  a: { shape: number[]; values: Float32Array },
  b: { shape: number[]; values: Float32Array },
  transposeA: boolean,
  transposeB: boolean,
): { shape: number[]; values: Float32Array } {
  const plan = planMatMul(a.shape, b.shape, transposeA, transposeB);
  const { m, n, k } = plan;
  const out = new Float32Array(size(plan.outShape));
  const aBatch = batchMap(a.shape.slice(0, -2), plan.outShape.slice(0, -2));
  const bBatch = batchMap(b.shape.slice(0, -2), plan.outShape.slice(0, -2));
  const index = (map: typeof aBatch, i: number) =>
    map.kind === 'identity' ? i : map.kind === 'broadcast' ? 0 : map.index[i];
  for (let batch = 0; batch < plan.batch; batch++) {
    const aOff = index(aBatch, batch) * m * k;
    const bOff = index(bBatch, batch) * k * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let p = 0; p < k; p++) {
          const av = a.values[aOff + (transposeA ? p * m + i : i * k + p)];
          const bv = b.values[bOff + (transposeB ? j * k + p : p * n + j)];
          sum += av * bv;
        }
        out[batch * m * n + i * n + j] = sum;
      }
    }
  }
  return { shape: plan.outShape, values: out };
}

beforeAll(async () => {
  const status = await initNativeBackend();
  if (!status.ok) throw new Error(`native backend unavailable: ${status.reason}`);
  expect(await tf.setBackend(NATIVE_BACKEND)).toBe(true);
});

describe('native backend setup', () => {
  it('replaces the matmul and identity kernels, keeps every other wasm kernel and adds the fused ones', () => {
    const wasmKernels = tf.getKernelsForBackend('wasm').map((k) => k.kernelName).sort();
    const nativeKernels = tf.getKernelsForBackend(NATIVE_BACKEND).map((k) => k.kernelName).sort();
    const fused: string[] = Object.values(FUSED_KERNELS);
    expect(nativeKernels.filter((name) => !fused.includes(name))).toEqual(wasmKernels);
    expect(nativeKernels.filter((name) => fused.includes(name)).sort()).toEqual([...fused].sort());
    for (const name of ['BatchMatMul', '_FusedMatMul', 'Identity']) {
      expect(tf.getKernel(name, NATIVE_BACKEND).kernelFunc).not.toBe(tf.getKernel(name, 'wasm').kernelFunc);
    }
    expect(tf.getKernel('Softmax', NATIVE_BACKEND).kernelFunc).toBe(tf.getKernel('Softmax', 'wasm').kernelFunc);
  });

  it('initialises once and reports the BLAS threads', async () => {
    const first = await initNativeBackend();
    const second = await initNativeBackend();
    expect(second).toBe(first);
    expect(first.ok && first.threads).toBeGreaterThanOrEqual(1);
  });

  it('runs copied wasm kernels on its own heap, also after switching to wasm and back', async () => {
    const softmaxSum = (x: tf.Tensor) => tf.add(tf.softmax(x), tf.sum(tf.matMul(x, x, false, true)));
    await expectSameOnCpu([[5, 9]], softmaxSum, 1);
    await tf.setBackend('wasm');
    const onWasm = tf.tidy(() => tf.sum(tf.softmax(tf.tensor2d([[1, 2, 3]]))).dataSync()[0]);
    expect(onWasm).toBeCloseTo(1, 5);
    await expectSameOnCpu([[5, 9]], softmaxSum, 2);
  });
});

describe('BatchMatMul on the native backend', () => {
  const cases: { name: string; a: number[]; b: number[]; tA: boolean; tB: boolean }[] = [
    { name: 'plain 2-D, odd sizes', a: [37, 53], b: [53, 29], tA: false, tB: false },
    { name: 'transposed A', a: [53, 37], b: [53, 29], tA: true, tB: false },
    { name: 'transposed B', a: [37, 53], b: [29, 53], tA: false, tB: true },
    { name: 'both transposed', a: [53, 37], b: [29, 53], tA: true, tB: true },
    { name: 'vector-like (M = 1, N = 1)', a: [1, 65], b: [65, 1], tA: false, tB: false },
    { name: 'K = 1 outer product', a: [13, 1], b: [1, 7], tA: false, tB: false },
    { name: 'batched, same batch', a: [3, 17, 23], b: [3, 23, 11], tA: false, tB: false },
    { name: 'batched, both transposed', a: [3, 23, 17], b: [3, 11, 23], tA: true, tB: true },
    { name: 'rank 4 (attention scores)', a: [2, 3, 19, 8], b: [2, 3, 19, 8], tA: false, tB: true },
    { name: 'batch-1 A broadcast', a: [1, 17, 23], b: [4, 23, 11], tA: false, tB: false },
    { name: 'rank-2 B broadcast over batch', a: [4, 17, 23], b: [11, 23], tA: false, tB: true },
    { name: 'rank-2 A broadcast over batch, transposed', a: [23, 17], b: [5, 23, 11], tA: true, tB: false },
  ];
  for (const [i, c] of cases.entries()) {
    it(`${c.name}: ${c.tA ? 'A^T' : 'A'} [${c.a}] x ${c.tB ? 'B^T' : 'B'} [${c.b}] matches cpu`, async () => {
      await expectSameOnCpu([c.a, c.b], (a, b) => tf.matMul(a, b, c.tA, c.tB), 100 + i);
    });
  }

  it('broadcasts partially matching batch dims like numpy ([2, 1] x [1, 3] batches)', async () => {
    // tfjs's cpu kernel indexes such batches modulo the batch size (not numpy broadcasting), so the reference
    // here is a plain loop.
    const a = { shape: [2, 1, 5, 7], values: randomValues(70, 7) };
    const b = { shape: [1, 3, 4, 7], values: randomValues(84, 8) };
    const native = await runOn(NATIVE_BACKEND, [a, b], (x, y) => tf.matMul(x, y, false, true));
    const expected = referenceMatMul(a, b, false, true);
    expect(native.shape).toEqual([2, 3, 5, 4]);
    expect(relativeError(native.values, expected.values)).toBeLessThan(1e-5);
  });

  it('handles empty products: K = 0 gives zeros, M = 0 gives an empty tensor', async () => {
    const zeros = await runOn(NATIVE_BACKEND, [
      { shape: [3, 0], values: new Float32Array(0) },
      { shape: [0, 4], values: new Float32Array(0) },
    ], (a, b) => tf.matMul(a, b));
    expect(zeros.shape).toEqual([3, 4]);
    expect(Array.from(zeros.values)).toEqual(new Array(12).fill(0));
    const empty = await runOn(NATIVE_BACKEND, [
      { shape: [0, 5], values: new Float32Array(0) },
      { shape: [5, 2], values: randomValues(10, 3) },
    ], (a, b) => tf.matMul(a, b));
    expect(empty.shape).toEqual([0, 2]);
  });

  it('writes outputs that grow the wasm heap (views are taken after allocation)', async () => {
    // A [2048, 1536] output is 12 MiB, more than the heap has spare at start, so makeOutput grows memory and
    // detaches any view taken before it.
    const a = { shape: [2048, 3], values: randomValues(2048 * 3, 11) };
    const b = { shape: [3, 1536], values: randomValues(3 * 1536, 12) };
    const native = await runOn(NATIVE_BACKEND, [a, b], (x, y) => tf.matMul(x, y));
    expect(relativeError(native.values, referenceMatMul(a, b, false, false).values)).toBeLessThan(1e-5);
  });

  it('rejects mismatched inner dimensions with both shapes in the message', async () => {
    await tf.setBackend(NATIVE_BACKEND);
    expect(() => tf.tidy(() => tf.matMul(tf.zeros([2, 3]), tf.zeros([4, 5])))).toThrow(/3.*4|\[2,3\]/);
  });
});

describe('_FusedMatMul on the native backend', () => {
  const activations = ['linear', 'relu', 'relu6', 'elu', 'leakyrelu', 'sigmoid'] as const;
  for (const [i, activation] of activations.entries()) {
    it(`bias [N] + ${activation}, batched with transposed B, matches cpu`, async () => {
      await expectSameOnCpu(
        [[3, 13, 21], [3, 9, 21], [9]],
        (a, b, bias) =>
          // Scaled so relu6's upper clamp and elu's negative branch are both exercised.
          tf.fused.matMul({ a: tf.mul(a, 4), b, transposeB: true, bias, activation, leakyreluAlpha: 0.13 }),
        200 + i,
      );
    });
  }

  it('prelu with per-column weights and a broadcast batch-1 operand matches cpu', async () => {
    await expectSameOnCpu(
      [[1, 11, 6], [4, 6, 7], [7], [7]],
      (a, b, bias, alpha) => tf.fused.matMul({ a, b, bias, activation: 'prelu', preluActivationWeights: alpha }),
      300,
    );
  });

  it('bias of shape [M, 1], [M, N] and a scalar, with transposed A, matches cpu', async () => {
    for (const [i, biasShape] of [[15, 1], [15, 10], []].entries()) {
      await expectSameOnCpu(
        [[2, 8, 15], [2, 8, 10], biasShape],
        (a, b, bias) => tf.fused.matMul({ a, b, transposeA: true, bias, activation: 'relu' }),
        310 + i,
      );
    }
  });

  it('no bias, linear, both transposed, matches cpu', async () => {
    await expectSameOnCpu(
      [[2, 12, 5], [2, 9, 12]],
      (a, b) => tf.fused.matMul({ a, b, transposeA: true, transposeB: true }),
      320,
    );
  });

  it('applies a bias that broadcasts partially over rank-4 batches (kernel called directly)', async () => {
    const a = { shape: [2, 3, 4, 5], values: randomValues(120, 21) };
    const b = { shape: [5, 6], values: randomValues(30, 22) };
    const bias = { shape: [2, 1, 4, 6], values: randomValues(48, 23) };
    const native = await runOn(NATIVE_BACKEND, [a, b, bias], (x, y, z) =>
      tf.engine().runKernel('_FusedMatMul', { a: x, b: y, bias: z }, {
        transposeA: false, transposeB: false, activation: 'relu', leakyreluAlpha: 0,
      }) as tf.Tensor,
    );
    const product = referenceMatMul(a, b, false, false);
    const expected = product.values.map((v, i) => {
      const [n, r, col] = [i % 6, Math.floor(i / 6) % 4, Math.floor(i / 72)];
      return Math.max(0, v + bias.values[col * 24 + r * 6 + n]);
    });
    expect(native.shape).toEqual([2, 3, 4, 6]);
    expect(relativeError(native.values, expected)).toBeLessThan(1e-5);
  });
});

describe('gradients through native matmuls', () => {
  it('tf.grads of a batched, transposed, fused chain matches cpu', async () => {
    const shapes = [[2, 5, 7], [7, 6], [4, 6], [4]];
    const inputs = shapes.map((shape, i) => ({ shape, values: randomValues(size(shape), 400 + i) }));
    const gradients = async (backend: string) => {
      await tf.setBackend(backend);
      const tensors = inputs.map((x) => tf.tensor(x.values, x.shape));
      // Weights multiply 2-D activations: tfjs's matMul gradients do not sum over broadcast batch dims, so a
      // [2, 5, 7] x [7, 6] product would get a [2, 7, 6] gradient for its weight (on every backend).
      const loss = (x: tf.Tensor, w1: tf.Tensor, w2: tf.Tensor, b: tf.Tensor) => {
        const h = tf.matMul(tf.reshape(x, [10, 7]), w1); // [10, 6]
        const z = tf.fused.matMul({ a: h, b: w2, transposeB: true, bias: b }); // [10, 4]
        const z3 = tf.reshape(z, [2, 5, 4]);
        const gram = tf.matMul(z3, z3, true, false); // [2, 4, 4]: batched with transposed A
        return tf.sum(tf.square(tf.tanh(gram)));
      };
      const grads = tf.grads(loss)(tensors);
      const values = await Promise.all(grads.map((g) => g.data() as Promise<Float32Array>));
      tf.dispose([...grads, ...tensors]);
      return values;
    };
    const native = await gradients(NATIVE_BACKEND);
    const cpu = await gradients('cpu');
    for (let i = 0; i < cpu.length; i++) {
      expect(native[i].length).toBe(size(shapes[i]));
      expect(relativeError(native[i], cpu[i])).toBeLessThan(1e-4);
    }
  });
});

describe('addon bounds checks', () => {
  it('refuses arrays shorter than the product needs instead of reading past them', () => {
    const addon = loadNativeAddon();
    const a = new Float32Array(6);
    const b = new Float32Array(6);
    expect(() => addon.sgemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, new Float32Array(3), 2)).toThrow(RangeError);
    expect(() => addon.sgemm(false, false, 3, 2, 3, 1, a, 3, b, 2, 0, new Float32Array(6), 2)).toThrow(/A needs 9/);
    expect(() =>
      addon.sgemmStridedBatched(false, false, 2, 2, 3, 1, a, 3, 6, b, 2, 0, 0, new Float32Array(8), 2, 4, 2),
    ).toThrow(/A needs 12/);
    expect(() => addon.sgemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, a, 2)).toThrow(/overlaps/);
    expect(() =>
      addon.biasActivation(new Float32Array(6), 1, 2, 3, new Float32Array(2), 0, 0, 1, 0, 0, null, 0, 0, 0),
    ).toThrow(/bias has 2 floats/);
  });
});

describe('matmul planning', () => {
  it('maps batch dims the way numpy broadcasting does', () => {
    expect(batchMap([3], [3]).kind).toBe('identity');
    expect(batchMap([], [4, 2]).kind).toBe('broadcast');
    const partial = batchMap([2, 1], [2, 3]);
    expect(partial.kind === 'indexed' && Array.from(partial.index)).toEqual([0, 0, 0, 1, 1, 1]);
    const inner = batchMap([3], [2, 3]);
    expect(inner.kind === 'indexed' && Array.from(inner.index)).toEqual([0, 1, 2, 0, 1, 2]);
    expect(() => planMatMul([2, 4, 5], [3, 5, 6], false, false)).toThrow(/\[2\] and \[3\]/);
  });

  it('reads a bias through zero strides on broadcast axes', () => {
    expect(planBroadcast('bias', [7], [3, 5, 7])).toMatchObject({ strideRow: 0, strideCol: 1, matrixSize: 7 });
    expect(planBroadcast('bias', [5, 1], [3, 5, 7])).toMatchObject({ strideRow: 1, strideCol: 0, matrixSize: 5 });
    expect(planBroadcast('bias', [3, 5, 7], [3, 5, 7]).batch.kind).toBe('identity');
    expect(() => planBroadcast('bias', [4, 5, 7], [3, 5, 7])).toThrow(/bias/);
  });
});
