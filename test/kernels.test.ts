// Every fused kernel of the native backend (src-main/engine/kernels.ts -> backends/fused.ts -> native/src)
// against the composite tfjs version the engine runs elsewhere, computed on the `cpu` backend: values and the
// gradients of every differentiable input, on random shapes that cross the kernels' block sizes (64 query rows),
// grouped-query heads, a KV-cache offset, prompts shared by the batch or per example, and all gate modes.
// The addon must be built (`node tools/build-native.mjs`): without it these tests fail rather than skip.

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { gatedPromptAttention, repeatKvHeads, type GateMode } from '../src-main/engine/adapter.js';
import { ADDON_RELATIVE_PATH, initNativeBackend, loadNativeAddon, NATIVE_BACKEND } from '../src-main/engine/backends/native.js';
import { findPackageRoot } from '../src-main/engine/backends/package-root.js';
import { fusedKernels, type FusedOps } from '../src-main/engine/kernels.js';
import { crossEntropy, shiftedTargets } from '../src-main/engine/loss.js';
import { attend, causalMask, rmsNorm } from '../src-main/engine/model.js';
import { Rng } from '../src-main/engine/rng.js';
import { applyRope, ropeTables } from '../src-main/engine/rope.js';
import type { LlamaConfig } from '../src-main/engine/config.js';

interface Input {
  shape: number[];
  values: Float32Array | Int32Array;
  dtype?: 'float32' | 'int32';
}
type Inputs = Record<string, Input>;
type Op = (t: Record<string, tf.Tensor>) => tf.Tensor;

const size = (shape: number[]) => shape.reduce((p, d) => p * d, 1);

function normal(rng: Rng, shape: number[], scale = 1): Input {
  const values = new Float32Array(size(shape));
  for (let i = 0; i < values.length; i++) values[i] = scale * rng.normal();
  return { shape, values };
}

/** Value and gradients (of sum(op * r) for a fixed random r) of `op` on `backend`; checks nothing leaks. */
async function evaluate(backend: string, inputs: Inputs, op: Op, differentiate: string[], seed: number) {
  await tf.setBackend(backend);
  const before = tf.memory().numTensors;
  const tensors = Object.fromEntries(Object.entries(inputs).map(([k, x]) => [k, tf.tensor(x.values, x.shape, x.dtype ?? 'float32')]));
  const y = tf.tidy(() => op(tensors));
  const value = (await y.data()).slice() as Float32Array;
  const weights = tf.tensor(normal(new Rng(seed), y.shape).values, y.shape);
  const grads = tf.grads((...xs: tf.Tensor[]) => {
    const named = { ...tensors, ...Object.fromEntries(differentiate.map((k, i) => [k, xs[i]])) };
    return tf.sum(tf.mul(op(named), weights));
  })(differentiate.map((k) => tensors[k]));
  const gradValues = await Promise.all(grads.map(async (g) => (await g.data()).slice() as Float32Array));
  tf.dispose([y, weights, ...grads, ...Object.values(tensors)]);
  expect(tf.memory().numTensors).toBe(before);
  return { shape: y.shape, value, grads: gradValues };
}

/** max |x - y| / max(1, max |y|) */
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

/** Runs `fused` on native and `composite` on cpu and compares values and gradients. */
async function expectSame(inputs: Inputs, fused: Op, composite: Op, differentiate: string[], seed: number, tolerance = 2e-5) {
  const ours = await evaluate(NATIVE_BACKEND, inputs, fused, differentiate, seed);
  const reference = await evaluate('cpu', inputs, composite, differentiate, seed);
  expect(ours.shape).toEqual(reference.shape);
  expect(relativeError(ours.value, reference.value)).toBeLessThan(tolerance);
  differentiate.forEach((name, i) => {
    const error = relativeError(ours.grads[i], reference.grads[i]);
    if (!(error < tolerance)) throw new Error(`gradient of ${name}: relative error ${error}`);
  });
  // The gradients are not all zero, so the comparison means something.
  for (const g of reference.grads) expect(g.some((v) => v !== 0)).toBe(true);
}

/** The fused ops; fails when the native backend (and so the kernels) is not there. */
function fused(): FusedOps {
  const ops = fusedKernels();
  if (!ops) throw new Error(`fused kernels need the ${NATIVE_BACKEND} backend active`);
  return ops;
}

beforeAll(async () => {
  const status = await initNativeBackend();
  if (!status.ok) throw new Error(`the native backend is unavailable: ${status.reason}`);
  await tf.setBackend(NATIVE_BACKEND);
});

describe('fused RMSNorm', () => {
  it.each([
    [[3, 5, 8], 1],
    [[2, 70, 33], 2],
    [[1, 1, 512], 3],
  ])('x %j matches the composite, with gradients for x and the weight', async (shape, seed) => {
    const rng = new Rng(seed);
    const D = shape[shape.length - 1];
    const inputs = { x: normal(rng, shape), weight: normal(rng, [D], 0.5) };
    await expectSame(
      inputs,
      (t) => fused().rmsNorm(t.x, t.weight as tf.Tensor1D, 1e-5),
      (t) => rmsNorm(t.x, t.weight as tf.Tensor1D, 1e-5),
      ['x', 'weight'],
      seed,
    );
  });
});

describe('fused RoPE', () => {
  const config = (hd: number): LlamaConfig => ({ headDim: hd, ropeTheta: 10000, ropeScaling: null }) as LlamaConfig;

  it.each([
    [2, 7, 3, 8, 0, 1],
    [1, 66, 2, 16, 5, 2],
    [3, 1, 4, 4, 40, 3],
  ])('[B, T, heads * hd] layout: B=%i T=%i heads=%i hd=%i past=%i', async (B, T, heads, hd, past, seed) => {
    const rng = new Rng(seed);
    const { cos, sin } = tf.tidy(() => {
      const tables = ropeTables(config(hd), past, T);
      return { cos: { shape: [T, hd], values: tables.cos.dataSync().slice() as Float32Array }, sin: { shape: [T, hd], values: tables.sin.dataSync().slice() as Float32Array } };
    });
    const inputs = { x: normal(rng, [B, T, heads * hd]), cos, sin };
    // The composite rotates [B, heads, T, hd]: split heads, rotate, merge back.
    const composite: Op = (t) => {
      const split = tf.transpose(tf.reshape(t.x, [B, T, heads, hd]), [0, 2, 1, 3]) as tf.Tensor4D;
      const rotated = applyRope(split, t.cos as tf.Tensor2D, t.sin as tf.Tensor2D);
      return tf.reshape(tf.transpose(rotated, [0, 2, 1, 3]), [B, T, heads * hd]);
    };
    await expectSame(inputs, (t) => fused().rope(t.x, t.cos as tf.Tensor2D, t.sin as tf.Tensor2D, hd), composite, ['x'], seed);
  });

  it('[B, H, T, hd] layout matches applyRope directly', async () => {
    const rng = new Rng(9);
    const [B, H, T, hd] = [2, 3, 9, 8];
    const tables = tf.tidy(() => {
      const t = ropeTables(config(hd), 3, T);
      return { cos: { shape: [T, hd], values: t.cos.dataSync().slice() as Float32Array }, sin: { shape: [T, hd], values: t.sin.dataSync().slice() as Float32Array } };
    });
    await expectSame(
      { x: normal(rng, [B, H, T, hd]), ...tables },
      (t) => fused().rope(t.x, t.cos as tf.Tensor2D, t.sin as tf.Tensor2D, hd),
      (t) => applyRope(t.x as tf.Tensor4D, t.cos as tf.Tensor2D, t.sin as tf.Tensor2D),
      ['x'],
      9,
    );
  });
});

describe('fused SwiGLU', () => {
  it.each([
    [[2, 3, 5], 1],
    [[4, 33, 100], 2],
  ])('silu(gate) * up for %j, with gradients for both', async (shape, seed) => {
    const rng = new Rng(seed);
    const inputs = { gate: normal(rng, shape, 3), up: normal(rng, shape) };
    await expectSame(inputs, (t) => fused().swiglu(t.gate, t.up), (t) => tf.mul(tf.mul(t.gate, tf.sigmoid(t.gate)), t.up), ['gate', 'up'], seed);
  });
});

describe('fused linear', () => {
  it.each([
    [[2, 5, 7], [7, 3], false, 1],
    [[3, 40, 16], [16, 130], false, 2],
    [[2, 4, 16], [50, 16], true, 3], // a tied embedding [vocab, dim]
    [[1, 1, 24], [24, 300], false, 4], // one row: the matrix-vector path
    [[1, 1, 24], [300, 24], true, 5],
  ])('x %j @ w %j (transposeW %s) with gradients for x and w', async (xShape, wShape, transposeW, seed) => {
    const rng = new Rng(seed);
    const inputs = { x: normal(rng, xShape), w: normal(rng, wShape) };
    const composite: Op = (t) => {
      const inDim = xShape[xShape.length - 1];
      const y = tf.matMul(tf.reshape(t.x, [-1, inDim]), t.w, false, transposeW) as tf.Tensor2D;
      return tf.reshape(y, [...xShape.slice(0, -1), y.shape[1]]);
    };
    await expectSame(inputs, (t) => fused().linear(t.x, t.w as tf.Tensor2D, transposeW), composite, ['x'], seed);

    // A weight being trained is a variable: the fused op then keeps the input, and gives the weight's gradient.
    const reference = await evaluate('cpu', inputs, composite, ['w'], seed);
    await tf.setBackend(NATIVE_BACKEND);
    const before = tf.memory().numTensors;
    const x = tf.tensor(inputs.x.values, inputs.x.shape);
    const initial = tf.tensor2d(inputs.w.values as Float32Array, inputs.w.shape as [number, number]);
    const w = tf.variable(initial);
    initial.dispose();
    const weights = tf.tensor(normal(new Rng(seed), reference.shape).values, reference.shape);
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(fused().linear(x, w, transposeW), weights)) as tf.Scalar, [w]);
    expect(relativeError(grads[w.name].dataSync() as Float32Array, reference.grads[0])).toBeLessThan(2e-5);
    tf.dispose([x, w, weights, value, ...Object.values(grads)]);
    expect(tf.memory().numTensors).toBe(before);
  });

});

interface AttentionCase {
  B: number;
  T: number;
  past: number;
  H: number;
  Hkv: number;
  hd: number;
  prompt?: { K: number; perExample: boolean; mode: GateMode };
}

describe('fused attention', () => {
  const cases: AttentionCase[] = [
    { B: 2, T: 5, past: 0, H: 2, Hkv: 2, hd: 4 },
    { B: 1, T: 70, past: 0, H: 4, Hkv: 2, hd: 8 }, // two query blocks, GQA
    { B: 2, T: 3, past: 6, H: 4, Hkv: 1, hd: 8 }, // continuing a cache, multi-query
    { B: 2, T: 9, past: 0, H: 4, Hkv: 2, hd: 8, prompt: { K: 3, perExample: false, mode: 'per-head-tanh' } },
    { B: 3, T: 66, past: 0, H: 2, Hkv: 2, hd: 16, prompt: { K: 5, perExample: false, mode: 'per-layer' } },
    { B: 2, T: 4, past: 3, H: 4, Hkv: 2, hd: 4, prompt: { K: 2, perExample: true, mode: 'per-head' } },
    { B: 1, T: 1, past: 11, H: 2, Hkv: 1, hd: 8, prompt: { K: 4, perExample: false, mode: 'per-head-tanh' } }, // one decode step
  ];

  it.each(cases.map((c, i) => [JSON.stringify(c), c, i + 1] as const))('%s', async (_name, c, seed) => {
    const rng = new Rng(seed);
    const S = c.past + c.T;
    const inputs: Inputs = {
      q: normal(rng, [c.B, c.T, c.H * c.hd]),
      k: normal(rng, [c.B, S, c.Hkv * c.hd]),
      v: normal(rng, [c.B, S, c.Hkv * c.hd]),
    };
    const p = c.prompt;
    if (p) {
      const promptShape = p.perExample ? [c.B, p.K, c.Hkv * c.hd] : [p.K, c.Hkv * c.hd];
      Object.assign(inputs, {
        kp: normal(rng, promptShape),
        vp: normal(rng, promptShape),
        gate: normal(rng, [p.mode === 'per-layer' ? 1 : c.H], 0.7),
      });
    }
    const shape = { nHeads: c.H, nKvHeads: c.Hkv, headDim: c.hd, past: c.past };
    const fusedOp: Op = (t) =>
      fused().attention(t.q as tf.Tensor3D, t.k as tf.Tensor3D, t.v as tf.Tensor3D, shape, p ? { kp: t.kp, vp: t.vp, gate: t.gate as tf.Tensor1D, gateMode: p.mode } : undefined);

    // The composite: split heads, repeat kv heads, masked softmax attention, plus adapter.ts's gated prompt.
    const heads = (x: tf.Tensor, n: number) => {
      const [b, s] = x.shape.length === 3 ? x.shape : [1, x.shape[0]];
      return tf.transpose(tf.reshape(x, [b, s, n, c.hd]), [0, 2, 1, 3]) as tf.Tensor4D;
    };
    const rep = c.H / c.Hkv;
    const composite: Op = (t) => {
      const q = heads(t.q, c.H);
      let out = attend(q, repeatKvHeads(heads(t.k, c.Hkv), rep), repeatKvHeads(heads(t.v, c.Hkv), rep), causalMask(c.T, c.past));
      if (p) {
        const kp = repeatKvHeads(heads(t.kp, c.Hkv), rep);
        const vp = repeatKvHeads(heads(t.vp, c.Hkv), rep);
        out = tf.add(out, gatedPromptAttention(q, kp, vp, t.gate as tf.Tensor1D, p.mode)) as tf.Tensor4D;
      }
      return tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [c.B, c.T, c.H * c.hd]);
    };
    const differentiate = p ? ['q', 'k', 'v', 'kp', 'vp', 'gate'] : ['q', 'k', 'v'];
    await expectSame(inputs, fusedOp, composite, differentiate, seed, 5e-5);
  });

  it('a gate of zero leaves the output exactly the attention without a prompt', async () => {
    await tf.setBackend(NATIVE_BACKEND);
    const rng = new Rng(4);
    const t = (shape: number[]) => tf.tensor(normal(rng, shape).values, shape);
    const [q, k, v, kp, vp] = [t([2, 8, 16]), t([2, 8, 8]), t([2, 8, 8]), t([3, 8]), t([3, 8])] as tf.Tensor3D[];
    const shape = { nHeads: 4, nKvHeads: 2, headDim: 4, past: 0 };
    const gate = tf.zeros([4]) as tf.Tensor1D;
    const plain = fused().attention(q, k, v, shape);
    const gated = fused().attention(q, k, v, shape, { kp, vp, gate, gateMode: 'per-head-tanh' });
    expect(Array.from(gated.dataSync())).toEqual(Array.from(plain.dataSync()));
    tf.dispose([q, k, v, kp, vp, gate, plain, gated]);
  });
});

describe('fused cross-entropy', () => {
  /** Random logits [B, T, V] and next-token labels [B, T] with some positions ignored (-100). */
  function batch(B: number, T: number, V: number, seed: number) {
    const rng = new Rng(seed);
    const labels = new Int32Array(B * T).map((_, i) => (i % 5 === 1 ? -100 : rng.int(V)));
    return { rng, labels, logits: normal(rng, [B, T, V], 3) };
  }
  const targetsOf = (labels: Int32Array, B: number, T: number) => {
    const t = shiftedTargets(labels, B, T);
    const out = {
      labels: { shape: [B * (T - 1)], values: t.labels.dataSync().slice() as Int32Array, dtype: 'int32' as const },
      mask: { shape: [B * (T - 1)], values: t.mask.dataSync().slice() as Float32Array },
      count: t.count,
    };
    tf.dispose([t.labels, t.mask]);
    return out;
  };

  it.each([
    [2, 6, 11, 1],
    [3, 33, 1000, 2],
  ])('on logits [%i, %i, %i]: loss and d logits match the composite', async (B, T, V, seed) => {
    const { labels, logits } = batch(B, T, V, seed);
    const targets = targetsOf(labels, B, T);
    const loss: Op = (t) => crossEntropy(t.logits as tf.Tensor3D, { labels: t.labels as tf.Tensor1D, mask: t.mask as tf.Tensor1D, count: targets.count });
    await expectSame({ logits, labels: targets.labels, mask: targets.mask }, loss, loss, ['logits'], seed);
  });

  it.each([
    [2, 7, 16, 300, false, 1],
    [2, 40, 24, 5000, false, 2],
    [1, 9, 16, 70, true, 3],
    // The kernel's tiling (native/src/xent.c): a vocabulary of several column tiles (online softmax across them),
    // and more counted rows than one chunk holds.
    [2, 40, 16, 24000, false, 4],
    [3, 450, 8, 700, true, 5],
  ])('fused with the head: hidden [%i, %i, %i], vocab %i, tied %s', async (B, T, dim, V, tied, seed) => {
    const { rng, labels } = batch(B, T, V, seed);
    const targets = targetsOf(labels, B, T);
    const inputs = { hidden: normal(rng, [B, T, dim]), w: normal(rng, tied ? [V, dim] : [dim, V], 0.3), labels: targets.labels, mask: targets.mask };
    const layout = { rowsPerSeq: T - 1, seqStride: T };
    const fusedLoss: Op = (t) =>
      tf.div(tf.sum(fused().lmHeadCrossEntropy(t.hidden, t.w as tf.Tensor2D, tied, t.labels as tf.Tensor1D, t.mask as tf.Tensor1D, layout)), targets.count);
    const composite: Op = (t) => {
      const logits = tf.reshape(tf.matMul(tf.reshape(t.hidden, [-1, dim]), t.w, false, tied), [B, T, V]) as tf.Tensor3D;
      return crossEntropy(logits, { labels: t.labels as tf.Tensor1D, mask: t.mask as tf.Tensor1D, count: targets.count });
    };
    await expectSame(inputs, fusedLoss, composite, ['hidden'], seed);
  });

  it('a label outside the vocabulary is an error naming its index', async () => {
    await tf.setBackend(NATIVE_BACKEND);
    const logits = tf.zeros([1, 3, 5]);
    const labels = tf.tensor1d([1, 7], 'int32');
    const mask = tf.tensor1d([1, 1]);
    expect(() => fused().crossEntropy(logits, labels, mask, { rowsPerSeq: 2, seqStride: 3 })).toThrow(/label at index 1 is 7, outside the vocabulary \[0, 5\)/);
    tf.dispose([logits, labels, mask]);
  });
});

describe('fused kernels and memory', () => {
  it('a chain of fused ops under variableGrads leaks nothing and leaves a caller-given dy alone', async () => {
    await tf.setBackend(NATIVE_BACKEND);
    const rng = new Rng(12);
    const t = (shape: number[]) => tf.tensor(normal(rng, shape).values, shape);
    const before = tf.memory().numTensors;
    const x = t([2, 5, 8]);
    const initial = t([8]) as tf.Tensor1D;
    const weight = tf.variable(initial);
    initial.dispose();
    const w = t([8, 8]) as tf.Tensor2D;
    const chain = () => {
      const h = fused().rmsNorm(x, weight, 1e-5);
      const g = fused().swiglu(fused().linear(h, w), fused().linear(h, w));
      return fused().linear(g, w);
    };
    const { value, grads } = tf.variableGrads(() => tf.sum(chain()) as tf.Scalar, [weight]);
    expect(grads[weight.name].shape).toEqual([8]);
    tf.dispose([value, ...Object.values(grads)]);

    // tf.grad with the caller's own upstream gradient: it must still be usable afterwards.
    const dy = t([2, 5, 8]);
    const dx = tf.grad((input: tf.Tensor) => fused().rmsNorm(input, weight, 1e-5))(x, dy);
    expect(dy.isDisposed).toBe(false);
    expect(Array.from(dy.dataSync()).length).toBe(80);
    tf.dispose([dx, dy, x, w]);
    weight.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('backward frees each layer\'s saved activations and gradients once it has used them', async () => {
    await tf.setBackend(NATIVE_BACKEND);
    const rng = new Rng(14);
    const t = (shape: number[], scale = 1) => tf.tensor(normal(rng, shape, scale).values, shape);
    const layers = 12;
    const weights = Array.from({ length: layers }, () => [t([16, 32], 0.2), t([16, 32], 0.2), t([32, 16], 0.2)] as tf.Tensor2D[]);
    const initial = t([4, 8, 16]);
    const input = tf.variable(initial);
    initial.dispose();
    let buffersAtForwardEnd = 0;
    let buffersAtBackwardEnd = 0;
    // An identity at the bottom of the stack whose gradient runs last: it sees what backward still holds.
    const bottom = tf.customGrad(((x: tf.Tensor) => ({
      value: tf.add(x, 0),
      gradFunc: (dy: tf.Tensor) => {
        buffersAtBackwardEnd = tf.memory().numDataBuffers;
        return dy.clone();
      },
    })) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor) => tf.Tensor;
    const { value, grads } = tf.variableGrads(() => {
      let h = bottom(input);
      for (const [w1, w2, w3] of weights) h = fused().residualAdd(h, fused().linear(fused().swiglu(fused().linear(h, w1), fused().linear(h, w2)), w3));
      const loss = tf.sum(h) as tf.Scalar;
      buffersAtForwardEnd = tf.memory().numDataBuffers;
      return loss;
    }, [input]);
    tf.dispose([value, ...Object.values(grads), input, ...weights.flat()]);
    // Each layer keeps two [4, 8, 32] activations for backward; by the bottom, all but the last layer's are freed.
    expect(buffersAtForwardEnd - buffersAtBackwardEnd).toBeGreaterThanOrEqual(2 * (layers - 2));
  });

  it('results do not depend on the thread count', async () => {
    await tf.setBackend(NATIVE_BACKEND);
    const addon = loadNativeAddon();
    const threads = addon.getThreads();
    const rng = new Rng(13);
    const t = (shape: number[]) => tf.tensor(normal(rng, shape).values, shape);
    const [q, k, v, x, w] = [t([2, 70, 32]), t([2, 70, 16]), t([2, 70, 16]), t([300, 64]), t([64, 500])];
    const run = () =>
      tf.tidy(() => {
        const shape = { nHeads: 4, nKvHeads: 2, headDim: 8, past: 0 };
        const a = fused().attention(q as tf.Tensor3D, k as tf.Tensor3D, v as tf.Tensor3D, shape);
        return [a.dataSync().slice(), fused().linear(x, w as tf.Tensor2D).dataSync().slice()];
      });
    try {
      addon.setThreads(1);
      const single = run();
      addon.setThreads(3);
      const several = run();
      expect(several).toEqual(single);
    } finally {
      addon.setThreads(threads);
      tf.dispose([q, k, v, x, w]);
    }
  });

  it('results do not depend on the thread count for any BLAS kernel the addon may pick', () => {
    // OpenBLAS built with DYNAMIC_ARCH picks its kernels (edge-block code included) by CPU when it loads; forcing
    // OPENBLAS_CORETYPE runs each kernel family this CPU can execute, each in a fresh process.
    const addonPath = path.join(findPackageRoot(), ADDON_RELATIVE_PATH);
    const blas = loadNativeAddon().blasInfo();
    const coreTypes = blas.includes('DYNAMIC_ARCH') ? runnableCoreTypes() : [];
    const failures: string[] = [];
    for (const core of ['', ...coreTypes]) {
      const child = spawnSync(process.execPath, [path.join(path.dirname(fileURLToPath(import.meta.url)), 'helpers', 'thread-independence-child.mjs'), addonPath], {
        encoding: 'utf8',
        env: { ...process.env, OPENBLAS_CORETYPE: core },
        timeout: 120_000,
      });
      expect(child.status, `${core || 'default'} core: ${child.stderr}`).toBe(0);
      const report = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as { blas: string; mismatches: string[] };
      if (core !== '') expect(report.blas.toLowerCase(), `OPENBLAS_CORETYPE=${core} was not applied`).toContain(core.toLowerCase());
      failures.push(...report.mismatches.map((m) => `${report.blas}: ${m}`));
    }
    expect(failures).toEqual([]);
  });

  // Last in the file: a gradient that throws leaves tfjs's tape half-cleaned, which would upset the counts above.
  it('a frozen weight keeps no input for backward and refuses a weight gradient, saying why', async () => {
    await tf.setBackend(NATIVE_BACKEND);
    const [x, w] = [tf.ones([2, 3]), tf.ones([3, 4]) as tf.Tensor2D];
    expect(() => tf.grads((a: tf.Tensor, b: tf.Tensor) => fused().linear(a, b as tf.Tensor2D))([x, w])).toThrow(
      /AsLinearFrozenWeight: no gradient with respect to the weight: it was not a trainable variable when the op ran/,
    );
    tf.dispose([x, w]);
  });
});


/** OpenBLAS x86-64 core types whose instructions this CPU has (from /proc/cpuinfo); none elsewhere. */
function runnableCoreTypes(): string[] {
  if (os.platform() !== 'linux' || os.arch() !== 'x64') return [];
  const flagsLine = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags')) ?? '';
  const flags = new Set(flagsLine.split(':')[1]?.trim().split(/\s+/) ?? []);
  const has = (...names: string[]) => names.every((n) => flags.has(n));
  const avx512 = has('avx512f', 'avx512bw', 'avx512vl', 'avx512dq', 'avx512cd');
  return [
    ['Prescott', has('pni')],
    ['Nehalem', has('sse4_2')],
    ['Sandybridge', has('avx')],
    ['Haswell', has('avx2', 'fma')],
    ['Zen', has('avx2', 'fma')],
    ['SkylakeX', avx512],
    ['Cooperlake', avx512 && has('avx512_bf16')],
  ].flatMap(([name, ok]) => (ok ? [name as string] : []));
}
