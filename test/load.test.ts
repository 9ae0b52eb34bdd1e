// loadModel: the tensors it makes are the checkpoint's (linear weights transposed to [in, out]), whatever the
// stored dtype, sharding and backend, and its fingerprint, which saved adapters record, stays what it was.

import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src-main/engine/backend.js';
import { loadModel, type LoadedModel } from '../src-main/engine/load.js';
import { disposeModel } from '../src-main/engine/model.js';
import { CheckpointReader } from '../src-main/engine/safetensors.js';
import { tinyLlamaConfig, writeTinyLlama } from './helpers/tiny-model.js';
import { makeTempDir } from './helpers/tmp.js';

// Projections larger than one transpose block of load.ts (65536 floats), with row and column counts that are
// not multiples of its block and tile sizes: [900, 80] reads in blocks of 819 + 81 rows, [80, 900] in 72 + 8.
const config = tinyLlamaConfig({ dim: 80, nHeads: 4, nKvHeads: 2, headDim: 20, ffnDim: 900 });

/** Every weight as loadModel should make it, straight from the file: HF [out, in] linear weights transposed. */
function expected(dir: string): Map<string, { shape: number[]; values: Float32Array }> {
  const reader = CheckpointReader.open(dir);
  const out = new Map<string, { shape: number[]; values: Float32Array }>();
  for (const name of reader.names()) {
    const shape = reader.shape(name);
    const data = reader.readF32(name);
    if (shape.length === 2 && (name.includes('_proj.') || name === 'lm_head.weight')) {
      const [rows, cols] = shape;
      const t = new Float32Array(data.length);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = data[r * cols + c];
      out.set(name, { shape: [cols, rows], values: t });
    } else {
      out.set(name, { shape, values: data });
    }
  }
  reader.close();
  return out;
}

function loaded(model: LoadedModel): Map<string, tf.Tensor> {
  const w = model.weights;
  const m = new Map<string, tf.Tensor>([
    ['model.embed_tokens.weight', w.embed],
    ['model.norm.weight', w.norm],
    ['lm_head.weight', w.lmHead!],
  ]);
  w.layers.forEach((l, i) => {
    const p = `model.layers.${i}`;
    m.set(`${p}.input_layernorm.weight`, l.attnNorm);
    m.set(`${p}.post_attention_layernorm.weight`, l.mlpNorm);
    m.set(`${p}.self_attn.q_proj.weight`, l.wq);
    m.set(`${p}.self_attn.k_proj.weight`, l.wk);
    m.set(`${p}.self_attn.v_proj.weight`, l.wv);
    m.set(`${p}.self_attn.o_proj.weight`, l.wo);
    m.set(`${p}.mlp.gate_proj.weight`, l.wGate!);
    m.set(`${p}.mlp.up_proj.weight`, l.wUp);
    m.set(`${p}.mlp.down_proj.weight`, l.wDown);
  });
  return m;
}

let dir: string;
beforeAll(() => {
  dir = makeTempDir('load');
  writeTinyLlama(join(dir, 'f32'), { config, seed: 3 });
  writeTinyLlama(join(dir, 'bf16'), { config, seed: 3, dtype: 'BF16', shards: 3 });
  writeTinyLlama(join(dir, 'f16'), { config, seed: 3, dtype: 'F16' });
});

describe('loadModel', () => {
  for (const backend of ['native', 'cpu'] as const) {
    it(`on ${backend}: every weight equals the checkpoint's, from F32, sharded BF16 and F16 files`, async () => {
      await initBackend(backend);
      for (const kind of ['f32', 'bf16', 'f16']) {
        const before = tf.memory().numTensors;
        const model = loadModel(join(dir, kind));
        const want = expected(join(dir, kind));
        const got = loaded(model);
        expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
        for (const [name, t] of got) {
          expect(t.shape, name).toEqual(want.get(name)!.shape);
          expect(t.dataSync(), name).toEqual(want.get(name)!.values);
        }
        // The fingerprint as the loader computed it before it read tensors in blocks (pinned: saved adapters
        // name their base model by it).
        if (kind === 'f32') expect(model.fingerprint).toBe('217ce2042703903df8d782e1dba6f842');
        disposeModel(model);
        expect(tf.memory().numTensors).toBe(before);
      }
    });
  }
});
