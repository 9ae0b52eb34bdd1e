// Tiny but real tokenizer.json files in the two layouts LLaMA-family models ship:
//   - byte-level BPE (GPT-2 / Llama 3 style): every byte is a token, spaces become "Ġ";
//   - SentencePiece-converted BPE (Llama 1/2 style): spaces become "▁", a "▁" is prepended to
//     the text, and characters outside the vocabulary fall back to <0xXX> byte tokens.
// Both load in @huggingface/tokenizers and in Python `tokenizers` with the same ids.
// Special tokens follow LLaMA: <unk> = 0, <s> = 1, </s> = 2.

import fs from 'node:fs';
import path from 'node:path';

export const TINY_UNK = 0;
export const TINY_BOS = 1;
export const TINY_EOS = 2;

export type TinyTokenizerStyle = 'byte-level' | 'sentencepiece';

const SPECIALS = ['<unk>', '<s>', '</s>'];

/** GPT-2's reversible map from bytes to printable characters (bytes_to_unicode). */
function byteToUnicode(): string[] {
  const printable: number[] = [];
  for (const [lo, hi] of [[0x21, 0x7e], [0xa1, 0xac], [0xae, 0xff]]) for (let b = lo; b <= hi; b++) printable.push(b);
  const map: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) map[b] = String.fromCodePoint(printable.includes(b) ? b : next++);
  return map;
}

// Merges in priority order: common English pieces, so that ordinary text takes fewer tokens
// than bytes and the merge machinery is exercised. "_" stands for the style's space symbol.
const MERGES = [
  '_ t', 'h e', 'i n', '_ a', 'e r', 'o n', 'r e', '_t he', '_ s', 'e n', 'a t', 'o r', '_ w', '_ o', 'e s',
  'in g', '_ c', 'i s', 'a n', 'l l', '_ b', '_ f', '_ m', '_ p', '_ h', '_a n', '_an d', 'e d', '_ i', '_ d',
  '_ l', 'o u', '_t o', '_o f', '_i n', '_i s', '_w or', '_wor l', '_worl d', 'he ll', 'hell o', '_ _',
];

function special(id: number, content: string) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/** The tokenizer.json object for the given style. */
export function tinyTokenizerJson(style: TinyTokenizerStyle = 'byte-level'): Record<string, unknown> {
  const space = style === 'byte-level' ? 'Ġ' : '▁';
  const vocab: Record<string, number> = {};
  const add = (token: string) => {
    if (!(token in vocab)) vocab[token] = Object.keys(vocab).length;
  };
  SPECIALS.forEach(add);
  if (style === 'byte-level') {
    byteToUnicode().forEach(add); // ids 3..258 in byte order
  } else {
    for (let b = 0; b < 256; b++) add(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`); // byte fallback, ids 3..258
    add('▁');
    for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?\'"-:;()#*/') add(c);
  }
  const merges = MERGES.map((m) => m.replaceAll('_', space));
  for (const m of merges) add(m.replace(' ', ''));

  const bosTemplate = {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [
      { SpecialToken: { id: '<s>', type_id: 0 } },
      { Sequence: { id: 'A', type_id: 0 } },
      { SpecialToken: { id: '<s>', type_id: 1 } },
      { Sequence: { id: 'B', type_id: 1 } },
    ],
    special_tokens: { '<s>': { id: '<s>', ids: [TINY_BOS], tokens: ['<s>'] } },
  };
  const model = {
    type: 'BPE',
    dropout: null,
    unk_token: style === 'byte-level' ? null : '<unk>',
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: style === 'sentencepiece',
    byte_fallback: style === 'sentencepiece',
    ignore_merges: false,
    vocab,
    merges,
  };
  const common = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((s, i) => special(i, s)),
    post_processor: bosTemplate,
  };
  if (style === 'byte-level') {
    return {
      ...common,
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model,
    };
  }
  // The layout transformers writes when converting Llama 2's SentencePiece model.
  return {
    ...common,
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model,
  };
}

/** Number of ids in the tiny tokenizer of this style (ids are 0..size-1, no gaps). */
export function tinyVocabSize(style: TinyTokenizerStyle = 'byte-level'): number {
  return Object.keys((tinyTokenizerJson(style).model as { vocab: object }).vocab).length;
}

/** Write tokenizer.json and tokenizer_config.json into `dir`. */
export function writeTinyTokenizer(dir: string, style: TinyTokenizerStyle = 'byte-level', maxLength = 2048): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tinyTokenizerJson(style), null, 2));
  const config = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    add_bos_token: true,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    model_max_length: maxLength,
  };
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config, null, 2));
}
