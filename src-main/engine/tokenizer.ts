// Text <-> token ids for a Hugging Face model folder, over `@huggingface/tokenizers` (a pure-JS
// port of the Rust `tokenizers` library that reads the same `tokenizer.json`).
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
  /** sha256 (hex) of the tokenizer.json bytes: identifies the tokenizer a dataset was encoded with. */
  readonly hash: string;
  encode(text: string, opts?: EncodeOptions): number[];
  decode(ids: number[], opts?: DecodeOptions): string;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
}

/**
 * Load `dir/tokenizer.json`. BOS/EOS ids come from `ids` when given (normally the model's
 * config.json, which is what generation uses), otherwise from the bos_token / eos_token strings
 * in `dir/tokenizer_config.json` if that file exists.
 */
export async function loadTokenizer(dir: string, ids?: { bosId: number | null; eosIds: number[] }): Promise<TextTokenizer> {
  const file = path.join(dir, 'tokenizer.json');
  let bytes: Buffer;
  try {
    bytes = await fs.promises.readFile(file);
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (e as Error).message;
    throw new EngineError(`cannot read tokenizer ${file}: ${why}`);
  }
  const json = parseJsonObject(bytes.toString('utf8'), file);

  const configFile = path.join(dir, 'tokenizer_config.json');
  const config = fs.existsSync(configFile) ? parseJsonObject(await fs.promises.readFile(configFile, 'utf8'), configFile) : {};

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
