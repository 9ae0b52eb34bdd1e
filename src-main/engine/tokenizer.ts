// Text <-> token ids for a Hugging Face model folder, over `@huggingface/tokenizers` (a pure-JS
// port of the Rust `tokenizers` library that reads the same `tokenizer.json`; GPT-2's vocab.json + merges.txt
// are built into the byte-level BPE tokenizer.json they stand for).
//
// Special tokens are added here, not by the tokenizer.json post-processor: `encode` runs the
// tokenizer without its post-processor and then prepends BOS / appends EOS when asked. That gives
// the same ids as transformers' LLaMA tokenizers (BOS on, EOS off by default) whether the file's
// post-processor adds BOS (Llama 3, converted Llama 2) or not, and never a doubled BOS.

import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { Tokenizer } from '@huggingface/tokenizers';
import { EngineError } from './errors.js';

export interface EncodeOptions {
  bos?: boolean; // prepend BOS (default true; no-op if the tokenizer has none)
  eos?: boolean; // append the first EOS id (default false)
}

export interface DecodeOptions {
  skipSpecial?: boolean; // drop special tokens (<s>, </s>, ...) from the text (default false)
}

export interface TextTokenizer {
  /** One more than the largest token id (including added tokens). */
  readonly vocabSize: number;
  readonly bosId: number | null;
  /** Ids that end generation; `encode({eos: true})` appends the first. */
  readonly eosIds: number[];
  /** sha256 (hex) of the tokenizer.json bytes (or of vocab.json + merges.txt): identifies the tokenizer a dataset was encoded with. */
  readonly hash: string;
  encode(text: string, opts?: EncodeOptions): number[];
  decode(ids: number[], opts?: DecodeOptions): string;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
}

/**
 * Load `dir/tokenizer.json`, or GPT-2's `vocab.json` + `merges.txt` where there is no tokenizer.json. BOS/EOS ids come from `ids` when given (normally the model's
 * config.json, which is what generation uses), otherwise from the bos_token / eos_token strings
 * in `dir/tokenizer_config.json` if that file exists.
 */
export async function loadTokenizer(dir: string, ids?: { bosId: number | null; eosIds: number[] }): Promise<TextTokenizer> {
  const configFile = path.join(dir, 'tokenizer_config.json');
  const config = fs.existsSync(configFile) ? parseJsonObject(await fs.promises.readFile(configFile, 'utf8'), configFile) : {};
  let file = path.join(dir, 'tokenizer.json');
  let bytes: Buffer;
  let json: Record<string, unknown>;
  if (!fs.existsSync(file) && fs.existsSync(path.join(dir, 'vocab.json')) && fs.existsSync(path.join(dir, 'merges.txt'))) {
    // GPT-2's older layout: the byte-level BPE as two files, built into the tokenizer.json they stand for.
    ({ json, bytes } = await byteLevelBpeFromFiles(dir, config));
    file = path.join(dir, 'vocab.json');
  } else {
    try {
      bytes = await fs.promises.readFile(file);
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found (nor vocab.json + merges.txt)' : (e as Error).message;
      throw new EngineError(`cannot read tokenizer ${file}: ${why}`);
    }
    json = parseJsonObject(bytes.toString('utf8'), file);
  }

  let tokenizer: Tokenizer;
  try {
    // Decoding must give back the exact text: the library would otherwise default to
    // transformers' old "clean up tokenization spaces" (" ." -> "."), which is lossy.
    tokenizer = new Tokenizer(json, { ...config, clean_up_tokenization_spaces: false });
  } catch (e) {
    throw new EngineError(`${file}: unsupported or malformed tokenizer (${(e as Error).message})`);
  }
  const hash = createHash('sha256').update(bytes).digest('hex');
  return new HfTextTokenizer(tokenizer, hash, file, ids ?? specialIdsFromConfig(tokenizer, config, configFile));
}

/**
 * vocab.json + merges.txt (GPT-2's files) as the tokenizer.json transformers' converter makes of them: byte-level
 * pre-tokenization (GPT-2's regex; `add_prefix_space` from tokenizer_config.json, default false) and decoding, BPE
 * over the merges in file order, no normalizer or post-processor. The special tokens tokenizer_config.json names
 * (bos, eos, unk, pad, added_tokens_decoder) are matched whole, as GPT2Tokenizer does. `bytes` (for the hash) are
 * both files'.
 */
async function byteLevelBpeFromFiles(dir: string, config: Record<string, unknown>): Promise<{ json: Record<string, unknown>; bytes: Buffer }> {
  const vocabFile = path.join(dir, 'vocab.json');
  const mergesFile = path.join(dir, 'merges.txt');
  const [vocabBytes, mergesBytes] = await Promise.all([fs.promises.readFile(vocabFile), fs.promises.readFile(mergesFile)]);
  const vocab = parseJsonObject(vocabBytes.toString('utf8'), vocabFile);
  for (const [token, id] of Object.entries(vocab)) {
    if (!Number.isInteger(id) || (id as number) < 0) throw new EngineError(`${vocabFile}: token ${JSON.stringify(token)} has id ${JSON.stringify(id)}; ids are whole numbers >= 0`);
  }
  const merges: string[] = [];
  mergesBytes
    .toString('utf8')
    .split(/\r?\n/)
    .forEach((line, i) => {
      if (line === '' || (i === 0 && line.startsWith('#version'))) return;
      const parts = line.split(' ');
      if (parts.length !== 2 || !(parts[0]! in vocab) || !(parts[1]! in vocab)) {
        throw new EngineError(`${mergesFile}: line ${i + 1} (${JSON.stringify(line)}) is not two tokens of vocab.json separated by a space`);
      }
      merges.push(line);
    });
  const addPrefixSpace = config.add_prefix_space ?? false;
  if (typeof addPrefixSpace !== 'boolean') throw new EngineError(`${path.join(dir, 'tokenizer_config.json')}: field "add_prefix_space" must be true or false, got ${JSON.stringify(addPrefixSpace)}`);
  const specials = new Set<string>();
  for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token']) {
    const raw = config[key];
    const content = typeof raw === 'string' ? raw : (raw as { content?: unknown } | undefined)?.content;
    if (typeof content === 'string') specials.add(content);
  }
  for (const entry of Object.values((config.added_tokens_decoder ?? {}) as Record<string, { content?: unknown; special?: unknown }>)) {
    if (typeof entry?.content === 'string') specials.add(entry.content);
  }
  const addedTokens = [...specials]
    .filter((t) => t in vocab)
    .map((content) => ({ id: vocab[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: addPrefixSpace, trim_offsets: true, use_regex: true };
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: null,
    decoder: byteLevel,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
  return { json, bytes: Buffer.concat([vocabBytes, mergesBytes]) };
}

function parseJsonObject(text: string, file: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new EngineError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new EngineError(`${file}: expected a JSON object`);
  return value as Record<string, unknown>;
}

/** bos_token / eos_token in tokenizer_config.json are a string or an AddedToken object {content}. */
function specialIdsFromConfig(tokenizer: Tokenizer, config: Record<string, unknown>, file: string) {
  const lookup = (key: 'bos_token' | 'eos_token'): number | null => {
    const raw = config[key];
    if (raw === undefined || raw === null) return null;
    const content = typeof raw === 'string' ? raw : (raw as { content?: unknown }).content;
    if (typeof content !== 'string') throw new EngineError(`${file}: field "${key}" must be a token string, got ${JSON.stringify(raw)}`);
    const id = tokenizer.token_to_id(content);
    if (id === undefined) throw new EngineError(`${file}: field "${key}" is ${JSON.stringify(content)}, which is not in the vocabulary`);
    return id;
  };
  const eos = lookup('eos_token');
  return { bosId: lookup('bos_token'), eosIds: eos === null ? [] : [eos] };
}

class HfTextTokenizer implements TextTokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosIds: number[];

  constructor(
    private readonly tokenizer: Tokenizer,
    readonly hash: string,
    file: string,
    ids: { bosId: number | null; eosIds: number[] },
  ) {
    let maxId = -1;
    for (const id of tokenizer.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    for (const id of [...(ids.bosId === null ? [] : [ids.bosId]), ...ids.eosIds]) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new EngineError(`${file}: special token id ${id} is outside the tokenizer's vocabulary (size ${this.vocabSize})`);
      }
    }
    this.bosId = ids.bosId;
    this.eosIds = [...ids.eosIds];
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const ids = text === '' ? [] : this.tokenizer.encode(text, { add_special_tokens: false }).ids;
    if ((opts.bos ?? true) && this.bosId !== null) ids.unshift(this.bosId);
    if (opts.eos) {
      if (this.eosIds.length === 0) throw new EngineError('cannot append EOS: the tokenizer has no end-of-sequence token');
      ids.push(this.eosIds[0]);
    }
    return ids;
  }

  decode(ids: number[], opts: DecodeOptions = {}): string {
    ids.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0) throw new EngineError(`cannot decode token id ${id} at index ${i}: not a valid id`);
    });
    // Like the Rust library, ids the tokenizer does not know (a model's padded vocabulary rows) decode to nothing.
    const known = ids.filter((id) => this.tokenizer.id_to_token(id) !== undefined);
    if (known.length === 0) return ''; // the library refuses an empty list
    return this.tokenizer.decode(known, { skip_special_tokens: opts.skipSpecial ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tokenizer.id_to_token(id);
  }
}

/**
 * Turns a stream of generated ids into text increments. Decoding one token at a time is wrong
 * in two ways: a character split over several byte tokens would come out as U+FFFD, and
 * SentencePiece-style decoders drop the leading space of whatever they decode first. So each
 * push re-decodes a short window (the previous emitted token(s) plus what is pending) and
 * emits only what the window added, holding text back while it ends in an incomplete
 * character (U+FFFD). The concatenation of all pushes and flush() equals decode(all ids).
 * (The windowing scheme is the one text-generation-inference uses.)
 */
export class StreamingDecoder {
  // The window: ids already emitted (context for the decoder) followed by pending ids.
  private window: number[] = [];
  private emitted = 0; // window[0 .. emitted) has been emitted

  constructor(
    private readonly tokenizer: TextTokenizer,
    private readonly opts: DecodeOptions = { skipSpecial: true },
  ) {}

  /** Add one generated id; returns the new text it completes ('' when it is held back). */
  push(id: number): string {
    this.window.push(id);
    const delta = this.pending();
    if (delta === '' || delta.endsWith('\uFFFD')) return '';
    // Slide: the ids just emitted become the next push's context.
    this.window = this.window.slice(this.emitted);
    this.emitted = this.window.length;
    return delta;
  }

  /** Emit whatever is held back (an incomplete character comes out as U+FFFD) and reset. */
  flush(): string {
    const delta = this.pending();
    this.window = [];
    this.emitted = 0;
    return delta;
  }

  /** Text the pending ids add after the emitted context. */
  private pending(): string {
    const context = this.emitted === 0 ? '' : this.tokenizer.decode(this.window.slice(0, this.emitted), this.opts);
    const full = this.tokenizer.decode(this.window, this.opts);
    return full.length > context.length ? full.slice(context.length) : '';
  }
}
