// The baselines beside the adapter, in the same trainer: LoRA (Alpaca-LoRA) and full fine-tuning
// (Alpaca). Each learns, leaves the base model untouched, saves a loadable result, and resumes
// exactly (LoRA's dropout included).

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { exportPeftLora, loadFineTune } from '../src-main/engine/adapter-io.js';
import { initBackend } from '../src-main/engine/backend.js';
import { loadModel } from '../src-main/engine/load.js';
import { writeModelFolder } from '../src-main/engine/full-train.js';
import { mergedLayerWeights } from '../src-main/engine/lora.js';
import { disposeKVCache, forward, newKVCache } from '../src-main/engine/model.js';
import { alpacaFullRecipe, alpacaLoraRecipe, paperRecipe, validateRecipe } from '../src-main/engine/recipe.js';
import { makeBatch, tokenizeExample } from '../src-main/engine/data.js';
import { nextTokenLoss, shiftedTargets } from '../src-main/engine/loss.js';
import { loadTokenizer } from '../src-main/engine/tokenizer.js';
import { writeTinyLlama } from './helpers/tiny-model.js';
import { SafetensorsFile } from '../src-main/engine/safetensors.js';
import { train, type TrainEvent, validationIndices } from '../src-main/engine/train.js';
import { COLOR_DATA, type TinyTrainer, tinyTrainer } from './helpers/color-task.js';
import { expectPauseResumeReplays } from './helpers/resume-check.js';
import { makeTempDir } from './helpers/tmp.js';

let dir: string;
let t: TinyTrainer;
let IDS: tf.Tensor2D;
const maxDiff = (a: tf.Tensor, b: tf.Tensor) => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0];

beforeAll(async () => {
  await initBackend('native');
  IDS = tf.tensor2d([[1, 40, 50, 60, 70]], [1, 5], 'int32');
  dir = makeTempDir('methods');
  t = await tinyTrainer(dir);
});

describe('lora', () => {
  const recipe = () => ({ ...alpacaLoraRecipe(t.model.config), epochs: 40, warmupEpochs: 1, lr: 0.05, batchSize: 3, accumSteps: 2, loraDropout: 0.1 });
  let losses: number[];

  it('learns, keeps the base model unchanged, and saves a LoRA that loads and merges', async () => {
    const baseLogits = forward(t.model, IDS);
    const result = await train({ model: t.model, tokenizer: t.tokenizer, data: COLOR_DATA, recipe: recipe(), outDir: join(dir, 'lora') });
    losses = result.losses;
    expect(losses.at(-1)!).toBeLessThan(losses[0] * 0.5);
    expect(maxDiff(forward(t.model, IDS), baseLogits)).toBe(0);
    const ft = loadFineTune(join(dir, 'lora'), t.model);
    if (ft.kind !== 'lora') throw new Error('expected a LoRA');
    expect(ft.lora.spec).toMatchObject({ rank: 8, alpha: 16, targets: ['q', 'v'] });
    const adapted = forward(t.model, IDS, { lora: ft.lora });
    expect(maxDiff(adapted, baseLogits)).toBeGreaterThan(1e-3);
    // Merging A B into the weights gives the same function.
    const merged = { config: t.model.config, weights: { ...t.model.weights, layers: mergedLayerWeights(ft.lora, t.model.weights.layers) } };
    expect(maxDiff(forward(merged, IDS), adapted)).toBeLessThan(1e-4);
    await exportPeftLora(join(dir, 'lora-peft'), ft.lora);
    const peft = SafetensorsFile.open(join(dir, 'lora-peft', 'adapter_model.safetensors'));
    expect(peft.info('base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight').shape).toEqual([8, 32]);
    expect(peft.info('base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight').shape).toEqual([16, 8]);
    peft.close();
    expect(JSON.parse(readFileSync(join(dir, 'lora-peft', 'adapter_config.json'), 'utf8'))).toMatchObject({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] });
  });

  it('resumes exactly, dropout included', async () => {
    const r = recipe();
    const trainer = { ...t, recipe: () => r };
    await expectPauseResumeReplays(trainer, join(dir, 'lora-paused'), 15, losses);
  });
});

describe('full fine-tune', () => {
  it('learns, leaves the loaded base untouched, and saves an HF folder that loads as a model', async () => {
    const baseLogits = forward(t.model, IDS);
    const recipe = { ...alpacaFullRecipe(t.model.config), epochs: 20, warmupEpochs: 1, lr: 3e-3, batchSize: 3, accumSteps: 2 };
    const result = await train({ model: t.model, tokenizer: t.tokenizer, data: COLOR_DATA, recipe, outDir: join(dir, 'full') });
    expect(result.losses.at(-1)!).toBeLessThan(result.losses[0] * 0.5);
    expect(maxDiff(forward(t.model, IDS), baseLogits)).toBe(0);
    expect(existsSync(join(dir, 'full', 'tokenizer.json'))).toBe(true);
    const tuned = loadModel(join(dir, 'full'));
    expect(tuned.fingerprint).not.toBe(t.model.fingerprint);
    expect(maxDiff(forward(tuned, IDS), baseLogits)).toBeGreaterThan(1e-3);
  });
});

describe('on a Qwen2-layout model (biased q/k/v)', () => {
  let q: { model: ReturnType<typeof loadModel>; tokenizer: TinyTrainer['tokenizer'] };
  beforeAll(async () => {
    writeTinyLlama(join(dir, 'qwen2'), { seed: 3, finalNormScale: 3, config: { family: 'qwen2', attentionBias: { qkv: true, o: false } } });
    const model = loadModel(join(dir, 'qwen2'));
    q = { model, tokenizer: await loadTokenizer(join(dir, 'qwen2'), { bosId: model.config.bosId, eosIds: model.config.eosIds }) };
  });

  it('loads as Qwen2: biases read, no BOS (its tokenizer adds none)', () => {
    expect(q.model.config).toMatchObject({ family: 'qwen2', attentionBias: { qkv: true, o: false }, bosId: null });
    expect(q.model.weights.layers[0]!.bk!.shape).toEqual([q.model.config.nKvHeads * q.model.config.headDim]);
    expect(q.model.weights.layers[0]!.bo).toBeUndefined();
  });

  it.each([
    ['adapter', (c: typeof q.model.config) => ({ ...paperRecipe(c), adapterLen: 10, adapterLayers: 2, epochs: 60, warmupEpochs: 1, lr: 0.3, batchSize: 3, accumSteps: 2 })],
    ['lora', (c: typeof q.model.config) => ({ ...alpacaLoraRecipe(c), epochs: 40, warmupEpochs: 1, warmupSteps: null, lr: 0.05, batchSize: 3, accumSteps: 2 })],
  ] as const)('%s: learns, and what it saves loads back onto the model', async (method, recipe) => {
    const out = join(dir, `qwen2-${method}`);
    const result = await train({ model: q.model, tokenizer: q.tokenizer, data: COLOR_DATA, recipe: recipe(q.model.config), outDir: out });
    expect(result.losses.at(-1)!).toBeLessThan(result.losses[0]! * 0.5);
    const fineTune = loadFineTune(out, q.model);
    expect(fineTune.kind).toBe(method);
  });

  it('full fine-tune: biases train too, and the folder it writes is a Qwen2 folder that loads back exactly', async () => {
    const recipe = { ...alpacaFullRecipe(q.model.config), epochs: 10, warmupEpochs: 1, lr: 3e-3, batchSize: 3, accumSteps: 2 };
    await train({ model: q.model, tokenizer: q.tokenizer, data: COLOR_DATA, recipe, outDir: join(dir, 'qwen2-full') });
    const hf = JSON.parse(readFileSync(join(dir, 'qwen2-full', 'config.json'), 'utf8'));
    expect(hf).toMatchObject({ model_type: 'qwen2', architectures: ['Qwen2ForCausalLM'], use_sliding_window: false });
    const tuned = loadModel(join(dir, 'qwen2-full'));
    expect(tuned.config.family).toBe('qwen2');
    expect(maxDiff(tuned.weights.layers[0]!.bq!, q.model.weights.layers[0]!.bq!)).toBeGreaterThan(0);
  });
});

describe('on a GPT-2 model (LayerNorm, learned positions, Conv1D weights, ungated MLP)', () => {
  let g: { model: ReturnType<typeof loadModel>; tokenizer: TinyTrainer['tokenizer'] };
  beforeAll(async () => {
    writeTinyLlama(join(dir, 'gpt2'), {
      seed: 6,
      finalNormScale: 3,
      config: { family: 'gpt2', attentionBias: { qkv: true, o: true }, layerNorm: true, learnedPositions: true, plainMlp: true, mlpActivation: 'gelu_tanh', nKvHeads: 4, tieEmbeddings: true, bosId: null },
    });
    const model = loadModel(join(dir, 'gpt2'));
    g = { model, tokenizer: await loadTokenizer(join(dir, 'gpt2'), { bosId: model.config.bosId, eosIds: model.config.eosIds }) };
  });

  it('the adapter and LoRA learn, and what they save loads back onto the model', async () => {
    expect(g.model.config).toMatchObject({ family: 'gpt2', layerNorm: true, learnedPositions: true, plainMlp: true, bosId: null });
    const adapterRecipe = { ...paperRecipe(g.model.config), adapterLen: 10, adapterLayers: 2, epochs: 60, warmupEpochs: 1, lr: 0.3, batchSize: 3, accumSteps: 2 };
    const adapter = await train({ model: g.model, tokenizer: g.tokenizer, data: COLOR_DATA, recipe: adapterRecipe, outDir: join(dir, 'gpt2-adapter') });
    expect(adapter.losses.at(-1)!).toBeLessThan(adapter.losses[0]! * 0.5);
    expect(loadFineTune(join(dir, 'gpt2-adapter'), g.model).kind).toBe('adapter');
    // LoRA on GPT-2's projections (its MLP has no gate: up and down).
    const loraRecipe = { ...alpacaLoraRecipe(g.model.config), loraTargets: ['q', 'v', 'up', 'down'] as const, epochs: 40, warmupEpochs: 1, warmupSteps: null, lr: 0.05, batchSize: 3, accumSteps: 2, valSetSize: 0 };
    const lora = await train({ model: g.model, tokenizer: g.tokenizer, data: COLOR_DATA, recipe: { ...loraRecipe, loraTargets: [...loraRecipe.loraTargets] }, outDir: join(dir, 'gpt2-lora') });
    expect(lora.losses.at(-1)!).toBeLessThan(lora.losses[0]! * 0.5);
    expect(loadFineTune(join(dir, 'gpt2-lora'), g.model).kind).toBe('lora');
  });

  it('full fine-tune: biases and positions train too, and the folder it writes is a GPT-2 folder that loads back exactly', async () => {
    const recipe = { ...alpacaFullRecipe(g.model.config), epochs: 10, warmupEpochs: 1, lr: 3e-3, batchSize: 3, accumSteps: 2 };
    await train({ model: g.model, tokenizer: g.tokenizer, data: COLOR_DATA, recipe, outDir: join(dir, 'gpt2-full') });
    const hf = JSON.parse(readFileSync(join(dir, 'gpt2-full', 'config.json'), 'utf8'));
    expect(hf).toMatchObject({ model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], n_embd: 32, n_layer: 2, resid_pdrop: 0 });
    const file = SafetensorsFile.open(join(dir, 'gpt2-full', 'model.safetensors'));
    expect(file.info('transformer.h.0.attn.c_attn.weight').shape).toEqual([32, 96]); // Conv1D [in, out], q/k/v joined
    file.close();
    const tuned = loadModel(join(dir, 'gpt2-full'));
    expect(tuned.config.family).toBe('gpt2');
    expect(maxDiff(tuned.weights.positions!, g.model.weights.positions!)).toBeGreaterThan(0);
    expect(maxDiff(tuned.weights.layers[0]!.bq!, g.model.weights.layers[0]!.bq!)).toBeGreaterThan(0);
    // The written folder is the trained model: it answers the training prompts better than the base does.
    const batch = makeBatch(COLOR_DATA.map((e) => tokenizeExample(g.tokenizer, e, 256)), g.tokenizer.eosIds[0]!);
    const lossOf = (m: typeof tuned) => nextTokenLoss(m, tf.tensor2d(batch.ids, [batch.B, batch.T], 'int32'), shiftedTargets(batch.labels, batch.B, batch.T)).dataSync()[0]!;
    expect(lossOf(tuned)).toBeLessThan(lossOf(g.model) * 0.8);
  });

  it('decoding with the KV cache gives the full forward logits (positions continue after the cache)', () => {
    const ids = [3, 7, 11, 5, 9];
    const full = forward(g.model, tf.tensor2d([ids], [1, ids.length], 'int32'));
    const cache = newKVCache(g.model.config);
    const first = forward(g.model, tf.tensor2d([ids.slice(0, 3)], [1, 3], 'int32'), { cache });
    const rest = [3, 4].map((t) => forward(g.model, tf.tensor2d([[ids[t]!]], [1, 1], 'int32'), { cache }));
    const stepped = tf.concat([first, ...rest], 1);
    expect(maxDiff(stepped, full)).toBeLessThan(1e-4);
    disposeKVCache(cache);
  });
});

describe('on a Qwen3-layout model (q_norm / k_norm, its own head_dim)', () => {
  let q: { model: ReturnType<typeof loadModel>; tokenizer: TinyTrainer['tokenizer'] };
  beforeAll(async () => {
    writeTinyLlama(join(dir, 'qwen3'), { seed: 4, finalNormScale: 3, config: { family: 'qwen3', qkNorm: true, headDim: 12 } });
    const model = loadModel(join(dir, 'qwen3'));
    q = { model, tokenizer: await loadTokenizer(join(dir, 'qwen3'), { bosId: model.config.bosId, eosIds: model.config.eosIds }) };
  });

  it('the adapter learns, and what it saves loads back onto the model', async () => {
    const recipe = { ...paperRecipe(q.model.config), adapterLen: 10, adapterLayers: 2, epochs: 60, warmupEpochs: 1, lr: 0.3, batchSize: 3, accumSteps: 2 };
    const out = join(dir, 'qwen3-adapter');
    const result = await train({ model: q.model, tokenizer: q.tokenizer, data: COLOR_DATA, recipe, outDir: out });
    expect(result.losses.at(-1)!).toBeLessThan(result.losses[0]! * 0.5);
    expect(loadFineTune(out, q.model).kind).toBe('adapter');
  });

  it('full fine-tune: the q/k norms train too, and the folder it writes is a Qwen3 folder that loads back', async () => {
    const recipe = { ...alpacaFullRecipe(q.model.config), epochs: 10, warmupEpochs: 1, lr: 3e-3, batchSize: 3, accumSteps: 2 };
    await train({ model: q.model, tokenizer: q.tokenizer, data: COLOR_DATA, recipe, outDir: join(dir, 'qwen3-full') });
    const hf = JSON.parse(readFileSync(join(dir, 'qwen3-full', 'config.json'), 'utf8'));
    expect(hf).toMatchObject({ model_type: 'qwen3', architectures: ['Qwen3ForCausalLM'], head_dim: 12, use_sliding_window: false, attention_bias: false });
    const tuned = loadModel(join(dir, 'qwen3-full'));
    expect(tuned.config).toMatchObject({ family: 'qwen3', qkNorm: true, headDim: 12 });
    expect(maxDiff(tuned.weights.layers[0]!.kNorm!, q.model.weights.layers[0]!.kNorm!)).toBeGreaterThan(0);
  });
});

describe('on a Gemma-layout model (scaled embeddings, norms by 1 + w, GeGLU)', () => {
  let g: { model: ReturnType<typeof loadModel>; tokenizer: TinyTrainer['tokenizer'] };
  beforeAll(async () => {
    writeTinyLlama(join(dir, 'gemma'), { seed: 5, finalNormScale: 3, config: { family: 'gemma', headDim: 12, mlpActivation: 'gelu_tanh', tieEmbeddings: true } });
    const model = loadModel(join(dir, 'gemma'));
    g = { model, tokenizer: await loadTokenizer(join(dir, 'gemma'), { bosId: model.config.bosId, eosIds: model.config.eosIds }) };
  });

  it('the adapter and LoRA learn, and what they save loads back onto the model', async () => {
    for (const [method, recipe] of [
      ['adapter', { ...paperRecipe(g.model.config), adapterLen: 10, adapterLayers: 2, epochs: 60, warmupEpochs: 1, lr: 0.3, batchSize: 3, accumSteps: 2 }],
      ['lora', { ...alpacaLoraRecipe(g.model.config), epochs: 40, warmupEpochs: 1, warmupSteps: null, lr: 0.05, batchSize: 3, accumSteps: 2 }],
    ] as const) {
      const out = join(dir, `gemma-${method}`);
      const result = await train({ model: g.model, tokenizer: g.tokenizer, data: COLOR_DATA, recipe, outDir: out });
      expect(result.losses.at(-1)!).toBeLessThan(result.losses[0]! * 0.5);
      expect(loadFineTune(out, g.model).kind).toBe(method);
    }
  });

  it('full fine-tune: the folder it writes is a Gemma folder (norm weights still stored as offsets) that loads back', async () => {
    const recipe = { ...alpacaFullRecipe(g.model.config), epochs: 10, warmupEpochs: 1, lr: 3e-3, batchSize: 3, accumSteps: 2 };
    await train({ model: g.model, tokenizer: g.tokenizer, data: COLOR_DATA, recipe, outDir: join(dir, 'gemma-full') });
    const hf = JSON.parse(readFileSync(join(dir, 'gemma-full', 'config.json'), 'utf8'));
    expect(hf).toMatchObject({ model_type: 'gemma', architectures: ['GemmaForCausalLM'], hidden_act: 'gelu_pytorch_tanh', head_dim: 12 });
    const tuned = loadModel(join(dir, 'gemma-full'));
    expect(tuned.config).toMatchObject({ family: 'gemma', normPlusOne: true, mlpActivation: 'gelu_tanh' });
    // A small update of the offset, not a weight near 1 + offset: the file keeps HF's meaning.
    expect(maxDiff(tuned.weights.norm, g.model.weights.norm)).toBeLessThan(0.5);
    expect(maxDiff(tuned.weights.norm, g.model.weights.norm)).toBeGreaterThan(0);
  });
});

describe('on a Gemma 2-layout model (sandwich norms, soft caps), native backend', () => {
  let g: { model: ReturnType<typeof loadModel>; tokenizer: TinyTrainer['tokenizer'] };
  beforeAll(async () => {
    writeTinyLlama(join(dir, 'gemma2'), {
      seed: 6,
      finalNormScale: 3,
      config: { family: 'gemma2', headDim: 12, mlpActivation: 'gelu_tanh', tieEmbeddings: true, sandwichNorms: true, attnScale: 1 / Math.sqrt(20), attnSoftcap: 4, finalSoftcap: 8, slidingWindow: 128, maxPositions: 128 },
    });
    const model = loadModel(join(dir, 'gemma2'));
    g = { model, tokenizer: await loadTokenizer(join(dir, 'gemma2'), { bosId: model.config.bosId, eosIds: model.config.eosIds }) };
  });

  it('loads as Gemma 2: four norms per layer, caps and scale read back', () => {
    expect(g.model.config).toMatchObject({ family: 'gemma2', sandwichNorms: true, attnSoftcap: 4, finalSoftcap: 8, slidingWindow: 128, maxPositions: 128 });
    expect(g.model.config.attnScale).toBeCloseTo(1 / Math.sqrt(20), 12);
    expect(g.model.weights.layers[0]!.postMlpNorm!.shape).toEqual([g.model.config.dim]);
  });

  it('decoding with the KV cache (composite attention on native) gives the full forward logits', () => {
    const ids = [5, 17, 42, 99, 7, 3, 64];
    const full = forward(g.model, tf.tensor2d([ids], [1, 7], 'int32'));
    const cache = newKVCache(g.model.config);
    const steps = [forward(g.model, tf.tensor2d([ids.slice(0, 3)], [1, 3], 'int32'), { cache })];
    for (let t = 3; t < 7; t++) steps.push(forward(g.model, tf.tensor2d([[ids[t]!]], [1, 1], 'int32'), { cache }));
    expect(maxDiff(full, tf.concat(steps, 1))).toBeLessThan(1e-4);
    disposeKVCache(cache);
  });

  it('the adapter learns; a full fine-tune writes a Gemma 2 folder that loads back', async () => {
    const adapterRecipe = { ...paperRecipe(g.model.config), adapterLen: 10, adapterLayers: 2, epochs: 60, warmupEpochs: 1, lr: 0.3, batchSize: 3, accumSteps: 2 };
    const result = await train({ model: g.model, tokenizer: g.tokenizer, data: COLOR_DATA, recipe: adapterRecipe, outDir: join(dir, 'gemma2-adapter') });
    expect(result.losses.at(-1)!).toBeLessThan(result.losses[0]! * 0.5);
    const fullRecipe = { ...alpacaFullRecipe(g.model.config), epochs: 4, warmupEpochs: 1, lr: 3e-3, batchSize: 3, accumSteps: 2 };
    await train({ model: g.model, tokenizer: g.tokenizer, data: COLOR_DATA, recipe: fullRecipe, outDir: join(dir, 'gemma2-full') });
    const hf = JSON.parse(readFileSync(join(dir, 'gemma2-full', 'config.json'), 'utf8'));
    expect(hf).toMatchObject({ model_type: 'gemma2', architectures: ['Gemma2ForCausalLM'], query_pre_attn_scalar: 20, attn_logit_softcapping: 4, final_logit_softcapping: 8, sliding_window: 128 });
    const tuned = loadModel(join(dir, 'gemma2-full'));
    expect(maxDiff(tuned.weights.layers[1]!.postAttnNorm!, g.model.weights.layers[1]!.postAttnNorm!)).toBeGreaterThan(0);
  });
});

describe("on a Phi-3-layout model (fused qkv_proj and gate_up_proj)", () => {
  let f: { model: ReturnType<typeof loadModel>; tokenizer: TinyTrainer['tokenizer'] };
  beforeAll(async () => {
    writeTinyLlama(join(dir, 'phi3'), { seed: 7, finalNormScale: 3, config: { family: 'phi3', fusedProjections: true, slidingWindow: 128, maxPositions: 128 } });
    const model = loadModel(join(dir, 'phi3'));
    f = { model, tokenizer: await loadTokenizer(join(dir, 'phi3'), { bosId: model.config.bosId, eosIds: model.config.eosIds }) };
  });

  it('a folder written from the loaded model stores the projections fused again, and loads back exactly', async () => {
    await writeModelFolder(join(dir, 'phi3-copy'), f.model, { dtype: 'F32' });
    const file = SafetensorsFile.open(join(dir, 'phi3-copy', 'model.safetensors'));
    const names = file.tensors().map((t) => t.name);
    file.close();
    expect(names).toContain('model.layers.0.self_attn.qkv_proj.weight');
    expect(names).toContain('model.layers.0.mlp.gate_up_proj.weight');
    expect(names.some((n) => /q_proj|gate_proj\./.test(n))).toBe(false);
    const copy = loadModel(join(dir, 'phi3-copy'));
    for (const key of ['wq', 'wk', 'wv', 'wGate', 'wUp'] as const) expect(maxDiff(copy.weights.layers[1]![key] as tf.Tensor, f.model.weights.layers[1]![key] as tf.Tensor)).toBe(0);
  });

  it('the adapter and LoRA learn; a full fine-tune writes a Phi-3 folder', async () => {
    for (const [method, recipe] of [
      ['adapter', { ...paperRecipe(f.model.config), adapterLen: 10, adapterLayers: 2, epochs: 60, warmupEpochs: 1, lr: 0.3, batchSize: 3, accumSteps: 2 }],
      ['lora', { ...alpacaLoraRecipe(f.model.config), epochs: 40, warmupEpochs: 1, warmupSteps: null, lr: 0.05, batchSize: 3, accumSteps: 2 }],
    ] as const) {
      const result = await train({ model: f.model, tokenizer: f.tokenizer, data: COLOR_DATA, recipe, outDir: join(dir, `phi3-${method}`) });
      expect(result.losses.at(-1)!).toBeLessThan(result.losses[0]! * 0.5);
    }
    const fullRecipe = { ...alpacaFullRecipe(f.model.config), epochs: 4, warmupEpochs: 1, lr: 3e-3, batchSize: 3, accumSteps: 2 };
    await train({ model: f.model, tokenizer: f.tokenizer, data: COLOR_DATA, recipe: fullRecipe, outDir: join(dir, 'phi3-full') });
    expect(JSON.parse(readFileSync(join(dir, 'phi3-full', 'config.json'), 'utf8'))).toMatchObject({ model_type: 'phi3', architectures: ['Phi3ForCausalLM'], sliding_window: 128 });
    expect(loadModel(join(dir, 'phi3-full')).config.fusedProjections).toBe(true);
  });
});

describe("a validation set (Alpaca-LoRA's val_set_size, eval_steps, load_best_model_at_end)", () => {
  // Six colours, two held out: colours the training examples never show, so the held-out loss soon rises again.
  const recipe = () => ({ ...alpacaLoraRecipe(t.model.config), epochs: 30, warmupEpochs: 1, warmupSteps: null, lr: 0.1, batchSize: 2, accumSteps: 1, loraDropout: 0, trainOnInputs: false, valSetSize: 2, evalSteps: 2 });
  let uninterrupted: { validation: { bestStep: number; bestValLoss: number } };

  it('holds the examples out, evaluates every evalSteps, and saves the weights of the best step, recorded with them', async () => {
    const events: TrainEvent[] = [];
    const out = join(dir, 'lora-val');
    const result = await train({ model: t.model, tokenizer: t.tokenizer, data: COLOR_DATA, recipe: recipe(), outDir: out, onEvent: (e) => events.push(e) });
    expect(events[0]).toMatchObject({ type: 'start', examples: 4, notes: [expect.stringMatching(/^2 examples held out for validation/)] });
    const evals = events.filter((e): e is Extract<TrainEvent, { type: 'eval' }> => e.type === 'eval');
    expect(evals.map((e) => e.step)).toEqual(Array.from({ length: result.steps / 2 }, (_, i) => 2 * (i + 1)));
    const best = evals.reduce((a, b) => (b.valLoss < a.valLoss ? b : a));
    expect(best.step).toBeLessThan(result.steps); // the held-out loss rose after it: the last weights are not the best
    uninterrupted = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    expect(uninterrupted.validation).toMatchObject({ examples: 2, evalSteps: 2, bestStep: best.step, bestValLoss: best.valLoss });
    // What was saved scores exactly the best loss on the held-out examples.
    const fineTune = loadFineTune(out, t.model);
    if (fineTune.kind !== 'lora') throw new Error('expected a LoRA');
    const held = validationIndices(COLOR_DATA.length, 2).val.map((i) => tokenizeExample(t.tokenizer, COLOR_DATA[i]!, 256, { trainOnInputs: false, template: 'alpaca-lora' }));
    const batch = makeBatch(held, t.tokenizer.eosIds[0]!);
    const loss = nextTokenLoss(t.model, tf.tensor2d(batch.ids, [batch.B, batch.T], 'int32'), shiftedTargets(batch.labels, batch.B, batch.T), { lora: fineTune.lora });
    expect(Math.abs(loss.dataSync()[0]! - best.valLoss)).toBeLessThan(1e-5);
  });

  it('resumes with the best so far: a paused run keeps the same best weights as an uninterrupted one', async () => {
    const out = join(dir, 'lora-val-resume');
    const controller = new AbortController();
    const common = { model: t.model, tokenizer: t.tokenizer, data: COLOR_DATA, recipe: recipe(), outDir: out };
    await train({ ...common, signal: controller.signal, onAbort: 'pause', onEvent: (e) => e.type === 'step' && e.step === 9 && controller.abort() });
    await train({ ...common, resume: true });
    expect(JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')).validation).toEqual(uninterrupted.validation);
  });

  it('is refused for a full fine-tune, by name', () => {
    expect(() => validateRecipe({ ...alpacaFullRecipe(t.model.config), valSetSize: 10 }, t.model.config)).toThrow(/recipe field "valSetSize" must be 0 for a full fine-tune/);
  });
});
