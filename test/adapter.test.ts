// The zero-init attention adapter on tiny models: finite-difference gradients in every gate mode
// (MHA and GQA), KV-cached decoding equal to a full forward, and PEFT export round trips.

import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Adapter, disposeAdapter, type GateMode, initAdapter, namedAdapterVariables, randomizeGates } from '../src-main/engine/adapter.js';
import { exportPeftAdapter, loadAdapter } from '../src-main/engine/adapter-io.js';
import { initBackend } from '../src-main/engine/backend.js';
import { batchImages, disposeBatchImages, initImageProjection } from '../src-main/engine/image-prompt.js';
import { type LoadedModel, loadModel } from '../src-main/engine/load.js';
import { crossEntropy, IGNORE, shiftedTargets } from '../src-main/engine/loss.js';
import { disposeKVCache, forward, newKVCache } from '../src-main/engine/model.js';
import { Rng } from '../src-main/engine/rng.js';
import { writeTinyLlama } from './helpers/tiny-model.js';
import { makeTempDir } from './helpers/tmp.js';

let dir: string;
const models: Record<string, LoadedModel> = {};
const IDS = [[5, 17, 42, 99, 7, 3, 64], [8, 8, 120, 33, 2, 250, 11]];
const LABELS = IDS.map((row) => row.map((id, t) => (t < 3 ? IGNORE : id)));

beforeAll(async () => {
  // float64-free backend with exact reductions: finite differences need a deterministic forward.
  await initBackend('cpu');
  dir = makeTempDir('adapter');
  writeTinyLlama(join(dir, 'mha'), { seed: 5, config: { nKvHeads: 4 } });
  writeTinyLlama(join(dir, 'gqa'), { seed: 6 });
  // Qwen2's layout: biased q/k/v, so the prompt's keys and values carry k/v's biases.
  writeTinyLlama(join(dir, 'qwen2'), { seed: 7, config: { family: 'qwen2', attentionBias: { qkv: true, o: false } } });
  models.mha = loadModel(join(dir, 'mha'));
  models.gqa = loadModel(join(dir, 'gqa'));
  models.qwen2 = loadModel(join(dir, 'qwen2'));
  // Qwen3's layout: q/k normed per head before RoPE (the prompt's keys through k_norm), a head_dim of its own.
  writeTinyLlama(join(dir, 'qwen3'), { seed: 8, config: { family: 'qwen3', qkNorm: true, headDim: 12 } });
  models.qwen3 = loadModel(join(dir, 'qwen3'));
  // Gemma's: embeddings times sqrt(dim), norms by (1 + w), a GELU-gated MLP.
  writeTinyLlama(join(dir, 'gemma'), { seed: 9, config: { family: 'gemma', headDim: 12, mlpActivation: 'gelu_tanh', tieEmbeddings: true } });
  models.gemma = loadModel(join(dir, 'gemma'));
  // Gemma 2's: sandwich norms, soft-capped attention (the prompt's logits too) and final logits, its own scale.
  writeTinyLlama(join(dir, 'gemma2'), {
    seed: 10,
    config: { family: 'gemma2', headDim: 12, mlpActivation: 'gelu_tanh', tieEmbeddings: true, sandwichNorms: true, attnScale: 1 / Math.sqrt(20), attnSoftcap: 4, finalSoftcap: 3, slidingWindow: 64, maxPositions: 64 },
  });
  models.gemma2 = loadModel(join(dir, 'gemma2'));
});

function lossOf(model: LoadedModel, adapter: Adapter): number {
  return tf.tidy(() => {
    const targets = shiftedTargets(Int32Array.from(LABELS.flat()), 2, 7);
    return crossEntropy(forward(model, tf.tensor2d(IDS, [2, 7], 'int32'), { adapter }), targets).dataSync()[0];
  });
}

/** An adapter with non-zero gates, so gradients reach the prompts too. */
function liveAdapter(model: LoadedModel, mode: GateMode): Adapter {
  const adapter = initAdapter(model.config, { adapterLen: 3, layers: [1], gateMode: mode }, new Rng(11));
  for (const l of adapter.byLayer.values()) l.gate.assign(tf.fill(l.gate.shape, 0.4));
  return adapter;
}

describe.each(['mha', 'gqa', 'qwen2', 'qwen3', 'gemma', 'gemma2'])('%s', (kind) => {
  it.each(['per-head-tanh', 'per-head', 'per-layer'] as GateMode[])('gradients of prompts and gates match finite differences (%s)', (mode) => {
    const model = models[kind];
    const adapter = liveAdapter(model, mode);
    const named = namedAdapterVariables(adapter);
    const targets = shiftedTargets(Int32Array.from(LABELS.flat()), 2, 7);
    const ids = tf.tensor2d(IDS, [2, 7], 'int32');
    const { grads } = tf.variableGrads(() => crossEntropy(forward(model, ids, { adapter }), targets), named.map(([, v]) => v));
    const rng = new Rng(3);
    for (const [key, v] of named) {
      const analytic = grads[v.name].dataSync();
      const values = v.dataSync().slice();
      // Central differences on a few coordinates; float32 limits the agreement to ~1e-2 relative.
      for (let trial = 0; trial < 4; trial++) {
        const i = rng.int(values.length);
        const h = 1e-2;
        const at = (delta: number) => {
          const moved = values.slice();
          moved[i] += delta;
          v.assign(tf.tensor(moved, v.shape));
          return lossOf(model, adapter);
        };
        const numeric = (at(h) - at(-h)) / (2 * h);
        v.assign(tf.tensor(values, v.shape));
        expect(Math.abs(numeric - analytic[i]), `${key}[${i}]: numeric ${numeric}, analytic ${analytic[i]}`).toBeLessThan(2e-3 + 2e-2 * Math.abs(numeric));
      }
    }
    tf.dispose([ids, targets.labels, targets.mask, ...Object.values(grads)]);
    disposeAdapter(adapter);
  });

  it('decoding token by token with the KV cache gives the full forward logits', () => {
    const model = models[kind];
    const adapter = liveAdapter(model, 'per-head-tanh');
    const full = forward(model, tf.tensor2d([IDS[0]], [1, 7], 'int32'), { adapter });
    const cache = newKVCache(model.config);
    const steps: tf.Tensor[] = [forward(model, tf.tensor2d([IDS[0].slice(0, 3)], [1, 3], 'int32'), { adapter, cache })];
    for (let t = 3; t < 7; t++) steps.push(forward(model, tf.tensor2d([[IDS[0][t]]], [1, 1], 'int32'), { adapter, cache }));
    expect(cache.length).toBe(7);
    expect(cache.prompt.size).toBe(1); // prompt keys/values computed once and kept
    const incremental = tf.concat(steps, 1);
    expect(tf.max(tf.abs(tf.sub(full, incremental))).dataSync()[0]).toBeLessThan(1e-4);
    disposeKVCache(cache);
    disposeAdapter(adapter);
  });
});

it('a per-layer adapter exported in PEFT format loads back with identical logits', async () => {
  const model = models.gqa;
  const adapter = initAdapter(model.config, { adapterLen: 3, layers: [1], gateMode: 'per-layer' }, new Rng(2));
  adapter.byLayer.get(1)!.gate.assign(tf.tensor1d([0.7]));
  await exportPeftAdapter(join(dir, 'peft'), adapter, model.config);
  const back = loadAdapter(join(dir, 'peft'), model);
  expect(back.spec).toEqual(adapter.spec);
  const ids = tf.tensor2d(IDS, [2, 7], 'int32');
  expect(tf.max(tf.abs(tf.sub(forward(model, ids, { adapter }), forward(model, ids, { adapter: back })))).dataSync()[0]).toBe(0);
  const tanh = initAdapter(model.config, { adapterLen: 3, layers: [1], gateMode: 'per-head-tanh' }, new Rng(2));
  await expect(exportPeftAdapter(join(dir, 'peft2'), tanh, model.config)).rejects.toThrow(/per-head-tanh.*cannot be exported/);
});

it('a multi-modal image term changes the output only where the gate is open', () => {
  const model = models.gqa;
  const tower = { name: 't', fingerprint: 'f', modelType: 'clip_vision_model', imageSize: 8, patchSize: 4, hiddenSize: 8, layers: 2, projectionDim: 6 };
  const image = initImageProjection({ tower, feature: { kind: 'projected' }, featureDim: 6, hidden: 5 }, model.config.dim, new Rng(3));
  const adapter = initAdapter(model.config, { adapterLen: 3, layers: [1], gateMode: 'per-head-tanh' }, new Rng(2), image);
  const ids = tf.tensor2d(IDS, [2, 7], 'int32');
  const images = batchImages([Float32Array.from({ length: 6 }, (_, i) => i - 2), null], 6);
  const diff = () => tf.max(tf.abs(tf.sub(forward(model, ids, { adapter }), forward(model, ids, { adapter, images })))).dataSync()[0];
  expect(diff()).toBe(0); // gates at zero: the prompts, with or without the image term, have no effect
  adapter.byLayer.get(1)!.gate.assign(tf.fill([model.config.nHeads], 0.5));
  expect(diff()).toBeGreaterThan(1e-3);
  disposeBatchImages(images);
  disposeAdapter(adapter);
});

it('generation streams exactly its final text and ends before a stop string', async () => {
  const model = models.gqa;
  const { loadTokenizer } = await import('../src-main/engine/tokenizer.js');
  const { generate } = await import('../src-main/engine/sample.js');
  const tokenizer = await loadTokenizer(join(dir, 'gqa'), { bosId: model.config.bosId, eosIds: model.config.eosIds });
  const run = async (stop: string[]) => {
    let streamed = '';
    const result = await generate({
      model, promptIds: tokenizer.encode('hello world'), tokenizer, rng: new Rng(0), eosIds: [],
      sampling: { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, maxNewTokens: 24, stop },
      onText: (d) => void (streamed += d),
    });
    expect(streamed).toBe(result.text);
    return result;
  };
  const tensorsBefore = tf.memory().numTensors;
  const free = await run([]);
  expect(tf.memory().numTensors).toBe(tensorsBefore); // nothing left behind per generated token
  expect(free.finishReason).toBe('length');
  expect(free.ids.length).toBe(24);
  const stop = free.text.slice(6, 8);
  const stopped = await run([stop]);
  expect(stopped.finishReason).toBe('stop');
  expect(stopped.text).toBe(free.text.slice(0, free.text.indexOf(stop)));
});

it('an adapter holding NaN or infinity is refused, naming the tensor and the index', async () => {
  const model = models.gqa;
  const adapter = initAdapter(model.config, { adapterLen: 3, layers: [1], gateMode: 'per-layer' }, new Rng(4));
  const prompt = adapter.byLayer.get(1)!.prompt;
  const values = prompt.dataSync().slice();
  values[5] = Number.NaN;
  prompt.assign(tf.tensor(values, prompt.shape));
  await exportPeftAdapter(join(dir, 'peft-nan'), adapter, model.config);
  expect(() => loadAdapter(join(dir, 'peft-nan'), model)).toThrow(/adapter_model\.safetensors: tensor ".*adaption_prompt" holds NaN at index 5; a usable adapter holds finite numbers only/);
  adapter.byLayer.get(1)!.gate.assign(tf.tensor1d([Number.POSITIVE_INFINITY]));
  values[5] = 0;
  prompt.assign(tf.tensor(values, prompt.shape));
  await exportPeftAdapter(join(dir, 'peft-inf'), adapter, model.config);
  expect(() => loadAdapter(join(dir, 'peft-inf'), model)).toThrow(/tensor ".*adaption_gate" holds Infinity at index 0/);
});

it('zero-init leaves the base model exactly as it was; the random-init ablation does not, with the same prompts', () => {
  const model = models.gqa;
  const spec = { adapterLen: 3, layers: [0, 1], gateMode: 'per-head-tanh' as const };
  const ids = tf.tensor2d(IDS, [2, 7], 'int32');
  const base = forward(model, ids);
  const zero = initAdapter(model.config, spec, new Rng(4));
  const random = initAdapter(model.config, spec, new Rng(4));
  randomizeGates(random, new Rng(4));
  const gap = (adapter: Adapter) => tf.max(tf.abs(tf.sub(forward(model, ids, { adapter }), base))).dataSync()[0];
  expect(gap(zero)).toBe(0);
  expect(gap(random)).toBeGreaterThan(1e-3);
  for (const layer of spec.layers) {
    expect(random.byLayer.get(layer)!.prompt.dataSync()).toEqual(zero.byLayer.get(layer)!.prompt.dataSync());
    expect([...random.byLayer.get(layer)!.gate.dataSync()].every((g) => g !== 0)).toBe(true);
  }
  disposeAdapter(zero);
  disposeAdapter(random);
});
