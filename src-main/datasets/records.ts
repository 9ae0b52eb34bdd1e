// From a raw record (a parsed JSON value or a CSV row) to checked examples, or to issues naming the field.
//
// Alpaca-style fields are looked up by name, first match wins, unless a field map names the key/column:
//   instruction <- instruction | prompt | question | query
//   input       <- input | context                       (optional; missing or null means "")
//   output      <- output | response | answer | completion
//   tags        <- tags   (a list of text, or text separated by "," or ";")   (optional)
//   split       <- split  (train | val | validation | dev | test)             (optional)
//   image       <- image  (a path relative to the file, a data: URL, or {bytes, path}; see images.ts) (optional)
//
// Stanford Alpaca's seed_tasks.jsonl records ({instruction, instances: [{input, output}], is_classification, id, name})
// give one example per instance, the task's fields in meta.
//
// A record with "question", a "choices" list and a numeric "answer" (ScienceQA, as its problems.json and its
// Hugging Face copy have them) is a multiple-choice question: see scienceqa.ts. A chat record ("conversations" /
// "messages", see conversations.ts) loses LLaVA's "<image>" placeholders: the picture reaches the model through
// the adapter, not as text.

import { SPLITS, type NewExample, type Split } from '../store/datasets.js';
import { conversationToExamples, isConversation, isPlainObject, typeName, type ConversationMode, type FieldProblem } from './conversations.js';
import { toImageRef, type ImageRef } from './images.js';
import { DEFAULT_MULTIPLE_CHOICE_TEMPLATE, type MultipleChoiceTemplate } from './multiple-choice.js';
import { isScienceQaRecord, scienceQaRecordToExample } from './scienceqa.js';

export type ExampleField = 'instruction' | 'input' | 'output' | 'tags' | 'split' | 'image';

/** Our field -> the key (JSON) or column (CSV) holding it. */
export type FieldMap = Partial<Record<ExampleField, string>>;

export const FIELD_ALIASES: Readonly<Record<ExampleField, readonly string[]>> = {
  instruction: ['instruction', 'prompt', 'question', 'query'],
  input: ['input', 'context'],
  output: ['output', 'response', 'answer', 'completion'],
  tags: ['tags'],
  split: ['split'],
  image: ['image'],
};

export type RecordShape = 'auto' | 'alpaca' | 'conversation' | 'scienceqa';

export interface RecordOptions {
  shape: RecordShape;
  fieldMap: FieldMap;
  conversation: ConversationMode;
  /** Longest instruction/input/output accepted, in characters. */
  maxFieldChars: number;
  /** How multiple-choice questions are written (multiple-choice.ts); default LLaMA-Adapter's ScienceQA format. */
  multipleChoice?: MultipleChoiceTemplate;
}

/** An example before it is stored: its image is still a reference (a path or bytes), checked by the importer. */
export type ExampleDraft = Omit<NewExample, 'source' | 'sourceLine' | 'image'> & { imageRef?: ImageRef };

export const SPLIT_NAMES: Readonly<Record<string, Split>> = { train: 'train', val: 'val', validation: 'val', dev: 'val', test: 'test' };

type Result = { examples: ExampleDraft[]; problems: FieldProblem[] };

/** Checks one parsed JSON record (or parquet row). */
export function recordToExamples(value: unknown, options: RecordOptions): Result {
  if (!isPlainObject(value)) {
    return { examples: [], problems: [{ field: null, message: `expected an object with instruction, input and output, got ${typeName(value)}` }] };
  }
  const conversation = isConversation(value);
  let result: Result;
  if (options.shape === 'scienceqa' || (options.shape === 'auto' && !conversation && isScienceQaRecord(value))) {
    result = scienceQaRecordToExample(value, options.multipleChoice ?? DEFAULT_MULTIPLE_CHOICE_TEMPLATE);
    if (!result.problems.length) result.problems.push(...checkLengths(result.examples[0]!, options.maxFieldChars));
  } else if (options.shape === 'auto' && !conversation && isSeedTaskRecord(value)) {
    result = seedTaskToExamples(value, options);
  } else if (options.shape === 'conversation' || (options.shape === 'auto' && conversation)) {
    if (!conversation) return { examples: [], problems: [{ field: 'conversations', message: 'missing; expected a "conversations" or "messages" list' }] };
    result = conversationToExamples(value, options.conversation);
    const key = value.conversations !== undefined ? 'conversations' : 'messages';
    for (const ex of result.examples) {
      ex.instruction = stripImageTokens(ex.instruction);
      ex.input = stripImageTokens(ex.input);
      ex.output = stripImageTokens(ex.output);
      if (ex.instruction === '') result.problems.push({ field: key, message: 'a user turn holds nothing but the <image> placeholder' });
      result.problems.push(...checkLengths(ex, options.maxFieldChars, (f) => `${key} (as ${f})`));
    }
  } else {
    result = alpacaFields((name) => value[name], (name) => name in value, options);
  }
  return withImage(result, value[options.fieldMap.image ?? 'image'], options.fieldMap.image ?? 'image');
}

/** Stanford Alpaca's seed_tasks.jsonl: {id, name, instruction, instances: [{input, output}], is_classification}. */
function isSeedTaskRecord(value: Record<string, unknown>): boolean {
  return typeof value.instruction === 'string' && Array.isArray(value.instances) && !('output' in value);
}

/** One example per instance; the task's id, name and is_classification go into the example's meta (and tags). */
function seedTaskToExamples(value: Record<string, unknown>, options: RecordOptions): Result {
  const instances = value.instances as unknown[];
  if (instances.length === 0) return { examples: [], problems: [{ field: 'instances', message: 'is empty; a seed task needs at least one {input, output} instance' }] };
  const examples: ExampleDraft[] = [];
  const problems: FieldProblem[] = [];
  const meta: Record<string, unknown> = {};
  for (const key of ['id', 'name', 'is_classification'] as const) if (value[key] !== undefined) meta[key] = value[key];
  const tags = value.is_classification === true ? ['classification'] : [];
  instances.forEach((instance, i) => {
    if (!isPlainObject(instance)) {
      problems.push({ field: `instances[${i}]`, message: `expected an object {input, output}, got ${typeName(instance)}` });
      return;
    }
    const one = alpacaFields((name) => (name === 'instruction' ? value.instruction : instance[name]), (name) => (name === 'instruction' ? true : name in instance), options);
    for (const p of one.problems) problems.push({ field: p.field === null || p.field === 'instruction' ? p.field : `instances[${i}].${p.field}`, message: p.message });
    for (const ex of one.examples) examples.push({ ...ex, tags: [...new Set([...(ex.tags ?? []), ...tags])], meta: { ...meta, instance: i } });
  });
  return problems.length ? { examples: [], problems } : { examples, problems };
}

/** Checks one CSV/TSV row (all cells are text). */
export function rowToExamples(cells: Record<string, string>, options: RecordOptions): Result {
  const key = options.fieldMap.image;
  return withImage(alpacaFields((name) => cells[name], (name) => name in cells, options), key === undefined ? undefined : cells[key], key ?? 'image');
}

/** Every example of a record shows the record's image (a chat's each-turn examples all see it). */
function withImage(result: Result, value: unknown, key: string): Result {
  const { ref, problem } = toImageRef(value);
  if (problem) result.problems.push({ field: key, message: problem });
  if (result.problems.length) return { examples: [], problems: result.problems };
  if (ref) for (const ex of result.examples) ex.imageRef = ref;
  return result;
}

/**
 * LLaVA marks where the picture goes with "<image>" (usually "<image>\n" before the question or "\n<image>"
 * after it). The token and the line break beside it are removed.
 */
export function stripImageTokens(text: string): string {
  if (!text.includes('<image>')) return text;
  return text
    .replace(/<image>\n?|\n?<image>/g, '')
    .trim();
}

/** For CSV: which column feeds each field, or the reason the header cannot be used. */
export function resolveColumns(header: string[], fieldMap: FieldMap): { columns: FieldMap; missing: string | null } {
  const columns: FieldMap = {};
  const lower = new Map(header.map((h) => [h.toLowerCase(), h]));
  for (const field of Object.keys(FIELD_ALIASES) as ExampleField[]) {
    const wanted = fieldMap[field];
    if (wanted !== undefined) {
      if (!header.includes(wanted)) return { columns, missing: `the field map names column "${wanted}" for ${field}, but the header has ${header.map((h) => `"${h}"`).join(', ')}` };
      columns[field] = wanted;
      continue;
    }
    const alias = FIELD_ALIASES[field].find((a) => lower.has(a));
    if (alias) columns[field] = lower.get(alias)!;
  }
  for (const required of ['instruction', 'output'] as const) {
    if (!columns[required]) {
      return {
        columns,
        missing: `no column for ${required} (looked for ${FIELD_ALIASES[required].join(', ')}); the header has ${header.map((h) => `"${h}"`).join(', ')}. Map one with ${required}=COLUMN`,
      };
    }
  }
  return { columns, missing: null };
}

function alpacaFields(
  get: (name: string) => unknown,
  has: (name: string) => boolean,
  options: RecordOptions,
): { examples: ExampleDraft[]; problems: FieldProblem[] } {
  const problems: FieldProblem[] = [];
  const keyFor = (field: ExampleField) => options.fieldMap[field] ?? FIELD_ALIASES[field].find(has) ?? FIELD_ALIASES[field][0]!;

  const text = (field: 'instruction' | 'input' | 'output', required: boolean): string => {
    const key = keyFor(field);
    let v = get(key);
    if (v instanceof Uint8Array) {
      // A parquet BYTE_ARRAY column without a STRING annotation: text, if it is UTF-8.
      try {
        v = new TextDecoder('utf-8', { fatal: true }).decode(v);
      } catch {
        problems.push({ field: key, message: `expected text, got ${typeName(v)} that is not UTF-8` });
        return '';
      }
    }
    if (v === undefined || v === null) {
      if (required) problems.push({ field: key, message: `missing; expected the ${field} text${options.fieldMap[field] ? '' : ` (looked for ${FIELD_ALIASES[field].join(', ')})`}` });
      return '';
    }
    if (typeof v !== 'string') {
      problems.push({ field: key, message: `expected text, got ${typeName(v)}` });
      return '';
    }
    if (required && v.trim() === '') problems.push({ field: key, message: `is empty; every example needs ${field === 'output' ? 'an output to learn' : 'an instruction'}` });
    return v;
  };

  const draft: ExampleDraft = { instruction: text('instruction', true), input: text('input', false), output: text('output', true) };

  const tagsKey = keyFor('tags');
  const tags = get(tagsKey);
  if (tags !== undefined && tags !== null && tags !== '') {
    if (typeof tags === 'string') draft.tags = tags.split(/[;,]/).map((t) => t.trim()).filter(Boolean);
    else if (Array.isArray(tags) && tags.every((t) => typeof t === 'string')) draft.tags = (tags as string[]).map((t) => t.trim()).filter(Boolean);
    else problems.push({ field: tagsKey, message: `expected a list of text tags (or text separated by "," or ";"), got ${JSON.stringify(tags).slice(0, 60)}` });
  }

  const splitKey = keyFor('split');
  const split = get(splitKey);
  if (split !== undefined && split !== null && split !== '') {
    const name = typeof split === 'string' ? SPLIT_NAMES[split.trim().toLowerCase()] : undefined;
    if (name) draft.split = name;
    else problems.push({ field: splitKey, message: `expected one of ${SPLITS.join(', ')} (or validation, dev), got ${JSON.stringify(split)}` });
  }

  // Our own export's metadata (--meta) reads back.
  const meta = get('meta');
  if (isPlainObject(meta)) draft.meta = meta;

  problems.push(...checkLengths(draft, options.maxFieldChars, keyFor));
  return problems.length ? { examples: [], problems } : { examples: [draft], problems };
}

export function checkLengths(ex: ExampleDraft, max: number, keyFor: (f: ExampleField) => string = (f) => f): FieldProblem[] {
  const out: FieldProblem[] = [];
  for (const field of ['instruction', 'input', 'output'] as const) {
    const n = ex[field].length;
    if (n > max) out.push({ field: keyFor(field), message: `is ${n} characters long; the limit is ${max} (raise the field size limit to import it)` });
  }
  return out;
}
