// ScienceQA's numbers, computed as its own tools compute them (lupantech/ScienceQA):
//
// Answer extraction (models/run_gpt3.py): the output must contain exactly one match of
// /The answer is ([A-Z])./ and the letter must be one of the question's choices. LLaMA-Adapter's figure writes
// the letter in parentheses ("The answer is (A)."), so the parentheses are optional here; nothing else is
// loosened (case, wording, a second "The answer is" all fail). The official script then guesses a random
// choice for a failed answer; here it is counted wrong, reported, and written as -1 in the results file (which
// ScienceQA's scorer also counts wrong).
//
// The accuracy table (tools/evaluate_acc.py): over the problems whose "split" is the one scored (test):
//   acc_natural / acc_social / acc_language   subject = natural / social / language science
//   acc_has_text                              a non-empty hint            (TXT)
//   acc_has_image                             an image                    (IMG)
//   acc_no_context                            neither                     (NO)
//   acc_grade_1_6 / acc_grade_7_12            grade1..grade6 / grade7..grade12
//   acc_average                               every question of the split
// each `correct / total * 100` printed "{:.2f}" (Python's rounding: the exact binary value, ties to even).
// Per-topic accuracies are added the same way. The official script divides the average by the number of
// results (and asserts 4241 of them, the test split); here it is the number of questions in the split, the
// same whenever the official script runs at all; results for other pids are ignored and counted.
//
// Pure: no files except the two readers at the end.

import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CHOICE_LETTERS, DEFAULT_MULTIPLE_CHOICE_TEMPLATE, multipleChoiceAnswer, multipleChoiceInstruction, type MultipleChoiceTemplate } from '../datasets/multiple-choice.js';

export class ScienceQaError extends Error {
  override name = 'ScienceQaError';
}

/** The official keys, in the order tools/evaluate_acc.py prints them. */
export const SCIENCEQA_KEYS = [
  'acc_natural',
  'acc_social',
  'acc_language',
  'acc_has_text',
  'acc_has_image',
  'acc_no_context',
  'acc_grade_1_6',
  'acc_grade_7_12',
  'acc_average',
] as const;
export type ScienceQaKey = (typeof SCIENCEQA_KEYS)[number];

/** The fields of a problems.json entry that scoring reads. */
export interface ScienceQaProblem {
  choices: string[];
  answer: number;
  hint: string | null;
  /** "image.png", or null; any truthy value counts as "has an image". */
  image: unknown;
  subject: string;
  grade: string;
  topic: string;
  split: string;
}

export type ScienceQaProblems = Record<string, ScienceQaProblem>;

// --- answers -----------------------------------------------------------------------------------------------------

export type ParsedAnswer = { index: number; letter: string } | { index: null; reason: 'no answer' | 'several answers' | 'not a choice'; letter?: string };

const ANSWER = /The answer is \(?([A-Z])\)?./g;

/** The choice a greedy output names, as ScienceQA's answer extraction reads it (see the top of this file). */
export function parseScienceQaAnswer(text: string, choices: number): ParsedAnswer {
  const found = [...text.matchAll(ANSWER)].map((m) => m[1]!);
  if (found.length === 0) return { index: null, reason: 'no answer' };
  if (found.length > 1) return { index: null, reason: 'several answers' };
  const index = CHOICE_LETTERS.indexOf(found[0]!);
  if (index >= choices) return { index: null, reason: 'not a choice', letter: found[0]! };
  return { index, letter: found[0]! };
}

export interface PredictionItem {
  pid: string;
  /** The model's greedy output. */
  output: string;
  /** How many choices the question has. */
  choices: number;
}

export interface Predictions {
  /** ScienceQA's results format: pid -> choice index, -1 when the output names no choice. */
  results: Record<string, number>;
  unparseable: { pid: string; reason: string; output: string }[];
}

/** Greedy outputs -> the results file's contents (`{"results": predictions.results}`) and what failed to parse. */
export function scienceQaPredictions(items: Iterable<PredictionItem>): Predictions {
  const results: Record<string, number> = {};
  const unparseable: Predictions['unparseable'] = [];
  for (const item of items) {
    const parsed = parseScienceQaAnswer(item.output, item.choices);
    results[item.pid] = parsed.index ?? -1;
    if (parsed.index === null) unparseable.push({ pid: item.pid, reason: parsed.letter ? `${parsed.reason} (${parsed.letter})` : parsed.reason, output: item.output });
  }
  return { results, unparseable };
}

/**
 * Where choice ranking by likelihood plugs in (instead of parsing a greedy answer): the engine scores each
 * candidate answer text after the prompt (summed log-probability of its tokens) and the best one is the
 * prediction. `scoreContinuations(prompt, continuations)` returns one score per continuation, higher is better.
 */
export type ContinuationScorer = (instruction: string, continuations: string[]) => Promise<number[]>;

export async function predictByLikelihood(
  question: { question: string; context: string; choices: string[] },
  score: ContinuationScorer,
  template: MultipleChoiceTemplate = DEFAULT_MULTIPLE_CHOICE_TEMPLATE,
): Promise<number> {
  const answers = question.choices.map((_, i) => multipleChoiceAnswer(i, template));
  const scores = await score(multipleChoiceInstruction(question, template), answers);
  if (scores.length !== answers.length) throw new ScienceQaError(`the scorer returned ${scores.length} scores for ${answers.length} choices`);
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i]! > scores[best]!) best = i;
  return best;
}

// --- the table ------------------------------------------------------------------------------------------------------

/**
 * Python's "{:.2f}".format(x): rounds the exact binary value of x, ties to even. (toFixed rounds ties up:
 * (0.125).toFixed(2) is "0.13" where Python prints "0.12".)
 */
export function formatPercent(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  // Every digit of the double: toFixed is exact, and a percentage of at most a million questions has no more
  // than ~70 fractional digits.
  const exact = Math.abs(x).toFixed(100).replace(/0+$/, '');
  const [whole, frac = ''] = exact.split('.') as [string, string?];
  const digits = (frac + '000').slice(0, 2);
  const rest = frac.slice(2);
  let scaled = BigInt(whole + digits);
  const half = rest === '' ? -1 : rest[0]! > '5' ? 1 : rest[0]! < '5' ? -1 : /[1-9]/.test(rest.slice(1)) ? 1 : 0;
  if (half > 0 || (half === 0 && scaled % 2n === 1n)) scaled += 1n;
  const s = scaled.toString().padStart(3, '0');
  const out = `${s.slice(0, -2)}.${s.slice(-2)}`;
  return x < 0 && scaled !== 0n ? `-${out}` : out;
}

export interface ScienceQaScores {
  split: string;
  /** Questions in the split. */
  questions: number;
  correct: number;
  /** The official keys, as numbers with two decimals; null where the split has no question of that kind. */
  scores: Record<ScienceQaKey, number | null>;
  /** The same as tools/evaluate_acc.py prints them ("85.19"). */
  printed: Record<ScienceQaKey, string | null>;
  /** Questions behind each score. */
  counts: Record<ScienceQaKey, number>;
  /** Accuracy per topic (two decimals), topics sorted by name. */
  topics: Record<string, number>;
  /** Questions predicted with an index that is no choice of theirs (-1 for an unparseable answer). */
  notAChoice: string[];
  /** Results for pids outside the split (ignored). */
  ignored: number;
}

const LOW_GRADES = new Set(['grade1', 'grade2', 'grade3', 'grade4', 'grade5', 'grade6']);
const HIGH_GRADES = new Set(['grade7', 'grade8', 'grade9', 'grade10', 'grade11', 'grade12']);

const KINDS: Record<Exclude<ScienceQaKey, 'acc_average'>, (p: ScienceQaProblem) => boolean> = {
  acc_natural: (p) => p.subject === 'natural science',
  acc_social: (p) => p.subject === 'social science',
  acc_language: (p) => p.subject === 'language science',
  acc_has_text: (p) => !!p.hint,
  acc_has_image: (p) => !!p.image,
  acc_no_context: (p) => !p.hint && !p.image,
  acc_grade_1_6: (p) => LOW_GRADES.has(p.grade),
  acc_grade_7_12: (p) => HIGH_GRADES.has(p.grade),
};

export interface ScoreOptions {
  /** The split scored (default "test", as the official script). */
  split?: string;
  /** Count questions the results leave out as wrong instead of refusing (the official script fails on them). */
  allowMissing?: boolean;
}

/** ScienceQA's accuracy table for `results` (pid -> choice index). */
export function scoreScienceQa(problems: ScienceQaProblems, results: Record<string, number>, options: ScoreOptions = {}): ScienceQaScores {
  const split = options.split ?? 'test';
  const pids = Object.keys(problems).filter((pid) => problems[pid]!.split === split);
  if (pids.length === 0) throw new ScienceQaError(`no problem is in the "${split}" split`);
  const missing = pids.filter((pid) => !(pid in results));
  if (missing.length && !options.allowMissing) {
    throw new ScienceQaError(`the results have no prediction for ${missing.length} of the ${pids.length} "${split}" questions (pid ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''})`);
  }
  const inSplit = new Set(pids);
  const ignored = Object.keys(results).filter((pid) => !inSplit.has(pid)).length;

  const right = new Map<string, boolean>();
  const notAChoice: string[] = [];
  for (const pid of pids) {
    const p = problems[pid]!;
    const pred = pid in results ? results[pid]! : -1;
    if (!(pred >= 0 && pred < p.choices.length)) notAChoice.push(pid);
    right.set(pid, pred === p.answer);
  }
  const accuracy = (chosen: string[]): { value: number | null; printed: string | null } => {
    if (chosen.length === 0) return { value: null, printed: null };
    const printed = formatPercent((chosen.filter((pid) => right.get(pid)).length / chosen.length) * 100);
    return { value: Number(printed), printed };
  };

  const scores = {} as Record<ScienceQaKey, number | null>;
  const printed = {} as Record<ScienceQaKey, string | null>;
  const counts = {} as Record<ScienceQaKey, number>;
  for (const key of SCIENCEQA_KEYS) {
    const chosen = key === 'acc_average' ? pids : pids.filter((pid) => KINDS[key](problems[pid]!));
    const a = accuracy(chosen);
    scores[key] = a.value;
    printed[key] = a.printed;
    counts[key] = chosen.length;
  }
  const topics: Record<string, number> = {};
  for (const topic of [...new Set(pids.map((pid) => problems[pid]!.topic))].sort()) {
    topics[topic] = accuracy(pids.filter((pid) => problems[pid]!.topic === topic)).value!;
  }
  return { split, questions: pids.length, correct: pids.filter((pid) => right.get(pid)).length, scores, printed, counts, topics, notAChoice, ignored };
}

/**
 * Problems for scoring from stored examples (what the ScienceQA importers keep in `meta`): keyed by the pid
 * when the folder gave one, else `example:<id>` (the Hugging Face copy has no pids). The example's own image
 * decides IMG; its split is the one scored.
 */
export function problemsFromExamples(examples: Iterable<{ id: number; image: string | null; split: string | null; meta: Record<string, unknown> }>): ScienceQaProblems {
  const out: ScienceQaProblems = {};
  for (const ex of examples) {
    const pid = typeof ex.meta.pid === 'string' ? ex.meta.pid : `example:${ex.id}`;
    out[pid] = checkProblem({ ...ex.meta, image: ex.image, split: ex.split ?? '' }, `example ${ex.id}`);
  }
  return out;
}

function checkProblem(value: unknown, where: string): ScienceQaProblem {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ScienceQaError(`${where}: expected an object`);
  const p = value as Record<string, unknown>;
  const field = (name: string, ok: boolean, expected: string) => {
    if (!ok) throw new ScienceQaError(`${where}: field "${name}" must be ${expected}, got ${JSON.stringify(p[name]) ?? 'nothing'}`);
  };
  field('choices', Array.isArray(p.choices) && p.choices.length > 0, 'a list of choices');
  field('answer', Number.isInteger(p.answer) && (p.answer as number) >= 0 && (p.answer as number) < (p.choices as unknown[]).length, 'the index of a choice');
  field('hint', p.hint === undefined || p.hint === null || typeof p.hint === 'string', 'text or null');
  field('subject', typeof p.subject === 'string', 'text');
  field('grade', typeof p.grade === 'string', 'text ("grade1" ... "grade12")');
  field('split', typeof p.split === 'string', 'text');
  return {
    choices: p.choices as string[],
    answer: p.answer as number,
    hint: (p.hint as string | null | undefined) ?? null,
    image: p.image ?? null,
    subject: p.subject as string,
    grade: p.grade as string,
    topic: typeof p.topic === 'string' ? p.topic : '',
    split: p.split as string,
  };
}

// --- files ------------------------------------------------------------------------------------------------------------

function readJson(file: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ScienceQaError(`cannot read the ${what} ${file} (${(err as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ScienceQaError(`${file}: not valid JSON (${(err as Error).message})`);
  }
}

/** ScienceQA's problems.json (or the folder holding it), checked field by field. */
export function readProblemsFile(path: string): ScienceQaProblems {
  let file = path;
  try {
    if (statSync(path).isDirectory()) file = join(path, 'problems.json');
  } catch {
    // reported by readJson
  }
  const value = readJson(file, 'problems file');
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ScienceQaError(`${file}: expected an object of problems keyed by pid`);
  const out: ScienceQaProblems = {};
  for (const [pid, p] of Object.entries(value)) out[pid] = checkProblem(p, `${file}: problem ${JSON.stringify(pid)}`);
  return out;
}

/** A results file `{"results": {"<pid>": <choice index>}}` (what ScienceQA's scripts and ours write). */
export function readResultsFile(file: string): Record<string, number> {
  const value = readJson(file, 'results file');
  const results = (value as { results?: unknown } | null)?.results;
  if (typeof results !== 'object' || results === null || Array.isArray(results)) {
    throw new ScienceQaError(`${file}: expected {"results": {"<pid>": <choice index>, ...}}`);
  }
  const out: Record<string, number> = {};
  for (const [pid, v] of Object.entries(results)) {
    // As the official int(...): whole numbers, or text holding one.
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*[-+]?\d+\s*$/.test(v) ? Number(v) : NaN;
    if (!Number.isFinite(n)) throw new ScienceQaError(`${file}: results[${JSON.stringify(pid)}] must be a choice index, got ${JSON.stringify(v)}`);
    out[pid] = Math.trunc(n);
  }
  return out;
}
