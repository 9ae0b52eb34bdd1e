// Meta's original LLaMA release layout -> our Hugging Face layout folder.
//
//   params.json             dim, n_layers, n_heads, [n_kv_heads], norm_eps, [rope_theta], [use_scaled_rope], ...
//   consolidated.00.pth     one torch.save state dict per model-parallel rank (MP = 1 for 7B/8B,
//   consolidated.01.pth...  2 for 13B, 8 for 65B/70B)
//   tokenizer.model         SentencePiece (Llama 1/2) or tiktoken (Llama 3) vocabulary
//
// becomes config.json + model.safetensors (sharded with an index when large) + tokenizer.json, as
// transformers' convert_llama_weights_to_hf.py would write it:
//
// - Names: tok_embeddings -> model.embed_tokens, layers.i.attention.wq -> model.layers.i.self_attn.q_proj,
//   feed_forward.w1/w3/w2 -> mlp.gate_proj/up_proj/down_proj, attention_norm/ffn_norm ->
//   input_layernorm/post_attention_layernorm, norm -> model.norm, output -> lm_head.
// - Rows of wq and wk are permuted within each head: Meta's rotary embedding rotates interleaved
//   pairs (x0, x1), (x2, x3), ..., HF's the two halves (x_j, x_{j + d/2}). HF row h*d + c*d/2 + j is
//   Meta row h*d + 2j + c (c in {0, 1}, j < d/2). wk uses the KV head count.
// - Model-parallel ranks are concatenated along the dimension fairscale split: output rows (dim 0)
//   for the column-parallel wq, wk, wv, w1, w3 and output; input columns (dim 1) for the
//   row-parallel wo and w2 and for tok_embeddings (ParallelEmbedding splits the embedding width).
//   Norms are replicated on every rank; rank 0's copy is used.
//
// The tokenizer is not converted: a SentencePiece/tiktoken model -> tokenizer.json conversion that
// matches transformers token for token is a project of its own, so a tokenizer.json is required
// (the one from the matching Hugging Face repository, or `--tokenizer FILE`).

import fs from 'node:fs';
import path from 'node:path';
import { PLAIN_LLAMA, toHfConfig, type LlamaConfig, type Llama3RopeScaling } from '../engine/config.js';
import { EngineError } from '../engine/errors.js';
import type { WritableDtype } from '../engine/safetensors.js';
import type { TensorRecord, TorchDtype } from './pickle.js';
import { type PlannedTensor, plannedBytes, writeSafetensorsStreaming } from './safetensors-stream.js';
import { TorchFile } from './torch-file.js';

type Json = Record<string, unknown>;

/** Meta name suffix -> HF name suffix and the dimension model-parallel ranks split (null: replicated). */
const LAYER_TENSORS: Record<string, { hf: string; splitDim: 0 | 1 | null }> = {
  'attention.wq.weight': { hf: 'self_attn.q_proj.weight', splitDim: 0 },
  'attention.wk.weight': { hf: 'self_attn.k_proj.weight', splitDim: 0 },
  'attention.wv.weight': { hf: 'self_attn.v_proj.weight', splitDim: 0 },
  'attention.wo.weight': { hf: 'self_attn.o_proj.weight', splitDim: 1 },
  'feed_forward.w1.weight': { hf: 'mlp.gate_proj.weight', splitDim: 0 },
  'feed_forward.w2.weight': { hf: 'mlp.down_proj.weight', splitDim: 1 },
  'feed_forward.w3.weight': { hf: 'mlp.up_proj.weight', splitDim: 0 },
  'attention_norm.weight': { hf: 'input_layernorm.weight', splitDim: null },
  'ffn_norm.weight': { hf: 'post_attention_layernorm.weight', splitDim: null },
};
const TOP_TENSORS: Record<string, { hf: string; splitDim: 0 | 1 | null }> = {
  'tok_embeddings.weight': { hf: 'model.embed_tokens.weight', splitDim: 1 },
  'norm.weight': { hf: 'model.norm.weight', splitDim: null },
  'output.weight': { hf: 'lm_head.weight', splitDim: 0 },
};
/** In Llama 1 checkpoints; HF recomputes it from rope_theta. */
const IGNORED = new Set(['rope.freqs']);

/** Llama 3.1's RoPE scaling as Meta's code hard-codes it (factor 32 for Llama 3.2 1B/3B). */
const META_LLAMA3_SCALING: Omit<Llama3RopeScaling, 'type'> = { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 };

export type OutputDtype = 'source' | 'float32' | 'float16' | 'bfloat16';

export interface ConvertMetaOptions {
  /** tokenizer.json to use; default: srcDir/tokenizer.json. */
  tokenizer?: string;
  /** Write no tokenizer (the folder can then be used for forward passes, not for text). */
  noTokenizer?: boolean;
  /** max_position_embeddings; default: params.json's max_seq_len, else by model family (see notes). */
  maxPositions?: number;
  /** Override parts of the llama3 RoPE scaling used when params.json has use_scaled_rope. */
  ropeScaling?: Partial<Omit<Llama3RopeScaling, 'type'>>;
  bosId?: number;
  eosIds?: number[];
  dtype?: OutputDtype; // stored dtype of the output; 'source' (default) keeps the checkpoint's
  maxShardBytes?: number; // default 5 GB, as transformers' save_pretrained
  onProgress?: (done: number, total: number, tensor: string) => void;
}

export interface ConvertMetaResult {
  outDir: string;
  config: LlamaConfig;
  modelParallel: number;
  tensors: number;
  bytes: number;
  files: string[];
  tokenizer: 'copied' | 'none';
  notes: string[]; // assumptions the user may want to check (max positions, RoPE scaling)
}

interface SourceTensor {
  metaName: string;
  hfName: string;
  splitDim: 0 | 1 | null;
  parts: TensorRecord[]; // one per rank
  shape: number[]; // merged
  dtype: TorchDtype;
  permuteHeads: number | null; // wq: nHeads, wk: nKvHeads
}

/** Read params.json, checking the fields the conversion needs. */
export function readMetaParams(srcDir: string): Json {
  const file = path.join(srcDir, 'params.json');
  if (!fs.existsSync(file)) throw new EngineError(`${srcDir}: not a Meta LLaMA checkpoint folder (no params.json)`);
  let params: unknown;
  try {
    params = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new EngineError(`${file}: invalid JSON (${(e as Error).message})`);
  }
  if (typeof params !== 'object' || params === null || Array.isArray(params)) throw new EngineError(`${file}: expected a JSON object`);
  const p = params as Json;
  for (const key of ['dim', 'n_layers', 'n_heads']) {
    if (!Number.isInteger(p[key]) || (p[key] as number) <= 0) throw new EngineError(`${file}: field "${key}" must be a positive integer, got ${JSON.stringify(p[key] ?? null)}`);
  }
  if (p.n_kv_heads !== undefined && p.n_kv_heads !== null && (!Number.isInteger(p.n_kv_heads) || (p.n_heads as number) % (p.n_kv_heads as number) !== 0)) {
    throw new EngineError(`${file}: field "n_kv_heads" must be an integer dividing n_heads (${p.n_heads}), got ${JSON.stringify(p.n_kv_heads)}`);
  }
  if ((p.dim as number) % (p.n_heads as number) !== 0) throw new EngineError(`${file}: field "dim" (${p.dim}) must be divisible by "n_heads" (${p.n_heads})`);
  for (const key of ['norm_eps', 'rope_theta']) {
    if (p[key] !== undefined && !(typeof p[key] === 'number' && (p[key] as number) > 0)) throw new EngineError(`${file}: field "${key}" must be a positive number, got ${JSON.stringify(p[key])}`);
  }
  return p;
}

/** consolidated.00.pth, consolidated.01.pth, ... in rank order; a gap is an error. */
export function metaShardFiles(srcDir: string): string[] {
  const names = fs.readdirSync(srcDir).filter((n) => /^consolidated\.\d+\.pth$/.test(n));
  if (names.length === 0) throw new EngineError(`${srcDir}: no consolidated.NN.pth weight files`);
  const ranks = names.map((n) => Number(/^consolidated\.(\d+)\.pth$/.exec(n)![1])).sort((a, b) => a - b);
  ranks.forEach((r, i) => {
    if (r !== i) throw new EngineError(`${srcDir}: model-parallel shard consolidated.${String(i).padStart(2, '0')}.pth is missing (found ranks ${ranks.join(', ')})`);
  });
  return ranks.map((r) => path.join(srcDir, `consolidated.${String(r).padStart(2, '0')}.pth`));
}

/** Convert a Meta-layout folder to an HF-layout folder at `outDir` (which must not exist or be empty). */
export function convertMetaCheckpoint(srcDir: string, outDir: string, opts: ConvertMetaOptions = {}): ConvertMetaResult {
  const params = readMetaParams(srcDir);
  const paramsFile = path.join(srcDir, 'params.json');
  const shardPaths = metaShardFiles(srcDir);
  if (fs.existsSync(outDir) && (!fs.statSync(outDir).isDirectory() || fs.readdirSync(outDir).length > 0)) {
    throw new EngineError(`${outDir} already exists and is not an empty folder; choose a new output folder`);
  }
  // The tokenizer is checked first: failing after minutes of conversion would waste them.
  const tokenizerFile = opts.noTokenizer ? null : findTokenizer(srcDir, opts.tokenizer);
  const shards = shardPaths.map((p) => TorchFile.open(p));
  try {
    const nLayers = params.n_layers as number;
    const nHeads = params.n_heads as number;
    const nKvHeads = (params.n_kv_heads as number | undefined) ?? nHeads;
    const sources = planTensors(shards, nLayers, nHeads, nKvHeads);
    const byMeta = new Map(sources.map((s) => [s.metaName, s]));
    const [vocabSize, dim] = byMeta.get('tok_embeddings.weight')!.shape;
    if (dim !== params.dim) throw new EngineError(`${paramsFile}: field "dim" is ${params.dim} but tok_embeddings.weight is [${vocabSize}, ${dim}] after merging ${shards.length} shard(s)`);
    const ffnDim = byMeta.get('layers.0.feed_forward.w1.weight')!.shape[0];
    const headDim = dim / nHeads;
    for (const s of sources) checkShape(s, { dim, ffnDim, vocabSize, qDim: nHeads * headDim, kvDim: nKvHeads * headDim });

    const notes: string[] = [];
    const ropeTheta = (params.rope_theta as number | undefined) ?? 10000;
    let ropeScaling: Llama3RopeScaling | null = null;
    if (params.use_scaled_rope === true) {
      const factor = (params.rope_scaling_factor as number | undefined) ?? opts.ropeScaling?.factor;
      ropeScaling = { type: 'llama3', ...META_LLAMA3_SCALING, ...opts.ropeScaling, ...(factor !== undefined ? { factor } : {}) };
      if (factor === undefined) notes.push(`RoPE scaling factor ${ropeScaling.factor} assumed (Llama 3.1); Llama 3.2 1B/3B use 32 (--rope-scaling-factor 32)`);
    }
    const maxPositions = opts.maxPositions ?? (params.max_seq_len as number | undefined) ?? defaultMaxPositions(params, ropeScaling, notes);
    const tokenizer = tokenizerFile ? readTokenizerIds(tokenizerFile, vocabSize) : null;
    const bosId = opts.bosId ?? tokenizer?.bosId ?? null;
    const eosIds = opts.eosIds ?? tokenizer?.eosIds ?? [];
    if (!tokenizerFile && opts.eosIds === undefined) notes.push('no tokenizer: config.json names no BOS/EOS tokens (pass --bos-id / --eos-id)');
    for (const id of [...(bosId === null ? [] : [bosId]), ...eosIds]) {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new EngineError(`special token id ${id} is outside the vocabulary (${vocabSize} embedding rows)`);
    }
    const config: LlamaConfig = {
      ...PLAIN_LLAMA,
      vocabSize,
      dim,
      ffnDim,
      nLayers,
      nHeads,
      nKvHeads,
      headDim,
      normEps: (params.norm_eps as number | undefined) ?? 1e-5,
      ropeTheta,
      ropeScaling,
      maxPositions,
      tieEmbeddings: false,
      bosId,
      eosIds,
    };

    const outDtype = (s: SourceTensor): WritableDtype => {
      const want = opts.dtype ?? 'source';
      const d = want === 'source' ? s.dtype : want;
      if (d === 'float16') return 'F16';
      if (d === 'bfloat16') return 'BF16';
      if (d === 'float32' || d === 'float64') return 'F32';
      throw new EngineError(`${shardPaths[0]}: tensor "${s.metaName}" is stored as ${s.dtype}, not a float type`);
    };
    const planned = sources.map((s) => ({ name: s.hfName, shape: s.shape, dtype: outDtype(s) }));
    const groups = shardGroups(planned, opts.maxShardBytes ?? 5e9);

    const parent = path.dirname(path.resolve(outDir));
    fs.mkdirSync(parent, { recursive: true });
    const staging = fs.mkdtempSync(path.join(parent, `.${path.basename(outDir)}.partial-`));
    try {
      let done = 0;
      const bySource = new Map(sources.map((s) => [s.hfName, s]));
      const files: string[] = [];
      const weightMap: Record<string, string> = {};
      groups.forEach((group, i) => {
        const file = groups.length === 1 ? 'model.safetensors' : `model-${String(i + 1).padStart(5, '0')}-of-${String(groups.length).padStart(5, '0')}.safetensors`;
        writeSafetensorsStreaming(path.join(staging, file), group, (t: PlannedTensor) => {
          const values = mergeTensor(shards, bySource.get(t.name)!);
          opts.onProgress?.(++done, planned.length, t.name);
          return values;
        });
        files.push(file);
        for (const t of group) weightMap[t.name] = file;
      });
      const total = planned.reduce((n, t) => n + plannedBytes(t), 0);
      if (groups.length > 1) {
        const sorted = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]]));
        writeJson(path.join(staging, 'model.safetensors.index.json'), { metadata: { total_size: total }, weight_map: sorted });
      }
      const hfConfig = { ...toHfConfig(config), torch_dtype: dtypeName(planned[0].dtype) };
      writeJson(path.join(staging, 'config.json'), hfConfig);
      writeJson(path.join(staging, 'generation_config.json'), { bos_token_id: bosId, eos_token_id: eosIds.length === 1 ? eosIds[0] : eosIds });
      if (tokenizerFile) {
        fs.copyFileSync(tokenizerFile, path.join(staging, 'tokenizer.json'));
        writeJson(path.join(staging, 'tokenizer_config.json'), {
          tokenizer_class: 'PreTrainedTokenizerFast',
          bos_token: tokenizer!.bosToken,
          eos_token: tokenizer!.eosToken,
          model_max_length: maxPositions,
        });
      }
      if (fs.existsSync(outDir)) fs.rmdirSync(outDir); // empty, checked above
      fs.renameSync(staging, outDir);
      return {
        outDir,
        config,
        modelParallel: shards.length,
        tensors: planned.length,
        bytes: total,
        files,
        tokenizer: tokenizerFile ? 'copied' : 'none',
        notes,
      };
    } catch (e) {
      fs.rmSync(staging, { recursive: true, force: true });
      throw e;
    }
  } finally {
    for (const s of shards) s.close();
  }
}

function writeJson(file: string, value: unknown): void {
  fs.writeFileSync(file, JSON.stringify(value, null, 2) + '\n');
}

function dtypeName(d: WritableDtype): string {
  return d === 'F16' ? 'float16' : d === 'BF16' ? 'bfloat16' : 'float32';
}

function defaultMaxPositions(params: Json, scaling: Llama3RopeScaling | null, notes: string[]): number {
  // params.json does not record the context length; the families differ in rope_theta and norm_eps.
  let guess: number;
  let family: string;
  if (scaling) [guess, family] = [131072, 'Llama 3.1+'];
  else if (params.rope_theta === 500000) [guess, family] = [8192, 'Llama 3'];
  else if (params.norm_eps === 1e-5) [guess, family] = [4096, 'Llama 2'];
  else [guess, family] = [2048, 'Llama 1'];
  notes.push(`max_position_embeddings ${guess} assumed (${family}); pass --max-positions to change it`);
  return guess;
}

function planTensors(shards: TorchFile[], nLayers: number, nHeads: number, nKvHeads: number): SourceTensor[] {
  const perShard = shards.map((s) => {
    const t = s.tensors();
    if (t.size === 0) throw new EngineError(`${s.path}: holds no tensors`);
    return t;
  });
  const expected = new Map<string, { hf: string; splitDim: 0 | 1 | null }>();
  for (const [name, v] of Object.entries(TOP_TENSORS)) expected.set(name, v);
  for (let i = 0; i < nLayers; i++) {
    for (const [suffix, v] of Object.entries(LAYER_TENSORS)) expected.set(`layers.${i}.${suffix}`, { hf: `model.layers.${i}.${v.hf}`, splitDim: v.splitDim });
  }
  perShard.forEach((tensors, rank) => {
    const unknown = [...tensors.keys()].filter((k) => !expected.has(k) && !IGNORED.has(k));
    if (unknown.length > 0) {
      const deeper = unknown.find((k) => /^layers\.\d+\./.test(k));
      throw new EngineError(
        `${shards[rank].path}: unexpected tensor(s) ${unknown.slice(0, 5).map((k) => `"${k}"`).join(', ')}${unknown.length > 5 ? ', ...' : ''}` +
          (deeper ? ` (params.json says n_layers ${nLayers})` : ''),
      );
    }
    for (const name of expected.keys()) {
      if (!tensors.has(name)) throw new EngineError(`${shards[rank].path}: tensor "${name}" is missing`);
    }
  });
  return [...expected].map(([metaName, { hf, splitDim }]) => {
    const parts = perShard.map((t) => t.get(metaName)!);
    const first = parts[0];
    if (first.shape.length !== (splitDim === null ? 1 : 2)) {
      throw new EngineError(`${shards[0].path}: tensor "${metaName}" has shape [${first.shape}]; expected a ${splitDim === null ? 'vector' : 'matrix'}`);
    }
    parts.forEach((p, rank) => {
      const same = p.shape.length === first.shape.length && p.shape.every((d, i) => d === first.shape[i]);
      if (!same || p.storage.dtype !== first.storage.dtype) {
        throw new EngineError(`${shards[rank].path}: tensor "${metaName}" is ${p.storage.dtype} [${p.shape}] but rank 0 has ${first.storage.dtype} [${first.shape}]; model-parallel ranks must match`);
      }
    });
    const shape = [...first.shape];
    if (splitDim !== null) shape[splitDim] *= parts.length;
    const permuteHeads = metaName.endsWith('attention.wq.weight') ? nHeads : metaName.endsWith('attention.wk.weight') ? nKvHeads : null;
    return { metaName, hfName: hf, splitDim, parts: splitDim === null ? [first] : parts, shape, dtype: first.storage.dtype, permuteHeads };
  });
}

function checkShape(s: SourceTensor, d: { dim: number; ffnDim: number; vocabSize: number; qDim: number; kvDim: number }): void {
  const suffix = s.metaName.replace(/^layers\.\d+\./, '');
  const want: Record<string, number[]> = {
    'tok_embeddings.weight': [d.vocabSize, d.dim],
    'output.weight': [d.vocabSize, d.dim],
    'norm.weight': [d.dim],
    'attention.wq.weight': [d.qDim, d.dim],
    'attention.wk.weight': [d.kvDim, d.dim],
    'attention.wv.weight': [d.kvDim, d.dim],
    'attention.wo.weight': [d.dim, d.qDim],
    'feed_forward.w1.weight': [d.ffnDim, d.dim],
    'feed_forward.w3.weight': [d.ffnDim, d.dim],
    'feed_forward.w2.weight': [d.dim, d.ffnDim],
    'attention_norm.weight': [d.dim],
    'ffn_norm.weight': [d.dim],
  };
  const expected = want[suffix];
  if (expected.length !== s.shape.length || expected.some((v, i) => v !== s.shape[i])) {
    throw new EngineError(`tensor "${s.metaName}" merges to shape [${s.shape}], but params.json and the embedding imply [${expected}] (wrong n_heads / n_kv_heads, or shards from different models?)`);
  }
}

/** Split the planned tensors (in file order) into groups of at most maxBytes each. */
function shardGroups(planned: PlannedTensor[], maxBytes: number): PlannedTensor[][] {
  const sorted = [...planned].sort((x, y) => Buffer.compare(Buffer.from(x.name), Buffer.from(y.name)));
  const groups: PlannedTensor[][] = [[]];
  let size = 0;
  for (const t of sorted) {
    const bytes = plannedBytes(t);
    if (size > 0 && size + bytes > maxBytes) {
      groups.push([]);
      size = 0;
    }
    groups[groups.length - 1].push(t);
    size += bytes;
  }
  return groups;
}

/** One HF tensor: the ranks' parts concatenated, wq/wk rows permuted. -> row-major float32 */
function mergeTensor(shards: TorchFile[], s: SourceTensor): Float32Array {
  const pieces = s.parts.map((p, rank) => shards[rank].readF32(p, s.metaName));
  let merged: Float32Array;
  if (pieces.length === 1) merged = pieces[0];
  else if (s.splitDim === 0) {
    merged = new Float32Array(s.shape[0] * s.shape[1]);
    let at = 0;
    for (const piece of pieces) {
      merged.set(piece, at);
      at += piece.length;
    }
  } else {
    // dim 1: row r of the result is row r of every rank, side by side.
    const [rows, cols] = s.shape;
    const width = cols / pieces.length;
    merged = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      pieces.forEach((piece, k) => merged.set(piece.subarray(r * width, (r + 1) * width), r * cols + k * width));
    }
  }
  return s.permuteHeads === null ? merged : permuteRotaryRows(merged, s.shape[0], s.shape[1], s.permuteHeads);
}

/**
 * Meta's interleaved rotary row order -> HF's rotate-half order, per head:
 * out row h*d + c*(d/2) + j = in row h*d + 2j + c. w: [heads * d, inDim] row-major.
 */
export function permuteRotaryRows(w: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const d = rows / heads;
  if (!Number.isInteger(d) || d % 2 !== 0) throw new EngineError(`cannot permute ${rows} rows into ${heads} heads of even size`);
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < d / 2; j++) {
      for (let c = 0; c < 2; c++) {
        const from = (h * d + 2 * j + c) * cols;
        out.set(w.subarray(from, from + cols), (h * d + c * (d / 2) + j) * cols);
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

function findTokenizer(srcDir: string, explicit: string | undefined): string {
  if (explicit !== undefined) {
    if (!fs.existsSync(explicit)) throw new EngineError(`tokenizer ${explicit}: file not found`);
    return explicit;
  }
  const json = path.join(srcDir, 'tokenizer.json');
  if (fs.existsSync(json)) return json;
  const spm = path.join(srcDir, 'tokenizer.model');
  const parentSpm = path.join(path.dirname(path.resolve(srcDir)), 'tokenizer.model'); // Llama 1 keeps it beside the size folders
  const found = [spm, parentSpm].find((f) => fs.existsSync(f));
  throw new EngineError(
    `${srcDir}: no tokenizer.json` +
      (found ? ` (found ${found}: converting a SentencePiece/tiktoken tokenizer.model is not supported)` : '') +
      '. Pass --tokenizer with the tokenizer.json of the matching Hugging Face model (e.g. from its hub repository), or --no-tokenizer to convert the weights alone.',
  );
}

interface TokenizerIds {
  bosId: number | null;
  eosIds: number[];
  bosToken: string | null;
  eosToken: string | null;
}

/** BOS/EOS from the tokenizer's special tokens (<s> </s>, or Llama 3's <|begin_of_text|> <|end_of_text|> <|eot_id|>). */
function readTokenizerIds(file: string, vocabSize: number): TokenizerIds {
  let json: Json;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new EngineError(`${file}: invalid JSON (${(e as Error).message})`);
  }
  const ids = new Map<string, number>();
  const vocab = (json.model as Json | undefined)?.vocab;
  if (vocab && typeof vocab === 'object' && !Array.isArray(vocab)) for (const [t, id] of Object.entries(vocab as Json)) ids.set(t, id as number);
  const added = Array.isArray(json.added_tokens) ? (json.added_tokens as { id: number; content: string }[]) : [];
  for (const t of added) ids.set(t.content, t.id);
  if (ids.size === 0) throw new EngineError(`${file}: not a tokenizer.json (no model.vocab and no added_tokens)`);
  const maxId = Math.max(...ids.values());
  if (maxId >= vocabSize) throw new EngineError(`${file}: the tokenizer has token id ${maxId}, but the model's embedding has only ${vocabSize} rows (a tokenizer of another model?)`);
  const pick = (names: string[]) => names.find((n) => ids.has(n)) ?? null;
  const bosToken = pick(['<s>', '<|begin_of_text|>']);
  const eosToken = pick(['</s>', '<|end_of_text|>']);
  const eosIds = [eosToken, ids.has('<|eot_id|>') ? '<|eot_id|>' : null].filter((t): t is string => t !== null).map((t) => ids.get(t)!);
  return { bosId: bosToken === null ? null : ids.get(bosToken)!, eosIds, bosToken, eosToken };
}
