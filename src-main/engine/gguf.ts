// Export a Hugging Face LLaMA folder to GGUF v3 (F32), the file format of llama.cpp and the tools built on it.
//
// What the file holds (ggml's GGUF spec, and what llama.cpp's convert_hf_to_gguf.py writes for LlamaForCausalLM):
// - metadata: general.* and llama.* hyper-parameters, and the tokenizer (tokenizer.ggml.*);
// - tensors under llama.cpp's names, each with ggml's dimension order (fastest first: HF's shape reversed);
// - q_proj / k_proj rows permuted back from HF's rotate-half layout to the interleaved pairs llama.cpp's RoPE
//   rotates: within each head, GGUF row 2i + a is HF row a * headDim / 2 + i (`permute` in convert_hf_to_gguf.py,
//   with the KV head count for k_proj);
// - Llama 3 RoPE scaling as the per-frequency factors tensor rope_freqs.weight.
//
// Tokenizers: a tokenizer.json BPE with byte fallback (Llama 1/2, SentencePiece-converted) becomes ggml's "llama"
// tokenizer, whose <0xXX> byte tokens llama.cpp needs; a byte-level BPE (GPT-2, Llama 3) becomes "gpt2" with its
// merges. Ids past the tokenizer's vocabulary up to the model's vocab size are filled with unused [PAD<id>] tokens.
//
// Tensors stream one at a time from the safetensors files into the output, written to a temporary file and renamed,
// so a failed export leaves nothing behind and memory stays at one tensor.

import { BLOCK_BYTES, QUANT_BLOCK, type QuantFormat, quantize } from './quant.js';
import fs from 'node:fs';
import path from 'node:path';
import { expectedWeights, type LlamaConfig, requirePlainLlama } from './config.js';
import { EngineError } from './errors.js';
import { readModelConfig } from './load.js';
import { inverseFrequencies } from './rope.js';
import { CheckpointReader, writeAtomically } from './safetensors.js';

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
const GGUF_VERSION = 3;
const ALIGNMENT = 32;
/** ggml's tensor types and the file types that name a file's (mostly) single weight type. */
const GGML_TYPE = { f32: 0, q4_0: 2, q8_0: 8 } as const;
const FILE_TYPE = { f32: 0, q4_0: 2, q8_0: 7 } as const; // ALL_F32, MOSTLY_Q4_0, MOSTLY_Q8_0
export type GgufWeightType = keyof typeof GGML_TYPE;
export const GGUF_WEIGHT_TYPES = Object.keys(GGML_TYPE) as GgufWeightType[];

// GGUF metadata value types.
const enum ValueType {
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
}

// llama.cpp's token types (llama_token_type).
const TokenType = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

type MetaValue =
  | { type: ValueType.UINT32 | ValueType.INT32 | ValueType.FLOAT32; value: number }
  | { type: ValueType.BOOL; value: boolean }
  | { type: ValueType.STRING; value: string }
  | { type: ValueType.ARRAY; items: ValueType.STRING; value: string[] }
  | { type: ValueType.ARRAY; items: ValueType.FLOAT32 | ValueType.INT32; value: number[] };

const u32 = (value: number): MetaValue => ({ type: ValueType.UINT32, value });
const f32 = (value: number): MetaValue => ({ type: ValueType.FLOAT32, value });
const str = (value: string): MetaValue => ({ type: ValueType.STRING, value });

export interface GgufTokenizer {
  model: 'llama' | 'gpt2';
  pre: string | null; // gpt2 pre-tokenizer name llama.cpp knows
  tokens: string[];
  scores: number[] | null;
  types: number[];
  merges: string[] | null;
  unkId: number | null;
  addBos: boolean;
}

export interface GgufExportResult {
  path: string;
  bytes: number;
  tensors: number;
  /** The matrices' storage: f32, or llama.cpp's Q8_0 / Q4_0 blocks (norms stay f32, as llama.cpp keeps them). */
  type: GgufWeightType;
  quantizedTensors: number;
  tokenizer: GgufTokenizer['model'];
  vocabSize: number;
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

interface TokenizerJson {
  model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[]; byte_fallback?: boolean; unk_token?: string | null };
  added_tokens?: { id: number; content: string; special?: boolean }[];
  pre_tokenizer?: unknown;
  post_processor?: unknown;
}

const LLAMA3_REGEX_START = "(?i:'s|'t|'re|'ve|'m|'ll|'d)";

/** The llama.cpp name of a byte-level pre-tokenizer: Llama 3's split regex, GPT-2's, or the default. */
function preTokenizerName(pre: unknown): string {
  const text = JSON.stringify(pre ?? null);
  if (text.includes(JSON.stringify(LLAMA3_REGEX_START).slice(1, -1))) return 'llama-bpe';
  if (/"type":"ByteLevel"[^}]*"use_regex":true/.test(text)) return 'gpt-2';
  return 'default';
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new EngineError(`${file}: ${(e as Error).message}`);
  }
}

/** Reads tokenizer.json (+ tokenizer_config.json) of `dir` into GGUF's tokenizer fields, padded to `vocabSize`. */
export function ggufTokenizer(dir: string, vocabSize: number): GgufTokenizer {
  const file = path.join(dir, 'tokenizer.json');
  if (!fs.existsSync(file)) throw new EngineError(`${dir}: no tokenizer.json; GGUF export needs the tokenizer`);
  const json = readJson(file) as TokenizerJson;
  const model = json.model;
  if (model?.type !== 'BPE' || typeof model.vocab !== 'object' || model.vocab === null) {
    throw new EngineError(`${file}: field "model.type" is ${JSON.stringify(model?.type)}; GGUF export supports BPE tokenizers (Llama 1/2/3, GPT-2 style)`);
  }
  const byId = new Map<number, string>();
  for (const [token, id] of Object.entries(model.vocab)) byId.set(id, token);
  const special = new Map<number, { content: string; special: boolean }>();
  for (const added of json.added_tokens ?? []) {
    byId.set(added.id, added.content);
    special.set(added.id, { content: added.content, special: added.special !== false });
  }
  for (const id of byId.keys()) {
    if (!Number.isInteger(id) || id < 0) throw new EngineError(`${file}: token id ${id} is not a non-negative integer`);
    if (id >= vocabSize) throw new EngineError(`${file}: token id ${id} is outside the model's vocabulary (vocab_size ${vocabSize})`);
  }
  const spm = model.byte_fallback === true;
  const unkId = model.unk_token != null && model.vocab[model.unk_token] !== undefined ? model.vocab[model.unk_token] : null;
  const tokens: string[] = [];
  const types: number[] = [];
  const scores: number[] = [];
  for (let id = 0; id < vocabSize; id++) {
    const token = byId.get(id);
    if (token === undefined) {
      tokens.push(`[PAD${id}]`);
      types.push(TokenType.unused);
      scores.push(-1000);
      continue;
    }
    tokens.push(token);
    const added = special.get(id);
    if (id === unkId) types.push(TokenType.unknown);
    else if (added) types.push(added.special ? TokenType.control : TokenType.userDefined);
    else if (spm && /^<0x[0-9A-F]{2}>$/.test(token)) types.push(TokenType.byte);
    else types.push(TokenType.normal);
    // SentencePiece merges the adjacent pair whose result scores highest. Converted vocabularies list pieces in
    // merge order, so a score falling with the id reproduces the BPE ranks.
    scores.push(types[types.length - 1] === TokenType.normal ? -id : 0);
  }
  if (spm) {
    const missing = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`).filter((t) => model.vocab![t] === undefined);
    if (missing.length > 0) throw new EngineError(`${file}: a byte-fallback tokenizer needs all 256 <0xXX> tokens; missing ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', ...' : ''}`);
  }
  const merges = spm ? null : (model.merges ?? []).map((m) => (Array.isArray(m) ? m.join(' ') : m));
  const configFile = path.join(dir, 'tokenizer_config.json');
  const tokenizerConfig = fs.existsSync(configFile) ? (readJson(configFile) as { add_bos_token?: unknown }) : {};
  const addBos = typeof tokenizerConfig.add_bos_token === 'boolean' ? tokenizerConfig.add_bos_token : spm;
  return {
    model: spm ? 'llama' : 'gpt2',
    pre: spm ? null : preTokenizerName(json.pre_tokenizer),
    tokens,
    scores: spm ? scores : null,
    types,
    merges,
    unkId,
    addBos,
  };
}

// ---------------------------------------------------------------------------------------------
// Tensors

interface TensorPlan {
  name: string; // GGUF name
  dims: number[]; // ggml order: fastest first
  elements: number;
  read: (reader: CheckpointReader) => Float32Array;
}

/** HF q/k projection rows [heads * hd, in] -> llama.cpp's interleaved-pair order (convert_hf_to_gguf.py permute). */
export function permuteForGguf(data: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const hd = rows / heads;
  const half = hd / 2;
  const out = new Float32Array(data.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let a = 0; a < 2; a++) {
        const from = (h * hd + a * half + i) * cols;
        const to = (h * hd + 2 * i + a) * cols;
        out.set(data.subarray(from, from + cols), to);
      }
    }
  }
  return out;
}

/** Llama 3's RoPE factors: unscaled over scaled inverse frequency, one per rotated pair. */
function ropeFactors(c: LlamaConfig): Float32Array {
  const scaled = inverseFrequencies(c);
  const plain = inverseFrequencies({ ...c, ropeScaling: null });
  return plain.map((f, i) => f / scaled[i]);
}

function tensorPlans(c: LlamaConfig): TensorPlan[] {
  const shapes = expectedWeights(c);
  const plan = (gguf: string, hf: string, transform?: (x: Float32Array, shape: number[]) => Float32Array): TensorPlan => {
    const shape = shapes.get(hf);
    if (!shape) throw new EngineError(`GGUF export: the model config has no tensor "${hf}"`);
    return {
      name: gguf,
      dims: [...shape].reverse(),
      elements: shape.reduce((a, b) => a * b, 1),
      read: (reader) => (transform ? transform(reader.readF32(hf), shape) : reader.readF32(hf)),
    };
  };
  const plans: TensorPlan[] = [plan('token_embd.weight', 'model.embed_tokens.weight')];
  for (let i = 0; i < c.nLayers; i++) {
    const p = `model.layers.${i}`;
    plans.push(
      plan(`blk.${i}.attn_norm.weight`, `${p}.input_layernorm.weight`),
      plan(`blk.${i}.attn_q.weight`, `${p}.self_attn.q_proj.weight`, (x, [rows, cols]) => permuteForGguf(x, rows, cols, c.nHeads)),
      plan(`blk.${i}.attn_k.weight`, `${p}.self_attn.k_proj.weight`, (x, [rows, cols]) => permuteForGguf(x, rows, cols, c.nKvHeads)),
      plan(`blk.${i}.attn_v.weight`, `${p}.self_attn.v_proj.weight`),
      plan(`blk.${i}.attn_output.weight`, `${p}.self_attn.o_proj.weight`),
      plan(`blk.${i}.ffn_norm.weight`, `${p}.post_attention_layernorm.weight`),
      plan(`blk.${i}.ffn_gate.weight`, `${p}.mlp.gate_proj.weight`),
      plan(`blk.${i}.ffn_up.weight`, `${p}.mlp.up_proj.weight`),
      plan(`blk.${i}.ffn_down.weight`, `${p}.mlp.down_proj.weight`),
    );
  }
  plans.push(plan('output_norm.weight', 'model.norm.weight'));
  if (!c.tieEmbeddings) plans.push(plan('output.weight', 'lm_head.weight')); // llama.cpp reuses token_embd when absent
  if (c.ropeScaling) {
    const factors = ropeFactors(c);
    plans.push({ name: 'rope_freqs.weight', dims: [factors.length], elements: factors.length, read: () => factors });
  }
  return plans;
}

// ---------------------------------------------------------------------------------------------
// Writing

class ByteWriter {
  private chunks: Buffer[] = [];
  length = 0;
  private push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  i32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.push(b);
  }
  u64(v: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  f32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
  }
  string(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.push(bytes);
  }
  padTo(alignment: number): void {
    const pad = (alignment - (this.length % alignment)) % alignment;
    if (pad > 0) this.push(Buffer.alloc(pad));
  }
  value(v: MetaValue): void {
    this.u32(v.type);
    switch (v.type) {
      case ValueType.UINT32: return this.u32(v.value);
      case ValueType.INT32: return this.i32(v.value);
      case ValueType.FLOAT32: return this.f32(v.value);
      case ValueType.BOOL: return this.push(Buffer.from([v.value ? 1 : 0]));
      case ValueType.STRING: return this.string(v.value);
      case ValueType.ARRAY: {
        this.u32(v.items);
        this.u64(v.value.length);
        for (const item of v.value) {
          if (v.items === ValueType.STRING) this.string(item as string);
          else if (v.items === ValueType.FLOAT32) this.f32(item as number);
          else this.i32(item as number);
        }
      }
    }
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

function metadata(c: LlamaConfig, tok: GgufTokenizer, name: string, type: GgufWeightType): [string, MetaValue][] {
  const kv: [string, MetaValue][] = [
    ['general.architecture', str('llama')],
    ['general.name', str(name)],
    ['general.file_type', u32(FILE_TYPE[type])],
    ['general.alignment', u32(ALIGNMENT)],
    ['llama.vocab_size', u32(c.vocabSize)],
    ['llama.context_length', u32(c.maxPositions)],
    ['llama.embedding_length', u32(c.dim)],
    ['llama.block_count', u32(c.nLayers)],
    ['llama.feed_forward_length', u32(c.ffnDim)],
    ['llama.attention.head_count', u32(c.nHeads)],
    ['llama.attention.head_count_kv', u32(c.nKvHeads)],
    ['llama.attention.layer_norm_rms_epsilon', f32(c.normEps)],
    ['llama.rope.freq_base', f32(c.ropeTheta)],
    ['llama.rope.dimension_count', u32(c.headDim)],
  ];
  if (c.headDim * c.nHeads !== c.dim) {
    kv.push(['llama.attention.key_length', u32(c.headDim)], ['llama.attention.value_length', u32(c.headDim)]);
  }
  kv.push(
    ['tokenizer.ggml.model', str(tok.model)],
    ['tokenizer.ggml.tokens', { type: ValueType.ARRAY, items: ValueType.STRING, value: tok.tokens }],
    ['tokenizer.ggml.token_type', { type: ValueType.ARRAY, items: ValueType.INT32, value: tok.types }],
  );
  if (tok.pre) kv.push(['tokenizer.ggml.pre', str(tok.pre)]);
  if (tok.scores) kv.push(['tokenizer.ggml.scores', { type: ValueType.ARRAY, items: ValueType.FLOAT32, value: tok.scores }]);
  if (tok.merges) kv.push(['tokenizer.ggml.merges', { type: ValueType.ARRAY, items: ValueType.STRING, value: tok.merges }]);
  if (c.bosId !== null && c.bosId !== undefined) kv.push(['tokenizer.ggml.bos_token_id', u32(c.bosId)]);
  if (c.eosIds.length > 0) kv.push(['tokenizer.ggml.eos_token_id', u32(c.eosIds[0])]);
  if (tok.unkId !== null) kv.push(['tokenizer.ggml.unknown_token_id', u32(tok.unkId)]);
  kv.push(['tokenizer.ggml.add_bos_token', { type: ValueType.BOOL, value: tok.addBos }]);
  return kv;
}

/** A tensor's storage in the file: matrices whose rows are whole 32-value blocks take `type`, the rest f32. */
function storageOf(p: TensorPlan, type: GgufWeightType): GgufWeightType {
  return type !== 'f32' && p.dims.length === 2 && p.dims[0]! % QUANT_BLOCK === 0 ? type : 'f32';
}

function storedBytes(p: TensorPlan, storage: GgufWeightType): number {
  return storage === 'f32' ? p.elements * 4 : (p.elements / QUANT_BLOCK) * BLOCK_BYTES[storage];
}

/**
 * Writes `modelDir` (config.json, safetensors, tokenizer.json) as a GGUF file at `outPath`: float32, or its matrices
 * in llama.cpp's Q8_0 / Q4_0 blocks (`type`; quant.ts, bit-exact with ggml's reference quantiser).
 */
export function exportGguf(modelDir: string, outPath: string, opts: { name?: string; type?: GgufWeightType } = {}): GgufExportResult {
  const type = opts.type ?? 'f32';
  if (!GGUF_WEIGHT_TYPES.includes(type)) throw new EngineError(`GGUF export: weight type ${JSON.stringify(type)}; supported: ${GGUF_WEIGHT_TYPES.join(', ')}`);
  const c = readModelConfig(modelDir);
  requirePlainLlama(c, "GGUF export (llama.cpp's llama layout)");
  if (c.headDim % 2 !== 0) throw new EngineError(`${modelDir}: head dimension ${c.headDim} is odd; RoPE needs it even`);
  const tok = ggufTokenizer(modelDir, c.vocabSize);
  const plans = tensorPlans(c);
  const reader = CheckpointReader.open(modelDir);
  try {
    const header = new ByteWriter();
    const kv = metadata(c, tok, opts.name ?? path.basename(path.resolve(modelDir)), type);
    const storage = plans.map((p) => storageOf(p, type));
    header.u32(GGUF_MAGIC);
    header.u32(GGUF_VERSION);
    header.u64(plans.length);
    header.u64(kv.length);
    for (const [key, value] of kv) {
      header.string(key);
      header.value(value);
    }
    let offset = 0;
    const offsets: number[] = [];
    for (const p of plans) {
      offsets.push(offset);
      header.string(p.name);
      header.u32(p.dims.length);
      for (const d of p.dims) header.u64(d);
      header.u32(GGML_TYPE[storage[offsets.length - 1]!]);
      header.u64(offset);
      offset += Math.ceil(storedBytes(p, storage[offsets.length - 1]!) / ALIGNMENT) * ALIGNMENT;
    }
    header.padTo(ALIGNMENT);
    const headerBytes = header.bytes();
    let written = 0;
    fs.mkdirSync(path.dirname(path.resolve(outPath)), { recursive: true });
    writeAtomically(outPath, (fd) => {
      written += fs.writeSync(fd, headerBytes);
      const padding = Buffer.alloc(ALIGNMENT);
      plans.forEach((p, i) => {
        const data = p.read(reader);
        if (data.length !== p.elements) throw new EngineError(`${modelDir}: tensor for ${p.name} has ${data.length} values, expected ${p.elements}`);
        if (written !== headerBytes.length + offsets[i]) throw new Error(`GGUF export: ${p.name} lands at ${written}, planned ${headerBytes.length + offsets[i]}`);
        // Rows run along dims[0], whole blocks each: consecutive 32-value runs of the data are the blocks.
        const bytes = storage[i] === 'f32' ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : quantize(data, storage[i] as QuantFormat);
        written += fs.writeSync(fd, bytes);
        const pad = (ALIGNMENT - (bytes.byteLength % ALIGNMENT)) % ALIGNMENT;
        if (pad > 0) written += fs.writeSync(fd, padding, 0, pad);
      });
    });
    return { path: outPath, bytes: written, tensors: plans.length, type, quantizedTensors: storage.filter((t) => t !== 'f32').length, tokenizer: tok.model, vocabSize: c.vocabSize };
  } finally {
    reader.close();
  }
}
