// Loading a Hugging Face LLaMA folder: config.json, (sharded) safetensors, tokenizer.json.
// Weights are streamed tensor by tensor, checked by name and shape, and converted to float32;
// the whole model is never held twice. On the wasm-heap backends (wasm, native) each tensor is read
// from disk straight into its own buffer in the heap, and linear weights are transposed on the way
// in from small row blocks: no whole-tensor copy exists on either side, so loading leaves neither
// garbage for the JS collector nor holes in the heap (which never shrinks).

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { expectedWeights, fromHfConfig, layerNormNames, type LlamaConfig } from './config.js';
import { EngineError } from './errors.js';
import type { LayerWeights, LlamaModel } from './model.js';
import { readJsonObject } from './json-file.js';
import { CheckpointReader, firstNonFinite } from './safetensors.js';

export function readModelConfig(dir: string): LlamaConfig {
  const file = join(dir, 'config.json');
  if (!existsSync(file)) throw new EngineError(`${dir}: not a model folder (no config.json)`);
  const config = fromHfConfig(readJsonObject(file), file);
  // Generation settings may name other EOS tokens (e.g. Llama 3's <|eot_id|>).
  const genFile = join(dir, 'generation_config.json');
  if (existsSync(genFile)) {
    try {
      const gen = JSON.parse(readFileSync(genFile, 'utf8'));
      const eos = gen.eos_token_id;
      const extra = (Array.isArray(eos) ? eos : eos === undefined || eos === null ? [] : [eos]) as unknown[];
      for (const id of extra) {
        if (Number.isInteger(id) && (id as number) < config.vocabSize && !config.eosIds.includes(id as number)) {
          config.eosIds.push(id as number);
        }
      }
    } catch (e) {
      throw new EngineError(`${genFile}: invalid JSON (${(e as Error).message})`);
    }
  }
  return config;
}

/**
 * Every tensor config.json implies is in the weight files with that shape (headers only, nothing allocated):
 * what `info` and loading check before sizing anything from the config. Returns the expected shapes.
 */
function checkShapes(dir: string, config: LlamaConfig, reader: CheckpointReader): Map<string, number[]> {
  const expected = expectedWeights(config);
  const present = new Set(reader.names());
  const inFile = fileNames(reader);
  for (const [name, shape] of expected) {
    if (!present.has(inFile(name))) throw new EngineError(`${dir}: weights are missing tensor "${name}" (expected shape [${shape}])`);
    const actual = reader.shape(inFile(name));
    if (actual.length !== shape.length || actual.some((d, i) => d !== shape[i])) {
      throw new EngineError(`${dir}: tensor "${name}" has shape [${actual}], but config.json implies [${shape}]`);
    }
  }
  return expected;
}

/**
 * A weight's name in the files: as expectedWeights names it, or without GPT-2's `transformer.` prefix (files saved
 * from GPT2Model, as the original gpt2 checkpoints are).
 */
function fileNames(reader: CheckpointReader): (name: string) => string {
  const present = new Set(reader.names());
  const unprefixed = !present.has('transformer.wte.weight') && present.has('wte.weight');
  return (name) => (unprefixed && name.startsWith('transformer.') ? name.slice('transformer.'.length) : name);
}

/** The config of a model folder whose weight files hold exactly the tensors it implies (see checkShapes). */
export function readCheckedModelConfig(dir: string): LlamaConfig {
  const config = readModelConfig(dir);
  const reader = CheckpointReader.open(dir);
  try {
    checkShapes(dir, config, reader);
  } finally {
    reader.close();
  }
  return config;
}

/**
 * The config as the fingerprint hashes it. A plain LLaMA hashes as it did before families existed, so the
 * fingerprints that adapters and workspaces recorded still match; any other family or bias is part of it.
 */
function fingerprintedConfig(config: LlamaConfig): string {
  const { family, attentionBias, ...rest } = config;
  const plain = family === 'llama' && !attentionBias.qkv && !attentionBias.o;
  return JSON.stringify(plain ? rest : config);
}

export interface LoadedModel extends LlamaModel {
  dir: string;
  /** Identifies these exact weights: config + every tensor's name, shape and sampled values. */
  fingerprint: string;
}

/** Values sampled per tensor for the fingerprint: enough to tell fine-tunes apart, cheap for 7B. */
const FINGERPRINT_SAMPLES = 256;

export function loadModel(dir: string): LoadedModel {
  const config = readModelConfig(dir);
  const reader = CheckpointReader.open(dir);
  const hash = createHash('sha256');
  hash.update(fingerprintedConfig(config));
  const made: tf.Tensor[] = [];
  try {
    const expected = checkShapes(dir, config, reader);
    const inFile = fileNames(reader);
    const read = (name: string, transpose = false): tf.Tensor => {
      const shape = expected.get(name)!;
      const count = shape.reduce((a, b) => a * b, 1);
      hash.update(`${name}:${shape}`);
      const step = Math.max(1, Math.floor(count / FINGERPRINT_SAMPLES));
      const sample = new Float32Array(Math.ceil(count / step));
      // Every step-th value in file order; `values` holds elements [first, first + values.length).
      const takeSamples = (values: Float32Array, first: number) => {
        for (let i = Math.ceil(first / step) * step; i < first + values.length; i += step) sample[i / step] = values[i - first];
      };
      const weight = newWeight(transpose ? [shape[1], shape[0]] : shape);
      if (transpose) {
        readTransposed(reader, inFile(name), shape[0], shape[1], weight.values, takeSamples); // [out, in] -> [in, out]
      } else {
        reader.readF32Into(inFile(name), weight.values);
        takeSamples(weight.values, 0);
      }
      hash.update(new Uint8Array(sample.buffer));
      // A NaN or infinity in a base weight makes every answer empty or garbage, silently: refused once, here.
      const bad = firstNonFinite(weight.values);
      const value = bad >= 0 ? weight.values[bad] : 0;
      made.push(weight.finish());
      if (bad >= 0) {
        const at = transpose ? [bad % shape[0]!, Math.floor(bad / shape[0]!)] : unravel(bad, shape);
        throw new EngineError(`${dir}: tensor "${name}" holds ${value} at [${at}]; a usable model holds finite numbers only`);
      }
      return made[made.length - 1]!;
    };
    // Phi-3's fused projections: read as one [in, sum of outs] weight, split into the engine's projections by columns.
    const splitColumns = <K extends string>(name: string, widths: Record<K, number>): Record<K, tf.Tensor2D> => {
      const whole = read(name, true) as tf.Tensor2D;
      const keys = Object.keys(widths) as K[];
      const parts = tf.split(whole, keys.map((k) => widths[k]), 1) as tf.Tensor2D[];
      made.splice(made.indexOf(whole), 1, ...parts);
      whole.dispose();
      return Object.fromEntries(keys.map((k, i) => [k, parts[i]])) as Record<K, tf.Tensor2D>;
    };
    if (config.family === 'gpt2') return { config, weights: gpt2Weights(config, read, made), dir, fingerprint: hash.digest('hex').slice(0, 32) };
    const layers: LayerWeights[] = [];
    for (let i = 0; i < config.nLayers; i++) {
      const p = `model.layers.${i}`;
      const bias = (name: string, has: boolean | undefined) => (has ? (read(`${p}.self_attn.${name}.bias`) as tf.Tensor1D) : undefined);
      const biases = {
        bq: bias('q_proj', config.attentionBias.qkv),
        bk: bias('k_proj', config.attentionBias.qkv),
        bv: bias('v_proj', config.attentionBias.qkv),
        bo: bias('o_proj', config.attentionBias.o),
      };
      const norms = layerNormNames(config);
      const norm = (name: string) => read(`${p}.${name}.weight`) as tf.Tensor1D;
      layers.push({
        ...Object.fromEntries(Object.entries(biases).filter(([, t]) => t !== undefined)),
        ...(config.qkNorm ? { qNorm: read(`${p}.self_attn.q_norm.weight`) as tf.Tensor1D, kNorm: read(`${p}.self_attn.k_norm.weight`) as tf.Tensor1D } : {}),
        // Read in this order: the fingerprint hashes tensors as they are read, and recorded ones must still match.
        attnNorm: norm(norms.attnNorm),
        ...(config.fusedProjections
          ? splitColumns(`${p}.self_attn.qkv_proj.weight`, { wq: config.nHeads * config.headDim, wk: config.nKvHeads * config.headDim, wv: config.nKvHeads * config.headDim })
          : {
              wq: read(`${p}.self_attn.q_proj.weight`, true) as tf.Tensor2D,
              wk: read(`${p}.self_attn.k_proj.weight`, true) as tf.Tensor2D,
              wv: read(`${p}.self_attn.v_proj.weight`, true) as tf.Tensor2D,
            }),
        wo: read(`${p}.self_attn.o_proj.weight`, true) as tf.Tensor2D,
        mlpNorm: norm(norms.mlpNorm),
        ...(norms.postAttnNorm && norms.postMlpNorm ? { postAttnNorm: norm(norms.postAttnNorm), postMlpNorm: norm(norms.postMlpNorm) } : {}),
        ...(config.fusedProjections
          ? splitColumns(`${p}.mlp.gate_up_proj.weight`, { wGate: config.ffnDim, wUp: config.ffnDim })
          : { wGate: read(`${p}.mlp.gate_proj.weight`, true) as tf.Tensor2D, wUp: read(`${p}.mlp.up_proj.weight`, true) as tf.Tensor2D }),
        wDown: read(`${p}.mlp.down_proj.weight`, true) as tf.Tensor2D,
      });
    }
    const weights = {
      embed: read('model.embed_tokens.weight') as tf.Tensor2D,
      layers,
      norm: read('model.norm.weight') as tf.Tensor1D,
      lmHead: config.tieEmbeddings ? null : (read('lm_head.weight', true) as tf.Tensor2D),
    };
    return { config, weights, dir, fingerprint: hash.digest('hex').slice(0, 32) };
  } catch (e) {
    // A refused model leaves nothing allocated (the inference process lives on).
    for (const t of made) t.dispose();
    throw e;
  } finally {
    reader.close();
  }
}

/**
 * GPT-2's weights in the engine's layout: its Conv1D layers already store [in, out] (read as they are), c_attn's
 * columns and bias split into q, k and v; the LayerNorms keep their biases.
 */
function gpt2Weights(c: LlamaConfig, read: (name: string, transpose?: boolean) => tf.Tensor, made: tf.Tensor[]): LlamaModel['weights'] {
  const split = <T extends tf.Tensor>(whole: tf.Tensor, axis: number): T[] => {
    const parts = tf.split(whole, [c.dim, c.dim, c.dim], axis) as T[];
    made.splice(made.indexOf(whole), 1, ...parts); // a refused model disposes what it made
    whole.dispose();
    return parts;
  };
  const embed = read('transformer.wte.weight') as tf.Tensor2D;
  const positions = read('transformer.wpe.weight') as tf.Tensor2D;
  const layers: LayerWeights[] = [];
  for (let i = 0; i < c.nLayers; i++) {
    const p = `transformer.h.${i}`;
    const v1 = (name: string) => read(`${p}.${name}`) as tf.Tensor1D;
    const attnNorm = v1('ln_1.weight');
    const attnNormBias = v1('ln_1.bias');
    const [wq, wk, wv] = split<tf.Tensor2D>(read(`${p}.attn.c_attn.weight`), 1); // [dim, 3 dim] -> 3 x [dim, dim]
    const [bq, bk, bv] = split<tf.Tensor1D>(read(`${p}.attn.c_attn.bias`), 0);
    layers.push({
      attnNorm, attnNormBias, wq, wk, wv, bq, bk, bv,
      wo: read(`${p}.attn.c_proj.weight`) as tf.Tensor2D,
      bo: v1('attn.c_proj.bias'),
      mlpNorm: v1('ln_2.weight'),
      mlpNormBias: v1('ln_2.bias'),
      wUp: read(`${p}.mlp.c_fc.weight`) as tf.Tensor2D,
      bUp: v1('mlp.c_fc.bias'),
      wDown: read(`${p}.mlp.c_proj.weight`) as tf.Tensor2D,
      bDown: v1('mlp.c_proj.bias'),
    });
  }
  return {
    embed,
    positions,
    layers,
    norm: read('transformer.ln_f.weight') as tf.Tensor1D,
    normBias: read('transformer.ln_f.bias') as tf.Tensor1D,
    lmHead: c.tieEmbeddings ? null : (read('lm_head.weight', true) as tf.Tensor2D),
  };
}

/** The index in each dimension of element `flat` of a row-major tensor of `shape`. */
function unravel(flat: number, shape: readonly number[]): number[] {
  const at: number[] = [];
  for (let d = shape.length - 1; d >= 0; d--) {
    at.unshift(flat % shape[d]!);
    flat = Math.floor(flat / shape[d]!);
  }
  return at;
}

/**
 * A float32 tensor of `shape` to be filled through `values` before `finish()` returns it. On the wasm-heap
 * backends `values` is the tensor's own buffer in the heap (tf.tensor would copy a filled array into it); valid
 * until the next allocation there, which may grow the heap and detach it. Elsewhere it is a fresh array the tensor
 * takes over (the cpu and GPU backends keep the array they are given).
 */
function newWeight(shape: number[]): { values: Float32Array; finish: () => tf.Tensor } {
  const backend = tf.backend();
  if (backend instanceof BackendWasm) {
    const info = backend.makeOutput(shape, 'float32');
    const tensor = tf.engine().makeTensorFromTensorInfo(info, backend);
    return { values: backend.typedArrayFromHeap(info) as Float32Array, finish: () => tensor };
  }
  const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  return { values, finish: () => tf.tensor(values, shape) };
}

/** Floats per block read while transposing: small enough to stay in cache, large enough for few reads. */
const TRANSPOSE_BLOCK = 1 << 16;
/** Columns handled per pass over a block, so that each pass writes a few output rows sequentially. */
const TRANSPOSE_TILE = 32;

/**
 * Reads tensor `name`, [rows, cols] on disk, into `out` as its transpose [cols, rows], a block of rows at a time;
 * `visit` sees each block in file order (for the fingerprint).
 */
function readTransposed(
  reader: CheckpointReader,
  name: string,
  rows: number,
  cols: number,
  out: Float32Array,
  visit: (block: Float32Array, first: number) => void,
): void {
  const blockRows = Math.max(1, Math.min(rows, Math.floor(TRANSPOSE_BLOCK / Math.max(cols, 1))));
  const block = new Float32Array(blockRows * cols);
  for (let r0 = 0; r0 < rows; r0 += blockRows) {
    const n = Math.min(blockRows, rows - r0);
    const part = block.subarray(0, n * cols);
    reader.readF32Into(name, part, r0 * cols);
    visit(part, r0 * cols);
    for (let c0 = 0; c0 < cols; c0 += TRANSPOSE_TILE) {
      const c1 = Math.min(cols, c0 + TRANSPOSE_TILE);
      for (let r = 0; r < n; r++) {
        for (let c = c0, i = r * cols + c0; c < c1; c++, i++) out[c * rows + r0 + r] = part[i];
      }
    }
  }
}

/** Bytes of float32 weights and a rough training-activation estimate, for the UI and `info`. */
export function memoryEstimate(c: LlamaConfig, batch = 1, seqLen = 512): { weightsBytes: number; activationBytes: number } {
  let params = 0;
  for (const shape of expectedWeights(c).values()) params += shape.reduce((a, b) => a * b, 1);
  // Per layer and token, the tensors backward keeps: ~ 14 * dim + 3 * ffn + 2 * heads * seqLen floats.
  const perToken = c.nLayers * (14 * c.dim + 3 * c.ffnDim + 2 * c.nHeads * seqLen) + 2 * c.vocabSize;
  return { weightsBytes: params * 4, activationBytes: perToken * batch * seqLen * 4 };
}
