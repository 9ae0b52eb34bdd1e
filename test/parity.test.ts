// Parity with transformers + PEFT (per-layer gates) and with a PyTorch reference of the official
// per-head tanh form, on tiny HF folders made by tools/make_parity_fixtures.py: LLaMA (MHA, GQA, odd sizes,
// llama3 RoPE, attention_bias) and the other families (mistral_window and gemma3: sliding windows shorter than the
// sequence). PEFT's adaption prompt has no reference for Qwen2 (it
// supports llama and mistral) nor for a biased o_proj (it adds that bias a second time): `peft` is null there.

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Adapter, disposeAdapter, type GateMode, gateSize, makeAdapter, namedAdapterVariables } from '../src-main/engine/adapter.js';
import { loadAdapter } from '../src-main/engine/adapter-io.js';
import { initBackend } from '../src-main/engine/backend.js';
import { type LoadedModel, loadModel } from '../src-main/engine/load.js';
import { crossEntropy, type LossTargets, nextTokenLoss, shiftedTargets } from '../src-main/engine/loss.js';
import { disposeKVCache, disposeModel, forward, newKVCache } from '../src-main/engine/model.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'parity');
const TOLERANCE = 1e-4;

interface AdapterCase {
  prompts: Record<string, number[][]>;
  gates: Record<string, number | number[]>;
  logits: number[][][];
  loss: number;
  grads: { prompts: Record<string, number[][]>; gates: Record<string, number | number[]> };
}
interface Fixture {
  adapter_len: number;
  adapter_layers: number[];
  input_ids: number[][];
  labels: number[][];
  base: { logits: number[][][]; loss: number };
  family?: string;
  peft: AdapterCase | null;
  tanh: AdapterCase;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

const flat = (x: unknown): number[] => (Array.isArray(x) ? x.flat(Infinity as 1) : [x]) as number[];

function adapterFrom(f: Fixture, ref: AdapterCase, gateMode: GateMode): Adapter {
  return makeAdapter({ adapterLen: f.adapter_len, layers: f.adapter_layers, gateMode }, (layer) => ({
    prompt: tf.tensor2d(ref.prompts[layer]),
    gate: tf.tensor1d(flat(ref.gates[layer])),
  }));
}

function logitsAndLoss(model: LoadedModel, f: Fixture, adapter: Adapter | null) {
  const [B, T] = [f.input_ids.length, f.input_ids[0].length];
  const ids = tf.tensor2d(f.input_ids, [B, T], 'int32');
  const targets = shiftedTargets(Int32Array.from(f.labels.flat()), B, T);
  const logits = forward(model, ids, { adapter });
  const loss = crossEntropy(logits, targets);
  const out = { logits: logits.dataSync().slice(), loss: loss.dataSync()[0] };
  tf.dispose([ids, targets.labels, targets.mask, logits, loss]);
  return out;
}

/** The training loss: the logits path, or nextTokenLoss (on the native backend, the head fused with the loss). */
type LossFn = (model: LoadedModel, ids: tf.Tensor2D, targets: LossTargets, adapter: Adapter) => tf.Scalar;
const logitsLoss: LossFn = (model, ids, targets, adapter) => crossEntropy(forward(model, ids, { adapter }), targets);
const fusedHeadLoss: LossFn = (model, ids, targets, adapter) => nextTokenLoss(model, ids, targets, { adapter });

function gradients(model: LoadedModel, f: Fixture, adapter: Adapter, loss: LossFn = logitsLoss) {
  const [B, T] = [f.input_ids.length, f.input_ids[0].length];
  const ids = tf.tensor2d(f.input_ids, [B, T], 'int32');
  const targets = shiftedTargets(Int32Array.from(f.labels.flat()), B, T);
  const named = namedAdapterVariables(adapter);
  const { value, grads } = tf.variableGrads(() => loss(model, ids, targets, adapter), named.map(([, v]) => v));
  const byKey = Object.fromEntries(named.map(([key, v]) => [key, grads[v.name].dataSync().slice()]));
  tf.dispose([ids, targets.labels, targets.mask, value, ...Object.values(grads)]);
  return byKey;
}

const cases = readdirSync(FIXTURES).sort();

// cpu runs the composite ops; native runs the fused kernels (kernels.ts), which must give the same numbers.
describe.each(['cpu', 'native'] as const)('on the %s backend', (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
  });

  describe.each(cases)('parity: %s', (name) => {
    const f = JSON.parse(readFileSync(join(FIXTURES, name, 'fixture.json'), 'utf8')) as Fixture;
    let model: LoadedModel;
    beforeAll(() => {
      model = loadModel(join(FIXTURES, name, 'model'));
      return () => disposeModel(model);
    });

    it('base model logits and loss match transformers', () => {
      const out = logitsAndLoss(model, f, null);
      expect(maxAbsDiff(out.logits, flat(f.base.logits))).toBeLessThan(TOLERANCE);
      expect(Math.abs(out.loss - f.base.loss)).toBeLessThan(TOLERANCE);
    });

    it.each(['per-head-tanh', 'per-head', 'per-layer'] as GateMode[])('gates at zero (%s) give exactly the base model', (mode) => {
      const adapter = makeAdapter({ adapterLen: f.adapter_len, layers: f.adapter_layers, gateMode: mode }, (layer) => ({
        prompt: tf.tensor2d(f.tanh.prompts[layer]),
        gate: tf.zeros([gateSize(model.config, mode)]),
      }));
      const withAdapter = logitsAndLoss(model, f, adapter);
      const base = logitsAndLoss(model, f, null);
      expect(maxAbsDiff(withAdapter.logits, base.logits)).toBe(0);
      disposeAdapter(adapter);
    });

    for (const [form, mode] of [['peft', 'per-layer'], ['tanh', 'per-head-tanh']] as const) {
      it.skipIf(!f[form])(`${form} adapter (${mode}): logits, loss and gradients match the reference`, () => {
        const ref = f[form]!;
        const adapter = adapterFrom(f, ref, mode);
        const out = logitsAndLoss(model, f, adapter);
        expect(maxAbsDiff(out.logits, flat(ref.logits))).toBeLessThan(TOLERANCE);
        expect(Math.abs(out.loss - ref.loss)).toBeLessThan(TOLERANCE);
        // Non-zero gates really move the output, so the comparison above is not vacuous.
        expect(maxAbsDiff(out.logits, flat(f.base.logits))).toBeGreaterThan(1e-2);
        for (const loss of [logitsLoss, fusedHeadLoss]) {
          const grads = gradients(model, f, adapter, loss);
          for (const layer of f.adapter_layers) {
            expect(maxAbsDiff(grads[`layers.${layer}.prompt`], flat(ref.grads.prompts[layer]))).toBeLessThan(TOLERANCE);
            expect(maxAbsDiff(grads[`layers.${layer}.gate`], flat(ref.grads.gates[layer]))).toBeLessThan(TOLERANCE);
          }
        }
        disposeAdapter(adapter);
      });
    }

    it('decoding token by token with the KV cache (tanh adapter) gives the full forward logits, past any sliding window', () => {
      const adapter = adapterFrom(f, f.tanh, 'per-head-tanh');
      const row = f.input_ids[0];
      const full = forward(model, tf.tensor2d([row], [1, row.length], 'int32'), { adapter });
      const cache = newKVCache(model.config);
      const steps = [forward(model, tf.tensor2d([row.slice(0, 3)], [1, 3], 'int32'), { adapter, cache })];
      for (let t = 3; t < row.length; t++) steps.push(forward(model, tf.tensor2d([[row[t]]], [1, 1], 'int32'), { adapter, cache }));
      const incremental = tf.concat(steps, 1);
      // LongRoPE (phi3_longrope): while a sequence fits the original context it rotates by the short factors, so the
      // first positions are a shorter forward's; past it the cache is recomputed and every position is the full one's.
      const scaling = model.config.ropeScaling;
      const fits = scaling?.type === 'longrope' ? Math.min(scaling.originalMaxPositions, row.length) : 0;
      const expected = fits
        ? tf.concat([forward(model, tf.tensor2d([row.slice(0, fits)], [1, fits], 'int32'), { adapter }), tf.slice(full, [0, fits, 0], [1, row.length - fits, -1])], 1)
        : full;
      expect(maxAbsDiff(incremental.dataSync(), expected.dataSync())).toBeLessThan(TOLERANCE);
      // and the full forward is transformers' (with this adapter, the reference's)
      expect(maxAbsDiff(full.dataSync(), flat(f.tanh.logits).slice(0, full.size))).toBeLessThan(TOLERANCE);
      tf.dispose([full, incremental, ...steps]);
      disposeKVCache(cache);
      disposeAdapter(adapter);
    });

    it.skipIf(!f.peft)('a PEFT adapter folder saved by peft imports with the same logits', () => {
      const adapter = loadAdapter(join(FIXTURES, name, 'peft_adapter'), model);
      expect(adapter.spec.gateMode).toBe('per-layer');
      expect(adapter.spec.layers).toEqual(f.adapter_layers);
      const out = logitsAndLoss(model, f, adapter);
      expect(maxAbsDiff(out.logits, flat(f.peft!.logits))).toBeLessThan(TOLERANCE);
      disposeAdapter(adapter);
    });
  });
});
