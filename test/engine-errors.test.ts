// Bad input gets a clear error naming the file and the field: model folders, datasets, adapters.

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initAdapter } from '../src-main/engine/adapter.js';
import { loadAdapter, loadFineTune, loadLora, saveAdapter, saveLora } from '../src-main/engine/adapter-io.js';
import { initLora } from '../src-main/engine/lora.js';
import { initBackend } from '../src-main/engine/backend.js';
import { readInstructionFile } from '../src-main/engine/data.js';
import { loadModel } from '../src-main/engine/load.js';
import { Rng } from '../src-main/engine/rng.js';
import { SafetensorsFile, writeSafetensors } from '../src-main/engine/safetensors.js';
import * as tf from '@tensorflow/tfjs-core';
import { writeTinyLlama } from './helpers/tiny-model.js';
import { makeTempDir } from './helpers/tmp.js';

let dir: string;
beforeAll(async () => {
  await initBackend('cpu');
  dir = makeTempDir('engine-errors');
});

function freshModel(name: string, opts: Parameters<typeof writeTinyLlama>[1] = {}): string {
  const d = join(dir, name);
  writeTinyLlama(d, opts);
  return d;
}


const GOOD_CONFIG = { model_type: 'llama', hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 4, intermediate_size: 8, num_hidden_layers: 1, vocab_size: 10, attention_bias: false, mlp_bias: false, hidden_act: 'silu' };

describe('model folders', () => {
  it('a missing shard names the shard and the index', () => {
    const d = freshModel('sharded', { shards: 2 });
    rmSync(join(d, 'model-00002-of-00002.safetensors'));
    expect(() => loadModel(d)).toThrow(/model-00002-of-00002\.safetensors/);
  });

  it('a tensor of the wrong shape names the tensor and both shapes', () => {
    const d = freshModel('wrong-shape');
    const cfg = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
    cfg.intermediate_size = 80; // the weights on disk say 64
    writeFileSync(join(d, 'config.json'), JSON.stringify(cfg));
    expect(() => loadModel(d)).toThrow(/"model\.layers\.0\.mlp\.gate_proj\.weight" has shape \[64,32\], but config\.json implies \[80,32\]/);
  });

  it('a missing tensor is named', () => {
    const d = freshModel('missing-tensor');
    writeSafetensors(join(d, 'model.safetensors'), [{ name: 'model.embed_tokens.weight', shape: [2, 2], data: new Float32Array(4) }]);
    expect(() => loadModel(d)).toThrow(/missing tensor "model\.embed_tokens\.weight"|has shape \[2,2\]/);
  });

  it.each([
    ['not JSON', '{ "hidden_size": ', /config\.json: invalid JSON/],
    ['a bad field', JSON.stringify({ model_type: 'llama', hidden_size: -3 }), /config\.json: field "hidden_size" must be a positive integer/],
    ['heads that do not divide', JSON.stringify({ hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 3, intermediate_size: 8, num_hidden_layers: 1, vocab_size: 10 }), /"num_key_value_heads" \(3\) must divide/],
    ['another architecture', JSON.stringify({ model_type: 'gpt_neox' }), /field "model_type" is "gpt_neox"; supported: "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3", "gpt2"/],
    // Fields that change the computation are implemented (attention_bias: the parity fixtures) or refused, never ignored.
    ['attention biases that are not a boolean', JSON.stringify({ ...GOOD_CONFIG, attention_bias: 'yes' }), /field "attention_bias" must be true or false, got "yes"/],
    ['MLP biases', JSON.stringify({ ...GOOD_CONFIG, mlp_bias: true }), /field "mlp_bias" is true/],
    ['Qwen2 layers typed sliding without a window', JSON.stringify({ ...GOOD_CONFIG, model_type: 'qwen2', layer_types: ['sliding_attention', 'full_attention'] }), /field "layer_types" names "sliding_attention" layers but "use_sliding_window" is false: such a layer has no window/],
    ['Qwen2 chunked layers', JSON.stringify({ ...GOOD_CONFIG, model_type: 'qwen2', layer_types: ['full_attention', 'chunked_attention'] }), /field "layer_types" names \["full_attention","chunked_attention"\]/],
    ['another activation', JSON.stringify({ ...GOOD_CONFIG, hidden_act: 'gelu' }), /field "hidden_act" is "gelu"; this engine implements "silu"/],
    // Absurd sizes are refused by name before anything is sized from them.
    ['10^8 layers', JSON.stringify({ ...GOOD_CONFIG, num_hidden_layers: 1e8 }), /field "num_hidden_layers" is 100000000; more than 1,024/],
    ['a context of 10^12', JSON.stringify({ ...GOOD_CONFIG, max_position_embeddings: 1e12 }), /field "max_position_embeddings" is 1000000000000/],
  ])('config.json with %s', (_, text, message) => {
    const d = freshModel(`bad-config-${Math.random().toString(36).slice(2)}`);
    writeFileSync(join(d, 'config.json'), text);
    expect(() => loadModel(d)).toThrow(message);
  });

  it.each([
    ['NaN', 'model.layers.0.self_attn.q_proj.weight', [3, 5], Number.NaN, /"model\.layers\.0\.self_attn\.q_proj\.weight" holds NaN at \[3,5\]; a usable model holds finite numbers only/],
    ['infinity', 'model.embed_tokens.weight', [7, 2], Number.POSITIVE_INFINITY, /"model\.embed_tokens\.weight" holds Infinity at \[7,2\]/],
  ])('a base weight holding %s is refused, naming the tensor and the element, and leaves nothing allocated', (_, tensor, [row, col], value, message) => {
    const d = freshModel(`non-finite-${tensor}`);
    const file = SafetensorsFile.open(join(d, 'model.safetensors'));
    const tensors = file.tensors().map((t) => ({ name: t.name, shape: t.shape, data: file.readF32(t.name) }));
    file.close();
    const target = tensors.find((t) => t.name === tensor)!;
    target.data[row! * target.shape[1]! + col!] = value;
    writeSafetensors(join(d, 'model.safetensors'), tensors);
    const before = tf.memory().numTensors;
    expect(() => loadModel(d)).toThrow(message);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('attention_bias names the bias tensors a folder must hold', () => {
    const d = freshModel('bias-missing');
    const cfg = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
    writeFileSync(join(d, 'config.json'), JSON.stringify({ ...cfg, attention_bias: true }));
    expect(() => loadModel(d)).toThrow(/weights are missing tensor "model\.layers\.0\.self_attn\.q_proj\.bias" \(expected shape \[32\]\)/);
  });

  it('a folder without config.json says so', () => {
    mkdirSync(join(dir, 'empty'), { recursive: true });
    expect(() => loadModel(join(dir, 'empty'))).toThrow(/not a model folder \(no config\.json\)/);
  });
});

describe('datasets', () => {
  const write = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  it.each([
    ['empty.json', '', /the file is empty/],
    ['truncated.json', '[{"instruction": "a", "output": "b"}, {"instr', /truncated\.json: invalid JSON/],
    ['bad-line.jsonl', '{"instruction": "a", "output": "b"}\n{oops}\n', /bad-line\.jsonl: line 2: invalid JSON/],
    ['no-output.json', '[{"instruction": "a", "output": "b"}, {"instruction": "c"}]', /no-output\.json: record 1: field "output" is missing/],
    ['wrong-type.jsonl', '{"instruction": "a", "input": 5, "output": "b"}\n', /line 1: field "input" must be a string, got number/],
    ['empty-output.json', '[{"instruction": "a", "output": "  "}]', /record 0: field "output" is empty/],
    ['not-object.json', '[1]', /record 0: expected an object/],
  ])('%s', (name, text, message) => {
    expect(() => readInstructionFile(write(name, text))).toThrow(message);
  });
  it('non-UTF-8 bytes', () => {
    const p = join(dir, 'latin1.json');
    writeFileSync(p, Buffer.from([0x5b, 0x22, 0xe9, 0x22, 0x5d]));
    expect(() => readInstructionFile(p)).toThrow(/latin1\.json: not valid UTF-8/);
  });
});

describe('adapters', () => {
  it('an adapter trained on another base model is refused, naming both', async () => {
    const a = loadModel(freshModel('base-a', { seed: 1 }));
    const b = loadModel(freshModel('base-b', { seed: 2 }));
    const adapter = initAdapter(a.config, { adapterLen: 2, layers: [1], gateMode: 'per-head-tanh' }, new Rng(0));
    await saveAdapter(join(dir, 'adapter-a'), adapter, a.config, { baseFingerprint: a.fingerprint, baseModelPath: a.dir });
    expect(() => loadAdapter(join(dir, 'adapter-a'), b)).toThrow(new RegExp(`different base model .*${a.fingerprint}.*${b.fingerprint}`));
    expect(loadAdapter(join(dir, 'adapter-a'), a).spec.layers).toEqual([1]);
  });

  it('a damaged adapter config names the field', async () => {
    const a = loadModel(freshModel('base-c', { seed: 1 }));
    const adapter = initAdapter(a.config, { adapterLen: 2, layers: [1], gateMode: 'per-head-tanh' }, new Rng(0));
    const d = join(dir, 'adapter-c');
    await saveAdapter(d, adapter, a.config, { baseFingerprint: a.fingerprint });
    const cfg = JSON.parse(readFileSync(join(d, 'adapter_config.json'), 'utf8'));
    writeFileSync(join(d, 'adapter_config.json'), JSON.stringify({ ...cfg, formatVersion: 99 }));
    expect(() => loadAdapter(d, a)).toThrow(/field "formatVersion" is 99/);
    writeFileSync(join(d, 'adapter_config.json'), JSON.stringify({ ...cfg, gateMode: 'sideways' }));
    expect(() => loadAdapter(d, a)).toThrow(/field "gateMode" must be one of/);
    writeFileSync(join(d, 'adapter_config.json'), JSON.stringify({ ...cfg, method: 'prefix' }));
    expect(() => loadAdapter(d, a)).toThrow(/field "method" is "prefix"; an adapter folder of this format holds "adapter"/);
    writeFileSync(join(d, 'adapter_config.json'), JSON.stringify({ ...cfg, dim: 4096 }));
    expect(() => loadAdapter(d, a)).toThrow(/field "dim" is 4096, but the model's hidden size is 32/);
  });

  it('a damaged LoRA config names the field', async () => {
    const a = loadModel(freshModel('base-d', { seed: 1 }));
    const lora = initLora(a.config, a.weights.layers, { rank: 2, alpha: 4, dropout: 0, targets: ['q', 'v'] }, new Rng(0));
    const d = join(dir, 'lora-d');
    await saveLora(d, lora, a.config, { baseFingerprint: a.fingerprint, recipe: { promptTemplate: 'alpaca-lora' } });
    expect(loadLora(d, a).spec.targets).toEqual(['q', 'v']);
    // The template it trained with comes along: what prompts it must use the same.
    expect(loadFineTune(d, a).promptTemplate).toBe('alpaca-lora');
    const cfg = JSON.parse(readFileSync(join(d, 'adapter_config.json'), 'utf8'));
    for (const [patch, message] of [
      [{ targets: ['q', 'attn'] }, /field "targets" must list some of q, k, v, o, gate, up, down; unknown: "attn"/],
      [{ rank: 0 }, /field "rank" must be a positive integer, got 0/],
      [{ method: 'adapter' }, /field "method" is "adapter"; a LoRA folder holds "lora"/],
      [{ dim: 64 }, /field "dim" is 64, but the model's hidden size is 32/],
    ] as const) {
      writeFileSync(join(d, 'adapter_config.json'), JSON.stringify({ ...cfg, ...patch }));
      expect(() => loadLora(d, a)).toThrow(message);
    }
    writeFileSync(join(d, 'adapter_config.json'), JSON.stringify({ ...cfg, recipe: { promptTemplate: 'vicuna' } }));
    expect(() => loadFineTune(d, a)).toThrow(/field "recipe\.promptTemplate" is "vicuna"/);
  });
});
