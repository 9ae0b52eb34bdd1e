// The webgpu backend's WGSL fused kernels (backends/webgpu/) against the composite tfjs ops the engine runs
// elsewhere, computed on the `cpu` backend: the cases of kernels.test.ts (the native kernels' test), values and
// the gradient kernels' results against tf.grads of the composite, for a fixed random upstream gradient.
// The kernels are run by name (as engine/kernels.ts runs them); their gradient kernels are called directly, so
// this checks the WGSL on its own. On CI the GPU is lavapipe (tools/setup-lavapipe.sh).

import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatedPromptAttention, repeatKvHeads, type GateMode } from '../src-main/engine/adapter.js';
import { initBackend } from '../src-main/engine/backend.js';
import { FUSED_KERNELS } from '../src-main/engine/backends/fused.js';
import { shutdownWebgpu } from '../src-main/engine/backends/webgpu.js';
import type { LlamaConfig } from '../src-main/engine/config.js';
import { crossEntropy, shiftedTargets } from '../src-main/engine/loss.js';
import { attend, causalMask, rmsNorm } from '../src-main/engine/model.js';
import { Rng } from '../src-main/engine/rng.js';
import { applyRope, ropeTables } from '../src-main/engine/rope.js';

interface Input {
  shape: number[];
  values: Float32Array | Int32Array;
  dtype?: 'float32' | 'int32';
}
type Inputs = Record<string, Input>;
type Tensors = Record<string, tf.Tensor>;

const size = (shape: number[]) => shape.reduce((p, d) => p * d, 1);

function normal(rng: Rng, shape: number[], scale = 1): Input {
  const values = new Float32Array(size(shape));
  for (let i = 0; i < values.length; i++) values[i] = scale * rng.normal();
  return { shape, values };
}

function run(name: string, inputs: Tensors, attrs: Record<string, unknown> = {}): tf.Tensor[] {
  const out = tf.engine().runKernel(name, inputs, attrs as tf.NamedAttrMap) as tf.Tensor | tf.Tensor[];
  return Array.isArray(out) ? out : [out];
}

function materialise(inputs: Inputs): Tensors {
  return Object.fromEntries(Object.entries(inputs).map(([k, x]) => [k, tf.tensor(x.values, x.shape, x.dtype ?? 'float32')]));
}

async function read(ts: tf.Tensor[]): Promise<Float32Array[]> {
  return Promise.all(ts.map(async (t) => new Float32Array(await t.data())));
}

/**
 * On webgpu: `forward` gives the output (and the saved statistics its gradient kernel takes); `backward` gives the
 * gradients of sum(output * r) for the inputs in order, from dy = r. Checks that nothing leaks.
 */
async function evaluateFused(inputs: Inputs, forward: (t: Tensors) => tf.Tensor[], backward: (t: Tensors, dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[], seed: number) {
  await tf.setBackend('webgpu');
  const before = tf.memory().numTensors;
  const t = materialise(inputs);
  const [y, ...saved] = forward(t);
  const r = tf.tensor(normal(new Rng(seed), y.shape).values, y.shape);
  const grads = backward(t, r, saved);
  const [value, ...gradValues] = await read([y, ...grads]);
  const shape = y.shape;
  tf.dispose([y, r, ...saved, ...grads, ...Object.values(t)]);
  expect(tf.memory().numTensors).toBe(before);
  return { shape, value, grads: gradValues };
}

/** The composite on cpu: value, and tf.grads of sum(op * r) for the inputs named in `differentiate`. */
async function evaluateComposite(inputs: Inputs, op: (t: Tensors) => tf.Tensor, differentiate: string[], seed: number) {
  await tf.setBackend('cpu');
  const t = materialise(inputs);
  const y = tf.tidy(() => op(t));
  const r = tf.tensor(normal(new Rng(seed), y.shape).values, y.shape);
  const grads = tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(op({ ...t, ...Object.fromEntries(differentiate.map((k, i) => [k, xs[i]])) }), r)))(
    differentiate.map((k) => t[k]),
  );
  const [value, ...gradValues] = await read([y, ...grads]);
  const shape = y.shape;
  tf.dispose([y, r, ...grads, ...Object.values(t)]);
  return { shape, value, grads: gradValues };
}

/** max |x - y| / max(1, max |y|) */
function relativeError(x: Float32Array, y: Float32Array): number {
  expect(x.length).toBe(y.length);
  let worst = 0;
  let scale = 1;
  for (let i = 0; i < y.length; i++) {
    worst = Math.max(worst, Number.isNaN(x[i]) ? Infinity : Math.abs(x[i] - y[i]));
    scale = Math.max(scale, Math.abs(y[i]));
  }
  return worst / scale;
}

async function expectSame(
  inputs: Inputs,
  fused: { forward: (t: Tensors) => tf.Tensor[]; backward: (t: Tensors, dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[] },
  composite: (t: Tensors) => tf.Tensor,
  differentiate: string[],
  seed: number,
  tolerance = 5e-5,
) {
  const ours = await evaluateFused(inputs, fused.forward, fused.backward, seed);
  const reference = await evaluateComposite(inputs, composite, differentiate, seed);
  expect(ours.shape).toEqual(reference.shape);
  const valueError = relativeError(ours.value, reference.value);
  if (!(valueError < tolerance)) throw new Error(`value: relative error ${valueError}`);
  expect(ours.grads.length).toBe(differentiate.length);
  differentiate.forEach((name, i) => {
    const error = relativeError(ours.grads[i], reference.grads[i]);
    if (!(error < tolerance)) throw new Error(`gradient of ${name}: relative error ${error}`);
  });
  for (const g of reference.grads) expect(g.some((v) => v !== 0)).toBe(true); // the comparison means something
}

beforeAll(async () => {
  await initBackend('webgpu');
  expect(tf.getKernel(FUSED_KERNELS.attentionGrad, 'webgpu')).toBeTruthy();
});

afterAll(() => shutdownWebgpu());

describe('webgpu RMSNorm', () => {
  it.each([
    [[3, 5, 8], 1],
    [[2, 70, 33], 2],
    [[1, 1, 512], 3],
  ])('x %j matches the composite, with gradients for x and the weight', async (shape, seed) => {
    const rng = new Rng(seed);
    const D = shape[shape.length - 1];
    await expectSame(
      { x: normal(rng, shape), weight: normal(rng, [D], 0.5) },
      {
        forward: (t) => run(FUSED_KERNELS.rmsNorm, { x: t.x, weight: t.weight }, { eps: 1e-5 }),
        backward: (t, dy, [rstd]) => [
          ...run(FUSED_KERNELS.rmsNormGrad, { dy, x: t.x, weight: t.weight, rstd }),
          ...run(FUSED_KERNELS.rmsNormWeightGrad, { dy, x: t.x, rstd }),
        ],
      },
      (t) => rmsNorm(t.x, t.weight as tf.Tensor1D, 1e-5),
      ['x', 'weight'],
      seed,
    );
  });
});

describe('webgpu RoPE', () => {
  const config = (hd: number): LlamaConfig => ({ headDim: hd, ropeTheta: 10000, ropeScaling: null }) as LlamaConfig;
  const tables = async (hd: number, past: number, T: number) => {
    await tf.setBackend('cpu');
    const t = ropeTables(config(hd), past, T);
    const out = { cos: { shape: [T, hd], values: t.cos.dataSync().slice() as Float32Array }, sin: { shape: [T, hd], values: t.sin.dataSync().slice() as Float32Array } };
    tf.dispose([t.cos, t.sin]);
    return out;
  };
  const fusedRope = (hd: number) => ({
    forward: (t: Tensors) => run(FUSED_KERNELS.rope, { x: t.x, cos: t.cos, sin: t.sin }, { headDim: hd, backward: false }),
    // The rotation is orthogonal: its gradient is the same kernel run backward.
    backward: (t: Tensors, dy: tf.Tensor) => run(FUSED_KERNELS.rope, { x: dy, cos: t.cos, sin: t.sin }, { headDim: hd, backward: true }),
  });

  it.each([
    [2, 7, 3, 8, 0, 1],
    [1, 66, 2, 16, 5, 2],
    [3, 1, 4, 4, 40, 3],
  ])('[B, T, heads * hd] layout: B=%i T=%i heads=%i hd=%i past=%i', async (B, T, heads, hd, past, seed) => {
    const rng = new Rng(seed);
    const composite = (t: Tensors) => {
      const split = tf.transpose(tf.reshape(t.x, [B, T, heads, hd]), [0, 2, 1, 3]) as tf.Tensor4D;
      const rotated = applyRope(split, t.cos as tf.Tensor2D, t.sin as tf.Tensor2D);
      return tf.reshape(tf.transpose(rotated, [0, 2, 1, 3]), [B, T, heads * hd]);
    };
    await expectSame({ x: normal(rng, [B, T, heads * hd]), ...(await tables(hd, past, T)) }, fusedRope(hd), composite, ['x'], seed);
  });

  it('[B, H, T, hd] layout matches applyRope directly', async () => {
    const rng = new Rng(9);
    const [B, H, T, hd] = [2, 3, 9, 8];
    await expectSame(
      { x: normal(rng, [B, H, T, hd]), ...(await tables(hd, 3, T)) },
      fusedRope(hd),
      (t) => applyRope(t.x as tf.Tensor4D, t.cos as tf.Tensor2D, t.sin as tf.Tensor2D),
      ['x'],
      9,
    );
  });
});

describe('webgpu SwiGLU', () => {
  it.each([
    [[2, 3, 5], 1],
    [[4, 33, 100], 2],
  ])('silu(gate) * up for %j, with gradients for both', async (shape, seed) => {
    const rng = new Rng(seed);
    await expectSame(
      { gate: normal(rng, shape, 3), up: normal(rng, shape) },
      {
        forward: (t) => run(FUSED_KERNELS.swiglu, { gate: t.gate, up: t.up }),
        backward: (t, dy) => (['gate', 'up'] as const).flatMap((which) => run(FUSED_KERNELS.swigluGrad, { dy, gate: t.gate, up: t.up }, { which })),
      },
      (t) => tf.mul(tf.mul(t.gate, tf.sigmoid(t.gate)), t.up),
      ['gate', 'up'],
      seed,
    );
  });
});

describe('webgpu linear', () => {
  it.each([
    [[2, 5, 7], [7, 3], false, 1],
    [[3, 40, 16], [16, 130], false, 2],
    [[2, 4, 16], [50, 16], true, 3], // a tied embedding [vocab, dim]
    [[1, 1, 24], [24, 300], false, 4], // one row: the matrix-vector path
    [[1, 1, 24], [300, 24], true, 5],
  ])('x %j @ w %j (transposeW %s) with gradients for x and w', async (xShape, wShape, transposeW, seed) => {
    const rng = new Rng(seed);
    const inDim = xShape[xShape.length - 1];
    await expectSame(
      { x: normal(rng, xShape), w: normal(rng, wShape) },
      {
        forward: (t) => run(FUSED_KERNELS.linear, { x: t.x, w: t.w }, { transposeW }),
        backward: (t, dy) => [
          ...run(FUSED_KERNELS.linear, { x: dy, w: t.w }, { transposeW: !transposeW }),
          ...run(FUSED_KERNELS.linearWeightGrad, { x: t.x, dy }, { transposeW }),
        ],
      },
      (t) => {
        const y = tf.matMul(tf.reshape(t.x, [-1, inDim]) as tf.Tensor2D, t.w as tf.Tensor2D, false, transposeW);
        return tf.reshape(y, [...xShape.slice(0, -1), y.shape[1] as number]);
      },
      ['x', 'w'],
      seed,
    );
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

describe('webgpu attention', () => {
  const cases: AttentionCase[] = [
    { B: 2, T: 5, past: 0, H: 2, Hkv: 2, hd: 4 },
    { B: 1, T: 70, past: 0, H: 4, Hkv: 2, hd: 8 }, // two key chunks, GQA
    { B: 2, T: 3, past: 6, H: 4, Hkv: 1, hd: 8 }, // continuing a cache, multi-query
    { B: 2, T: 9, past: 0, H: 4, Hkv: 2, hd: 8, prompt: { K: 3, perExample: false, mode: 'per-head-tanh' } },
    { B: 3, T: 66, past: 0, H: 2, Hkv: 2, hd: 16, prompt: { K: 5, perExample: false, mode: 'per-layer' } },
    { B: 2, T: 4, past: 3, H: 4, Hkv: 2, hd: 4, prompt: { K: 2, perExample: true, mode: 'per-head' } },
    { B: 1, T: 1, past: 11, H: 2, Hkv: 1, hd: 8, prompt: { K: 4, perExample: false, mode: 'per-head-tanh' } }, // one decode step
    { B: 1, T: 6, past: 2, H: 2, Hkv: 1, hd: 128, prompt: { K: 10, perExample: false, mode: 'per-head-tanh' } }, // LLaMA's head size
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
      Object.assign(inputs, { kp: normal(rng, promptShape), vp: normal(rng, promptShape), gate: normal(rng, [p.mode === 'per-layer' ? 1 : c.H], 0.7) });
    }
    const attrs = { nHeads: c.H, nKvHeads: c.Hkv, headDim: c.hd, past: c.past, gateMode: p?.mode ?? 'none' };
    const fused = {
      forward: (t: Tensors) =>
        p ? run(FUSED_KERNELS.attentionAdapter, { q: t.q, k: t.k, v: t.v, kp: t.kp, vp: t.vp, gate: t.gate }, attrs) : run(FUSED_KERNELS.attention, { q: t.q, k: t.k, v: t.v }, attrs),
      backward: (t: Tensors, dout: tf.Tensor, [lse, lseP]: tf.Tensor[]) =>
        run(FUSED_KERNELS.attentionGrad, p ? { dout, q: t.q, k: t.k, v: t.v, lse, kp: t.kp, vp: t.vp, gate: t.gate, lseP } : { dout, q: t.q, k: t.k, v: t.v, lse }, attrs),
    };
    // The composite: split heads, repeat kv heads, masked softmax attention, plus adapter.ts's gated prompt.
    const heads = (x: tf.Tensor, n: number) => {
      const [b, s] = (x.shape.length === 3 ? x.shape : [1, x.shape[0]]) as number[];
      return tf.transpose(tf.reshape(x, [b, s, n, c.hd]), [0, 2, 1, 3]) as tf.Tensor4D;
    };
    const rep = c.H / c.Hkv;
    const composite = (t: Tensors) => {
      const q = heads(t.q, c.H);
      let out = attend(q, repeatKvHeads(heads(t.k, c.Hkv), rep), repeatKvHeads(heads(t.v, c.Hkv), rep), causalMask(c.T, c.past));
      if (p) out = tf.add(out, gatedPromptAttention(q, repeatKvHeads(heads(t.kp, c.Hkv), rep), repeatKvHeads(heads(t.vp, c.Hkv), rep), t.gate as tf.Tensor1D, p.mode)) as tf.Tensor4D;
      return tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [c.B, c.T, c.H * c.hd]);
    };
    await expectSame(inputs, fused, composite, p ? ['q', 'k', 'v', 'kp', 'vp', 'gate'] : ['q', 'k', 'v'], seed, 1e-4);
  });

  it('a gate of zero leaves the output exactly the attention without a prompt', async () => {
    await tf.setBackend('webgpu');
    const rng = new Rng(4);
    const t = (shape: number[]) => tf.tensor(normal(rng, shape).values, shape);
    const [q, k, v, kp, vp] = [t([2, 8, 16]), t([2, 8, 8]), t([2, 8, 8]), t([3, 8]), t([3, 8])];
    const attrs = { nHeads: 4, nKvHeads: 2, headDim: 4, past: 0 };
    const gate = tf.zeros([4]);
    const plain = run(FUSED_KERNELS.attention, { q, k, v }, { ...attrs, gateMode: 'none' });
    const gated = run(FUSED_KERNELS.attentionAdapter, { q, k, v, kp, vp, gate }, { ...attrs, gateMode: 'per-head-tanh' });
    const [a, b] = await read([plain[0], gated[0]]);
    expect(Array.from(b)).toEqual(Array.from(a));
    tf.dispose([q, k, v, kp, vp, gate, ...plain, ...gated]);
  });
});

describe('webgpu cross-entropy', () => {
  /** Random logits [B, T, V] and next-token labels [B, T] with some positions ignored (-100). */
  async function batch(B: number, T: number, V: number, seed: number) {
    const rng = new Rng(seed);
    const labels = new Int32Array(B * T).map((_, i) => (i % 5 === 1 ? -100 : rng.int(V)));
    await tf.setBackend('cpu');
    const t = shiftedTargets(labels, B, T);
    const targets = {
      labels: { shape: [B * (T - 1)], values: t.labels.dataSync().slice() as Int32Array, dtype: 'int32' as const },
      mask: { shape: [B * (T - 1)], values: t.mask.dataSync().slice() as Float32Array },
      count: t.count,
    };
    tf.dispose([t.labels, t.mask]);
    return { rng, targets };
  }
  const loss = (count: number) => (t: Tensors) => crossEntropy(t.logits as tf.Tensor3D, { labels: t.labels as tf.Tensor1D, mask: t.mask as tf.Tensor1D, count });

  it.each([
    [2, 6, 11, 1],
    [3, 33, 1000, 2],
  ])('on logits [%i, %i, %i]: loss and d logits match the composite', async (B, T, V, seed) => {
    const { rng, targets } = await batch(B, T, V, seed);
    const layout = { rowsPerSeq: T - 1, seqStride: T };
    await expectSame(
      { logits: normal(rng, [B, T, V], 3), labels: targets.labels, mask: targets.mask },
      {
        // The engine's loss: the mean over counted rows of the fused per-row losses.
        forward: (t) => {
          const [nll, lse] = run(FUSED_KERNELS.crossEntropy, { logits: t.logits, labels: t.labels, mask: t.mask }, layout);
          const mean = tf.tidy(() => tf.div(tf.sum(nll), targets.count));
          nll.dispose();
          return [mean, lse];
        },
        backward: (t, dy, [lse]) => {
          const dnll = tf.fill([targets.labels.shape[0]], (dy.dataSync()[0] as number) / targets.count);
          const out = run(FUSED_KERNELS.crossEntropyGrad, { dnll, logits: t.logits, labels: t.labels, mask: t.mask, lse }, layout);
          dnll.dispose();
          return out;
        },
      },
      loss(targets.count),
      ['logits'],
      seed,
    );
  });

  it.each([
    [2, 7, 16, 300, false, 1],
    [2, 40, 24, 5000, false, 2],
    [1, 9, 16, 70, true, 3],
  ])('fused with the head: hidden [%i, %i, %i], vocab %i, tied %s', async (B, T, dim, V, tied, seed) => {
    const { rng, targets } = await batch(B, T, V, seed);
    const layout = { rowsPerSeq: T - 1, seqStride: T };
    await expectSame(
      { hidden: normal(rng, [B, T, dim]), w: normal(rng, tied ? [V, dim] : [dim, V], 0.3), labels: targets.labels, mask: targets.mask },
      {
        forward: (t) => {
          const [nll, dunit] = run(FUSED_KERNELS.lmHeadCrossEntropy, { hidden: t.hidden, w: t.w, labels: t.labels, mask: t.mask }, { ...layout, transposeW: tied, withGrad: true });
          const mean = tf.tidy(() => tf.div(tf.sum(nll), targets.count));
          nll.dispose();
          return [mean, dunit];
        },
        backward: (_t, dy, [dunit]) => {
          const dnll = tf.fill([targets.labels.shape[0]], (dy.dataSync()[0] as number) / targets.count);
          const out = run(FUSED_KERNELS.scaleRows, { x: dunit, dnll }, layout);
          dnll.dispose();
          return out;
        },
      },
      (t) => {
        const logits = tf.reshape(tf.matMul(tf.reshape(t.hidden, [-1, dim]), t.w, false, tied), [B, T, V]) as tf.Tensor3D;
        return loss(targets.count)({ ...t, logits });
      },
      ['hidden'],
      seed,
    );
  });
});
