// Instruction data for training: the Alpaca prompt templates, reading Alpaca JSON / JSONL files,
// tokenising into (prompt, response) examples and cutting seeded, right-padded batches.

import { readFileSync } from 'node:fs';
import { EngineError } from './errors.js';
import { IGNORE } from './loss.js';
import { Rng } from './rng.js';

export interface Instruction {
  instruction: string;
  input: string;
  output: string;
}

// Stanford Alpaca's PROMPT_DICT, verbatim (also what LLaMA-Adapter trains with).
const PROMPT_WITH_INPUT =
  'Below is an instruction that describes a task, paired with an input that provides further context. ' +
  'Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:';
const PROMPT_NO_INPUT =
  'Below is an instruction that describes a task. ' +
  'Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Response:';

/**
 * The prompt templates runs train with: `alpaca` is Stanford Alpaca's (LLaMA-Adapter's and the full fine-tune's);
 * `alpaca-lora` is tloen/alpaca-lora's templates/alpaca.json, the same text with a newline after "### Response:".
 * A run records its template, and everything that prompts its adapter (chat, evaluation, the OpenAI API) uses it.
 */
export const PROMPT_TEMPLATES = ['alpaca', 'alpaca-lora'] as const;
export type PromptTemplate = (typeof PROMPT_TEMPLATES)[number];

const TEMPLATE_TEXT: Record<PromptTemplate, { withInput: string; noInput: string }> = {
  alpaca: { withInput: PROMPT_WITH_INPUT, noInput: PROMPT_NO_INPUT },
  'alpaca-lora': { withInput: `${PROMPT_WITH_INPUT}\n`, noInput: `${PROMPT_NO_INPUT}\n` },
};

export function formatAlpacaPrompt(instruction: string, input = '', template: PromptTemplate = 'alpaca'): string {
  // As Stanford Alpaca's train.py: the with-input template for any non-empty input (whitespace included), and
  // both fields filled in one pass (Python's format_map), so an instruction that itself contains "{input}" or
  // "$&" stays as written.
  const values: Record<string, string> = { instruction, input };
  const text = TEMPLATE_TEXT[template];
  return (input !== '' ? text.withInput : text.noInput).replace(/\{(instruction|input)\}/g, (_, key: string) => values[key]!);
}

/**
 * Read an Alpaca-format dataset: a JSON list of {instruction, input?, output}, or JSONL with one
 * such object per line. Every problem names the file, the record (line for JSONL, index for JSON)
 * and the field.
 */
export function readInstructionFile(path: string): Instruction[] {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(readFileSync(path));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new EngineError(`${path}: file not found`);
    if (err instanceof TypeError) throw new EngineError(`${path}: not valid UTF-8 text`);
    throw new EngineError(`${path}: cannot read (${err.message})`);
  }
  const trimmed = text.trimStart();
  if (trimmed === '') throw new EngineError(`${path}: the file is empty; expected a JSON list or JSON lines of {instruction, input, output}`);
  const records: { where: string; value: unknown }[] = [];
  if (trimmed.startsWith('[')) {
    let list: unknown[];
    try {
      list = JSON.parse(text);
    } catch (e) {
      throw new EngineError(`${path}: invalid JSON (${(e as Error).message})`);
    }
    list.forEach((value, i) => records.push({ where: `record ${i}`, value }));
  } else {
    text.split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      try {
        records.push({ where: `line ${i + 1}`, value: JSON.parse(line) });
      } catch (e) {
        throw new EngineError(`${path}: line ${i + 1}: invalid JSON (${(e as Error).message})`);
      }
    });
  }
  if (records.length === 0) throw new EngineError(`${path}: no records found`);
  return records.map(({ where, value }) => toInstruction(value, `${path}: ${where}`));
}

function toInstruction(value: unknown, where: string): Instruction {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new EngineError(`${where}: expected an object with "instruction", "input" and "output", got ${typeof value}`);
  }
  const r = value as Record<string, unknown>;
  const text = (key: string, required: boolean): string => {
    const v = r[key];
    if (v === undefined || v === null) {
      if (required) throw new EngineError(`${where}: field "${key}" is missing`);
      return '';
    }
    if (typeof v !== 'string') throw new EngineError(`${where}: field "${key}" must be a string, got ${typeof v}`);
    if (required && v.trim() === '') throw new EngineError(`${where}: field "${key}" is empty`);
    return v;
  };
  return { instruction: text('instruction', true), input: text('input', false), output: text('output', true) };
}

/** Token ids of prompt + response + EOS; the first `promptLength` ids carry no loss. */
export interface TokenizedExample {
  ids: number[];
  promptLength: number;
}

export interface Encoder {
  encode(text: string, opts?: { bos?: boolean; eos?: boolean }): number[];
}

/**
 * Tokenise as the official code does: BOS + prompt + response + EOS, with the prompt's tokens
 * masked from the loss, truncated to maxSeqLen.
 */
/** With `trainOnInputs` every token is a target (Alpaca-LoRA's train_on_inputs=True), else the response's only. */
export function tokenizeExample(tok: Encoder, ex: Instruction, maxSeqLen: number, opts: { trainOnInputs?: boolean; template?: PromptTemplate } = {}): TokenizedExample {
  const prompt = formatAlpacaPrompt(ex.instruction, ex.input, opts.template);
  const fullIds = tok.encode(prompt + ex.output, { bos: true, eos: true });
  if (opts.trainOnInputs) return { ids: fullIds.slice(0, maxSeqLen), promptLength: 0 };
  const promptIds = tok.encode(prompt, { bos: true, eos: false });
  return { ids: fullIds.slice(0, maxSeqLen), promptLength: Math.min(promptIds.length, maxSeqLen) };
}

export interface Batch {
  ids: Int32Array; // [B, T] right-padded with `padId`
  labels: Int32Array; // [B, T], IGNORE on prompt and padding
  B: number;
  T: number;
  tokens: number; // real (non-pad) tokens in the batch
}

/** Right-pad a group of examples to the longest one. */
export function makeBatch(examples: TokenizedExample[], padId: number): Batch {
  const B = examples.length;
  const T = Math.max(2, ...examples.map((e) => e.ids.length));
  const ids = new Int32Array(B * T).fill(padId);
  const labels = new Int32Array(B * T).fill(IGNORE);
  let tokens = 0;
  examples.forEach((e, b) => {
    e.ids.forEach((id, t) => {
      ids[b * T + t] = id;
      if (t >= e.promptLength) labels[b * T + t] = id;
    });
    tokens += e.ids.length;
  });
  return { ids, labels, B, T, tokens };
}

/**
 * The order in which epoch `epoch` visits the examples: a Fisher-Yates shuffle seeded by
 * (seed, epoch) alone, so a resumed run recomputes the same order without saved state.
 */
export function epochOrder(n: number, seed: number, epoch: number): number[] {
  const rng = new Rng(seed * 1000 + epoch);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}
