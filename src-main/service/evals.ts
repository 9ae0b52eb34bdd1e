// evals.*: answer a held-out set (or a prompt list) with several columns — base model, LLaMA-Adapter, LoRA,
// a full fine-tune, any model folder, or imported reference outputs — score every answer, and build the
// paper's method table from the runs behind the columns.
//
// Storage. An evaluation "suite" is one stored evaluation per column (src-main/store/evaluations.ts), all
// carrying the suite's id and settings in their config. Outputs are appended in batches (one transaction
// each), so a cancelled or interrupted suite resumes after the last stored answer. A column still `running`
// in the store while no task of this process works on it was cut off by a quit or crash: shown as
// `interrupted`, and `evals.resume` continues it.

import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ApiHandlers, EvalColumn, EvalMetrics, EvalRow, EvalSet, EvalStatus, EvalSuiteSummary, EvalSystem, MethodRow, ModelRef } from '../../src-shared/api.js';
import { endpointGeneratorFromSettings, type TextGenerator } from '../datasets/index.js';
import { scoreAnswer } from '../engine/eval.js';
import type { Recipe } from '../engine/recipe.js';
import { JUDGE_SYSTEM_PROMPT, judgePrompt, leftShownFirst, parseJudgeReply } from '../evaluation/judge.js';
import { parseReferences, promptKey, ReferencesError } from '../evaluation/references.js';
import { problemsFromExamples, ScienceQaError, scienceQaPredictions, scoreScienceQa } from '../evaluation/scienceqa.js';
import type { EvalItem } from '../host/protocol.js';
import { NotFoundError } from '../store/index.js';
import type { ComparisonId, ComparisonSide, DatasetId, Evaluation, EvaluationId, Example, ExampleId, ModelId, Rating, RunId, Workspace } from '../store/index.js';
import type { ServiceContext } from './context.js';
import { engineGenerator } from './datasets.js';
import { userError } from './errors.js';
import { resolveModel } from './generation.js';
import { languageConfig } from './model-kinds.js';
import { trainableParameterCount } from './runs.js';
import { startTask } from './tasks.js';
import { type Column, type ColumnConfig, type ColumnKind, configOf, type SetExample, setExamples, setExamplesOrStored, type StoredSet, type StoredSystem, suiteColumns, suiteOverlap, trainingQuestions } from './eval-suites.js';

/** Examples per engine request: each batch is stored in one transaction, and a cancel waits at most one batch. */
const BATCH = 4;

/** Mean scores and the corpus perplexity (total NLL over total reference tokens) of stored outputs. */
export function metricsOf(outputs: { scores: Record<string, number> }[]): EvalMetrics {
  const mean = (key: string): number | null => {
    const values = outputs.map((o) => o.scores[key]).filter((v): v is number => typeof v === 'number');
    return values.length ? values.reduce((a, b) => a + b, 0) / values.length : null;
  };
  let nll = 0;
  let tokens = 0;
  for (const o of outputs) {
    if (typeof o.scores.referenceNll === 'number' && typeof o.scores.referenceTokens === 'number') {
      nll += o.scores.referenceNll;
      tokens += o.scores.referenceTokens;
    }
  }
  return { count: outputs.length, exactMatch: mean('exactMatch'), rougeL: mean('rougeL'), tokenF1: mean('tokenF1'), perplexity: tokens > 0 ? Math.exp(nll / tokens) : null };
}

/** The store keeps numbers only: a metric that does not apply is left out. */
function storable(m: EvalMetrics): Record<string, number> {
  return Object.fromEntries(Object.entries(m).filter((e): e is [string, number] => typeof e[1] === 'number'));
}

function suiteStatus(columns: EvalStatus[]): EvalStatus {
  for (const s of ['running', 'interrupted', 'cancelled', 'failed'] as const) if (columns.includes(s)) return s;
  return 'completed';
}

/** Bytes of the files under `dir`, leaving out the subfolders named in `skip`. */
function folderBytes(dir: string, skip: string[] = []): number | null {
  if (!existsSync(dir)) return null;
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (skip.includes(entry.name)) continue;
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? (folderBytes(path) ?? 0) : statSync(path).size;
  }
  return total;
}

type EvalHandlers = Pick<
  ApiHandlers,
  'evals.start' | 'evals.list' | 'evals.get' | 'evals.resume' | 'evals.remove' | 'evals.methodTable' | 'evals.scienceqa' | 'evals.blind' | 'evals.judge'
>;

export interface SuiteRequest {
  name: string;
  set: EvalSet;
  systems: EvalSystem[];
  maxNewTokens: number;
  /** Pin a split set to this version of its dataset (default: the version now). */
  datasetVersion?: number;
}

/** What other services (sweeps) do with suites, besides the API's handlers. */
export interface EvalSuites {
  handlers: EvalHandlers;
  /** Checks and stores a suite (inside the caller's transaction, if any) without starting it; returns its id. */
  create(req: SuiteRequest): string;
  /** Answers the suite's unfinished columns in a background task; returns the task id. */
  launch(suiteId: string): string;
  /** The task answering the suite in this process, or null. */
  liveTask(suiteId: string): string | null;
  summary(suiteId: string): EvalSuiteSummary;
  methodTable(suiteId: string): MethodRow[];
}

export function evalSuites(ctx: ServiceContext): EvalSuites {
  /** Suite -> the task working on it in this process. */
  const liveTasks = new Map<string, string>();

  const summaryOf = (suiteId: string): EvalSuiteSummary => {
    const ws = ctx.ws();
    const columns = suiteColumns(ws, suiteId);
    const first = columns[0].config;
    const examples = setExamplesOrStored(ws, columns).length;
    const shown: EvalColumn[] = columns.map(({ evaluation, config }) => ({
      evaluationId: evaluation.id,
      label: config.system.label,
      kind: config.kind,
      runId: config.system.kind === 'model' ? config.system.model.adapterRunId : null,
      status: evaluation.status,
      error: evaluation.error,
      done: evaluation.outputs,
      metrics: metricsOf(ws.evaluations.outputs(evaluation.id, { limit: 1e9 })),
    }));
    const status = suiteStatus(shown.map((c) => c.status));
    return {
      id: suiteId,
      name: columns[0].evaluation.name,
      setLabel: first.setLabel,
      examples,
      status,
      columns: shown,
      createdAt: columns[0].evaluation.createdAt,
      taskId: null,
    };
  };

  /** Answers every unfinished column, batch by batch; reports progress over all columns together. */
  const runSuite = async (suiteId: string, taskId: string, signal: AbortSignal, done: () => void): Promise<void> => {
    const ws = ctx.ws();
    const columns = suiteColumns(ws, suiteId);
    const examples = setExamples(ws, columns[0].config.set);
    const total = examples.length * columns.length;
    const label = `Evaluating ${columns[0].evaluation.name}`;
    // Counted here rather than re-read from the store after every batch.
    let answered = columns.reduce((n, c) => n + c.evaluation.outputs, 0);
    const progress = (finished: boolean, error: string | null) => ctx.events.emit({ type: 'task.progress', taskId, label, done: answered, total, finished, error });
    progress(false, null);
    let firstError: string | null = null;
    try {
      for (const { evaluation, config } of columns) {
        if (evaluation.status === 'completed') continue;
        const id = evaluation.id;
        if (signal.aborted) {
          ws.evaluations.finish(id, { status: 'cancelled' });
          continue;
        }
        if (config.system.kind !== 'model') {
          // Reference columns are stored whole when the suite is created.
          ws.evaluations.finish(id, { status: 'completed', metrics: storable(metricsOf(ws.evaluations.outputs(id, { limit: 1e9 }))) });
          continue;
        }
        try {
          const model = resolveModel(ctx, config.system.model);
          for (let start = ws.evaluations.get(id).outputs; start < examples.length; start += BATCH) {
            const batch = examples.slice(start, start + BATCH);
            const items: EvalItem[] = batch.map((e) => ({ instruction: e.instruction, input: e.input, reference: e.reference, image: e.imageFile ?? null }));
            const { result, cancel } = await ctx.engines.evaluate({ modelDir: model.modelDir, adapterDir: model.adapterDir, items, maxNewTokens: config.maxNewTokens, vision: model.vision ?? undefined });
            signal.addEventListener('abort', cancel, { once: true });
            let answers;
            try {
              answers = await result;
            } finally {
              signal.removeEventListener('abort', cancel);
            }
            ws.evaluations.addOutputs(
              id,
              answers.map((a, i) => {
                const ex = batch[i];
                const scores: Record<string, number> = { newTokens: a.newTokens, seconds: a.seconds };
                if (ex.reference !== null) Object.assign(scores, scoreAnswer(a.output, ex.reference));
                if (a.referenceNll !== null && a.referenceTokens !== null) Object.assign(scores, { referenceNll: a.referenceNll, referenceTokens: a.referenceTokens });
                return { exampleId: ex.exampleId, prompt: ex.input ? `${ex.instruction}\n\n${ex.input}` : ex.instruction, reference: ex.reference, output: a.output, scores };
              }),
            );
            answered += answers.length;
            progress(false, null);
          }
          ws.evaluations.finish(id, { status: 'completed', metrics: storable(metricsOf(ws.evaluations.outputs(id, { limit: 1e9 }))) });
        } catch (e) {
          if (signal.aborted) {
            ws.evaluations.finish(id, { status: 'cancelled' });
          } else {
            const message = (e as Error).message;
            firstError ??= `${config.system.label}: ${message}`;
            ws.evaluations.finish(id, { status: 'failed', error: message });
          }
        }
      }
      progress(true, signal.aborted ? 'cancelled' : firstError);
    } catch (e) {
      progress(true, (e as Error).message);
    } finally {
      done();
    }
  };

  const launch = (suiteId: string): string => {
    const { taskId, signal, done } = startTask('eval');
    liveTasks.set(suiteId, taskId);
    void runSuite(suiteId, taskId, signal, () => {
      done();
      liveTasks.delete(suiteId);
    });
    return taskId;
  };

  const create = ({ name, set, systems, maxNewTokens, datasetVersion }: SuiteRequest): string => {
    const ws = ctx.ws();
    const stored = storedSet(ws, set, datasetVersion);
    const examples = setExamples(ws, stored.set);
    if (examples.length === 0) throw userError(`${stored.label} has no examples to evaluate on`);
    // Check every column before anything is stored: a bad reference file or an untrained run stores nothing.
    const columns = systems.map((system, index) => prepareColumn(ctx, system, index, examples));
    const labels = new Set<string>();
    for (const c of columns) {
      if (labels.has(c.system.label)) throw userError(`two columns are both labelled ${JSON.stringify(c.system.label)}; give one another label`);
      labels.add(c.system.label);
    }
    const suiteId = `evs_${randomBytes(8).toString('hex')}`;
    const kinds = columnKinds(ws, columns.map((c) => c.system));
    ws.transaction(() => {
      columns.forEach((c, index) => {
        const config: ColumnConfig = { suite: suiteId, index, columns: columns.length, set: stored.set, setLabel: stored.label, maxNewTokens, system: c.system, kind: kinds[index] };
        const evaluation = ws.evaluations.create({
          name,
          runId: c.runId,
          modelId: c.modelId,
          adapterPath: c.adapterPath,
          datasetId: stored.set.kind === 'split' ? (stored.set.datasetId as DatasetId) : null,
          datasetVersion: stored.set.kind === 'split' ? stored.set.version : null,
          split: stored.set.kind === 'split' ? stored.set.split : null,
          config: config as unknown as Record<string, unknown>,
        });
        if (c.references) ws.evaluations.addOutputs(evaluation.id, c.references);
      });
    });
    return suiteId;
  };

  const handlers: EvalHandlers = {
    'evals.start': async (req) => {
      const suiteId = ctx.ws().transaction(() => create(req));
      return { suiteId, taskId: launch(suiteId) };
    },

    'evals.list': async () => {
      const ids = new Set<string>();
      for (const e of ctx.ws().evaluations.list()) {
        const c = configOf(e);
        if (c) ids.add(c.suite);
      }
      return [...ids].map((id) => withLiveTask(summaryOf(id), liveTasks));
    },

    'evals.get': async ({ suiteId, offset, limit }) => {
      const ws = ctx.ws();
      const summary = withLiveTask(summaryOf(suiteId), liveTasks);
      const columns = suiteColumns(ws, suiteId);
      const examples = setExamplesOrStored(ws, columns).slice(offset, offset + limit);
      const outputs = columns.map((c) => ws.evaluations.outputs(c.evaluation.id, { offset, limit }));
      const rows: EvalRow[] = examples.map((ex, i) => ({
        position: offset + i,
        instruction: ex.instruction,
        input: ex.input,
        reference: ex.reference,
        image: ex.image ?? null,
        outputs: outputs.map((col) => {
          const o = col.find((x) => x.position === offset + i);
          return o ? { text: o.output, scores: o.scores } : null;
        }),
      }));
      return { ...summary, rows };
    },

    'evals.resume': async ({ suiteId }) => {
      const ws = ctx.ws();
      if (liveTasks.has(suiteId)) throw userError('this evaluation is running already');
      const columns = suiteColumns(ws, suiteId);
      ws.transaction(() => {
        for (const { evaluation } of columns) if (evaluation.status === 'cancelled' || evaluation.status === 'failed') ws.evaluations.reopen(evaluation.id);
      });
      if (columns.every((c) => c.evaluation.status === 'completed')) throw userError('this evaluation is complete; there is nothing to resume');
      return { taskId: launch(suiteId) };
    },

    'evals.remove': async ({ suiteId }) => {
      const ws = ctx.ws();
      if (liveTasks.has(suiteId)) throw userError('this evaluation is running; cancel it before deleting it');
      const columns = suiteColumns(ws, suiteId);
      ws.transaction(() => {
        for (const { evaluation } of columns) ws.evaluations.delete(evaluation.id);
      });
      return { ok: true as const };
    },

    'evals.methodTable': async ({ suiteId }) => methodTable(ctx, summaryOf(suiteId)),

    'evals.scienceqa': async ({ suiteId }) => {
      const ws = ctx.ws();
      const columns = suiteColumns(ws, suiteId);
      // The problems from the imported examples' ScienceQA fields (meta) and their own images, scored as answered
      // (the evaluated split is the one that counts, whatever the examples' split).
      const exampleOf = new Map<number, Example>();
      const out = [];
      try {
        for (const { evaluation, config } of columns) {
          const outputs = ws.evaluations.outputs(evaluation.id, { limit: 1e9 });
          if (outputs.length === 0) continue;
          for (const o of outputs) {
            if (o.exampleId === null) throw userError('this evaluation is of prompts, not of ScienceQA questions');
            if (!exampleOf.has(o.exampleId)) exampleOf.set(o.exampleId, ws.datasets.example(o.exampleId));
          }
          const examples = outputs.map((o) => exampleOf.get(o.exampleId!)!);
          if (examples.some((e) => !Array.isArray(e.meta.choices))) throw userError('this evaluation is not of imported ScienceQA questions (no choices in their metadata)');
          const problems = problemsFromExamples(examples.map((e) => ({ id: e.id, image: e.image, split: 'evaluated', meta: e.meta })));
          // Keyed as problemsFromExamples keys them (an object's integer-like keys do not keep insertion order).
          const pids = examples.map((e) => (typeof e.meta.pid === 'string' ? e.meta.pid : `example:${e.id}`));
          const predictions = scienceQaPredictions(outputs.map((o, i) => ({ pid: pids[i]!, output: o.output, choices: problems[pids[i]!]!.choices.length })));
          const scores = scoreScienceQa(problems, predictions.results, { split: 'evaluated' });
          out.push({ label: config.system.label, kind: config.kind, scores: scores.scores, questions: scores.questions, correct: scores.correct, unparseable: predictions.unparseable.length, results: predictions.results });
        }
      } catch (e) {
        if (e instanceof ScienceQaError) throw userError(e.message);
        throw e;
      }
      if (out.length === 0) throw userError('no column has answered yet');
      return out;
    },

    'evals.blind': async ({ suiteId, columns: [a, b] }) => {
      const ws = ctx.ws();
      const columns = suiteColumns(ws, suiteId);
      const [left, right] = pickColumns(columns, a, b);
      const sessionId = `cmps_${randomBytes(8).toString('hex')}`;
      ws.transaction(() => {
        const comparison = ws.comparisons.create(`${left.evaluation.name}: ${left.config.system.label} vs ${right.config.system.label}`, sideOf(left, sessionId, 0), sideOf(right, sessionId, 1));
        for (const [l, r] of pairedOutputs(ws, left.evaluation.id, right.evaluation.id)) ws.comparisons.addItem(comparison.id, { prompt: l.prompt, leftOutput: l.output, rightOutput: r.output, image: pictureOf(ws, l.exampleId) });
      });
      return { comparisonId: sessionId };
    },

    'evals.judge': async ({ suiteId, columns: [a, b], judge }) => {
      const ws = ctx.ws();
      const columns = suiteColumns(ws, suiteId);
      const [left, right] = pickColumns(columns, a, b);
      const generator: TextGenerator = judge.kind === 'local' ? engineGenerator(ctx, resolveModel(ctx, judge.model)) : endpointGeneratorFromSettings(ws);
      const judgeName = describeJudge(generator);
      const pairs = pairedOutputs(ws, left.evaluation.id, right.evaluation.id);
      if (pairs.length === 0) throw userError('the two columns have no answers to the same prompts yet');
      const sessionId = `cmps_${randomBytes(8).toString('hex')}`;
      let comparisonId!: ComparisonId;
      ws.transaction(() => {
        const tag = { judge: judgeName };
        const c = ws.comparisons.create(`LLM judge (${judgeName}): ${left.config.system.label} vs ${right.config.system.label}`, sideOf(left, sessionId, 0, tag), sideOf(right, sessionId, 1, tag));
        comparisonId = c.id;
        for (const [l, r] of pairs) ws.comparisons.addItem(c.id, { prompt: l.prompt, leftOutput: l.output, rightOutput: r.output, image: pictureOf(ws, l.exampleId) });
      });
      const { taskId, signal, done } = startTask('judge');
      const label = `LLM judge (${judgeName}) on ${left.config.system.label} vs ${right.config.system.label}`;
      const items = ws.comparisons.items(comparisonId);
      const progress = (n: number, finished: boolean, error: string | null) => ctx.events.emit({ type: 'task.progress', taskId, label, done: n, total: items.length, finished, error });
      progress(0, false, null);
      void (async () => {
        let unreadable = 0;
        try {
          for (const [i, item] of items.entries()) {
            if (signal.aborted) throw new Error('cancelled');
            const leftFirst = leftShownFirst(i);
            const [first, second] = leftFirst ? [item.leftOutput, item.rightOutput] : [item.rightOutput, item.leftOutput];
            let reply: string;
            try {
              reply = await generator.complete(`${JUDGE_SYSTEM_PROMPT}\n\n${judgePrompt(item.prompt, first, second)}`, { temperature: 0, maxTokens: 512, signal });
            } catch (e) {
              throw new Error(`judging item ${i + 1} of ${items.length}: ${(e as Error).message}`);
            }
            const verdict = parseJudgeReply(reply);
            const order = leftFirst ? 'left shown first' : 'right shown first';
            if (!verdict) {
              unreadable++;
              ctx.ws().comparisons.rate(item.id, null, `LLM judge (${judgeName}), ${order}: no scores found in the reply:\n${reply.slice(0, 2000)}`);
            } else {
              const leftWon = verdict.winner === 'tie' ? null : (verdict.winner === 'first') === leftFirst;
              const rating: Rating = leftWon === null ? 'tie' : leftWon ? 'left' : 'right';
              ctx.ws().comparisons.rate(item.id, rating, `LLM judge (${judgeName}), ${order}, scores ${verdict.scores.join(' / ')}:\n${reply.slice(0, 2000)}`);
            }
            progress(i + 1, false, null);
          }
          progress(items.length, true, unreadable ? `${unreadable} of ${items.length} replies held no scores (left unrated)` : null);
        } catch (e) {
          progress(0, true, signal.aborted ? 'cancelled' : (e as Error).message);
        } finally {
          done();
        }
      })();
      return { taskId, comparisonId: sessionId };
    },
  };

  return {
    handlers,
    create,
    launch,
    liveTask: (suiteId) => liveTasks.get(suiteId) ?? null,
    summary: (suiteId) => withLiveTask(summaryOf(suiteId), liveTasks),
    methodTable: (suiteId) => methodTable(ctx, summaryOf(suiteId)),
  };
}

/** The live task id wins over the one stored with the columns (which may be from an earlier start). */
function withLiveTask(s: EvalSuiteSummary, live: Map<string, string>): EvalSuiteSummary {
  const taskId = live.get(s.id) ?? null;
  if (!taskId) return { ...s, taskId: null, status: s.status === 'running' ? 'interrupted' : s.status, columns: s.columns.map((c) => ({ ...c, status: c.status === 'running' ? 'interrupted' : c.status })) };
  const columns = s.columns.map((c) => ({ ...c, status: c.status === 'interrupted' ? ('running' as const) : c.status }));
  return { ...s, taskId, columns, status: suiteStatus(columns.map((c) => c.status)) };
}

function columnKinds(ws: Workspace, systems: StoredSystem[]): ColumnKind[] {
  return systems.map((system) => {
    if (system.kind === 'references') return 'references';
    if (system.model.adapterRunId) {
      const run = ws.runs.get(system.model.adapterRunId as RunId);
      // The paper's two rows: a text-only adapter and a multi-modal one (a vision tower on its recipe).
      if (run.method === 'adapter' && (run.recipe as { visionModelId?: string }).visionModelId) return 'multimodal';
      return run.method === 'lora' ? 'lora' : run.method === 'full' ? 'full' : 'adapter';
    }
    // A model that another column fine-tunes is their base; any other model folder (a downloaded Alpaca, say) is just a model.
    const isBase = systems.some((o) => o.kind === 'model' && o.model.adapterRunId && o.model.modelId === system.model.modelId);
    return isBase ? 'base' : 'model';
  });
}

/**
 * The set's examples; if its dataset has since been deleted, what the stored answers recorded (the prompt
 * and reference), so the evaluation stays readable.
 */
/** The set pinned to the dataset's version now, or to `version` (a sweep evaluates every run on the version it started with). */
function storedSet(ws: Workspace, set: EvalSet, version?: number): { set: StoredSet; label: string } {
  if (set.kind === 'prompts') return { set: { kind: 'prompts', prompts: set.prompts }, label: `${set.prompts.length} prompt${set.prompts.length === 1 ? '' : 's'}` };
  const dataset = { ...ws.datasets.get(set.datasetId as DatasetId), ...(version === undefined ? {} : { version }) };
  const stored: StoredSet = { kind: 'split', datasetId: dataset.id, version: dataset.version, split: set.split, limit: set.limit };
  const n = setExamples(ws, stored).length;
  const which = set.split === 'all' ? 'all examples' : `${set.split} split`;
  return { set: stored, label: `${dataset.name} v${dataset.version}, ${which}${set.limit ? `, first ${set.limit}` : ''} (${n})` };
}

interface PreparedColumn {
  system: StoredSystem;
  runId: RunId | null;
  modelId: ModelId | null;
  adapterPath: string | null;
  references: { exampleId: ExampleId | null; prompt: string; reference: string | null; output: string; scores: Record<string, number> }[] | null;
}

function prepareColumn(ctx: ServiceContext, system: EvalSystem, index: number, examples: SetExample[]): PreparedColumn {
  if (system.kind === 'model') {
    const resolved = resolveModel(ctx, system.model);
    return {
      system: { kind: 'model', label: system.label?.trim() || resolved.label, model: system.model },
      runId: (system.model.adapterRunId ?? null) as RunId | null,
      modelId: system.model.modelId as ModelId,
      adapterPath: resolved.adapterDir,
      references: null,
    };
  }
  let table: Map<string, string>;
  try {
    table = parseReferences(system.fileName, system.content);
  } catch (e) {
    if (e instanceof ReferencesError) throw userError(`column ${index + 1} (${system.label}): ${e.message}`);
    throw e;
  }
  const missing = examples.filter((ex) => !table.has(promptKey(ex.instruction, ex.input)));
  if (missing.length) {
    const first = missing[0];
    throw userError(
      `column ${index + 1} (${system.label}): ${system.fileName} has no response for ${missing.length} of the ${examples.length} prompts, ` +
        `the first being ${JSON.stringify(first.instruction.slice(0, 80))}${first.input ? ` with input ${JSON.stringify(first.input.slice(0, 40))}` : ''}`,
    );
  }
  return {
    system: { kind: 'references', label: system.label, fileName: system.fileName },
    runId: null,
    modelId: null,
    adapterPath: null,
    references: examples.map((ex) => {
      const output = table.get(promptKey(ex.instruction, ex.input))!;
      return {
        exampleId: ex.exampleId,
        prompt: ex.input ? `${ex.instruction}\n\n${ex.input}` : ex.instruction,
        reference: ex.reference,
        output,
        scores: ex.reference === null ? {} : scoreAnswer(output, ex.reference),
      };
    }),
  };
}



function pickColumns(columns: Column[], a: number, b: number): [Column, Column] {
  if (a === b) throw userError('pick two different columns');
  for (const i of [a, b]) if (i >= columns.length) throw userError(`column ${i + 1} does not exist (the evaluation has ${columns.length})`);
  return [columns[a], columns[b]];
}

function sideOf(c: Column, session: string, index: number, extra: Record<string, unknown> = {}): ComparisonSide {
  const system = c.config.system;
  return {
    label: system.label,
    modelId: system.kind === 'model' ? (system.model.modelId as ModelId) : null,
    runId: system.kind === 'model' ? ((system.model.adapterRunId ?? null) as RunId | null) : null,
    adapterPath: c.evaluation.adapterPath,
    settings: { session, index, sides: 2, evaluation: c.config.suite, ...extra },
  };
}

/** Outputs of two columns for the same positions, in order. */
/** The picture of the evaluated example (shown beside the prompt when rating), or null. */
function pictureOf(ws: Workspace, exampleId: number | null): string | null {
  if (exampleId === null) return null;
  try {
    return ws.datasets.example(exampleId as ExampleId).image;
  } catch (e) {
    if (e instanceof NotFoundError) return null; // edited away since: the words still compare
    throw e;
  }
}

function pairedOutputs(ws: Workspace, a: EvaluationId, b: EvaluationId) {
  const right = new Map(ws.evaluations.outputs(b, { limit: 1e9 }).map((o) => [o.position, o]));
  return ws.evaluations
    .outputs(a, { limit: 1e9 })
    .filter((o) => right.has(o.position))
    .map((o) => [o, right.get(o.position)!] as const);
}

function describeJudge(g: TextGenerator): string {
  const d = g.describe?.() ?? {};
  return String(d.model ?? d.kind ?? 'judge');
}

/** The method table: what each column cost to train and store, and how well it answers. */
function methodTable(ctx: ServiceContext, suite: EvalSuiteSummary): MethodRow[] {
  const ws = ctx.ws();
  const judged = judgeWinRates(ws, suite);
  return suite.columns.map((col, i) => {
    const row: MethodRow = {
      label: col.label,
      kind: col.kind,
      trainableParameters: col.kind === 'base' ? 0 : null,
      storageBytes: null,
      trainingSeconds: null,
      peakMemoryBytes: null,
      tokensPerSec: null,
      metrics: col.metrics,
      judgeWinRate: judged.get(i) ?? null,
      seenItems: null,
    };
    const run = col.runId ? ws.runs.list().find((r) => r.id === col.runId) : undefined;
    if (run) {
      const metrics = ws.runs.metrics(run.id);
      const speeds = metrics.map((m) => m.tokensPerSec).filter((v): v is number => typeof v === 'number' && v > 0);
      const memory = metrics.map((m) => m.memoryBytes).filter((v): v is number => typeof v === 'number');
      try {
        row.trainableParameters = run.modelId ? trainableParameterCount(languageConfig(ws.models.get(run.modelId)), run.recipe as unknown as Recipe) : null;
      } catch {
        row.trainableParameters = null;
      }
      row.storageBytes = folderBytes(ws.runDir(run.id), ['checkpoints']);
      row.trainingSeconds = metrics.length ? (metrics.at(-1)!.elapsedMs ?? 0) / 1000 : null;
      row.peakMemoryBytes = memory.length ? Math.max(...memory) : null;
      row.tokensPerSec = speeds.length ? speeds.reduce((a, b) => a + b, 0) / speeds.length : null;
      const split = (run.recipe as { split?: string }).split ?? 'all';
      if (run.datasetId) row.seenItems = suiteOverlap(ws, suite.id, trainingQuestions(ws, run.datasetId, split)).seen;
    } else if (col.kind === 'model' || col.kind === 'base') {
      const e = ws.evaluations.get(col.evaluationId as EvaluationId);
      if (col.kind === 'model' && e.modelId) row.storageBytes = folderBytes(ws.models.get(e.modelId).path);
    }
    return row;
  });
}

/** For each column judged against the first column: the share of judged items it won. */
function judgeWinRates(ws: Workspace, suite: EvalSuiteSummary): Map<number, number> {
  const rates = new Map<number, number>();
  const labels = suite.columns.map((c) => c.label);
  for (const c of ws.comparisons.list()) {
    const tag = c.left.settings as { evaluation?: string; judge?: string } | undefined;
    if (tag?.evaluation !== suite.id || !tag.judge) continue;
    const [l, r] = [labels.indexOf(c.left.label), labels.indexOf(c.right.label)];
    const rated = c.tally.left + c.tally.right + c.tally.tie;
    if (rated === 0) continue;
    if (l === 0 && r > 0) rates.set(r, c.tally.right / rated);
    if (r === 0 && l > 0) rates.set(l, c.tally.left / rated);
  }
  return rates;
}
