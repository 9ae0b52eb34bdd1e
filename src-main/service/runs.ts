// runs.*: plan and queue training runs, follow them, and read their history. The queue itself (one run trains
// at a time, in an engine process of its own) is src-main/host/run-queue.ts.

import { existsSync, realpathSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ApiError, type ApiHandlers, type MetricPoint, type Recipe as ApiRecipe, Recipe as RecipeSchema, type RunDetail, type RunPlan, type RunSummary } from '../../src-shared/api.js';
import type { LlamaConfig } from '../engine/config.js';
import { EngineError } from '../engine/errors.js';
import { memoryEstimate } from '../engine/load.js';
import { parameterCount } from '../engine/config.js';
import { type ImageFeatureChoice, parseFeatureChoice } from '../engine/image-prompt.js';
import { epochShape, type Method, presetFor, peakLearningRate, type Recipe, starterPreset, validateRecipe, validationSplit, type VisionRecipe, withRecipeDefaults } from '../engine/recipe.js';
import type { ClipVisionConfig } from '../engine/vision/clip-config.js';
import { STARTER, starterPath } from '../engine/starter.js';
import type { TrainingJob } from '../host/run-queue.js';
import { type DatasetId, describeOwner, type Model, type ModelId, type Run, type RunId, type Split, type Workspace } from '../store/index.js';
import type { ServiceContext } from './context.js';
import { conflict } from './errors.js';
import { suitesAsking, trainingQuestions } from './eval-suites.js';
import { languageConfig, visionTower } from './model-kinds.js';
import { type DataSelection, selectExamples, type SplitChoice } from './run-data.js';

/** What a run's recipe column holds: the engine recipe plus which examples it trains on. */
type StoredRecipe = Recipe & { split: SplitChoice; data?: DataSelection; visionModelId?: string };

/**
 * Parameters a run trains. adapter: K prompt vectors of width dim and a gate (per head, or one per layer) on
 * each of the top L layers. lora: A [in, r] and B [r, out] per targeted projection of every layer. full: all.
 */
export function trainableParameterCount(c: LlamaConfig, r: Recipe): number {
  if (r.method === 'full') return parameterCount(c);
  if (r.method === 'lora') {
    const q = c.nHeads * c.headDim;
    const kv = c.nKvHeads * c.headDim;
    const shapes: Record<string, [number, number]> = { q: [c.dim, q], k: [c.dim, kv], v: [c.dim, kv], o: [q, c.dim], gate: [c.dim, c.ffnDim], up: [c.dim, c.ffnDim], down: [c.ffnDim, c.dim] };
    return c.nLayers * r.loraTargets.reduce((n, t) => n + r.loraRank * (shapes[t][0] + shapes[t][1]), 0);
  }
  return r.adapterLayers * (r.adapterLen * c.dim + (r.gateMode === 'per-layer' ? 1 : c.nHeads)) + imageProjectionParameters(c, r);
}

/** The multi-modal projection fc1 [F, H] + fc2 [H, dim] with biases; F is known once the tower is (stored on the recipe). */
function imageProjectionParameters(c: LlamaConfig, r: Recipe & { visionFeatureDim?: number }): number {
  if (!r.vision || !r.visionFeatureDim) return 0;
  const H = r.vision.projectionHidden;
  return r.visionFeatureDim * H + H + H * c.dim + c.dim;
}

function examplesIn(ws: Workspace, datasetId: DatasetId, split: SplitChoice, data?: DataSelection, version?: number): number {
  if (data) return selectExamples(ws.datasets.examplesAt(datasetId, version ?? ws.datasets.get(datasetId).version), split, data).length;
  const summary = ws.datasets.list().find((d) => d.id === datasetId);
  if (!summary) ws.datasets.get(datasetId); // throws the not-found error
  return split === 'all' ? summary!.examples : summary!.splits[split];
}

/** `recipe field "lr" must be ...` -> field lr, for the form to show the message beside the field. */
function recipeProblem(e: EngineError): { field: string; message: string } {
  const m = /^recipe field "([^"]+)" (.*)$/.exec(e.message);
  return m ? { field: m[1], message: m[2] } : { field: '', message: e.message };
}

/**
 * The recipe a run on `model` starts from: the method's preset (the paper's, Alpaca-LoRA's, Alpaca's), or,
 * for the bundled starter model, the same methods scaled to a 4M-parameter model, so that a new user's first
 * run with the defaults learns in minutes.
 */
export function presetForModel(model: Model, method: Method): Recipe {
  const config = languageConfig(model);
  return isStarterModel(model.path) ? starterPreset(method, config) : presetFor(method, config);
}

function isStarterModel(dir: string): boolean {
  try {
    return realpathSync(dir) === realpathSync(starterPath(STARTER.modelDir));
  } catch {
    return false;
  }
}

export interface PlanInput {
  modelId: string;
  datasetId: string;
  split: SplitChoice;
  recipe: Partial<ApiRecipe>;
  vision?: { modelId: string; feature: string; projectionHidden: number };
  /** A sweep point's narrower choice of the split's examples. */
  data?: DataSelection;
}

/** The feature length a tower gives for `feature`, from its stored config (no engine needed). */
function towerFeatureDim(tower: Model, feature: ImageFeatureChoice): number {
  const v = (tower.config as { vision?: { config: ClipVisionConfig } }).vision!.config;
  if (feature.kind === 'projected') {
    if (v.projectionDim === null) throw new EngineError(`vision tower "${tower.name}" has no visual_projection: use the feature "class-tokens:${v.numLayers}"`);
    return v.projectionDim;
  }
  for (const l of feature.layers) if (l < 1 || l > v.numLayers) throw new EngineError(`image feature "class-tokens": layer ${l} is not one of ${tower.name}'s layers 1..${v.numLayers}`);
  return v.hiddenSize * feature.layers.length;
}

export function planRun(ctx: ServiceContext, req: PlanInput): RunPlan & { config: LlamaConfig; vision: VisionRecipe | null } {
  const ws = ctx.ws();
  const model = ws.models.get(req.modelId as ModelId);
  const config = languageConfig(model);
  const recipe: Recipe & { visionFeatureDim?: number } = { ...presetForModel(model, req.recipe.method ?? 'adapter'), ...req.recipe } as Recipe;
  const problems: RunPlan['problems'] = [];
  if (req.vision) {
    try {
      const tower = visionTower(ws.models.get(req.vision.modelId as ModelId));
      const feature = parseFeatureChoice(req.vision.feature, 'vision.feature');
      recipe.vision = { feature, projectionHidden: req.vision.projectionHidden };
      recipe.visionFeatureDim = towerFeatureDim(tower, feature);
      if (ws.images.countIn(req.datasetId as DatasetId) === 0) problems.push({ field: 'vision', message: 'the dataset has no images: a multi-modal adapter would learn nothing from the tower' });
    } catch (e) {
      if (!(e instanceof EngineError) && !(e instanceof ApiError)) throw e;
      problems.push({ field: 'vision', message: e.message });
    }
  }
  try {
    validateRecipe(recipe, config);
  } catch (e) {
    if (!(e instanceof EngineError)) throw e;
    problems.push(recipeProblem(e));
  }
  const inSplit = examplesIn(ws, req.datasetId as DatasetId, req.split, req.data);
  // Alpaca-LoRA holds out val_set_size examples for validation (when there are more): the rest train.
  const held = validationSplit(inSplit, withRecipeDefaults(recipe));
  const examples = held.train;
  if (inSplit === 0 && req.data) {
    problems.push({ field: 'data', message: `no example of the ${req.split === 'all' ? 'dataset' : `${req.split} split`} is left by this choice of data` });
  } else if (inSplit === 0) {
    problems.push({ field: 'split', message: req.split === 'all' ? 'the dataset has no examples' : `the dataset has no examples in the ${req.split} split; split it first or train on all` });
  }
  const { microPerEpoch, stepsPerEpoch } = epochShape(examples, withRecipeDefaults(recipe));
  if (examples > 0 && microPerEpoch === 0) problems.push({ field: 'batchSize', message: `${examples} examples make no whole batch of ${recipe.batchSize}, and this recipe drops the last partial batch` });
  const planned = Math.ceil(stepsPerEpoch * recipe.epochs);
  const totalSteps = recipe.maxSteps === null ? planned : Math.min(planned, recipe.maxSteps);
  const trainable = trainableParameterCount(config, recipe);
  const mem = memoryEstimate(config, recipe.batchSize, recipe.maxSeqLen);
  // Training on what an evaluation asks makes its scores meaningless: said before the run starts.
  const warnings =
    examples > 0
      ? suitesAsking(ws, trainingQuestions(ws, req.datasetId, req.split)).map(
          (o) =>
            `${o.seen} of the ${o.items} items of the evaluation “${o.name}” are in this training data: its scores for this run would be on seen examples` +
            (req.split === 'all' ? ' (train on the train split to keep them out)' : ''),
        )
      : [];
  if (held.val > 0) warnings.push(`${held.val} of the ${inSplit} examples are held out for validation (valSetSize, as Alpaca-LoRA's val_set_size); ${examples} train, and the weights of the step with the lowest validation loss are kept`);
  return {
    recipe: RecipeSchema.parse(recipe),
    vision: recipe.vision ?? null,
    trainableParameters: trainable,
    peakLr: problems.length ? 0 : peakLearningRate(recipe),
    examples,
    stepsPerEpoch,
    totalSteps,
    // Adapter weights plus AdamW's two moments, float32.
    memory: { ...mem, adapterBytes: trainable * 4 * 3 },
    problems,
    warnings,
    config,
  };
}

/** Stores a planned run (no problems left) as queued; the caller wakes the queue. Returns its id. */
export function storePlannedRun(ctx: ServiceContext, req: PlanInput & { name?: string }, plan: ReturnType<typeof planRun>): RunId {
  const ws = ctx.ws();
  const dataset = ws.datasets.get(req.datasetId as DatasetId);
  const stored: StoredRecipe = { ...(plan.recipe as Recipe), split: req.split };
  if (req.data) stored.data = req.data;
  if (req.vision) {
    // The contract's recipe has no image fields: the engine's vision recipe and the tower go on the stored one.
    stored.vision = plan.vision!;
    stored.visionModelId = req.vision.modelId;
  }
  return ws.runs.create({
    name: req.name,
    method: plan.recipe.method,
    recipe: stored as unknown as Record<string, unknown>,
    datasetId: dataset.id,
    datasetVersion: dataset.version,
    modelId: req.modelId as ModelId,
    // The backend the engine last started with; 'auto' (the setting) until an engine has started.
    backend: ctx.engines.backendInfo().name ?? ctx.settings().backend,
  }).id;
}

export class RunViews {
  constructor(private readonly ctx: ServiceContext) {}

  summary(run: Run): RunSummary {
    const ws = this.ctx.ws();
    const q = this.ctx.queue;
    const name = <T extends { name: string }>(get: () => T): string | null => {
      try {
        return get().name;
      } catch {
        return null;
      }
    };
    const recipe = run.recipe as Partial<StoredRecipe>;
    const adapterPath = run.status === 'completed' && existsSync(ws.runDir(run.id)) ? ws.runDir(run.id) : null;
    return {
      id: run.id,
      name: run.name,
      method: run.method,
      status: run.status,
      modelId: run.modelId,
      modelName: run.modelId ? name(() => ws.models.get(run.modelId!)) : null,
      datasetId: run.datasetId,
      datasetName: run.datasetId ? name(() => ws.datasets.get(run.datasetId!)) : null,
      datasetVersion: run.datasetVersion,
      split: recipe.split ?? 'all',
      backend: run.backend,
      error: run.error ?? q.reasonOf(run.id),
      createdAt: run.createdAt,
      startedAt: run.startedAt,
      finishedAt: run.finishedAt,
      queuePosition: q.positionOf(run.id),
      progress: q.progressOf(run.id) ?? this.storedProgress(run),
      adapterPath,
      visionModelId: recipe.visionModelId ?? null,
    };
  }

  /** For a run not training now: its last recorded step. */
  private storedProgress(run: Run): RunSummary['progress'] {
    const ws = this.ctx.ws();
    const last = ws.runs.metrics(run.id, -1).at(-1);
    if (!last) return null;
    const plan = plannedSteps(ws, run);
    return {
      step: last.step,
      totalSteps: Math.max(last.step, plan?.total ?? last.step),
      epoch: plan ? last.step / plan.perEpoch : 0,
      loss: last.loss,
      lr: last.lr,
      tokensPerSec: last.tokensPerSec,
      etaSec: null,
    };
  }

  detail(run: Run): RunDetail {
    const ws = this.ctx.ws();
    const facts = this.ctx.queue.factsOf(run.id);
    let trainable: number | null = facts?.trainableParameters ?? null;
    if (trainable === null && run.modelId) {
      try {
        trainable = trainableParameterCount(languageConfig(ws.models.get(run.modelId)), run.recipe as unknown as Recipe);
      } catch {
        trainable = null;
      }
    }
    const metrics = ws.runs.metrics(run.id);
    return {
      ...this.summary(run),
      recipe: RecipeSchema.parse(run.recipe),
      trainableParameters: trainable,
      examples: facts?.examples ?? null,
      checkpoints: ws.runs
        .checkpoints(run.id)
        .filter((c) => existsSync(c.path))
        .map((c) => ({ step: c.step, path: c.path, createdAt: c.createdAt })),
      trainingSeconds: metrics.length ? (metrics.at(-1)!.elapsedMs ?? 0) / 1000 : null,
    };
  }
}

function plannedSteps(ws: Workspace, run: Run): { total: number; perEpoch: number } | null {
  const r = run.recipe as Partial<StoredRecipe>;
  if (!run.datasetId || !r.batchSize || !r.accumSteps || !r.epochs) return null;
  try {
    const n = examplesIn(ws, run.datasetId, r.split ?? 'all', r.data, run.datasetVersion ?? undefined);
    const perEpoch = Math.max(1, epochShape(n, withRecipeDefaults(r as Recipe)).stepsPerEpoch);
    const total = Math.ceil(perEpoch * r.epochs);
    return { total: r.maxSteps ? Math.min(total, r.maxSteps) : total, perEpoch };
  } catch {
    return null;
  }
}

/** Reads what the engine needs for a queued run: the model folder and the exact dataset version it was queued with. */
export function trainingJobFor(ws: Workspace, runId: RunId): TrainingJob {
  const run = ws.runs.get(runId);
  if (!run.modelId || !run.datasetId || run.datasetVersion === null) throw new EngineError(`run ${run.name} has no model or dataset`);
  const model = ws.models.get(run.modelId);
  const { split, data: selection, ...recipe } = run.recipe as unknown as StoredRecipe;
  const examples = selectExamples(ws.datasets.examplesAt(run.datasetId, run.datasetVersion), split, selection);
  const { visionModelId, ...engineRecipe } = recipe;
  const job: TrainingJob = {
    modelDir: model.path,
    data: examples.map((e) => ({ instruction: e.instruction, input: e.input, output: e.output })),
    recipe: engineRecipe,
    outDir: ws.runDir(runId),
  };
  if (engineRecipe.vision) {
    if (!visionModelId) throw new EngineError(`run ${run.name} is multi-modal but records no vision tower`);
    const tower = ws.models.get(visionModelId as ModelId);
    job.images = examples.map((e) => (e.image ? ws.images.filePath(ws.images.get(e.image)) : null));
    // Cached by tower fingerprint and image content: shared by every run and evaluation of the workspace.
    job.vision = { towerDir: tower.path, cacheDir: join(ws.dir, 'image-features') };
  }
  return job;
}

export function toMetricPoint(m: { step: number; loss: number | null; lr: number | null; tokensPerSec: number | null; memoryBytes: number | null; elapsedMs: number | null }): MetricPoint {
  return { step: m.step, loss: m.loss, lr: m.lr, tokensPerSec: m.tokensPerSec, memoryBytes: m.memoryBytes, elapsedMs: m.elapsedMs };
}

export function runHandlers(ctx: ServiceContext, views: RunViews): Pick<
  ApiHandlers,
  'runs.defaults' | 'runs.plan' | 'runs.start' | 'runs.list' | 'runs.get' | 'runs.metrics' | 'runs.pause' | 'runs.resume' | 'runs.cancel' | 'runs.remove' | 'runs.rename'
> {
  const get = (id: string) => ctx.ws().runs.get(id as RunId);
  return {
    'runs.defaults': async ({ modelId, method }) => RecipeSchema.parse(presetForModel(ctx.ws().models.get(modelId as ModelId), method)),
    'runs.plan': async (req) => {
      const { config: _config, vision: _vision, ...plan } = planRun(ctx, req);
      return plan;
    },
    'runs.start': async (req) => {
      const ws = ctx.ws();
      const plan = planRun(ctx, req);
      if (plan.problems.length) {
        throw new ApiError({
          code: 'invalid_input',
          message: `runs.start: ${plan.problems.map((p) => (p.field ? `field "recipe.${p.field}": ${p.message}` : p.message)).join('; ')}`,
          issues: plan.problems.map((p) => ({ path: p.field ? `recipe.${p.field}` : '(request)', message: p.message })),
        });
      }
      const run = { id: storePlannedRun(ctx, req, plan) };
      ctx.queue.wake();
      const summary = views.summary(ws.runs.get(run.id));
      ctx.events.emit({ type: 'run.updated', run: summary });
      return summary;
    },
    'runs.list': async ({ search, status }) => {
      const needle = search?.trim().toLowerCase();
      return ctx
        .ws()
        .runs.list(status)
        .map((r) => views.summary(r))
        .filter((r) => !needle || [r.name, r.modelName, r.datasetName, r.status, r.id].some((f) => f?.toLowerCase().includes(needle)));
    },
    'runs.get': async ({ runId }) => views.detail(get(runId)),
    'runs.metrics': async ({ runId, afterStep }) => ctx.ws().runs.metrics(get(runId).id, afterStep ?? -1).map(toMetricPoint),
    'runs.pause': async ({ runId }) => {
      ctx.queue.pause(get(runId).id);
      return views.summary(get(runId));
    },
    'runs.resume': async ({ runId }) => {
      ctx.queue.resume(get(runId).id);
      return views.summary(get(runId));
    },
    'runs.cancel': async ({ runId }) => {
      ctx.queue.cancel(get(runId).id);
      return views.summary(get(runId));
    },
    'runs.remove': async ({ runId }) => {
      const ws = ctx.ws();
      const run = get(runId);
      if (ctx.queue.activeRunId === run.id || run.status === 'queued' || ctx.queue.positionOf(run.id) !== null) {
        throw conflict(`run "${run.name}" is ${run.status === 'running' ? 'training' : 'waiting in the queue'}; cancel it before deleting it`);
      }
      // Running here means training in the owner, unless the owner died (then nothing uses its files).
      const owner = run.status === 'running' && !ws.isOwner ? ws.owner() : null;
      if (owner) {
        throw conflict(`run "${run.name}" is training in ${describeOwner(owner)}, which owns this workspace; cancel it there before deleting it`);
      }
      ws.runs.delete(run.id);
      rmSync(ws.runDir(run.id), { recursive: true, force: true });
      return { ok: true as const };
    },
    'runs.rename': async ({ runId, name }) => {
      const summary = views.summary(ctx.ws().runs.rename(get(runId).id, name));
      ctx.events.emit({ type: 'run.updated', run: summary });
      return summary;
    },
  };
}
