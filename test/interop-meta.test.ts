// Meta's original layout (params.json + consolidated.NN.pth) converted to our HF-layout folder gives
// the same logits as the HF model it was made from. Fixtures: tools/make_meta_checkpoint_fixture.py
// (the inverse q/k permutation and fairscale's model-parallel splits, applied to the parity models).

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src-main/engine/backend.js';
import { type LoadedModel, loadModel } from '../src-main/engine/load.js';
import { disposeModel, forward } from '../src-main/engine/model.js';
import { CheckpointReader, SafetensorsFile } from '../src-main/engine/safetensors.js';
import { loadTokenizer } from '../src-main/engine/tokenizer.js';
import { convertMetaCheckpoint } from '../src-main/interop/meta-checkpoint.js';
import { type TensorToSave, writeTorchFile } from '../src-main/interop/torch-file.js';
import { writeTinyLlama } from './helpers/tiny-model.js';
import { makeTempDir } from './helpers/tmp.js';

const ROOT = path.join(import.meta.dirname, 'fixtures', 'interop', 'meta');
const PARITY = path.join(import.meta.dirname, 'fixtures', 'parity');

interface Fixture {
  case: string;
  model_parallel: number;
  dtype: 'float32' | 'float16' | 'bfloat16';
  rope_scaling: { factor: number; low_freq_factor: number; high_freq_factor: number; original_max_position_embeddings: number } | null;
  max_position_embeddings: number;
  input_ids: number[][];
  logits: number[][][];
}

function logitsOf(model: LoadedModel, ids: number[][]): Float32Array {
  const input = tf.tensor2d(ids, [ids.length, ids[0].length], 'int32');
  const out = forward(model, input, {});
  const values = out.dataSync() as Float32Array;
  tf.dispose([input, out]);
  return values;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

beforeAll(async () => {
  await initBackend('cpu');
});

describe.each(fs.readdirSync(ROOT).sort())('Meta layout: %s', (name) => {
  const src = path.join(ROOT, name);
  const f = JSON.parse(fs.readFileSync(path.join(src, 'fixture.json'), 'utf8')) as Fixture;
  const ropeScaling = f.rope_scaling && {
    factor: f.rope_scaling.factor,
    lowFreqFactor: f.rope_scaling.low_freq_factor,
    highFreqFactor: f.rope_scaling.high_freq_factor,
    originalMaxPositions: f.rope_scaling.original_max_position_embeddings,
  };

  it('converts to an HF folder with the reference logits', () => {
    const out = path.join(makeTempDir('meta'), 'hf');
    const result = convertMetaCheckpoint(src, out, { noTokenizer: true, maxPositions: f.max_position_embeddings, ropeScaling: ropeScaling ?? undefined });
    expect(result.modelParallel).toBe(f.model_parallel);
    expect(result.files).toEqual(['model.safetensors']);
    // The stored dtype is the checkpoint's.
    const file = SafetensorsFile.open(path.join(out, 'model.safetensors'));
    expect(file.info('model.embed_tokens.weight').dtype).toBe({ float32: 'F32', float16: 'F16', bfloat16: 'BF16' }[f.dtype]);
    file.close();
    const model = loadModel(out);
    const scaling = model.config.ropeScaling;
    expect(scaling && 'factor' in scaling ? scaling.factor : null).toBe(f.rope_scaling?.factor ?? null);
    expect(maxAbsDiff(logitsOf(model, f.input_ids), f.logits.flat(2))).toBeLessThan(1e-4);
    disposeModel(model);
  });

  it.runIf(process.env.RUN_SLOW === '1')('transformers loads the converted folder with the same logits (slow tier)', () => {
    const out = path.join(makeTempDir('meta-hf'), 'hf');
    convertMetaCheckpoint(src, out, { noTokenizer: true, maxPositions: f.max_position_embeddings, ropeScaling: ropeScaling ?? undefined, maxShardBytes: 60_000 });
    const report = execFileSync('python3', [path.join(import.meta.dirname, '..', 'tools', 'check_hf_folder.py'), out, JSON.stringify(f.input_ids)], { encoding: 'utf8' });
    const { logits } = JSON.parse(report) as { logits: number[][][] };
    expect(maxAbsDiff(logits.flat(2), f.logits.flat(2))).toBeLessThan(1e-4);
  });

  it.runIf(f.dtype === 'float32')('gives back every tensor of the original HF model bit for bit', () => {
    const out = path.join(makeTempDir('meta-exact'), 'hf');
    convertMetaCheckpoint(src, out, { noTokenizer: true });
    const original = CheckpointReader.open(path.join(PARITY, f.case, 'model'));
    const converted = CheckpointReader.open(out);
    expect(converted.names()).toEqual(original.names());
    for (const n of original.names()) expect(converted.readF32(n)).toEqual(original.readF32(n));
    original.close();
    converted.close();
  });
});

// A Meta-layout checkpoint written here from a tiny HF model that has a real tokenizer: the inverse
// of the HF permutation, split over `ranks` as fairscale splits.
function writeMetaFromHf(hfDir: string, metaDir: string, ranks: number): void {
  const cfg = JSON.parse(fs.readFileSync(path.join(hfDir, 'config.json'), 'utf8'));
  const reader = CheckpointReader.open(hfDir);
  const heads = cfg.num_attention_heads;
  const kvHeads = cfg.num_key_value_heads;
  const unpermute = (w: Float32Array, rows: number, cols: number, h: number) => {
    const d = rows / h;
    const out = new Float32Array(w.length);
    for (let head = 0; head < h; head++)
      for (let j = 0; j < d / 2; j++)
        for (let c = 0; c < 2; c++) out.set(w.subarray((head * d + c * (d / 2) + j) * cols, (head * d + c * (d / 2) + j + 1) * cols), (head * d + 2 * j + c) * cols);
    return out;
  };
  const names: [string, string, 0 | 1 | null][] = [
    ['tok_embeddings.weight', 'model.embed_tokens.weight', 1],
    ['norm.weight', 'model.norm.weight', null],
    ['output.weight', 'lm_head.weight', 0],
  ];
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    names.push(
      [`layers.${i}.attention.wq.weight`, `${p}.self_attn.q_proj.weight`, 0],
      [`layers.${i}.attention.wk.weight`, `${p}.self_attn.k_proj.weight`, 0],
      [`layers.${i}.attention.wv.weight`, `${p}.self_attn.v_proj.weight`, 0],
      [`layers.${i}.attention.wo.weight`, `${p}.self_attn.o_proj.weight`, 1],
      [`layers.${i}.feed_forward.w1.weight`, `${p}.mlp.gate_proj.weight`, 0],
      [`layers.${i}.feed_forward.w2.weight`, `${p}.mlp.down_proj.weight`, 1],
      [`layers.${i}.feed_forward.w3.weight`, `${p}.mlp.up_proj.weight`, 0],
      [`layers.${i}.attention_norm.weight`, `${p}.input_layernorm.weight`, null],
      [`layers.${i}.ffn_norm.weight`, `${p}.post_attention_layernorm.weight`, null],
    );
  }
  const shards: TensorToSave[][] = Array.from({ length: ranks }, () => []);
  for (const [meta, hf, dim] of names) {
    const shape = reader.shape(hf);
    let data = reader.readF32(hf);
    if (meta.endsWith('wq.weight')) data = unpermute(data, shape[0], shape[1], heads);
    if (meta.endsWith('wk.weight')) data = unpermute(data, shape[0], shape[1], kvHeads);
    for (let r = 0; r < ranks; r++) {
      if (dim === null) shards[r].push({ name: meta, shape, data });
      else if (dim === 0) {
        const rows = shape[0] / ranks;
        shards[r].push({ name: meta, shape: [rows, shape[1]], data: data.slice(r * rows * shape[1], (r + 1) * rows * shape[1]) });
      } else {
        const cols = shape[1] / ranks;
        const part = new Float32Array(shape[0] * cols);
        for (let row = 0; row < shape[0]; row++) part.set(data.subarray(row * shape[1] + r * cols, row * shape[1] + (r + 1) * cols), row * cols);
        shards[r].push({ name: meta, shape: [shape[0], cols], data: part });
      }
    }
  }
  reader.close();
  fs.mkdirSync(metaDir, { recursive: true });
  shards.forEach((tensors, r) => writeTorchFile(path.join(metaDir, `consolidated.${String(r).padStart(2, '0')}.pth`), tensors));
  const params = { dim: cfg.hidden_size, n_layers: cfg.num_hidden_layers, n_heads: heads, n_kv_heads: kvHeads, norm_eps: cfg.rms_norm_eps, vocab_size: -1, multiple_of: 16 };
  fs.writeFileSync(path.join(metaDir, 'params.json'), JSON.stringify(params));
}

describe('Meta layout: tokenizer, sharding and errors', () => {
  let hfDir: string;
  let metaDir: string;
  beforeAll(() => {
    const tmp = makeTempDir('meta-tiny');
    hfDir = path.join(tmp, 'hf');
    metaDir = path.join(tmp, 'meta');
    // vocab padded to a multiple of 2 so the embedding splits over two ranks
    writeTinyLlama(hfDir, { tokenizer: 'sentencepiece', config: { vocabSize: 400, maxPositions: 4096 } });
    writeMetaFromHf(hfDir, metaDir, 2);
  });

  it('requires a tokenizer.json and says how to provide one', () => {
    fs.writeFileSync(path.join(metaDir, 'tokenizer.model'), 'not parsed');
    const out = path.join(makeTempDir('meta-out'), 'hf');
    expect(() => convertMetaCheckpoint(metaDir, out)).toThrow(/no tokenizer\.json \(found .*tokenizer\.model: converting a SentencePiece\/tiktoken tokenizer\.model is not supported\)\. Pass --tokenizer/);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('copies the given tokenizer, takes BOS/EOS from it, and matches the original model', async () => {
    const out = path.join(makeTempDir('meta-out'), 'hf');
    const result = convertMetaCheckpoint(metaDir, out, { tokenizer: path.join(hfDir, 'tokenizer.json'), maxShardBytes: 20_000 });
    expect(result.tokenizer).toBe('copied');
    expect(result.files.length).toBeGreaterThan(1); // sharded, with an index
    expect(fs.existsSync(path.join(out, 'model.safetensors.index.json'))).toBe(true);
    expect(result.notes.join('\n')).toMatch(/max_position_embeddings 4096 assumed \(Llama 2\)/);
    const [converted, original] = [loadModel(out), loadModel(hfDir)];
    expect(converted.config.bosId).toBe(1);
    expect(converted.config.eosIds).toEqual([2]);
    const ids = [[1, 5, 9, 200, 33, 7]];
    expect(maxAbsDiff(logitsOf(converted, ids), logitsOf(original, ids))).toBe(0);
    const tok = await loadTokenizer(out);
    expect(tok.encode('hello world')).toEqual((await loadTokenizer(hfDir)).encode('hello world'));
    disposeModel(converted);
    disposeModel(original);
  });

  it('names a missing model-parallel rank', () => {
    const broken = path.join(makeTempDir('meta-gap'), 'src');
    fs.cpSync(metaDir, broken, { recursive: true });
    fs.renameSync(path.join(broken, 'consolidated.01.pth'), path.join(broken, 'consolidated.02.pth'));
    expect(() => convertMetaCheckpoint(broken, path.join(broken, 'out'), { noTokenizer: true })).toThrow(/consolidated\.01\.pth is missing \(found ranks 0, 2\)/);
  });

  it('refuses params.json that disagree with the weights', () => {
    const broken = path.join(makeTempDir('meta-params'), 'src');
    fs.cpSync(metaDir, broken, { recursive: true });
    const params = JSON.parse(fs.readFileSync(path.join(broken, 'params.json'), 'utf8'));
    fs.writeFileSync(path.join(broken, 'params.json'), JSON.stringify({ ...params, n_kv_heads: 4 }));
    expect(() => convertMetaCheckpoint(broken, path.join(broken, 'out'), { noTokenizer: true })).toThrow(/"layers\.0\.attention\.wk\.weight" merges to shape \[16,32\], but params\.json and the embedding imply \[32,32\]/);
    fs.writeFileSync(path.join(broken, 'params.json'), JSON.stringify({ ...params, n_layers: 1 }));
    expect(() => convertMetaCheckpoint(broken, path.join(broken, 'out'), { noTokenizer: true })).toThrow(/unexpected tensor\(s\) "layers\.1\.[^"]+".* \(params\.json says n_layers 1\)/);
  });

  it('never writes into an existing non-empty folder', () => {
    const out = makeTempDir('meta-existing');
    fs.writeFileSync(path.join(out, 'keep.txt'), 'mine');
    expect(() => convertMetaCheckpoint(metaDir, out, { noTokenizer: true })).toThrow(/already exists and is not an empty folder/);
    expect(fs.readdirSync(out)).toEqual(['keep.txt']);
  });
});
