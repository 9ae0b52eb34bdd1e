import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { EngineError } from '../src-main/engine/errors.js';
import { StreamingDecoder, loadTokenizer, type TextTokenizer } from '../src-main/engine/tokenizer.js';
import { TINY_BOS, TINY_EOS, tinyVocabSize, writeTinyTokenizer, type TinyTokenizerStyle } from './helpers/tiny-tokenizer.js';
import { makeTempDir } from './helpers/tmp.js';

const STYLES: TinyTokenizerStyle[] = ['byte-level', 'sentencepiece'];

const SAMPLES = [
  'Hello world',
  'the cat and the dog',
  ' leading space',
  '  two  spaces  and trailing ',
  'line one\nline two\n\n\tindented',
  'héllo wörld — ünïcödé',
  '🦙 llamas 🦙🦙 and 日本語',
  'punctuation: "quotes", (parens) & ... !?',
  'a',
  ' ',
];

async function tinyTokenizer(style: TinyTokenizerStyle): Promise<{ dir: string; tok: TextTokenizer }> {
  const dir = makeTempDir(`tok-${style}`);
  writeTinyTokenizer(dir, style);
  return { dir, tok: await loadTokenizer(dir) };
}

async function expectEngineError(promiseOrFn: Promise<unknown> | (() => unknown), ...parts: (string | RegExp)[]) {
  let error: unknown;
  try {
    await (typeof promiseOrFn === 'function' ? promiseOrFn() : promiseOrFn);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(EngineError);
  for (const part of parts) expect((error as Error).message).toMatch(part);
}

describe.each(STYLES)('%s tokenizer', (style) => {
  it('loads vocabulary size, special ids and a hash of tokenizer.json', async () => {
    const { dir, tok } = await tinyTokenizer(style);
    expect(tok.vocabSize).toBe(tinyVocabSize(style));
    expect(tok.bosId).toBe(TINY_BOS);
    expect(tok.eosIds).toEqual([TINY_EOS]);
    expect(tok.idToToken(TINY_BOS)).toBe('<s>');
    expect(tok.tokenToId('</s>')).toBe(TINY_EOS);
    expect(tok.hash).toBe(createHash('sha256').update(fs.readFileSync(path.join(dir, 'tokenizer.json'))).digest('hex'));
  });

  it('round-trips text exactly, spaces included', async () => {
    const { tok } = await tinyTokenizer(style);
    for (const text of SAMPLES) {
      const ids = tok.encode(text, { bos: false });
      expect(ids.every((id) => Number.isInteger(id) && id > TINY_EOS && id < tok.vocabSize)).toBe(true);
      expect(tok.decode(ids)).toBe(text);
    }
    expect(tok.encode('', { bos: false })).toEqual([]);
    expect(tok.decode([])).toBe('');
  });

  it('applies merges: common words take fewer tokens than bytes', async () => {
    const { tok } = await tinyTokenizer(style);
    const text = 'the world and the cat is in the world';
    expect(tok.encode(text, { bos: false }).length).toBeLessThan(Buffer.byteLength(text) / 2);
  });

  it('adds BOS once by default and EOS only when asked', async () => {
    const { tok } = await tinyTokenizer(style);
    const body = tok.encode('Hello world', { bos: false });
    // The tokenizer.json post-processor would also add <s>; it must not be doubled.
    expect(tok.encode('Hello world')).toEqual([TINY_BOS, ...body]);
    expect(tok.encode('Hello world', { eos: true })).toEqual([TINY_BOS, ...body, TINY_EOS]);
    expect(tok.encode('Hello world', { bos: false, eos: true })).toEqual([...body, TINY_EOS]);
    expect(tok.encode('')).toEqual([TINY_BOS]);
  });

  it('decodes special tokens, or skips them', async () => {
    const { tok } = await tinyTokenizer(style);
    const ids = tok.encode('Hello world', { eos: true });
    // As in Python `tokenizers`: the SentencePiece decoder keeps the "▁" after <s> as a space.
    expect(tok.decode(ids)).toBe(style === 'sentencepiece' ? '<s> Hello world</s>' : '<s>Hello world</s>');
    expect(tok.decode(ids, { skipSpecial: true })).toBe('Hello world');
    // Ids beyond the tokenizer (a model's padded vocabulary rows) decode to nothing.
    expect(tok.decode([...tok.encode('ok', { bos: false }), tok.vocabSize + 3])).toBe('ok');
    await expectEngineError(() => tok.decode([5, -1]), 'index 1');
  });

  it('streams multi-byte UTF-8 without broken characters', async () => {
    const { tok } = await tinyTokenizer(style);
    for (const text of ['héllo 🦙', ' 🦙🦙 wörld, 日本語!\n ok', 'Hello world']) {
      const ids = tok.encode(text, { bos: false });
      const decoder = new StreamingDecoder(tok);
      const pieces = ids.map((id) => decoder.push(id));
      const rest = decoder.flush();
      expect(pieces.join('') + rest).toBe(text);
      expect(rest).toBe('');
      for (const piece of pieces) expect(piece).not.toContain('\uFFFD');
    }
    // The llama is four byte tokens: nothing comes out until the last one completes it.
    const ids = tok.encode('héllo 🦙', { bos: false });
    const decoder = new StreamingDecoder(tok);
    expect(ids.map((id) => decoder.push(id)).slice(-5)).toEqual([' ', '', '', '', '🦙']);
  });

  it('streaming skips special tokens by default and flushes an incomplete character', async () => {
    const { tok } = await tinyTokenizer(style);
    const decoder = new StreamingDecoder(tok);
    const ids = [TINY_BOS, ...tok.encode('hi 🦙', { bos: false })];
    expect(ids.map((id) => decoder.push(id)).join('')).toBe('hi 🦙');
    expect(decoder.push(TINY_EOS)).toBe('');
    expect(decoder.flush()).toBe('');
    // A character cut short (the stream stopped mid-llama) is held back, then flushed as U+FFFD.
    const llama = tok.encode('🦙', { bos: false });
    expect(llama.length).toBeGreaterThan(1);
    const partial = llama.slice(0, -1).map((id) => decoder.push(id));
    expect(partial.join('')).toBe('');
    expect(decoder.flush()).toContain('\uFFFD');
  });
});

describe('leading spaces', () => {
  it('byte-level: a space is part of the following token (Ġ), and nothing is added at the start', async () => {
    const { tok } = await tinyTokenizer('byte-level');
    const [first] = tok.encode('the', { bos: false });
    const [spaced] = tok.encode(' the', { bos: false });
    expect(tok.idToToken(first)).not.toMatch(/^Ġ/);
    expect(tok.idToToken(spaced)).toBe('Ġthe');
  });

  it('sentencepiece: "▁" is prepended to the text and decoding strips it again', async () => {
    const { tok } = await tinyTokenizer('sentencepiece');
    const ids = tok.encode('the world', { bos: false });
    expect(ids.map((id) => tok.idToToken(id))).toEqual(['▁the', '▁world']);
    expect(tok.decode(ids)).toBe('the world');
    // A real leading space survives: the text gets two "▁".
    const spaced = tok.encode(' the', { bos: false });
    expect(spaced.map((id) => tok.idToToken(id)).join('')).toBe('▁▁the');
    expect(tok.decode(spaced)).toBe(' the');
  });

  it('sentencepiece: characters outside the vocabulary fall back to byte tokens', async () => {
    const { tok } = await tinyTokenizer('sentencepiece');
    const tokens = tok.encode('é', { bos: false }).map((id) => tok.idToToken(id));
    expect(tokens).toEqual(['▁', '<0xC3>', '<0xA9>']);
  });
});

describe('special token ids', () => {
  it('come from the caller when given (e.g. from config.json)', async () => {
    const dir = makeTempDir('tok-ids');
    writeTinyTokenizer(dir);
    const tok = await loadTokenizer(dir, { bosId: null, eosIds: [TINY_EOS, 0] });
    expect(tok.bosId).toBeNull();
    expect(tok.eosIds).toEqual([TINY_EOS, 0]);
    expect(tok.encode('hi', { eos: true })).toEqual([...tok.encode('hi', { bos: false }), TINY_EOS]);
    await expectEngineError(loadTokenizer(dir, { bosId: 99999, eosIds: [] }), 'tokenizer.json', '99999', 'outside');
  });

  it('are absent without tokenizer_config.json, and EOS cannot then be appended', async () => {
    const dir = makeTempDir('tok-noconfig');
    writeTinyTokenizer(dir);
    fs.rmSync(path.join(dir, 'tokenizer_config.json'));
    const tok = await loadTokenizer(dir);
    expect(tok.bosId).toBeNull();
    expect(tok.encode('hi')).toEqual(tok.encode('hi', { bos: false }));
    await expectEngineError(() => tok.encode('hi', { eos: true }), 'EOS');
  });

  it('accept the AddedToken object form of bos_token', async () => {
    const dir = makeTempDir('tok-object');
    writeTinyTokenizer(dir);
    const configFile = path.join(dir, 'tokenizer_config.json');
    const config = JSON.parse(fs.readFileSync(configFile, 'utf8'));
    config.bos_token = { content: '<s>', special: true };
    fs.writeFileSync(configFile, JSON.stringify(config));
    expect((await loadTokenizer(dir)).bosId).toBe(TINY_BOS);
  });
});

describe('errors name the file', () => {
  it('missing tokenizer.json', async () => {
    const dir = makeTempDir('tok-missing');
    await expectEngineError(loadTokenizer(dir), path.join(dir, 'tokenizer.json'), 'not found');
  });

  it('tokenizer.json that is not JSON, or not a tokenizer', async () => {
    const dir = makeTempDir('tok-bad');
    const file = path.join(dir, 'tokenizer.json');
    fs.writeFileSync(file, '{"model": ');
    await expectEngineError(loadTokenizer(dir), file, 'not valid JSON');
    fs.writeFileSync(file, JSON.stringify({ version: '1.0', added_tokens: [] }));
    await expectEngineError(loadTokenizer(dir), file, 'malformed');
  });

  it('tokenizer_config.json naming a token that does not exist', async () => {
    const dir = makeTempDir('tok-badconfig');
    writeTinyTokenizer(dir);
    const configFile = path.join(dir, 'tokenizer_config.json');
    fs.writeFileSync(configFile, JSON.stringify({ bos_token: '<bos>', eos_token: '</s>' }));
    await expectEngineError(loadTokenizer(dir), configFile, 'bos_token', '<bos>');
    fs.writeFileSync(configFile, '{oops');
    await expectEngineError(loadTokenizer(dir), configFile, 'not valid JSON');
  });
});

describe('GPT-2 style vocab.json + merges.txt (no tokenizer.json)', () => {
  const FIXTURE = path.join(import.meta.dirname, 'fixtures', 'bpe-files');
  const expected = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'expected.json'), 'utf8')) as {
    vocab_size: number;
    endoftext_id: number;
    cases: { text: string; ids: number[]; decoded: string }[];
  };

  it("encodes and decodes as transformers' GPT2Tokenizer on the same two files", async () => {
    const tok = await loadTokenizer(FIXTURE);
    expect(tok.vocabSize).toBe(expected.vocab_size);
    // tokenizer_config.json names <|endoftext|> as BOS and EOS.
    expect(tok.bosId).toBe(expected.endoftext_id);
    expect(tok.eosIds).toEqual([expected.endoftext_id]);
    for (const c of expected.cases) {
      expect(tok.encode(c.text, { bos: false }), JSON.stringify(c.text)).toEqual(c.ids);
      expect(tok.decode(c.ids)).toBe(c.decoded);
    }
    const both = Buffer.concat([fs.readFileSync(path.join(FIXTURE, 'vocab.json')), fs.readFileSync(path.join(FIXTURE, 'merges.txt'))]);
    expect(tok.hash).toBe(createHash('sha256').update(both).digest('hex'));
  });

  it('names the line of a merges.txt that is not two known tokens', async () => {
    const dir = makeTempDir('tok-bpe-files');
    for (const f of ['vocab.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(FIXTURE, f), path.join(dir, f));
    const merges = fs.readFileSync(path.join(FIXTURE, 'merges.txt'), 'utf8').split('\n');
    merges.splice(3, 0, 'Ġa b c');
    fs.writeFileSync(path.join(dir, 'merges.txt'), merges.join('\n'));
    await expectEngineError(loadTokenizer(dir), /merges\.txt: line 4 \("Ġa b c"\) is not two tokens of vocab\.json/);
    fs.rmSync(path.join(dir, 'merges.txt'));
    await expectEngineError(loadTokenizer(dir), /tokenizer\.json: file not found \(nor vocab\.json \+ merges\.txt\)/);
  });
});
