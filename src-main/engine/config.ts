// Model configuration: a Hugging Face `config.json` of a LLaMA-layout decoder, parsed and checked.
//
// Families (`model_type`): llama (with or without `attention_bias`), mistral (LLaMA's layout with sliding-window
// attention: each query sees the last `sliding_window` tokens), qwen2
// (Qwen2 / Qwen2.5: LLaMA's layout with biased q/k/v projections, o without) and qwen3 (per-head RMSNorm of queries
// and keys before RoPE, `head_dim` of its own, biases only with attention_bias), both with a sliding window in the
// layers from max_window_layers on when use_sliding_window says so, and gemma (Gemma 1: embeddings scaled
// by sqrt(hidden), RMSNorm weights applied as 1 + w, a GELU-gated MLP, `head_dim` 256 by default) and gemma2 (Gemma's
// plus norms after attention and after the MLP, soft-capped attention and final logits, query_pre_attn_scalar, and
// sliding-window layers alternating with full ones), gemma3_text (Gemma 3's text model: Gemma 2's block with q/k
// norms, five sliding layers to each full one, and a RoPE base of their own for the sliding layers) and phi3 (Phi-3:
// LLaMA's block with q/k/v and gate/up stored fused, as qkv_proj and gate_up_proj, a sliding window, LongRoPE) and gpt2 (GPT-2:
// LayerNorm, learned positions, Conv1D weights, an ungated MLP). Field names
// follow the engine's code (camelCase); `fromHfConfig`
// maps HF's names and `toHfConfig` writes them back, so a folder we write loads in transformers unchanged.
// Every field that changes the computation is implemented or refused by name.

import { EngineError } from './errors.js';

/** Llama 3.x long-context RoPE rescaling (`rope_scaling.rope_type == "llama3"`). */
export interface Llama3RopeScaling {
  type: 'llama3';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositions: number;
}

/** Linear RoPE scaling (`rope_type == "linear"`): every inverse frequency divided by `factor` (Gemma 3's global layers). */
export interface LinearRopeScaling {
  type: 'linear';
  factor: number;
}

/**
 * Phi-3's LongRoPE (`rope_type` "longrope", legacy "su"): each inverse frequency divided by its own factor, the short
 * ones while the sequence fits the original context, the long ones past it, and cos/sin times `attentionFactor`.
 */
export interface LongRopeScaling {
  type: 'longrope';
  shortFactor: number[];
  longFactor: number[];
  originalMaxPositions: number;
  attentionFactor: number;
}

export type RopeScaling = Llama3RopeScaling | LinearRopeScaling | LongRopeScaling;

/** The decoder families this engine runs (their `model_type`s): the same block, differing in the fields below. */
export const MODEL_FAMILIES = ['llama', 'mistral', 'qwen2', 'qwen3', 'gemma', 'gemma2', 'gemma3_text', 'phi3', 'gpt2'] as const;

/** The MLP's gate activation: SwiGLU's silu, or GeGLU's GELU in PyTorch's tanh approximation. */
export type MlpActivation = 'silu' | 'gelu_tanh';
/**
 * hidden_act values and what they compute. gelu_new and gelu_pytorch_tanh are the same tanh formula; a Gemma
 * config's "gelu" is the released configs' legacy name for it, and transformers reads it so (Gemma only).
 */
const ACTIVATIONS: Record<string, MlpActivation> = { silu: 'silu', gelu: 'gelu_tanh', gelu_pytorch_tanh: 'gelu_tanh', gelu_new: 'gelu_tanh' };
export type ModelFamily = (typeof MODEL_FAMILIES)[number];

/** A LLaMA without biases: what a config names when it says nothing of its family. */
export const PLAIN_LLAMA = { family: 'llama', attentionBias: { qkv: false, o: false } } as const satisfies Partial<LlamaConfig>;

export interface LlamaConfig {
  family: ModelFamily;
  /** Biases on the attention projections: q/k/v (Qwen2; LLaMA's and Qwen3's attention_bias), o (the attention_bias). */
  attentionBias: { qkv: boolean; o: boolean };
  /** Qwen3's and Gemma 3's q_norm / k_norm: RMSNorm over each head of the queries and keys, before RoPE (absent:
   * none); by 1 + w where normPlusOne says so. */
  qkNorm?: boolean;
  /** Gemma: every RMSNorm multiplies by (1 + weight), the stored weight being the offset from 1 (absent: by weight). */
  normPlusOne?: boolean;
  /** Gemma: embeddings are multiplied by sqrt(hidden_size), as a float32 (absent: 1). */
  embedScale?: number;
  /** The MLP's gate activation (absent: silu). */
  mlpActivation?: MlpActivation;
  /** Phi-3: q/k/v stored as one qkv_proj [q + 2 kv, dim] and gate/up as one gate_up_proj [2 ffn, dim]; split at load,
   * joined again when a folder is written (absent: separate projections). */
  fusedProjections?: boolean;
  /** Gemma 2: RMSNorms after attention and after the MLP too, before each residual add (absent: none). */
  sandwichNorms?: boolean;
  /** Gemma 2: attention logits scale, query_pre_attn_scalar ** -0.5 (absent: 1 / sqrt(headDim)). */
  attnScale?: number;
  /** Gemma 2: attention logits soft-capped as cap * tanh(x / cap) (absent: none). */
  attnSoftcap?: number;
  /** Gemma 2: final logits soft-capped likewise (absent: none). */
  finalSoftcap?: number;
  /** GPT-2: LayerNorm (mean-centred, with a bias) instead of RMSNorm; normEps is its layer_norm_epsilon (absent: RMSNorm). */
  layerNorm?: boolean;
  /** GPT-2: learned position embeddings (wpe) added to the token embeddings, no RoPE (absent: RoPE). */
  learnedPositions?: boolean;
  /** GPT-2: an ungated MLP with biases, down(act(up(x) + b) ) + b (absent: the gated MLP without biases). */
  plainMlp?: boolean;
  vocabSize: number;
  dim: number; // hidden_size
  ffnDim: number; // intermediate_size (SwiGLU inner width)
  nLayers: number;
  nHeads: number; // query heads
  nKvHeads: number; // key/value heads (< nHeads means grouped-query attention)
  headDim: number; // dim / nHeads unless config.json says otherwise
  normEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  /** Phi-3's partial_rotary_factor: RoPE on the first rotaryDim features of each head, the rest passed through
   * (absent: the whole head, headDim). */
  rotaryDim?: number;
  /** Gemma 3: the sliding layers' RoPE base, unscaled (absent: every layer rotates by ropeTheta and ropeScaling). */
  localRopeTheta?: number;
  maxPositions: number;
  tieEmbeddings: boolean; // lm_head shares embed_tokens' weight
  /** Sliding-window attention (Mistral, Gemma 2 / 3, Phi-3): a query at position i sees keys i - W + 1 .. i, as
   * transformers' sliding_window_overlay (null: none). */
  slidingWindow?: number | null;
  /** Which layers slide (Gemma 2 and 3 mix sliding and full layers); absent: every layer, when slidingWindow is set. */
  slidingLayers?: boolean[];
  bosId: number | null;
  eosIds: number[]; // generation stops at any of these; the first is appended in training
  /** GPT-2's dropouts set in config.json ("resid_pdrop=0.1", ...): inference ignores them, training refuses them. */
  trainingDropouts?: string[];
}

type Json = Record<string, unknown>;

function field(cfg: Json, file: string, key: string, kind: 'int' | 'number' | 'bool', fallback?: unknown): any {
  const value = cfg[key] ?? fallback;
  const bad = (want: string) =>
    new EngineError(`${file}: field "${key}" must be ${want}, got ${JSON.stringify(cfg[key] ?? null)}`);
  if (value === undefined) throw bad(kind === 'bool' ? 'true or false' : `a ${kind === 'int' ? 'positive integer' : 'number'}`);
  if (kind === 'bool') {
    if (typeof value !== 'boolean') throw bad('true or false');
  } else if (kind === 'int') {
    if (!Number.isInteger(value) || (value as number) <= 0) throw bad('a positive integer');
  } else if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw bad('a positive number');
  }
  return value;
}

function tokenIds(value: unknown, file: string, key: string): number[] {
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value : [value];
  for (const id of list) {
    if (!Number.isInteger(id) || id < 0) {
      throw new EngineError(`${file}: field "${key}" must be a token id or a list of ids, got ${JSON.stringify(value)}`);
    }
  }
  return list as number[];
}

/**
 * Upper bounds far above any released LLaMA (405B: hidden 16384, 126 layers, 128K context), so that a garbled
 * or hostile config.json is refused by name before anything is sized from it.
 */
const LIMITS: Record<string, number> = {
  hidden_size: 1 << 16,
  intermediate_size: 1 << 20,
  num_hidden_layers: 1 << 10,
  num_attention_heads: 1 << 10,
  num_key_value_heads: 1 << 10,
  head_dim: 1 << 12,
  vocab_size: 1 << 22,
  max_position_embeddings: 1 << 24,
};

/**
 * LLaMA fields transformers honours that change the computation in ways this engine does not implement: a
 * config that sets them is refused, never run as if they were absent (wrong logits, silently).
 */
function refuseUnimplemented(cfg: Json, file: string, family: ModelFamily): void {
  const gemmaLike = isGemmaLike(family);
  if ((family === 'llama' || family === 'qwen3' || gemmaLike) && cfg.attention_bias !== undefined && typeof cfg.attention_bias !== 'boolean') {
    throw new EngineError(`${file}: field "attention_bias" must be true or false, got ${JSON.stringify(cfg.attention_bias)}`);
  }
  if (cfg.mlp_bias !== undefined && cfg.mlp_bias !== false) throw new EngineError(`${file}: field "mlp_bias" is ${JSON.stringify(cfg.mlp_bias)}; this engine implements MLPs without biases only`);
  const activations = gemmaLike ? ['gelu', 'gelu_pytorch_tanh', 'gelu_new'] : ['silu'];
  for (const key of ['hidden_act', 'hidden_activation'] as const) {
    const value = cfg[key];
    if (value !== undefined && value !== null && !activations.includes(value as string)) {
      throw new EngineError(`${file}: field "${key}" is ${JSON.stringify(value)}; this engine implements ${activations.map((a) => `"${a}"`).join(', ')} for ${family}`);
    }
  }
  // Gemma's bidirectional attention (an embedding-model variant) is not causal: not implemented.
  if (cfg.use_bidirectional_attention !== undefined && cfg.use_bidirectional_attention !== null && cfg.use_bidirectional_attention !== false) {
    throw new EngineError(`${file}: field "use_bidirectional_attention" is ${JSON.stringify(cfg.use_bidirectional_attention)}; this engine implements causal attention only`);
  }
  // Attention dropout acts while training: the engine has none, so a run would not train as the config says.
  if (cfg.attention_dropout !== undefined && cfg.attention_dropout !== 0) throw new EngineError(`${file}: field "attention_dropout" is ${JSON.stringify(cfg.attention_dropout)}; this engine implements attention without dropout only`);
  // RoPE on part of each head (partial_rotary_factor): Phi-3's (Phi-4-mini's 0.75), read in fromHfConfig; elsewhere refused.
  if (family !== 'phi3') {
    for (const [key, value] of [['partial_rotary_factor', cfg.partial_rotary_factor], ['rope_parameters.partial_rotary_factor', (cfg.rope_parameters as Json | undefined)?.partial_rotary_factor]] as const) {
      if (value !== undefined && value !== 1) throw new EngineError(`${file}: field "${key}" is ${JSON.stringify(value)}; this engine rotates whole heads only (partial rotary: Phi-3)`);
    }
  }
  if (family === 'phi3') {
    // Phi-3's residual and embedding dropout act while training; the engine has none.
    for (const key of ['resid_pdrop', 'embd_pdrop']) {
      if (cfg[key] !== undefined && cfg[key] !== 0) throw new EngineError(`${file}: field "${key}" is ${JSON.stringify(cfg[key])}; this engine implements Phi-3 without dropout only`);
    }
  }
  if (family === 'gemma2' || family === 'gemma3_text') {
    const types = cfg.layer_types;
    if (types !== undefined && (!Array.isArray(types) || types.some((t) => t !== 'full_attention' && t !== 'sliding_attention'))) {
      throw new EngineError(`${file}: field "layer_types" names ${JSON.stringify(Array.isArray(types) ? [...new Set(types)] : types)}; this engine implements "full_attention" and "sliding_attention" layers only`);
    }
  }
  if (family === 'qwen2' || family === 'qwen3') {
    // Qwen's sliding window: use_sliding_window turns it on, for the layers from max_window_layers on (or those
    // layer_types names); without it transformers has no window for a layer typed sliding, so that is refused.
    if (cfg.use_sliding_window !== undefined && typeof cfg.use_sliding_window !== 'boolean') {
      throw new EngineError(`${file}: field "use_sliding_window" must be true or false, got ${JSON.stringify(cfg.use_sliding_window)}`);
    }
    const types = cfg.layer_types;
    if (types !== undefined && types !== null && (!Array.isArray(types) || types.some((t) => t !== 'full_attention' && t !== 'sliding_attention'))) {
      throw new EngineError(`${file}: field "layer_types" names ${JSON.stringify(Array.isArray(types) ? [...new Set(types)] : types)}; this engine implements "full_attention" and "sliding_attention" layers only`);
    }
    if (Array.isArray(types) && types.includes('sliding_attention') && cfg.use_sliding_window !== true) {
      throw new EngineError(`${file}: field "layer_types" names "sliding_attention" layers but "use_sliding_window" is ${JSON.stringify(cfg.use_sliding_window ?? false)}: such a layer has no window`);
    }
  }
}

function isGemmaLike(family: ModelFamily): boolean {
  return family === 'gemma' || family === 'gemma2' || family === 'gemma3_text';
}

/** Which layers slide: `layer_types` where the config lists them, else every `pattern`-th layer is full (Gemma 2's
 * default alternation is pattern 2, Gemma 3's 6), as transformers derives them. */
function slidingLayersOf(cfg: Json, file: string, nLayers: number, pattern: number): boolean[] {
  const types = cfg.layer_types;
  if (Array.isArray(types)) {
    if (types.length !== nLayers) throw new EngineError(`${file}: field "layer_types" lists ${types.length} layers; "num_hidden_layers" is ${nLayers}`);
    return types.map((t) => t === 'sliding_attention');
  }
  return Array.from({ length: nLayers }, (_, i) => (i + 1) % pattern !== 0);
}

/** Qwen's sliding layers: `layer_types` where listed, else the layers from `max_window_layers` (default 28) on. */
function qwenSlidingLayers(cfg: Json, file: string, nLayers: number): boolean[] {
  if (Array.isArray(cfg.layer_types)) return slidingLayersOf(cfg, file, nLayers, 1);
  const from = cfg.max_window_layers ?? 28;
  if (!Number.isInteger(from) || (from as number) < 0) throw new EngineError(`${file}: field "max_window_layers" must be a whole number >= 0, got ${JSON.stringify(from)}`);
  return Array.from({ length: nLayers }, (_, i) => i >= (from as number));
}

/**
 * Gemma 3's RoPE: the full layers' base and scaling (`rope_parameters.full_attention`, or the legacy top-level
 * rope_theta / rope_scaling), and the sliding layers' base (`rope_parameters.sliding_attention.rope_theta`, or the
 * legacy rope_local_base_freq), which must be unscaled.
 */
function gemma3Rope(cfg: Json, file: string): { ropeTheta: number; ropeScaling: RopeScaling | null; localRopeTheta: number } {
  const params = (cfg.rope_parameters ?? {}) as Json;
  const full = (params.full_attention ?? {}) as Json;
  const sliding = (params.sliding_attention ?? {}) as Json;
  const slidingType = sliding.rope_type ?? 'default';
  if (slidingType !== 'default') throw new EngineError(`${file}: field "rope_parameters.sliding_attention.rope_type" is ${JSON.stringify(slidingType)}; supported: "default"`);
  const theta = (value: unknown, key: string, fallback: number) => {
    if (value === undefined || value === null) return fallback;
    if (typeof value !== 'number' || !(value > 0)) throw new EngineError(`${file}: field "${key}" must be a positive number, got ${JSON.stringify(value)}`);
    return value;
  };
  return {
    ropeTheta: theta(full.rope_theta ?? cfg.rope_theta, 'rope_parameters.full_attention.rope_theta', 1_000_000),
    ropeScaling: parseRopeScaling(cfg.rope_scaling ?? (full.rope_type !== undefined ? full : undefined), file),
    localRopeTheta: theta(sliding.rope_theta ?? cfg.rope_local_base_freq, 'rope_parameters.sliding_attention.rope_theta', 10_000),
  };
}

/** In words: "qwen2", "llama with attention_bias", "llama". */
export function describeFamily(c: LlamaConfig): string {
  return c.family === 'llama' && c.attentionBias.o ? 'llama with attention_bias' : c.family;
}

/**
 * For formats and tools made for LLaMA without biases (GGUF's llama layout, PEFT's adaption prompt, the official
 * LLaMA-Adapter checkpoint): refused, saying why, for any other family rather than written or read wrongly.
 */
export function requirePlainLlama(c: LlamaConfig, what: string, alsoMistral = false): void {
  const plain = !c.attentionBias.qkv && !c.attentionBias.o && (c.family === 'llama' || (alsoMistral && c.family === 'mistral'));
  if (!plain) throw new EngineError(`${what} is for LLaMA${alsoMistral ? ' (or Mistral)' : ''} without biases; this model is ${describeFamily(c)}`);
}

/**
 * GPT-2's config.json (GPT2Config's own names: n_embd, n_layer, n_head, n_inner, n_positions). Its attention is
 * scaled by 1/sqrt(head_dim) (scale_attn_weights) with biases on every projection; what GPT2Config can set beyond
 * that (cross-attention, per-layer scaling, another activation) is refused by name. The dropouts act in training
 * only: a model with them loads (inference is exact), and training refuses them (validateRecipe).
 */
function gpt2Config(cfg: Json, file: string): LlamaConfig {
  const refuse = (key: string, allowed: unknown[], what: string) => {
    if (cfg[key] !== undefined && cfg[key] !== null && !allowed.includes(cfg[key])) throw new EngineError(`${file}: field "${key}" is ${JSON.stringify(cfg[key])}; this engine implements ${what} only`);
  };
  refuse('activation_function', ['gelu_new', 'gelu_pytorch_tanh'], 'GPT-2\'s "gelu_new" (the tanh GELU)');
  refuse('scale_attn_weights', [true], 'attention scaled by 1/sqrt(head_dim) (scale_attn_weights true)');
  refuse('scale_attn_by_inverse_layer_idx', [false], 'attention without per-layer scaling');
  refuse('add_cross_attention', [false], 'decoders without cross-attention');
  for (const [key, limit] of [['n_embd', LIMITS.hidden_size], ['n_layer', LIMITS.num_hidden_layers], ['n_head', LIMITS.num_attention_heads], ['n_inner', LIMITS.intermediate_size], ['vocab_size', LIMITS.vocab_size], ['n_positions', LIMITS.max_position_embeddings]] as const) {
    const v = cfg[key];
    if (typeof v === 'number' && v > limit!) throw new EngineError(`${file}: field "${key}" is ${v}; more than ${limit!.toLocaleString('en')} is not a model this engine can hold`);
  }
  const dim = field(cfg, file, 'n_embd', 'int', 768);
  const nHeads = field(cfg, file, 'n_head', 'int', 12);
  if (dim % nHeads !== 0) throw new EngineError(`${file}: field "n_embd" (${dim}) must be divisible by "n_head" (${nHeads})`);
  const vocabSize = field(cfg, file, 'vocab_size', 'int', 50257);
  const eosIds = tokenIds(cfg.eos_token_id ?? 50256, file, 'eos_token_id');
  for (const id of eosIds) if (id >= vocabSize) throw new EngineError(`${file}: field "eos_token_id" (${id}) is outside the vocabulary (vocab_size ${vocabSize})`);
  return {
    family: 'gpt2',
    attentionBias: { qkv: true, o: true },
    layerNorm: true,
    learnedPositions: true,
    plainMlp: true,
    mlpActivation: 'gelu_tanh',
    vocabSize,
    dim,
    ffnDim: cfg.n_inner === undefined || cfg.n_inner === null ? 4 * dim : field(cfg, file, 'n_inner', 'int'),
    nLayers: field(cfg, file, 'n_layer', 'int', 12),
    nHeads,
    nKvHeads: nHeads,
    headDim: dim / nHeads,
    normEps: field(cfg, file, 'layer_norm_epsilon', 'number', 1e-5),
    ropeTheta: 10000, // unused: learned positions
    ropeScaling: null,
    maxPositions: field(cfg, file, 'n_positions', 'int', 1024),
    tieEmbeddings: field(cfg, file, 'tie_word_embeddings', 'bool', true),
    // GPT-2's tokenizer adds no BOS (bos_token_id names <|endoftext|>): neither do we.
    bosId: null,
    eosIds,
    ...(gpt2Dropouts(cfg, file).length ? { trainingDropouts: gpt2Dropouts(cfg, file) } : {}),
  };
}

/** GPT-2's dropouts that are set (above 0), as "resid_pdrop=0.1": they change training, not inference. */
function gpt2Dropouts(cfg: Json, file: string): string[] {
  const set: string[] = [];
  for (const key of ['resid_pdrop', 'embd_pdrop', 'attn_pdrop']) {
    const v = cfg[key] ?? 0.1; // GPT2Config's default
    if (typeof v !== 'number' || v < 0 || v >= 1) throw new EngineError(`${file}: field "${key}" must be a probability in [0, 1), got ${JSON.stringify(cfg[key])}`);
    if (v > 0) set.push(`${key}=${v}`);
  }
  return set;
}

/** Parse an HF `config.json` object. `file` names the source in error messages. */
export function fromHfConfig(cfg: Json, file = 'config.json'): LlamaConfig {
  const modelType = cfg.model_type ?? 'llama';
  if (modelType === 'gpt2') return gpt2Config(cfg, file);
  if (modelType === 'gemma3') {
    throw new EngineError(`${file}: field "model_type" is "gemma3", Gemma 3's vision-language folder; this engine runs its text model (model_type "gemma3_text", as Gemma 3 1B ships)`);
  }
  if (!(MODEL_FAMILIES as readonly unknown[]).includes(modelType)) {
    throw new EngineError(`${file}: field "model_type" is ${JSON.stringify(modelType)}; supported: ${MODEL_FAMILIES.map((f) => `"${f}"`).join(', ')}`);
  }
  const family = modelType as ModelFamily;
  refuseUnimplemented(cfg, file, family);
  for (const [key, limit] of Object.entries(LIMITS)) {
    const v = cfg[key];
    if (typeof v === 'number' && v > limit) throw new EngineError(`${file}: field "${key}" is ${v}; more than ${limit.toLocaleString('en')} is not a LLaMA this engine can hold`);
  }
  const dim = field(cfg, file, 'hidden_size', 'int');
  const nHeads = field(cfg, file, 'num_attention_heads', 'int');
  const nKvHeads = field(cfg, file, 'num_key_value_heads', 'int', nHeads);
  if (nHeads % nKvHeads !== 0) {
    throw new EngineError(
      `${file}: field "num_key_value_heads" (${nKvHeads}) must divide "num_attention_heads" (${nHeads})`,
    );
  }
  // Qwen3Config's head_dim defaults to 128 whatever the width (transformers' own default), the others' to dim / heads.
  const gemmaLike = isGemmaLike(family);
  const defaultHeadDim = family === 'qwen3' ? 128 : gemmaLike ? 256 : dim / nHeads; // Gemma(2, 3)Config's: 256
  const headDim = field(cfg, file, 'head_dim', 'int', defaultHeadDim);
  if (cfg.head_dim === undefined && family !== 'qwen3' && !gemmaLike && dim % nHeads !== 0) {
    throw new EngineError(`${file}: field "hidden_size" (${dim}) must be divisible by "num_attention_heads" (${nHeads})`);
  }
  const vocabSize = field(cfg, file, 'vocab_size', 'int');
  const bos = tokenIds(cfg.bos_token_id, file, 'bos_token_id');
  const eosIds = tokenIds(cfg.eos_token_id, file, 'eos_token_id');
  for (const [key, ids] of [['bos_token_id', bos], ['eos_token_id', eosIds]] as const) {
    for (const id of ids) {
      if (id >= vocabSize) throw new EngineError(`${file}: field "${key}" (${id}) is outside the vocabulary (vocab_size ${vocabSize})`);
    }
  }
  const llamaBias = (family === 'llama' || family === 'qwen3' || gemmaLike) && cfg.attention_bias === true;
  // Released Gemma configs name hidden_activation beside a legacy hidden_act; all of those values mean the tanh GELU.
  const act = (cfg.hidden_activation ?? cfg.hidden_act ?? (gemmaLike ? 'gelu_pytorch_tanh' : 'silu')) as string;
  const qwenSlides = (family === 'qwen2' || family === 'qwen3') && cfg.use_sliding_window === true;
  const slides = family === 'mistral' || family === 'gemma2' || family === 'gemma3_text' || family === 'phi3' || qwenSlides;
  // Gemma(2, 3)Config and Qwen(2, 3)Config default to a 4096-token window; Mistral's and Phi-3's to none.
  const windowDefault = family === 'gemma2' || family === 'gemma3_text' || qwenSlides ? 4096 : undefined;
  const slidingWindow = slides && (cfg.sliding_window ?? windowDefault) !== undefined && cfg.sliding_window !== null ? field(cfg, file, 'sliding_window', 'int', windowDefault) : null;
  const nLayers = field(cfg, file, 'num_hidden_layers', 'int');
  // Gemma 2 and 3 mix sliding and full layers (Gemma 3's sliding layers also rotate by a base of their own).
  const mixedLayers = family === 'gemma2' || family === 'gemma3_text';
  const softcap = (key: string): number | undefined => (cfg[key] === undefined || cfg[key] === null ? undefined : field(cfg, file, key, 'number'));
  const rotaryDim = family === 'phi3' ? partialRotaryDim(cfg, file, headDim) : headDim;
  const rope =
    family === 'gemma3_text'
      ? gemma3Rope(cfg, file)
      : {
          // transformers 5 writes RoPE settings as `rope_parameters`; 4.x and most checkpoints use the top level.
          ropeTheta: field(cfg, file, 'rope_theta', 'number', (cfg.rope_parameters as Json | undefined)?.rope_theta ?? 10000) as number,
          ropeScaling: parseRopeScaling(cfg.rope_scaling ?? cfg.rope_parameters, file, { cfg, family, rotaryDim }),
        };
  return {
    family,
    attentionBias: { qkv: family === 'qwen2' || llamaBias, o: llamaBias },
    ...(family === 'qwen3' || family === 'gemma3_text' ? { qkNorm: true } : {}),
    ...(family === 'phi3' ? { fusedProjections: true } : {}),
    ...(rotaryDim !== headDim ? { rotaryDim } : {}),
    // torch.tensor(hidden_size ** 0.5): the float32 nearest sqrt(hidden).
    ...(gemmaLike ? { normPlusOne: true, embedScale: Math.fround(Math.sqrt(dim)) } : {}),
    ...(family === 'gemma2' || family === 'gemma3_text'
      ? {
          sandwichNorms: true,
          attnScale: 1 / Math.sqrt(field(cfg, file, 'query_pre_attn_scalar', 'number', 256)),
          ...(softcap('attn_logit_softcapping') !== undefined ? { attnSoftcap: softcap('attn_logit_softcapping') } : {}),
          ...(softcap('final_logit_softcapping') !== undefined ? { finalSoftcap: softcap('final_logit_softcapping') } : {}),
        }
      : {}),
    ...(ACTIVATIONS[act] !== 'silu' ? { mlpActivation: ACTIVATIONS[act] } : {}),
    vocabSize,
    dim,
    ffnDim: field(cfg, file, 'intermediate_size', 'int'),
    nLayers,
    nHeads,
    nKvHeads,
    headDim,
    normEps: field(cfg, file, 'rms_norm_eps', 'number', 1e-6),
    ...rope,
    maxPositions: field(cfg, file, 'max_position_embeddings', 'int', 2048),
    // Gemma(2, 3)Config tie the head by default; the others untie it.
    tieEmbeddings: field(cfg, file, 'tie_word_embeddings', 'bool', gemmaLike),
    ...(slides ? { slidingWindow } : {}),
    ...(mixedLayers ? { slidingLayers: slidingLayersOf(cfg, file, nLayers, family === 'gemma2' ? 2 : (cfg.sliding_window_pattern as number | undefined) ?? 6) } : {}),
    ...(qwenSlides && slidingWindow !== null ? { slidingLayers: qwenSlidingLayers(cfg, file, nLayers) } : {}),
    // Qwen's tokenizer adds no BOS (its config may still name <|endoftext|> as bos_token_id): neither do we.
    bosId: family === 'qwen2' || family === 'qwen3' || bos.length === 0 ? null : bos[0]!,
    eosIds,
  };
}

function parseRopeScaling(raw: unknown, file: string, longrope?: { cfg: Json; family: ModelFamily; rotaryDim: number }): RopeScaling | null {
  if (raw === undefined || raw === null) return null;
  const rs = raw as Json;
  const type = rs.rope_type ?? rs.type;
  if (type === 'default') return null;
  // LongRoPE switches frequencies with the sequence's length, which Phi-3 alone handles in decoding (its KV cache is
  // recomputed when a sequence crosses the original context); elsewhere it is refused.
  if ((type === 'longrope' || type === 'su') && longrope?.family === 'phi3') return parseLongRope(rs, file, longrope.cfg, longrope.rotaryDim);
  if (type !== 'llama3' && type !== 'linear') {
    throw new EngineError(`${file}: field "rope_scaling.rope_type" is ${JSON.stringify(type)}; supported: "llama3", "linear"${longrope?.family === 'phi3' ? ', "longrope"' : ''} or none`);
  }
  const num = (key: string) => {
    const v = rs[key];
    if (typeof v !== 'number' || !(v > 0)) {
      throw new EngineError(`${file}: field "rope_scaling.${key}" must be a positive number, got ${JSON.stringify(v ?? null)}`);
    }
    return v;
  };
  if (type === 'linear') return { type: 'linear', factor: num('factor') };
  return {
    type: 'llama3',
    factor: num('factor'),
    lowFreqFactor: num('low_freq_factor'),
    highFreqFactor: num('high_freq_factor'),
    originalMaxPositions: num('original_max_position_embeddings'),
  };
}

/** Phi-3's LongRoPE fields, checked: one factor per rotated frequency, the original context, the attention factor. */
function parseLongRope(rs: Json, file: string, cfg: Json, rotaryDim: number): LongRopeScaling {
  const factors = (key: string): number[] => {
    const v = rs[key];
    if (!Array.isArray(v) || v.length !== rotaryDim / 2 || v.some((f) => typeof f !== 'number' || !(f > 0))) {
      throw new EngineError(`${file}: field "rope_scaling.${key}" must list ${rotaryDim / 2} positive numbers (one per frequency of the ${rotaryDim} rotated features), got ${JSON.stringify(v ?? null)}`);
    }
    return v as number[];
  };
  const original = rs.original_max_position_embeddings ?? cfg.original_max_position_embeddings;
  if (!Number.isInteger(original) || (original as number) < 1) throw new EngineError(`${file}: field "original_max_position_embeddings" must be a positive integer for LongRoPE, got ${JSON.stringify(original ?? null)}`);
  const maxPositions = (cfg.max_position_embeddings as number | undefined) ?? 2048;
  const factor = typeof rs.factor === 'number' && rs.factor > 0 ? rs.factor : maxPositions / (original as number);
  const attention = rs.attention_factor;
  if (attention !== undefined && attention !== null && !(typeof attention === 'number' && attention > 0)) throw new EngineError(`${file}: field "rope_scaling.attention_factor" must be a positive number, got ${JSON.stringify(attention)}`);
  return {
    type: 'longrope',
    shortFactor: factors('short_factor'),
    longFactor: factors('long_factor'),
    originalMaxPositions: original as number,
    // transformers' default: sqrt(1 + ln(factor) / ln(original context)), 1 when not extended.
    attentionFactor: typeof attention === 'number' ? attention : factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(original as number)),
  };
}

/** Phi-3's rotated features per head: head_dim * partial_rotary_factor (top level or in rope_parameters), even. */
function partialRotaryDim(cfg: Json, file: string, headDim: number): number {
  const raw = cfg.partial_rotary_factor ?? (cfg.rope_parameters as Json | undefined)?.partial_rotary_factor ?? 1;
  if (typeof raw !== 'number' || !(raw > 0 && raw <= 1)) throw new EngineError(`${file}: field "partial_rotary_factor" must be a number in (0, 1], got ${JSON.stringify(raw)}`);
  const dim = Math.floor(headDim * raw); // transformers: int(head_dim * partial_rotary_factor)
  if (dim < 2 || dim % 2 !== 0) throw new EngineError(`${file}: field "partial_rotary_factor" (${raw}) rotates ${dim} of ${headDim} features; RoPE needs an even number of at least 2`);
  return dim;
}

/** The inverse of fromHfConfig: an HF config.json that transformers' LlamaForCausalLM loads. */
export function toHfConfig(c: LlamaConfig): Json {
  const family = c.family ?? 'llama';
  if (family === 'gpt2') {
    // A full fine-tune trains without dropout: written as such, so the folder says how it was trained.
    return {
      architectures: ['GPT2LMHeadModel'],
      model_type: 'gpt2',
      vocab_size: c.vocabSize,
      n_embd: c.dim,
      n_layer: c.nLayers,
      n_head: c.nHeads,
      n_inner: c.ffnDim,
      n_positions: c.maxPositions,
      layer_norm_epsilon: c.normEps,
      activation_function: 'gelu_new',
      resid_pdrop: 0,
      embd_pdrop: 0,
      attn_pdrop: 0,
      scale_attn_weights: true,
      scale_attn_by_inverse_layer_idx: false,
      reorder_and_upcast_attn: false,
      tie_word_embeddings: c.tieEmbeddings,
      bos_token_id: c.eosIds[0] ?? null,
      eos_token_id: c.eosIds.length === 1 ? c.eosIds[0] : c.eosIds,
      torch_dtype: 'float32',
    };
  }
  return {
    architectures: [{ llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM', qwen3: 'Qwen3ForCausalLM', gemma: 'GemmaForCausalLM', gemma2: 'Gemma2ForCausalLM', gemma3_text: 'Gemma3ForCausalLM', phi3: 'Phi3ForCausalLM' }[family as Exclude<typeof family, 'gpt2'>]],
    model_type: family,
    vocab_size: c.vocabSize,
    hidden_size: c.dim,
    intermediate_size: c.ffnDim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    head_dim: c.headDim,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    rope_scaling: ropeScalingJson(c.ropeScaling),
    max_position_embeddings: c.maxPositions,
    tie_word_embeddings: c.tieEmbeddings,
    bos_token_id: c.bosId,
    eos_token_id: c.eosIds.length === 1 ? c.eosIds[0] : c.eosIds,
    hidden_act: { silu: 'silu', gelu_tanh: 'gelu_pytorch_tanh' }[c.mlpActivation ?? 'silu'],
    ...(family === 'qwen2' ? qwenWindowFields(c) : family === 'qwen3' ? { ...qwenWindowFields(c), attention_bias: c.attentionBias?.o ?? false } : family === 'gemma' ? { attention_bias: c.attentionBias?.o ?? false } : family === 'gemma2' || family === 'gemma3_text' ? gemma2Fields(c) : family === 'phi3' ? { sliding_window: c.slidingWindow ?? null, resid_pdrop: 0, embd_pdrop: 0, partial_rotary_factor: (c.rotaryDim ?? c.headDim) / c.headDim, ...(c.ropeScaling?.type === 'longrope' ? { original_max_position_embeddings: c.ropeScaling.originalMaxPositions } : {}) } : family === 'mistral' ? { sliding_window: c.slidingWindow ?? null } : { attention_bias: c.attentionBias?.o ?? false, mlp_bias: false }),
    torch_dtype: 'float32',
  };
}

function ropeScalingJson(s: RopeScaling | null): Json | null {
  if (!s) return null;
  if (s.type === 'linear') return { rope_type: 'linear', factor: s.factor };
  if (s.type === 'longrope') {
    return { rope_type: 'longrope', short_factor: s.shortFactor, long_factor: s.longFactor, original_max_position_embeddings: s.originalMaxPositions, attention_factor: s.attentionFactor };
  }
  return { rope_type: 'llama3', factor: s.factor, low_freq_factor: s.lowFreqFactor, high_freq_factor: s.highFreqFactor, original_max_position_embeddings: s.originalMaxPositions };
}

/** Qwen's window fields, written back: none, or the window and which layers slide (layer_types, explicit). */
function qwenWindowFields(c: LlamaConfig): Json {
  if (c.slidingWindow === undefined || c.slidingWindow === null) return { use_sliding_window: false };
  return { use_sliding_window: true, sliding_window: c.slidingWindow, layer_types: (c.slidingLayers ?? []).map((slides) => (slides ? 'sliding_attention' : 'full_attention')) };
}

/** Gemma 2's and 3's own config.json fields, written back (transformers' names; the MLP reads hidden_activation). */
function gemma2Fields(c: LlamaConfig): Json {
  return {
    ...(c.slidingLayers ? { layer_types: c.slidingLayers.map((slides) => (slides ? 'sliding_attention' : 'full_attention')) } : {}),
    // Gemma 3 reads the legacy spellings too: its full layers' base and scaling at the top level, the sliding layers' base.
    ...(c.localRopeTheta !== undefined ? { rope_local_base_freq: c.localRopeTheta } : {}),
    attention_bias: c.attentionBias?.o ?? false,
    hidden_activation: 'gelu_pytorch_tanh',
    query_pre_attn_scalar: c.attnScale === undefined ? c.headDim : Math.round(1 / (c.attnScale * c.attnScale)),
    attn_logit_softcapping: c.attnSoftcap ?? null,
    final_logit_softcapping: c.finalSoftcap ?? null,
    sliding_window: c.slidingWindow ?? null,
  };
}

/** The HF names of a layer's norms: Gemma 2 and 3 have four; the others two (post_attention_layernorm is the MLP's). */
export function layerNormNames(c: LlamaConfig): { attnNorm: string; mlpNorm: string; postAttnNorm?: string; postMlpNorm?: string } {
  if (!c.sandwichNorms) return { attnNorm: 'input_layernorm', mlpNorm: 'post_attention_layernorm' };
  return { attnNorm: 'input_layernorm', postAttnNorm: 'post_attention_layernorm', mlpNorm: 'pre_feedforward_layernorm', postMlpNorm: 'post_feedforward_layernorm' };
}

/**
 * The window layer `layer` attends within, or null for full attention: Mistral's and Phi-3's every layer, Gemma 2's
 * and 3's sliding layers.
 */
export function layerWindow(c: LlamaConfig, layer: number): number | null {
  if (c.slidingWindow === undefined || c.slidingWindow === null) return null;
  return !c.slidingLayers || c.slidingLayers[layer] ? c.slidingWindow : null;
}

/** Whether layer `layer` rotates by Gemma 3's local RoPE base (its sliding layers). */
export function usesLocalRope(c: LlamaConfig, layer: number): boolean {
  return c.localRopeTheta !== undefined && (c.slidingLayers?.[layer] ?? false);
}

/** Phi-3's fused projections: the HF tensor, and the engine's projections stacked in it, in row order. */
export const FUSED_PROJECTIONS = [
  { fused: 'self_attn.qkv_proj.weight', parts: ['self_attn.q_proj.weight', 'self_attn.k_proj.weight', 'self_attn.v_proj.weight'] },
  { fused: 'mlp.gate_up_proj.weight', parts: ['mlp.gate_proj.weight', 'mlp.up_proj.weight'] },
] as const;

/**
 * GPT-2's weights as GPT2LMHeadModel names them (`transformer.` prefixed; files saved from GPT2Model lack the prefix,
 * which load.ts accepts). Its Conv1D layers store [in, out], and c_attn holds q, k and v side by side.
 */
function gpt2Weights(c: LlamaConfig): Map<string, number[]> {
  const w = new Map<string, number[]>();
  w.set('transformer.wte.weight', [c.vocabSize, c.dim]);
  w.set('transformer.wpe.weight', [c.maxPositions, c.dim]);
  for (let i = 0; i < c.nLayers; i++) {
    const p = `transformer.h.${i}`;
    for (const norm of ['ln_1', 'ln_2']) {
      w.set(`${p}.${norm}.weight`, [c.dim]);
      w.set(`${p}.${norm}.bias`, [c.dim]);
    }
    w.set(`${p}.attn.c_attn.weight`, [c.dim, 3 * c.dim]);
    w.set(`${p}.attn.c_attn.bias`, [3 * c.dim]);
    w.set(`${p}.attn.c_proj.weight`, [c.dim, c.dim]);
    w.set(`${p}.attn.c_proj.bias`, [c.dim]);
    w.set(`${p}.mlp.c_fc.weight`, [c.dim, c.ffnDim]);
    w.set(`${p}.mlp.c_fc.bias`, [c.ffnDim]);
    w.set(`${p}.mlp.c_proj.weight`, [c.ffnDim, c.dim]);
    w.set(`${p}.mlp.c_proj.bias`, [c.dim]);
  }
  w.set('transformer.ln_f.weight', [c.dim]);
  w.set('transformer.ln_f.bias', [c.dim]);
  if (!c.tieEmbeddings) w.set('lm_head.weight', [c.vocabSize, c.dim]);
  return w;
}

/** Every weight of the base model with its HF name and shape ([out, in] for linear layers; GPT-2's Conv1D [in, out]). */
export function expectedWeights(c: LlamaConfig): Map<string, number[]> {
  if (c.family === 'gpt2') return gpt2Weights(c);
  const w = new Map<string, number[]>();
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  w.set('model.embed_tokens.weight', [c.vocabSize, c.dim]);
  for (let i = 0; i < c.nLayers; i++) {
    const p = `model.layers.${i}`;
    w.set(`${p}.input_layernorm.weight`, [c.dim]);
    w.set(`${p}.self_attn.q_proj.weight`, [qDim, c.dim]);
    w.set(`${p}.self_attn.k_proj.weight`, [kvDim, c.dim]);
    w.set(`${p}.self_attn.v_proj.weight`, [kvDim, c.dim]);
    w.set(`${p}.self_attn.o_proj.weight`, [c.dim, qDim]);
    if (c.attentionBias?.qkv) {
      w.set(`${p}.self_attn.q_proj.bias`, [qDim]);
      w.set(`${p}.self_attn.k_proj.bias`, [kvDim]);
      w.set(`${p}.self_attn.v_proj.bias`, [kvDim]);
    }
    if (c.attentionBias?.o) w.set(`${p}.self_attn.o_proj.bias`, [c.dim]);
    if (c.qkNorm) {
      w.set(`${p}.self_attn.q_norm.weight`, [c.headDim]);
      w.set(`${p}.self_attn.k_norm.weight`, [c.headDim]);
    }
    for (const norm of Object.values(layerNormNames(c))) if (norm !== 'input_layernorm') w.set(`${p}.${norm}.weight`, [c.dim]);
    w.set(`${p}.mlp.gate_proj.weight`, [c.ffnDim, c.dim]);
    w.set(`${p}.mlp.up_proj.weight`, [c.ffnDim, c.dim]);
    w.set(`${p}.mlp.down_proj.weight`, [c.dim, c.ffnDim]);
  }
  w.set('model.norm.weight', [c.dim]);
  if (!c.tieEmbeddings) w.set('lm_head.weight', [c.vocabSize, c.dim]);
  return c.fusedProjections ? withFusedProjections(w, c.nLayers) : w;
}

/** The same weights as a Phi-3 folder names them: each group of FUSED_PROJECTIONS as one tensor, rows stacked. */
function withFusedProjections(w: Map<string, number[]>, nLayers: number): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const fusedAt = new Map<string, { name: string; shape: number[] }>();
  for (let i = 0; i < nLayers; i++) {
    for (const { fused, parts } of FUSED_PROJECTIONS) {
      const shapes = parts.map((part) => w.get(`model.layers.${i}.${part}`)!);
      fusedAt.set(`model.layers.${i}.${parts[0]}`, { name: `model.layers.${i}.${fused}`, shape: [shapes.reduce((n, s) => n + s[0]!, 0), shapes[0]![1]!] });
      for (const part of parts.slice(1)) fusedAt.set(`model.layers.${i}.${part}`, { name: '', shape: [] });
    }
  }
  for (const [name, shape] of w) {
    const f = fusedAt.get(name);
    if (!f) out.set(name, shape);
    else if (f.name) out.set(f.name, f.shape);
  }
  return out;
}

export function parameterCount(c: LlamaConfig): number {
  let n = 0;
  for (const shape of expectedWeights(c).values()) n += shape.reduce((a, b) => a * b, 1);
  return n;
}
