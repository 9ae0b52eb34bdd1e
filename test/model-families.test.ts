// What each family's config.json becomes (the numbers themselves are checked against transformers in
// parity.test.ts: llamabias, mistral, qwen2, qwen3, gemma, gemma2, phi3, gpt2): which biases, which context, which BOS, and what is refused.

import { describe, expect, it } from 'vitest';
import { expectedWeights, fromHfConfig, layerWindow, requirePlainLlama, toHfConfig, usesLocalRope } from '../src-main/engine/config.js';
import { paperRecipe, validateRecipe } from '../src-main/engine/recipe.js';

const BASE = { hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 64, num_hidden_layers: 2, vocab_size: 100, bos_token_id: 1, eos_token_id: 2 };

describe('model families', () => {
  it('llama: no biases unless attention_bias, which biases q, k, v and o', () => {
    expect(fromHfConfig({ ...BASE, model_type: 'llama' })).toMatchObject({ family: 'llama', attentionBias: { qkv: false, o: false }, bosId: 1 });
    expect(fromHfConfig({ ...BASE, model_type: 'llama', attention_bias: true }).attentionBias).toEqual({ qkv: true, o: true });
  });

  it('qwen2: biased q/k/v, o without; no BOS, as its tokenizer adds none', () => {
    expect(fromHfConfig({ ...BASE, model_type: 'qwen2', bos_token_id: 151643 % 100 })).toMatchObject({ family: 'qwen2', attentionBias: { qkv: true, o: false }, bosId: null });
  });

  it("qwen3: q/k normed per head; head_dim defaults to 128 as Qwen3Config's; biases only with attention_bias; no BOS", () => {
    const c = fromHfConfig({ ...BASE, model_type: 'qwen3' });
    expect(c).toMatchObject({ family: 'qwen3', qkNorm: true, headDim: 128, attentionBias: { qkv: false, o: false }, bosId: null });
    expect(fromHfConfig({ ...BASE, model_type: 'qwen3', head_dim: 16, attention_bias: true })).toMatchObject({ headDim: 16, attentionBias: { qkv: true, o: true } });
    expect(toHfConfig(c)).toMatchObject({ model_type: 'qwen3', architectures: ['Qwen3ForCausalLM'], head_dim: 128, attention_bias: false, use_sliding_window: false });
    expect(() => requirePlainLlama(c, 'GGUF export')).toThrow('GGUF export is for LLaMA without biases; this model is qwen3');
  });

  it('gemma: scaled embeddings, norms by 1 + w, the tanh GELU (its configs\' legacy "gelu" too), head_dim 256 by default', () => {
    const c = fromHfConfig({ ...BASE, model_type: 'gemma', hidden_act: 'gelu', hidden_activation: 'gelu_pytorch_tanh' });
    expect(c).toMatchObject({ family: 'gemma', normPlusOne: true, embedScale: Math.fround(Math.sqrt(32)), mlpActivation: 'gelu_tanh', headDim: 256, bosId: 1 });
    expect(toHfConfig(c)).toMatchObject({ model_type: 'gemma', architectures: ['GemmaForCausalLM'], hidden_act: 'gelu_pytorch_tanh' });
    expect(() => fromHfConfig({ ...BASE, model_type: 'gemma', hidden_act: 'relu' })).toThrow('field "hidden_act" is "relu"');
    expect(() => fromHfConfig({ ...BASE, model_type: 'llama', hidden_act: 'gelu' })).toThrow('field "hidden_act" is "gelu"');
  });

  it('gemma2: sandwich norms, soft caps, query_pre_attn_scalar; sliding layers alternating with full ones', () => {
    const c = fromHfConfig({ ...BASE, model_type: 'gemma2', head_dim: 16, query_pre_attn_scalar: 24, attn_logit_softcapping: 50, final_logit_softcapping: 30, sliding_window: 4096, max_position_embeddings: 8192, layer_types: ['sliding_attention', 'full_attention'] });
    expect(c).toMatchObject({ family: 'gemma2', sandwichNorms: true, normPlusOne: true, attnSoftcap: 50, finalSoftcap: 30, slidingWindow: 4096, maxPositions: 8192, mlpActivation: 'gelu_tanh', slidingLayers: [true, false] });
    expect(layerWindow(c, 0)).toBe(4096);
    expect(layerWindow(c, 1)).toBeNull();
    expect(c.attnScale).toBeCloseTo(1 / Math.sqrt(24), 12);
    expect(toHfConfig(c)).toMatchObject({ model_type: 'gemma2', query_pre_attn_scalar: 24, attn_logit_softcapping: 50, final_logit_softcapping: 30, sliding_window: 4096 });
    expect(fromHfConfig({ ...BASE, model_type: 'gemma2', attn_logit_softcapping: null })).not.toHaveProperty('attnSoftcap');
  });

  it('mistral: every layer attends within the sliding window; the context stays as declared', () => {
    const c = fromHfConfig({ ...BASE, model_type: 'mistral', sliding_window: 4096, max_position_embeddings: 32768 });
    expect(c).toMatchObject({ family: 'mistral', slidingWindow: 4096, maxPositions: 32768, bosId: 1 });
    expect([layerWindow(c, 0), layerWindow(c, 1)]).toEqual([4096, 4096]);
    expect(fromHfConfig({ ...BASE, model_type: 'mistral', sliding_window: null, max_position_embeddings: 32768 }).maxPositions).toBe(32768);
    expect(toHfConfig(c)).toMatchObject({ model_type: 'mistral', architectures: ['MistralForCausalLM'], sliding_window: 4096 });
  });

  it('gemma3_text: q/k norms, five sliding layers to a full one, the sliding layers\' own RoPE base, linear scaling on the full ones', () => {
    const legacy = fromHfConfig({ ...BASE, model_type: 'gemma3_text', num_hidden_layers: 7, head_dim: 16, sliding_window: 512, rope_theta: 1e6, rope_local_base_freq: 1e4, rope_scaling: { rope_type: 'linear', factor: 8 }, max_position_embeddings: 32768 });
    expect(legacy).toMatchObject({ family: 'gemma3_text', qkNorm: true, normPlusOne: true, sandwichNorms: true, slidingWindow: 512, maxPositions: 32768, ropeTheta: 1e6, localRopeTheta: 1e4, ropeScaling: { type: 'linear', factor: 8 }, tieEmbeddings: true });
    expect(legacy.slidingLayers).toEqual([true, true, true, true, true, false, true]);
    expect(legacy.attnScale).toBeCloseTo(1 / 16, 12); // query_pre_attn_scalar defaults to 256
    const v5 = fromHfConfig({ ...BASE, model_type: 'gemma3_text', head_dim: 16, layer_types: ['full_attention', 'sliding_attention'], rope_parameters: { full_attention: { rope_type: 'default', rope_theta: 5e5 }, sliding_attention: { rope_type: 'default', rope_theta: 2e4 } } });
    expect(v5).toMatchObject({ ropeTheta: 5e5, localRopeTheta: 2e4, ropeScaling: null, slidingLayers: [false, true], slidingWindow: 4096 });
    expect([usesLocalRope(v5, 0), usesLocalRope(v5, 1)]).toEqual([false, true]);
    expect(fromHfConfig(toHfConfig(legacy) as Record<string, unknown>)).toEqual(legacy);
    expect(() => fromHfConfig({ ...BASE, model_type: 'gemma3' })).toThrow('this engine runs its text model (model_type "gemma3_text"');
  });

  it('phi3: q/k/v and gate/up stored fused, split at load and joined when written; a sliding window in every layer', () => {
    const c = fromHfConfig({ ...BASE, model_type: 'phi3', sliding_window: 2047, max_position_embeddings: 4096, resid_pdrop: 0, embd_pdrop: 0 });
    expect(c).toMatchObject({ family: 'phi3', fusedProjections: true, slidingWindow: 2047, maxPositions: 4096, attentionBias: { qkv: false, o: false } });
    const names = [...expectedWeights(c).keys()];
    expect(names).toContain('model.layers.0.self_attn.qkv_proj.weight');
    expect(names).toContain('model.layers.1.mlp.gate_up_proj.weight');
    expect(names.some((n) => n.includes('q_proj') || n.includes('gate_proj'))).toBe(false);
    // q (4 heads x 8) + k and v (2 kv heads x 8 each) rows; gate and up (64 each) rows.
    expect(expectedWeights(c).get('model.layers.0.self_attn.qkv_proj.weight')).toEqual([32 + 16 + 16, 32]);
    expect(expectedWeights(c).get('model.layers.0.mlp.gate_up_proj.weight')).toEqual([128, 32]);
    expect(toHfConfig(c)).toMatchObject({ model_type: 'phi3', architectures: ['Phi3ForCausalLM'], sliding_window: 2047 });
    expect(() => requirePlainLlama(c, 'GGUF export')).toThrow('this model is phi3');
  });

  it("gpt2: GPT2Config's names, LayerNorm, learned positions, an ungated MLP, biases everywhere, a tied head; no BOS", () => {
    const GPT2 = { model_type: 'gpt2', vocab_size: 100, n_embd: 32, n_layer: 2, n_head: 4, n_positions: 64, eos_token_id: 2, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 };
    const c = fromHfConfig(GPT2);
    expect(c).toMatchObject({ family: 'gpt2', dim: 32, ffnDim: 128, nLayers: 2, nHeads: 4, nKvHeads: 4, headDim: 8, maxPositions: 64, normEps: 1e-5, layerNorm: true, learnedPositions: true, plainMlp: true, mlpActivation: 'gelu_tanh', attentionBias: { qkv: true, o: true }, tieEmbeddings: true, bosId: null, eosIds: [2] });
    expect(c.trainingDropouts).toBeUndefined();
    expect([...expectedWeights(c).keys()].slice(0, 4)).toEqual(['transformer.wte.weight', 'transformer.wpe.weight', 'transformer.h.0.ln_1.weight', 'transformer.h.0.ln_1.bias']);
    expect(expectedWeights(c).get('transformer.h.0.attn.c_attn.weight')).toEqual([32, 96]); // Conv1D: [in, out]
    expect(fromHfConfig(toHfConfig(c))).toEqual(c);
    // GPT2Config's dropouts (0.1 by default) act in training only: the model loads, training refuses them by name.
    const released = fromHfConfig({ ...GPT2, resid_pdrop: undefined, embd_pdrop: 0.1, attn_pdrop: 0 });
    expect(released.trainingDropouts).toEqual(['resid_pdrop=0.1', 'embd_pdrop=0.1']);
    expect(() => validateRecipe(paperRecipe(released), released)).toThrow(/config\.json sets resid_pdrop=0\.1, embd_pdrop=0\.1: gpt2 trains with dropout there, and this engine trains without/);
    expect(() => validateRecipe({ ...paperRecipe(c), adapterLayers: 2, method: 'lora', loraTargets: ['q', 'gate'] }, c)).toThrow(/recipe field "loraTargets" must be projections this model has \(gpt2's MLP has no gate/);
    expect(() => requirePlainLlama(c, 'GGUF export')).toThrow(/this model is gpt2/);
  });

  it("phi3: LongRoPE's factors by sequence length, checked, the attention factor as transformers derives it", () => {
    const PHI3 = { ...BASE, model_type: 'phi3', num_key_value_heads: 4, max_position_embeddings: 64, original_max_position_embeddings: 8 };
    const factors = { short_factor: [1, 1.1, 1.2, 1.3], long_factor: [2, 3, 4, 5] }; // head_dim 8: four frequencies
    const c = fromHfConfig({ ...PHI3, rope_scaling: { type: 'longrope', ...factors } });
    expect(c.ropeScaling).toEqual({ type: 'longrope', shortFactor: factors.short_factor, longFactor: factors.long_factor, originalMaxPositions: 8, attentionFactor: Math.sqrt(1 + Math.log(8) / Math.log(8)) });
    expect(fromHfConfig(toHfConfig(c))).toEqual(c);
    expect(() => fromHfConfig({ ...PHI3, rope_scaling: { type: 'longrope', ...factors, long_factor: [2, 3] } })).toThrow(/field "rope_scaling\.long_factor" must list 4 positive numbers/);
    expect(() => fromHfConfig({ ...PHI3, original_max_position_embeddings: undefined, rope_scaling: { type: 'su', ...factors } })).toThrow(/field "original_max_position_embeddings" must be a positive integer for LongRoPE/);
  });

  it('writes each family back under its own model_type', () => {
    for (const model_type of ['llama', 'mistral', 'qwen2', 'qwen3', 'gemma', 'gemma2', 'gemma3_text', 'phi3']) expect(toHfConfig(fromHfConfig({ ...BASE, model_type })).model_type).toBe(model_type);
  });

  it('formats made for plain LLaMA say which family they met', () => {
    expect(() => requirePlainLlama(fromHfConfig({ ...BASE, model_type: 'qwen2' }), 'GGUF export')).toThrow('GGUF export is for LLaMA without biases; this model is qwen2');
    expect(() => requirePlainLlama(fromHfConfig({ ...BASE, model_type: 'llama', attention_bias: true }), "PEFT's adaption prompt", true)).toThrow(
      "PEFT's adaption prompt is for LLaMA (or Mistral) without biases; this model is llama with attention_bias",
    );
    expect(() => requirePlainLlama(fromHfConfig({ ...BASE, model_type: 'mistral' }), "PEFT's adaption prompt", true)).not.toThrow();
  });
});

/**
 * Every config.json field of these families' transformers configs that changes what the model computes, with
 * what the engine does about it: read and used ('handled'), or refused by name ('refused', with a value that
 * must be refused). A field missing here is a field nobody decided about.
 */
const COMPUTATION_FIELDS: { field: string; family?: string; handled?: (c: ReturnType<typeof fromHfConfig>) => unknown; refused?: unknown }[] = [
  { field: 'hidden_size', handled: (c) => c.dim },
  { field: 'intermediate_size', handled: (c) => c.ffnDim },
  { field: 'num_hidden_layers', handled: (c) => c.nLayers },
  { field: 'num_attention_heads', handled: (c) => c.nHeads },
  { field: 'num_key_value_heads', handled: (c) => c.nKvHeads },
  { field: 'head_dim', handled: (c) => c.headDim },
  { field: 'vocab_size', handled: (c) => c.vocabSize },
  { field: 'rms_norm_eps', handled: (c) => c.normEps },
  { field: 'rope_theta', handled: (c) => c.ropeTheta },
  { field: 'max_position_embeddings', handled: (c) => c.maxPositions },
  { field: 'tie_word_embeddings', handled: (c) => c.tieEmbeddings },
  { field: 'bos_token_id', handled: (c) => c.bosId },
  { field: 'eos_token_id', handled: (c) => c.eosIds },
  { field: 'attention_bias', handled: (c) => c.attentionBias },
  { field: 'sliding_window', family: 'mistral', handled: (c) => c.slidingWindow },
  { field: 'rope_scaling', refused: { rope_type: 'yarn', factor: 4 } },
  { field: 'mlp_bias', refused: true },
  { field: 'hidden_act', refused: 'gelu' },
  { field: 'attention_dropout', refused: 0.1 },
  { field: 'partial_rotary_factor', refused: 0.5 },
  { field: 'use_sliding_window', family: 'qwen2', handled: (c) => c.slidingLayers?.includes(true) || undefined, refused: 'yes' },
  { field: 'max_window_layers', family: 'qwen2', handled: (c) => (c.slidingLayers?.[0] === false && c.slidingLayers[1]) || undefined, refused: -1 },
  { field: 'layer_types', family: 'qwen2', refused: ['chunked_attention'] },
  { field: 'head_dim', family: 'qwen3', handled: (c) => c.headDim === 128 || undefined },
  { field: 'attention_bias', family: 'qwen3', handled: (c) => c.attentionBias },
  { field: 'use_sliding_window', family: 'qwen3', handled: (c) => c.slidingLayers?.includes(true) || undefined, refused: 'yes' },
  { field: 'max_window_layers', family: 'qwen3', handled: (c) => (c.slidingLayers?.[0] === false && c.slidingLayers[1]) || undefined, refused: -1 },
  { field: 'layer_types', family: 'qwen3', refused: ['chunked_attention'] },
  { field: 'hidden_act', family: 'gemma', handled: (c) => c.mlpActivation },
  { field: 'hidden_activation', family: 'gemma', refused: 'relu' },
  { field: 'head_dim', family: 'gemma', handled: (c) => c.headDim === 256 || undefined },
  { field: 'hidden_size', family: 'gemma', handled: (c) => c.embedScale },
  { field: 'attention_bias', family: 'gemma', handled: (c) => c.attentionBias },
  { field: 'use_bidirectional_attention', family: 'gemma', refused: true },
  { field: 'query_pre_attn_scalar', family: 'gemma2', handled: (c) => c.attnScale },
  { field: 'attn_logit_softcapping', family: 'gemma2', handled: (c) => c.attnSoftcap },
  { field: 'final_logit_softcapping', family: 'gemma2', handled: (c) => c.finalSoftcap },
  { field: 'sliding_window', family: 'gemma2', handled: (c) => c.slidingWindow },
  { field: 'layer_types', family: 'gemma2', refused: ['chunked_attention'] },
  { field: 'hidden_activation', family: 'gemma2', refused: 'relu' },
  { field: 'use_bidirectional_attention', family: 'gemma2', refused: true },
  { field: 'sliding_window', family: 'phi3', handled: (c) => c.slidingWindow },
  { field: 'resid_pdrop', family: 'phi3', refused: 0.1 },
  { field: 'embd_pdrop', family: 'phi3', refused: 0.1 },
  { field: 'rope_scaling', family: 'phi3', refused: { type: 'yarn', factor: 4 } },
  { field: 'rope_scaling', family: 'llama', refused: { type: 'longrope', short_factor: [1], long_factor: [1] } },
  { field: 'partial_rotary_factor', family: 'phi3', handled: (c) => c.rotaryDim, refused: 0.01 },
  { field: 'query_pre_attn_scalar', family: 'gemma3_text', handled: (c) => c.attnScale },
  { field: 'sliding_window', family: 'gemma3_text', handled: (c) => c.slidingWindow },
  { field: 'layer_types', family: 'gemma3_text', refused: ['chunked_attention'] },
  { field: 'rope_local_base_freq', family: 'gemma3_text', handled: (c) => c.localRopeTheta },
  { field: 'rope_scaling', family: 'gemma3_text', refused: { rope_type: 'yarn', factor: 8 } },
  { field: 'use_bidirectional_attention', family: 'gemma3_text', refused: true },
  { field: 'activation_function', family: 'gpt2', refused: 'relu' },
  { field: 'scale_attn_weights', family: 'gpt2', refused: false },
  { field: 'scale_attn_by_inverse_layer_idx', family: 'gpt2', refused: true },
  { field: 'add_cross_attention', family: 'gpt2', refused: true },
  { field: 'n_inner', family: 'gpt2', handled: (c) => c.ffnDim },
  { field: 'layer_norm_epsilon', family: 'gpt2', handled: (c) => c.normEps },
  { field: 'resid_pdrop', family: 'gpt2', handled: (c) => c.trainingDropouts, refused: 1.5 },
  { field: 'model_type', refused: 'gpt_neox' },
];

describe('every field that changes the computation is handled or refused', () => {
  it.each(COMPUTATION_FIELDS)('$field ($family)', ({ field, family, handled, refused }) => {
    const cfg = { ...BASE, model_type: family ?? 'llama' };
    const qwenWindow = (field === 'use_sliding_window' || field === 'max_window_layers') && family?.startsWith('qwen');
    const given = field === 'sliding_window' ? { sliding_window: 8 } : field === 'partial_rotary_factor' && family === 'phi3' ? { partial_rotary_factor: 0.5 } : qwenWindow ? { use_sliding_window: true, sliding_window: 8, max_window_layers: 1 } : field.endsWith('_softcapping') ? { [field]: 30 } : {};
    if (handled) expect(handled(fromHfConfig({ ...cfg, ...given }))).toBeDefined();
    if (refused !== undefined) expect(() => fromHfConfig({ ...cfg, ...given, [field]: refused })).toThrow(new RegExp(`field "${field}(\\.rope_type)?"`));
  });
});
