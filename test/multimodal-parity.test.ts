// The multi-modal LLaMA-Adapter (image-prompt.ts) against its PyTorch reference (tools/make_multimodal_fixture.py
// over tools/reference_llama_adapter.py): logits, loss and the gradients of the image projection, the prompts and
// the gates, on the composite ops (cpu) and the fused kernels (native, webgpu). Plus what must hold by construction:
// zero gates give the base model with or without an image, an example without an image gets no image term, and
// decoding with the KV cache gives the full forward's logits.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Adapter, disposeAdapter, makeAdapter, namedAdapterVariables } from '../src-main/engine/adapter.js';
import { initBackend } from '../src-main/engine/backend.js';
import { shutdownWebgpu } from '../src-main/engine/backends/webgpu.js';
import { batchImages, type BatchImages, disposeBatchImages, type ImagePromptSpec, makeImageProjection } from '../src-main/engine/image-prompt.js';
import { type LoadedModel, loadModel } from '../src-main/engine/load.js';
import { crossEntropy, nextTokenLoss, shiftedTargets } from '../src-main/engine/loss.js';
import { disposeKVCache, disposeModel, forward, newKVCache } from '../src-main/engine/model.js';

const FIXTURE = join(import.meta.dirname, 'fixtures', 'multimodal', 'fixture.json');
const TOLERANCE = 1e-4;

interface Fixture {
  model_case: string;
  adapter_len: number;
  adapter_layers: number[];
  feature_dim: number;
  hidden: number;
  input_ids: number[][];
  labels: number[][];
  features: number[][];
  present: number[];
  projection: Record<string, number[] | number[][]>;
  prompts: Record<string, number[][]>;
  gates: Record<string, number[]>;
  logits: number[][][];
  loss: number;
  grads: { projection: Record<string, number[] | number[][]>; prompts: Record<string, number[][]>; gates: Record<string, number[]> };
}

const f = JSON.parse(readFileSync(FIXTURE, 'utf8')) as Fixture;
const flat = (x: unknown): number[] => (Array.isArray(x) ? x.flat(Infinity as 1) : [x]) as number[];

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

const TOWER = { name: 'tiny', fingerprint: 'x', modelType: 'clip_vision_model', imageSize: 8, patchSize: 4, hiddenSize: 8, layers: 2, projectionDim: f.feature_dim };

function fixtureAdapter(dim: number, gates: 'fixture' | 'zero' = 'fixture'): Adapter {
  const spec: ImagePromptSpec = { tower: TOWER, feature: { kind: 'projected' }, featureDim: f.feature_dim, hidden: f.hidden };
  const key = (k: string) => k.replace('image_projection.', '');
  const image = makeImageProjection(spec, dim, (k, shape) => tf.tensor(flat(f.projection[key(k)]), shape));
  return makeAdapter(
    { adapterLen: f.adapter_len, layers: f.adapter_layers, gateMode: 'per-head-tanh' },
    (layer) => ({ prompt: tf.tensor2d(f.prompts[layer]), gate: gates === 'zero' ? tf.zeros([f.gates[layer].length]) : tf.tensor1d(f.gates[layer]) }),
    image,
  );
}

function fixtureImages(): BatchImages {
  return batchImages(f.features.map((row, b) => (f.present[b] ? Float32Array.from(row) : null)), f.feature_dim);
}

afterAll(() => shutdownWebgpu());

// webgpu: Mesa's lavapipe on CI (tools/setup-lavapipe.sh), a real GPU elsewhere; as in webgpu-parity.test.ts.
describe.each(['cpu', 'native', 'webgpu'] as const)('multi-modal adapter on the %s backend', (backend) => {
  let model: LoadedModel;
  const [B, T] = [f.input_ids.length, f.input_ids[0].length];
  beforeAll(async () => {
    await initBackend(backend);
    model = loadModel(join(import.meta.dirname, 'fixtures', 'parity', f.model_case, 'model'));
    return () => disposeModel(model);
  });

  // data(), not dataSync(): webgpu reads back asynchronously only.
  const logitsOf = async (adapter: Adapter | null, images: BatchImages | null, ids = f.input_ids) => {
    const input = tf.tensor2d(ids, [ids.length, ids[0].length], 'int32');
    const logits = forward(model, input, { adapter, images });
    const out = (await logits.data()).slice();
    tf.dispose([input, logits]);
    return out;
  };

  it('logits, loss and gradients of projection, prompts and gates match the PyTorch reference', async () => {
    const adapter = fixtureAdapter(model.config.dim);
    const images = fixtureImages();
    const logits = await logitsOf(adapter, images);
    expect(maxAbsDiff(logits, flat(f.logits))).toBeLessThan(TOLERANCE);
    // The image term really moves the output of the examples that have an image.
    expect(maxAbsDiff(logits, await logitsOf(adapter, null))).toBeGreaterThan(1e-2);

    const ids = tf.tensor2d(f.input_ids, [B, T], 'int32');
    const targets = shiftedTargets(Int32Array.from(f.labels.flat()), B, T);
    const named = namedAdapterVariables(adapter);
    expect(named.map(([k]) => k).filter((k) => k.startsWith('image_projection.'))).toHaveLength(4);
    // Both loss paths: logits + cross-entropy, and the training path (the head fused with the loss on native).
    const losses = [
      () => crossEntropy(forward(model, ids, { adapter, images }), targets),
      () => nextTokenLoss(model, ids, targets, { adapter, images }),
    ];
    for (const loss of losses) {
      const { value, grads } = tf.variableGrads(loss, named.map(([, v]) => v));
      expect(Math.abs((await value.data())[0] - f.loss)).toBeLessThan(TOLERANCE);
      for (const [key, v] of named) {
        const expected = key.startsWith('image_projection.')
          ? f.grads.projection[key.replace('image_projection.', '')]
          : key.endsWith('.prompt')
            ? f.grads.prompts[key.split('.')[1]]
            : f.grads.gates[key.split('.')[1]];
        expect(maxAbsDiff(await grads[v.name].data(), flat(expected)), key).toBeLessThan(TOLERANCE);
      }
      tf.dispose([value, ...Object.values(grads)]);
    }
    tf.dispose([ids, targets.labels, targets.mask]);
    disposeBatchImages(images);
    disposeAdapter(adapter);
  });

  it('gates at zero give exactly the base model, with an image or without', async () => {
    const adapter = fixtureAdapter(model.config.dim, 'zero');
    const images = fixtureImages();
    const base = await logitsOf(null, null);
    expect(maxAbsDiff(await logitsOf(adapter, images), base)).toBe(0);
    expect(maxAbsDiff(await logitsOf(adapter, null), base)).toBe(0);
    disposeBatchImages(images);
    disposeAdapter(adapter);
  });

  it('an example without an image gets no image term: it equals the text-only forward', async () => {
    const adapter = fixtureAdapter(model.config.dim);
    const images = fixtureImages();
    const V = model.config.vocabSize;
    const all = await logitsOf(adapter, images);
    const noImageRow = f.present.indexOf(0);
    const textOnly = await logitsOf(adapter, null, [f.input_ids[noImageRow]]);
    const row = all.slice(noImageRow * T * V, (noImageRow + 1) * T * V);
    expect(maxAbsDiff(row, textOnly)).toBeLessThan(1e-5);
    disposeBatchImages(images);
    disposeAdapter(adapter);
  });

  it('decoding with the KV cache gives the full forward\'s logits with an image', async () => {
    const adapter = fixtureAdapter(model.config.dim);
    const row = f.present.indexOf(1);
    const ids = f.input_ids[row];
    const images = batchImages([Float32Array.from(f.features[row])], f.feature_dim);
    const full = await logitsOf(adapter, images, [ids]);
    const cache = newKVCache(model.config);
    const V = model.config.vocabSize;
    const split = 4;
    const parts = [ids.slice(0, split), ...ids.slice(split).map((id) => [id])];
    const stepped: number[] = [];
    for (const part of parts) {
      const input = tf.tensor2d([part], [1, part.length], 'int32');
      const logits = forward(model, input, { adapter, images, cache });
      stepped.push(...(await logits.data()));
      tf.dispose([input, logits]);
    }
    expect(maxAbsDiff(stepped, full.slice(0, ids.length * V))).toBeLessThan(TOLERANCE);
    disposeKVCache(cache);
    disposeBatchImages(images);
    disposeAdapter(adapter);
  });

  it('images are refused by a model that takes none, naming why', () => {
    const images = fixtureImages();
    const ids = tf.tensor2d(f.input_ids, [B, T], 'int32');
    expect(() => forward(model, ids, { images })).toThrow(/only a multi-modal adapter/);
    tf.dispose(ids);
    disposeBatchImages(images);
  });
});
