// Full-parameter training (full-train.ts): the one-hot embedding gradient against tfjs's own gather
// gradient, a short from-scratch run that must learn, leak checks, and the HF folder round trip
// (writeModelFolder -> load.ts gives the same logits, float32 exactly, float16 closely).

import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src-main/engine/backend.js';
import { fromHfConfig } from '../src-main/engine/config.js';
import {
  evaluateLoss,
  initTrainableWeights,
  namedWeights,
  packDocuments,
  pretrain,
  withOneHotGatherGradient,
  writeModelFolder,
} from '../src-main/engine/full-train.js';
import { loadModel } from '../src-main/engine/load.js';
import { disposeModel, forward, type LlamaModel } from '../src-main/engine/model.js';
import { Rng } from '../src-main/engine/rng.js';
import { SafetensorsFile } from '../src-main/engine/safetensors.js';
import { loadTokenizer } from '../src-main/engine/tokenizer.js';
import { tinyLlamaConfig, writeTinyLlama } from './helpers/tiny-model.js';
import { makeTempDir } from './helpers/tmp.js';

const config = tinyLlamaConfig({ nLayers: 2, maxPositions: 64 });

/** A repeating token pattern: a model that learns anything predicts it almost perfectly. */
function patternWindows(count: number, seqLen: number, vocab: number): Int32Array {
  const period = [5, 9, 13, 9, 17, 21, 5, 25];
  return new Int32Array(count * seqLen).map((_, i) => period[i % period.length] % vocab);
}

async function values(t: tf.Tensor): Promise<Float32Array> {
  return new Float32Array(await t.data());
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

beforeAll(async () => {
  await initBackend('wasm');
});

afterAll(async () => {
  await tf.setBackend('wasm');
});

describe('one-hot gather gradient', () => {
  it('matches the cpu backend own gather gradient (UnsortedSegmentSum), repeated ids included', async () => {
    const table = new Float32Array(7 * 3).map((_, i) => Math.sin(i));
    const ids = [[0, 3, 3], [6, 0, 2]];
    const upstream = new Float32Array(2 * 3 * 3).map((_, i) => Math.cos(i));
    const grad = (wrap: boolean) => {
      const x = tf.tensor2d(table, [7, 3]);
      const f = (t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, tf.tensor2d(ids, [2, 3], 'int32')), tf.tensor3d(upstream, [2, 3, 3])));
      const g = wrap ? withOneHotGatherGradient(() => tf.grad(f)(x)) : tf.grad(f)(x);
      x.dispose();
      return g;
    };
    await tf.setBackend('cpu');
    const reference = grad(false);
    const expected = await values(reference);
    reference.dispose();
    await tf.setBackend('wasm');
    const oneHot = grad(true);
    expect(maxAbsDiff(await values(oneHot), expected)).toBeLessThan(1e-6);
    oneHot.dispose();
  });

  it('restores the original gradient afterwards, also when the wrapped function throws', () => {
    const original = tf.getGradient(tf.GatherV2);
    expect(() => withOneHotGatherGradient(() => { throw new Error('boom'); })).toThrow('boom');
    expect(tf.getGradient(tf.GatherV2)).toBe(original);
  });

  it('is what makes the embedding trainable on wasm: without it the gradient fails', () => {
    const x = tf.variable(tf.ones([4, 2]));
    const f = () => tf.sum(tf.gather(x, tf.tensor1d([1, 1, 3], 'int32'))) as tf.Scalar;
    expect(() => tf.variableGrads(f, [x])).toThrow();
    const { value, grads } = withOneHotGatherGradient(() => tf.variableGrads(f, [x]));
    expect(Array.from(grads[x.name].dataSync())).toEqual([0, 0, 2, 2, 0, 0, 1, 1]);
    tf.dispose([value, x, ...Object.values(grads)]);
  });
});

describe('packDocuments', () => {
  it('concatenates documents and cuts full windows, dropping the short tail', () => {
    const { windows, count } = packDocuments([[1, 5, 6, 2], [1, 7, 2], [1, 8, 9, 10, 2]], 5);
    expect(count).toBe(2);
    expect(Array.from(windows)).toEqual([1, 5, 6, 2, 1, 7, 2, 1, 8, 9]);
  });
});

describe('pretrain', () => {
  it('trains every weight from scratch: the loss on a learnable pattern falls far, and no tensor leaks', async () => {
    const before = tf.memory().numTensors;
    const windows = patternWindows(16, 32, config.vocabSize);
    const losses: number[] = [];
    const result = await pretrain({
      config,
      windows,
      settings: { seqLen: 32, batchSize: 4, epochs: 10, lr: 1e-2, minLr: 1e-3, warmupSteps: 4, weightDecay: 0.1, betas: [0.9, 0.95], eps: 1e-8, clipNorm: 1, seed: 3 },
      onEvent: (e) => {
        if (e.type === 'step') losses.push(e.loss);
      },
    });
    expect(result.steps).toBe(40);
    expect(losses).toEqual(result.losses);
    expect(losses[0]).toBeGreaterThan(Math.log(config.vocabSize) - 1); // starts near uniform
    const finalLoss = await evaluateLoss(result.model, windows, 32);
    expect(finalLoss).toBeLessThan(0.5); // from ~ln(vocab) = 5.6
    // Optimizer state is freed; only the model's own weights remain.
    const weights = namedWeights(result.model).length;
    expect(tf.memory().numTensors).toBe(before + weights);
    disposeModel(result.model);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('changes every weight, norms and embedding included', async () => {
    const rng = new Rng(1);
    const initial = initTrainableWeights(config, rng);
    const model: LlamaModel = { config, weights: initial };
    const snapshot = await Promise.all(namedWeights(model).map(async (w) => ({ name: w.name, data: await values(w.tensor) })));
    await pretrain({
      config,
      windows: patternWindows(8, 16, config.vocabSize),
      initial,
      settings: { seqLen: 16, batchSize: 4, epochs: 1, lr: 1e-2, minLr: 1e-3, warmupSteps: 0, weightDecay: 0, betas: [0.9, 0.95], eps: 1e-8, clipNorm: 0, seed: 0 },
    });
    for (const [i, w] of namedWeights(model).entries()) {
      expect(maxAbsDiff(await values(w.tensor), snapshot[i].data), w.name).toBeGreaterThan(0);
    }
    disposeModel(model);
  });

  it('refuses data shorter than one batch, naming the sizes', async () => {
    await expect(
      pretrain({ config, windows: new Int32Array(3 * 16), settings: { seqLen: 16, batchSize: 4, epochs: 1, lr: 1e-3, minLr: 0, warmupSteps: 0, weightDecay: 0, betas: [0.9, 0.95], eps: 1e-8, clipNorm: 1, seed: 0 } }),
    ).rejects.toThrow(/at least 4 windows of 16 tokens, got 48 tokens/);
  });
});

describe('writeModelFolder', () => {
  async function roundTrip(dtype: 'F32' | 'F16', tie: boolean): Promise<{ diff: number; dir: string }> {
    const ids = tf.tensor2d([[1, 17, 33, 4, 60, 2], [1, 8, 8, 9, 70, 5]], [2, 6], 'int32');
    const c = tinyLlamaConfig({ tieEmbeddings: tie, maxPositions: 64 });
    const model: LlamaModel = { config: c, weights: initTrainableWeights(c, new Rng(7), 0.2) };
    // A tokenizer to copy: the tiny model helper writes one beside its weights.
    const tokDir = makeTempDir('tiny-tok');
    writeTinyLlama(tokDir, { config: { maxPositions: 64 } });
    const dir = makeTempDir('written-model');
    await writeModelFolder(dir, model, { dtype, tokenizerDir: tokDir });
    const loaded = loadModel(dir);
    const want = tf.tidy(() => forward(model, ids));
    const got = tf.tidy(() => forward(loaded, ids));
    const wanted = await values(want);
    // Relative to the largest logit: float16 keeps ~3 significant decimal digits per weight.
    const diff = maxAbsDiff(await values(got), wanted) / Math.max(...wanted.map(Math.abs));
    expect(loaded.config).toEqual(c);
    tf.dispose([want, got, ids]);
    disposeModel(model);
    disposeModel(loaded);
    return { diff, dir };
  }

  it('float32: load.ts reads back the exact model (untied lm_head, [out, in] layout on disk)', async () => {
    const { diff, dir } = await roundTrip('F32', false);
    expect(diff).toBe(0);
    const file = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
    expect(file.info('model.layers.0.mlp.gate_proj.weight')).toMatchObject({ dtype: 'F32', shape: [config.ffnDim, config.dim] });
    expect(file.info('lm_head.weight').shape).toEqual([config.vocabSize, config.dim]);
    expect(file.metadata.format).toBe('pt');
    file.close();
  });

  it('float16 with tied embeddings: close logits, no lm_head tensor, HF files present', async () => {
    const { diff, dir } = await roundTrip('F16', true);
    expect(diff).toBeLessThan(5e-3);
    expect(diff).toBeGreaterThan(0); // the weights really were rounded
    const file = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
    expect(file.has('lm_head.weight')).toBe(false);
    expect(file.info('model.embed_tokens.weight').dtype).toBe('F16');
    file.close();
    const hf = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect(hf.torch_dtype).toBe('float16');
    expect(fromHfConfig(hf).tieEmbeddings).toBe(true);
    const generation = JSON.parse(fs.readFileSync(path.join(dir, 'generation_config.json'), 'utf8'));
    expect(generation).toMatchObject({ bos_token_id: 1, eos_token_id: 2 });
    const tok = await loadTokenizer(dir);
    expect(tok.bosId).toBe(1);
  });
});
