// ScienceQA (Lu et al., 2022; lupantech/ScienceQA) as users download it:
//
//   the published folder        problems.json   {pid: {question, choices, answer, hint, image, task, grade,
//                                                      subject, topic, category, skill, lecture, solution, split}}
//                               pid_splits.json {train, val, test, minitrain, minival, minitest, trainval: [pid]}
//                               images/<split>/<pid>/image.png   (for the problems whose "image" is "image.png")
//   the Hugging Face copy       parquet shards train / validation / test with the same columns, the image as a
//                               struct {bytes, path}, and no pid (see parquet.ts and import.ts)
//
// Each problem becomes one example: instruction/input/output from the multiple-choice template
// (multiple-choice.ts), its image, and every field of the problem kept as `meta` (plus `pid` for the folder) so
// that evaluation (evaluation/scienceqa.ts) can score it as ScienceQA's tools do. Splits come from
// pid_splits.json (train / val / test); the mini* lists become tags (`minitrain`, `minival`, `minitest`) so a
// quick subset stays selectable; `trainval` is the union of train and val and is not needed.

import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Split } from '../store/datasets.js';
import { isPlainObject, typeName, type FieldProblem } from './conversations.js';
import { FatalFileIssue } from './issues.js';
import { multipleChoiceExample, type MultipleChoiceTemplate, CHOICE_LETTERS } from './multiple-choice.js';
import type { ExampleDraft } from './records.js';

export const PROBLEMS_FILE = 'problems.json';
export const PID_SPLITS_FILE = 'pid_splits.json';
export const MINI_SPLITS = ['minitrain', 'minival', 'minitest'] as const;
const SPLIT_LISTS: readonly [string, Split][] = [
  ['train', 'train'],
  ['val', 'val'],
  ['test', 'test'],
];

/** A record with a question, a list of choices and the index of the right one. */
export function isScienceQaRecord(v: Record<string, unknown>): boolean {
  return typeof v.question === 'string' && Array.isArray(v.choices) && typeof v.answer === 'number' && v.instruction === undefined;
}

export function isScienceQaFolder(dir: string): boolean {
  return existsSync(join(dir, PROBLEMS_FILE)) && existsSync(join(dir, PID_SPLITS_FILE));
}

/** One problem as an example (its image reference is set by the caller: the folder or the parquet row). */
export function scienceQaRecordToExample(value: Record<string, unknown>, template: MultipleChoiceTemplate): { examples: ExampleDraft[]; problems: FieldProblem[] } {
  const problems: FieldProblem[] = [];
  const question = value.question;
  if (typeof question !== 'string' || question.trim() === '') problems.push({ field: 'question', message: `expected the question text, got ${typeName(question)}` });
  const choices = value.choices;
  if (!Array.isArray(choices) || choices.length < 2 || choices.length > CHOICE_LETTERS.length) {
    problems.push({ field: 'choices', message: `expected a list of 2 to ${CHOICE_LETTERS.length} choices, got ${Array.isArray(choices) ? `${choices.length}` : typeName(choices)}` });
  } else {
    choices.forEach((c, i) => {
      if (typeof c !== 'string' || c.trim() === '') problems.push({ field: `choices[${i}]`, message: `expected the choice's text, got ${typeName(c)}` });
    });
  }
  const answer = value.answer;
  const n = Array.isArray(choices) ? choices.length : 0;
  if (typeof answer !== 'number' || !Number.isInteger(answer) || answer < 0 || answer >= n) {
    problems.push({ field: 'answer', message: `expected the index of the right choice (0 to ${n - 1}), got ${typeName(answer)}` });
  }
  const hint = value.hint ?? '';
  if (typeof hint !== 'string') problems.push({ field: 'hint', message: `expected text or null, got ${typeName(hint)}` });
  if (problems.length) return { examples: [], problems };

  const meta: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    // The image is the example's own column; bytes never go into meta (a path such as "image.png" does).
    if (k === 'image' && v !== null && typeof v !== 'string') continue;
    if (v instanceof Uint8Array) continue;
    meta[k] = v;
  }
  const text = multipleChoiceExample({ question: question as string, context: hint as string, choices: choices as string[], answer: answer as number }, template);
  const draft: ExampleDraft = { ...text, meta };
  const split = typeof value.split === 'string' ? ({ train: 'train', val: 'val', validation: 'val', test: 'test' } as Record<string, Split>)[value.split] : undefined;
  if (split) draft.split = split;
  return { examples: [draft], problems: [] };
}

export interface ScienceQaProblemRecord {
  pid: string;
  /** Position in problems.json. */
  index: number;
  /** Line of problems.json where the problem starts. */
  line: number;
  value: Record<string, unknown>;
  split: Split | null;
  tags: string[];
  /** images/<split>/<pid>/<image>, relative to the folder, when the problem has an image. */
  imagePath: string | null;
}

export interface ScienceQaFolder {
  problems: ScienceQaProblemRecord[];
  /** sha256 over problems.json and pid_splits.json. */
  sha256: string;
}

const fatal = (file: string, message: string, line: number | null = null) => new FatalFileIssue({ file, line, index: null, field: null, message });

async function readJsonFile(dir: string, name: string): Promise<{ value: unknown; text: string; bytes: Buffer }> {
  let bytes: Buffer;
  try {
    bytes = await readFile(join(dir, name));
  } catch (err) {
    throw fatal(name, `cannot read ${join(dir, name)} (${(err as Error).message})`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw fatal(name, 'the file is not valid UTF-8 text');
  }
  try {
    return { value: JSON.parse(text), text, bytes };
  } catch (err) {
    throw fatal(name, `not valid JSON (${(err as Error).message}); truncated?`);
  }
}

/** Reads the folder's two JSON files and lays out each problem with its split, tags and image path. */
export async function readScienceQaFolder(dir: string): Promise<ScienceQaFolder> {
  const problemsFile = await readJsonFile(dir, PROBLEMS_FILE);
  const splitsFile = await readJsonFile(dir, PID_SPLITS_FILE);
  if (!isPlainObject(problemsFile.value)) throw fatal(PROBLEMS_FILE, `expected an object of problems keyed by pid, got ${typeName(problemsFile.value)}`);
  if (!isPlainObject(splitsFile.value)) throw fatal(PID_SPLITS_FILE, `expected an object of pid lists (train, val, test, ...), got ${typeName(splitsFile.value)}`);
  const problems = problemsFile.value;
  const lists = splitsFile.value;

  const splitOf = new Map<string, Split>();
  for (const [key, split] of SPLIT_LISTS) {
    const pids = lists[key];
    if (pids === undefined) throw fatal(PID_SPLITS_FILE, `has no "${key}" list`);
    if (!Array.isArray(pids)) throw fatal(PID_SPLITS_FILE, `"${key}" must be a list of pids, got ${typeName(pids)}`);
    for (const pid of pids) {
      const id = String(pid);
      if (!(id in problems)) throw fatal(PID_SPLITS_FILE, `"${key}" lists pid ${JSON.stringify(id)}, which ${PROBLEMS_FILE} does not have`);
      const other = splitOf.get(id);
      if (other) throw fatal(PID_SPLITS_FILE, `pid ${JSON.stringify(id)} is in both "${other}" and "${key}"`);
      splitOf.set(id, split);
    }
  }
  const tagsOf = new Map<string, string[]>();
  for (const mini of MINI_SPLITS) {
    const pids = lists[mini];
    if (pids === undefined) continue;
    if (!Array.isArray(pids)) throw fatal(PID_SPLITS_FILE, `"${mini}" must be a list of pids, got ${typeName(pids)}`);
    for (const pid of pids) {
      const id = String(pid);
      if (!(id in problems)) throw fatal(PID_SPLITS_FILE, `"${mini}" lists pid ${JSON.stringify(id)}, which ${PROBLEMS_FILE} does not have`);
      tagsOf.set(id, [...(tagsOf.get(id) ?? []), mini]);
    }
  }

  const lines = problemLines(problemsFile.text);
  const out: ScienceQaProblemRecord[] = [];
  let index = 0;
  for (const [pid, value] of Object.entries(problems)) {
    const record = isPlainObject(value) ? value : { question: value };
    const split = splitOf.get(pid) ?? null;
    const folder = typeof record.split === 'string' && record.split !== '' ? record.split : split;
    const image = record.image;
    const imagePath = typeof image === 'string' && image !== '' && folder ? `images/${folder}/${pid}/${image}` : null;
    out.push({ pid, index: index++, line: lines.get(pid) ?? 1, value: record, split, tags: tagsOf.get(pid) ?? [], imagePath });
  }
  const sha = createHash('sha256').update(problemsFile.bytes).update(splitsFile.bytes).digest('hex');
  return { problems: out, sha256: sha };
}

/** Where each top-level `"pid": {` starts in problems.json (the real file is indented, one key per line). */
function problemLines(text: string): Map<string, number> {
  const out = new Map<string, number>();
  let line = 1;
  let from = 0;
  const keyAt = /^[ \t]{0,8}"([^"\\]+)"\s*:\s*\{/gm;
  for (let m = keyAt.exec(text); m; m = keyAt.exec(text)) {
    for (let i = text.indexOf('\n', from); i !== -1 && i < m.index; i = text.indexOf('\n', i + 1)) line++;
    from = m.index;
    if (!out.has(m[1]!)) out.set(m[1]!, line);
  }
  return out;
}
