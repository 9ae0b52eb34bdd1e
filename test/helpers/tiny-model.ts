// Writes a tiny random LLaMA model folder in Hugging Face layout (config.json, safetensors
// weights, tokenizer files) that both our engine and transformers' LlamaForCausalLM load.

import fs from 'node:fs';
import path from 'node:path';
import { expectedWeights, PLAIN_LLAMA, toHfConfig, type LlamaConfig } from '../../src-main/engine/config.js';
import { Rng } from '../../src-main/engine/rng.js';
import { writeSafetensors, type TensorToWrite, type WritableDtype } from '../../src-main/engine/safetensors.js';
import { TINY_BOS, TINY_EOS, tinyVocabSize, writeTinyTokenizer, type TinyTokenizerStyle } from './tiny-tokenizer.js';

export { TINY_BOS, TINY_EOS, TINY_UNK } from './tiny-tokenizer.js';

export interface TinyLlamaOptions {
  config?: Partial<LlamaConfig>;
  seed?: number; // weights are a pure function of (config, seed)
  dtype?: WritableDtype; // stored dtype of every weight
  shards?: number; // 1: model.safetensors; N > 1: N shards plus model.safetensors.index.json
  tokenizer?: TinyTokenizerStyle;
  /**
   * Multiplies the final norm's weights. A random tiny model's logits span only about sqrt(dim),
   * too little to become confident about anything; training tests raise it so learning shows.
   */
  finalNormScale?: number;
}

/**
 * Small enough to run a forward pass in milliseconds, big enough to catch layout bugs:
 * grouped-query attention (4 query heads over 2 KV heads), 2 layers, untied lm_head.
 */
export function tinyLlamaConfig(overrides: Partial<LlamaConfig> = {}, style: TinyTokenizerStyle = 'byte-level'): LlamaConfig {
  const dim = overrides.dim ?? 32;
  const nHeads = overrides.nHeads ?? 4;
  return {
    ...PLAIN_LLAMA,
    vocabSize: tinyVocabSize(style),
    dim,
    ffnDim: 64,
    nLayers: 2,
    nHeads,
    nKvHeads: 2,
    headDim: dim / nHeads,
    normEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositions: 256,
    tieEmbeddings: false,
    bosId: TINY_BOS,
    eosIds: [TINY_EOS],
    ...overrides,
  };
}

/**
 * Weight scales: HF's init (std 0.02) would make a tiny model's logits almost uniform, which
 * hides bugs. Instead linear layers get std 1/sqrt(fan_in) (unit-scale activations), embeddings
 * std 1, and RMSNorm weights 1 + N(0, 0.1) so a wrong norm weight shows up in the output.
 */
function randomWeight(name: string, shape: number[], rng: Rng): Float32Array {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  if (name.endsWith('norm.weight') || /\.ln_(\d+|f)\.weight$/.test(name)) {
    for (let i = 0; i < data.length; i++) data[i] = 1 + 0.1 * rng.normal();
    return data;
  }
  // A bias [out] has no fan-in: 0.1, large enough to show in every output.
  // GPT-2's Conv1D weights are [in, out]: their fan-in is the first dimension.
  const conv1d = /^transformer\.h\.\d+\.(attn|mlp)\.c_/.test(name);
  const std = name === 'model.embed_tokens.weight' || name === 'transformer.wte.weight' ? 1 : shape.length === 1 ? 0.1 : 1 / Math.sqrt(shape[conv1d ? 0 : 1]!);
  for (let i = 0; i < data.length; i++) data[i] = std * rng.normal();
  return data;
}

export function writeTinyLlama(dir: string, opts: TinyLlamaOptions = {}): LlamaConfig {
  const style = opts.tokenizer ?? 'byte-level';
  const config = tinyLlamaConfig(opts.config, style);
  if (config.vocabSize < tinyVocabSize(style)) {
    throw new Error(`writeTinyLlama: vocabSize ${config.vocabSize} is smaller than the tokenizer's ${tinyVocabSize(style)}`);
  }
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(toHfConfig(config), null, 2));
  writeTinyTokenizer(dir, style, config.maxPositions);

  const rng = new Rng(opts.seed ?? 0);
  const tensors: TensorToWrite[] = [...expectedWeights(config)].map(([name, shape]) => ({
    name,
    shape,
    data: name === 'model.norm.weight' || name === 'transformer.ln_f.weight' ? randomWeight(name, shape, rng).map((v) => v * (opts.finalNormScale ?? 1)) : randomWeight(name, shape, rng),
    dtype: opts.dtype ?? 'F32',
  }));
  // transformers refuses safetensors files without this metadata.
  const metadata = { format: 'pt' };

  const shards = opts.shards ?? 1;
  if (!Number.isInteger(shards) || shards < 1 || shards > tensors.length) {
    throw new Error(`writeTinyLlama: shards must be an integer in 1..${tensors.length}, got ${shards}`);
  }
  if (shards === 1) {
    writeSafetensors(path.join(dir, 'model.safetensors'), tensors, metadata);
    return config;
  }
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part = tensors.slice(Math.floor((s * tensors.length) / shards), Math.floor(((s + 1) * tensors.length) / shards));
    writeSafetensors(path.join(dir, file), part, metadata);
    for (const t of part) {
      weightMap[t.name] = file;
      totalSize += t.data.length * (t.dtype === 'F32' ? 4 : 2);
    }
  }
  const sortedMap = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]]));
  const index = { metadata: { total_size: totalSize }, weight_map: sortedMap };
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify(index, null, 2));
  return config;
}
