// Self-instruct: grow a dataset with demonstrations written by a model, prompted with a few sampled seed tasks.
//
// The method follows Wang et al., "Self-Instruct: Aligning Language Models with Self-Generated Instructions"
// (2022) as simplified by Stanford Alpaca (one prompt yields several instruction/input/output triples):
//   1. sample `seedsPerPrompt` tasks from the seed pool and show them as numbered examples;
//   2. ask for `tasksPerPrompt` more in the same numbered format;
//   3. parse the numbered triples, and keep one only if it passes every filter: instruction length, no
//      banned word (tasks a text model cannot do), not starting with punctuation, a non-empty output, and
//      ROUGE-L below the threshold against every instruction already in the dataset, the seeds, and the ones
//      accepted so far;
//   4. repeat until `target` new examples or `maxRequests` requests, then add them all as one version with
//      provenance (generator, seeds, settings, filter counts).

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { DatasetVersion, ExampleText, NewExample } from '../store/datasets.js';
import { StoreError } from '../store/errors.js';
import type { DatasetId } from '../store/ids.js';
import type { Workspace } from '../store/workspace.js';
import { OpenAICompatibleGenerator, type OpenAICompatibleConfig, type TextGenerator } from './generator.js';
import { readDatasetFile } from './import.js';
import { formatIssue } from './issues.js';
import { seededRandom, sample } from './rng.js';
import { rougeLTokens, rougeTokens } from './rouge.js';

/** Tasks a text-only model cannot do or that tend to produce junk (Alpaca's filter list). */
export const DEFAULT_BANNED_WORDS = [
  'image', 'images', 'graph', 'graphs', 'picture', 'pictures', 'file', 'files', 'map', 'maps',
  'draw', 'plot', 'go to', 'video', 'audio', 'music', 'flowchart', 'diagram',
];

export type RejectReason = 'unparsed' | 'too-short' | 'too-long' | 'banned-word' | 'punctuation' | 'empty-output' | 'similar';

export interface SelfInstructOptions {
  datasetId: DatasetId;
  generator: TextGenerator;
  /** New examples wanted. */
  target: number;
  /** The seed pool (default: the bundled assets/seed_tasks.jsonl). */
  seeds?: ExampleText[];
  /** Where the seeds came from, for provenance (default 'bundled'). */
  seedSource?: string;
  seedsPerPrompt?: number;
  tasksPerPrompt?: number;
  /** Give up after this many requests even if short of `target` (default 2 * target / tasksPerPrompt + 3). */
  maxRequests?: number;
  /** Drop an instruction whose ROUGE-L F1 against any existing one reaches this (default 0.7). */
  rougeThreshold?: number;
  /** Instruction length bounds, in words (default 3 to 150). */
  minWords?: number;
  maxWords?: number;
  bannedWords?: string[];
  /** Seeds the sampling of seed tasks (and is passed to the generator). */
  seed?: number;
  temperature?: number;
  maxTokens?: number;
  signal?: AbortSignal;
  onProgress?: (progress: { requests: number; accepted: number; rejected: Record<RejectReason, number> }) => void;
}

export interface SelfInstructResult {
  /** null when nothing passed the filters. */
  version: DatasetVersion | null;
  added: ExampleText[];
  requests: number;
  rejected: Record<RejectReason, number>;
}

export interface ParsedTask extends ExampleText {
  number: number;
}

/** The settings key holding the OpenAI-compatible endpoint ({ baseUrl, model, apiKey? }) for self-instruct. */
export const GENERATOR_ENDPOINT_SETTING = 'selfInstruct.endpoint';

/** The generator for the endpoint saved in the workspace settings. */
export function endpointGeneratorFromSettings(ws: Workspace): OpenAICompatibleGenerator {
  const config = ws.settings.get<Partial<OpenAICompatibleConfig>>(GENERATOR_ENDPOINT_SETTING);
  if (!config?.baseUrl || !config.model) {
    throw new StoreError(`no generator endpoint configured: set ${GENERATOR_ENDPOINT_SETTING} to { baseUrl, model, apiKey }`);
  }
  return new OpenAICompatibleGenerator({ baseUrl: config.baseUrl, model: config.model, apiKey: config.apiKey, timeoutMs: config.timeoutMs });
}

/** The bundled seed set, as a path (found next to the source tree or next to a bundled build). */
export function bundledSeedTasksPath(): string {
  const candidates = ['../../assets/seed_tasks.jsonl', '../assets/seed_tasks.jsonl', './assets/seed_tasks.jsonl'];
  for (const rel of candidates) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new StoreError('the bundled seed tasks (assets/seed_tasks.jsonl) are missing from this installation');
}

/** Reads seed tasks from any dataset file our importer reads; every record must be valid. */
export async function loadSeedTasks(file = bundledSeedTasksPath()): Promise<ExampleText[]> {
  const { report, examples } = await readDatasetFile(file);
  const first = report.fatal ?? report.issues[0];
  if (first) throw new StoreError(`seed tasks: ${formatIssue(first)}`);
  return examples.map(({ instruction, input, output }) => ({ instruction, input, output }));
}

/** The prompt: instructions for the model, then the sampled seeds as tasks 1..k, then "k+1. Instruction:". */
export function buildSelfInstructPrompt(seeds: ExampleText[], tasksPerPrompt: number): string {
  const total = seeds.length + tasksPerPrompt;
  const lines = [
    `You are helping to write a varied set of tasks for training an AI assistant. Continue the numbered list below up to task ${total}.`,
    '',
    'Guidelines:',
    '1. Make every task different from the others: vary the verbs and the kind of task (open questions, classification, rewriting, brainstorming, code, math, extraction, advice, creative writing).',
    '2. An instruction is one or two sentences, phrased as a request a person would make.',
    '3. Only some tasks need an input. When one does, the input is the actual material (a sentence, a list, a short text), not a description of it; otherwise write <noinput>.',
    '4. The assistant must be able to do the task with text alone: no images, audio, browsing or files.',
    '5. The output is a correct, complete answer, under 150 words unless the task needs more.',
    '',
    `Write each task in exactly this format, separated by ###:`,
    '',
  ];
  seeds.forEach((s, k) => {
    const n = k + 1;
    lines.push('###', `${n}. Instruction: ${s.instruction}`, `${n}. Input:`, s.input.trim() ? s.input : '<noinput>', `${n}. Output:`, s.output);
  });
  lines.push('###', `${seeds.length + 1}. Instruction:`);
  return lines.join('\n');
}

const MARKER = /^\s*(?:#+\s*)?(\d+)\s*[.)]\s*(instruction|input|output)\s*:\s?(.*)$/i;
const NO_INPUT = /^\s*(<\s*no\s*input\s*>|no input|none|n\/a|-)?\s*$/i;

/**
 * Parses "N. Instruction: ... / N. Input: ... / N. Output: ..." blocks (### separators optional). A reply
 * that starts without a marker continues the prompt's last line, the instruction of task `firstNumber`.
 */
export function parseGeneratedTasks(text: string, firstNumber: number): ParsedTask[] {
  const byNumber = new Map<number, { instruction?: string[]; input?: string[]; output?: string[] }>();
  let current: string[] | null = null;
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  if (lines.length && !MARKER.test(lines.find((l) => l.trim() !== '' && !/^#+\s*$/.test(l.trim())) ?? '')) {
    lines.unshift(`${firstNumber}. Instruction:`);
  }
  for (const line of lines) {
    if (/^\s*#{3,}\s*$/.test(line)) {
      current = null;
      continue;
    }
    const m = MARKER.exec(line);
    if (m) {
      const n = Number(m[1]);
      const field = m[2]!.toLowerCase() as 'instruction' | 'input' | 'output';
      const task = byNumber.get(n) ?? {};
      byNumber.set(n, task);
      current = task[field] = m[3] ? [m[3]] : [];
      continue;
    }
    current?.push(line);
  }
  const tasks: ParsedTask[] = [];
  for (const [number, t] of [...byNumber].sort((a, b) => a[0] - b[0])) {
    if (!t.instruction || !t.output) continue;
    const input = (t.input ?? []).join('\n').trim();
    tasks.push({
      number,
      instruction: t.instruction.join('\n').trim(),
      input: NO_INPUT.test(input) ? '' : input,
      output: t.output.join('\n').trim(),
    });
  }
  return tasks;
}

function bannedWordIn(text: string, banned: string[]): boolean {
  const lower = ` ${text.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, ' ')} `;
  return banned.some((w) => lower.includes(` ${w.toLowerCase()} `));
}

export async function selfInstruct(ws: Workspace, options: SelfInstructOptions): Promise<SelfInstructResult> {
  const dataset = ws.datasets.get(options.datasetId);
  if (!Number.isInteger(options.target) || options.target <= 0) throw new StoreError(`self-instruct target must be a positive whole number, got ${options.target}`);
  const seeds = options.seeds ?? (await loadSeedTasks());
  if (seeds.length === 0) throw new StoreError('self-instruct needs at least one seed task');
  const seedsPerPrompt = Math.min(options.seedsPerPrompt ?? 3, seeds.length);
  const tasksPerPrompt = options.tasksPerPrompt ?? 8;
  const maxRequests = options.maxRequests ?? Math.ceil((2 * options.target) / tasksPerPrompt) + 3;
  const threshold = options.rougeThreshold ?? 0.7;
  const minWords = options.minWords ?? 3;
  const maxWords = options.maxWords ?? 150;
  const banned = options.bannedWords ?? DEFAULT_BANNED_WORDS;
  const random = seededRandom(options.seed ?? 0);

  // The pool every new instruction is compared with, tokenized once.
  const pool: string[][] = seeds.map((s) => rougeTokens(s.instruction));
  for (const ex of ws.datasets.iterate(dataset.id)) pool.push(rougeTokens(ex.instruction));

  const rejected: Record<RejectReason, number> = { unparsed: 0, 'too-short': 0, 'too-long': 0, 'banned-word': 0, punctuation: 0, 'empty-output': 0, similar: 0 };
  const added: ExampleText[] = [];
  let requests = 0;

  const verdict = (t: ExampleText): RejectReason | null => {
    const words = t.instruction.split(/\s+/).filter(Boolean).length;
    if (words < minWords) return 'too-short';
    if (words > maxWords) return 'too-long';
    if (bannedWordIn(t.instruction, banned)) return 'banned-word';
    if (/^[\p{P}\p{S}]/u.test(t.instruction)) return 'punctuation';
    if (!t.output.trim()) return 'empty-output';
    const tokens = rougeTokens(t.instruction);
    if (pool.some((p) => rougeLTokens(tokens, p) >= threshold)) return 'similar';
    pool.push(tokens);
    return null;
  };

  while (added.length < options.target && requests < maxRequests) {
    options.signal?.throwIfAborted();
    const shown = sample(seeds, seedsPerPrompt, random);
    const prompt = buildSelfInstructPrompt(shown, tasksPerPrompt);
    const reply = await options.generator.complete(prompt, {
      temperature: options.temperature ?? 1,
      maxTokens: options.maxTokens ?? 2048,
      seed: (options.seed ?? 0) + requests,
      signal: options.signal,
    });
    requests++;
    const tasks = parseGeneratedTasks(reply, shown.length + 1).filter((t) => t.number > shown.length);
    if (tasks.length === 0) rejected.unparsed++;
    for (const t of tasks) {
      if (added.length >= options.target) break;
      const reason = verdict(t);
      if (reason) rejected[reason]++;
      else added.push({ instruction: t.instruction, input: t.input, output: t.output });
    }
    options.onProgress?.({ requests, accepted: added.length, rejected: { ...rejected } });
  }

  if (added.length === 0) return { version: null, added, requests, rejected };
  const inserts: NewExample[] = added.map((t) => ({ ...t, tags: ['self-instruct'], source: 'self-instruct' }));
  const version = ws.datasets.applyChange(dataset.id, {
    kind: 'generate',
    summary: `generated ${added.length} example(s) with self-instruct (${requests} request(s))`,
    provenance: {
      method: 'self-instruct',
      generator: options.generator.describe?.() ?? { kind: 'custom' },
      seeds: { source: options.seedSource ?? (options.seeds ? 'caller' : 'bundled'), count: seeds.length, perPrompt: seedsPerPrompt },
      settings: { tasksPerPrompt, rougeThreshold: threshold, minWords, maxWords, bannedWords: banned, seed: options.seed ?? 0, temperature: options.temperature ?? 1 },
      requests,
      rejected,
    },
    inserts,
  });
  return { version, added, requests, rejected };
}
