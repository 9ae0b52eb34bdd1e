// From a raw record (a parsed JSON value or a CSV row) to checked examples, or to issues naming the field.
//
// Alpaca-style fields are looked up by name, first match wins, unless a field map names the key/column:
//   instruction <- instruction | prompt | question | query
//   input       <- input | context                       (optional; missing or null means "")
//   output      <- output | response | answer | completion
//   tags        <- tags   (a list of text, or text separated by "," or ";")   (optional)
//   split       <- split  (train | val | validation | dev | test)             (optional)

import { SPLITS, type NewExample, type Split } from '../store/datasets.js';
import { conversationToExamples, isConversation, isPlainObject, typeName, type ConversationMode, type FieldProblem } from './conversations.js';

export type ExampleField = 'instruction' | 'input' | 'output' | 'tags' | 'split';

/** Our field -> the key (JSON) or column (CSV) holding it. */
export type FieldMap = Partial<Record<ExampleField, string>>;

export const FIELD_ALIASES: Readonly<Record<ExampleField, readonly string[]>> = {
  instruction: ['instruction', 'prompt', 'question', 'query'],
  input: ['input', 'context'],
  output: ['output', 'response', 'answer', 'completion'],
  tags: ['tags'],
  split: ['split'],
};

export type RecordShape = 'auto' | 'alpaca' | 'conversation';

export interface RecordOptions {
  shape: RecordShape;
  fieldMap: FieldMap;
  conversation: ConversationMode;
  /** Longest instruction/input/output accepted, in characters. */
  maxFieldChars: number;
}

export type ExampleDraft = Omit<NewExample, 'source' | 'sourceLine'>;

const SPLIT_NAMES: Record<string, Split> = { train: 'train', val: 'val', validation: 'val', dev: 'val', test: 'test' };

/** Checks one parsed JSON record. */
export function recordToExamples(value: unknown, options: RecordOptions): { examples: ExampleDraft[]; problems: FieldProblem[] } {
  if (!isPlainObject(value)) {
    return { examples: [], problems: [{ field: null, message: `expected an object with instruction, input and output, got ${typeName(value)}` }] };
  }
  const conversation = isConversation(value);
  if (options.shape === 'conversation' || (options.shape === 'auto' && conversation)) {
    if (!conversation) return { examples: [], problems: [{ field: 'conversations', message: 'missing; expected a "conversations" or "messages" list' }] };
    const result = conversationToExamples(value, options.conversation);
    const problems = [...result.problems];
    const key = value.conversations !== undefined ? 'conversations' : 'messages';
    for (const ex of result.examples) problems.push(...checkLengths(ex, options.maxFieldChars, (f) => `${key} (as ${f})`));
    return problems.length ? { examples: [], problems } : result;
  }
  return alpacaFields((name) => value[name], (name) => name in value, options);
}

/** Checks one CSV/TSV row (all cells are text). */
export function rowToExamples(cells: Record<string, string>, options: RecordOptions): { examples: ExampleDraft[]; problems: FieldProblem[] } {
  return alpacaFields((name) => cells[name], (name) => name in cells, options);
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
    const v = get(key);
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

  problems.push(...checkLengths(draft, options.maxFieldChars, keyFor));
  return problems.length ? { examples: [], problems } : { examples: [draft], problems };
}

function checkLengths(ex: ExampleDraft, max: number, keyFor: (f: ExampleField) => string = (f) => f): FieldProblem[] {
  const out: FieldProblem[] = [];
  for (const field of ['instruction', 'input', 'output'] as const) {
    const n = ex[field].length;
    if (n > max) out.push({ field: keyFor(field), message: `is ${n} characters long; the limit is ${max} (raise the field size limit to import it)` });
  }
  return out;
}
