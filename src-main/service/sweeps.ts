// Sweeps: the paper's ablations (adapted layers, prompt length, zero-init vs random-init gates, ...) and
// data-amount questions on the user's own model and data. A sweep is one base recipe and one or two varied
// settings; every combination is an ordinary queued run, evaluated on one held-out set once it has trained.
//
// Kill safety: the sweep, its points and their runs are stored in one transaction; what happens next is
// derived from the store each time (`advance`): a completed run without an evaluation gets one (recorded in
// the transaction that creates it), an evaluation left unfinished is continued after its last stored batch, an
// interrupted run is resumed from its checkpoint. Nothing finished is ever redone. Only the workspace's owner
// advances sweeps, as only it trains.

import { ApiError, type ApiHandlers, Recipe as RecipeSchema, SWEEP_DATA_FIELDS, type SweepMetrics, type SweepPlan, type SweepPointState, type SweepPointSummary, type SweepResults, type SweepSettings, type SweepSummary } from '../../src-shared/api.js';
import type { ApiParsedInput } from '../../src-shared/api.js';
import { settingsLabel } from '../../src-shared/sweep-report.js';
import type { Recipe } from '../engine/recipe.js';
import type { DatasetId, ModelId, Run, RunId, Sweep, SweepId, Workspace } from '../store/index.js';
import type { ServiceContext } from './context.js';
import { conflict } from './errors.js';
import type { EvalSuites } from './evals.js';
import { type DataSelection, selectExamples } from './run-data.js';
import { planRun, type RunViews, storePlannedRun } from './runs.js';
import { cancelTask } from './tasks.js';

type SweepInput = ApiParsedInput<'sweeps.plan'>;
type SweepValue = SweepSettings[string];

const MAX_POINTS = 64;
/** Recipe fields that hold a list: one point takes one value, so these are refused as axes. */
const LIST_FIELDS = new Set(['loraTargets', 'betas']);
const DRIVE_EVERY_MS = 2000;

/** The stored spec: the request as it was planned, with every value read as its field's type. */
interface SweepSpec {
  split: SweepInput['split'];
  recipe: SweepInput['recipe'];
  vision?: SweepInput['vision'];
  vary: { field: string; values: SweepValue[] }[];
  evalSplit: SweepInput['evalSplit'];
  evalLimit: number | null;
  maxNewTokens: number;
  dataSeed: number;
}

function invalid(path: string, message: string): ApiError {
  return new ApiError({ code: 'invalid_input', message: `${path}: ${message}`, issues: [{ path, message }] });
}

/** A value as its field takes it: "4" -> 4 for adapterLayers, "zero" for init; anything else refused by name. */
export function readSettingValue(field: string, raw: SweepValue, path: string): SweepValue {
  const text = typeof raw === 'string' ? raw.trim() : raw;
  const asNumber = typeof text === 'string' && text !== '' && Number.isFinite(Number(text)) ? Number(text) : text;
  switch (field) {
    case 'data.fraction':
      if (typeof asNumber !== 'number' || !(asNumber > 0 && asNumber <= 1)) throw invalid(path, `data.fraction takes a share of the split in (0, 1], got ${JSON.stringify(raw)}`);
      return asNumber;
    case 'data.count':
      if (typeof asNumber !== 'number' || !Number.isInteger(asNumber) || asNumber < 1) throw invalid(path, `data.count takes a whole number of examples >= 1, got ${JSON.stringify(raw)}`);
      return asNumber;
    case 'data.tag':
    case 'data.source':
      if (typeof text !== 'string' || text.replace(/^!/, '') === '') throw invalid(path, `${field} takes a ${field.slice(5)} ("!x" for examples without it), got ${JSON.stringify(raw)}`);
      return text;
  }
  const shape = RecipeSchema.shape as Record<string, (typeof RecipeSchema.shape)[keyof typeof RecipeSchema.shape]>;
  const schema = shape[field];
  if (!schema) {
    throw invalid(path, `unknown setting "${field}"; a sweep varies a recipe field (${Object.keys(shape).filter((f) => !LIST_FIELDS.has(f)).join(', ')}) or one of ${SWEEP_DATA_FIELDS.join(', ')}`);
  }
  if (LIST_FIELDS.has(field)) throw invalid(path, `${field} holds a list; a sweep gives each point one value, so it cannot vary ${field} (set it in the base recipe)`);
  const candidates = text === 'null' ? [null] : text === 'true' || text === 'false' ? [text === 'true', text] : [asNumber, text];
  for (const c of candidates) {
    const parsed = schema.safeParse(c);
    if (parsed.success) return parsed.data as SweepValue;
  }
  const detail = schema.safeParse(text);
  throw invalid(path, `${field} cannot be ${JSON.stringify(raw)}${detail.success ? '' : `: ${detail.error.issues[0]?.message ?? 'not a value it takes'}`}`);
}

/** Every combination of the axes' values, the first axis outermost. */
function combinations(vary: SweepSpec['vary']): SweepSettings[] {
  return vary.reduce<SweepSettings[]>((acc, axis) => acc.flatMap((s) => axis.values.map((v) => ({ ...s, [axis.field]: v }))), [{}]);
}

type DatasetExamples = ReturnType<Workspace['datasets']['examplesAt']>;

/** A point's run: the base recipe with the point's recipe fields, and the point's choice of `examples` (the dataset now). */
function pointInput(examples: DatasetExamples, req: SweepInput, spec: SweepSpec, settings: SweepSettings) {
  const recipe: Record<string, unknown> = { ...req.recipe };
  const data: DataSelection = { seed: spec.dataSeed };
  let fraction: number | null = null;
  for (const [field, value] of Object.entries(settings)) {
    if (field === 'data.fraction') fraction = value as number;
    else if (field === 'data.count') data.count = value as number;
    else if (field === 'data.tag') data.tag = value as string;
    else if (field === 'data.source') data.source = value as string;
    else recipe[field] = value;
  }
  if (fraction !== null && fraction < 1) {
    // A share of what the filters leave, at least one example.
    const filtered = selectExamples(examples, req.split, { tag: data.tag, source: data.source }).length;
    data.count = Math.max(1, Math.round(fraction * filtered));
  }
  const narrows = data.count !== undefined || data.tag !== undefined || data.source !== undefined;
  return { modelId: req.modelId, datasetId: req.datasetId, split: req.split, recipe: recipe as SweepInput['recipe'], vision: req.vision, data: narrows ? data : undefined };
}

function specOf(req: SweepInput): SweepSpec {
  const seen = new Set<string>();
  const vary = req.vary.map((axis, i) => {
    if (seen.has(axis.field)) throw invalid(`vary[${i}].field`, `${axis.field} is varied twice; give all its values in one axis`);
    seen.add(axis.field);
    const values = axis.values.map((v, j) => readSettingValue(axis.field, v, `vary[${i}].values[${j}]`));
    values.forEach((v, j) => {
      if (values.indexOf(v) !== j) throw invalid(`vary[${i}].values[${j}]`, `${axis.field}=${v} appears twice`);
    });
    return { field: axis.field, values };
  });
  if (seen.has('data.fraction') && seen.has('data.count')) throw invalid('vary', 'vary data.fraction or data.count, not both');
  const total = vary.reduce((n, a) => n * a.values.length, 1);
  if (total > MAX_POINTS) throw invalid('vary', `${total} combinations; a sweep trains at most ${MAX_POINTS} runs`);
  return { split: req.split, recipe: req.recipe, vision: req.vision, vary, evalSplit: req.evalSplit, evalLimit: req.evalLimit, maxNewTokens: req.maxNewTokens, dataSeed: req.dataSeed };
}

/** Seconds per trained example-step and per evaluated answer, from this workspace's newest finished work on the model. */
function pastRates(ws: Workspace, modelId: string, method: string): { train: number | null; answer: number | null; basis: string } {
  const runs = ws.runs.list('completed').filter((r) => r.modelId === modelId && r.method === method);
  let train: number | null = null;
  let basis = `no completed ${method} run of this model to go by`;
  for (const run of runs) {
    const last = ws.runs.metrics(run.id, -1).at(-1);
    const recipe = run.recipe as Partial<Recipe>;
    if (!last?.elapsedMs || !last.step) continue;
    train = last.elapsedMs / 1000 / (last.step * (recipe.batchSize ?? 1) * (recipe.accumSteps ?? 1));
    basis = `the speed of run "${run.name}"`;
    break;
  }
  let answer: number | null = null;
  for (const e of ws.evaluations.list()) {
    if (e.modelId !== modelId || e.status !== 'completed') continue;
    const seconds = ws.evaluations.outputs(e.id, { limit: 200 }).map((o) => o.scores.seconds).filter((s): s is number => typeof s === 'number');
    if (seconds.length === 0) continue;
    answer = seconds.reduce((a, b) => a + b, 0) / seconds.length;
    basis += ` and evaluation "${e.name}"`;
    break;
  }
  return { train, answer, basis };
}

export function planSweep(ctx: ServiceContext, req: SweepInput): SweepPlan & { spec: SweepSpec; inputs: ReturnType<typeof pointInput>[]; plans: ReturnType<typeof planRun>[] } {
  const ws = ctx.ws();
  const spec = specOf(req);
  const settings = combinations(spec.vary);
  const dataset = ws.datasets.get(req.datasetId as DatasetId);
  const examples = ws.datasets.examplesAt(dataset.id, dataset.version); // read once for every point and the eval set
  const inputs = settings.map((s) => pointInput(examples, req, spec, s));
  const plans = inputs.map((input) => planRun(ctx, input));
  const problems: SweepPlan['problems'] = [];
  plans.forEach((p, i) => {
    for (const problem of p.problems) problems.push({ field: problem.field, message: `${settingsLabel(settings[i]!)}: ${problem.message}` });
  });
  const warnings = [...new Set(plans.flatMap((p) => p.warnings))];
  if (req.split === 'all' || req.evalSplit === 'all' || req.split === req.evalSplit) {
    warnings.push(`the runs train on ${req.split === 'all' ? 'every example' : `the ${req.split} split`} and are evaluated on ${req.evalSplit === 'all' ? 'every example' : `the ${req.evalSplit} split`}: their scores would be on seen examples`);
  }
  const evalExamples = selectExamples(examples, req.evalSplit).length;
  const evalCount = req.evalLimit === null ? evalExamples : Math.min(req.evalLimit, evalExamples);
  if (evalCount === 0) problems.push({ field: 'evalSplit', message: `the dataset has no examples in the ${req.evalSplit} split to evaluate on; split it first` });
  const method = (req.recipe.method ?? 'adapter') as string;
  const rates = pastRates(ws, req.modelId, method);
  const trainSeconds = rates.train === null ? null : plans.reduce((n, p) => n + p.totalSteps * p.recipe.batchSize * p.recipe.accumSteps * rates.train!, 0);
  const evalSeconds = rates.answer === null ? null : rates.answer * evalCount * plans.length;
  const fields = spec.vary.map((a) => a.field);
  return {
    name: req.name?.trim() || `${fields.join(' × ')} on ${dataset.name}`,
    fields,
    points: plans.map((p, i) => ({ settings: settings[i]!, examples: p.examples, totalSteps: p.totalSteps, trainableParameters: p.trainableParameters })),
    evalExamples: evalCount,
    estimatedSeconds: trainSeconds === null ? null : trainSeconds + (evalSeconds ?? 0),
    estimateBasis: rates.answer === null && rates.train !== null ? `${rates.basis} (evaluation time not included: no finished evaluation of this model)` : rates.basis,
    problems,
    warnings,
    spec,
    inputs,
    plans,
  };
}

export type SweepHandlers = Pick<ApiHandlers, 'sweeps.plan' | 'sweeps.start' | 'sweeps.list' | 'sweeps.get' | 'sweeps.resume' | 'sweeps.cancel' | 'sweeps.remove'>;

export interface Sweeps {
  handlers: SweepHandlers;
  /** Moves every running sweep one step on (owner only); safe to call at any time. */
  advance(): void;
  close(): void;
}

export function sweeps(ctx: ServiceContext, views: RunViews, evals: EvalSuites, log: (m: string) => void): Sweeps {
  /** Suites this process relaunched after they failed (a shutdown kills the engine mid-batch): once each. */
  const relaunched = new Set<string>();
  /** Interrupted runs this process has put back in line (the queue reports each resume, which advances again). */
  const resumed = new Set<string>();
  /** Points whose evaluation could not be created, by "sweep#position": a failure, shown, not retried here. */
  const failures = new Map<string, string>();
  const lastEmitted = new Map<string, string>();
  let advancing = false;
  let closed = false;

  const pointSummary = (ws: Workspace, sweep: Sweep, p: Sweep['points'][number]): SweepPointSummary => {
    const base = { position: p.position, settings: p.settings, runId: p.runId, suiteId: p.evalSuite, evalDone: 0, evalTotal: 0, error: failures.get(`${sweep.id}#${p.position}`) ?? null };
    let run: Run | null = null;
    try {
      run = p.runId ? ws.runs.get(p.runId) : null;
    } catch {
      run = null;
    }
    if (!run) return { ...base, runId: null, runName: null, runStatus: null, progress: null, state: 'missing', error: base.error ?? 'its run was deleted' };
    const summary = views.summary(run);
    const common = { ...base, runName: run.name, runStatus: run.status, progress: summary.progress };
    let state: SweepPointState;
    if (run.status === 'failed' || run.status === 'cancelled') return { ...common, state: run.status, error: run.error ?? base.error };
    if (run.status === 'paused') state = 'paused';
    else if (run.status === 'queued') state = 'queued';
    else if (run.status !== 'completed') state = 'training';
    else if (base.error) state = 'failed';
    else if (!p.evalSuite) state = 'evaluating';
    else {
      try {
        const suite = evals.summary(p.evalSuite);
        const column = suite.columns[0]!;
        Object.assign(common, { evalDone: column.done, evalTotal: suite.examples });
        if (suite.status === 'completed') state = 'done';
        else if (suite.status === 'failed' && relaunched.has(p.evalSuite)) return { ...common, state: 'failed', error: column.error };
        else state = 'evaluating';
      } catch {
        return { ...common, suiteId: null, state: 'missing', error: 'its evaluation was deleted' };
      }
    }
    // A cancelled sweep's unfinished points stay unfinished: say so rather than "evaluating" forever.
    if (sweep.status === 'cancelled' && state !== 'done') state = 'cancelled';
    return { ...common, state };
  };

  const summaryOf = (sweep: Sweep): SweepSummary => {
    const ws = ctx.ws();
    const name = <T extends { name: string }>(get: () => T): string | null => {
      try {
        return get().name;
      } catch {
        return null;
      }
    };
    const points = sweep.points.map((p) => pointSummary(ws, sweep, p));
    return {
      id: sweep.id,
      name: sweep.name,
      status: sweep.status,
      modelName: sweep.modelId ? name(() => ws.models.get(sweep.modelId!)) : null,
      datasetName: sweep.datasetId ? name(() => ws.datasets.get(sweep.datasetId!)) : null,
      datasetVersion: sweep.datasetVersion,
      fields: (sweep.spec as unknown as SweepSpec).vary.map((a) => a.field),
      finished: points.filter((p) => p.state === 'done' || p.state === 'failed' || p.state === 'cancelled' || p.state === 'missing').length,
      points,
      createdAt: sweep.createdAt,
      finishedAt: sweep.finishedAt,
    };
  };

  const emit = (sweep: Sweep): SweepSummary => {
    const summary = summaryOf(sweep);
    const key = JSON.stringify(summary);
    if (lastEmitted.get(sweep.id) !== key) {
      lastEmitted.set(sweep.id, key);
      ctx.events.emit({ type: 'sweep.updated', sweep: summary });
    }
    return summary;
  };

  /** Any sweep evaluation answering in this process: they share the one inference engine, so one at a time. */
  const evaluating = (ws: Workspace): boolean =>
    ws.sweeps.list('running').some((s) => s.points.some((p) => p.evalSuite !== null && evals.liveTask(p.evalSuite) !== null));

  const advanceOne = (ws: Workspace, sweep: Sweep): void => {
    const spec = sweep.spec as unknown as SweepSpec;
    for (const point of sweep.points) {
      if (!point.runId) continue;
      let run: Run;
      try {
        run = ws.runs.get(point.runId);
      } catch {
        continue;
      }
      if (run.status === 'interrupted') {
        // Its process died: continue from its checkpoint (the queue starts it when its turn comes).
        if (!resumed.has(run.id)) {
          resumed.add(run.id);
          try {
            ctx.queue.resume(run.id);
          } catch (e) {
            log(`sweep ${sweep.name}: cannot resume run "${run.name}": ${(e as Error).message}`);
          }
        }
        continue;
      }
      if (run.status !== 'completed' || failures.has(`${sweep.id}#${point.position}`)) continue;
      if (!point.evalSuite) {
        if (evaluating(ws)) continue;
        let suiteId: string | null = null;
        try {
          ws.sweeps.attachSuite(sweep.id, point.position, () => {
            suiteId = evals.create({
              name: `${sweep.name} · ${settingsLabel(point.settings)}`,
              set: { kind: 'split', datasetId: sweep.datasetId!, split: spec.evalSplit, limit: spec.evalLimit },
              systems: [{ kind: 'model', label: settingsLabel(point.settings), model: { modelId: run.modelId!, adapterRunId: run.id } }],
              maxNewTokens: spec.maxNewTokens,
              datasetVersion: sweep.datasetVersion,
            });
            return suiteId;
          });
        } catch (e) {
          failures.set(`${sweep.id}#${point.position}`, `cannot evaluate its run: ${(e as Error).message}`);
          continue;
        }
        if (suiteId) evals.launch(suiteId);
        continue;
      }
      const suite = point.evalSuite;
      if (evals.liveTask(suite) !== null) continue;
      const status = evals.summary(suite).status;
      if (status === 'completed' || evaluating(ws)) continue;
      if (status === 'interrupted') {
        evals.launch(suite); // its process died mid-batch: continue after the last stored batch
      } else if ((status === 'cancelled' || status === 'failed') && !relaunched.has(suite)) {
        relaunched.add(suite);
        void evals.handlers['evals.resume']({ suiteId: suite }).catch((e: Error) => log(`sweep ${sweep.name}: cannot continue the evaluation of point ${point.position}: ${e.message}`));
      }
    }
    const after = ws.sweeps.get(sweep.id);
    const summary = emit(after);
    if (summary.finished === summary.points.length) emit(ws.sweeps.finish(sweep.id, 'completed'));
  };

  const advance = (): void => {
    if (advancing || closed) return;
    const ws = ctx.ws();
    if (!ws.isOwner) return;
    advancing = true;
    try {
      for (const sweep of ws.sweeps.list('running')) {
        try {
          advanceOne(ws, sweep);
        } catch (e) {
          log(`sweep ${sweep.name}: ${(e as Error).message}`);
        }
      }
    } finally {
      advancing = false;
    }
  };

  const unsubscribe = ctx.events.subscribe((e) => {
    if (e.type === 'run.updated' || (e.type === 'task.progress' && e.finished)) setImmediate(advance);
  });
  const timer = setInterval(advance, DRIVE_EVERY_MS);
  timer.unref();
  setImmediate(advance);

  const handlers: SweepHandlers = {
    'sweeps.plan': async (req) => {
      const { spec: _spec, inputs: _inputs, plans: _plans, ...plan } = planSweep(ctx, req);
      return plan;
    },
    'sweeps.start': async (req) => {
      const ws = ctx.ws();
      const plan = planSweep(ctx, req);
      if (plan.problems.length) {
        throw new ApiError({
          code: 'invalid_input',
          message: plan.problems.map((p) => p.message).join('; '),
          issues: plan.problems.map((p) => ({ path: p.field === 'evalSplit' ? 'evalSplit' : `recipe.${p.field}`, message: p.message })),
        });
      }
      const dataset = ws.datasets.get(req.datasetId as DatasetId);
      const sweep = ws.transaction(() =>
        ws.sweeps.create({
          name: plan.name,
          modelId: req.modelId as ModelId,
          datasetId: dataset.id,
          datasetVersion: dataset.version,
          spec: plan.spec as unknown as Record<string, unknown>,
          points: plan.points.map((p, i) => ({
            settings: p.settings,
            createRun: () => storePlannedRun(ctx, { ...plan.inputs[i]!, name: `${plan.name} · ${settingsLabel(p.settings)}` }, plan.plans[i]!),
          })),
        }),
      );
      ctx.queue.wake();
      for (const p of sweep.points) ctx.events.emit({ type: 'run.updated', run: views.summary(ws.runs.get(p.runId!)) });
      return emit(sweep);
    },
    'sweeps.list': async () => ctx.ws().sweeps.list().map(summaryOf),
    'sweeps.get': async ({ sweepId }) => results(ctx, views, evals, summaryOf(ctx.ws().sweeps.get(sweepId as SweepId))),
    'sweeps.resume': async ({ sweepId }) => {
      const ws = ctx.ws();
      const sweep = ws.sweeps.get(sweepId as SweepId);
      if (sweep.status !== 'running') throw conflict(`sweep "${sweep.name}" is ${sweep.status}; there is nothing to resume`);
      for (const p of sweep.points) {
        if (!p.runId) continue;
        const status = ws.runs.get(p.runId).status;
        if (status === 'paused' || (status === 'interrupted' && !resumed.has(p.runId))) {
          resumed.add(p.runId);
          ctx.queue.resume(p.runId);
        }
        // A failed evaluation gets another try.
        if (p.evalSuite) relaunched.delete(p.evalSuite);
      }
      failures.clear();
      advance();
      return emit(ws.sweeps.get(sweep.id));
    },
    'sweeps.cancel': async ({ sweepId }) => {
      const ws = ctx.ws();
      const sweep = ws.sweeps.get(sweepId as SweepId);
      if (sweep.status !== 'running') throw conflict(`sweep "${sweep.name}" is already ${sweep.status}`);
      // Finished first, so the driver does not evaluate a run the cancel is about to stop.
      ws.sweeps.finish(sweep.id, 'cancelled');
      for (const p of sweep.points) {
        if (p.evalSuite) {
          const task = evals.liveTask(p.evalSuite);
          if (task) cancelTask(task);
        }
        if (!p.runId) continue;
        const status = ws.runs.get(p.runId).status;
        if (status === 'queued' || status === 'running' || status === 'paused' || status === 'interrupted') {
          try {
            ctx.queue.cancel(p.runId);
          } catch (e) {
            log(`sweep ${sweep.name}: cannot cancel run ${p.runId}: ${(e as Error).message}`);
          }
        }
      }
      return emit(ws.sweeps.get(sweep.id));
    },
    'sweeps.remove': async ({ sweepId }) => {
      const ws = ctx.ws();
      const sweep = ws.sweeps.get(sweepId as SweepId);
      if (sweep.status === 'running') throw conflict(`sweep "${sweep.name}" is running; cancel it before removing it`);
      ws.sweeps.delete(sweep.id);
      lastEmitted.delete(sweep.id);
      return { ok: true as const };
    },
  };

  return {
    handlers,
    advance,
    close() {
      closed = true;
      clearInterval(timer);
      unsubscribe();
    },
  };
}

/** The table and the loss curves. */
async function results(ctx: ServiceContext, views: RunViews, evals: EvalSuites, sweep: SweepSummary): Promise<SweepResults> {
  const ws = ctx.ws();
  const stored = ws.sweeps.get(sweep.id as SweepId);
  const spec = stored.spec as unknown as SweepSpec;
  const examplesAt = stored.datasetId ? safe(() => ws.datasets.examplesAt(stored.datasetId!, stored.datasetVersion)) : null;
  const rows: SweepResults['rows'] = [];
  const curves: SweepResults['curves'] = [];
  for (const point of sweep.points) {
    const metrics: SweepMetrics = {
      examples: null,
      exactMatch: null,
      rougeL: null,
      tokenF1: null,
      perplexity: null,
      scienceqaAccuracy: null,
      trainableParameters: null,
      trainingSeconds: null,
      peakMemoryBytes: null,
      tokensPerSec: null,
      finalLoss: null,
    };
    const run = point.runId ? safe(() => ws.runs.get(point.runId as RunId)) : null;
    if (run) {
      const detail = views.detail(run);
      const recipe = run.recipe as { split?: SweepSpec['split']; data?: DataSelection };
      if (examplesAt) metrics.examples = selectExamples(examplesAt, recipe.split ?? spec.split, recipe.data).length;
      metrics.trainableParameters = detail.trainableParameters;
      metrics.trainingSeconds = detail.trainingSeconds;
      const points = ws.runs.metrics(run.id).filter((m) => m.loss !== null) as { step: number; loss: number; tokensPerSec: number | null; memoryBytes: number | null }[];
      metrics.finalLoss = points.at(-1)?.loss ?? null;
      const speeds = points.map((m) => m.tokensPerSec).filter((v): v is number => v !== null);
      metrics.tokensPerSec = speeds.length ? speeds.reduce((a, b) => a + b, 0) / speeds.length : null;
      const memory = points.map((m) => m.memoryBytes).filter((v): v is number => v !== null);
      metrics.peakMemoryBytes = memory.length ? Math.max(...memory) : null;
      const stride = Math.max(1, Math.ceil(points.length / 200));
      curves.push({ position: point.position, points: points.filter((_, i) => i % stride === 0 || i === points.length - 1).map((m) => ({ step: m.step, loss: m.loss })) });
    }
    if (point.suiteId && point.state !== 'missing') {
      const row = safe(() => evals.methodTable(point.suiteId!)[0]);
      if (row) {
        Object.assign(metrics, { exactMatch: row.metrics.exactMatch, rougeL: row.metrics.rougeL, tokenF1: row.metrics.tokenF1, perplexity: row.metrics.perplexity });
        metrics.trainableParameters = row.trainableParameters ?? metrics.trainableParameters;
        metrics.trainingSeconds = row.trainingSeconds ?? metrics.trainingSeconds;
        metrics.peakMemoryBytes = row.peakMemoryBytes ?? metrics.peakMemoryBytes;
        metrics.tokensPerSec = row.tokensPerSec ?? metrics.tokensPerSec;
      }
      if (point.state === 'done') metrics.scienceqaAccuracy = await scienceqaAccuracy(evals, point.suiteId);
    }
    rows.push({ position: point.position, settings: point.settings, state: point.state, metrics });
  }
  return { sweep, rows, curves };
}

/** ScienceQA's acc_average where the held-out questions are imported ScienceQA problems; null otherwise. */
async function scienceqaAccuracy(evals: EvalSuites, suiteId: string): Promise<number | null> {
  try {
    const [column] = await evals.handlers['evals.scienceqa']({ suiteId });
    return column?.scores.acc_average ?? null;
  } catch (e) {
    if (e instanceof ApiError) return null; // not ScienceQA questions: the metric does not apply
    throw e;
  }
}

function safe<T>(fn: () => T): T | null {
  try {
    return fn();
  } catch {
    return null;
  }
}
