// The CLIP vision tower's settings, read from a Hugging Face folder as users have them:
// - model_type "clip": CLIPModel, with the vision settings nested under `vision_config` (the text tower is ignored);
// - model_type "clip_vision_model": CLIPVisionModel / CLIPVisionModelWithProjection, flat.
// Missing keys take transformers' CLIPVisionConfig defaults (ViT-B/32). Every key that changes the computation
// is either implemented or refused by name; preprocessor_config.json is read as CLIPImageProcessor reads it.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { EngineError } from '../errors.js';
import { readJsonObject } from '../json-file.js';

export type VisionActivation = 'quick_gelu' | 'gelu';

export interface ClipVisionConfig {
  modelType: 'clip' | 'clip_vision_model';
  hiddenSize: number; // D
  intermediateSize: number; // MLP width
  numLayers: number;
  numHeads: number;
  headDim: number;
  imageSize: number; // the square the position embeddings cover
  patchSize: number;
  numChannels: number;
  layerNormEps: number;
  activation: VisionActivation;
  /** visual_projection's output width, or null when the folder has no projection (CLIPVisionModel). */
  projectionDim: number | null;
}

export type Resample = 'bicubic' | 'bilinear' | 'nearest' | 'lanczos';

export interface ClipPreprocess {
  doResize: boolean;
  shortestEdge: number;
  resample: Resample;
  doCenterCrop: boolean;
  cropHeight: number;
  cropWidth: number;
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  mean: [number, number, number];
  std: [number, number, number];
  doConvertRgb: boolean;
}

// transformers' CLIPVisionConfig defaults.
const DEFAULTS = {
  hidden_size: 768,
  intermediate_size: 3072,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  num_channels: 3,
  image_size: 224,
  patch_size: 32,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
  projection_dim: 512,
};

export const CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

// Keys that only matter for training the tower, or that transformers itself ignores at inference.
const IGNORED = new Set([
  'attention_dropout', 'dropout', 'initializer_range', 'initializer_factor', 'transformers_version', 'torch_dtype', 'dtype',
  'architectures', 'model_type', '_name_or_path', 'id2label', 'label2id', 'return_dict', 'output_hidden_states', 'output_attentions',
  'use_return_dict', 'torchscript', 'pruned_heads', 'tie_word_embeddings', 'chunk_size_feed_forward', 'is_encoder_decoder',
  'is_decoder', 'add_cross_attention', 'tie_encoder_decoder', 'problem_type', 'tokenizer_class', 'prefix', 'bos_token_id',
  'pad_token_id', 'eos_token_id', 'sep_token_id', 'decoder_start_token_id', 'task_specific_params', 'finetuning_task',
  'cross_attention_hidden_size', 'max_length', 'min_length', 'do_sample', 'early_stopping', 'num_beams', 'num_beam_groups',
  'diversity_penalty', 'temperature', 'top_k', 'top_p', 'typical_p', 'repetition_penalty', 'length_penalty',
  'no_repeat_ngram_size', 'encoder_no_repeat_ngram_size', 'bad_words_ids', 'num_return_sequences', 'output_scores',
  'return_dict_in_generate', 'forced_bos_token_id', 'forced_eos_token_id', 'remove_invalid_values',
  'exponential_decay_length_penalty', 'suppress_tokens', 'begin_suppress_tokens', 'chunk_size', 'tf_legacy_loss',
  'use_bfloat16', 'projection_dim', 'text_config', 'vision_config', 'logit_scale_init_value', 'text_config_dict',
  'vision_config_dict', 'output_past',
]);

export function readClipVisionConfig(dir: string): ClipVisionConfig {
  const file = join(dir, 'config.json');
  if (!existsSync(file)) throw new EngineError(`${dir}: not a vision tower folder (no config.json)`);
  const top = readJsonObject(file);
  const modelType = top.model_type;
  let v: Record<string, unknown>;
  let where: string;
  if (modelType === 'clip') {
    const nested = top.vision_config ?? {};
    if (typeof nested !== 'object' || nested === null || Array.isArray(nested)) throw new EngineError(`${file}: field "vision_config" must be an object`);
    v = nested as Record<string, unknown>;
    where = `${file}: vision_config`;
  } else if (modelType === 'clip_vision_model') {
    v = top;
    where = file;
  } else {
    throw new EngineError(
      `${file}: field "model_type" is ${JSON.stringify(modelType)}; a vision tower must be a CLIP folder ("clip" or "clip_vision_model"). ` +
        'Other vision families (SigLIP, EVA, DINO, ...) are not implemented',
    );
  }
  for (const key of Object.keys(v)) {
    if (!IGNORED.has(key) && !(key in DEFAULTS) && !key.startsWith('_')) throw new EngineError(`${where}: field "${key}" (${JSON.stringify(v[key])}) is not implemented by the engine's CLIP vision tower`);
  }
  const int = (key: keyof typeof DEFAULTS, min = 1): number => {
    const value = v[key] ?? DEFAULTS[key];
    if (!Number.isInteger(value) || (value as number) < min) throw new EngineError(`${where}: field "${key}" must be an integer >= ${min}, got ${JSON.stringify(value)}`);
    return value as number;
  };
  const hiddenSize = int('hidden_size');
  const numHeads = int('num_attention_heads');
  if (hiddenSize % numHeads !== 0) throw new EngineError(`${where}: hidden_size ${hiddenSize} is not a multiple of num_attention_heads ${numHeads}`);
  const imageSize = int('image_size');
  const patchSize = int('patch_size');
  if (imageSize % patchSize !== 0) throw new EngineError(`${where}: image_size ${imageSize} is not a multiple of patch_size ${patchSize}`);
  const act = v.hidden_act ?? DEFAULTS.hidden_act;
  if (act !== 'quick_gelu' && act !== 'gelu') throw new EngineError(`${where}: field "hidden_act" is ${JSON.stringify(act)}; the engine implements "quick_gelu" and "gelu"`);
  const eps = v.layer_norm_eps ?? DEFAULTS.layer_norm_eps;
  if (typeof eps !== 'number' || !(eps > 0)) throw new EngineError(`${where}: field "layer_norm_eps" must be a positive number, got ${JSON.stringify(eps)}`);
  const channels = int('num_channels');
  if (channels !== 3) throw new EngineError(`${where}: field "num_channels" is ${channels}; images are RGB (3 channels)`);
  // The projection width: the top-level projection_dim of CLIPModel, the flat one of ...WithProjection.
  const projection = modelType === 'clip' ? (top.projection_dim ?? DEFAULTS.projection_dim) : (v.projection_dim ?? DEFAULTS.projection_dim);
  if (!Number.isInteger(projection) || (projection as number) < 1) throw new EngineError(`${file}: field "projection_dim" must be a positive integer, got ${JSON.stringify(projection)}`);
  return {
    modelType,
    hiddenSize,
    intermediateSize: int('intermediate_size'),
    numLayers: int('num_hidden_layers'),
    numHeads,
    headDim: hiddenSize / numHeads,
    imageSize,
    patchSize,
    numChannels: channels,
    layerNormEps: eps,
    activation: act,
    projectionDim: projection as number, // set to null by the loader when the weights have no visual_projection
  };
}

const RESAMPLE: Record<number, Resample> = { 0: 'nearest', 1: 'lanczos', 2: 'bilinear', 3: 'bicubic' };

/** preprocessor_config.json as CLIPImageProcessor reads it; CLIP's defaults at the tower's size without one. */
export function readClipPreprocess(dir: string, config: ClipVisionConfig): ClipPreprocess {
  const file = join(dir, 'preprocessor_config.json');
  const defaults: ClipPreprocess = {
    doResize: true, shortestEdge: config.imageSize, resample: 'bicubic', doCenterCrop: true, cropHeight: config.imageSize, cropWidth: config.imageSize,
    doRescale: true, rescaleFactor: 1 / 255, doNormalize: true, mean: CLIP_MEAN, std: CLIP_STD, doConvertRgb: true,
  };
  if (!existsSync(file)) return defaults;
  const p = readJsonObject(file);
  const bool = (key: string, fallback: boolean): boolean => {
    const value = p[key] ?? fallback;
    if (typeof value !== 'boolean') throw new EngineError(`${file}: field "${key}" must be true or false, got ${JSON.stringify(value)}`);
    return value;
  };
  const num = (value: unknown, key: string): number => {
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new EngineError(`${file}: field "${key}" must be a positive number, got ${JSON.stringify(value)}`);
    return value;
  };
  const size = p.size ?? { shortest_edge: config.imageSize };
  let shortestEdge: number;
  if (typeof size === 'number') shortestEdge = num(size, 'size');
  else if (typeof size === 'object' && size !== null && 'shortest_edge' in size) shortestEdge = num((size as Record<string, unknown>).shortest_edge, 'size.shortest_edge');
  else throw new EngineError(`${file}: field "size" must be a number or {"shortest_edge": N} (a fixed {height, width} resize is not CLIP's), got ${JSON.stringify(size)}`);
  const crop = p.crop_size ?? { height: config.imageSize, width: config.imageSize };
  let cropHeight: number;
  let cropWidth: number;
  if (typeof crop === 'number') cropHeight = cropWidth = num(crop, 'crop_size');
  else if (typeof crop === 'object' && crop !== null && 'height' in crop && 'width' in crop) {
    cropHeight = num((crop as Record<string, unknown>).height, 'crop_size.height');
    cropWidth = num((crop as Record<string, unknown>).width, 'crop_size.width');
  } else throw new EngineError(`${file}: field "crop_size" must be a number or {"height", "width"}, got ${JSON.stringify(crop)}`);
  const resampleCode = p.resample ?? 3;
  const resample = RESAMPLE[resampleCode as number];
  if (!resample) throw new EngineError(`${file}: field "resample" is ${JSON.stringify(resampleCode)}; the engine resizes with 0 (nearest), 1 (lanczos), 2 (bilinear) or 3 (bicubic)`);
  const triple = (key: string, fallback: [number, number, number]): [number, number, number] => {
    const value = p[key] ?? fallback;
    if (!Array.isArray(value) || value.length !== 3 || value.some((x) => typeof x !== 'number' || !Number.isFinite(x))) {
      throw new EngineError(`${file}: field "${key}" must be three numbers (R, G, B), got ${JSON.stringify(value)}`);
    }
    return value as [number, number, number];
  };
  const std = triple('image_std', CLIP_STD);
  if (std.some((x) => x <= 0)) throw new EngineError(`${file}: field "image_std" must be positive`);
  const doCenterCrop = bool('do_center_crop', true);
  const doResize = bool('do_resize', true);
  if (!doCenterCrop && !doResize) throw new EngineError(`${file}: do_resize and do_center_crop are both false: images of any size would reach a tower made for ${config.imageSize} px`);
  const out: ClipPreprocess = {
    doResize, shortestEdge, resample, doCenterCrop, cropHeight, cropWidth,
    doRescale: bool('do_rescale', true), rescaleFactor: p.rescale_factor === undefined ? 1 / 255 : num(p.rescale_factor, 'rescale_factor'),
    doNormalize: bool('do_normalize', true), mean: triple('image_mean', CLIP_MEAN), std, doConvertRgb: bool('do_convert_rgb', true),
  };
  if (out.doCenterCrop && (out.cropHeight !== config.imageSize || out.cropWidth !== config.imageSize)) {
    throw new EngineError(`${file}: crop_size ${out.cropHeight}x${out.cropWidth} differs from the tower's image_size ${config.imageSize} (its position embeddings cover ${config.imageSize} px)`);
  }
  return out;
}
