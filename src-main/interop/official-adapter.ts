// The official LLaMA-Adapter v1 checkpoint (github.com/OpenGVLab/LLaMA-Adapter, alpaca_finetuning_v1),
// imported into and exported from our adapter format.
//
// The file is a torch.save of a flat dict (extract_adapter_from_checkpoint.py writes one):
//   layers.{i}.attention.gate  [1, nHeads, 1, 1]  for every layer i (zero where no prompt is used)
//   adapter_query.weight       [L * K, dim]       the prompts of the top L layers, K rows each,
//                                                 bottom adapted layer first: rows j*K..(j+1)*K-1
//                                                 belong to layer n - L + j (Transformer.forward
//                                                 reshapes it to [L, K, dim] and walks layers[-L:])
// A full training checkpoint (checkpoint-N.pth: {'model': state_dict, 'optimizer', 'epoch', 'args'})
// holds the same tensors under 'model.'; its `args` Namespace gives adapter_len.
//
// The gate: training (alpaca_finetuning_v1/llama/model.py) scales the prompt attention by
// tanh(gate); the repository's inference code (llama/model.py) multiplies by the raw gate. The file
// does not say which form it is in, so the caller chooses: 'tanh' (our per-head-tanh, the default,
// right for checkpoints from the training code) or 'raw' (our per-head).
//
// Layout: Meta's checkpoints interleave the two halves of each rotary pair in wq/wk, HF's do not;
// the conversion permutes rows within each head only, so head order, the residual stream (what a
// prompt lives in) and the values are the same in both. The prompts and per-head gates carry over
// unchanged onto an HF-layout base model.

import * as tf from '@tensorflow/tfjs-core';
import { type Adapter, type AdapterSpec, type GateMode, makeAdapter, topLayers } from '../engine/adapter.js';
import { type LlamaConfig, requirePlainLlama } from '../engine/config.js';
import { EngineError } from '../engine/errors.js';
import type { LoadedModel } from '../engine/load.js';
import type { TensorRecord, TorchDtype } from './pickle.js';
import { pyAttribute, type SavedFloatDtype, type TensorToSave, TorchFile, writeTorchFile } from './torch-file.js';

/** How the stored gate becomes the factor on the prompt attention. */
export type OfficialGateForm = 'tanh' | 'raw';
export const OFFICIAL_GATE_FORMS: readonly OfficialGateForm[] = ['tanh', 'raw'];

/** The official code's default prompt length (ModelArgs.adapter_len). */
export const OFFICIAL_DEFAULT_ADAPTER_LEN = 10;

const QUERY_KEY = 'adapter_query.weight';
const gateKey = (layer: number) => `layers.${layer}.attention.gate`;

/** Base-model tensors a full training checkpoint also holds (Meta names); read past, never loaded. */
const META_BASE_TENSOR = /^(tok_embeddings\.weight|norm\.weight|output\.weight|rope\.freqs|layers\.\d+\.(attention\.w[qkvo]\.weight|feed_forward\.w[123]\.weight|attention_norm\.weight|ffn_norm\.weight))$/;

export interface OfficialAdapterContents {
  adapterLen: number;
  /** Where K came from: the caller, the checkpoint's args, the pattern of non-zero gates, or the official default. */
  adapterLenSource: 'option' | 'checkpoint args' | 'gates' | 'default';
  layers: number[]; // the adapted layers, ascending (the top L)
  prompts: Map<number, Float32Array>; // layer -> [K * dim], row-major [K, dim]
  gates: Map<number, Float32Array>; // layer -> [nHeads], as stored
  dtype: TorchDtype; // adapter_query's stored dtype
  /** A full training checkpoint (with its `args`), rather than a flat release extract. */
  fromTrainingCheckpoint: boolean;
  warnings: string[];
}

export interface ReadOfficialOptions {
  adapterLen?: number;
}

/** Read an official v1 adapter file and check it against the base model's shapes. */
export function readOfficialAdapter(file: string, c: LlamaConfig, opts: ReadOfficialOptions = {}): OfficialAdapterContents {
  requirePlainLlama(c, 'the official LLaMA-Adapter checkpoint');
  const torchFile = TorchFile.open(file);
  try {
    const all = torchFile.tensors();
    const queryPath = [...all.keys()].find((k) => k === QUERY_KEY || k.endsWith(`.${QUERY_KEY}`));
    if (!queryPath) {
      const sample = [...all.keys()].slice(0, 5).join(', ') || 'none';
      throw new EngineError(`${file}: not a LLaMA-Adapter v1 checkpoint: no "${QUERY_KEY}" tensor (found ${all.size} tensors: ${sample}${all.size > 5 ? ', ...' : ''})`);
    }
    const prefix = queryPath.slice(0, queryPath.length - QUERY_KEY.length); // '' or 'model.' (or 'module.')
    const own = new Map([...all].filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k.slice(prefix.length), t]));
    const unknown = [...own.keys()].filter((k) => k !== QUERY_KEY && !/^layers\.\d+\.attention\.gate$/.test(k) && !META_BASE_TENSOR.test(k));
    if (unknown.length > 0) {
      throw new EngineError(
        `${file}: holds tensors a LLaMA-Adapter v1 checkpoint does not have (${unknown.slice(0, 5).map((k) => `"${prefix}${k}"`).join(', ')}` +
          `${unknown.length > 5 ? `, and ${unknown.length - 5} more` : ''}); LLaMA-Adapter V2 and multi-modal checkpoints add weights that this import cannot represent`,
      );
    }

    const query = own.get(QUERY_KEY)!;
    if (query.shape.length !== 2 || query.shape[1] !== c.dim) {
      throw new EngineError(`${file}: "${prefix}${QUERY_KEY}" has shape [${query.shape}]; the base model needs [L * K, ${c.dim}] (its hidden size is ${c.dim}: was this adapter trained on a different model size?)`);
    }
    const rows = query.shape[0];

    // Gates as stored, for every layer the file has one for.
    const gates = new Map<number, Float32Array>();
    for (const [k, t] of own) {
      const m = /^layers\.(\d+)\.attention\.gate$/.exec(k);
      if (!m) continue;
      const layer = Number(m[1]);
      if (layer >= c.nLayers) {
        throw new EngineError(`${file}: has a gate for layer ${layer} ("${prefix}${k}") but the base model has ${c.nLayers} layers (0-${c.nLayers - 1}): was it trained on a deeper model?`);
      }
      gates.set(layer, readGate(torchFile, t, `${prefix}${k}`, c));
    }

    const { adapterLen, source } = chooseAdapterLen(file, rows, c, gates, torchFile, opts);
    const L = rows / adapterLen;
    const layers = topLayers(c.nLayers, L);
    const adapted = new Set(layers);
    const warnings: string[] = [];
    for (const layer of layers) {
      if (!gates.has(layer)) throw new EngineError(`${file}: no gate "${prefix}${gateKey(layer)}" for adapted layer ${layer} (K=${adapterLen} makes the top ${L} layers adapted)`);
    }
    for (const [layer, g] of gates) {
      if (!adapted.has(layer) && g.some((v) => v !== 0)) {
        const hint = nonZeroTopCount(gates, c.nLayers);
        throw new EngineError(
          `${file}: layer ${layer} has a non-zero gate, but with K=${adapterLen} only layers ${layers[0]}-${layers[layers.length - 1]} get a prompt` +
            (hint && rows % hint === 0 ? `; the adapter length is probably ${rows / hint} (--adapter-len ${rows / hint})` : '; check --adapter-len'),
        );
      }
    }
    if (layers.every((l) => gates.get(l)!.every((v) => v === 0))) warnings.push('every gate is zero: this adapter does not change the model (an untrained checkpoint?)');

    const queryValues = torchFile.readF32(query, `${prefix}${QUERY_KEY}`); // [L * K, dim]
    const rowValues = adapterLen * c.dim;
    const prompts = new Map(layers.map((layer, j) => [layer, queryValues.slice(j * rowValues, (j + 1) * rowValues)]));
    for (const [layer, p] of prompts) {
      if (!p.every(Number.isFinite)) throw new EngineError(`${file}: the prompt of layer ${layer} contains NaN or infinite values`);
    }
    return {
      adapterLen,
      adapterLenSource: source,
      layers,
      prompts,
      gates: new Map(layers.map((l) => [l, gates.get(l)!])),
      dtype: query.storage.dtype,
      fromTrainingCheckpoint: pyAttribute(torchFile.root, 'args') !== undefined,
      warnings,
    };
  } finally {
    torchFile.close();
  }
}

function readGate(f: TorchFile, t: TensorRecord, name: string, c: LlamaConfig): Float32Array {
  const size = t.shape.reduce((a, b) => a * b, 1);
  // The official shape is [1, nHeads, 1, 1]; [nHeads] carries the same values.
  if (size !== c.nHeads || t.shape.filter((d) => d !== 1).length > 1) {
    throw new EngineError(`${f.path}: "${name}" has shape [${t.shape}]; the base model has ${c.nHeads} attention heads, so it must be [1, ${c.nHeads}, 1, 1]`);
  }
  const g = f.readF32(t, name);
  if (!g.every(Number.isFinite)) throw new EngineError(`${f.path}: "${name}" contains NaN or infinite values`);
  return g;
}

/** How many of the top layers, counted down from the last, have a non-zero gate (0 if none). */
function nonZeroTopCount(gates: Map<number, Float32Array>, nLayers: number): number {
  let n = 0;
  while (n < nLayers && gates.get(nLayers - 1 - n)?.some((v) => v !== 0)) n++;
  // Only a clean split counts: no non-zero gate below the run.
  for (let l = 0; l < nLayers - n; l++) if (gates.get(l)?.some((v) => v !== 0)) return 0;
  return n;
}

function chooseAdapterLen(
  file: string,
  rows: number,
  c: LlamaConfig,
  gates: Map<number, Float32Array>,
  f: TorchFile,
  opts: ReadOfficialOptions,
): { adapterLen: number; source: OfficialAdapterContents['adapterLenSource'] } {
  const check = (K: number, where: string) => {
    if (!Number.isInteger(K) || K < 1) throw new EngineError(`${where}: the adapter length must be a positive integer, got ${K}`);
    if (rows % K !== 0) throw new EngineError(`${file}: adapter_query.weight has ${rows} rows, which is not a multiple of the adapter length ${K} (${where})`);
    const L = rows / K;
    if (L > c.nLayers) throw new EngineError(`${file}: ${rows} prompt rows with K=${K} would adapt ${L} layers, but the base model has ${c.nLayers} (${where})`);
    return K;
  };
  if (opts.adapterLen !== undefined) return { adapterLen: check(opts.adapterLen, '--adapter-len'), source: 'option' };
  const argsLen = pyAttribute(pyAttribute(f.root, 'args'), 'adapter_len');
  if (typeof argsLen === 'number') return { adapterLen: check(argsLen, "the checkpoint's args.adapter_len"), source: 'checkpoint args' };
  // The layers whose gates were trained, when the file holds gates for every layer.
  const trained = nonZeroTopCount(gates, c.nLayers);
  if (trained > 0 && rows % trained === 0) return { adapterLen: check(rows / trained, 'the non-zero gates'), source: 'gates' };
  // Only the adapted layers' gates in the file: their count is L.
  const gateLayers = [...gates.keys()].sort((a, b) => a - b);
  const isTop = gateLayers.length > 0 && gateLayers.length < c.nLayers && gateLayers.every((l, i) => l === c.nLayers - gateLayers.length + i);
  if (isTop && rows % gateLayers.length === 0) return { adapterLen: check(rows / gateLayers.length, 'the layers that have gates'), source: 'gates' };
  if (rows % OFFICIAL_DEFAULT_ADAPTER_LEN === 0 && rows / OFFICIAL_DEFAULT_ADAPTER_LEN <= c.nLayers) {
    return { adapterLen: OFFICIAL_DEFAULT_ADAPTER_LEN, source: 'default' };
  }
  throw new EngineError(`${file}: cannot tell the adapter length K from ${rows} prompt rows (all gates are zero); pass --adapter-len`);
}

export interface ImportOfficialOptions extends ReadOfficialOptions {
  /**
   * 'tanh': the training code's form; 'raw': the repository's inference code (example.py). Default: 'tanh' for a
   * training checkpoint (it carries its args), 'raw' for a flat release extract such as
   * llama_adapter_len10_layer30_release.pth, which is meant for example.py (the repository's issue #39).
   */
  gateForm?: OfficialGateForm;
}

/** An official v1 file as an Adapter on `model` (per-head-tanh for 'tanh', per-head for 'raw'). */
export function importOfficialAdapter(
  file: string,
  model: LoadedModel,
  opts: ImportOfficialOptions = {},
): { adapter: Adapter; contents: OfficialAdapterContents; gateForm: OfficialGateForm; gateFormSource: 'option' | 'training checkpoint' | 'release extract' } {
  if (opts.gateForm !== undefined && !OFFICIAL_GATE_FORMS.includes(opts.gateForm)) throw new EngineError(`gate form must be one of ${OFFICIAL_GATE_FORMS.join(', ')}, got ${JSON.stringify(opts.gateForm)}`);
  const c = model.config;
  const contents = readOfficialAdapter(file, c, opts);
  const form: OfficialGateForm = opts.gateForm ?? (contents.fromTrainingCheckpoint ? 'tanh' : 'raw');
  const gateFormSource = opts.gateForm !== undefined ? 'option' : contents.fromTrainingCheckpoint ? 'training checkpoint' : 'release extract';
  const spec: AdapterSpec = { adapterLen: contents.adapterLen, layers: contents.layers, gateMode: form === 'tanh' ? 'per-head-tanh' : 'per-head' };
  const adapter = makeAdapter(spec, (layer) => ({
    prompt: tf.tensor2d(contents.prompts.get(layer)!, [spec.adapterLen, c.dim]),
    gate: tf.tensor1d(contents.gates.get(layer)!),
  }));
  return { adapter, contents, gateForm: form, gateFormSource };
}

export interface ExportOfficialOptions {
  gateForm?: OfficialGateForm; // default 'tanh'
  dtype?: SavedFloatDtype; // default float32, as the training code keeps adapter weights
}

/**
 * Write `adapter` as an official v1 file: gates for every layer (zero where unadapted, as
 * extract_adapter_from_checkpoint.py writes them) and adapter_query.weight. The gate values are
 * converted so that the chosen form gives the same factor as this adapter: 'tanh' stores
 * atanh(g) for raw gates (only possible for |g| < 1), 'raw' stores tanh(g) for tanh gates.
 */
export async function exportOfficialAdapter(file: string, adapter: Adapter, c: LlamaConfig, opts: ExportOfficialOptions = {}): Promise<void> {
  const form = opts.gateForm ?? 'tanh';
  requirePlainLlama(c, 'the official LLaMA-Adapter checkpoint');
  if (adapter.image) throw new EngineError("the official text adapter's checkpoint has no image projection; a multi-modal adapter cannot be exported to it");
  if (!OFFICIAL_GATE_FORMS.includes(form)) throw new EngineError(`gate form must be one of ${OFFICIAL_GATE_FORMS.join(', ')}, got ${JSON.stringify(form)}`);
  const { spec } = adapter;
  const top = topLayers(c.nLayers, spec.layers.length);
  if (top.some((l, i) => l !== spec.layers[i])) {
    throw new EngineError(`the official format adapts the top layers only; this adapter uses layers ${spec.layers.join(', ')}`);
  }
  const tensors: TensorToSave[] = [];
  const dtype = opts.dtype ?? 'float32';
  for (let layer = 0; layer < c.nLayers; layer++) {
    const l = adapter.byLayer.get(layer);
    const stored = l ? officialGate(new Float32Array(await l.gate.data()), spec.gateMode, form, c.nHeads, layer) : new Float32Array(c.nHeads);
    tensors.push({ name: gateKey(layer), shape: [1, c.nHeads, 1, 1], data: stored, dtype });
  }
  const query = new Float32Array(spec.layers.length * spec.adapterLen * c.dim); // [L * K, dim]
  for (const [j, layer] of spec.layers.entries()) query.set(await adapter.byLayer.get(layer)!.prompt.data(), j * spec.adapterLen * c.dim);
  tensors.push({ name: QUERY_KEY, shape: [spec.layers.length * spec.adapterLen, c.dim], data: query, dtype });
  writeTorchFile(file, tensors);
}

/** Our gate values -> the values the official form stores for the same effective factor. */
function officialGate(g: Float32Array, mode: GateMode, form: OfficialGateForm, nHeads: number, layer: number): Float32Array {
  const perHead = g.length === nHeads ? g : new Float32Array(nHeads).fill(g[0]); // a per-layer gate is the same for every head
  const isTanh = mode === 'per-head-tanh';
  if ((form === 'tanh') === isTanh) return Float32Array.from(perHead);
  if (form === 'raw') return perHead.map(Math.tanh);
  const outOfRange = perHead.findIndex((v) => !(Math.abs(v) < 1));
  if (outOfRange >= 0) {
    throw new EngineError(
      `layer ${layer}, head ${outOfRange}: gate ${perHead[outOfRange]} cannot be written in the tanh form (tanh only reaches (-1, 1)); export with the raw gate form instead`,
    );
  }
  return perHead.map(Math.atanh);
}
