// Adapter files: our own folder format, and PEFT's adaption-prompt format (import and export).
//
// Ours: adapter_config.json (format version, method, K, layers, gate mode, base-model fingerprint,
// recipe, tokenizer hash) + adapter_model.safetensors with `layers.{i}.prompt` [K, dim] and
// `layers.{i}.gate` [nHeads] (or [1] for per-layer gates).
// PEFT: adapter_config.json with peft_type ADAPTION_PROMPT, adapter_len, adapter_layers (the top L),
// and tensors `base_model.model.model.layers.{i}.self_attn.adaption_prompt` [1, K, dim] and
// `...adaption_gate` [1]: one ungated-by-tanh scalar per layer, i.e. our `per-layer` mode.

import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { type Adapter, type AdapterSpec, GATE_MODES, type GateMode, gateSize, makeAdapter, namedAdapterVariables, topLayers } from './adapter.js';
import { type LlamaConfig, requirePlainLlama } from './config.js';
import { PROMPT_TEMPLATES, type PromptTemplate } from './data.js';
import { EngineError } from './errors.js';
import { type ImageProjection, type ImagePromptSpec, makeImageProjection, PROJECTION_KEYS, projectionShapes, validateImagePromptSpec } from './image-prompt.js';
import type { LoadedModel } from './load.js';
import { HF_MODULE_OF, type Lora, LORA_TARGETS, type LoraSpec, type LoraTarget, makeLora, namedLoraVariables } from './lora.js';
import { firstNonFinite, SafetensorsFile, writeSafetensors } from './safetensors.js';

export const ADAPTER_FORMAT = 'adapter-studio.llama-adapter';
export const LORA_FORMAT = 'adapter-studio.lora';
export const ADAPTER_FORMAT_VERSION = 1;
const CONFIG_FILE = 'adapter_config.json';
const WEIGHTS_FILE = 'adapter_model.safetensors';

export interface AdapterMeta {
  baseFingerprint: string;
  baseModelPath?: string;
  tokenizerHash?: string | null;
  recipe?: unknown;
  /** With a validation set (recipe.valSetSize): what was held out and which evaluated step's weights these are. */
  validation?: { examples: number; evalSteps: number; bestStep: number; bestValLoss: number };
}

interface AdapterConfigFile extends AdapterMeta {
  format: string;
  formatVersion: number;
  method: 'adapter';
  adapterLen: number;
  layers: number[];
  gateMode: GateMode;
  dim: number;
  nHeads: number;
  /** A multi-modal adapter's image projection: the tower it was trained on, the feature and the shape. */
  vision?: ImagePromptSpec;
}

function writeJsonAtomic(path: string, value: unknown): void {
  writeFileSync(`${path}.tmp`, JSON.stringify(value, null, 2) + '\n');
  renameSync(`${path}.tmp`, path);
}

async function tensorData(t: tf.Tensor): Promise<Float32Array> {
  return new Float32Array(await t.data()); // copy: some backends hand out views of their own memory
}

export async function saveAdapter(dir: string, adapter: Adapter, c: LlamaConfig, meta: AdapterMeta): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const tensors = [];
  for (const [name, v] of namedAdapterVariables(adapter)) tensors.push({ name, shape: v.shape, data: await tensorData(v) });
  const config: AdapterConfigFile = {
    format: ADAPTER_FORMAT,
    formatVersion: ADAPTER_FORMAT_VERSION,
    method: 'adapter',
    adapterLen: adapter.spec.adapterLen,
    layers: adapter.spec.layers,
    gateMode: adapter.spec.gateMode,
    dim: c.dim,
    nHeads: c.nHeads,
    ...(adapter.image ? { vision: adapter.image.spec } : {}),
    ...meta,
  };
  // Weights first, config last: a folder with a config always has the weights it describes.
  writeSafetensors(join(dir, WEIGHTS_FILE), tensors, { format: ADAPTER_FORMAT });
  writeJsonAtomic(join(dir, CONFIG_FILE), config);
}

function readJson(file: string): Record<string, unknown> {
  if (!existsSync(file)) throw new EngineError(`${file}: not found (an adapter folder holds ${CONFIG_FILE} and ${WEIGHTS_FILE})`);
  try {
    const v = JSON.parse(readFileSync(file, 'utf8'));
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('expected a JSON object');
    return v;
  } catch (e) {
    throw new EngineError(`${file}: invalid JSON (${(e as Error).message})`);
  }
}

export interface LoadAdapterOptions {
  /** Override the gate mode recorded in the file (e.g. an official checkpoint's raw-gate inference form). */
  gateMode?: GateMode;
}

/** Load our format or PEFT's onto `model`, checking that it was made for this base model. */
export function loadAdapter(dir: string, model: LoadedModel, opts: LoadAdapterOptions = {}): Adapter {
  const cfgFile = join(dir, CONFIG_FILE);
  const cfg = readJson(cfgFile);
  if (cfg.peft_type !== undefined) return loadPeftAdapter(dir, cfg, model);
  if (cfg.format !== ADAPTER_FORMAT) {
    throw new EngineError(`${cfgFile}: field "format" is ${JSON.stringify(cfg.format)}; expected "${ADAPTER_FORMAT}" or a PEFT adapter`);
  }
  if (cfg.formatVersion !== ADAPTER_FORMAT_VERSION) {
    throw new EngineError(`${cfgFile}: field "formatVersion" is ${cfg.formatVersion}; this version of Adapter Studio reads version ${ADAPTER_FORMAT_VERSION}`);
  }
  const c = model.config;
  if (cfg.baseFingerprint !== model.fingerprint) {
    throw new EngineError(
      `${dir}: this adapter was trained on a different base model (fingerprint ${cfg.baseFingerprint}` +
        `${cfg.baseModelPath ? `, ${cfg.baseModelPath}` : ''}) than ${model.dir} (fingerprint ${model.fingerprint})`,
    );
  }
  // Fields the weights alone would not catch are checked by name too.
  if (cfg.method !== undefined && cfg.method !== 'adapter') throw new EngineError(`${cfgFile}: field "method" is ${JSON.stringify(cfg.method)}; an adapter folder of this format holds "adapter"`);
  if (cfg.dim !== undefined && cfg.dim !== c.dim) throw new EngineError(`${cfgFile}: field "dim" is ${JSON.stringify(cfg.dim)}, but the model's hidden size is ${c.dim}`);
  const gateMode = (opts.gateMode ?? cfg.gateMode) as GateMode;
  if (!GATE_MODES.includes(gateMode)) throw new EngineError(`${cfgFile}: field "gateMode" must be one of ${GATE_MODES.join(', ')}`);
  const spec: AdapterSpec = { adapterLen: cfg.adapterLen as number, layers: cfg.layers as number[], gateMode };
  const vision = cfg.vision === undefined ? null : readVisionSpec(cfg.vision, cfgFile);
  const file = SafetensorsFile.open(join(dir, WEIGHTS_FILE));
  try {
    const projection = vision ? readProjection(file, vision, c.dim) : null;
    return buildAdapter(spec, c, (layer) => ({
      prompt: readChecked(file, `layers.${layer}.prompt`, [spec.adapterLen, c.dim]),
      gate: readChecked(file, `layers.${layer}.gate`, [gateSize(c, cfg.gateMode as GateMode)]),
    }), projection);
  } finally {
    file.close();
  }
}

function readVisionSpec(value: unknown, cfgFile: string): ImagePromptSpec {
  const v = value as Partial<ImagePromptSpec> | null;
  const tower = v?.tower as Partial<ImagePromptSpec['tower']> | undefined;
  const feature = v?.feature as { kind?: unknown; layers?: unknown } | undefined;
  const ok =
    typeof v === 'object' && v !== null && typeof tower === 'object' && tower !== null &&
    typeof tower.fingerprint === 'string' && typeof tower.name === 'string' && Number.isInteger(tower.layers) &&
    typeof feature === 'object' && feature !== null &&
    (feature.kind === 'projected' || (feature.kind === 'class-tokens' && Array.isArray(feature.layers))) &&
    Number.isInteger(v.featureDim) && Number.isInteger(v.hidden);
  if (!ok) throw new EngineError(`${cfgFile}: field "vision" must hold tower {name, fingerprint, layers, ...}, feature, featureDim and hidden`);
  const spec = v as ImagePromptSpec;
  try {
    validateImagePromptSpec(spec);
  } catch (e) {
    throw new EngineError(`${cfgFile}: field "vision": ${(e as Error).message}`);
  }
  return spec;
}

/** The image projection's four tensors, all read and checked before any variable is made. */
function readProjection(file: SafetensorsFile, spec: ImagePromptSpec, dim: number): { spec: ImagePromptSpec; values: Map<string, Float32Array> } {
  const shapes = projectionShapes(spec, dim);
  return { spec, values: new Map(PROJECTION_KEYS.map((key) => [key, readChecked(file, key, shapes[key])])) };
}

function readChecked(file: SafetensorsFile, name: string, shape: number[]): Float32Array {
  if (!file.has(name)) throw new EngineError(`${file.path}: tensor "${name}" is missing`);
  const actual = file.info(name).shape;
  const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
  // PEFT's [1, K, dim] and our [K, dim] hold the same values: compare element counts and the last dim.
  if (size(actual) !== size(shape) || actual[actual.length - 1] !== shape[shape.length - 1]) {
    throw new EngineError(`${file.path}: tensor "${name}" has shape [${actual}], expected [${shape}] for this base model`);
  }
  return checkFinite(file.readF32(name), file.path, name);
}

/** A NaN or infinite value in a trained tensor poisons every answer (a NaN prompt gives empty output): refused. */
function checkFinite(values: Float32Array, path: string, name: string): Float32Array {
  const i = firstNonFinite(values);
  if (i >= 0) throw new EngineError(`${path}: tensor "${name}" holds ${values[i]} at index ${i}; a usable adapter holds finite numbers only`);
  return values;
}

function buildAdapter(
  spec: AdapterSpec,
  c: LlamaConfig,
  values: (layer: number) => { prompt: Float32Array; gate: Float32Array },
  projection: { spec: ImagePromptSpec; values: Map<string, Float32Array> } | null = null,
): Adapter {
  for (const layer of spec.layers) {
    if (!Number.isInteger(layer) || layer < 0 || layer >= c.nLayers) {
      throw new EngineError(`adapter layer ${layer} does not exist in a ${c.nLayers}-layer model`);
    }
  }
  // Read everything before making variables, so a bad file leaves nothing allocated.
  const read = new Map(spec.layers.map((layer) => {
    const v = values(layer);
    let gate = v.gate;
    if (gate.length !== gateSize(c, spec.gateMode)) {
      // A per-layer gate may be widened to per-head; the other way round loses information.
      if (gate.length === 1) gate = new Float32Array(gateSize(c, spec.gateMode)).fill(gate[0]);
      else throw new EngineError(`adapter gate of layer ${layer} has ${gate.length} values; gate mode ${spec.gateMode} needs ${gateSize(c, spec.gateMode)}`);
    }
    return [layer, { prompt: v.prompt, gate }];
  }));
  const image: ImageProjection | null = projection
    ? makeImageProjection(projection.spec, c.dim, (key, shape) => tf.tensor(projection.values.get(key)!, shape))
    : null;
  return makeAdapter(spec, (layer) => ({
    prompt: tf.tensor2d(read.get(layer)!.prompt, [spec.adapterLen, c.dim]),
    gate: tf.tensor1d(read.get(layer)!.gate),
  }), image);
}

const PEFT_PREFIX = 'base_model.model.model.layers';

function loadPeftAdapter(dir: string, cfg: Record<string, unknown>, model: LoadedModel): Adapter {
  const cfgFile = join(dir, CONFIG_FILE);
  // PEFT's adaption prompt supports llama (its o_proj applied to the prompt's output alone: with a bias, twice).
  requirePlainLlama(model.config, "PEFT's adaption prompt", true);
  if (cfg.peft_type !== 'ADAPTION_PROMPT') {
    throw new EngineError(`${cfgFile}: field "peft_type" is ${JSON.stringify(cfg.peft_type)}; only ADAPTION_PROMPT adapters can be used with LLaMA-Adapter`);
  }
  const c = model.config;
  const K = cfg.adapter_len;
  const L = cfg.adapter_layers;
  if (!Number.isInteger(K) || (K as number) < 1) throw new EngineError(`${cfgFile}: field "adapter_len" must be a positive integer`);
  if (!Number.isInteger(L) || (L as number) < 1 || (L as number) > c.nLayers) {
    throw new EngineError(`${cfgFile}: field "adapter_layers" must be between 1 and ${c.nLayers} for this base model, got ${L}`);
  }
  const weightsPath = ['adapter_model.safetensors', 'adapter_model.bin'].map((f) => join(dir, f)).find(existsSync);
  if (!weightsPath?.endsWith('.safetensors')) throw new EngineError(`${dir}: PEFT adapter has no adapter_model.safetensors (PyTorch .bin files are not read)`);
  const spec: AdapterSpec = { adapterLen: K as number, layers: topLayers(c.nLayers, L as number), gateMode: 'per-layer' };
  const file = SafetensorsFile.open(weightsPath);
  try {
    return buildAdapter(spec, c, (layer) => ({
      prompt: readChecked(file, `${PEFT_PREFIX}.${layer}.self_attn.adaption_prompt`, [1, spec.adapterLen, c.dim]),
      gate: readChecked(file, `${PEFT_PREFIX}.${layer}.self_attn.adaption_gate`, [1]),
    }));
  } finally {
    file.close();
  }
}

/** Write `adapter` in PEFT's format. Only per-layer gates on the top layers exist there. */
export async function exportPeftAdapter(dir: string, adapter: Adapter, c: LlamaConfig, baseModelPath = ''): Promise<void> {
  const { spec } = adapter;
  requirePlainLlama(c, "PEFT's adaption prompt", true);
  if (adapter.image) throw new EngineError("PEFT's adaption prompt has no image projection; a multi-modal adapter cannot be exported to it");
  if (spec.gateMode !== 'per-layer') {
    throw new EngineError(`PEFT's adaption prompt has one untransformed gate per layer; this adapter uses "${spec.gateMode}" gates and cannot be exported without changing its outputs`);
  }
  const top = topLayers(c.nLayers, spec.layers.length);
  if (top.some((l, i) => l !== spec.layers[i])) throw new EngineError(`PEFT adapts the top layers only; this adapter uses layers ${spec.layers.join(', ')}`);
  mkdirSync(dir, { recursive: true });
  const tensors = [];
  for (const [layer, l] of adapter.byLayer) {
    tensors.push({ name: `${PEFT_PREFIX}.${layer}.self_attn.adaption_prompt`, shape: [1, spec.adapterLen, c.dim], data: await tensorData(l.prompt) });
    tensors.push({ name: `${PEFT_PREFIX}.${layer}.self_attn.adaption_gate`, shape: [1], data: await tensorData(l.gate) });
  }
  writeSafetensors(join(dir, WEIGHTS_FILE), tensors, { format: 'pt' });
  writeJsonAtomic(join(dir, CONFIG_FILE), {
    peft_type: 'ADAPTION_PROMPT',
    task_type: 'CAUSAL_LM',
    adapter_len: spec.adapterLen,
    adapter_layers: spec.layers.length,
    target_modules: 'self_attn',
    base_model_name_or_path: baseModelPath,
    inference_mode: true,
  });
}

// ---------------------------------------------------------------------------------------------
// LoRA folders: adapter_config.json (format adapter-studio.lora) + `layers.{i}.{target}.a` [in, r]
// and `.b` [r, out] in the engine's [in, out] orientation. exportPeftLora writes PEFT's layout.

export async function saveLora(dir: string, lora: Lora, c: LlamaConfig, meta: AdapterMeta): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const tensors = [];
  for (const [key, v] of namedLoraVariables(lora)) tensors.push({ name: key, shape: v.shape as number[], data: await tensorData(v) });
  writeSafetensors(join(dir, WEIGHTS_FILE), tensors, { format: LORA_FORMAT });
  writeJsonAtomic(join(dir, CONFIG_FILE), { format: LORA_FORMAT, formatVersion: ADAPTER_FORMAT_VERSION, method: 'lora', ...lora.spec, dim: c.dim, ...meta });
}

export function loadLora(dir: string, model: LoadedModel): Lora {
  const cfgFile = join(dir, CONFIG_FILE);
  const cfg = readJson(cfgFile);
  if (cfg.format !== LORA_FORMAT) throw new EngineError(`${cfgFile}: field "format" is ${JSON.stringify(cfg.format)}; expected "${LORA_FORMAT}"`);
  if (cfg.baseFingerprint !== model.fingerprint) {
    throw new EngineError(`${dir}: this LoRA was trained on a different base model (fingerprint ${cfg.baseFingerprint}) than ${model.dir} (fingerprint ${model.fingerprint})`);
  }
  if (cfg.method !== undefined && cfg.method !== 'lora') throw new EngineError(`${cfgFile}: field "method" is ${JSON.stringify(cfg.method)}; a LoRA folder holds "lora"`);
  if (cfg.dim !== undefined && cfg.dim !== model.config.dim) throw new EngineError(`${cfgFile}: field "dim" is ${JSON.stringify(cfg.dim)}, but the model's hidden size is ${model.config.dim}`);
  if (!Number.isInteger(cfg.rank) || (cfg.rank as number) < 1) throw new EngineError(`${cfgFile}: field "rank" must be a positive integer, got ${JSON.stringify(cfg.rank)}`);
  if (typeof cfg.alpha !== 'number' || !Number.isFinite(cfg.alpha)) throw new EngineError(`${cfgFile}: field "alpha" must be a number, got ${JSON.stringify(cfg.alpha)}`);
  const unknown = Array.isArray(cfg.targets) ? cfg.targets.filter((t) => !(LORA_TARGETS as readonly unknown[]).includes(t)) : null;
  if (!unknown || unknown.length || !(cfg.targets as unknown[]).length) {
    throw new EngineError(`${cfgFile}: field "targets" must list some of ${LORA_TARGETS.join(', ')}${unknown?.length ? `; unknown: ${unknown.map((t) => JSON.stringify(t)).join(', ')}` : ''}`);
  }
  const spec: LoraSpec = { rank: cfg.rank as number, alpha: cfg.alpha as number, dropout: cfg.dropout as number, targets: cfg.targets as LoraTarget[] };
  const file = SafetensorsFile.open(join(dir, WEIGHTS_FILE));
  try {
    const values = new Map<string, Float32Array>();
    for (let layer = 0; layer < model.config.nLayers; layer++) {
      for (const target of spec.targets) {
        for (const part of ['a', 'b']) {
          const name = `layers.${layer}.${target}.${part}`;
          if (!file.has(name)) throw new EngineError(`${file.path}: tensor "${name}" is missing`);
          values.set(name, checkFinite(file.readF32(name), file.path, name));
        }
      }
    }
    return makeLora(model.config, model.weights.layers, spec, (layer, target, inDim, outDim) => ({
      a: tf.tensor2d(values.get(`layers.${layer}.${target}.a`)!, [inDim, spec.rank]),
      b: tf.tensor2d(values.get(`layers.${layer}.${target}.b`)!, [spec.rank, outDim]),
    }));
  } finally {
    file.close();
  }
}

/** PEFT's LoRA layout: lora_A [r, in] and lora_B [out, r] per module (transposed from ours). */
export async function exportPeftLora(dir: string, lora: Lora, baseModelPath = ''): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const tensors = [];
  for (const [layer, pairs] of lora.layers.entries()) {
    for (const [target, p] of pairs) {
      const prefix = `base_model.model.model.layers.${layer}.${HF_MODULE_OF[target]}`;
      for (const [part, t] of [['lora_A', p.a], ['lora_B', p.b]] as const) {
        const transposed = tf.transpose(t); // [in, r] -> [r, in]; [r, out] -> [out, r]
        tensors.push({ name: `${prefix}.${part}.weight`, shape: transposed.shape as number[], data: await tensorData(transposed) });
        transposed.dispose();
      }
    }
  }
  writeSafetensors(join(dir, WEIGHTS_FILE), tensors, { format: 'pt' });
  writeJsonAtomic(join(dir, CONFIG_FILE), {
    peft_type: 'LORA', task_type: 'CAUSAL_LM', r: lora.spec.rank, lora_alpha: lora.spec.alpha, lora_dropout: lora.spec.dropout,
    target_modules: lora.spec.targets.map((t) => HF_MODULE_OF[t].split('.')[1]), bias: 'none', base_model_name_or_path: baseModelPath, inference_mode: true,
  });
}

/** What a fine-tune folder attaches to its base model: an adapter (ours or PEFT's) or a LoRA. */
/** A loaded adapter or LoRA, with the prompt template its run trained with (prompts to it must use that one). */
export type FineTune = ({ kind: 'adapter'; adapter: Adapter } | { kind: 'lora'; lora: Lora }) & { promptTemplate: PromptTemplate };

/** The template recorded in a folder's recipe; a PEFT folder or an older recipe trained with Stanford Alpaca's. */
function promptTemplateOf(cfg: Record<string, unknown>, cfgFile: string): PromptTemplate {
  const t = (cfg.recipe as { promptTemplate?: unknown } | undefined)?.promptTemplate;
  if (t === undefined) return 'alpaca';
  if (!(PROMPT_TEMPLATES as readonly unknown[]).includes(t)) throw new EngineError(`${cfgFile}: field "recipe.promptTemplate" is ${JSON.stringify(t)}; expected one of ${PROMPT_TEMPLATES.join(', ')}`);
  return t as PromptTemplate;
}

export function loadFineTune(dir: string, model: LoadedModel, opts: LoadAdapterOptions = {}): FineTune {
  const cfg = readJson(join(dir, CONFIG_FILE));
  const promptTemplate = promptTemplateOf(cfg, join(dir, CONFIG_FILE));
  if (cfg.format === LORA_FORMAT) return { kind: 'lora', lora: loadLora(dir, model), promptTemplate };
  return { kind: 'adapter', adapter: loadAdapter(dir, model, opts), promptTemplate };
}
