// An evaluation suite as stored: one evaluation per column, each carrying the suite's id, its set (a dataset
// split pinned to a version, or prompts) and its column; and which suites ask about what a training set holds
// (a run that trained on evaluated questions scores on what it has seen).

import type { EvalColumn, ModelRef } from '../../src-shared/api.js';
import { contentHash } from '../store/content-hash.js';
import type { DatasetId, Evaluation, ExampleId, Workspace } from '../store/index.js';
import { userError } from './errors.js';

/** The set as stored: a dataset split is pinned to the version it was evaluated at. */
export type StoredSet = { kind: 'split'; datasetId: string; version: number; split: 'train' | 'val' | 'test' | 'all'; limit: number | null } | { kind: 'prompts'; prompts: string[] };

export type StoredSystem = { kind: 'model'; label: string; model: ModelRef } | { kind: 'references'; label: string; fileName: string };
export type ColumnKind = EvalColumn['kind'];

export interface ColumnConfig {
  suite: string;
  index: number;
  columns: number;
  set: StoredSet;
  setLabel: string;
  maxNewTokens: number;
  system: StoredSystem;
  /** Decided at creation, so the column keeps its kind if its run is deleted later. */
  kind: ColumnKind;
}

export interface SetExample {
  exampleId: ExampleId | null;
  instruction: string;
  input: string;
  reference: string | null;
  /** The example's picture: its sha256 (shown beside the prompt) and file (a multi-modal adapter reads it). */
  image?: string | null;
  imageFile?: string | null;
}

export function configOf(e: Evaluation): ColumnConfig | null {
  const c = e.config as Partial<ColumnConfig>;
  return typeof c.suite === 'string' && typeof c.index === 'number' ? (c as ColumnConfig) : null;
}

/** The suite's columns in order. */
export function suiteColumns(ws: Workspace, suiteId: string): { evaluation: Evaluation; config: ColumnConfig }[] {
  const columns = ws.evaluations
    .list()
    .map((evaluation) => ({ evaluation, config: configOf(evaluation) }))
    .filter((c): c is { evaluation: Evaluation; config: ColumnConfig } => c.config?.suite === suiteId)
    .sort((a, b) => a.config.index - b.config.index);
  if (columns.length === 0) throw userError(`evaluation ${JSON.stringify(suiteId)} not found`);
  return columns;
}

export function setExamples(ws: Workspace, set: StoredSet): SetExample[] {
  if (set.kind === 'prompts') return set.prompts.map((p) => ({ exampleId: null, instruction: p, input: '', reference: null }));
  const examples = ws.datasets
    .examplesAt(set.datasetId as DatasetId, set.version)
    .filter((e) => set.split === 'all' || e.split === set.split)
    .slice(0, set.limit ?? undefined);
  return examples.map((e) => ({
    exampleId: e.id,
    instruction: e.instruction,
    input: e.input,
    reference: e.output,
    image: e.image,
    imageFile: e.image ? ws.images.filePath(ws.images.get(e.image)) : null,
  }));
}

export function setExamplesOrStored(ws: Workspace, columns: Column[]): SetExample[] {
  try {
    return setExamples(ws, columns[0].config.set);
  } catch {
    const longest = columns.map((c) => ws.evaluations.outputs(c.evaluation.id, { limit: 1e9 })).reduce((a, b) => (b.length > a.length ? b : a), []);
    return longest.map((o) => ({ exampleId: o.exampleId, instruction: o.prompt, input: '', reference: o.reference, image: null }));
  }
}

export type Column = { evaluation: Evaluation; config: ColumnConfig };

/** Every suite's id, newest first. */
export function suiteIds(ws: Workspace): string[] {
  const ids: string[] = [];
  for (const e of ws.evaluations.list()) {
    const suite = configOf(e)?.suite;
    if (suite && !ids.includes(suite)) ids.push(suite);
  }
  return ids;
}

/**
 * What identifies a question whatever its answer: instruction, input and picture, normalised as duplicate
 * detection does. A training example with the question of an evaluated item has shown the model that item.
 */
export function questionKey(e: { instruction: string; input: string; image?: string | null }): string {
  return contentHash(e.instruction, e.input, '', e.image ?? null);
}

/** The question keys of the examples a run on (dataset, split) trains on, as the dataset is now. */
export function trainingQuestions(ws: Workspace, datasetId: string, split: string): Set<string> {
  const keys = new Set<string>();
  for (const e of ws.datasets.iterate(datasetId as DatasetId)) {
    if (split === 'all' || e.split === split) keys.add(questionKey(e));
  }
  return keys;
}

export interface SuiteOverlap {
  suiteId: string;
  name: string;
  /** Items the suite asks about. */
  items: number;
  /** Of those, asked by a training example too. */
  seen: number;
}

/** How many of one suite's items are among `questions`. */
export function suiteOverlap(ws: Workspace, suiteId: string, questions: Set<string>): SuiteOverlap {
  const columns = suiteColumns(ws, suiteId);
  const items = setExamplesOrStored(ws, columns);
  return { suiteId, name: columns[0].evaluation.name, items: items.length, seen: items.filter((i) => questions.has(questionKey(i))).length };
}

/** The stored suites that ask about any of `questions`, with how many of their items. */
export function suitesAsking(ws: Workspace, questions: Set<string>): SuiteOverlap[] {
  if (questions.size === 0) return [];
  return suiteIds(ws)
    .map((id) => suiteOverlap(ws, id, questions))
    .filter((o) => o.seen > 0);
}
